package states_test

import (
	"testing"
	"time"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/states"
	"github.com/stretchr/testify/require"
)

// The cloud-init step looks before acting: run again on a VM whose cloud-init
// keys already hold the product's values (an admin's reset-status, a tick
// killed after PVE took the keys), it writes nothing and says so; a key
// changed by hand in PVE is written back.
func TestCloudInitStepSkipsWhenConfigured(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	vm := r.deployed("c1", "small")

	cloudInitWrites := func() int {
		n := 0
		for _, q := range r.sim.Requests() {
			if q.Endpoint == "PUT /nodes/{node}/qemu/{vmid}/config" && q.Params["ipconfig0"] != "" {
				n++
			}
		}
		return n
	}
	require.Equal(t, 1, cloudInitWrites(), "the deploy writes cloud-init once")

	// Back to the step before cloud-init, as `reset-status` would put it.
	require.NoError(t, r.st.VMSetStatus(r.ctx, vm.ID, string(states.SetFirewall), r.clk.Now()))
	out := r.tick(20 * time.Second)
	require.Contains(t, out, "set_firewall → set_cloudinit  skip (no change)")
	require.Equal(t, 1, cloudInitWrites(), "nothing was written")

	// Someone edits the VM's cloud-init by hand: the step puts it back.
	require.NoError(t, r.st.VMSetStatus(r.ctx, vm.ID, string(states.SetFirewall), r.clk.Now()))
	m, ok := r.sim.VM(vm.VMID)
	require.True(t, ok)
	want := m.Config["ipconfig0"]
	require.NoError(t, r.pve.SetConfigSync(r.ctx, proxmox.VMRef{Node: vm.Node, VMID: vm.VMID},
		proxmox.ConfigChange{Set: map[string]string{"ipconfig0": "ip=dhcp"}}))
	require.Equal(t, 2, cloudInitWrites())
	out = r.tick(20 * time.Second)
	require.Contains(t, out, "set_firewall → set_cloudinit  success")
	require.Equal(t, 3, cloudInitWrites())
	m, _ = r.sim.VM(vm.VMID)
	require.Equal(t, want, m.Config["ipconfig0"])
}
