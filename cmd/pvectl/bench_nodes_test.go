package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pvectl/pvectl/config"
	"github.com/pvectl/pvectl/engine"
	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
)

// Benchmarks of proxmox.max_requests_per_node (issue 15, item 4): one
// process_vms pass over a large deploying fleet spread evenly over 10
// simulated nodes at 20 ms per API call. docs/performance.md, "Per-node
// request limits (issue 15)", has the numbers and what they mean.

const (
	benchNodes       = 10
	benchNodeLatency = 20 * time.Millisecond
	// benchNodeWorkers is pvesim's per-node worker model in the "pveproxy"
	// runs: a node serves this many requests at once and queues the rest.
	benchNodeWorkers = 4
	// unlimited stands for "no per-node limit" (max_requests_per_node has
	// no such value: any limit above the concurrency never bites).
	unlimited = 1 << 20
)

// nodesRig is benchRig over nodesCluster(): a product per node (p1 on
// pve1 …), each cloned (linked) from its own node's template, so every
// node gets the same share of the fleet and of its requests.
type nodesRig struct {
	benchRig
	obs *requestTimes
}

// requestTimes collects the time of every request as the HTTP client saw
// it (Options.Observe): what counts against proxmox.timeout.
type requestTimes struct {
	mu sync.Mutex
	d  []time.Duration
}

func (r *requestTimes) observe(_, _ string, d time.Duration, _ error) {
	r.mu.Lock()
	r.d = append(r.d, d)
	r.mu.Unlock()
}

// take returns the observed times, sorted, and starts over.
func (r *requestTimes) take() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.d
	r.d = nil
	slices.Sort(d)
	return d
}

func nodesCluster() pvesim.Cluster {
	c := pvesim.DefaultCluster()
	proto := c.Nodes[0]
	tmpl := c.VMs[0]
	c.Nodes, c.VMs = nil, nil
	for i := 1; i <= benchNodes; i++ {
		n := proto
		n.Name = fmt.Sprintf("pve%d", i)
		n.Memory = 16 << 40
		n.Storages = slices.Clone(proto.Storages)
		for j := range n.Storages {
			n.Storages[j].Total = 1 << 50
		}
		c.Nodes = append(c.Nodes, n)
		vmid := 9000 + i
		conf := maps.Clone(tmpl.Config)
		conf["scsi0"] = fmt.Sprintf("local-lvm:base-%d-disk-0,size=32G", vmid)
		conf["ide2"] = fmt.Sprintf("local-lvm:vm-%d-cloudinit,media=cdrom", vmid)
		conf["net0"] = fmt.Sprintf("virtio=BC:24:11:00:%02X:00,bridge=vmbr0", i)
		c.VMs = append(c.VMs, pvesim.VMSpec{VMID: vmid, Node: n.Name, Config: conf})
	}
	return c
}

func nodesConfig(apiURL, tokenID, secret string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "proxmox:\n  url: %s\n  token_id: %s\n  token_secret: %s\n", apiURL, tokenID, secret)
	b.WriteString("vmid_range: {min: 10000, max: 99999}\nproducts:\n")
	var nodes []string
	for i := 1; i <= benchNodes; i++ {
		nodes = append(nodes, fmt.Sprintf("pve%d", i))
		fmt.Fprintf(&b, `  p%d:
    cores: 2
    memory_mb: 2048
    template: {vmid: %d, node: pve%d}
    target_node: pve%d
    system_disk: {size_gb: 40, storage: local-lvm}
    network: {bridge: vmbr0, ipv4: 1}
    cloudinit: {user: admin}
`, i, 9000+i, i, i)
	}
	fmt.Fprintf(&b, "ip_pools:\n  - {name: v4, nodes: [%s], family: 4, bridge: vmbr0, network: 10.0.0.0/16, gateway: 10.0.0.1, first: 10.0.0.10, last: 10.0.255.250}\n",
		strings.Join(nodes, ", "))
	return b.String()
}

func newNodesRig(b *testing.B) *nodesRig {
	b.Helper()
	r := &nodesRig{benchRig: *newRigOn(b, nodesCluster(), nodesConfig), obs: &requestTimes{}}
	r.eng.NewEnv = r.newEnv
	return r
}

