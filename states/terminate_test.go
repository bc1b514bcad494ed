package states_test

// Terminate scenarios: the VM is stopped, its backups are removed, it is
// deleted, and its addresses and VMID are released once PVE no longer lists
// it; a VM that is not pvectl's is never touched. DNS during a terminate is
// in dns_test.go.

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
	require.Contains(t, out, "cannot remove protected volume")
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

// `vm terminate` while the clone task is still running: the clone's VM
// exists with "lock: clone" and a temporary config that carries no marker
// yet. The terminate waits for the clone task to finish and touches nothing
// meanwhile, then goes on as for any VM of ours: stopped, deleted, remove.
func TestTerminateDuringACloneWaitsForTheCloneTask(t *testing.T) {
	t.Parallel()
	c := pvesim.DefaultCluster()
	if c.Durations.Tasks == nil {
		c.Durations.Tasks = map[string]pvesim.Duration{}
	}
	c.Durations.Tasks["qmclone"] = pvesim.Duration(10 * time.Minute)
	r := newRigOn(t, false, c)
	vm := r.create("tc1", "small")
	var out strings.Builder
	for range 5 {
		out.WriteString(r.tick(20 * time.Second))
		if r.get(vm.ID).PendingUPID != "" {
			break
		}
	}
	vm = r.get(vm.ID)
	require.Equal(t, string(states.SetIP), vm.Status)
	require.NotEmpty(t, vm.PendingUPID, "the clone task is pending\n%s", out.String())
	simVM, ok := r.sim.VM(vm.VMID)
	require.True(t, ok)
	require.Equal(t, "clone", simVM.Config["lock"], "the clone is still running")

	// The order is cancelled mid-clone with `vm terminate`.
	_, err := r.st.VMRequest(r.ctx, vm.ID, []string{string(states.SetIP)}, string(states.Terminate), "", r.clk.Now())
	require.NoError(t, err)

	// While the clone runs, the terminate waits and touches nothing.
	for range 5 {
		out.WriteString(r.tick(time.Minute))
	}
	cur := r.get(vm.ID)
	require.Equal(t, string(states.Terminate), cur.Status, "error %q\n%s", cur.LastError, out.String())
	require.False(t, cur.Held, out.String())
	require.Contains(t, out.String(), "waiting for the clone task to finish before terminating")
	_, ok = r.sim.VM(vm.VMID)
	require.True(t, ok, "nothing deleted while the clone runs")

	// The clone ends; the terminate goes on as for any VM of ours.
	for range 20 {
		out.WriteString(r.tick(time.Minute))
		if s := r.get(vm.ID).Status; s == string(states.Remove) || s == string(states.ErrorTerminate) {
			break
		}
	}
	cur = r.get(vm.ID)
	log := out.String()
	require.Equal(t, string(states.Remove), cur.Status, "error %q\n%s", cur.LastError, log)
	require.NotContains(t, log, "did not create", "pvectl's own clone is not someone else's VM")
	require.Regexp(t, `Stop VM  terminate → terminate_stopped  (success|skip \(already stopped)`, log)
	_, ok = r.sim.VM(vm.VMID)
	require.False(t, ok, "the cloned VM is deleted")
}

// A record whose reserved VMID holds someone else's VM (the clone step
// refuses it and holds the record) is cancelled with `vm terminate`. Every
// terminate step checks pvectl's marker before it acts: the foreign VM keeps
// running and keeps its backups, whatever state the record ends in.
func TestTerminateLeavesAForeignVMAndItsBackupsAlone(t *testing.T) {
	t.Parallel()
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

	// The clone step refuses it.
	r.tick(20 * time.Second)
	vm = r.get(vm.ID)
	require.True(t, vm.Held, "the clone step holds the VM: %s", vm.LastError)
	require.Contains(t, vm.LastError, "did not create")

	// The order is cancelled with `vm terminate`.
	_, err = r.st.VMRequest(r.ctx, vm.ID, []string{string(states.SetIP)}, string(states.Terminate), "", r.clk.Now())
	require.NoError(t, err)
	for range 15 {
		r.tick(time.Minute)
		if s := r.get(vm.ID).Status; s == string(states.ErrorTerminate) || s == string(states.Remove) {
			break
		}
	}

	end := r.get(vm.ID)
	foreign, ok := r.sim.VM(1000)
	require.True(t, ok, "the foreign VM still exists (record ends in %s: %s)", end.Status, end.LastError)
	require.Equal(t, "running", foreign.Status, "pvectl does not stop a VM that does not carry its marker")
	require.Len(t, r.sim.StorageContent("pve1", "local"), 1, "pvectl does not delete backups of a VM that does not carry its marker")
}

