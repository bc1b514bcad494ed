package engine_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/pvectl/pvectl/engine"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

func processVMsTask(t *testing.T) engine.Task {
	t.Helper()
	task, ok := (&engine.Engine{}).LookupTask("process_vms")
	require.True(t, ok)
	return task
}

func taskStatus(t *testing.T, h *harness, name string) engine.TaskStatus {
	t.Helper()
	all, err := h.e.TaskStatuses(h.ctx)
	require.NoError(t, err)
	for _, s := range all {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no task %s in %v", name, all)
	return engine.TaskStatus{}
}

// A last start in the future (one tick ran with the clock far ahead)
// counts as due: otherwise the task would not run again for years.
func TestTickRunsTaskWhoseLastStartIsInTheFuture(t *testing.T) {
	t.Parallel()
	c := newCalls()
	h := newHarness(t, "", chain(c.wrap(done), c.wrap(done)))
	h.vm("svc-1", "creation")
	h.at(10 * 365 * 24 * time.Hour)
	require.NoError(t, h.e.Tick(h.ctx))
	require.Equal(t, 1, c.of(""))

	h.at(0) // the clock is set right again
	require.NoError(t, h.e.Tick(h.ctx))
	require.Equal(t, 2, c.of(""), "process_vms did not run after a last start in the future")
	last, err := h.st.TaskRunLast(h.ctx)
	require.NoError(t, err)
	require.Equal(t, h.clk.T, last["process_vms"].StartedAt)
}

// TestTickRunsDueTasks: a task runs when its interval has passed since its
// last start (with a little slack for cron's jitter); interval 0 disables it.
func TestTickRunsDueTasks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		tasks    string
		previous bool          // a tick ran at t0
		now      time.Duration // when the tick under test runs, after t0
		wantRun  bool
	}{
		{name: "never ran", now: 0, wantRun: true},
		{name: "interval not passed", previous: true, now: 30 * time.Second},
		{name: "just before the slack", previous: true, now: 53 * time.Second},
		{name: "within the slack: 59.5s after a 1-minute start", previous: true, now: 59500 * time.Millisecond, wantRun: true},
		{name: "interval passed", previous: true, now: 3 * time.Minute, wantRun: true},
		{name: "5-minute interval not passed", tasks: "  intervals: {process_vms: 5m}\n", previous: true, now: 4*time.Minute + 49*time.Second},
		{name: "5-minute interval, slack capped at 10s", tasks: "  intervals: {process_vms: 5m}\n", previous: true,
			now: 4*time.Minute + 50*time.Second, wantRun: true},
		{name: "interval 0 disables, even never run", tasks: "  intervals: {process_vms: 0}\n", now: time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newCalls()
			h := newHarness(t, tc.tasks, chain(c.wrap(done), c.wrap(done), c.wrap(done)))
			h.vm("svc-1", "creation")
			if tc.previous {
				require.NoError(t, h.e.Tick(h.ctx))
				require.Equal(t, 1, c.of(""))
			}
			before := c.of("")
			h.at(tc.now)
			h.out.Reset()
			require.NoError(t, h.e.Tick(h.ctx))
			last, err := h.st.TaskRunLast(h.ctx)
			require.NoError(t, err)
			st := taskStatus(t, h, "process_vms")
			if tc.wantRun {
				require.Equal(t, h.clk.T, last["process_vms"].StartedAt)
				require.Equal(t, "ok", last["process_vms"].Result)
				require.Equal(t, before+1, c.of(""))
				require.Contains(t, h.out.String(), "process_vms: processed 1, advanced 1, waiting 0, errors 0")
				return
			}
			require.Equal(t, before, c.of(""))
			require.Empty(t, h.out.String(), "a tick with nothing due prints nothing")
			if tc.previous {
				require.Equal(t, t0, last["process_vms"].StartedAt)
			} else {
				require.NotContains(t, last, "process_vms")
				require.False(t, st.Enabled)
				require.Equal(t, "0s", st.Interval)
			}
		})
	}
}

// TestTickIdleIsSilent: a due task with nothing to do prints nothing but is
// still recorded.
func TestTickIdleIsSilent(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", chain(done))
	h.vm("svc-1", "ready")
	require.NoError(t, h.e.Tick(h.ctx))
	require.Empty(t, h.out.String())
	st := taskStatus(t, h, "process_vms")
	require.Equal(t, "ok", st.LastResult)
	require.Equal(t, t0, *st.LastStart)
	require.Zero(t, st.Processed)
}

