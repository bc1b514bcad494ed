package states_test

// DNS scenarios: the background retry and the resync step against a real
// named, and on the rig the rule that an address goes back to the pool only
// once no DNS record points at it (change-package, dns sync, terminate).

import (
	"context"
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

var dnsT0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// dnsBundle is a VM with addresses, a store and a real named.
type dnsBundle struct {
	srv   *dnstest.Server
	st    *store.Store
	env   *states.Env
	vm    store.VM
	mu    sync.Mutex
	lines []string
}

func setupDNS(t *testing.T) *dnsBundle {
	t.Helper()
	ctx := context.Background()
	b := &dnsBundle{srv: dnstest.Start(t)}
	st, err := store.Create(ctx, filepath.Join(t.TempDir(), "pvectl.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	b.st = st
	vm, _, err := st.VMCreate(ctx, store.NewVM{ServiceID: "svc-1", Hostname: "web1.example.test", Product: "small", Status: "creation", Now: dnsT0})
	require.NoError(t, err)
	require.NoError(t, st.VMReserve(ctx, store.Reservation{ID: vm.ID, Status: vm.Status, Version: vm.Version, VMID: 1000,
		Node: "pve1", TargetNode: "pve1", Now: dnsT0, IPs: []store.IPAllocation{
			{Address: "192.0.2.10", Family: 4, Pool: "v4"}, {Address: "2001:db8::100", Family: 6, Pool: "v6"}}}))
	b.vm, err = st.VMGet(ctx, vm.ID)
	require.NoError(t, err)
	u := dns.NewUpdater(b.srv.DNSZones())
	u.Timeout = 2 * time.Second
	b.env = &states.Env{Store: st, Config: &config.Config{DNS: config.DNS{TTL: 300}}, DNS: u, Zones: b.srv.DNSZones(),
		Now: func() time.Time { return dnsT0 }, Emit: func(l string) { b.mu.Lock(); b.lines = append(b.lines, l); b.mu.Unlock() }}
	return b
}

func (b *dnsBundle) takeLines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.lines
	b.lines = nil
	return out
}

func (b *dnsBundle) answers(t *testing.T, name string, qtype uint16) []string {
	t.Helper()
	var out []string
	for _, rr := range b.srv.Lookup(t, name, qtype) {
		out = append(out, strings.TrimPrefix(rr.String(), rr.Header().String()))
	}
	slices.Sort(out)
	return out
}

func (b *dnsBundle) recorded(t *testing.T) []string {
	t.Helper()
	rows, err := b.st.DNSRecords(context.Background(), b.vm.ID)
	require.NoError(t, err)
	var out []string
	for _, r := range rows {
		out = append(out, r.State+" "+r.Name+" "+r.Type+" "+r.Value)
	}
	return out
}

// The background retry publishes what the plan says is missing, deletes what
// the plan no longer holds, and leaves records an operator added alone.
func TestRetryDNSFollowsThePlanAndLeavesOperatorRecords(t *testing.T) {
	t.Parallel()
	b := setupDNS(t)
	ctx := context.Background()

	failed, tried, err := states.RetryDNS(ctx, b.env, b.vm)
	require.NoError(t, err)
	require.Equal(t, [2]int{0, 4}, [2]int{failed, tried})
	require.Equal(t, []string{
		"· fwd OK web1.example.test A 192.0.2.10 (zone example.test)",
		"· fwd OK web1.example.test AAAA 2001:db8::100 (zone example.test)",
		"· rev OK 10.2.0.192.in-addr.arpa PTR web1.example.test (zone 2.0.192.in-addr.arpa)",
		"· rev OK 0.0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa PTR web1.example.test (zone 8.b.d.0.1.0.0.2.ip6.arpa)",
	}, b.takeLines())
	require.Equal(t, []string{"192.0.2.10"}, b.answers(t, "web1.example.test", mdns.TypeA))

	// Nothing left to do: nothing is sent.
	failed, tried, err = states.RetryDNS(ctx, b.env, b.vm)
	require.NoError(t, err)
	require.Equal(t, [2]int{0, 0}, [2]int{failed, tried})
	require.Empty(t, b.takeLines())

	// An operator's records at the same names; then the VM's IPv4 address changes.
	b.srv.AddRR(t, dnstest.Forward, "web1.example.test. 300 IN A 192.0.2.99", `web1.example.test. 300 IN TXT "operator"`)
	b.srv.AddRR(t, dnstest.Reverse4, "10.2.0.192.in-addr.arpa. 300 IN PTR alias.example.test.")
	require.NoError(t, b.st.VMSetStatus(ctx, b.vm.ID, string(states.CPUpdateIP), dnsT0))
	vm, err := b.st.VMGet(ctx, b.vm.ID)
	require.NoError(t, err)
	require.NoError(t, b.st.IPReplace(ctx, vm.ID, vm.Status, vm.Version, []store.IPAllocation{{Address: "192.0.2.11", Family: 4, Pool: "v4"}}, []string{"192.0.2.10"}, dnsT0))
	failed, tried, err = states.RetryDNS(ctx, b.env, vm)
	require.NoError(t, err)
	require.Equal(t, [2]int{0, 4}, [2]int{failed, tried})
	require.Equal(t, []string{
		"· fwd-del OK web1.example.test A 192.0.2.10 (zone example.test)",
		"· rev-del OK 10.2.0.192.in-addr.arpa PTR web1.example.test (zone 2.0.192.in-addr.arpa)",
		"· fwd OK web1.example.test A 192.0.2.11 (zone example.test)",
		"· rev OK 11.2.0.192.in-addr.arpa PTR web1.example.test (zone 2.0.192.in-addr.arpa)",
	}, b.takeLines(), "mid-change the guest may still use 192.0.2.10: it stays reserved")
	used, err := b.st.IPsInPool(ctx, "v4")
	require.NoError(t, err)
	require.True(t, used["192.0.2.10"])

	// Once the change is done (ready) and DNS is clean, the retry frees it.
	require.NoError(t, b.st.VMSetStatus(ctx, vm.ID, string(states.Ready), dnsT0))
	vm, err = b.st.VMGet(ctx, vm.ID)
	require.NoError(t, err)
	failed, tried, err = states.RetryDNS(ctx, b.env, vm)
	require.NoError(t, err)
	require.Equal(t, [2]int{0, 0}, [2]int{failed, tried})
	require.Equal(t, []string{"released 192.0.2.10 (back in the pool)"}, b.takeLines())
	used, err = b.st.IPsInPool(ctx, "v4")
	require.NoError(t, err)
	require.False(t, used["192.0.2.10"])
	require.Equal(t, []string{"192.0.2.11", "192.0.2.99"}, b.answers(t, "web1.example.test", mdns.TypeA))
	require.Equal(t, []string{"alias.example.test."}, b.answers(t, "10.2.0.192.in-addr.arpa", mdns.TypePTR))

	// DeleteDNS removes exactly what pvectl recorded.
	require.Equal(t, 0, states.DeleteDNS(ctx, b.env, b.vm))
	require.Len(t, b.takeLines(), 4)
	require.Empty(t, b.recorded(t))
	require.Equal(t, []string{"192.0.2.99"}, b.answers(t, "web1.example.test", mdns.TypeA))
	require.Equal(t, []string{`"operator"`}, b.answers(t, "web1.example.test", mdns.TypeTXT))
	require.Empty(t, b.answers(t, "11.2.0.192.in-addr.arpa", mdns.TypePTR))
	require.Empty(t, b.answers(t, "web1.example.test", mdns.TypeAAAA))
}

// With the DNS server down every record is recorded as failed; once it is
// back the next retry publishes them.
func TestRetryDNSServerDownAndBack(t *testing.T) {
	t.Parallel()
	b := setupDNS(t)
	ctx := context.Background()
	b.srv.Stop()
	failed, tried, err := states.RetryDNS(ctx, b.env, b.vm)
	require.NoError(t, err)
	require.Equal(t, [2]int{4, 4}, [2]int{failed, tried})
	require.Contains(t, b.takeLines(), "· fwd ERR web1.example.test A 192.0.2.10 (zone example.test): unreachable (connection refused)")
	require.Contains(t, b.recorded(t), "failed web1.example.test A 192.0.2.10")

	b.srv.Restart()
	failed, tried, err = states.RetryDNS(ctx, b.env, b.vm)
	require.NoError(t, err)
	require.Equal(t, [2]int{0, 4}, [2]int{failed, tried})
	require.Contains(t, b.recorded(t), "published web1.example.test A 192.0.2.10")
	require.Equal(t, []string{"192.0.2.10"}, b.answers(t, "web1.example.test", mdns.TypeA))
}

// The resync step (`pvectl dns sync`) makes DNS match the plan.
func TestResyncStep(t *testing.T) {
	t.Parallel()
	b := setupDNS(t)
	ctx := context.Background()
	step, ok := states.DNSRecords().StepFrom(states.SetDNSRecords)
	require.True(t, ok)
	require.Equal(t, states.Ready, step.To)

	// Server down: the step still completes (partly done), the VM is DNS-dirty, due at once.
	b.srv.Stop()
	res := step.Run(ctx, b.env, b.vm)
	require.Equal(t, states.PartlyDone, res.Kind, res.Label())
	require.Contains(t, res.Reason, "4 DNS record(s) not in place")
	d, err := b.st.DNSRetryGet(ctx, b.vm.ID)
	require.NoError(t, err)
	require.True(t, d.VM.DNSDirty)
	require.True(t, d.NextAt.IsZero())

	// Server back: delete (of records recorded as failed) and publish; clean.
	b.srv.Restart()
	b.takeLines()
	res = step.Run(ctx, b.env, b.vm)
	require.Equal(t, states.Done, res.Kind, res.Label())
	lines := b.takeLines()
	require.Equal(t, "· fwd-del OK web1.example.test A 192.0.2.10 (zone example.test)", lines[0])
	require.Contains(t, lines, "· fwd OK web1.example.test A 192.0.2.10 (zone example.test)")
	d, err = b.st.DNSRetryGet(ctx, b.vm.ID)
	require.NoError(t, err)
	require.False(t, d.VM.DNSDirty)
	require.Equal(t, []string{"192.0.2.10"}, b.answers(t, "web1.example.test", mdns.TypeA))

	// No zones configured: nothing to do.
	noDNS := *b.env
	noDNS.DNS, noDNS.Zones = nil, nil
	res = step.Run(ctx, &noDNS, b.vm)
	require.Equal(t, states.Skipped, res.Kind)
	// DeleteDNS without an updater cannot delete: every record is an ERR line and stays recorded.
	require.Equal(t, 4, states.DeleteDNS(ctx, &noDNS, b.vm))
	require.Contains(t, b.takeLines(), "· fwd-del ERR web1.example.test A 192.0.2.10 (zone example.test): config: no DNS zones configured")
	require.Len(t, b.recorded(t), 4)
}

// One zone failing does not stop the others: with a wrong TSIG secret for the
// IPv4 reverse zone only, the set_dns step publishes the forward records and
// the IPv6 PTR, reports the IPv4 PTR as BADSIG, completes (the pipeline goes
// on), and leaves the VM DNS-dirty with just that record to retry.
func TestSetDNSOneZoneFailsOthersPublished(t *testing.T) {
	t.Parallel()
	b := setupDNS(t)
	ctx := context.Background()
	zones := b.srv.DNSZones()
	bad := -1
	for i, z := range zones {
		if strings.HasSuffix(strings.TrimSuffix(z.Name, "."), "in-addr.arpa") {
			bad = i
			zones[i].Secret = "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZyE="
		}
	}
	require.GreaterOrEqual(t, bad, 0, "the test server has an IPv4 reverse zone")
	u := dns.NewUpdater(zones)
	u.Timeout = 2 * time.Second
	b.env.DNS, b.env.Zones = u, zones

	step, ok := states.Deploy().StepFrom(states.Clone)
	require.True(t, ok)
	require.Equal(t, states.SetDNS, step.To)
	res := step.Run(ctx, b.env, b.vm)
	require.Equal(t, states.PartlyDone, res.Kind, "the step completes: %s", res.Label())
	require.Contains(t, res.Reason, "1 DNS record(s) failed; will retry in the background")

	lines := b.takeLines()
	require.Contains(t, lines, "· fwd OK web1.example.test A 192.0.2.10 (zone example.test)")
	require.Contains(t, lines, "· fwd OK web1.example.test AAAA 2001:db8::100 (zone example.test)")
	var rev4 string
	for _, l := range lines {
		if strings.HasPrefix(l, "· rev ERR 10.2.0.192.in-addr.arpa PTR web1.example.test") {
			rev4 = l
		}
	}
	require.Contains(t, rev4, "BADSIG", lines)
	require.Equal(t, []string{"192.0.2.10"}, b.answers(t, "web1.example.test", mdns.TypeA))
	require.Equal(t, []string{"2001:db8::100"}, b.answers(t, "web1.example.test", mdns.TypeAAAA))
	require.Empty(t, b.answers(t, "10.2.0.192.in-addr.arpa", mdns.TypePTR))

	rec := b.recorded(t)
	require.Contains(t, rec, "failed 10.2.0.192.in-addr.arpa PTR web1.example.test")
	require.Contains(t, rec, "published web1.example.test A 192.0.2.10")
	vm, err := b.st.VMGet(ctx, b.vm.ID)
	require.NoError(t, err)
	require.True(t, vm.DNSDirty)
}

// A change-package that takes an address away deletes its records first: with
// the DNS server refusing deletes, the address stays `releasing` and the VM
// DNS-dirty; the background retry deletes the A and PTR records once DNS is
// back and only then gives the address back. The next VM that gets it
// finds no stale PTR beside its own.
func TestChangePackageReleasesIPOnlyAfterDNSDelete(t *testing.T) {
	t.Parallel()
	r := newRig(t, true)
	c1 := r.deployed("c1", "two-ips")

	r.dns.failDeletes = true
	r.request(c1, states.ChangePackage, "small")
	r.tick(20 * time.Second) // change_package → cp_update_ip
	r.dns.failDeletes = false
	r.until(c1.ID, states.Ready, 40)
	for range 60 {
		r.tick(time.Minute)
	}

	// A new VM gets the released address.
	c2 := r.deployed("c2", "small")
	ips, err := r.st.IPsForVM(r.ctx, c2.ID)
	require.NoError(t, err)

	var stale []string
	for _, rec := range r.dns.records() {
		if strings.Contains(rec, "192.0.2.11") && !strings.Contains(rec, "c2.") || strings.HasPrefix(rec, "11.2.0.192.in-addr.arpa PTR c1.") {
			stale = append(stale, rec)
		}
	}
	require.Empty(t, stale, "records for the address c1 gave up are gone (c2 got %v; all DNS records: %v)", ips, r.dns.records())
}

// `pvectl dns sync` of a VM that still holds a `releasing` address (its
// records could not be deleted during a change-package) deletes the stale
// records and gives the address back to the pool, as the background retry
// would.
func TestReleasingAddressFreedAfterDNSSync(t *testing.T) {
	t.Parallel()
	r := newRig(t, true)
	c1 := r.deployed("c1", "two-ips")
	before, err := r.st.IPsForVM(r.ctx, c1.ID)
	require.NoError(t, err)
	gone := before[1].Address

	r.dns.failDeletes = true
	r.request(c1, states.ChangePackage, "small")
	r.tick(20 * time.Second) // change_package → cp_update_ip, address kept releasing, VM DNS-dirty
	require.True(t, r.get(c1.ID).DNSDirty)
	r.dns.failDeletes = false
	// Make the background retry back off far enough that the VM reaches ready first.
	require.NoError(t, r.st.DNSSetDirty(r.ctx, c1.ID, 5, r.clk.Now().Add(time.Hour), r.clk.Now()))
	vm := r.until(c1.ID, states.Ready, 40)

	// The admin sees the dirty VM and queues a resync, as `pvectl dns sync` does.
	require.NoError(t, r.st.VMApplyOutcome(r.ctx, store.Outcome{ID: vm.ID, FromStatus: vm.Status, FromVersion: vm.Version,
		ToStatus: string(states.SetDNSRecords), ClearPending: true, Now: r.clk.Now()}))
	r.until(c1.ID, states.Ready, 5)
	require.False(t, r.get(c1.ID).DNSDirty, "the resync cleaned DNS")
	for range 90 {
		r.tick(time.Minute)
	}
	used, err := r.st.IPsInPool(r.ctx, "v4")
	require.NoError(t, err)
	require.False(t, used[gone], "%s is no longer c1's and no DNS record uses it; it is back in the pool", gone)
}

// DNS deletes that fail during a terminate are retried: the VM is left
// DNS-dirty with its records kept, and once the DNS server is reachable
// again the background retry deletes them, also after the VM reached remove.
func TestTerminateDNSFailureIsEventuallyCleaned(t *testing.T) {
	t.Parallel()
	r := newRig(t, true)
	vm := r.deployed("d1", "small")
	require.NotEmpty(t, r.dns.records(), "deploy published records")

	// The DNS primary is unreachable while the VM is terminated.
	r.dns.failDeletes = true
	r.request(vm, states.Terminate, "")
	r.until(vm.ID, states.Remove, 20)

	// The DNS primary comes back; give the background retry plenty of time.
	r.dns.failDeletes = false
	for range 120 {
		r.tick(time.Minute)
	}
	rows, err := r.st.DNSRecords(r.ctx, vm.ID)
	require.NoError(t, err)
	require.Empty(t, r.dns.records(), "records of a terminated VM are deleted once DNS is reachable again (%d store rows left)", len(rows))
}

// A terminate whose DNS deletes fail keeps the VM's addresses reserved while
// its A and PTR records still point at them: the next VM gets another
// address instead of publishing its PTR next to the old one.
func TestTerminateKeepsAddressesUntilDNSDeleted(t *testing.T) {
	t.Parallel()
	r := newRig(t, true)
	c1 := r.deployed("t1", "small")
	ips, err := r.st.IPsForVM(r.ctx, c1.ID)
	require.NoError(t, err)
	addr := ips[0].Address

	r.dns.failDeletes = true // the DNS server is unreachable for deletes
	r.request(c1, states.Terminate, "")
	r.until(c1.ID, states.Remove, 40)

	c2 := r.deployed("t2", "small")
	ips2, err := r.st.IPsForVM(r.ctx, c2.ID)
	require.NoError(t, err)

	var stale []string
	for _, rec := range r.dns.records() {
		if strings.Contains(rec, "t1.example.test") {
			stale = append(stale, rec)
		}
	}
	require.NotEmpty(t, stale, "t1's records are still in DNS")
	require.NotEqual(t, addr, ips2[0].Address, "%s is not given to t2 while t1's records still point at it: %v", addr, stale)
}
