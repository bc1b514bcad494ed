package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

// A schedule is saved once per VM: saving the same again changes nothing
// (and an audited store records nothing), a change keeps created_at and
// checked_until, clearing deletes it, and it goes with its VM record.
func TestBackupScheduleSetClearList(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t)
	web1 := newVM(t, s, "web1")
	web2 := newVM(t, s, "web2")
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	audited := func(what string) *store.Store {
		return s.Audited(store.Request{ServiceID: "web1", At: t0, What: what, From: "creation", To: "creation", Detail: "by test"})
	}
	requests := func() int {
		runs, err := s.RunsForVM(ctx, web1.ID, 50)
		require.NoError(t, err)
		n := 0
		for _, r := range runs {
			if r.Task == store.RequestTask {
				n++
			}
		}
		return n
	}

	_, err := s.BackupScheduleGet(ctx, web1.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, _, err = s.BackupScheduleSet(ctx, store.BackupSchedule{VMID: 9999, Days: 1, AtMinute: 0}, t0)
	require.ErrorIs(t, err, store.ErrNotFound)

	mon, thu := 1<<time.Monday, 1<<time.Thursday
	got, changed, err := audited("backup schedule").BackupScheduleSet(ctx, store.BackupSchedule{VMID: web1.ID, Days: mon | thu, AtMinute: 190, Randomised: true}, t0)
	require.NoError(t, err)
	require.True(t, changed)
	require.Equal(t, store.BackupSchedule{VMID: web1.ID, Days: mon | thu, AtMinute: 190, Randomised: true, CreatedAt: t0, UpdatedAt: t0}, got)
	require.Equal(t, 1, requests())

	// The same again: nothing changes, nothing is audited.
	got, changed, err = audited("backup schedule").BackupScheduleSet(ctx, store.BackupSchedule{VMID: web1.ID, Days: mon | thu, AtMinute: 190, Randomised: true}, at(time.Hour))
	require.NoError(t, err)
	require.False(t, changed)
	require.Equal(t, t0, got.UpdatedAt)
	require.Equal(t, 1, requests())

	// checked_until is written as given, earlier or later.
	require.NoError(t, s.BackupScheduleChecked(ctx, web1.ID, at(3*time.Hour)))
	require.NoError(t, s.BackupScheduleChecked(ctx, web1.ID, at(2*time.Hour)))
	got, err = s.BackupScheduleGet(ctx, web1.ID)
	require.NoError(t, err)
	require.Equal(t, at(2*time.Hour), got.CheckedUntil)

	// A change keeps created_at and checked_until.
	got, changed, err = audited("backup schedule").BackupScheduleSet(ctx, store.BackupSchedule{VMID: web1.ID, Days: mon, AtMinute: 190}, at(4*time.Hour))
	require.NoError(t, err)
	require.True(t, changed)
	require.Equal(t, store.BackupSchedule{VMID: web1.ID, Days: mon, AtMinute: 190, CheckedUntil: at(2 * time.Hour),
		CreatedAt: t0, UpdatedAt: at(4 * time.Hour)}, got)
	require.Equal(t, 2, requests())

	_, _, err = s.BackupScheduleSet(ctx, store.BackupSchedule{VMID: web2.ID, Days: 127, AtMinute: 0}, t0)
	require.NoError(t, err)
	list, err := s.BackupSchedules(ctx)
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, []string{"web1", "web2"}, []string{list[0].ServiceID, list[1].ServiceID})
	require.Equal(t, "creation", list[0].Status)
	require.Equal(t, "small", list[0].Product)
	require.Equal(t, got, list[0].BackupSchedule)

	// Clearing: once; the second changes and records nothing.
	existed, err := audited("backup schedule --off").BackupScheduleClear(ctx, web1.ID)
	require.NoError(t, err)
	require.True(t, existed)
	existed, err = audited("backup schedule --off").BackupScheduleClear(ctx, web1.ID)
	require.NoError(t, err)
	require.False(t, existed)
	require.Equal(t, 3, requests())
	require.NoError(t, s.BackupScheduleChecked(ctx, web1.ID, t0), "a cleared schedule is not an error")

	// The schedule goes with its VM record.
	require.NoError(t, s.VMDelete(ctx, web2.ID, web2.Status, web2.Version, t0))
	list, err = s.BackupSchedules(ctx)
	require.NoError(t, err)
	require.Empty(t, list)
}

// The database refuses a schedule without days or with a minute past the day.
func TestBackupScheduleChecks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t)
	vm := newVM(t, s, "web1")
	for _, b := range []store.BackupSchedule{
		{VMID: vm.ID, Days: 0, AtMinute: 10},
		{VMID: vm.ID, Days: 128, AtMinute: 10},
		{VMID: vm.ID, Days: 1, AtMinute: 1440},
		{VMID: vm.ID, Days: 1, AtMinute: -1},
	} {
		_, _, err := s.BackupScheduleSet(ctx, b, t0)
		require.Error(t, err, "%+v", b)
	}
}
