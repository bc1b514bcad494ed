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

// Regression (third review): changeAdditionalDisk remembered the detached volume only in
// step_data. When destroying it fails permanently, keepRunning rewinds the VM
// to cp_update_ip, and the status change clears step_data. After `vm retry`
// the step finds no additional disk (unusedN does not match
// serial=pvectl-additional) and no "detached" memory, logs skip, and the
// customer's old volume stays allocated as unused0.
func TestChangePackageRemovedDiskIsDestroyedAfterRewind(t *testing.T) {
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
	require.Equal(t, string(states.CPUpdateIP), cur.Status, "keepRunning rewinds")
	require.True(t, cur.Held)

	// The admin fixes the permission and retries.
	require.NoError(t, r.st.VMRelease(r.ctx, cur.ID, cur.Status, cur.Version, r.clk.Now()))
	r.until(vm.ID, states.Ready, 60)

	st, _ := r.sim.VM(vm.VMID)
	var leaked []string
	for k, v := range st.Config {
		if strings.HasPrefix(k, "unused") {
			leaked = append(leaked, k+"="+v)
		}
	}
	assert.Empty(t, leaked, "the removed additional disk must be destroyed after the rewind and vm retry")
}
