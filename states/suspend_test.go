package states_test

import (
	"testing"
	"time"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/states"
	"github.com/stretchr/testify/require"
)

// Suspend keeps what onboot was and unsuspend restores it; a suspended VM
// started behind pvectl's back is stopped again by the next pass.
func TestSuspendUnsuspendRestoresOnboot(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	vm := r.deployed("s1", "small")
	ref := proxmox.VMRef{Node: vm.Node, VMID: vm.VMID}
	require.NoError(t, r.pve.SetConfigSync(r.ctx, ref, proxmox.ConfigChange{Set: map[string]string{"onboot": "1"}}))

	_, err := r.e.Suspend(r.ctx, "s1", "unpaid")
	require.NoError(t, err)
	r.until(vm.ID, states.Suspended, 10)
	st, _ := r.sim.VM(vm.VMID)
	require.Equal(t, "stopped", st.Status)
	require.Equal(t, "0", st.Config["onboot"])
	require.Equal(t, "pvectl;suspended", st.Config["tags"])

	require.NoError(t, r.sim.StartOutOfBand(vm.VMID))
	out := r.tick(20 * time.Second)
	require.Contains(t, out, "Keep suspended  suspended  suspended VM found running; stopped again")
	r.tick(20 * time.Second)
	st, _ = r.sim.VM(vm.VMID)
	require.Equal(t, "stopped", st.Status)
	require.Empty(t, r.tick(20*time.Second), "a stopped suspended VM: an idle pass prints nothing")

	_, err = r.e.Unsuspend(r.ctx, "s1")
	require.NoError(t, err)
	r.until(vm.ID, states.Ready, 10)
	st, _ = r.sim.VM(vm.VMID)
	require.Equal(t, "running", st.Status)
	require.Equal(t, "1", st.Config["onboot"])
	require.Equal(t, "pvectl", st.Config["tags"])
	require.Empty(t, r.get(vm.ID).SuspendSaved)
}
