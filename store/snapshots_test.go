package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pvectl/pvectl/store"
)

// An operation is queued once while active: queueing the same op on the
// same name again returns the existing row; another op or name is its own.
func TestSnapshotQueueOncePerActiveOp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t)
	vm := readyVM(t, s, "s1")

	q := store.SnapshotQueued{VMID: vm.ID, Op: store.SnapOpCreate, Name: "before", Description: "d", VMState: true, Now: t0}
	first, created, err := s.SnapshotQueue(ctx, q)
	require.NoError(t, err)
	require.True(t, created)
	require.Equal(t, store.SnapStateQueued, first.State)
	require.Equal(t, store.SnapOriginManual, first.Origin)
	require.Equal(t, 1, first.Attempt)
	require.True(t, first.VMState)
	require.Equal(t, t0, first.QueuedAt)

	again, created, err := s.SnapshotQueue(ctx, q)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, first.ID, again.ID)

	del, created, err := s.SnapshotQueue(ctx, store.SnapshotQueued{VMID: vm.ID, Op: store.SnapOpDelete, Name: "before", Now: t0})
	require.NoError(t, err)
	require.True(t, created)
	require.NotEqual(t, first.ID, del.ID)

	_, _, err = s.SnapshotQueue(ctx, store.SnapshotQueued{VMID: vm.ID, Op: "clone", Name: "x", Now: t0})
	require.Error(t, err)
	_, _, err = s.SnapshotQueue(ctx, store.SnapshotQueued{VMID: vm.ID, Op: store.SnapOpDelete, Origin: "cron", Name: "x", Now: t0})
	require.Error(t, err)
}

// The life of an operation: intent (guarded by the VM's state and by no
// other running operation), UPID once, finish by that UPID only.
func TestSnapshotOpLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t)
	vm := readyVM(t, s, "s1")

	a, _, err := s.SnapshotQueue(ctx, store.SnapshotQueued{VMID: vm.ID, Op: store.SnapOpCreate, Name: "a", Now: t0})
	require.NoError(t, err)
	b, _, err := s.SnapshotQueue(ctx, store.SnapshotQueued{VMID: vm.ID, Op: store.SnapOpRollback, Name: "a", Now: t0})
	require.NoError(t, err)

	require.NoError(t, s.SnapshotStartIntent(ctx, a.ID, "pve1", false, t0.Add(time.Minute)))
	// One running operation per VM.
	require.ErrorIs(t, s.SnapshotStartIntent(ctx, b.ID, "pve1", true, t0.Add(time.Minute)), store.ErrConflict)
	// Twice: no longer queued.
	require.ErrorIs(t, s.SnapshotStartIntent(ctx, a.ID, "pve1", false, t0.Add(time.Minute)), store.ErrConflict)

	running, ok, err := s.SnapshotOpRunning(ctx, vm.ID)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, a.ID, running.ID)
	require.Empty(t, running.UPID)
	require.Equal(t, "pve1", running.Node)

	require.NoError(t, s.SnapshotSetUPID(ctx, a.ID, "UPID:a"))
	require.ErrorIs(t, s.SnapshotSetUPID(ctx, a.ID, "UPID:b"), store.ErrConflict, "the UPID is written once")
	require.ErrorIs(t, s.SnapshotFinish(ctx, store.SnapshotEnd{ID: a.ID, UPID: "UPID:other", OK: true, Now: t0}), store.ErrConflict)
	require.NoError(t, s.SnapshotFinish(ctx, store.SnapshotEnd{ID: a.ID, UPID: "UPID:a", OK: true, Now: t0.Add(2 * time.Minute)}))

	got, err := s.SnapshotOpGet(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, store.SnapStateOK, got.State)
	require.Equal(t, t0.Add(2*time.Minute), got.EndedAt)
	_, ok, err = s.SnapshotOpRunning(ctx, vm.ID)
	require.NoError(t, err)
	require.False(t, ok)

	// Now the rollback can start; it remembers to start the VM afterwards.
	require.NoError(t, s.SnapshotStartIntent(ctx, b.ID, "pve1", true, t0.Add(3*time.Minute)))
	require.NoError(t, s.SnapshotFinish(ctx, store.SnapshotEnd{ID: b.ID, UPID: "", Error: "boom", Now: t0.Add(4 * time.Minute)}))
	got, err = s.SnapshotOpGet(ctx, b.ID)
	require.NoError(t, err)
	require.Equal(t, store.SnapStateFailed, got.State)
	require.True(t, got.StartAfter)
	require.Equal(t, "boom", got.Error)

	ops, err := s.SnapshotOpsOf(ctx, vm.ID)
	require.NoError(t, err)
	require.Len(t, ops, 2)
	active, err := s.SnapshotOpsByState(ctx, store.SnapStateQueued, store.SnapStateRunning)
	require.NoError(t, err)
	require.Empty(t, active)

	_, err = s.SnapshotOpGet(ctx, 999)
	require.ErrorIs(t, err, store.ErrNotFound)
}

// A task is only sent for a VM that is ready or suspended, not held and
// without a pending step; a retry waits for its not_before.
func TestSnapshotStartGuards(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t)
	busy := newVM(t, s, "busy") // not ready yet
	o, _, err := s.SnapshotQueue(ctx, store.SnapshotQueued{VMID: busy.ID, Op: store.SnapOpDelete, Name: "x", Now: t0})
	require.NoError(t, err)
	require.ErrorIs(t, s.SnapshotStartIntent(ctx, o.ID, "pve1", false, t0), store.ErrConflict)
	require.NoError(t, s.SnapshotFail(ctx, o.ID, "the VM is gone", t0))
	require.ErrorIs(t, s.SnapshotFail(ctx, o.ID, "again", t0), store.ErrConflict)

	vm := readyVM(t, s, "r1")
	later, _, err := s.SnapshotQueue(ctx, store.SnapshotQueued{VMID: vm.ID, Op: store.SnapOpDelete, Origin: store.SnapOriginLifetime,
		Name: "old", Attempt: 2, NotBefore: t0.Add(10 * time.Minute), Now: t0})
	require.NoError(t, err)
	require.Equal(t, 2, later.Attempt)
	require.Equal(t, t0.Add(10*time.Minute), later.NotBefore)
	require.ErrorIs(t, s.SnapshotStartIntent(ctx, later.ID, "pve1", false, t0.Add(5*time.Minute)), store.ErrConflict)
	require.NoError(t, s.SnapshotStartIntent(ctx, later.ID, "pve1", false, t0.Add(10*time.Minute)))
}
