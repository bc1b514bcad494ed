// Power steps: stop (graceful, then forced, across ticks) for a
// change-package or a terminate, the change-package's keep-stopped wrapper,
// start, and the wait for the guest to run.

package states

import (
	"context"
	"fmt"
	"time"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/store"
)

// stopForChange stops the VM for the hardware changes: a graceful shutdown,
// then a forced stop once stop_timeout has passed (measured across ticks).
// It follows no task: it looks at the VM's status (NeedLocation).
func stopForChange(ctx context.Context, env *Env, vm store.VM) Result {
	sent := memory(vm).ShutdownAt != nil
	stopped, res := stopVM(ctx, env, &vm)
	if stopped && !sent {
		return Skip("VM already stopped")
	}
	if stopped {
		return Success()
	}
	if res.Kind == PartlyDone { // gave up: still running after the forced stop
		// The next attempt starts over with a graceful shutdown.
		_ = saveMemory(ctx, env, &vm, StepMemory{})
		return Retryable(errStillRunning)
	}
	return res
}

// stopVM drives a VM towards stopped without ever waiting inside a tick:
// a graceful shutdown first, always; a forced stop once stop_timeout has
// passed since the shutdown was sent (measured across ticks and backoffs,
// remembered in the step's data); after another stop_timeout it gives up
// with a Skip result. stopped reports the VM is stopped now.
func stopVM(ctx context.Context, env *Env, vm *store.VM) (stopped bool, res Result) {
	st, err := readStatus(ctx, env, *vm)
	if proxmox.IsNotFound(err) {
		return true, Result{}
	}
	if err != nil {
		return false, fromError("read VM status", err)
	}
	if st.Stopped() {
		return true, Result{}
	}
	timeout := env.Config.Tasks.ProcessVMs.StopTimeout.D()
	now := env.Now()
	mem := loadMemory(ctx, env, vm)
	sinceShutdown, sent := since(ctx, env, vm, &mem, &mem.ShutdownAt)
	if !sent {
		task, err := env.PVE.Shutdown(ctx, ref(*vm), proxmox.ShutdownOptions{Timeout: timeout})
		if proxmox.IsNotRunning(err) {
			return true, Result{}
		}
		if err != nil {
			return false, fromError("shutdown", err)
		}
		mem.ShutdownAt = stamp(now)
		if err := saveMemory(ctx, env, vm, mem); err != nil {
			return false, Retryable(err)
		}
		return false, submit(ctx, env, *vm, "graceful shutdown", task, nil)
	}
	if waited := sinceShutdown; waited < timeout {
		return false, Wait(fmt.Sprintf("waiting for graceful shutdown (%s of %s)", waited.Round(time.Second), timeout))
	}
	sinceStop, forced := since(ctx, env, vm, &mem, &mem.StopAt)
	if !forced {
		env.Emit(fmt.Sprintf("graceful shutdown did not finish in %s; forcing stop", timeout))
		task, err := env.PVE.Stop(ctx, ref(*vm), proxmox.StopOptions{OverruleShutdown: true})
		if proxmox.IsNotRunning(err) {
			return true, Result{}
		}
		if err != nil {
			return false, fromError("stop", err)
		}
		mem.StopAt = stamp(now)
		if err := saveMemory(ctx, env, vm, mem); err != nil {
			return false, Retryable(err)
		}
		return false, submit(ctx, env, *vm, "forced stop", task, nil)
	}
	if waited := sinceStop; waited < timeout {
		return false, Wait(fmt.Sprintf("waiting for forced stop (%s)", waited.Round(time.Second)))
	}
	why := ""
	if vm.PendingUPID != "" { // the forced stop's task says why it did not stop
		if ts, err := env.PVE.TaskStatus(ctx, proxmox.TaskRef{Node: vm.PendingNode, UPID: vm.PendingUPID}); err == nil && ts.Err() != nil {
			why = "; the stop task ended: " + ts.ExitStatus
		}
	}
	return false, Partial(fmt.Sprintf("still %s after graceful shutdown and forced stop%s", st.Status, why))
}

func stopForTerminate(ctx context.Context, env *Env, vm store.VM) Result {
	if res := cloneBusy(ctx, env, &vm); res != nil {
		return *res
	}
	if g, res := gone(ctx, env, &vm); res != nil {
		return *res
	} else if g {
		return Skip("VM is not in the cluster")
	}
	if f, res := foreign(ctx, env, vm); res != nil {
		return *res
	} else if f {
		return Skip(fmt.Sprintf("VMID %d holds a VM pvectl did not create; not stopping it", vm.VMID))
	}
	stopped, res := stopVM(ctx, env, &vm)
	if stopped {
		return Success()
	}
	if res.Kind == PartlyDone {
		res.Reason += "; going on: PVE refuses to delete a running VM, so if it is still running then, the VM goes to error_terminate with its IPs kept"
	}
	return res
}

