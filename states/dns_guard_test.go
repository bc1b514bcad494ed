package states_test

import (
	"context"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/pvectl/pvectl/config"
	"github.com/pvectl/pvectl/providers/dns"
	"github.com/pvectl/pvectl/providers/dns/dnstest"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

// guardVM is one VM with its own store, against a shared named.
type guardVM struct {
	srv   *dnstest.Server
	st    *store.Store
	env   *states.Env
	vm    store.VM
	u     *dns.Updater
	mu    sync.Mutex
	lines []string
}

// newGuardVM makes a VM named host with 192.0.2.<last> and 2001:db8::<last>, in state clone
// (its next step is the deploy's DNS step); allowApex lists the zones with allow_apex: true.
func newGuardVM(t *testing.T, srv *dnstest.Server, host, last string, allowApex ...string) *guardVM {
	t.Helper()
	ctx := context.Background()
	g := &guardVM{srv: srv}
	st, err := store.Create(ctx, filepath.Join(t.TempDir(), "pvectl.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	g.st = st
	vm, _, err := st.VMCreate(ctx, store.NewVM{ServiceID: "svc-" + last, Hostname: host, Product: "small", Status: "creation", Now: dnsT0})
	require.NoError(t, err)
	require.NoError(t, st.VMReserve(ctx, store.Reservation{ID: vm.ID, Status: vm.Status, Version: vm.Version, VMID: 1000,
		Node: "pve1", TargetNode: "pve1", Now: dnsT0, IPs: []store.IPAllocation{
			{Address: "192.0.2." + last, Family: 4, Pool: "v4"}, {Address: "2001:db8::" + last, Family: 6, Pool: "v6"}}}))
	require.NoError(t, st.VMSetStatus(ctx, vm.ID, string(states.Clone), dnsT0))
	g.vm, err = st.VMGet(ctx, vm.ID)
	require.NoError(t, err)
	cfg := &config.Config{DNS: config.DNS{TTL: 300}}
	for _, z := range allowApex {
		cfg.DNS.Zones = append(cfg.DNS.Zones, config.Zone{Name: z, AllowApex: true})
	}
	g.u = dns.NewUpdater(srv.DNSZones())
	g.u.Timeout = 2 * time.Second
	g.env = &states.Env{Store: st, Config: cfg, DNS: g.u, Zones: srv.DNSZones(),
		Now: func() time.Time { return dnsT0 }, Emit: func(l string) { g.mu.Lock(); g.lines = append(g.lines, l); g.mu.Unlock() }}
	return g
}

func (g *guardVM) recorded(t *testing.T) []string {
	t.Helper()
	rows, err := g.st.DNSRecords(context.Background(), g.vm.ID)
	require.NoError(t, err)
	var out []string
	for _, r := range rows {
		out = append(out, r.State+" "+r.Name+" "+r.Type+" "+r.Value)
	}
	return out
}

func lookup(t *testing.T, srv *dnstest.Server, name string, qtype uint16) []string {
	t.Helper()
	var out []string
	for _, rr := range srv.Lookup(t, name, qtype) {
		out = append(out, mdns.TypeToString[rr.Header().Rrtype]+" "+strings.TrimPrefix(rr.String(), rr.Header().String()))
	}
	slices.Sort(out)
	return out
}

// The deploy's DNS step checks the hostname before it publishes anything: a zone apex
// without allow_apex, or a name holding records that are not the VM's (here added after
// the create, before the step), holds the VM with nothing published; the VM's own records
// (recorded in the store, or left by a crash before they were recorded) and records an
// operator added next to them do not.
func TestDNSStepHostnameGuard(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	ctx := context.Background()
	tests := []struct {
		name, host, last string
		allowApex        []string
		before           func(t *testing.T, g *guardVM) // the world between create and the step
		held             string                         // "" = the step publishes; else in the error
		wantA            []string                       // what the server answers at host afterwards
	}{
		{name: "free name", host: "free.example.test", last: "10",
			wantA: []string{"A 192.0.2.10"}},
		{name: "foreign A added after create", host: "taken.example.test", last: "11",
			before: func(t *testing.T, g *guardVM) {
				srv.AddRR(t, dnstest.Forward, "taken.example.test. 300 IN A 198.51.100.7")
			},
			held:  "hostname taken.example.test already has DNS records that are not this VM's: taken.example.test A 198.51.100.7 (zone example.test); a VM's hostname must be a name that holds no records yet. Nothing was published: remove those records from the zone if they are stale and run `pvectl vm retry svc-11`, or terminate the VM and create it with another hostname",
			wantA: []string{"A 198.51.100.7"}},
		{name: "provider's name server", host: "ns1.example.test", last: "12",
			held: "ns1.example.test A 127.0.0.1 (zone example.test)", wantA: []string{"A 127.0.0.1"}},
		{name: "foreign TXT only", host: "txt.example.test", last: "13",
			before: func(t *testing.T, g *guardVM) {
				srv.AddRR(t, dnstest.Forward, `txt.example.test. 300 IN TXT "v=spf1 -all"`)
			},
			held: `txt.example.test TXT "v=spf1 -all" (zone example.test)`},
		{name: "own A left by a crash before it was recorded, and an operator's TXT", host: "crash.example.test", last: "14",
			before: func(t *testing.T, g *guardVM) {
				require.NoError(t, g.u.Publish(ctx, dns.Record{Zone: dnstest.Forward, Name: "crash.example.test", Type: "A", Value: "192.0.2.14"}))
				srv.AddRR(t, dnstest.Forward, `crash.example.test. 300 IN TXT "operator"`)
			},
			wantA: []string{"A 192.0.2.14"}},
		{name: "own AAAA recorded as failed (it timed out but was applied)", host: "late.example.test", last: "15",
			before: func(t *testing.T, g *guardVM) {
				require.NoError(t, g.u.Publish(ctx, dns.Record{Zone: dnstest.Forward, Name: "late.example.test", Type: "AAAA", Value: "2001:db8::15"}))
				require.NoError(t, g.st.DNSRecordSave(ctx, store.DNSRecord{VMID: g.vm.ID, Zone: dnstest.Forward, Name: "late.example.test",
					Type: "AAAA", Value: "2001:db8::15", TTL: 300, State: "failed", Error: "timeout"}, dnsT0))
			},
			wantA: []string{"A 192.0.2.15"}},
		{name: "reinstall: recorded as published, an operator's A next to it", host: "again.example.test", last: "16",
			before: func(t *testing.T, g *guardVM) {
				require.NoError(t, g.st.DNSRecordSave(ctx, store.DNSRecord{VMID: g.vm.ID, Zone: dnstest.Forward, Name: "again.example.test",
					Type: "A", Value: "192.0.2.16", TTL: 300, State: "published"}, dnsT0))
				srv.AddRR(t, dnstest.Forward, "again.example.test. 300 IN A 198.51.100.16")
			},
			wantA: []string{"A 192.0.2.16", "A 198.51.100.16"}},
		{name: "another address at the name is not the VM's", host: "other.example.test", last: "17",
			before: func(t *testing.T, g *guardVM) {
				srv.AddRR(t, dnstest.Forward, "other.example.test. 300 IN A 192.0.2.99")
			},
			held: "other.example.test A 192.0.2.99 (zone example.test)", wantA: []string{"A 192.0.2.99"}},
		{name: "zone apex", host: "example.test", last: "18",
			held: "hostname example.test is the apex of DNS zone example.test, where the zone's own records live (SOA, NS, the domain's web and mail); a VM's hostname must be a name inside the zone, like vm1.example.test, unless the zone has allow_apex: true. Nothing was published: set allow_apex: true on zone example.test if VMs may use its apex and run `pvectl vm retry svc-18`, or terminate the VM and create it with another hostname"},
		{name: "apex of a zone with allow_apex", host: "cust.example.test", last: "19", allowApex: []string{"cust.example.test"},
			wantA: []string{"A 192.0.2.19"}},
		{name: "apex allowed in another zone only", host: "cust.example.test", last: "20", allowApex: []string{"example.test"},
			held: "is the apex of DNS zone cust.example.test"},
		{name: "wildcard answers are no one's", host: "vm.wild.example.test", last: "21",
			before: func(t *testing.T, g *guardVM) {
				srv.AddRR(t, dnstest.Forward, "*.wild.example.test. 300 IN A 198.51.100.21")
			},
			wantA: []string{"A 192.0.2.21"}},
		{name: "delegated elsewhere", host: "vm.deleg.example.test", last: "22",
			before: func(t *testing.T, g *guardVM) {
				srv.AddRR(t, dnstest.Forward, "deleg.example.test. 300 IN NS ns.elsewhere.invalid.")
			},
			held: "deleg.example.test NS ns.elsewhere.invalid (zone example.test)"},
	}
	step, ok := states.Deploy().StepFrom(states.Clone)
	require.True(t, ok)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := newGuardVM(t, srv, tc.host, tc.last, tc.allowApex...)
			if tc.before != nil {
				tc.before(t, g)
			}
			rowsBefore := g.recorded(t)
			res := step.Run(ctx, g.env, g.vm)
			if tc.held != "" {
				require.Equal(t, states.Fail, res.Kind, res.Label())
				require.Contains(t, res.Err.Error(), tc.held)
				require.Equal(t, rowsBefore, g.recorded(t), "nothing recorded")
				require.Empty(t, lookup(t, srv, dns.ReverseName(netipMust("192.0.2."+tc.last)), mdns.TypePTR), "no PTR")
			} else {
				require.Equal(t, states.Done, res.Kind, res.Label())
				require.Contains(t, g.recorded(t), "published "+tc.host+" A 192.0.2."+tc.last)
				require.Len(t, lookup(t, srv, dns.ReverseName(netipMust("192.0.2."+tc.last)), mdns.TypePTR), 1)
			}
			if tc.wantA != nil {
				require.Equal(t, tc.wantA, lookup(t, srv, tc.host, mdns.TypeA))
			}
		})
	}
}

