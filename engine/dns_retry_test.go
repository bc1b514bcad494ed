package engine_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pvectl/pvectl/config"
	"github.com/pvectl/pvectl/engine"
	"github.com/pvectl/pvectl/providers/dns"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

// fakeDNS keeps what is "on the server" and runs hook before the first Publish.
type fakeDNS struct {
	mu     sync.Mutex
	recs   map[string]dns.Record
	onPub  func()
	hooked bool
}

func (f *fakeDNS) Publish(_ context.Context, r dns.Record) error {
	f.mu.Lock()
	hook := f.onPub
	first := !f.hooked
	f.hooked = true
	f.mu.Unlock()
	if first && hook != nil {
		hook() // an admin command lands while the update is on the wire
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recs[r.Key()] = r
	return nil
}

func (f *fakeDNS) Delete(_ context.Context, r dns.Record) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.recs, r.Key())
	return nil
}

func (f *fakeDNS) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.recs)
}

// `pvectl reset-status VM remove` (store.VMSetRemoved) releases the VM's
// addresses and sets dns_dirty so that the DNS retry deletes its published
// records. A DNS retry of that VM already in flight finishes without clearing
// the flag the remove set: later ticks delete the record it published, and
// nothing is left on the server for an address that is free again.
func TestDNSRetryKeepsTheDirtyFlagARemoveSetMeanwhile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg, err := config.Parse("pvectl.yaml", []byte(minimalConfig(t)+`dns:
  zones:
    - name: example.test
      server: 127.0.0.1:53
      key_name: k
      secret: c2VjcmV0
`))
	require.NoError(t, err)
	dir := t.TempDir()
	st, err := store.Create(ctx, filepath.Join(dir, "pvectl.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	clk := &engine.FixedClock{T: t0}
	live, err := engine.NewLive(&bytes.Buffer{}, "console", false, clk)
	require.NoError(t, err)
	fake := &fakeDNS{recs: map[string]dns.Record{}}
	e := &engine.Engine{Config: cfg, Store: st, StateDir: dir, Clock: clk, Live: live, Pipelines: states.Registry{},
		NewEnv: func(_ context.Context, e *engine.Engine) (*states.Env, error) {
			return &states.Env{Store: e.Store, Config: e.Config, DNS: fake,
				Zones: []dns.Zone{{Name: "example.test", Server: "127.0.0.1:53", KeyName: "k", Secret: "c2VjcmV0"}},
				Now:   func() time.Time { return e.Clock.Now() }}, nil
		}}

	vm, _, err := st.VMCreate(ctx, store.NewVM{ServiceID: "a", Hostname: "a.example.test", Product: "small", Status: "creation", Now: t0})
	require.NoError(t, err)
	require.NoError(t, st.VMReserve(ctx, store.Reservation{ID: vm.ID, Status: vm.Status, Version: vm.Version, VMID: 1000,
		Node: "pve1", TargetNode: "pve1", IPs: []store.IPAllocation{{Address: "192.0.2.10", Family: 4, Pool: "v4"}}, Now: t0}))
	require.NoError(t, st.VMSetStatus(ctx, vm.ID, "ready", t0))
	require.NoError(t, st.VMSetDNSDirty(ctx, vm.ID, true, t0)) // its set_dns publish had failed

	fake.onPub = func() {
		cur, err := st.VMGet(ctx, vm.ID)
		require.NoError(t, err)
		require.NoError(t, st.VMSetRemoved(ctx, vm.ID, cur.Status, cur.Version, t0))
	}
	_, err = e.ProcessVMs(ctx)
	require.NoError(t, err)

	for i := 1; i <= 5; i++ { // later ticks, past any DNS backoff
		clk.T = t0.Add(time.Duration(i) * time.Hour)
		_, err = e.ProcessVMs(ctx)
		require.NoError(t, err)
	}
	got, err := st.VMGet(ctx, vm.ID)
	require.NoError(t, err)
	require.Equal(t, "remove", got.Status)
	recs, err := st.DNSRecords(ctx, vm.ID)
	require.NoError(t, err)
	require.Zero(t, fake.count(), "a removed VM's A record is deleted from the DNS server (dns_dirty=%v, recorded=%d)", got.DNSDirty, len(recs))
}

// zonedDNS answers per server: a server in down fails every operation as
// unreachable; the others keep what they are sent. It counts what reached
// each server.
type zonedDNS struct {
	mu     sync.Mutex
	server map[string]string // zone → server
	down   map[string]bool
	calls  map[string]int
	recs   map[string]dns.Record
}

func (f *zonedDNS) op(r dns.Record, del bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.server[r.Zone]
	f.calls[s]++
	if f.down[s] {
		return &dns.Error{Op: "update", Zone: r.Zone, Server: s, Kind: dns.KindUnreachable, Rcode: -1}
	}
	if del {
		delete(f.recs, r.Key())
	} else {
		f.recs[r.Key()] = r
	}
	return nil
}

func (f *zonedDNS) Publish(_ context.Context, r dns.Record) error { return f.op(r, false) }
func (f *zonedDNS) Delete(_ context.Context, r dns.Record) error  { return f.op(r, true) }

func (f *zonedDNS) set(down bool, server string) map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down[server] = down
	calls := f.calls
	f.calls = map[string]int{}
	return calls
}

