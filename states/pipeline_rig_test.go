package states_test

// The rig: the real engine (step runner with its compare-and-set) on a real
// SQLite store, driving the real pipelines against an in-process pvesim, with
// a controllable fake DNS updater. The scenario tests of this package
// (deploy, change-package, terminate, DNS, admin actions) run on it.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pvectl/pvectl/config"
	"github.com/pvectl/pvectl/engine"
	"github.com/pvectl/pvectl/providers/dns"
	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

// sharedProducts is testdata/config/products.yaml: the products and IP pools
// every pipeline test runs with.
func sharedProducts(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "config", "products.yaml"))
	require.NoError(t, err)
	return string(b)
}

// fakeDNS records what is published; Delete fails while failDeletes is set.
type fakeDNS struct {
	mu          sync.Mutex
	live        map[string]dns.Record // key → record currently in DNS
	failDeletes bool
}

func (f *fakeDNS) Publish(_ context.Context, r dns.Record) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.live[r.Key()] = r
	return nil
}

func (f *fakeDNS) Delete(_ context.Context, r dns.Record) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failDeletes {
		return &dns.Error{Op: "update", Kind: dns.KindUnreachable, Rcode: -1}
	}
	delete(f.live, r.Key())
	return nil
}

func (f *fakeDNS) records() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.live {
		out = append(out, r.String())
	}
	return out
}

type rig struct {
	t   *testing.T
	ctx context.Context
	sim *pvesim.Sim
	pve proxmox.Client
	st  *store.Store
	cfg *config.Config
	e   *engine.Engine
	clk *engine.FixedClock
	env *states.Env
	dns *fakeDNS
	out *bytes.Buffer
}

// newRig starts pvesim, a store and an engine. withDNS configures two fake
// zones (forward example.test, reverse 2.0.192.in-addr.arpa).
func newRig(t *testing.T, withDNS bool) *rig {
	t.Helper()
	return newRigOn(t, withDNS, pvesim.DefaultCluster())
}

// newRigOn is newRig on a cluster of the test's own.
func newRigOn(t *testing.T, withDNS bool, cluster pvesim.Cluster) *rig {
	t.Helper()
	sim, url, tokenID, secret := pvesim.StartTest(t, cluster)
	// Every request a pipeline sends must pass the PVE schema: a rejected
	// one would otherwise only show as a retried step.
	t.Cleanup(func() { sim.RequireNoRejections(t) })
	yaml := fmt.Sprintf("proxmox:\n  url: %s\n  token_id: %q\n  token_secret: %q\n", strings.TrimSuffix(url, "/api2/json"), tokenID, secret) + sharedProducts(t)
	if withDNS {
		// The engine's DNS retry runs only when the config has zones.
		yaml += "dns:\n  zones:\n" +
			"    - {name: example.test, server: 127.0.0.1:1, key_name: k, secret: c2VjcmV0}\n" +
			"    - {name: 2.0.192.in-addr.arpa, server: 127.0.0.1:1, key_name: k, secret: c2VjcmV0}\n"
	}
	cfg, err := config.Parse("pvectl.yaml", []byte(yaml))
	require.NoError(t, err)
	pve, err := proxmox.New(proxmox.Options{URL: url, TokenID: tokenID, TokenSecret: secret})
	require.NoError(t, err)
	dir := t.TempDir()
	st, err := store.Create(context.Background(), filepath.Join(dir, "pvectl.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	clk := &engine.FixedClock{T: pvesim.DefaultStart}
	out := &bytes.Buffer{}
	live, err := engine.NewLive(out, "console", false, clk)
	require.NoError(t, err)
	r := &rig{t: t, ctx: context.Background(), sim: sim, pve: pve, st: st, cfg: cfg, clk: clk, out: out}
	r.env = &states.Env{Store: st, Config: cfg, PVE: pve, Now: func() time.Time { return clk.Now() }, Emit: func(string) {}}
	if withDNS {
		r.dns = &fakeDNS{live: map[string]dns.Record{}}
		r.env.DNS = r.dns
		r.env.Zones = []dns.Zone{{Name: "example.test", Server: "127.0.0.1:1"}, {Name: "2.0.192.in-addr.arpa", Server: "127.0.0.1:1"}}
	}
	r.e = &engine.Engine{Config: cfg, Store: st, StateDir: dir, Clock: clk, Live: live, Pipelines: states.Pipelines(),
		NewEnv: func(context.Context, *engine.Engine) (*states.Env, error) { return r.env, nil }}
	return r
}

// tick advances pvesim and the engine clock by d and runs one process_vms
// pass and one restore_backup pass, as a tick does.
func (r *rig) tick(d time.Duration) string {
	r.t.Helper()
	r.clk.T = r.clk.T.Add(d)
	r.sim.Advance(d)
	r.out.Reset()
	_, err := r.e.ProcessVMs(r.ctx)
	require.NoError(r.t, err)
	_, err = r.e.RestoreBackups(r.ctx)
	require.NoError(r.t, err)
	return r.out.String()
}

// create asks for a VM through the request API, as the CLI does.
func (r *rig) create(svc, product string) store.VM {
	r.t.Helper()
	res, err := r.e.CreateVM(r.ctx, engine.CreateVM{ServiceID: svc, Hostname: svc + ".example.test", Product: product})
	require.NoError(r.t, err)
	return res.VM
}

func (r *rig) get(id int64) store.VM {
	r.t.Helper()
	vm, err := r.st.VMGet(r.ctx, id)
	require.NoError(r.t, err)
	return vm
}

// until ticks (20s each) until the VM reaches status, at most n ticks.
func (r *rig) until(id int64, status states.State, n int) store.VM {
	r.t.Helper()
	var log strings.Builder
	for range n {
		log.WriteString(r.tick(20 * time.Second))
		if vm := r.get(id); vm.Status == string(status) {
			return vm
		}
	}
	vm := r.get(id)
	r.t.Fatalf("VM %s did not reach %s in %d ticks (status %s, held %v, error %q)\n%s", vm.ServiceID, status, n, vm.Status, vm.Held, vm.LastError, log.String())
	return vm
}

// run ticks (d each) until the VM reaches status, at most n ticks, and
// returns what the ticks printed; the caller asserts where it ended.
func (r *rig) run(id int64, status states.State, n int, d time.Duration) string {
	r.t.Helper()
	var log strings.Builder
	for range n {
		log.WriteString(r.tick(d))
		if r.get(id).Status == string(status) {
			break
		}
	}
	return log.String()
}

// deployed creates a VM and ticks until it is ready.
func (r *rig) deployed(svc, product string) store.VM {
	r.t.Helper()
	vm := r.create(svc, product)
	return r.until(vm.ID, states.Ready, 40)
}

// request queues a change-package (to change_package, product set) or a
// terminate through the request API, as the CLI does.
func (r *rig) request(vm store.VM, to states.State, product string) {
	r.t.Helper()
	var err error
	switch to {
	case states.ChangePackage:
		_, err = r.e.ChangePackage(r.ctx, vm.ServiceID, product)
	case states.Terminate:
		_, err = r.e.Terminate(r.ctx, vm.ServiceID)
	default:
		r.t.Fatalf("rig.request: no request leads to %s", to)
	}
	require.NoError(r.t, err)
}
