package engine_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pvectl/pvectl/engine"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

func TestBackoff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		attempts int
		jitter   float64
		want     time.Duration
	}{
		{0, 0.5, time.Minute},
		{1, 0.5, time.Minute},
		{2, 0.5, 2 * time.Minute},
		{3, 0.5, 4 * time.Minute},
		{4, 0.5, 8 * time.Minute},
		{5, 0.5, 16 * time.Minute},
		{6, 0.5, 30 * time.Minute}, // 32 min capped
		{7, 0.5, 30 * time.Minute},
		{1000, 0.5, 30 * time.Minute},
		{1, 0, 48 * time.Second}, // -20%
		{1, 1, 72 * time.Second}, // +20%
		{3, 0, 192 * time.Second},
		{3, 1, 288 * time.Second},
		{1000, 0, 24 * time.Minute},
		{1000, 1, 30 * time.Minute}, // the cap holds with jitter
		{5, 1, 19*time.Minute + 12*time.Second},
		{6, 0.8, 30 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("attempts=%d/jitter=%v", tc.attempts, tc.jitter), func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, engine.Backoff(tc.attempts, tc.jitter))
		})
	}
}

// backoffBase is the un-jittered backoff after attempts failures.
func backoffBase(attempts int) time.Duration {
	return min(time.Minute<<max(attempts-1, 0), 30*time.Minute)
}

// requireBackoff checks next is now + backoff(attempts) within the ±20% band
// (and the store's millisecond precision).
func requireBackoff(t *testing.T, now, next time.Time, attempts int) {
	t.Helper()
	d, base := next.Sub(now), backoffBase(attempts)
	lo, hi := time.Duration(float64(base)*0.8)-time.Millisecond, time.Duration(float64(base)*1.2)+time.Millisecond
	require.Truef(t, d >= lo && d <= hi, "after %d attempts: next attempt in %s, want %s..%s", attempts, d, lo, hi)
}

