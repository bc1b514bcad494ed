package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
)

// ProcessVMsTask advances the VMs through their pipelines.
func ProcessVMsTask() Task {
	return Task{
		Name:            "process_vms",
		Description:     "advance every VM not in a final state by one step of its pipeline",
		DefaultInterval: time.Minute,
		Run: func(ctx context.Context, e *Engine) (TaskCounts, error) {
			s, err := e.ProcessVMs(ctx)
			msg := fmt.Sprintf("advanced %d, waiting %d", s.Advanced, s.Waiting)
			// VMs the cron no longer touches show in `pvectl tasks` until
			// an admin acts on them.
			if held, et, cerr := e.Store.VMCountAttention(ctx); cerr == nil && held+et > 0 {
				msg += fmt.Sprintf("; needs attention: %d held, %d error_terminate", held, et)
			}
			return TaskCounts{Processed: s.Processed, Errors: s.Errors, Message: msg}, err
		},
	}
}

// Backoff for retryable errors, in ticks of one minute: 1, 2, 4, … capped
// at MaxBackoff, with ±20% jitter so a fleet of VMs hitting one broken node
// spreads out (never past MaxBackoff).
const (
	BaseBackoff = time.Minute
	MaxBackoff  = store.MaxRetryDelay
)

// Backoff returns the delay before attempt number attempts+1.
func Backoff(attempts int, jitter float64) time.Duration {
	d := BaseBackoff
	for i := 1; i < attempts && d < MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, MaxBackoff)
	// The cap is hard: jitter may shorten a capped delay, never lengthen it.
	return min(time.Duration(float64(d)*(1+0.4*(jitter-0.5))), MaxBackoff)
}

// endOfTime is later than any backoff.
var endOfTime = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// ProcessVMs runs one pass of the step runner: every due VM takes up to
// steps_per_tick steps, VMs in parallel up to concurrency. The restore
// table's states are restore_backup's (RestoreBackups), not this pass's.
func (e *Engine) ProcessVMs(ctx context.Context) (Summary, error) {
	start, mark := time.Now(), e.Live.Mark()
	dnsb := e.newDNSBreaker()  // one per pass, per DNS server: the retry and the steps share it
	e.retryDNS(ctx, dnsb)      // DNS-dirty VMs in any state, with backoff; never fails the pass
	fleet := states.NewFleet() // the pass's one /cluster/resources, first read by the suspended VMs' look
	e.keepSuspended(ctx, fleet)
	e.startQueuedSuspends(ctx)
	e.startQueuedBackups(ctx) // backups of ready/suspended VMs: quota rotation, then vzdump
	e.driveSnapshots(ctx)     // snapshot create/delete/rollback of ready/suspended VMs
	s, err := e.runSteps(ctx, "process_vms", start, mark, func(s states.State) bool { return !states.Restoring(s) }, dnsb, fleet)
	e.warnDNSBreaker(dnsb, "process_vms")
	return s, err
}

