package states

import (
	"context"
	"errors"
	"slices"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/store"
)

// Needs is what the runner resolves for a step before it calls the step's
// function (see Step.Call).
type Needs uint8

const (
	// NeedProduct: the VM's product, as env.Product; a product missing from
	// the config holds the VM with the valid names.
	NeedProduct Needs = 1 << iota
	// NeedLocation: where the VM lives now (its node updated in the record
	// if it moved); a VM missing from the cluster holds the VM.
	NeedLocation
	// NeedConfig: the VM's current PVE config, as env.VMConfig (implies
	// NeedLocation).
	NeedConfig
	// NeedUnlocked: the step acts on the VM in PVE but looks at it itself
	// (the terminate's and the reinstall's steps): the runner reads the
	// VM's status first, only for its lock (WaitsForLock), and leaves a
	// VM it cannot find or read to the step.
	NeedUnlocked
)

// follows is a Step.Task naming a task that is the same for every VM.
func follows(what string) func(*Env, store.VM) string {
	return func(*Env, store.VM) string { return what }
}

// Call runs the step for vm the way the runner does, in the order the
// step contract needs (look before acting):
//
//  1. a step that runs while the VM is stopped (Stopped) first makes sure
//     it is: a graceful shutdown, then a forced stop, across ticks — unless
//     a task of the step itself is in flight;
//  2. the product (NeedProduct), then SkipIf, then where the VM is
//     (NeedLocation) and its config (NeedConfig);
//  3. the step's own pending PVE task (Task): running → waiting with its
//     progress, and the function is not called; failed, lost or unreadable
//     → OnTaskError, or that error (the task reference dropped, so the next
//     attempt looks again); ended OK → the function runs with env.TaskDone;
//  4. the function, with the resolved product, location and config in env.
//
// While PVE holds a backup, snapshot, snapshot-delete or rollback lock on
// the VM (WaitsForLock), a step that resolves its location or config, or
// declares NeedUnlocked, waits ("PVE lock backup") without running, unless
// its own task is in flight;
// and any step whose error is PVE refusing because of such a lock waits
// too (lockWait).
//
// A Stopped step whose result holds the VM starts it again (best effort), so
// the customer is not left offline while it waits for an admin.
func (s Step) Call(ctx context.Context, env *Env, vm store.VM) Result {
	e := *env // the resolved values are this step's alone
	env = &e
	if !s.Stopped {
		return lockWait(s.resolve(ctx, env, vm))
	}
	if res := keepStopped(ctx, env, &vm); res != nil {
		return lockWait(*res)
	}
	res := lockWait(s.resolve(ctx, env, vm))
	if res.Kind != Fail || res.Goto != "" {
		return res
	}
	if _, err := env.PVE.Start(ctx, ref(vm), proxmox.StartOptions{}); err != nil && !proxmox.IsAlreadyRunning(err) {
		env.Emit("could not start the VM again after the failure: " + err.Error())
	} else {
		env.Emit("started the VM again so the customer is not left offline; after fixing the cause, pvectl vm retry stops it and resumes at this step")
	}
	return res
}

// pveLocks are the config locks of PVE's own jobs on a VM (vzdump, a
// snapshot, its deletion, a rollback) that every step waits out instead of
// failing: they end on their own. Clone and migrate locks are the steps'
// own business (staleLock).
var pveLocks = []string{"backup", "snapshot", "snapshot-delete", "rollback"}

// WaitsForLock reports whether a step waits while PVE shows this config
// lock on the VM.
func WaitsForLock(lock string) bool { return slices.Contains(pveLocks, lock) }

// lockWait turns a step's error that says PVE refused because of one of
// its own jobs' locks ("VM is locked (backup)") into a wait: no attempt
// counted, no backoff, no hold, no error_terminate; the step runs again
// next tick. A failed task's reference is still dropped (ClearTask), so it
// looks again.
func lockWait(res Result) Result {
	if !res.Kind.Failed() {
		return res
	}
	if lock := proxmox.ConfigLock(res.Err); WaitsForLock(lock) {
		return Result{Kind: Waiting, Reason: "PVE lock " + lock, ClearTask: res.ClearTask}
	}
	return res
}

