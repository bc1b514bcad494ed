package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

// readyVM is a VM record at ready (a backup's PVE task may start).
func readyVM(t *testing.T, s *store.Store, svc string) store.VM {
	t.Helper()
	vm := newVM(t, s, svc)
	require.NoError(t, s.VMSetStatus(context.Background(), vm.ID, "ready", t0))
	got, err := s.VMGet(context.Background(), vm.ID)
	require.NoError(t, err)
	return got
}

// A scheduled slot is queued once per VM: queueing it again returns the
// existing row (created=false) and changes nothing, whatever its state —
// also a slot recorded as skipped. Another VM's same slot is its own row.
func TestBackupQueueSlotOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t)
	a, b := readyVM(t, s, "a1"), readyVM(t, s, "b1")

	q := store.BackupQueued{VMID: a.ID, Kind: store.BackupScheduled, Slot: "2026-12-07T03:10", Now: t0}
	first, created, err := s.BackupQueue(ctx, q)
	require.NoError(t, err)
	require.True(t, created)
	require.Equal(t, store.BackupStateQueued, first.State)
	require.Equal(t, t0, first.QueuedAt)

	q.Note, q.Now = "other", t0.Add(time.Hour)
	again, created, err := s.BackupQueue(ctx, q)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, first, again)

	other, created, err := s.BackupQueue(ctx, store.BackupQueued{VMID: b.ID, Kind: store.BackupScheduled, Slot: "2026-12-07T03:10", Now: t0})
	require.NoError(t, err)
	require.True(t, created)
	require.NotEqual(t, first.ID, other.ID)

	skipped, created, err := s.BackupQueue(ctx, store.BackupQueued{VMID: a.ID, Kind: store.BackupScheduled, Slot: "2026-12-10T03:10",
		Skipped: "missed by 5h (grace 2h)", Now: t0})
	require.NoError(t, err)
	require.True(t, created)
	require.Equal(t, store.BackupStateSkipped, skipped.State)
	require.Equal(t, "missed by 5h (grace 2h)", skipped.Error)
	require.Equal(t, t0, skipped.EndedAt)
	_, created, err = s.BackupQueue(ctx, store.BackupQueued{VMID: a.ID, Kind: store.BackupScheduled, Slot: "2026-12-10T03:10", Now: t0})
	require.NoError(t, err)
	require.False(t, created)

	rows, err := s.BackupsOf(ctx, a.ID)
	require.NoError(t, err)
	require.Len(t, rows, 2)
	queued, err := s.BackupsByState(ctx, store.BackupStateQueued)
	require.NoError(t, err)
	require.Len(t, queued, 2) // a's and b's slot

	_, _, err = s.BackupQueue(ctx, store.BackupQueued{VMID: a.ID, Kind: "weekly", Now: t0})
	require.Error(t, err)
}

// A manual backup while one is queued, rotating or running returns that
// one and changes nothing; once it ended, a new one is queued. The queue
// is audited: one request line in the VM's log per row created, none for
// a repeat.
func TestBackupQueueManualOnceAudited(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t)
	vm := readyVM(t, s, "m1")
	audit := store.Request{ServiceID: "m1", At: t0, What: "backup now", From: "ready", To: "ready", Detail: "by alice"}
	q := store.BackupQueued{VMID: vm.ID, Kind: store.BackupManual, Note: "before upgrade", Protected: true, Now: t0}

	b, created, err := s.Audited(audit).BackupQueue(ctx, q)
	require.NoError(t, err)
	require.True(t, created)
	require.True(t, b.Protected)
	require.Equal(t, "before upgrade", b.Note)
	again, created, err := s.Audited(audit).BackupQueue(ctx, q)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, b.ID, again.ID)

	require.NoError(t, s.BackupStartIntent(ctx, b.ID, "pve1", "local", `{"since":1}`, t0))
	_, created, err = s.Audited(audit).BackupQueue(ctx, q)
	require.NoError(t, err)
	require.False(t, created, "running")
	require.NoError(t, s.BackupSetUPID(ctx, b.ID, "UPID:pve1:1:1:1:vzdump:100:root@pam:"))
	require.NoError(t, s.BackupFinish(ctx, store.BackupEnd{ID: b.ID, UPID: "UPID:pve1:1:1:1:vzdump:100:root@pam:", OK: true,
		VolID: "local:backup/x.vma.zst", Size: 42, Now: t0.Add(time.Minute)}))
	next, created, err := s.Audited(audit).BackupQueue(ctx, q)
	require.NoError(t, err)
	require.True(t, created)
	require.NotEqual(t, b.ID, next.ID)

	runs, err := s.RunsForVM(ctx, vm.ID, 10)
	require.NoError(t, err)
	requests := 0
	for _, r := range runs {
		if r.Task == store.RequestTask {
			requests++
			require.Equal(t, "backup now", r.Lines[0].Step)
		}
	}
	require.Equal(t, 2, requests)
}

