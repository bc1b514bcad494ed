package states_test

import (
	"testing"
	"time"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/states"
	"github.com/stretchr/testify/require"
)

// A VM the customer had shut down before a change-package: the stop step
// sends nothing and says so, and the change still ends with the VM running
// (the product is applied at that boot).
func TestChangePackageOfStoppedVM(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	vm := r.deployed("s1", "small")
	ref := proxmox.VMRef{Node: vm.Node, VMID: vm.VMID}
	task, err := r.pve.Stop(r.ctx, ref, proxmox.StopOptions{})
	require.NoError(t, err)
	r.sim.Advance(time.Minute)
	st, err := r.pve.TaskStatus(r.ctx, task)
	require.NoError(t, err)
	require.NoError(t, st.Err())

	before := len(r.sim.Requests())
	r.request(vm, states.ChangePackage, "big")
	out := r.run(vm.ID, states.Ready, 30, 20*time.Second)
	require.Equal(t, string(states.Ready), r.get(vm.ID).Status, out)
	require.Contains(t, out, "cp_update_ip → cp_stop  skip (VM already stopped)")
	for _, q := range r.sim.Requests()[before:] {
		require.NotContains(t, q.Endpoint, "/status/shutdown", "no shutdown sent to a stopped VM")
		require.NotContains(t, q.Endpoint, "/status/stop", "no stop sent to a stopped VM")
	}
	m, _ := r.sim.VM(vm.VMID)
	require.Equal(t, "running", m.Status)
	require.Equal(t, "4096", m.Config["memory"])
}