// runSteps is one pass of the step runner for task over the due VMs whose
// status take accepts. start and mark (Live.Mark) are taken when the task
// began; dnsb is the pass's DNS breaker, fleet its view of
// /cluster/resources (nil: a new one).
func (e *Engine) runSteps(ctx context.Context, task string, start time.Time, mark int64, take func(states.State) bool, dnsb *dnsBreaker, fleet *states.Fleet) (Summary, error) {
	now := e.Clock.Now()
	// Every VM under way and not held: those due now are advanced; all of
	// them count for the heavy-task slots below (a VM backing off, say
	// after reading its task's status failed, may still have a heavy task
	// running on its node).
	pending, err := e.Store.VMsDue(ctx, endOfTime, finalStates())
	if err != nil {
		return Summary{}, err
	}
	var vms []store.VM
	for _, vm := range pending {
		if store.Due(vm, now) && take(states.State(vm.Status)) {
			vms = append(vms, vm)
		}
	}
	e.Live.Logger().Debug().Int("due", len(vms)).Msgf("%s: %d VM(s) due", task, len(vms))
	if len(vms) == 0 {
		return Summary{}, nil // an idle tick prints nothing
	}
	env, err := e.Env(ctx)
	if err != nil {
		return Summary{}, fmt.Errorf("prepare step environment: %w", err)
	}
	env = e.safetyNet(env, fleet)
	if dnsb != nil && env.DNS != nil {
		pass := *env
		pass.DNS = dnsb.wrap(env.DNS)
		env = &pass
	}
	backups, err := e.Store.BackupsInFlightVMs(ctx)
	if err != nil {
		return Summary{}, err
	}
	opts := e.Config.Tasks.ProcessVMs
	r := &runPass{e: e, env: env, task: task, take: take, backups: backups, settling: newSettling(),
		heavy: newNodeLimiter(opts.HeavyPerNode, pending, e.Pipelines)}
	e.countBackupsHeavy(ctx, r.heavy) // a running vzdump is a heavy task on its node

	work := make(chan store.VM)
	workers := max(1, min(opts.Concurrency, len(vms)))
	done := make(chan finished, workers) // each VM a worker finished
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for vm := range work {
				var requests atomic.Int64
				r.advance(proxmox.WithRequestCount(ctx, &requests), vm, max(1, opts.StepsPerTick))
				done <- finished{node: vm.Node, requests: int(requests.Load())}
			}
		})
	}
	go func() { // dispatch stops reading done when it returns
		wg.Wait()
		close(done)
	}()
	perNode := e.Config.Proxmox.MaxRequestsPerNode
	if perNode <= 0 { // no per-node limit (the adapter's 0)
		perNode = len(vms)
	}
	dispatch(ctx, vms, perNode, work, done)
	close(work)
	for range done {
	}
	_ = r.settling.Wait() // its functions return nil

	r.mu.Lock()
	s := r.sum
	r.mu.Unlock()
	s.Duration = time.Since(start)
	e.Live.TaskSummary(task, s, mark)
	if line, err := r.pve.summary(task); err != nil {
		e.Live.Logger().Error().Str("task", task).Msg(line)
		return s, err
	}
	return s, ctx.Err()
}

// safetyNet returns a copy of env with a fresh safety net for this pass:
// the first step that hands out addresses looks for PVE VMs that carry
// pvectl's marker but that no record knows (the database was lost,
// replaced or restored from an old copy) and keeps their addresses out.
// What it finds, or a failure to look, is said in one warning line.
func (e *Engine) safetyNet(env *states.Env, fleet *states.Fleet) *states.Env {
	if env.PVE == nil {
		return env
	}
	if fleet == nil {
		fleet = states.NewFleet()
	}
	pass := *env
	pass.Fleet = fleet               // one /cluster/resources per pass, for the looks a stale view cannot mislead
	pass.Claims = states.NewClaims() // its workers pick VMIDs and addresses one at a time, from one read of what is taken
	pass.Strays = states.NewStrays(func(w string) {
		e.Live.Logger().Warn().Str("task", "process_vms").Msg("process_vms: " + w)
	})
	return &pass
}

type runPass struct {
	e     *Engine
	env   *states.Env
	task  string                  // process_vms, restore_backup
	take  func(states.State) bool // the states this pass runs steps for
	heavy *nodeLimiter
	// backups: the VMs with a backup's PVE task in flight when the pass
	// began (waitForBackup).
	backups map[int64]bool
	// settling: outcomes of VMs' last steps being written (advance).
	settling *errgroup.Group
	pve      pveBreaker
	mu       sync.Mutex
	sum      Summary
}

func (r *runPass) count(f func(*Summary)) {
	r.mu.Lock()
	f(&r.sum)
	r.mu.Unlock()
}