// TestStepOutcome applies each kind of result to a VM that already failed
// once (attempts 1, last error set, a PVE task pending) and checks what the
// store, the run log and the live output show.
func TestStepOutcome(t *testing.T) {
	t.Parallel()
	earlier := states.Retryable(errors.New("read task status: 595 no route to host"))
	clearTask := states.Retryable(errors.New("clone task failed: storage full"))
	clearTask.ClearTask = true
	tests := []struct {
		name          string
		second        states.StepFunc // what the step does on its second call
		wantStatus    string
		wantAttempts  int
		wantWaits     int
		wantHeld      bool
		wantErr       string // last_error
		wantPending   bool
		wantBackoff   bool
		wantLine      string // the run line's result
		wantRetryNote bool   // followed by " (attempt N; next try in …)"
		wantRun       string // the run's result
		wantLive      string
		wantSummary   string
	}{
		{name: "done advances and resets", second: done, wantStatus: "set_ip",
			wantLine: "success", wantRun: "success",
			wantLive: "INF svc-1  Reserve VMID and IPs  creation → set_ip  success", wantSummary: summary(1, 1, 0, 0)},
		{name: "skip advances and resets", second: skip("not configured"), wantStatus: "set_ip",
			wantLine: "skip (not configured)", wantRun: "success",
			wantLive: "INF svc-1  Reserve VMID and IPs  creation → set_ip  skip (not configured)", wantSummary: summary(1, 1, 0, 0)},
		{name: "wait keeps status, attempts and task", second: wait("clone running"), wantStatus: "creation",
			wantAttempts: 1, wantWaits: 1, wantErr: earlier.Err.Error(), wantPending: true,
			wantLine: "waiting (clone running)", wantRun: "waiting",
			wantLive: "INF svc-1  Reserve VMID and IPs  creation  waiting (clone running)", wantSummary: summary(1, 0, 1, 0)},
		{name: "retryable error backs off", second: script(states.Retryable(errors.New("connection refused"))),
			wantStatus: "creation", wantAttempts: 2, wantErr: "connection refused", wantPending: true, wantBackoff: true,
			wantLine: "error: connection refused", wantRetryNote: true, wantRun: "error",
			wantLive: "WRN svc-1  Reserve VMID and IPs  creation  error: connection refused", wantSummary: summary(1, 0, 0, 1)},
		{name: "retryable error may drop the task", second: script(clearTask),
			wantStatus: "creation", wantAttempts: 2, wantErr: "clone task failed: storage full", wantBackoff: true,
			wantLine: "error: clone task failed: storage full", wantRetryNote: true, wantRun: "error",
			wantLive: "WRN svc-1  Reserve VMID and IPs  creation  error: clone task failed", wantSummary: summary(1, 0, 0, 1)},
		{name: "permanent error holds", second: script(states.Permanent(errors.New("403 Permission check failed"))),
			wantStatus: "creation", wantAttempts: 2, wantHeld: true, wantErr: "403 Permission check failed", wantPending: true,
			wantLine: "error (held): 403 Permission check failed", wantRun: "error",
			wantLive: "WRN svc-1  Reserve VMID and IPs  creation  error (held): 403 Permission check failed", wantSummary: summary(1, 0, 0, 1)},
		{name: "panic holds with the panic text",
			second:     func(context.Context, *states.Env, store.VM) states.Result { panic("nil map write") },
			wantStatus: "creation", wantAttempts: 2, wantHeld: true, wantErr: `step "Reserve VMID and IPs" panicked: nil map write`,
			wantPending: true, wantLine: `error (held): step "Reserve VMID and IPs" panicked: nil map write`, wantRun: "error",
			wantLive:    `WRN svc-1  Reserve VMID and IPs  creation  error (held): step "Reserve VMID and IPs" panicked: nil map write`,
			wantSummary: summary(1, 0, 0, 1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var n atomic.Int32
			step := func(ctx context.Context, env *states.Env, vm store.VM) states.Result {
				if n.Add(1) == 1 {
					// First tick: submit a PVE task, then fail to read it.
					if err := env.Store.VMSetPendingTask(ctx, vm.ID, vm.Status, vm.Version, "reserve", "pve1",
						"UPID:pve1:0001:clone", env.Now()); err != nil {
						return states.Retryable(err)
					}
					return earlier
				}
				return tc.second(ctx, env, vm)
			}
			h := newHarness(t, "", chain(step, mustNotRun(t)))
			vm := h.vm("svc-1", "creation")

			h.pass()
			before := h.get(vm.ID)
			require.Equal(t, 1, before.Attempts)
			require.Equal(t, "UPID:pve1:0001:clone", before.PendingUPID)

			h.at(2 * time.Minute) // past the first backoff
			s, out := h.pass()
			require.Equal(t, 1, s.Processed)
			got := h.get(vm.ID)
			require.Equal(t, tc.wantStatus, got.Status)
			require.Equal(t, tc.wantAttempts, got.Attempts)
			require.Equal(t, tc.wantWaits, got.StepWaits)
			require.Equal(t, tc.wantHeld, got.Held)
			require.Equal(t, tc.wantErr, got.LastError)
			if tc.wantPending {
				require.Equal(t, "UPID:pve1:0001:clone", got.PendingUPID)
				require.Equal(t, "pve1", got.PendingNode)
			} else {
				require.Empty(t, got.PendingUPID)
				require.Empty(t, got.PendingNode)
			}
			if tc.wantBackoff {
				requireBackoff(t, h.clk.T, got.NextAttemptAt, tc.wantAttempts)
			} else {
				require.True(t, got.NextAttemptAt.IsZero(), "next attempt %s", got.NextAttemptAt)
			}

			run := h.lastRun(vm.ID)
			require.Equal(t, tc.wantRun, run.Result)
			require.Equal(t, "process_vms", run.Task)
			require.Len(t, run.Lines, 1)
			l := run.Lines[0]
			require.Equal(t, "Reserve VMID and IPs", l.Step)
			require.Equal(t, "creation", l.From)
			require.Equal(t, tc.wantStatus, l.To)
			if tc.wantRetryNote { // a retry line says which attempt it was and when the next one comes
				require.Regexp(t, "^"+regexp.QuoteMeta(tc.wantLine)+` \(attempt 2; next try in [0-9]+m[0-9]+s\)$`, l.Result)
			} else {
				require.Equal(t, tc.wantLine, l.Result)
			}

			require.Contains(t, out, tc.wantLive)
			require.Contains(t, out, tc.wantSummary)
		})
	}
}

// TestPendingTaskLifecycle: a step that submits a task and waits keeps the
// task across ticks; done clears it.
func TestPendingTaskLifecycle(t *testing.T) {
	t.Parallel()
	var finished atomic.Bool
	clone := func(ctx context.Context, env *states.Env, vm store.VM) states.Result {
		if vm.PendingUPID == "" {
			if err := env.Store.VMSetPendingTask(ctx, vm.ID, vm.Status, vm.Version, "clone", "pve1",
				"UPID:pve1:00001234:qmclone", env.Now()); err != nil {
				return states.Retryable(err)
			}
			return states.Wait("clone submitted")
		}
		if !finished.Load() {
			return states.Wait("clone task running")
		}
		return states.Success()
	}
	h := newHarness(t, "", chain(done, clone))
	vm := h.vm("svc-1", "set_ip")

	for i := 1; i <= 3; i++ {
		h.at(time.Duration(i) * time.Minute)
		s, _ := h.pass()
		require.Equal(t, 1, s.Waiting)
		got := h.get(vm.ID)
		require.Equal(t, "set_ip", got.Status)
		require.Equal(t, i, got.StepWaits)
		require.Equal(t, "UPID:pve1:00001234:qmclone", got.PendingUPID)
		require.Equal(t, "pve1", got.PendingNode)
		require.Equal(t, "clone", got.PendingStep)
	}
	finished.Store(true)
	s, _ := h.pass()
	require.Equal(t, 1, s.Advanced)
	got := h.get(vm.ID)
	require.Equal(t, "clone", got.Status)
	require.Zero(t, got.StepWaits)
	require.Empty(t, got.PendingUPID)
	require.Empty(t, got.PendingNode)
	require.Empty(t, got.PendingStep)
}

