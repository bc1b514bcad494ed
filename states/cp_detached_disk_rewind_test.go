package states_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
	"github.com/pvectl/pvectl/states"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Regression (third review): changeAdditionalDisk remembered the detached
// volume only in step_data, which a status change clears. When destroying it
// failed for good and the VM was rewound, `vm retry` found no additional disk
// and no memory of the detach, logged skip, and the customer's old volume
// stayed allocated as unused0. The volume is now kept in detached_volume, and
// the VM is held at the failed step (started again meanwhile); the retry
// stops it and destroys the volume.
func TestChangePackageRemovedDiskIsDestroyedAfterRetry(t *testing.T) {
	r := newRig(t, false)
	vm := r.deployed("a2", "big")
	r.request(vm, states.ChangePackage, "small")

	injected := false
	for range 60 {
		r.tick(20 * time.Second)
		cur := r.get(vm.ID)
		if cur.Status == string(states.CPSystemDiskBandwidth) && cur.DetachedVolume != "" {
			// The destroy of the detached volume is refused for good once.
			r.sim.FailNext(pvesim.FailNext{Endpoint: "POST /nodes/{node}/qemu/{vmid}/config", Count: 1, Status: 403,
				Message: "Permission check failed (/vms/1000, VM.Config.Disk)"})
			injected = true
			break
		}
	}
	require.True(t, injected, "never saw the detach")
	r.tick(20 * time.Second)
	cur := r.get(vm.ID)
	require.Equal(t, string(states.CPSystemDiskBandwidth), cur.Status, "held at the failed step")
	require.True(t, cur.Held)
	r.tick(20 * time.Second) // the start task finishes; the held VM is not touched
	require.Equal(t, cur.Version, r.get(vm.ID).Version)
	st, _ := r.sim.VM(vm.VMID)
	require.Equal(t, "running", st.Status, "started again while it waits for an admin")

	// The admin fixes the permission and retries.
	require.NoError(t, r.st.VMRelease(r.ctx, cur.ID, cur.Status, cur.Version, r.clk.Now()))
	r.until(vm.ID, states.Ready, 60)

	st, _ = r.sim.VM(vm.VMID)
	var leaked []string
	for k, v := range st.Config {
		if strings.HasPrefix(k, "unused") {
			leaked = append(leaked, k+"="+v)
		}
	}
	assert.Empty(t, leaked, "the removed additional disk must be destroyed after the rewind and vm retry")
}
