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

// Regression (found in review): the terminate table's stop and backup phases never check
// the pvectl marker. Only deleteVM does. A record whose reserved VMID holds
// someone else's VM (the clone step correctly refuses and holds it) is
// a normal thing to cancel with `vm terminate`. When that happens, pvectl
// shuts the foreign VM down and deletes its backups before deleteVM refuses
// and sends the record to error_terminate.
func TestTerminateNeverTouchesForeignVM(t *testing.T) {
	r := newRig(t, false)
	vm := r.create("t1", "small")
	vm = r.until(vm.ID, states.SetIP, 2)
	require.Equal(t, 1000, vm.VMID)

	// A VM created by someone else (hand-made, another tool) appears at the
	// reserved VMID before the clone, with a backup of its own.
	require.NoError(t, r.sim.AddVM(pvesim.VMSpec{VMID: 1000, Node: "pve1", Running: true, Config: map[string]string{
		"name": "customer-db", "memory": "2048", "scsi0": "local-lvm:vm-1000-disk-0,size=8G", "net0": "virtio=BC:24:11:AA:00:01,bridge=vmbr0"}}))
	_, err := r.pve.Backup(r.ctx, proxmox.BackupRequest{VM: proxmox.VMRef{Node: "pve1", VMID: 1000}, Storage: "local"})
	require.NoError(t, err)
	r.sim.Advance(time.Minute)
	require.Len(t, r.sim.StorageContent("pve1", "local"), 1, "the foreign VM has one backup")

	// The clone step refuses: good.
	r.tick(20 * time.Second)
	vm = r.get(vm.ID)
	require.True(t, vm.Held, "clone step should hold the VM: %s", vm.LastError)
	require.Contains(t, vm.LastError, "did not create")

	// The order is cancelled: pvectl vm terminate (same store call as the CLI).
	_, err = r.st.VMRequest(r.ctx, vm.ID, []string{string(states.SetIP)}, string(states.Terminate), "", r.clk.Now())
	require.NoError(t, err)
	for range 15 {
		r.tick(time.Minute)
		if s := r.get(vm.ID).Status; s == string(states.ErrorTerminate) || s == string(states.Remove) {
			break
		}
	}

	t.Logf("record ends in %s: %s", r.get(vm.ID).Status, r.get(vm.ID).LastError)
	foreign, ok := r.sim.VM(1000)
	require.True(t, ok, "the foreign VM must still exist")
	assert.Equal(t, "running", foreign.Status, "pvectl must not stop a VM that does not carry its marker")
	assert.Len(t, r.sim.StorageContent("pve1", "local"), 1, "pvectl must not delete backups of a VM that does not carry its marker")
}