// ghostClient keeps a deleted VM in /cluster/resources for a number of calls
// (forever when the count is negative), the way the cluster-wide list lags
// behind a destroy or a node's pvestatd is stuck.
type ghostClient struct {
	proxmox.Client
	mu    sync.Mutex
	vmid  int
	left  int
	ghost *proxmox.Resource
	shown int // calls that returned the ghost
}

func (c *ghostClient) ClusterResources(ctx context.Context, kind proxmox.ResourceType) ([]proxmox.Resource, error) {
	res, err := c.Client.ClusterResources(ctx, kind)
	if err != nil {
		return res, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range res {
		if r.IsVM() && r.VMID == c.vmid {
			rr := r
			c.ghost = &rr
			return res, nil
		}
	}
	if c.ghost != nil && c.left != 0 {
		c.left--
		c.shown++
		res = append(res, *c.ghost)
	}
	return res, nil
}

// The terminate releases a VM's addresses and VMID only once PVE no longer
// lists the VM: a delete task that ended OK is not enough. A list that
// catches up within a few ticks ends in remove; a VM that stays listed ends
// in error_terminate with its addresses still allocated.
func TestTerminateVerifiesTheVMIsGone(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		stale  int // /cluster/resources calls that still list the VM
		want   states.State
		keepIP bool
	}{
		{"list catches up", 2, states.Remove, false},
		{"VM stays listed", -1, states.ErrorTerminate, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, false)
			vm := r.deployed("g1", "small")
			ips, err := r.st.IPsForVM(r.ctx, vm.ID)
			require.NoError(t, err)
			require.Len(t, ips, 1)

			ghost := &ghostClient{Client: r.pve, vmid: vm.VMID, left: tc.stale}
			r.env.PVE = ghost
			r.request(vm, states.Terminate, "")

			var log strings.Builder
			for range 20 {
				log.WriteString(r.tick(time.Minute))
				cur := r.get(vm.ID)
				if cur.Status == string(tc.want) {
					break
				}
				if cur.Status == string(states.Remove) || cur.Status == string(states.ErrorTerminate) {
					t.Fatalf("ended in %s, want %s\n%s", cur.Status, tc.want, log.String())
				}
				// Until remove, the record holds its addresses, also once
				// the delete went through but PVE still lists the VM.
				left, err := r.st.IPsForVM(r.ctx, vm.ID)
				require.NoError(t, err)
				require.Len(t, left, 1, "addresses released before remove (status %s)", cur.Status)
			}
			cur := r.get(vm.ID)
			require.Equal(t, string(tc.want), cur.Status, log.String())
			_, inPVE := r.sim.VM(vm.VMID)
			require.False(t, inPVE, "the delete itself went through")
			require.Contains(t, log.String(), "waiting (delete finished; waiting for the VM to leave /cluster/resources)")
			require.Positive(t, ghost.shown)

			left, err := r.st.IPsForVM(r.ctx, vm.ID)
			require.NoError(t, err)
			if tc.keepIP {
				require.Len(t, left, 1, "error_terminate keeps the addresses")
				require.Equal(t, ips[0].Address, left[0].Address)
				require.Contains(t, cur.LastError, "is still in /cluster/resources after 5 ticks")
				require.Equal(t, vm.VMID, cur.VMID)
			} else {
				require.Empty(t, left)
				require.Zero(t, cur.VMID)
			}
		})
	}
}