// TestStepsPerTick checks how far a VM gets per tick.
func TestStepsPerTick(t *testing.T) {
	t.Parallel()
	type pass struct {
		status            string
		advanced, waiting int
	}
	tests := []struct {
		name   string
		tasks  string
		steps  func() []states.StepFunc
		passes []pass
	}{
		{name: "default: one step per tick", steps: func() []states.StepFunc {
			return []states.StepFunc{done, done, done, done, done}
		}, passes: []pass{{"set_ip", 1, 0}, {"clone", 1, 0}, {"set_dns", 1, 0}, {"migrated", 1, 0}, {"ready", 1, 0}}},
		{name: "skip advances one step too", steps: func() []states.StepFunc {
			return []states.StepFunc{skip("a"), done, skip("b"), skip("c"), done}
		}, passes: []pass{{"set_ip", 1, 0}, {"clone", 1, 0}, {"set_dns", 1, 0}, {"migrated", 1, 0}, {"ready", 1, 0}}},
		{name: "wait holds the VM at its step", steps: func() []states.StepFunc {
			return []states.StepFunc{done, script(states.Wait("busy"), states.Wait("busy"), states.Success()), done, done, done}
		}, passes: []pass{{"set_ip", 1, 0}, {"set_ip", 0, 1}, {"set_ip", 0, 1}, {"clone", 1, 0}}},
		{name: "three per tick", tasks: "  process_vms: {steps_per_tick: 3}\n", steps: func() []states.StepFunc {
			return []states.StepFunc{done, skip("x"), done, done, done}
		}, passes: []pass{{"set_dns", 3, 0}, {"ready", 2, 0}}},
		{name: "three per tick stop at the first wait", tasks: "  process_vms: {steps_per_tick: 3}\n", steps: func() []states.StepFunc {
			return []states.StepFunc{done, script(states.Wait("busy"), states.Success()), done, done, done}
		}, passes: []pass{{"set_ip", 1, 1}, {"migrated", 3, 0}, {"ready", 1, 0}}},
		{name: "three per tick stop at the first error", tasks: "  process_vms: {steps_per_tick: 3}\n", steps: func() []states.StepFunc {
			return []states.StepFunc{done, done, script(states.Retryable(errors.New("x")), states.Success()), done, done}
		}, passes: []pass{{"clone", 2, 0}, {"ready", 3, 0}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newCalls()
			var fns []states.StepFunc
			for _, f := range tc.steps() {
				fns = append(fns, c.wrap(f))
			}
			h := newHarness(t, tc.tasks, chain(fns...))
			vm := h.vm("svc-1", "creation")
			calls := 0
			for i, want := range tc.passes {
				h.at(time.Duration(i) * time.Hour) // past any backoff
				s, out := h.pass()
				got := h.get(vm.ID)
				require.Equalf(t, want.status, got.Status, "pass %d", i+1)
				require.Equalf(t, want.advanced, s.Advanced, "pass %d", i+1)
				require.Equalf(t, want.waiting, s.Waiting, "pass %d", i+1)
				require.Contains(t, out, summary(1, want.advanced, want.waiting, s.Errors))
				if s.Errors == 0 {
					require.Zero(t, got.Attempts)
					require.Empty(t, got.LastError)
				}
				steps := want.advanced + want.waiting + s.Errors
				calls += steps
				require.Equalf(t, calls, c.of(""), "pass %d: step calls", i+1)
				require.Lenf(t, h.lastRun(vm.ID).Lines, steps, "pass %d: one run line per step", i+1)
			}
			// Whatever is left, a VM in ready is never picked again.
			if tc.passes[len(tc.passes)-1].status == "ready" {
				s, out := h.pass()
				require.Zero(t, s.Processed)
				require.Empty(t, out)
			}
		})
	}
}