// A DNS server that is down for several passes: each pass sends it
// BreakerAfter operations, then stops and says so in one line; no VM's DNS
// retry count grows and none backs off for it; the reverse zone on the other
// server gets every VM's PTR in the first pass. When the server is back the
// next pass publishes everything and the VMs are clean.
func TestDNSBreakerLeavesRetryCountsAlone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg, err := config.Parse("pvectl.yaml", []byte(minimalConfig(t)+`dns:
  zones:
    - {name: example.test, server: "127.0.0.1:5301", key_name: k, secret: c2VjcmV0}
    - {name: 2.0.192.in-addr.arpa, server: "127.0.0.1:5302", key_name: k, secret: c2VjcmV0}
`))
	require.NoError(t, err)
	dir := t.TempDir()
	st, err := store.Create(ctx, filepath.Join(dir, "pvectl.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	clk := &engine.FixedClock{T: t0}
	out := &bytes.Buffer{}
	live, err := engine.NewLive(out, "console", false, clk)
	require.NoError(t, err)
	fake := &zonedDNS{server: map[string]string{"example.test": "127.0.0.1:5301", "2.0.192.in-addr.arpa": "127.0.0.1:5302"},
		down: map[string]bool{}, calls: map[string]int{}, recs: map[string]dns.Record{}}
	zones := []dns.Zone{{Name: "example.test", Server: "127.0.0.1:5301", KeyName: "k", Secret: "c2VjcmV0"},
		{Name: "2.0.192.in-addr.arpa", Server: "127.0.0.1:5302", KeyName: "k", Secret: "c2VjcmV0"}}
	e := &engine.Engine{Config: cfg, Store: st, StateDir: dir, Clock: clk, Live: live, Pipelines: states.Registry{},
		NewEnv: func(_ context.Context, e *engine.Engine) (*states.Env, error) {
			return &states.Env{Store: e.Store, Config: e.Config, DNS: fake, Zones: zones,
				Now: func() time.Time { return e.Clock.Now() }}, nil
		}}
	const n = 6
	var ids []int64
	for i := range n {
		sid := string(rune('a' + i))
		vm, _, err := st.VMCreate(ctx, store.NewVM{ServiceID: sid, Hostname: sid + ".example.test", Product: "small", Status: "creation", Now: t0})
		require.NoError(t, err)
		require.NoError(t, st.VMReserve(ctx, store.Reservation{ID: vm.ID, Status: vm.Status, Version: vm.Version, VMID: 1000 + i,
			Node: "pve1", TargetNode: "pve1", IPs: []store.IPAllocation{{Address: "192.0.2." + string(rune('0'+i+1)), Family: 4, Pool: "v4"}}, Now: t0}))
		require.NoError(t, st.VMSetStatus(ctx, vm.ID, "ready", t0))
		require.NoError(t, st.DNSSetDirty(ctx, vm.ID, 2, time.Time{}, t0)) // two failed retries before the outage
		ids = append(ids, vm.ID)
	}

	fake.set(true, "127.0.0.1:5301")
	for pass := range 4 {
		out.Reset()
		clk.T = t0.Add(time.Duration(pass+1) * time.Minute)
		_, err := e.ProcessVMs(ctx)
		require.NoError(t, err)
		calls := fake.set(true, "127.0.0.1:5301")
		require.Equal(t, engine.BreakerAfter, calls["127.0.0.1:5301"], "pass %d: the down server gets %d operations", pass, engine.BreakerAfter)
		if pass == 0 {
			require.Equal(t, n, calls["127.0.0.1:5302"], "every VM's PTR reaches the healthy server")
		}
		require.Equal(t, 1, strings.Count(out.String(), "DNS server 127.0.0.1:5301"), out.String())
		require.NotContains(t, out.String(), "127.0.0.1:5302 (zone")
		require.Contains(t, out.String(), "stopped sending to it for this tick, 3 operation(s) not sent; DNS retry counts unchanged")
		for _, id := range ids {
			d, err := st.DNSRetryGet(ctx, id)
			require.NoError(t, err)
			require.Equal(t, 2, d.Attempts, "pass %d: VM %s", pass, d.VM.ServiceID)
			require.True(t, d.NextAt.IsZero() || !d.NextAt.After(clk.T.Add(time.Minute)), "pass %d: VM %s not backed off (next %s)", pass, d.VM.ServiceID, d.NextAt)
			require.True(t, d.VM.DNSDirty)
		}
	}

	fake.set(false, "127.0.0.1:5301")
	out.Reset()
	clk.T = clk.T.Add(time.Minute)
	_, err = e.ProcessVMs(ctx)
	require.NoError(t, err)
	require.NotContains(t, out.String(), "stopped sending")
	for _, id := range ids {
		d, err := st.DNSRetryGet(ctx, id)
		require.NoError(t, err)
		require.False(t, d.VM.DNSDirty, "VM %s in sync once the server is back", d.VM.ServiceID)
		require.Zero(t, d.Attempts)
	}
	require.Len(t, fake.recs, 2*n)
}