// advance runs up to n steps for one VM, stopping at the first step that
// does not complete.
func (r *runPass) advance(ctx context.Context, vm store.VM, n int) {
	if r.pve.skip() {
		return // PVE is down or refuses the token: not touched this tick
	}
	r.count(func(s *Summary) { s.Processed++ })
	if r.waitForBackup(ctx, vm) {
		return // a backup's PVE task is in flight on the VM: no step runs
	}
	e := r.e
	// The VM's run is opened lazily: by the step's first emitted line, by
	// an outcome not applied, or else in the same write as the step's
	// outcome (Outcome.StartRun), so a quiet step costs one group-commit
	// write instead of two.
	var runMu sync.Mutex
	var runID int64
	runAt := e.Clock.Now()
	ensureRun := func() (int64, error) {
		runMu.Lock()
		defer runMu.Unlock()
		if runID == 0 {
			id, err := e.Store.RunStart(context.WithoutCancel(ctx), vm.ID, r.task, runAt)
			if err != nil {
				return 0, err
			}
			runID = id
		}
		return runID, nil
	}
	result, finished, handedOff := RunSuccess, false, false
	closeRun := func() {
		runMu.Lock()
		id := runID
		runMu.Unlock()
		if id != 0 && !finished {
			_ = e.Store.RunFinish(context.WithoutCancel(ctx), id, string(result), e.Clock.Now())
		}
	}
	defer func() {
		if !handedOff {
			closeRun()
		}
	}()
	for i := 0; i < n; i++ {
		step, table, ok := e.Pipelines.StepFor(states.State(vm.Status))
		if !ok {
			e.Live.Logger().Error().Str("vm", vm.ServiceID).Msgf("%s  no pipeline step from state %q; use pvectl reset-status", vm.ServiceID, vm.Status)
			r.count(func(s *Summary) { s.Errors++ })
			result = RunError
			return
		}
		env := *r.env
		// Heavy steps take a per-node slot before they look, and give it
		// back when the look shows there is nothing to submit.
		env.HeavySlot = func(node string) bool { return r.heavy.acquire(node) }
		env.HeavyLimit = r.heavy.limit
		env.HeavyRelease = r.heavy.release
		emitted, stepVM := &atomic.Bool{}, vm
		env.Emit = func(detail string) {
			emitted.Store(true)
			id, err := ensureRun()
			if err != nil {
				e.Live.Sub(stepVM.ServiceID, step.Label, detail) // printed; the log could not take it
				return
			}
			e.emitter(ctx, stepVM, id, step.Label)(detail)
		}

		began := time.Now()
		e.Live.Logger().Debug().Str("vm", vm.ServiceID).Str("step", step.Label).
			Msgf("%s  %s: running %q (version %d, attempts %d, pending %q)", vm.ServiceID, vm.Status, step.Label, vm.Version, vm.Attempts, vm.PendingUPID)
		raw := runStep(ctx, step, &env, vm)
		res := r.pve.observe(raw)
		took := time.Since(began)

		outcome := resultOf(res)
		line := StepLine{VM: vm.ServiceID, Hostname: vm.Hostname, Step: step.Label, From: vm.Status,
			To: string(step.To), Result: res.Label(), Failed: outcome == RunError, Duration: took}
		// A wait is left out of a quiet tick unless the step said
		// something on the way (it started a restore, forced a stop) or
		// waits for PVE to answer again (an outage needs attention).
		line.Waiting = outcome == RunWaiting && !emitted.Load() && !res.Outage
		if outcome != RunSuccess {
			line.To = vm.Status
		}
		if res.Goto != "" {
			line.To = string(res.Goto)
		}
		// The table's FSM, built at the VM's stored state, takes the
		// outcome as an event; an outcome it refuses is never written.
		to, err := table.Transition(ctx, states.State(vm.Status), step, res)
		var o store.Outcome
		var cur store.VM
		if err == nil {
			// A step that succeeds with more steps to go hands the VM as
			// written to the next one: it is read fresh for that.
			chain := i < n-1 && (res.Kind == states.Done || res.Kind == states.Skipped || res.Kind == states.PartlyDone)
			o, cur, err = r.outcome(ctx, vm, to, res, chain)
		}
		last := true
		if err == nil {
			last = outcome != RunSuccess || i == n-1 || states.State(o.ToStatus).Final()
		}
		// settle writes the outcome and reports the step (live line,
		// metrics, summary). It returns the VM as written and whether the
		// pass runs its next step.
		settle := func() (store.VM, bool) {
			var next store.VM
			if err == nil {
				if res.Kind == states.Retry {
					line.Result += fmt.Sprintf(" (attempt %d; next try in %s)", o.Attempts, o.NextAttempt.Sub(o.Now).Round(time.Second))
				}
				// The outcome, its log line and (on the pass's last step)
				// the run's end are one transaction.
				runMu.Lock()
				o.Line = &store.RunLine{RunID: runID, At: o.Now, Step: step.Label, From: line.From, To: line.To,
					Result: line.Result, Duration: took}
				runMu.Unlock()
				if o.Line.RunID == 0 {
					o.StartRun, o.RunStartedAt = r.task, runAt
				}
				if last {
					o.FinishRun = string(outcome)
				}
				var id int64
				next, id, err = e.Store.VMApplyStepRun(ctx, cur, o)
				if err == nil {
					runMu.Lock()
					runID = id
					runMu.Unlock()
				}
				if errors.Is(err, store.ErrConflict) {
					err = stepMovedError(ctx, e.Store, vm)
				}
				finished = err == nil && last
			}
			if err != nil {
				line.Result, line.Failed = notApplied+": "+err.Error(), true
				if id, rerr := ensureRun(); rerr == nil {
					_ = e.Store.RunAppendLine(context.WithoutCancel(ctx), store.RunLine{RunID: id, At: e.Clock.Now(),
						Step: step.Label, From: line.From, To: line.To, Result: line.Result, Duration: took})
				}
			}
			e.Live.Step(line)
			e.Metrics.Step(step.Label, raw, err)
			switch {
			case err != nil:
				r.count(func(s *Summary) { s.Errors++ })
				result = RunError
			case outcome == RunSuccess:
				r.count(func(s *Summary) { s.Advanced++ })
				return next, !states.State(next.Status).Final() && r.take(states.State(next.Status))
			case outcome == RunWaiting:
				r.count(func(s *Summary) { s.Waiting++ })
				result = RunWaiting
			default:
				r.count(func(s *Summary) { s.Errors++ })
				result = RunError
			}
			return next, false
		}
		// The VM's last step of the pass: the worker takes the next VM
		// while the group commit makes this outcome durable; the step is
		// reported (live line, summary) once it is. So a commit holds the
		// outcomes of many more steps than there are workers.
		if last && err == nil && r.settling != nil {
			handedOff = true
			r.settling.Go(func() error {
				settle()
				closeRun()
				return nil
			})
			return
		}
		next, more := settle()
		if !more {
			return
		}
		vm = next
	}
}

