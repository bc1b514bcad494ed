package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

// A waiting run whose only line is at the same step as the VM's previous
// run, itself waiting, is folded into that run (count, newest time and
// result); anything else starts a run of its own.
func TestWaitingRunsFold(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		// each run: its lines as step/from/result; its result
		runs [][]store.RunLine
		res  []string
		// the runs left, newest first: lines count and repeats
		want []int
	}{
		{"three waits at one step: one run, two repeats",
			[][]store.RunLine{{{Step: "Clone VM", From: "set_ip", Result: "waiting (clone task started)"}},
				{{Step: "Clone VM", From: "set_ip", Result: "waiting (clone task qmclone running for 20s)"}},
				{{Step: "Clone VM", From: "set_ip", Result: "waiting (clone task qmclone running for 40s)"}}},
			[]string{"waiting", "waiting", "waiting"}, []int{2}},
		{"the first run's detail lines stay",
			[][]store.RunLine{{{Step: "", From: "restore_snapshots_removed", Result: "restoring x"}, {Step: "Restore backup", From: "restore_snapshots_removed", Result: "waiting (restore task started)"}},
				{{Step: "Restore backup", From: "restore_snapshots_removed", Result: "waiting (restore task qmrestore running for 1m)"}}},
			[]string{"waiting", "waiting"}, []int{1}},
		{"another step: not folded",
			[][]store.RunLine{{{Step: "Clone VM", From: "set_ip", Result: "waiting (x)"}},
				{{Step: "Start VM", From: "set_cloudinit", Result: "waiting (y)"}}},
			[]string{"waiting", "waiting"}, []int{0, 0}},
		{"after a success: not folded",
			[][]store.RunLine{{{Step: "Clone VM", From: "set_ip", Result: "success"}},
				{{Step: "Clone VM", From: "set_ip", Result: "waiting (y)"}}},
			[]string{"success", "waiting"}, []int{0, 0}},
		{"a wait with detail lines: not folded",
			[][]store.RunLine{{{Step: "Clone VM", From: "set_ip", Result: "waiting (x)"}},
				{{Step: "", From: "set_ip", Result: "heartbeat"}, {Step: "Clone VM", From: "set_ip", Result: "waiting (y)"}}},
			[]string{"waiting", "waiting"}, []int{0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			vm := newVM(t, s, "w1")
			now := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
			var lastResult string
			for i, lines := range tc.runs {
				now = now.Add(20 * time.Second)
				// As the runner does: a run with detail lines is opened by
				// the first one; a run holding only the step's line is
				// opened by its outcome (StartRun).
				o := store.Outcome{ID: vm.ID, Now: now, FinishRun: tc.res[i]}
				var id int64
				if len(lines) > 1 {
					var err error
					id, err = s.RunStart(ctx, vm.ID, "process_vms", now)
					require.NoError(t, err)
				} else {
					o.StartRun, o.RunStartedAt = "process_vms", now
				}
				for _, l := range lines[:len(lines)-1] {
					l.RunID, l.At = id, now
					require.NoError(t, s.RunAppendLine(ctx, l))
				}
				l := lines[len(lines)-1]
				l.RunID, l.At = id, now
				cur, err := s.VMGet(ctx, vm.ID)
				require.NoError(t, err)
				o.FromStatus, o.FromVersion, o.ToStatus, o.Line = cur.Status, cur.Version, cur.Status, &l
				_, err = s.VMApplyStep(ctx, o)
				require.NoError(t, err)
				lastResult = l.Result
			}
			runs, err := s.RunsForVM(ctx, vm.ID, 10)
			require.NoError(t, err)
			var got []int
			for _, r := range runs {
				got = append(got, r.Repeats)
			}
			require.Equal(t, tc.want, got)
			if runs[0].Repeats > 0 {
				require.Equal(t, lastResult, runs[0].LastResult)
				require.True(t, runs[0].LastAt.Equal(now))
				require.Len(t, runs[0].Lines, len(tc.runs[0]), "the first run's lines stay")
			}
		})
	}
}