// resolve does steps 2–4 of Call.
func (s Step) resolve(ctx context.Context, env *Env, vm store.VM) Result {
	if s.Needs&NeedProduct != 0 {
		p, bad := product(env, vm)
		if bad != nil {
			return *bad
		}
		env.Product = p
	}
	if s.SkipIf != nil {
		if why := s.SkipIf(env, vm); why != "" {
			return Skip(why)
		}
	}
	// The step's own pending task, when naming it needs no config, is read
	// first: while it runs the step waits without locating the VM.
	var taskRead, taskDone bool
	var taskRes Result
	if s.Task != nil && pending(vm) && s.Needs&NeedConfig == 0 {
		if what := s.Task(env, vm); what != "" {
			taskRead = true
			taskDone, taskRes = awaitTask(ctx, env, vm, what)
			if !taskDone && taskRes.Kind == Waiting {
				return taskRes
			}
		}
	}
	// The pending task of a step that names it from the config (a disk's
	// resize) is read before the config too: ended OK, the step is done
	// without it (such a step's function returns done on env.TaskDone
	// before it looks at env.VMConfig); otherwise it is named once the
	// config is read, and judged from this same read.
	var early *taskLook
	if s.Task != nil && pending(vm) && s.Needs&NeedConfig != 0 {
		st, err := env.PVE.TaskStatus(ctx, pendingTask(vm))
		if taskEndedOK(st, err) {
			taskRead, taskDone = true, true
		} else {
			early = &taskLook{st: st, err: err}
		}
	}
	locating := s.Needs&(NeedLocation|NeedConfig) != 0
	// A task that ended OK on the VM's node says where the VM is: it just
	// ran there. Not a heavy step's task: a migration moves the VM.
	if taskDone && !s.Heavy && vm.PendingNode == vm.Node {
		locating = false
	}
	if locating {
		var lock string
		if s.Needs&NeedConfig != 0 {
			cfg, res := locateConfig(ctx, env, &vm)
			if res != nil {
				return *res
			}
			env.VMConfig, lock = cfg, cfg.Lock()
		} else {
			l, res := locate(ctx, env, &vm)
			if res != nil {
				return *res
			}
			lock = l
		}
		// A backup, snapshot or rollback PVE is running on the VM: the
		// step waits for it, unless its own task (a snapshot deletion) is
		// what holds the lock.
		if WaitsForLock(lock) && !pending(vm) {
			return Wait("PVE lock " + lock)
		}
	} else if s.Needs&NeedUnlocked != 0 && vm.VMID != 0 && vm.Node != "" && !pending(vm) {
		if st, err := env.PVE.VMStatus(ctx, ref(vm)); err == nil && WaitsForLock(st.Lock) {
			return Wait("PVE lock " + st.Lock)
		}
	}
	if s.Task != nil && pending(vm) && !taskRead {
		if what := s.Task(env, vm); what != "" {
			taskRead = true
			if early != nil {
				taskDone, taskRes = judgeTask(ctx, env, vm, what, early.st, early.err)
			} else {
				taskDone, taskRes = awaitTask(ctx, env, vm, what)
			}
		}
	}
	if taskRead {
		if !taskDone {
			if taskRes.Kind != Waiting && s.OnTaskError != nil {
				return s.OnTaskError(ctx, env, vm, taskRes)
			}
			return taskRes
		}
		env.TaskDone = true
	}
	return s.Run(ctx, env, vm)
}

// taskLook is a status read of the VM's stored task, judged later.
type taskLook struct {
	st  proxmox.TaskStatus
	err error
}

// errStillRunning: the stop gave up (still running after the graceful
// shutdown and the forced stop); the next attempt starts over.
var errStillRunning = errors.New("VM still running after graceful shutdown and forced stop; will try again")

// keepStopped makes sure the VM is stopped before a change-package step
// that runs while it is (cp_stop … cp_firewall): after a failure that
// started it again, `pvectl vm retry` resumes at that same step, and the
// step stops the VM again (graceful shutdown, then forced, as cp_stop
// does) before it runs. A task of the step itself in flight means the VM
// was stopped when it was submitted. nil means the step may run.
func keepStopped(ctx context.Context, env *Env, vm *store.VM) *Result {
	mem := memory(*vm)
	stopping := mem.ShutdownAt != nil
	if pending(*vm) && !stopping {
		return nil // the step's own task: Call follows it
	}
	stopped, res := stopVM(ctx, env, vm)
	if !stopped {
		if res.Kind == PartlyDone { // still running after graceful and forced stop
			_ = saveMemory(ctx, env, vm, StepMemory{})
			res = Retryable(errStillRunning)
		}
		return &res
	}
	if stopping { // our stop is done: forget it, so the step sees only its own task
		mem.ShutdownAt, mem.StopAt = nil, nil
		if err := saveMemory(ctx, env, vm, mem); err != nil {
			res := Retryable(err)
			return &res
		}
		if err := env.Store.VMSetPendingTask(ctx, vm.ID, vm.Status, vm.Version, "", "", "", env.Now()); err != nil {
			res := Retryable(err)
			return &res
		}
		vm.PendingUPID, vm.PendingNode, vm.PendingStep = "", "", ""
		env.Emit("VM stopped again; resuming the change at this step")
	}
	return nil
}