// settlingLimit is how many outcomes a pass has in the group commit at
// most (their goroutines wait there; a worker waits for room).
const settlingLimit = 256

// newSettling is the group that runs the outcomes handed off by the
// workers, at most settlingLimit at a time; the pass waits for it before
// its summary. Its functions never return an error.
func newSettling() *errgroup.Group {
	g := &errgroup.Group{}
	g.SetLimit(settlingLimit)
	return g
}

// runStep runs a step through Step.Call, which resolves what the step
// declared before its function runs (the product, where the VM is, its
// config, the step's pending PVE task: running → waiting, failed → the
// step's task-error hook or the error, done → the function). A panic
// becomes a held VM rather than a crashed tick.
func runStep(ctx context.Context, step states.Step, env *states.Env, vm store.VM) (res states.Result) {
	defer func() {
		if p := recover(); p != nil {
			res = states.Permanent(fmt.Errorf("step %q panicked: %v", step.Label, p))
		}
	}()
	return step.Call(ctx, env, vm)
}

// outcome builds the compare-and-set a step's result asks for. Its base is
// the VM as the pass read it: the columns an outcome sets (attempts, step
// waits, last error, held) change only with the VM's version, which the
// compare-and-set checks. The VM is read again only where the outcome
// needs what the step may have recorded meanwhile (VMID, node, task): for a
// notification, or when fresh (the next step of the pass runs on it). The
// VM returned is that base (for Outcome.Apply).
func (r *runPass) outcome(ctx context.Context, vm store.VM, to states.State, res states.Result, fresh bool) (store.Outcome, store.VM, error) {
	now := r.e.Clock.Now()
	o := buildOutcome(vm, to, res, now)
	if ev, _ := eventOf(vm, o); !fresh && ev == "" {
		return o, vm, nil
	}
	cur, err := r.e.Store.VMGet(ctx, vm.ID)
	if err != nil {
		return store.Outcome{}, cur, err
	}
	if cur.Status != vm.Status || cur.Version != vm.Version {
		return store.Outcome{}, cur, moved(cur)
	}
	o = buildOutcome(cur, to, res, now)
	// A notification the outcome causes is written with it (the outbox).
	o.Events = r.e.outboxFor(cur, o)
	return o, cur, nil
}

