package states_test

import (
	"testing"

	"github.com/pvectl/pvectl/states"
	"github.com/stretchr/testify/require"
)

// An admin renames a pool in the config (same range). Addresses recorded
// under the old name stay taken: a new VM gets a free one at once instead of
// colliding five times and retrying, and a change-package of the old VM
// still writes the pool's gateway and prefix into cloud-init.
func TestRenamedPoolKeepsItsAddressesAndGateway(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	old := r.deployed("g1", "small")
	before, err := r.st.IPsForVM(r.ctx, old.ID)
	require.NoError(t, err)
	require.Len(t, before, 1)
	require.Equal(t, "v4", before[0].Pool)

	r.cfg.IPPools[0].Name = "public-v4"

	fresh := r.deployed("g2", "small")
	ips, err := r.st.IPsForVM(r.ctx, fresh.ID)
	require.NoError(t, err)
	require.Len(t, ips, 1)
	require.NotEqual(t, before[0].Address, ips[0].Address)
	require.Equal(t, "public-v4", ips[0].Pool)
	require.Zero(t, r.get(fresh.ID).Attempts, "no collisions, no retries")

	r.request(old, states.ChangePackage, "big")
	r.until(old.ID, states.Ready, 60)
	st, ok := r.sim.VM(old.VMID)
	require.True(t, ok)
	require.Equal(t, "ip="+before[0].Address+"/24,gw=192.0.2.1", st.Config["ipconfig0"])
}