// newEnv is cmd/pvectl's newEnv (same options from the config) with the
// request times observed. The adapter is built per pass (see setEnv), so
// each run's max_requests_per_node takes effect.
func (r *nodesRig) newEnv(ctx context.Context, e *engine.Engine) (*states.Env, error) {
	env, err := newEnv(ctx, e)
	if err != nil {
		return nil, err
	}
	c := e.Config.Proxmox
	pve, err := proxmox.New(proxmox.Options{URL: c.URL, TokenID: c.TokenID, TokenSecret: c.TokenSecret.Reveal(),
		Timeout: c.Timeout.D(), UserAgent: "pvectl/bench", MaxRequestsPerNode: c.MaxRequestsPerNode, Observe: r.obs.observe})
	if err != nil {
		return nil, err
	}
	env.PVE = pve
	return env, nil
}

// createNodes writes n new VM records in creation, a product per node in
// turn.
func (r *nodesRig) createNodes(b *testing.B, n int) {
	b.Helper()
	for range n {
		i := r.next
		r.next++
		_, _, err := r.eng.Store.VMCreate(context.Background(), store.NewVM{ServiceID: fmt.Sprintf("svc-%05d", i),
			Hostname: fmt.Sprintf("vm%05d.example.com", i), Product: fmt.Sprintf("p%d", i%benchNodes+1),
			Status: string(states.Creation), Now: r.clock.Now()})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// fleetNodes builds n deploying VMs spread over the deploy pipeline: a
// batch of orders arrives before each zero-latency pass (heavy tasks not
// capped), so earlier batches are further along.
func (r *nodesRig) fleetNodes(b *testing.B, n, batches int) {
	b.Helper()
	start := time.Now()
	opts := &r.eng.Config.Tasks.ProcessVMs
	heavy, conc := opts.HeavyPerNode, opts.Concurrency
	opts.HeavyPerNode, opts.Concurrency = n, 8
	for i := range batches {
		r.createNodes(b, n/batches+min(1, max(0, n%batches-i)))
		r.pass(b)
	}
	opts.HeavyPerNode, opts.Concurrency = heavy, conc
	b.Logf("fleet built in %s: %s", time.Since(start).Round(time.Second), r.distribution(b))
}

// nodesRun is one measured configuration.
type nodesRun struct {
	// floor: zero latency, no worker model: the engine's and the store's
	// own time for the pass (the reference in the same run).
	floor       bool
	concurrency int
	limit       int // max_requests_per_node
	workers     int // pvesim's per-node workers (0: off)
}

func (c nodesRun) label() string {
	l := fmt.Sprint(c.limit)
	if c.limit == unlimited {
		l = "off"
	}
	w := "off"
	if c.workers > 0 {
		w = fmt.Sprint(c.workers)
	}
	if c.floor {
		return fmt.Sprintf("floor_latency=0/concurrency=%d/limit=%s", c.concurrency, l)
	}
	return fmt.Sprintf("concurrency=%d/limit=%s/pveproxy_workers=%s", c.concurrency, l, w)
}

// ideal is requests × latency / the requests in flight at best:
// min(concurrency, nodes × limit), and nodes × workers with the worker model.
func (c nodesRun) ideal(requests int) time.Duration {
	if c.floor {
		return 0
	}
	par := min(c.concurrency, benchNodes*c.limit)
	if c.workers > 0 {
		par = min(par, benchNodes*c.workers)
	}
	return time.Duration(requests) * benchNodeLatency / time.Duration(par)
}

var (
	runFloor  = nodesRun{floor: true, concurrency: 40, limit: config.DefaultMaxRequestsPerNode}
	runOff    = nodesRun{concurrency: 40, limit: unlimited}
	runLimit  = nodesRun{concurrency: 40, limit: config.DefaultMaxRequestsPerNode}
	runOffW   = nodesRun{concurrency: 40, limit: unlimited, workers: benchNodeWorkers}
	runLimitW = nodesRun{concurrency: 40, limit: config.DefaultMaxRequestsPerNode, workers: benchNodeWorkers}
)

// benchmarkNodesPass times ONE process_vms pass per configuration over a
// fleet of n deploying VMs on 10 nodes, 20 ms per API call. The fleet is
// built once, at zero latency and outside the timer; each configuration
// then times the next pass over the same fleet, one step further along.
// Reported: ms/pass, requests/pass, ideal_ms (requests × 20 ms /
// min(concurrency, nodes × limit[, nodes × workers])), x_ideal (the ratio,
// 1.0 = no time lost), the client-side request time (median, p99, max: what
// proxmox.timeout sees), and the most requests in flight at once to one
// node at the simulator.
func benchmarkNodesPass(b *testing.B, n, batches int, runs ...nodesRun) {
	r := newNodesRig(b)
	r.fleetNodes(b, n, batches)
	for _, run := range runs {
		b.Run(run.label(), func(b *testing.B) {
			if run.floor {
				r.sim.SetLatency(0, 0)
			} else {
				r.sim.SetLatency(benchNodeLatency, 0)
			}
			r.eng.Config.Tasks.ProcessVMs.Concurrency = run.concurrency
			r.eng.Config.Proxmox.MaxRequestsPerNode = run.limit
			r.sim.SetNodeWorkers(run.workers)
			defer r.sim.SetNodeWorkers(0)
			var total, ideal time.Duration
			var requests, processed, advanced, peak int
			var times []time.Duration
			for range b.N {
				b.StopTimer()
				r.resetEnv()
				r.obs.take()
				r.sim.ResetInFlightPeaks()
				s, took, req := r.timedPass(b)
				total += took
				requests += req
				ideal += run.ideal(req)
				processed += s.Processed
				advanced += s.Advanced
				times = append(times, r.obs.take()...)
				for node, p := range r.sim.InFlightPeaks() {
					if node != pvesim.EndpointNode {
						peak = max(peak, p)
					}
				}
				r.sim.Advance(time.Minute)
				r.clock.advance(time.Minute)
			}
			slices.Sort(times)
			nf := float64(b.N)
			b.ReportMetric(float64(total.Milliseconds())/nf, "ms/pass")
			b.ReportMetric(float64(requests)/nf, "requests/pass")
			b.ReportMetric(float64(ideal.Milliseconds())/nf, "ideal_ms")
			if ideal > 0 {
				b.ReportMetric(total.Seconds()/ideal.Seconds(), "x-ideal")
			}
			b.ReportMetric(float64(processed)/nf, "vms/pass")
			b.ReportMetric(float64(advanced)/nf, "advanced/pass")
			if len(times) > 0 {
				b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "req_p50_ms")
				b.ReportMetric(float64(times[len(times)*99/100].Microseconds())/1000, "req_p99_ms")
				b.ReportMetric(float64(times[len(times)-1].Microseconds())/1000, "req_max_ms")
			}
			b.ReportMetric(float64(peak), "node_peak_inflight")
		})
	}
}

// resetEnv gives the rig a new engine over the same config, store and
// clocks, which builds a new adapter (and so a new per-node limiter from
// the config) on its first pass.
func (r *benchRig) resetEnv() {
	e := r.eng
	r.eng = &engine.Engine{Config: e.Config, Store: e.Store, StateDir: e.StateDir, Clock: e.Clock, Live: e.Live,
		Pipelines: e.Pipelines, NewEnv: e.NewEnv}
}

// BenchmarkProcessVMsPassNodes1000: 1,000 deploying VMs over 10 nodes.
func BenchmarkProcessVMsPassNodes1000(b *testing.B) {
	benchmarkNodesPass(b, 1000, 6, runFloor, runOff, runLimit, runOffW, runLimitW)
}

// BenchmarkProcessVMsPassNodes10000: the 10,000 deploying VMs over
// 10 nodes (goal: one pass within 60 s). Building the fleet takes minutes,
// so it runs only with PVECTL_BENCH_LARGE=1.
func BenchmarkProcessVMsPassNodes10000(b *testing.B) {
	if os.Getenv("PVECTL_BENCH_LARGE") != "1" {
		b.Skip("set PVECTL_BENCH_LARGE=1 (builds a 10,000-VM fleet: several minutes)")
	}
	benchmarkNodesPass(b, 10000, 3, runFloor, runLimit, runOff, runLimitW)
}