func netipMust(s string) netip.Addr { return netip.MustParseAddr(s) }

// A name that cannot be checked gets nothing: the deploy goes on with the VM DNS-dirty and
// its records recorded as failed. The background retry checks again: a record that
// appeared meanwhile keeps it from publishing (it never holds a VM); once that record is
// gone it publishes.
func TestDNSGuardUncheckedThenRetry(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	ctx := context.Background()
	g := newGuardVM(t, srv, "down.example.test", "30")
	step, ok := states.Deploy().StepFrom(states.Clone)
	require.True(t, ok)

	srv.Stop()
	res := step.Run(ctx, g.env, g.vm)
	require.Equal(t, states.PartlyDone, res.Kind, res.Label())
	require.Equal(t, "4 DNS record(s) failed; will retry in the background", res.Reason)
	require.Equal(t, []string{
		"· fwd ERR down.example.test (zone example.test): cannot check the name for DNS records that are not this VM's: unreachable (connection refused); nothing published",
		"· fwd ERR down.example.test A 192.0.2.30 (zone example.test): unreachable (connection refused)",
		"· fwd ERR down.example.test AAAA 2001:db8::30 (zone example.test): unreachable (connection refused)",
	}, g.lines[:3])
	require.Equal(t, []string{"failed 0.3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa PTR down.example.test",
		"failed 30.2.0.192.in-addr.arpa PTR down.example.test",
		"failed down.example.test A 192.0.2.30", "failed down.example.test AAAA 2001:db8::30"}, sortedCopy(g.recorded(t)))
	d, err := g.st.DNSRetryGet(ctx, g.vm.ID)
	require.NoError(t, err)
	require.True(t, d.VM.DNSDirty)

	srv.Restart()
	srv.AddRR(t, dnstest.Forward, "down.example.test. 300 IN A 198.51.100.30")
	g.lines = nil
	failed, tried, err := states.RetryDNS(ctx, g.env, g.vm)
	require.NoError(t, err)
	require.Equal(t, [2]int{4, 4}, [2]int{failed, tried})
	require.Contains(t, g.lines, "· fwd ERR hostname down.example.test already has DNS records that are not this VM's: down.example.test A 198.51.100.30 (zone example.test); a VM's hostname must be a name that holds no records yet; nothing published")
	require.Contains(t, g.lines, "· fwd ERR down.example.test A 192.0.2.30 (zone example.test): not published: down.example.test holds DNS records that are not this VM's")
	require.Equal(t, []string{"A 198.51.100.30"}, lookup(t, srv, "down.example.test", mdns.TypeA))
	require.Empty(t, lookup(t, srv, "30.2.0.192.in-addr.arpa", mdns.TypePTR))
	require.Contains(t, g.recorded(t), "failed down.example.test A 192.0.2.30")

	srv.Update(t, dnstest.Forward, func(m *mdns.Msg) {
		rr, err := mdns.NewRR("down.example.test. 0 IN A 198.51.100.30")
		require.NoError(t, err)
		m.Remove([]mdns.RR{rr})
	})
	failed, tried, err = states.RetryDNS(ctx, g.env, g.vm)
	require.NoError(t, err)
	require.Equal(t, [2]int{0, 4}, [2]int{failed, tried})
	require.Equal(t, []string{"A 192.0.2.30"}, lookup(t, srv, "down.example.test", mdns.TypeA))
	require.Contains(t, g.recorded(t), "published 30.2.0.192.in-addr.arpa PTR down.example.test")
}