// moved is the error of an outcome not applied because the VM moved.
func moved(cur store.VM) error {
	return fmt.Errorf("VM moved to %s (version %d) by someone else during the step; left as is", cur.Status, cur.Version)
}

// stepMovedError explains a compare-and-set that found the VM moved.
func stepMovedError(ctx context.Context, st *store.Store, vm store.VM) error {
	cur, err := st.VMGet(ctx, vm.ID)
	if err != nil {
		return fmt.Errorf("VM changed by someone else during the step; left as is")
	}
	return moved(cur)
}

// buildOutcome is the compare-and-set res asks for, from cur.
func buildOutcome(cur store.VM, to states.State, res states.Result, now time.Time) store.Outcome {
	vm := cur
	o := store.Outcome{ID: vm.ID, FromStatus: vm.Status, FromVersion: vm.Version, ToStatus: vm.Status,
		Attempts: cur.Attempts, StepWaits: cur.StepWaits, ClearPending: res.ClearTask, Now: now}
	switch res.Kind {
	case states.Done, states.Skipped, states.PartlyDone:
		o.ToStatus, o.Attempts, o.StepWaits, o.ClearPending = string(to), 0, 0, true
	case states.Waiting:
		if !res.Outage {
			o.StepWaits++
		}
		o.LastError = cur.LastError
		o.WaitReason = res.Reason
	case states.Retry:
		o.Attempts++
		o.StepWaits = 0
		o.NextAttempt = now.Add(Backoff(o.Attempts, rand.Float64()))
		o.LastError = states.ErrText(res.Err)
	case states.Fail:
		o.Attempts++
		o.StepWaits = 0
		o.Held = true
		o.LastError = states.ErrText(res.Err)
		if res.Goto != "" {
			o.ToStatus, o.Held, o.ClearPending = string(to), false, true
		}
	}
	return o
}

// nodeLimiter caps in-flight heavy PVE tasks per node: those already pending
// from earlier ticks plus those submitted in this pass.
type nodeLimiter struct {
	limit int
	mu    sync.Mutex
	used  map[string]int
}

func newNodeLimiter(limit int, vms []store.VM, reg states.Registry) *nodeLimiter {
	l := &nodeLimiter{limit: limit, used: map[string]int{}}
	for _, vm := range vms {
		if vm.PendingUPID == "" {
			continue
		}
		if st, _, ok := reg.StepFor(states.State(vm.Status)); ok && st.Heavy {
			l.used[vm.Node]++
		}
	}
	return l
}

// release gives back a slot acquire took for a task that was not submitted.
func (l *nodeLimiter) release(node string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.used[node] > 0 {
		l.used[node]--
	}
}

func (l *nodeLimiter) acquire(node string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.used[node] >= l.limit {
		return false
	}
	l.used[node]++
	return true
}
