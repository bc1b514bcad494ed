package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pvectl/pvectl/config"
	"github.com/pvectl/pvectl/engine"
	"github.com/pvectl/pvectl/internal/commitfloor"
	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
)

// Benchmarks of the deploy pipeline through the real engine, the real
// go-proxmox adapter and a durable SQLite store, against an in-process
// pvesim with a manual clock. The numbers and what they mean for an operator
// are in docs/performance.md.

// benchClock is the engine's clock in the benchmarks; it moves with pvesim's.
type benchClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *benchClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *benchClock) advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// benchConfig: products pinned to pve1 (linked clone), pve2 (full clone,
// migrated, additional disk) and pve3 (full clone, migrated).
const benchConfig = `proxmox:
  url: %s
  token_id: %s
  token_secret: %s
vmid_range: {min: 1000, max: 99999}
products:
  p1:
    cores: 2
    memory_mb: 2048
    template: {vmid: 9000, node: pve1}
    target_node: pve1
    system_disk: {size_gb: 40, storage: local-lvm, iops_rd: 500, mbps_wr: 100}
    network: {bridge: vmbr0, ipv4: 1, ipv6: 1, rate_mbps: 100}
    cloudinit: {user: admin}
  p2:
    cores: 4
    memory_mb: 4096
    template: {vmid: 9000, node: pve1}
    target_node: pve2
    clone: full
    system_disk: {size_gb: 50, storage: local-lvm}
    additional_disk: {size_gb: 100, storage: local-lvm, mbps_wr: 50}
    network: {bridge: vmbr0, ipv4: 2}
    firewall: {policy_in: DROP}
  p3:
    cores: 1
    memory_mb: 1024
    template: {vmid: 9000, node: pve1}
    target_node: pve3
    clone: full
    system_disk: {size_gb: 32, storage: local-lvm}
    network: {bridge: vmbr0, ipv4: 1, ipv6: 1}
ip_pools:
  - {name: v4, nodes: [pve1, pve2, pve3], family: 4, bridge: vmbr0, network: 10.0.0.0/16, gateway: 10.0.0.1, dns_servers: [10.0.0.53], first: 10.0.0.10, last: 10.0.255.250}
  - {name: v6, nodes: [pve1, pve2, pve3], family: 6, bridge: vmbr0, network: "2001:db8::/64", gateway: "2001:db8::1", first: "2001:db8::100", last: "2001:db8::ffff"}
`

var benchProducts = []string{"p1", "p2", "p3"}

// benchRig is one engine over a fresh durable store and a fresh 3-node pvesim.
type benchRig struct {
	sim   *pvesim.Sim
	eng   *engine.Engine
	clock *benchClock
	next  int // next service number
	errs  *errLines
}

// errLines keeps the live lines that report an error or a warning (the last 20), for a
// benchmark's failure message; the rest of the live output is dropped.
type errLines struct {
	mu    sync.Mutex
	lines []string
}

func (w *errLines) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, l := range strings.Split(string(p), "\n") {
		if strings.Contains(l, " ERR ") || strings.Contains(l, " WRN ") {
			w.lines = append(w.lines, l)
			if len(w.lines) > 20 {
				w.lines = w.lines[1:]
			}
		}
	}
	return len(p), nil
}

func (w *errLines) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.lines, "\n")
}

func newBenchRig(b testing.TB) *benchRig {
	b.Helper()
	return newRigOn(b, benchCluster(), func(apiURL, tokenID, secret string) string {
		return fmt.Sprintf(benchConfig, apiURL, tokenID, secret)
	})
}

// benchCluster is pvesim's default cluster with a third node and room for
// any fleet (memory and storage that never run out).
func benchCluster() pvesim.Cluster {
	c := pvesim.DefaultCluster()
	c.Nodes = append(c.Nodes, c.Nodes[1])
	c.Nodes[2].Name = "pve3"
	for i := range c.Nodes {
		c.Nodes[i].Memory = 16 << 40
		st := make([]pvesim.StorageSpec, len(c.Nodes[i].Storages))
		copy(st, c.Nodes[i].Storages)
		for j := range st {
			st[j].Total = 1 << 50
		}
		c.Nodes[i].Storages = st
	}
	return c
}