// TestRetryBackoffSchedule: each retryable error doubles the wait (capped at
// 30 min, jittered); the VM is not touched before next_attempt_at; success
// resets the counter and clears the error.
func TestRetryBackoffSchedule(t *testing.T) {
	t.Parallel()
	const failures = 7
	var n atomic.Int32
	flaky := func(context.Context, *states.Env, store.VM) states.Result {
		if i := n.Add(1); i <= failures {
			return states.Retryable(fmt.Errorf("connection refused (attempt %d)", i))
		}
		return states.Success()
	}
	h := newHarness(t, "", chain(flaky, mustNotRun(t)))
	vm := h.vm("svc-1", "creation")

	for i := 1; i <= failures; i++ {
		if i > 1 {
			next := h.get(vm.ID).NextAttemptAt
			h.clk.T = next.Add(-time.Millisecond)
			s, out := h.pass()
			require.Zerof(t, s.Processed, "attempt %d: picked before next_attempt_at", i)
			require.Empty(t, out)
			require.EqualValues(t, i-1, n.Load())
			h.clk.T = next
		}
		s, out := h.pass()
		require.Equal(t, engine.Summary{Processed: 1, Errors: 1}, engine.Summary{Processed: s.Processed, Errors: s.Errors})
		require.Contains(t, out, fmt.Sprintf("creation  error: connection refused (attempt %d)", i))
		require.EqualValues(t, i, n.Load())
		got := h.get(vm.ID)
		require.Equal(t, "creation", got.Status)
		require.False(t, got.Held)
		require.Equal(t, i, got.Attempts)
		require.Equal(t, fmt.Sprintf("connection refused (attempt %d)", i), got.LastError)
		requireBackoff(t, h.clk.T, got.NextAttemptAt, i)
	}
	h.clk.T = h.get(vm.ID).NextAttemptAt
	s, _ := h.pass()
	require.Equal(t, 1, s.Advanced)
	got := h.get(vm.ID)
	require.Equal(t, "set_ip", got.Status)
	require.Zero(t, got.Attempts)
	require.Empty(t, got.LastError)
	require.True(t, got.NextAttemptAt.IsZero())
}

// TestHeldUntilReleased: a permanent error or a panic holds the VM; the
// same pass still advances other VMs; the held VM is never picked until an
// admin releases it.
func TestHeldUntilReleased(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		first   states.StepFunc
		wantErr string
	}{
		{"permanent error", script(states.Permanent(errors.New("template 9000 not found on pve1"))),
			"template 9000 not found on pve1"},
		{"panic", func(context.Context, *states.Env, store.VM) states.Result {
			var ids []int
			return states.Skip(fmt.Sprint(ids[len(ids)]))
		}, `step "Reserve VMID and IPs" panicked: runtime error: index out of range [0] with length 0`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newCalls()
			var n atomic.Int32
			step := c.wrap(func(ctx context.Context, env *states.Env, vm store.VM) states.Result {
				if vm.ServiceID == "bad" && n.Add(1) == 1 {
					return tc.first(ctx, env, vm)
				}
				return states.Success()
			})
			h := newHarness(t, "", states.MustPipeline("test", states.Creation, []states.Step{
				{From: states.Creation, To: states.SetIP, Label: "Reserve VMID and IPs", Run: step},
				{From: states.SetIP, To: states.Ready, Label: "Finish", Run: done},
			}))
			bad := h.vm("bad", "creation")
			good := h.vm("good", "set_ip")

			s, out := h.pass()
			require.Equal(t, engine.Summary{Processed: 2, Advanced: 1, Errors: 1}, engine.Summary{
				Processed: s.Processed, Advanced: s.Advanced, Waiting: s.Waiting, Errors: s.Errors})
			require.Contains(t, out, "bad  Reserve VMID and IPs  creation  error (held): "+tc.wantErr)
			require.Contains(t, out, "good  Finish  set_ip → ready  success")
			require.Equal(t, "ready", h.get(good.ID).Status)
			got := h.get(bad.ID)
			require.True(t, got.Held)
			require.Equal(t, "creation", got.Status)
			require.Equal(t, 1, got.Attempts)
			require.Equal(t, tc.wantErr, got.LastError)

			for _, d := range []time.Duration{time.Minute, time.Hour, 30 * 24 * time.Hour} {
				h.at(d)
				s, out := h.pass()
				require.Zero(t, s.Processed)
				require.Empty(t, out)
			}
			require.Equal(t, 1, c.of("bad"))

			cur, err := h.st.VMGet(h.ctx, bad.ID)
			require.NoError(t, err)
			require.NoError(t, h.st.VMRelease(h.ctx, bad.ID, cur.Status, cur.Version, h.clk.T))
			s, _ = h.pass()
			require.Equal(t, 1, s.Advanced)
			require.Equal(t, 2, c.of("bad"))
			got = h.get(bad.ID)
			require.False(t, got.Held)
			require.Equal(t, "set_ip", got.Status)
			require.Zero(t, got.Attempts)
			require.Empty(t, got.LastError)
		})
	}
}

