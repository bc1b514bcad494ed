package states_test

import (
	"testing"
	"time"

	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Regression (third review): an address a change-package took away stays `releasing`
// until DNS is clean, and only updateIPs and the background DNS retry free
// it. `pvectl dns sync VM` (ready → set_dns_records, resyncDNS) deletes the
// stale records and marks the VM DNS-clean without calling
// IPReleasePending; the DNS retry then never runs for the VM again and the
// address stays reserved forever (until another change-package or terminate).
func TestReleasingAddressFreedAfterDNSSync(t *testing.T) {
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
	assert.False(t, used[gone], "%s is no longer c1's and no DNS record uses it; it must be back in the pool", gone)
}