// newRigOn is an engine over a fresh durable store and a fresh pvesim of
// cluster c, configured by the YAML conf returns for the simulator's URL and
// token.
func newRigOn(b testing.TB, c pvesim.Cluster, conf func(apiURL, tokenID, secret string) string) *benchRig {
	b.Helper()
	sim, apiURL, tokenID, secret := pvesim.StartTest(b, c)
	// A rejected request would show up only as a retried step and flatter
	// the numbers: the benchmark fails instead.
	b.Cleanup(func() { sim.RequireNoRejections(b) })
	dir := b.TempDir()
	path := filepath.Join(dir, "pvectl.yaml")
	data := conf(apiURL, tokenID, secret)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		b.Fatal(err)
	}
	cfg, err := config.Parse(path, []byte(data))
	if err != nil {
		b.Fatal(err)
	}
	// A durable store on disk: WAL, synchronous=FULL, as in production.
	st, err := store.Create(context.Background(), filepath.Join(dir, "state", "pvectl.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	clock := &benchClock{t: pvesim.DefaultStart}
	errs := &errLines{}
	live, err := engine.NewLive(errs, "console", false, clock)
	if err != nil {
		b.Fatal(err)
	}
	eng := &engine.Engine{Config: cfg, Store: st, StateDir: filepath.Join(dir, "state"), Clock: clock, Live: live,
		Pipelines: states.Pipelines(), NewEnv: newEnv}
	return &benchRig{sim: sim, eng: eng, clock: clock, errs: errs}
}

// create writes n new VM records in creation, cycling through the products.
func (r *benchRig) create(b testing.TB, n int) {
	b.Helper()
	for range n {
		i := r.next
		r.next++
		_, _, err := r.eng.Store.VMCreate(context.Background(), store.NewVM{ServiceID: fmt.Sprintf("svc-%05d", i),
			Hostname: fmt.Sprintf("vm%05d.example.com", i), Product: benchProducts[i%len(benchProducts)],
			Status: string(states.Creation), Now: r.clock.Now()})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// pass runs one process_vms pass, then lets a minute pass on both clocks so
// every task submitted in the pass has finished by the next one.
func (r *benchRig) pass(b testing.TB) engine.Summary {
	b.Helper()
	s, err := r.eng.ProcessVMs(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	if s.Errors > 0 {
		b.Fatalf("pass had %d step errors: %+v\n%s\nnot ready (first 20):\n%s", s.Errors, s, r.errs, r.notReady(b))
	}
	r.sim.Advance(time.Minute)
	r.clock.advance(time.Minute)
	return s
}

func (r *benchRig) notReady(b testing.TB) string {
	vms, err := r.eng.Store.VMList(context.Background(), store.VMFilter{})
	if err != nil {
		b.Fatal(err)
	}
	var out []string
	for _, v := range vms {
		if v.Status != string(states.Ready) && len(out) < 20 {
			out = append(out, fmt.Sprintf("%s %s held=%v attempts=%d %s", v.ServiceID, v.Status, v.Held, v.Attempts, v.LastError))
		}
	}
	return strings.Join(out, "\n")
}

// BenchmarkDeploySteps deploys batches of 30 VMs from creation to ready
// against pvesim at zero latency (tasks finish between passes) with the
// default concurrency and a durable store. steps/s counts completed steps
// (state transitions, done or skip); attempts/s counts every step run,
// including the ones that only submitted a task or waited.
//
// The naive commit floor (one UPDATE + one INSERT per transaction, as
// store's BenchmarkCommitFloor) is measured in the store's own directory
// just before and just after the timed loop, as engine's
// BenchmarkProcessVMs does; x-floor is steps/s over their mean (issue 15:
// ≥ 4× the 0.021–0.025 measured before group commit).
func BenchmarkDeploySteps(b *testing.B) {
	const batch = 30
	r := newBenchRig(b)
	ctx := context.Background()
	floor, err := commitfloor.Open(ctx, r.eng.StateDir)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = floor.Close() }()
	before, err := floor.Measure(ctx, floorProbe)
	if err != nil {
		b.Fatal(err)
	}
	var steps, attempts, passes int
	for b.Loop() {
		r.create(b, batch)
		for n, ready := 0, false; !ready; n++ {
			s := r.pass(b)
			passes++
			steps += s.Advanced
			attempts += s.Processed
			if n > 200 {
				b.Fatalf("batch did not converge:\n%s", r.notReady(b))
			}
			ready = s.Processed == 0
		}
	}
	sec := b.Elapsed().Seconds()
	after, err := floor.Measure(ctx, floorProbe)
	if err != nil {
		b.Fatal(err)
	}
	rate := float64(steps) / sec
	b.ReportMetric(rate, "steps/s")
	b.ReportMetric(float64(attempts)/sec, "attempts/s")
	b.ReportMetric(float64(steps)/float64(b.N), "steps/op")
	b.ReportMetric(float64(passes)/float64(b.N), "passes/op")
	b.ReportMetric((before+after)/2, "floor-commits/s")
	b.ReportMetric(rate/((before+after)/2), "x-floor")
}

// floorProbe is how long BenchmarkDeploySteps measures the commit floor
// before and after its timed loop.
const floorProbe = 300 * time.Millisecond

// BenchmarkProcessVMsPass1000 times ONE process_vms pass over 1,000
// deploying VMs spread over the pipeline (3 nodes, 50 ms per API call). The
// fleet is built once, at zero latency and outside the timer (that takes
// about a minute); each configuration then times the next pass over the
// same fleet, one step further along (and so on for b.N > 1):
//
//   - latency=0: the same pass without latency, pvectl's own work (the
//     reference for the others);
//   - concurrency=8: the defaults (max_requests_per_node 4);
//   - concurrency=8/max_requests_per_node=8: the per-node limit does not
//     bind, only concurrency does;
//   - concurrency=1.
//
// x-ideal is the pass time over requests × latency / concurrency, measured
// in the same pass: the measure, which assumes every worker always
// has a request in flight. x-ideal-nodes is the pass time over the larger
// of that and each node's requests × latency / max_requests_per_node (a
// request not for a node counts against the endpoint, as the adapter
// counts it): with half the requests going to the template's node, the
// per-node limit is the tighter bound at the defaults.
func BenchmarkProcessVMsPass1000(b *testing.B) {
	r := newBenchRig(b)
	r.fleet(b, 1000)
	const latency = 50 * time.Millisecond
	for _, c := range []struct {
		name        string
		concurrency int
		limit       int
		latency     time.Duration
	}{
		{"latency=0", config.DefaultConcurrency, config.DefaultMaxRequestsPerNode, 0},
		{"concurrency=8", config.DefaultConcurrency, config.DefaultMaxRequestsPerNode, latency},
		{"concurrency=8/max_requests_per_node=8", config.DefaultConcurrency, config.DefaultConcurrency, latency},
		{"concurrency=1", 1, config.DefaultMaxRequestsPerNode, latency},
	} {
		b.Run(c.name, func(b *testing.B) {
			r.sim.SetLatency(c.latency, 0)
			r.eng.Config.Tasks.ProcessVMs.Concurrency = c.concurrency
			r.eng.Config.Proxmox.MaxRequestsPerNode = c.limit
			r.resetEnv() // a new adapter, with this per-node limit
			var total, ideal, idealNodes time.Duration
			var worst float64 // the slowest pass's x-ideal
			var requests, processed, advanced int
			for range b.N {
				b.StopTimer()
				from := len(r.sim.Requests())
				s, took, req := r.timedPass(b)
				total += took
				requests += req
				processed += s.Processed
				advanced += s.Advanced
				perNode := map[string]int{}
				for _, q := range r.sim.Requests()[from:] {
					node := ""
					if rest, ok := strings.CutPrefix(q.Path, "/nodes/"); ok {
						node, _, _ = strings.Cut(rest, "/")
					}
					perNode[node]++
				}
				// The ideal pass: every request back to back on
				// concurrency connections at the simulated latency.
				pass := time.Duration(req) * c.latency / time.Duration(c.concurrency)
				ideal += pass
				for _, n := range perNode {
					pass = max(pass, time.Duration(n)*c.latency/time.Duration(c.limit))
				}
				idealNodes += pass
				if c.latency > 0 {
					worst = max(worst, float64(took)/float64(time.Duration(req)*c.latency/time.Duration(c.concurrency)))
				}
				r.sim.Advance(time.Minute)
				r.clock.advance(time.Minute)
			}
			n := float64(b.N)
			if c.latency > 0 {
				b.ReportMetric(float64(total)/float64(ideal), "x-ideal")
				b.ReportMetric(float64(total)/float64(idealNodes), "x-ideal-nodes")
				b.ReportMetric(worst, "x-ideal-max")
			}
			b.ReportMetric(float64(total.Milliseconds())/n, "ms/pass")
			b.ReportMetric(float64(requests)/n, "requests/pass")
			b.ReportMetric(float64(processed)/n, "vms/pass")
			b.ReportMetric(float64(advanced)/n, "advanced/pass")
		})
	}
}

// timedPass runs one process_vms pass with the benchmark's timer running
// only around it (stopped on entry and on return) and returns its summary,
// wall time and PVE requests. A step error fails the benchmark.
func (r *benchRig) timedPass(b *testing.B) (engine.Summary, time.Duration, int) {
	b.Helper()
	b.Logf("fleet before the pass: %s", r.distribution(b))
	before := len(r.sim.Requests())
	b.StartTimer()
	start := time.Now()
	s, err := r.eng.ProcessVMs(context.Background())
	took := time.Since(start)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if s.Errors > 0 {
		b.Fatalf("pass had %d step errors: %+v\n%s\nnot ready (first 20):\n%s", s.Errors, s, r.errs, r.notReady(b))
	}
	return s, took, len(r.sim.Requests()) - before
}

// fleet builds n deploying VMs spread over the deploy pipeline: a new batch
// of orders arrives before each zero-latency pass, so earlier batches are
// further along. Heavy tasks are not capped while building.
func (r *benchRig) fleet(b *testing.B, n int) {
	b.Helper()
	opts := &r.eng.Config.Tasks.ProcessVMs
	heavy := opts.HeavyPerNode
	opts.HeavyPerNode = n
	const batches = 12
	for i := range batches {
		r.create(b, n/batches+min(1, max(0, n%batches-i)))
		r.pass(b)
	}
	opts.HeavyPerNode = heavy
	b.Logf("fleet: %s", r.distribution(b))
}

// distribution is "N deploying: state=count ...".
func (r *benchRig) distribution(b *testing.B) string {
	b.Helper()
	vms, err := r.eng.Store.VMList(context.Background(), store.VMFilter{})
	if err != nil {
		b.Fatal(err)
	}
	by := map[string]int{}
	deploying := 0
	for _, v := range vms {
		by[v.Status]++
		if v.Status != string(states.Ready) {
			deploying++
		}
	}
	keys := make([]string, 0, len(by))
	for k := range by {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, by[k]))
	}
	return fmt.Sprintf("%d deploying: %s", deploying, strings.Join(parts, " "))
}

// reqTally counts API requests and completed steps of a pipeline.
type reqTally struct {
	requests, steps int
	endpoints       map[string]int
}

func (t *reqTally) add(reqs []pvesim.Request) {
	if t.endpoints == nil {
		t.endpoints = map[string]int{}
	}
	for _, q := range reqs {
		t.requests++
		ep := q.Endpoint
		if ep == "" {
			ep = q.Method + " " + q.Path
		}
		t.endpoints[ep]++
	}
}

// perStep is requests per completed step.
func (t *reqTally) perStep() float64 {
	if t.steps == 0 {
		return 0
	}
	return float64(t.requests) / float64(t.steps)
}

// breakdown lists the endpoints by count, most first.
func (t *reqTally) breakdown() string {
	keys := make([]string, 0, len(t.endpoints))
	for k := range t.endpoints {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if t.endpoints[keys[i]] != t.endpoints[keys[j]] {
			return t.endpoints[keys[i]] > t.endpoints[keys[j]]
		}
		return keys[i] < keys[j]
	})
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%5d  %s", t.endpoints[k], k))
	}
	return strings.Join(parts, "\n")
}

