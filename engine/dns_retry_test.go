package engine_test

import (
	"bytes"
	"context"
	"path/filepath"
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