// The state transitions are guarded: an intent only from queued and only
// while the VM can take a PVE task (ready or suspended, not held, no
// pending step task); the UPID is written once; the end only for the
// recorded UPID; a rotation's writes only for its volume.
func TestBackupTransitionsGuarded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t)
	vm := readyVM(t, s, "g1")
	b, _, err := s.BackupQueue(ctx, store.BackupQueued{VMID: vm.ID, Kind: store.BackupManual, Now: t0})
	require.NoError(t, err)
	conflict := func(err error) {
		t.Helper()
		require.True(t, errors.Is(err, store.ErrConflict), "want ErrConflict, got %v", err)
	}

	// The VM in a pipeline: no intent.
	require.NoError(t, s.VMSetStatus(ctx, vm.ID, "change_package", t0))
	conflict(s.BackupStartIntent(ctx, b.ID, "pve1", "local", "", t0))
	conflict(s.BackupRotateIntent(ctx, b.ID, "local:backup/old", t0))
	require.NoError(t, s.VMSetStatus(ctx, vm.ID, "suspended", t0))

	// Rotation: intent, task, done → queued again.
	require.NoError(t, s.BackupRotateIntent(ctx, b.ID, "local:backup/old", t0.Add(time.Second)))
	got, err := s.BackupGet(ctx, b.ID)
	require.NoError(t, err)
	require.Equal(t, store.BackupStateRotating, got.State)
	require.Equal(t, "local:backup/old", got.RotateVolID)
	require.Equal(t, t0.Add(time.Second), got.StartedAt)
	inflight, ok, err := s.BackupInFlight(ctx, vm.ID)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, b.ID, inflight.ID)
	conflict(s.BackupSetRotateUPID(ctx, b.ID, "local:backup/other", "UPID:x"))
	require.NoError(t, s.BackupSetRotateUPID(ctx, b.ID, "local:backup/old", "UPID:pve1:1:1:1:imgdel:100@local:root@pam:"))
	conflict(s.BackupStartIntent(ctx, b.ID, "pve1", "local", "", t0)) // not queued
	conflict(s.BackupRotateDone(ctx, b.ID, "local:backup/other"))
	require.NoError(t, s.BackupRotateDone(ctx, b.ID, "local:backup/old"))
	got, err = s.BackupGet(ctx, b.ID)
	require.NoError(t, err)
	require.Equal(t, store.BackupStateQueued, got.State)
	require.Empty(t, got.RotateVolID)
	require.Empty(t, got.RotateUPID)
	_, ok, err = s.BackupInFlight(ctx, vm.ID)
	require.NoError(t, err)
	require.False(t, ok)

	// Start: intent, UPID once, end only for that UPID.
	require.NoError(t, s.BackupStartIntent(ctx, b.ID, "pve1", "local", `{"since":5}`, t0.Add(time.Minute)))
	require.NoError(t, s.BackupSetUPID(ctx, b.ID, "UPID:a"))
	conflict(s.BackupSetUPID(ctx, b.ID, "UPID:b"))
	conflict(s.BackupFail(ctx, b.ID, store.BackupStateRunning, "x", t0)) // has a UPID: backup_status ends it
	conflict(s.BackupFinish(ctx, store.BackupEnd{ID: b.ID, UPID: "UPID:b", OK: true, Now: t0}))
	require.NoError(t, s.BackupFinish(ctx, store.BackupEnd{ID: b.ID, UPID: "UPID:a", Error: "No space left on device", Now: t0.Add(2 * time.Minute)}))
	got, err = s.BackupGet(ctx, b.ID)
	require.NoError(t, err)
	require.Equal(t, store.BackupStateFailed, got.State)
	require.Equal(t, "No space left on device", got.Error)
	require.Equal(t, "pve1", got.Node)
	require.Equal(t, "local", got.Storage)
	require.Equal(t, `{"since":5}`, got.Baseline)
	require.Equal(t, t0.Add(2*time.Minute), got.EndedAt)
	conflict(s.BackupFinish(ctx, store.BackupEnd{ID: b.ID, UPID: "UPID:a", OK: true, Now: t0}))

	// A queued backup fails from queued only.
	c, _, err := s.BackupQueue(ctx, store.BackupQueued{VMID: vm.ID, Kind: store.BackupManual, Now: t0})
	require.NoError(t, err)
	conflict(s.BackupFail(ctx, c.ID, store.BackupStateRotating, "x", t0))
	require.NoError(t, s.BackupFail(ctx, c.ID, store.BackupStateQueued, "the VM is terminate; no backup made", t0))
}

// Rows go with their VM record.
func TestBackupsCascade(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t)
	vm := readyVM(t, s, "c1")
	_, _, err := s.BackupQueue(ctx, store.BackupQueued{VMID: vm.ID, Kind: store.BackupManual, Now: t0})
	require.NoError(t, err)
	require.NoError(t, s.VMSetStatus(ctx, vm.ID, "remove", t0))
	cur, err := s.VMGet(ctx, vm.ID)
	require.NoError(t, err)
	require.NoError(t, s.VMDelete(ctx, vm.ID, cur.Status, cur.Version, t0))
	rows, err := s.BackupsByState(ctx, store.BackupStateQueued)
	require.NoError(t, err)
	require.Empty(t, rows)
}
