package states_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
	"github.com/pvectl/pvectl/states"
	"github.com/stretchr/testify/require"
)

// The terminate removes the VM's backups from every backup storage, node-
// local and shared (a shared storage once), reports each deletion only when
// PVE's imgdel task has ended, and treats a deletion PVE refuses (a
// protected archive) as best effort: logged, kept, and the terminate goes on
// to remove.
func TestTerminateRemovesBackupsFromEveryStorage(t *testing.T) {
	t.Parallel()
	cluster := pvesim.DefaultCluster()
	for i := range cluster.Nodes {
		cluster.Nodes[i].Storages = append(cluster.Nodes[i].Storages,
			pvesim.StorageSpec{Name: "nfs-backup", Type: "nfs", Content: []string{"backup"}, Shared: true, Total: 1 << 40})
	}
	r := newRigOn(t, false, cluster)
	vm := r.deployed("b1", "small")
	other := r.deployed("b2", "small")

	backup := func(vmid int, storage string, protected bool) {
		t.Helper()
		ref, err := r.pve.Backup(r.ctx, proxmox.BackupRequest{VM: proxmox.VMRef{Node: "pve1", VMID: vmid}, Storage: storage, Protected: protected})
		require.NoError(t, err)
		for range 60 {
			r.sim.Advance(10 * time.Second)
			st, err := r.pve.TaskStatus(r.ctx, ref)
			require.NoError(t, err)
			if !st.Running {
				require.NoError(t, st.Err())
				return
			}
		}
		t.Fatal("backup never finished")
	}
	backup(vm.VMID, "local", false)
	backup(vm.VMID, "nfs-backup", false)
	backup(vm.VMID, "nfs-backup", true)
	backup(other.VMID, "nfs-backup", false)
	count := func(storage string, vmid int) int {
		n := 0
		for _, v := range r.sim.StorageContent("pve1", storage) {
			if v.VMID == vmid {
				n++
			}
		}
		return n
	}
	require.Equal(t, 1, count("local", vm.VMID))
	require.Equal(t, 2, count("nfs-backup", vm.VMID))

	r.request(r.get(vm.ID), states.Terminate, "")
	out := r.run(vm.ID, states.Remove, 20, 20*time.Second)
	require.Equal(t, string(states.Remove), r.get(vm.ID).Status, out)

	require.Equal(t, 0, count("local", vm.VMID), "node-local backup removed")
	require.Equal(t, 1, count("nfs-backup", vm.VMID), "only the protected backup stays")
	require.Equal(t, 1, count("nfs-backup", other.VMID), "another VM's backup stays")

	require.Equal(t, 1, strings.Count(out, "· backup-del OK local:backup/vzdump-qemu-1000-"), out)
	require.Equal(t, 1, strings.Count(out, "· backup-del OK nfs-backup:backup/vzdump-qemu-1000-"), "a shared storage is cleaned once:\n%s", out)
	require.Equal(t, 1, strings.Count(out, "· backup-del ERR nfs-backup:backup/vzdump-qemu-1000-"), out)
	require.Contains(t, out, "cannot remove protected archive")
	require.Contains(t, out, "waiting (3 backup deletion(s) running)")
	require.Contains(t, out, "terminate_stopped → terminate_backups_removed  skip (2 backup(s) removed, 1 failed (best effort))")
	// Each deletion was submitted once.
	dels := 0
	for _, q := range r.sim.Requests() {
		if q.Endpoint == "DELETE /nodes/{node}/storage/{storage}/content/{volume}" {
			dels++
		}
	}
	require.Equal(t, 3, dels)
}

// lostTaskClient answers "no such task" for the first status read of each
// imgdel task, as after a node reboot that lost the task list.
type lostTaskClient struct {
	proxmox.Client
	mu   sync.Mutex
	seen map[string]bool
	lost int
}

func (c *lostTaskClient) TaskStatus(ctx context.Context, task proxmox.TaskRef) (proxmox.TaskStatus, error) {
	c.mu.Lock()
	first := strings.Contains(task.UPID, ":imgdel:") && !c.seen[task.UPID]
	if first {
		c.seen[task.UPID] = true
		c.lost++
	}
	c.mu.Unlock()
	if first {
		return proxmox.TaskStatus{}, &proxmox.Error{Class: proxmox.ClassNotFound, Op: "task status", Message: "no such task"}
	}
	return c.Client.TaskStatus(ctx, task)
}

// A deletion request that fails with a transient error is sent again on the
// next tick, and a deletion task PVE lost is settled by listing the storage
// again: the backup is gone, so it was deleted. Neither is a failure.
func TestTerminateBackupDeletionRetriesAndLostTask(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	vm := r.deployed("b1", "small")
	ref, err := r.pve.Backup(r.ctx, proxmox.BackupRequest{VM: proxmox.VMRef{Node: "pve1", VMID: vm.VMID}, Storage: "local"})
	require.NoError(t, err)
	r.sim.Advance(5 * time.Minute)
	st, err := r.pve.TaskStatus(r.ctx, ref)
	require.NoError(t, err)
	require.NoError(t, st.Err())
	require.Len(t, r.sim.StorageContent("pve1", "local"), 1)

	lost := &lostTaskClient{Client: r.pve, seen: map[string]bool{}}
	r.env.PVE = lost
	r.sim.FailNext(pvesim.FailNext{Endpoint: "DELETE /nodes/{node}/storage/{storage}/content/{volume}", Count: 1, Status: 503})
	r.request(r.get(vm.ID), states.Terminate, "")
	out := r.run(vm.ID, states.Remove, 20, 20*time.Second)
	require.Equal(t, string(states.Remove), r.get(vm.ID).Status, out)
	require.Empty(t, r.sim.StorageContent("pve1", "local"))
	require.Equal(t, 1, lost.lost, out)
	require.Contains(t, out, "· backup-del ERR local:backup/vzdump-qemu-1000-")
	require.Contains(t, out, "(will try again)")
	require.Equal(t, 1, strings.Count(out, "· backup-del OK local:backup/vzdump-qemu-1000-"), out)
	require.Contains(t, out, "terminate_stopped → terminate_backups_removed  success", out)
}
