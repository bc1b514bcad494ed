package states_test

import (
	"testing"
	"time"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
	"github.com/pvectl/pvectl/states"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Regression (third review): updateIPs marks the removed address `releasing` and then
// refreshes the IP set. If that refresh fails (retryable), the VM stays at
// change_package with the address still in ipfilter-net0 (and in the guest).
// The background DNS retry of an already DNS-dirty VM then deletes the
// address's records, finds DNS clean and calls IPReleasePending: the address
// goes back to the pool while the VM's IP set still allows it. The doc of
// updateIPs promises the opposite ("only after the IP set and DNS no longer
// use them").
func TestChangePackageDNSRetryDoesNotFreeAddressStillInIPSet(t *testing.T) {
	r := newRig(t, true)
	c1 := r.deployed("c1", "two-ips")
	before, err := r.st.IPsForVM(r.ctx, c1.ID)
	require.NoError(t, err)
	require.Len(t, before, 2)
	gone := before[1].Address

	// c1 is DNS-dirty from some earlier failure; its next retry is due in 30s.
	require.NoError(t, r.st.DNSSetDirty(r.ctx, c1.ID, 1, r.clk.Now().Add(30*time.Second), r.clk.Now()))
	r.request(c1, states.ChangePackage, "small")
	// Reading the IP sets fails once (node busy): updateIPs backs off after marking the address releasing.
	r.sim.FailNext(pvesim.FailNext{Endpoint: "GET /nodes/{node}/qemu/{vmid}/firewall/ipset", VMID: c1.VMID, Count: proxmox.ReadAttempts, Status: 595})
	r.tick(20 * time.Second)
	require.Equal(t, string(states.ChangePackage), r.get(c1.ID).Status)
	r.tick(20 * time.Second) // the DNS retry is due; the step is still backing off

	st, _ := r.sim.VM(c1.VMID)
	inSet := false
	for _, cidr := range st.IPSets[states.IPSetName] {
		if cidr == gone || cidr == gone+"/32" {
			inSet = true
		}
	}
	used, err := r.st.IPsInPool(r.ctx, "v4")
	require.NoError(t, err)
	require.True(t, inSet, "the IP set refresh has not run yet")
	assert.True(t, used[gone], "%s is still in c1's %s (and still configured in the guest) but was given back to the pool", gone, states.IPSetName)
}
