package states_test

import (
	"strings"
	"testing"

	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
	"github.com/pvectl/pvectl/states"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Regression (found in review): changeAdditionalDisk removes a disk in two calls. First a
// PUT detach, which moves the volume to unusedN. Then a POST that destroys
// unusedN. findAdditionalDisk only matches "serial=pvectl-additional", and
// an unusedN value is just the volid. So if the second call fails (a lock
// timeout here, or a failed task, or a crash between the two calls), the
// retry finds "no additional disk" and logs skip. The customer's old disk
// stays allocated as unused0 until the VM is terminated.
func TestChangePackageRemovedDiskIsDestroyed(t *testing.T) {
	r := newRig(t, false)
	vm := r.create("a1", "big")
	vm = r.until(vm.ID, states.Ready, 40)
	st, _ := r.sim.VM(vm.VMID)
	require.Contains(t, st.Config["scsi1"], "serial=pvectl-additional")
	extraVol, _, _ := strings.Cut(st.Config["scsi1"], ",") // local-lvm:vm-1000-disk-N

	// The destroy of the detached volume hits a (retryable) lock timeout once.
	r.sim.FailNext(pvesim.FailNext{Endpoint: "POST /nodes/{node}/qemu/{vmid}/config", Count: 1, Status: 500,
		Message: "can't lock file '/var/lock/qemu-server/lock-1000.conf' - got timeout"})
	_, err := r.st.VMRequest(r.ctx, vm.ID, []string{string(states.Ready)}, string(states.ChangePackage), "small", r.clk.Now())
	require.NoError(t, err)
	r.until(vm.ID, states.Ready, 60)

	st, _ = r.sim.VM(vm.VMID)
	var leaked []string
	for k, v := range st.Config {
		if strings.HasPrefix(k, "unused") {
			leaked = append(leaked, k+"="+v)
		}
	}
	var vols []string
	for _, v := range r.sim.StorageContent("pve1", "local-lvm") {
		if v.VMID == vm.VMID {
			vols = append(vols, v.VolID)
		}
	}
	t.Logf("volumes of VM %d on local-lvm: %v", vm.VMID, vols)
	assert.Empty(t, leaked, "the removed additional disk must be destroyed, not left as unusedN")
	assert.NotContains(t, vols, extraVol, "the removed additional disk's volume must be gone from the storage")
	assert.NotEmpty(t, vols, "the system disk is still there")
}