// TestCompareAndSet: if the VM moves during its step (an admin's
// reset-status or retry), the runner reports it and leaves the VM as is.
func TestCompareAndSet(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		meddle     func(ctx context.Context, st *store.Store, vm store.VM) error
		result     states.Result
		wantStatus string
		wantMoved  string // "" = the outcome applies normally
		wantWaits  int
	}{
		{name: "reset-status during a done step",
			meddle: func(ctx context.Context, st *store.Store, vm store.VM) error {
				return st.VMSetStatus(ctx, vm.ID, "set_dns", t0)
			}, result: states.Success(), wantStatus: "set_dns", wantMoved: "VM moved to set_dns (version 2)"},
		{name: "reset-status to the same state during a permanent error",
			meddle: func(ctx context.Context, st *store.Store, vm store.VM) error {
				return st.VMSetStatus(ctx, vm.ID, "creation", t0)
			}, result: states.Permanent(errors.New("403")), wantStatus: "creation", wantMoved: "VM moved to creation (version 2)"},
		{name: "release during a retryable error",
			meddle: func(ctx context.Context, st *store.Store, vm store.VM) error {
				return st.VMRelease(ctx, vm.ID, vm.Status, vm.Version, t0)
			}, result: states.Retryable(errors.New("timeout")), wantStatus: "creation", wantMoved: "VM moved to creation (version 2)"},
		{name: "recording intent is not a move",
			meddle: func(ctx context.Context, st *store.Store, vm store.VM) error {
				if err := st.VMSetNode(ctx, vm.ID, vm.Status, vm.Version, "pve2", t0); err != nil {
					return err
				}
				return st.VMSetPendingTask(ctx, vm.ID, vm.Status, vm.Version, "clone", "pve2", "UPID:pve2:1", t0)
			}, result: states.Wait("clone submitted"), wantStatus: "creation", wantWaits: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			step := func(ctx context.Context, env *states.Env, vm store.VM) states.Result {
				if err := tc.meddle(ctx, env.Store, vm); err != nil {
					t.Errorf("meddle: %v", err)
				}
				return tc.result
			}
			h := newHarness(t, "", chain(step, mustNotRun(t)))
			vm := h.vm("svc-1", "creation")
			s, out := h.pass()
			got := h.get(vm.ID)
			require.Equal(t, tc.wantStatus, got.Status)
			require.Equal(t, tc.wantWaits, got.StepWaits)
			if tc.wantMoved == "" {
				require.Zero(t, s.Errors)
				require.Equal(t, vm.Version, got.Version)
				require.Equal(t, "UPID:pve2:1", got.PendingUPID)
				return
			}
			// The admin's write stands: version bumped once, nothing held,
			// no attempt counted, no backoff.
			require.Equal(t, vm.Version+1, got.Version)
			require.False(t, got.Held)
			require.Zero(t, got.Attempts)
			require.True(t, got.NextAttemptAt.IsZero())
			require.Empty(t, got.LastError)
			require.Equal(t, 1, s.Errors)
			require.Contains(t, out, "svc-1  Reserve VMID and IPs  ")
			require.Contains(t, out, "not applied: "+tc.wantMoved+" by someone else during the step; left as is")
			l := h.lastRun(vm.ID).Lines[0]
			require.Equal(t, "not applied: "+tc.wantMoved+" by someone else during the step; left as is", l.Result)
		})
	}
}

// TestFinalAndUnknownStates: final states are never picked, even when a
// table has a step from them; a state without a step is an error, not a crash.
func TestFinalAndUnknownStates(t *testing.T) {
	t.Parallel()
	c := newCalls()
	p := states.MustPipeline("test", states.Creation, []states.Step{
		{From: states.Creation, To: states.SetIP, Label: "Reserve", Run: c.wrap(done)},
		{From: states.Ready, To: states.Terminate, Label: "From ready", Run: mustNotRun(t)},
		{From: states.Remove, To: states.Creation, Label: "From remove", Run: mustNotRun(t)},
		{From: states.ErrorTerminate, To: states.Remove, Label: "From error_terminate", Run: mustNotRun(t)},
	})
	h := newHarness(t, "", p)
	for _, st := range []string{"ready", "remove", "error_terminate"} {
		h.vm("final-"+st, st)
	}

	s, out := h.pass()
	require.Zero(t, s.Processed)
	require.Empty(t, out, "only final VMs: an idle pass prints nothing")

	stray := h.vm("stray", "set_dns")
	h.vm("fresh", "creation")
	s, out = h.pass()
	require.Equal(t, 2, s.Processed)
	require.Equal(t, 1, s.Advanced)
	require.Equal(t, 1, s.Errors)
	require.Equal(t, 1, c.of(""))
	require.Contains(t, out, `stray  no pipeline step from state "set_dns"; use pvectl reset-status`)
	require.Contains(t, out, summary(2, 1, 0, 1))
	got := h.get(stray.ID)
	require.Equal(t, "set_dns", got.Status)
	require.Equal(t, stray.Version, got.Version)
	require.False(t, got.Held)
	for _, st := range []string{"ready", "remove", "error_terminate"} {
		vm, err := h.st.VMFind(h.ctx, "final-"+st)
		require.NoError(t, err)
		require.Equal(t, st, vm.Status)
		runs, err := h.st.RunsForVM(h.ctx, vm.ID, 10)
		require.NoError(t, err)
		require.Empty(t, runs)
	}
}