// TestLockHeld: a task whose lock another holder has is skipped by Tick (not
// an error) and refused by RunTask; TaskStatuses names the holder.
func TestLockHeld(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", chain(done, done))
	vm := h.vm("svc-1", "creation")
	since := t0.Add(-90 * time.Second)
	lock, _, ok, err := engine.TryLockTask(h.e.StateDir, "process_vms", since)
	require.NoError(t, err)
	require.True(t, ok)
	locked := true
	t.Cleanup(func() {
		if locked {
			_ = lock.Unlock()
		}
	})

	want := fmt.Sprintf("task process_vms skipped: lock held by pid %d since 2026-11-25T11:58:30Z", os.Getpid())
	require.NoError(t, h.e.Tick(h.ctx))
	require.Contains(t, h.out.String(), want)
	require.Equal(t, "creation", h.get(vm.ID).Status)
	last, err := h.st.TaskRunLast(h.ctx)
	require.NoError(t, err)
	require.NotContains(t, last, "process_vms", "a skipped task records no run")

	h.out.Reset()
	err = h.e.RunTask(h.ctx, processVMsTask(t))
	require.ErrorIs(t, err, engine.ErrLockHeld)
	require.Contains(t, err.Error(), fmt.Sprintf("lock held by pid %d", os.Getpid()))
	require.Contains(t, h.out.String(), want)
	require.Equal(t, "creation", h.get(vm.ID).Status)

	st := taskStatus(t, h, "process_vms")
	require.True(t, st.LockHeld)
	require.Equal(t, os.Getpid(), st.LockPID)
	require.NotNil(t, st.LockSince)
	require.Equal(t, since, *st.LockSince)
	require.Nil(t, st.LastStart)

	// Released: the next run takes it at once.
	require.NoError(t, lock.Unlock())
	locked = false
	h.out.Reset()
	require.NoError(t, h.e.RunTask(h.ctx, processVMsTask(t)))
	require.Equal(t, "set_ip", h.get(vm.ID).Status)
	st = taskStatus(t, h, "process_vms")
	require.False(t, st.LockHeld)
	require.Zero(t, st.LockPID)
	require.Nil(t, st.LockSince)
	require.Equal(t, "ok", st.LastResult)
	require.Equal(t, 1, st.Processed)
	require.Equal(t, "advanced 1, waiting 0", st.LastMessage)
}

// TestRunTaskIgnoresIntervalAndRecordsCounts: run-task runs even when not
// due, and task_runs gets the processed and error counts.
func TestRunTaskIgnoresIntervalAndRecordsCounts(t *testing.T) {
	t.Parallel()
	reserve := func(_ context.Context, _ *states.Env, vm store.VM) states.Result {
		if vm.ServiceID == "bad" {
			return states.Retryable(errors.New("timeout"))
		}
		return states.Success()
	}
	h := newHarness(t, "  intervals: {process_vms: 1h}\n", chain(reserve, done, done))
	h.vm("good", "creation")
	h.vm("bad", "creation")
	require.NoError(t, h.e.Tick(h.ctx))
	last, err := h.st.TaskRunLast(h.ctx)
	require.NoError(t, err)
	r := last["process_vms"]
	require.Equal(t, "ok", r.Result, "a failing VM is counted, not a failed task")
	require.Equal(t, 2, r.Processed)
	require.Equal(t, 1, r.Errors)
	require.Equal(t, "advanced 1, waiting 0", r.Message)

	h.at(30 * time.Second) // bad is backing off
	h.out.Reset()
	require.NoError(t, h.e.Tick(h.ctx))
	require.Empty(t, h.out.String(), "not due for an hour")

	require.NoError(t, h.e.RunTask(h.ctx, processVMsTask(t)))
	require.Contains(t, h.out.String(), "process_vms: processed 1, advanced 1, waiting 0, errors 0")
	last, err = h.st.TaskRunLast(h.ctx)
	require.NoError(t, err)
	r = last["process_vms"]
	require.Equal(t, t0.Add(30*time.Second), r.StartedAt)
	require.Equal(t, "ok", r.Result)
	require.Equal(t, 1, r.Processed)
	require.Zero(t, r.Errors)

	st := taskStatus(t, h, "process_vms")
	require.Equal(t, "1h0m0s", st.Interval)
	require.True(t, st.Enabled)
	require.Equal(t, "ok", st.LastResult)
	require.NotEmpty(t, st.LastDuration)
}

// TestTaskStatusesInterrupted: a run left "running" whose lock nobody holds
// was interrupted (kill -9); while the lock is held it is running.
func TestTaskStatusesInterrupted(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", chain(done))
	_, err := h.st.TaskRunStart(h.ctx, "process_vms", 424242, t0.Add(-time.Minute))
	require.NoError(t, err)

	st := taskStatus(t, h, "process_vms")
	require.Equal(t, "interrupted", st.LastResult)
	require.False(t, st.LockHeld)
	require.Empty(t, st.LastDuration)
	require.Equal(t, t0.Add(-time.Minute), *st.LastStart)

	lock, _, ok, err := engine.TryLockTask(h.e.StateDir, "process_vms", t0)
	require.NoError(t, err)
	require.True(t, ok)
	defer func() { _ = lock.Unlock() }()
	st = taskStatus(t, h, "process_vms")
	require.Equal(t, "running", st.LastResult)
	require.True(t, st.LockHeld)
	require.Equal(t, os.Getpid(), st.LockPID)
	require.Equal(t, t0, *st.LockSince)
}