// startVM starts the VM (NeedLocation); the runner follows the start task
// (Task "start"), and the step is done once it ended OK.
func startVM(ctx context.Context, env *Env, vm store.VM) Result {
	if env.TaskDone {
		seen(ctx, env, vm, "running")
		return Success()
	}
	st, err := readStatus(ctx, env, vm)
	if err != nil {
		return fromError("read VM status", err)
	}
	if st.Status == "running" {
		return Skip("already running")
	}
	task, err := env.PVE.Start(ctx, ref(vm), proxmox.StartOptions{})
	if proxmox.IsAlreadyRunning(err) {
		return Skip("already running")
	}
	return submit(ctx, env, vm, "start", task, err)
}

// startTaskError: a start task that failed because the VM is already
// running did what the step wants.
func startTaskError(_ context.Context, _ *Env, _ store.VM, failed Result) Result {
	if proxmox.IsAlreadyRunning(failed.Err) {
		return Success()
	}
	return failed
}

// retrying reports whether this is the first tick of a new attempt of the
// VM's step after an error: no wait counted yet, and an error recorded. It
// covers both ways a retry comes: the backoff ended (attempts > 0) and
// `pvectl vm retry` (attempts and step data reset to zero, the last error
// kept). A VM that just entered its step has neither: the step's outcome
// clears the last error.
func retrying(vm store.VM) bool {
	return vm.StepWaits == 0 && (vm.Attempts > 0 || vm.LastError != "")
}

// verifyRunning waits up to start_wait_ticks ticks for the guest to run,
// then emits the "VM is ready" notification event (deploy).
func verifyRunning(ctx context.Context, env *Env, vm store.VM) Result {
	return awaitRunning(ctx, env, vm, func(vm store.VM) Result {
		env.Emit(fmt.Sprintf("event: VM is ready — %s (VMID %d on %s)", vm.Hostname, vm.VMID, vm.Node))
		return Success()
	})
}

// verifyRunningAfterChange waits for the guest like verifyRunning, then
// frees the addresses the change took away and emits the "upgraded"
// notification event (change-package), or "backup restored" when the
// change re-applied the product after a restore (restore_volid).
func verifyRunningAfterChange(ctx context.Context, env *Env, vm store.VM) Result {
	return awaitRunning(ctx, env, vm, func(vm store.VM) Result {
		// The guest runs with its new addresses: the ones taken away are
		// free now, unless DNS still points at them (then the DNS retry
		// frees them once it has deleted their records).
		if !vm.DNSDirty {
			if err := freeTakenAddresses(ctx, env, vm, CPStart); err != nil {
				return Retryable(err)
			}
		}
		if vm.RestoreVolid != "" {
			env.Emit(fmt.Sprintf("event: backup restored — %s from %s", vm.Hostname, vm.RestoreVolid))
			return Success()
		}
		env.Emit(fmt.Sprintf("event: upgraded — %s now runs product %s (package changed)", vm.Hostname, vm.Product))
		return Success()
	})
}

// awaitRunning waits up to start_wait_ticks ticks for the guest to run and
// then returns running's result. A guest found stopped on a retry is
// started again. It looks at the guest before its start task (NeedLocation,
// no Task): a running guest is the step's effect, whatever the task says.
func awaitRunning(ctx context.Context, env *Env, vm store.VM, running func(vm store.VM) Result) Result {
	st, err := readStatus(ctx, env, vm)
	if err != nil {
		return fromError("read VM status", err)
	}
	if st.Running() {
		return running(vm)
	}
	if pending(vm) {
		// The start this step requested again: a failed start task is an
		// error with its exit status, not a silent wait.
		if ok, res := awaitTask(ctx, env, vm, "start again"); !ok {
			return res
		}
	} else if st.Stopped() && retrying(vm) {
		// A retry after the guest did not come up (the backoff ended, or
		// `pvectl vm retry` released it): start it again.
		task, err := env.PVE.Start(ctx, ref(vm), proxmox.StartOptions{})
		if proxmox.IsAlreadyRunning(err) || (err == nil && task.IsZero()) {
			return Wait("guest was stopped; start requested again")
		}
		return submit(ctx, env, vm, "start again", task, err)
	}
	limit := env.Config.Tasks.ProcessVMs.StartWaitTicks
	seen := st.Status
	if st.QMPStatus != "" && st.QMPStatus != st.Status {
		seen += "/" + st.QMPStatus
	}
	if vm.StepWaits+1 >= limit {
		r := Retryable(fmt.Errorf("guest not running after %d ticks (status %s)", limit, seen))
		r.ClearTask = true // a start requested again is done with: the next attempt may request another
		return r
	}
	return Wait(fmt.Sprintf("guest status %s, tick %d of %d", seen, vm.StepWaits+1, limit))
}