// The DNS resync step checks the name before it deletes anything: a VM that never held its
// name (held at the deploy's DNS step, then reset to set_dns_records) is held again; a VM
// that holds it keeps it, whatever an operator added next to its records.
func TestResyncHostnameGuard(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	ctx := context.Background()
	step, ok := states.DNSRecords().StepFrom(states.SetDNSRecords)
	require.True(t, ok)

	g := newGuardVM(t, srv, "held.example.test", "40")
	srv.AddRR(t, dnstest.Forward, "held.example.test. 300 IN AAAA 2001:db8::999")
	require.NoError(t, g.st.DNSRecordSave(ctx, store.DNSRecord{VMID: g.vm.ID, Zone: dnstest.Reverse4, Name: "40.2.0.192.in-addr.arpa",
		Type: "PTR", Value: "held.example.test", TTL: 300, State: "failed", Error: "timeout"}, dnsT0))
	res := step.Run(ctx, g.env, g.vm)
	require.Equal(t, states.Fail, res.Kind, res.Label())
	require.Contains(t, res.Err.Error(), "hostname held.example.test already has DNS records that are not this VM's: held.example.test AAAA 2001:db8::999 (zone example.test)")
	require.Equal(t, []string{"failed 40.2.0.192.in-addr.arpa PTR held.example.test"}, g.recorded(t), "nothing deleted")
	require.Empty(t, g.lines)
	require.Equal(t, []string{"AAAA 2001:db8::999"}, lookup(t, srv, "held.example.test", mdns.TypeAAAA))

	mine := newGuardVM(t, srv, "mine.example.test", "41")
	deploy, ok := states.Deploy().StepFrom(states.Clone)
	require.True(t, ok)
	require.Equal(t, states.Done, deploy.Run(ctx, mine.env, mine.vm).Kind)
	srv.AddRR(t, dnstest.Forward, "mine.example.test. 300 IN A 198.51.100.41", `mine.example.test. 300 IN TXT "operator"`)
	res = step.Run(ctx, mine.env, mine.vm)
	require.Equal(t, states.Done, res.Kind, res.Label())
	require.Equal(t, []string{"A 192.0.2.41", "A 198.51.100.41"}, lookup(t, srv, "mine.example.test", mdns.TypeA))
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
