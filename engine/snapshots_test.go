package engine_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pvectl/pvectl/engine"
	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/store"
)

func newSnapRig(t *testing.T) (*backupRig, store.VM) {
	r := newBackupRig(t, "")
	p := r.e.Config.Products["small"]
	p.SnapshotQuota = 2
	r.e.Config.Products["small"] = p
	return r, r.ready("sn1", 1000, "small")
}

// A create interrupted after its intent, before the task was sent: the
// next pass finds no task and no snapshot, and sends it (once).
func TestSnapshotCrashBeforeSend(t *testing.T) {
	t.Parallel()
	r, vm := newSnapRig(t)
	o, _, err := r.st.SnapshotQueue(r.ctx, store.SnapshotQueued{VMID: vm.ID, Op: store.SnapOpCreate, Name: "s1", Now: r.clk.T})
	require.NoError(t, err)
	require.NoError(t, r.st.SnapshotStartIntent(r.ctx, o.ID, "pve1", false, r.clk.T))
	r.tick(time.Minute)
	r.tick(time.Minute)
	require.Len(t, r.tasksOf("qmsnapshot"), 1)
	got, err := r.st.SnapshotOpGet(r.ctx, o.ID)
	require.NoError(t, err)
	require.Equal(t, store.SnapStateOK, got.State)
	require.NotEmpty(t, got.UPID)
}

// A create interrupted after the task was sent, before its UPID was
// written: the next pass adopts the task from PVE's task list and never
// sends a second one.
func TestSnapshotCrashAfterSend(t *testing.T) {
	t.Parallel()
	r, vm := newSnapRig(t)
	o, _, err := r.st.SnapshotQueue(r.ctx, store.SnapshotQueued{VMID: vm.ID, Op: store.SnapOpCreate, Name: "s1", Now: r.clk.T})
	require.NoError(t, err)
	require.NoError(t, r.st.SnapshotStartIntent(r.ctx, o.ID, "pve1", false, r.clk.T))
	task, err := r.pve.CreateSnapshot(r.ctx, proxmox.VMRef{Node: "pve1", VMID: 1000}, proxmox.SnapshotRequest{Name: "s1"})
	require.NoError(t, err)
	r.tick(time.Minute)
	r.tick(time.Minute)
	require.Len(t, r.tasksOf("qmsnapshot"), 1)
	got, err := r.st.SnapshotOpGet(r.ctx, o.ID)
	require.NoError(t, err)
	require.Equal(t, store.SnapStateOK, got.State)
	require.Equal(t, task.UPID, got.UPID)
}

// A delete interrupted without UPID whose snapshot is already gone in PVE
// ends OK without a second task.
func TestSnapshotDeleteSeenGone(t *testing.T) {
	t.Parallel()
	r, vm := newSnapRig(t)
	o, _, err := r.st.SnapshotQueue(r.ctx, store.SnapshotQueued{VMID: vm.ID, Op: store.SnapOpDelete, Name: "gone", Now: r.clk.T})
	require.NoError(t, err)
	require.NoError(t, r.st.SnapshotStartIntent(r.ctx, o.ID, "pve1", false, r.clk.T))
	r.tick(time.Minute)
	require.Empty(t, r.tasksOf("qmdelsnapshot"))
	got, err := r.st.SnapshotOpGet(r.ctx, o.ID)
	require.NoError(t, err)
	require.Equal(t, store.SnapStateOK, got.State)
}

// While PVE holds a lock on the VM a queued operation is not sent.
func TestSnapshotWaitsForPVELock(t *testing.T) {
	t.Parallel()
	r, vm := newSnapRig(t)
	require.NoError(t, r.sim.LeaveLock(1000, "backup"))
	_, err := r.e.SnapshotCreate(r.ctx, vm.ServiceID, engineSnapReq("s1"))
	require.NoError(t, err)
	r.tick(time.Minute)
	r.tick(time.Minute)
	require.Empty(t, r.tasksOf("qmsnapshot"))
	require.NoError(t, r.sim.LeaveLock(1000, ""))
	r.tick(time.Minute)
	r.tick(time.Minute)
	require.Len(t, r.tasksOf("qmsnapshot"), 1)
}

func engineSnapReq(name string) engine.SnapshotRequest { return engine.SnapshotRequest{Name: name} }