// TestConcurrencyLimit: with concurrency 4, at most 4 steps run at once.
func TestConcurrencyLimit(t *testing.T) {
	t.Parallel()
	const vms, limit = 8, 4
	var inFlight, peak atomic.Int32
	entered := make(chan string, vms)
	release := make(chan struct{})
	block := func(ctx context.Context, _ *states.Env, vm store.VM) states.Result {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		entered <- vm.ServiceID
		select {
		case <-release:
		case <-ctx.Done():
		}
		inFlight.Add(-1)
		return states.Success()
	}
	h := newHarness(t, "  process_vms: {concurrency: 4}\n", chain(block))
	for i := range vms {
		h.vm(fmt.Sprintf("svc-%d", i), "creation")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	type res struct {
		s   engine.Summary
		err error
	}
	result := make(chan res, 1)
	go func() {
		s, err := h.e.ProcessVMs(ctx)
		result <- res{s, err}
	}()

	seen := map[string]bool{}
	recv := func() {
		select {
		case svc := <-entered:
			seen[svc] = true
		case <-ctx.Done():
			t.Fatal("timed out waiting for a step to start")
		}
	}
	for range limit {
		recv()
	}
	// Proving that no fifth step starts needs a grace period: a pool one
	// worker too wide starts it within milliseconds.
	select {
	case svc := <-entered:
		t.Fatalf("%s started while %d steps were running", svc, limit)
	case <-time.After(200 * time.Millisecond):
	}
	require.EqualValues(t, limit, inFlight.Load())
	// Free one slot at a time; each lets exactly one more VM in.
	for range vms - limit {
		release <- struct{}{}
		recv()
	}
	for range limit {
		release <- struct{}{}
	}
	r := <-result
	require.NoError(t, r.err)
	require.Len(t, seen, vms)
	require.EqualValues(t, limit, peak.Load())
	require.Equal(t, vms, r.s.Processed)
	require.Equal(t, vms, r.s.Advanced)
}

// heavyClone is a heavy step that submits a task (recording it on the VM's
// node) and waits until the test marks it finished.
type heavyClone struct {
	submitted atomic.Int32
	finished  sync.Map // service id → true
}

func (c *heavyClone) run(ctx context.Context, env *states.Env, vm store.VM) states.Result {
	if vm.PendingUPID == "" {
		// As the real clone step does: take a slot right before submitting.
		if !env.HeavySlot(vm.Node) {
			return states.Wait(fmt.Sprintf("node %s has %d heavy tasks in flight", vm.Node, env.HeavyLimit))
		}
		c.submitted.Add(1)
		if err := env.Store.VMSetPendingTask(ctx, vm.ID, vm.Status, vm.Version, "clone", vm.Node,
			"UPID:"+vm.Node+":"+vm.ServiceID, env.Now()); err != nil {
			return states.Retryable(err)
		}
		return states.Wait("clone submitted")
	}
	if _, ok := c.finished.Load(vm.ServiceID); ok {
		return states.Success()
	}
	return states.Wait("clone running")
}

// pendingPerNode counts VMs at set_ip with a pending task, per node.
func pendingPerNode(t *testing.T, h *harness) map[string]int {
	t.Helper()
	vms, err := h.st.VMList(h.ctx, store.VMFilter{Status: "set_ip"})
	require.NoError(t, err)
	out := map[string]int{}
	for _, vm := range vms {
		if vm.PendingUPID != "" {
			out[vm.Node]++
		}
	}
	return out
}

// TestHeavyPerNode: heavy steps start a task only while the node has fewer
// than heavy_per_node heavy tasks in flight, counting tasks pending from
// earlier ticks; light steps are not limited.
func TestHeavyPerNode(t *testing.T) {
	t.Parallel()
	clone := &heavyClone{}
	light := newCalls()
	p := states.MustPipeline("test", states.Creation, []states.Step{
		{From: states.SetIP, To: states.Clone, Label: "Clone VM", Heavy: true, Run: clone.run},
		{From: states.SetDNS, To: states.Migrated, Label: "Light", Run: light.wrap(wait("busy"))},
	})
	h := newHarness(t, "  process_vms: {concurrency: 8, heavy_per_node: 2}\n", p)
	// p0's clone was submitted by an earlier tick.
	p0 := h.vmOn("p0", "set_ip", "pve1")
	require.NoError(t, h.st.VMSetPendingTask(h.ctx, p0.ID, p0.Status, p0.Version, "clone", "pve1", "UPID:pve1:p0", t0))
	for _, svc := range []string{"a1", "a2", "a3"} {
		h.vmOn(svc, "set_ip", "pve1")
	}
	for _, svc := range []string{"b1", "b2", "b3"} {
		h.vmOn(svc, "set_ip", "pve2")
	}
	for _, svc := range []string{"l1", "l2", "l3", "l4"} {
		h.vmOn(svc, "set_dns", "pve1")
	}

	// Pass 1: pve1 has one slot left, pve2 two; light steps all run.
	_, out := h.pass()
	require.EqualValues(t, 3, clone.submitted.Load())
	require.Equal(t, map[string]int{"pve1": 2, "pve2": 2}, pendingPerNode(t, h))
	require.Contains(t, out, "waiting (node pve1 has 2 heavy tasks in flight)")
	require.Contains(t, out, "waiting (node pve2 has 2 heavy tasks in flight)")
	require.Equal(t, 4, light.of(""))

	// Pass 2: nothing finished, nothing new starts.
	h.at(time.Minute)
	h.pass()
	require.EqualValues(t, 3, clone.submitted.Load())
	require.Equal(t, 8, light.of(""))

	// Pass 3: the running clones finish; their slots free up for the next tick.
	vms, err := h.st.VMList(h.ctx, store.VMFilter{Status: "set_ip"})
	require.NoError(t, err)
	for _, vm := range vms {
		if vm.PendingUPID != "" {
			clone.finished.Store(vm.ServiceID, true)
		}
	}
	h.at(2 * time.Minute)
	s, _ := h.pass()
	require.Equal(t, 4, s.Advanced)
	require.EqualValues(t, 3, clone.submitted.Load())

	// Pass 4: the rest start: two on pve1, one on pve2.
	h.at(3 * time.Minute)
	h.pass()
	require.EqualValues(t, 6, clone.submitted.Load())
	require.Equal(t, map[string]int{"pve1": 2, "pve2": 1}, pendingPerNode(t, h))
}

// TestHeavyPerNodeCountsTasksOfVMsInBackoff: a VM whose heavy task is still
// in flight but that backs off (reading the task failed) still occupies a
// slot on its node.
func TestHeavyPerNodeCountsTasksOfVMsInBackoff(t *testing.T) {
	t.Parallel()
	clone := &heavyClone{}
	p := states.MustPipeline("test", states.Creation, []states.Step{
		{From: states.SetIP, To: states.Clone, Label: "Clone VM", Heavy: true, Run: clone.run},
	})
	h := newHarness(t, "  process_vms: {heavy_per_node: 2}\n", p)
	z := h.vmOn("z", "set_ip", "pve1")
	require.NoError(t, h.st.VMSetPendingTask(h.ctx, z.ID, z.Status, z.Version, "clone", "pve1", "UPID:pve1:z", t0))
	require.NoError(t, h.st.VMApplyOutcome(h.ctx, store.Outcome{ID: z.ID, FromStatus: z.Status, FromVersion: z.Version,
		ToStatus: z.Status, Attempts: 1, NextAttempt: t0.Add(time.Minute), LastError: "read task status: 595", Now: t0}))
	h.vmOn("a1", "set_ip", "pve1")
	h.vmOn("a2", "set_ip", "pve1")

	_, out := h.pass()
	require.EqualValues(t, 1, clone.submitted.Load(), "z's clone is still running on pve1")
	require.Equal(t, map[string]int{"pve1": 2}, pendingPerNode(t, h))
	require.Contains(t, out, "waiting (node pve1 has 2 heavy tasks in flight)")
}

// TestRunLog: every pass writes one run per VM with a line per step and an
// "event" line per Emit; the live output has the same lines and a summary.
func TestRunLog(t *testing.T) {
	t.Parallel()
	reserve := func(_ context.Context, env *states.Env, vm store.VM) states.Result {
		env.Emit("VMID 1042 reserved")
		env.Emit("IPv4 192.0.2.10 allocated")
		return states.Success()
	}
	h := newHarness(t, "  process_vms: {steps_per_tick: 2}\n",
		chain(reserve, script(states.Wait("clone running"), states.Success()), skip("no DNS zones configured"), done))
	vm := h.vm("svc-1", "creation")
	other := h.vm("svc-2", "clone")

	s, out := h.pass()
	require.Equal(t, engine.Summary{Processed: 2, Advanced: 3, Waiting: 1}, engine.Summary{
		Processed: s.Processed, Advanced: s.Advanced, Waiting: s.Waiting, Errors: s.Errors})
	require.Contains(t, out, "svc-1    VMID 1042 reserved\n")
	require.Contains(t, out, "svc-1    IPv4 192.0.2.10 allocated\n")
	require.Contains(t, out, "svc-1  Reserve VMID and IPs  creation → set_ip  success  (")
	require.Contains(t, out, "svc-1  Clone VM  set_ip  waiting (clone running)  (")
	require.Contains(t, out, "svc-2  Publish DNS  clone → set_dns  skip (no DNS zones configured)  (")
	require.Contains(t, out, "svc-2  Migrate to target node  set_dns → migrated  success  (")
	require.Contains(t, out, "process_vms: processed 2, advanced 3, waiting 1, errors 0 (")

	type line struct{ step, from, to, result, detail string }
	linesOf := func(r store.Run) []line {
		var out []line
		for _, l := range r.Lines {
			out = append(out, line{l.Step, l.From, l.To, l.Result, l.Detail})
		}
		return out
	}
	run := h.lastRun(vm.ID)
	require.Equal(t, "waiting", run.Result)
	require.Equal(t, t0, run.StartedAt)
	require.Equal(t, t0, run.FinishedAt)
	require.Equal(t, []line{
		{"Reserve VMID and IPs", "creation", "", "event", "VMID 1042 reserved"},
		{"Reserve VMID and IPs", "creation", "", "event", "IPv4 192.0.2.10 allocated"},
		{"Reserve VMID and IPs", "creation", "set_ip", "success", ""},
		{"Clone VM", "set_ip", "set_ip", "waiting (clone running)", ""},
	}, linesOf(run))

	run2 := h.lastRun(other.ID)
	require.Equal(t, "success", run2.Result)
	require.Equal(t, []line{
		{"Publish DNS", "clone", "set_dns", "skip (no DNS zones configured)", ""},
		{"Migrate to target node", "set_dns", "migrated", "success", ""},
	}, linesOf(run2))

	// Next tick: a new run per VM, newest first.
	h.at(time.Minute)
	_, out = h.pass()
	require.Contains(t, out, "process_vms: processed 2, advanced 2, waiting 0, errors 1 (")
	runs, err := h.st.RunsForVM(h.ctx, vm.ID, 10)
	require.NoError(t, err)
	require.Len(t, runs, 2)
	require.Equal(t, t0.Add(time.Minute), runs[0].StartedAt)
	require.Equal(t, "success", runs[0].Result)
	require.Equal(t, []line{
		{"Clone VM", "set_ip", "clone", "success", ""},
		{"Publish DNS", "clone", "set_dns", "skip (no DNS zones configured)", ""},
	}, linesOf(runs[0]))
	require.Equal(t, "waiting", runs[1].Result)

	// svc-2 is at migrated, where the table ends: an error, no run.
	require.Contains(t, out, `svc-2  no pipeline step from state "migrated"`)
	runs, err = h.st.RunsForVM(h.ctx, other.ID, 10)
	require.NoError(t, err)
	require.Len(t, runs, 1)
}

// TestIdlePassPrintsNothing: no due VMs (none, held, backing off, final)
// means no output and no runs.
func TestIdlePassPrintsNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", chain(mustNotRun(t), mustNotRun(t)))
	s, out := h.pass()
	require.Zero(t, s)
	require.Empty(t, out)

	held := h.vm("held", "creation")
	require.NoError(t, h.st.VMApplyOutcome(h.ctx, store.Outcome{ID: held.ID, FromStatus: held.Status,
		FromVersion: held.Version, ToStatus: held.Status, Held: true, Attempts: 1, LastError: "403", Now: t0}))
	backoff := h.vm("backoff", "set_ip")
	require.NoError(t, h.st.VMApplyOutcome(h.ctx, store.Outcome{ID: backoff.ID, FromStatus: backoff.Status,
		FromVersion: backoff.Version, ToStatus: backoff.Status, Attempts: 3, NextAttempt: t0.Add(4 * time.Minute),
		LastError: "timeout", Now: t0}))
	h.vm("done", "ready")
	s, out = h.pass()
	require.Zero(t, s)
	require.Empty(t, out)
}