// untilIdle runs passes until none has a VM to process, adding each pass's
// requests and completed steps to t.
func (r *benchRig) untilIdle(b testing.TB, t *reqTally) {
	b.Helper()
	for n := 0; ; n++ {
		before := len(r.sim.Requests())
		s := r.pass(b)
		t.add(r.sim.Requests()[before:])
		t.steps += s.Advanced
		if s.Processed == 0 {
			return
		}
		if n > 200 {
			b.Fatalf("batch did not converge:\n%s", r.notReady(b))
		}
	}
}

// BenchmarkRequestsPerStep counts the PVE API requests per completed step
// of each pipeline a batch of 30 VMs goes through at zero latency (tasks
// finish between passes): deploy from creation to ready, change-package
// to the next product and back at ready, terminate until the records are
// gone. Only the passes' requests count (not the stop a terminate request
// sends at once). The per-endpoint counts are logged (-v).
func BenchmarkRequestsPerStep(b *testing.B) {
	const batch = 30
	r := newBenchRig(b)
	var deploy, change, terminate reqTally
	b.ResetTimer()
	for b.Loop() {
		first := r.next
		r.create(b, batch)
		r.untilIdle(b, &deploy)
		for i := first; i < r.next; i++ {
			next := benchProducts[(i+1)%len(benchProducts)]
			if _, err := r.eng.ChangePackage(context.Background(), fmt.Sprintf("svc-%05d", i), next); err != nil {
				b.Fatal(err)
			}
		}
		r.untilIdle(b, &change)
		for i := first; i < r.next; i++ {
			if _, err := r.eng.Terminate(context.Background(), fmt.Sprintf("svc-%05d", i)); err != nil {
				b.Fatal(err)
			}
		}
		r.untilIdle(b, &terminate)
	}
	b.StopTimer()
	for _, p := range []struct {
		name string
		t    *reqTally
	}{{"deploy", &deploy}, {"change-package", &change}, {"terminate", &terminate}} {
		b.ReportMetric(p.t.perStep(), "requests/step-"+p.name)
		b.Logf("%s: %d requests, %d completed steps, %.2f requests/step\n%s", p.name, p.t.requests, p.t.steps, p.t.perStep(), p.t.breakdown())
	}
}
