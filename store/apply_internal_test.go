package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The step runner does not read a VM back after its outcome: it takes
// Outcome.Apply of the VM it read before. Apply must give the row the
// compare-and-set wrote, for every kind of outcome.
func TestOutcomeApplyMatchesTheWrittenRow(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 6, 21, 0, 0, 123456789, time.UTC)
	for _, tc := range []struct {
		name string
		o    Outcome
	}{
		{"done: moves, clears the task and the step's memory", Outcome{ToStatus: "clone", ClearPending: true}},
		{"to ready: the restore's volume goes too", Outcome{ToStatus: "ready", ClearPending: true}},
		{"waiting: stays, keeps the task", Outcome{ToStatus: "set_ip", StepWaits: 3, WaitReason: "clone task running", LastError: "old"}},
		{"retry: next try clamped to the longest backoff", Outcome{ToStatus: "set_ip", Attempts: 2, NextAttempt: now.Add(10 * MaxRetryDelay), LastError: "boom"}},
		{"retry within the backoff", Outcome{ToStatus: "set_ip", Attempts: 1, NextAttempt: now.Add(90*time.Second + 7*time.Millisecond), LastError: "boom"}},
		{"fail: held", Outcome{ToStatus: "set_ip", Attempts: 3, Held: true, LastError: "permanent"}},
		{"fail with goto: moves, clears", Outcome{ToStatus: "error_terminate", ClearPending: true, Attempts: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s, vms, _ := newGroupStore(t, 1)
			id := vms[0].ID
			// A VM in the middle of a step: a task, a step's memory, a
			// restore requested, intent written by the step.
			_, err := s.db.ExecContext(ctx, `UPDATE vms SET pending_upid = 'UPID:pve1:1', pending_node = 'pve1', pending_step = 'Clone VM',
				step_data = '{"x":1}', restore_volid = 'local:backup/x', vmid = 101, node = 'pve1', step_waits = 2 WHERE id = ?`, id)
			require.NoError(t, err)
			cur, err := s.VMGet(ctx, id)
			require.NoError(t, err)
			o := tc.o
			o.ID, o.FromStatus, o.FromVersion, o.Now = id, cur.Status, cur.Version, now
			got, _, err := s.VMApplyStepRun(ctx, cur, o)
			require.NoError(t, err)
			want, err := s.VMGet(ctx, id)
			require.NoError(t, err)
			require.Equal(t, want, got)
		})
	}
}

// The step runner reads the VMs under way once per pass (VMsDue at the end
// of time) and keeps those Due now: the same VMs as VMsDue(now).
func TestDueAgreesWithVMsDue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, vms, _ := newGroupStore(t, 7)
	now := time.Date(2026, 12, 6, 21, 0, 0, 500_000_000, time.UTC)
	for i, set := range []string{
		`next_attempt_at = 0`,
		fmt.Sprintf(`next_attempt_at = %d`, ms(now)),                      // due at this very millisecond
		fmt.Sprintf(`next_attempt_at = %d`, ms(now)+1),                    // one millisecond ahead
		fmt.Sprintf(`next_attempt_at = %d`, ms(now.Add(MaxRetryDelay))),   // the longest backoff
		fmt.Sprintf(`next_attempt_at = %d`, ms(now.Add(MaxRetryDelay))+1), // a clock that ran ahead: due
		`held = 1`,
		fmt.Sprintf(`status = 'ready', next_attempt_at = %d`, ms(now)-1000), // final
	} {
		_, err := s.db.ExecContext(ctx, `UPDATE vms SET `+set+` WHERE id = ?`, vms[i].ID)
		require.NoError(t, err)
	}
	final := []string{"ready", "remove", "error_terminate", "suspended"}
	due, err := s.VMsDue(ctx, now, final)
	require.NoError(t, err)
	all, err := s.VMsDue(ctx, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), final)
	require.NoError(t, err)
	var want, got []int64
	for _, vm := range due {
		want = append(want, vm.ID)
	}
	for _, vm := range all {
		if Due(vm, now) {
			got = append(got, vm.ID)
		}
	}
	require.Equal(t, want, got)
	require.Equal(t, []int64{vms[0].ID, vms[1].ID, vms[4].ID}, got)
}

// A lone outcome (a batch of one, no savepoint) whose compare-and-set
// finds the VM moved writes nothing: not its line, not its event.
func TestLoneStaleOutcomeWritesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, vms, runs := newGroupStore(t, 1)
	commits0, _ := s.GroupCommits()
	_, err := s.VMApplyStep(ctx, Outcome{ID: vms[0].ID, FromStatus: "set_ip", FromVersion: vms[0].Version + 1, ToStatus: "clone",
		Now: time.Now(), FinishRun: "success",
		Line:   &RunLine{RunID: runs[0], At: time.Now(), Step: "Clone VM", From: "set_ip", To: "clone", Result: "success"},
		Events: []OutboxEvent{{EventID: "ev-lone", Event: "vm_ready", ServiceID: vms[0].ServiceID, Payload: "{}", Channels: []string{"webhook"}}}})
	require.ErrorIs(t, err, ErrConflict)
	var lines, events int
	require.NoError(t, s.db.QueryRowContext(ctx, `SELECT count(*) FROM run_lines WHERE run_id = ?`, runs[0]).Scan(&lines))
	require.NoError(t, s.db.QueryRowContext(ctx, `SELECT count(*) FROM outbox WHERE event_id = 'ev-lone'`).Scan(&events))
	require.Zero(t, lines)
	require.Zero(t, events)
	commits, _ := s.GroupCommits()
	require.Equal(t, commits0, commits, "nothing committed")
	vm, err := s.VMGet(ctx, vms[0].ID)
	require.NoError(t, err)
	require.Equal(t, vms[0], vm)
}
