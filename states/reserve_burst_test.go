package states_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pvectl/pvectl/states"
	"github.com/stretchr/testify/require"
)

// A burst of orders: every VM of one pass reserves its VMID and addresses in
// that pass, although all the workers start from the same lowest free VMID
// and address. No error, no duplicate, no gap.
func TestReservationBurstInOnePass(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	require.Equal(t, 8, r.cfg.Tasks.ProcessVMs.Concurrency)
	var ids []int64
	for i := range 40 {
		product := "dhcp"
		if i%4 == 0 {
			product = "small" // 10 of them share the 11-address pool
		}
		ids = append(ids, r.create(fmt.Sprintf("b%02d", i), product).ID)
	}
	r.clk.T = r.clk.T.Add(20 * time.Second)
	s, err := r.e.ProcessVMs(r.ctx)
	require.NoError(t, err)
	require.Zero(t, s.Errors, r.out.String())
	var vmids []int
	addrs := map[string]bool{}
	for _, id := range ids {
		vm := r.get(id)
		require.Equal(t, string(states.SetIP), vm.Status, "%s: %s", vm.ServiceID, vm.LastError)
		require.Zero(t, vm.Attempts)
		vmids = append(vmids, vm.VMID)
		ips, err := r.st.IPsForVM(r.ctx, id)
		require.NoError(t, err)
		for _, ip := range ips {
			require.False(t, addrs[ip.Address], "address %s given twice", ip.Address)
			addrs[ip.Address] = true
		}
	}
	slices.Sort(vmids)
	for i, id := range vmids {
		require.Equal(t, 1000+i, id, "VMIDs are the lowest free ones, without gaps: %v", vmids)
	}
	require.Len(t, addrs, 10)
}
