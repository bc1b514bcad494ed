// Power actions on a ready VM (pvectl vm start|stop|shutdown|reboot): the
// steps of the four small power_* tables (tables.go), each entered from
// ready by its request and ending in ready. Every step looks at the VM
// first (a start of a running VM, a stop of a stopped one is done),
// commits what it is about to do before it asks PVE (the state, and the
// reboot's intent in the step's memory), and follows its PVE task through
// the runner (Task).

package states

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/store"
)

// readStatus reads the VM's PVE status and records it as the VM's power
// state last seen (best effort: a failed write is not the step's error).
func readStatus(ctx context.Context, env *Env, vm store.VM) (proxmox.VMStatus, error) {
	if st, ok := env.takeStatus(vm); ok {
		return st, nil // the runner's look for this step, just now (seen already)
	}
	st, err := env.PVE.VMStatus(ctx, ref(vm))
	if err == nil {
		seen(ctx, env, vm, st.Status)
	}
	return st, err
}

// seen records the VM's power state as PVE reported it now.
func seen(ctx context.Context, env *Env, vm store.VM, state string) {
	if env.Store != nil && state != "" {
		_ = env.Store.VMSetPowerSeen(ctx, vm.ID, state, env.Now())
	}
}

// forceStopVM stops the VM at once (PVE stop, overruling a shutdown in
// progress); the runner follows the stop task.
func forceStopVM(ctx context.Context, env *Env, vm store.VM) Result {
	if env.TaskDone {
		seen(ctx, env, vm, "stopped")
		return Success()
	}
	st, err := readStatus(ctx, env, vm)
	if err != nil {
		return fromError("read VM status", err)
	}
	if st.Stopped() {
		return Skip("already stopped")
	}
	task, err := env.PVE.Stop(ctx, ref(vm), proxmox.StopOptions{OverruleShutdown: true})
	if proxmox.IsNotRunning(err) {
		return Skip("already stopped")
	}
	return submit(ctx, env, vm, "stop", task, err)
}

// shutdownVM asks the guest to power off. With --force (vm.PowerForce) it
// is the stop of a change-package: graceful, then forced after
// stop_timeout. Without it, a guest still running stop_timeout after the
// request is left running: the step gives up with a logged reason (skip)
// and the VM is back at ready. It follows no task: it looks at the VM's
// status, measured across ticks from when the shutdown was sent.
func shutdownVM(ctx context.Context, env *Env, vm store.VM) Result {
	if vm.PowerForce {
		res := stopForChange(ctx, env, vm)
		if res.Kind.Advances() {
			seen(ctx, env, vm, "stopped")
		}
		return res
	}
	st, err := readStatus(ctx, env, vm)
	if err != nil {
		return fromError("read VM status", err)
	}
	mem := loadMemory(ctx, env, &vm)
	waited, sent := since(ctx, env, &vm, &mem, &mem.ShutdownAt)
	if st.Stopped() {
		if sent {
			return Success()
		}
		return Skip("already stopped")
	}
	timeout := env.Config.Tasks.ProcessVMs.StopTimeout.D()
	if !sent {
		task, err := env.PVE.Shutdown(ctx, ref(vm), proxmox.ShutdownOptions{Timeout: timeout})
		if proxmox.IsNotRunning(err) {
			return Skip("already stopped")
		}
		if err != nil {
			return fromError("shutdown", err)
		}
		mem.ShutdownAt = stamp(env.Now())
		if err := saveMemory(ctx, env, &vm, mem); err != nil {
			return Retryable(err)
		}
		return submit(ctx, env, vm, "graceful shutdown", task, nil)
	}
	if waited < timeout {
		return Wait(fmt.Sprintf("waiting for graceful shutdown (%s of %s)", waited.Round(time.Second), timeout))
	}
	return Partial(fmt.Sprintf("gave up: guest still %s %s after the shutdown request; not forced (use pvectl vm shutdown --force or pvectl vm stop)",
		st.Status, timeout))
}

// rebootTask is the task the reboot step follows: the reboot, or the
// fallback's forced stop once it was sent.
func rebootTask(_ *Env, vm store.VM) string {
	if memory(vm).StopAt != nil {
		return "forced stop"
	}
	return "reboot"
}

// rebootVM reboots a running VM through PVE (the guest gets stop_timeout
// to shut down) and is done once the reboot task ended OK. A stopped VM is
// left to the next step, which starts it.
//
// The reboot is sent at most once per request, and PVE's own task list is
// the evidence that it was sent, never pvectl's clock or the guest's
// uptime. Before sending, the step commits its intent (RebootAt) together
// with the qmreboot tasks PVE already had for the VM (rebootBaseline). A
// tick that finds the intent but no task to follow (killed between the
// intent and the request, or between the request and recording its task)
// lists the VM's qmreboot tasks again: a new one is the reboot, and the step
// follows it; none means the reboot was not sent, and the step sends it.
func rebootVM(ctx context.Context, env *Env, vm store.VM) Result {
	if env.TaskDone {
		return Success() // the reboot, or the fallback's forced stop, ended OK
	}
	st, err := readStatus(ctx, env, vm)
	if err != nil {
		return fromError("read VM status", err)
	}
	mem := loadMemory(ctx, env, &vm)
	if st.Stopped() {
		if mem.RebootAt != nil || mem.StopAt != nil {
			return Success()
		}
		return Skip("VM is stopped; the next step starts it")
	}
	if mem.StopAt != nil { // the fallback's stop was sent; its task is gone: stop again (idempotent)
		task, err := env.PVE.Stop(ctx, ref(vm), proxmox.StopOptions{OverruleShutdown: true})
		if proxmox.IsNotRunning(err) {
			return Success()
		}
		return submit(ctx, env, vm, "forced stop", task, err)
	}
	if mem.RebootAt != nil {
		task, found, err := sentReboot(ctx, env.PVE, vm, mem)
		if err != nil {
			return fromError("list the VM's reboot tasks", err)
		}
		if found {
			env.Emit(fmt.Sprintf("the reboot was sent before (PVE task %s); following it", task.UPID))
			return submit(ctx, env, vm, "reboot", task, nil)
		}
		env.Emit("PVE has no reboot task since the request: the reboot was not sent; sending it")
	} else {
		base, err := listRebootBaseline(ctx, env.PVE, vm)
		if err != nil {
			return fromError("list the VM's reboot tasks", err)
		}
		mem.RebootAt, mem.RebootBaseline = stamp(env.Now()), &base
		if err := saveMemory(ctx, env, &vm, mem); err != nil {
			return Retryable(err)
		}
	}
	task, err := env.PVE.Reboot(ctx, ref(vm), proxmox.RebootOptions{Timeout: env.Config.Tasks.ProcessVMs.StopTimeout.D()})
	if proxmox.IsNotRunning(err) {
		return Success() // stopped meanwhile: the next step starts it
	}
	return submit(ctx, env, vm, "reboot", task, err)
}

// RebootBaseline is what PVE's task list held for the VM just before the
// reboot was sent: the start (PVE's clock, Unix seconds) of its newest
// qmreboot task (0: none), and the UPIDs of those that started in that
// second. A qmreboot task of the VM not among them, started then or later,
// was sent after the intent. PVE's clock on both sides: a skew between
// pvectl's and PVE's clocks, or a jump of pvectl's, changes nothing.
type RebootBaseline struct {
	Since int64    `json:"since"`
	Known []string `json:"known,omitempty"`
}

// listRebootBaseline reads the VM's qmreboot tasks before the reboot is sent.
func listRebootBaseline(ctx context.Context, pve proxmox.Client, vm store.VM) (RebootBaseline, error) {
	tasks, err := pve.Tasks(ctx, vm.Node, proxmox.TaskFilter{VMID: vm.VMID, Type: rebootTaskType})
	if err != nil {
		return RebootBaseline{}, err
	}
	var base RebootBaseline
	for _, t := range tasks {
		switch s := t.StartTime.Unix(); {
		case s > base.Since:
			base = RebootBaseline{Since: s, Known: []string{t.Task.UPID}}
		case s == base.Since:
			base.Known = append(base.Known, t.Task.UPID)
		}
	}
	return base, nil
}

// rebootTaskType is PVE's task type of a reboot.
const rebootTaskType = "qmreboot"

// rebootClockSkew is how far pvectl's clock may have run ahead of PVE's
// when an intent without a baseline (written by an earlier version) was
// recorded: a qmreboot task that started that much before RebootAt still
// counts as sent after it.
const rebootClockSkew = 2 * time.Minute

// sentReboot looks in PVE's task list for the reboot sent after the intent
// recorded in mem (pvectl's clock): a qmreboot task of the VM that is not in
// the baseline, the oldest such if there are several.
func sentReboot(ctx context.Context, pve proxmox.Client, vm store.VM, mem StepMemory) (proxmox.TaskRef, bool, error) {
	f := proxmox.TaskFilter{VMID: vm.VMID, Type: rebootTaskType}
	base := mem.RebootBaseline
	switch {
	case base == nil:
		f.Since = mem.RebootAt.Add(-rebootClockSkew)
	case base.Since > 0:
		f.Since = time.Unix(base.Since, 0)
	}
	tasks, err := pve.Tasks(ctx, vm.Node, f)
	if err != nil {
		return proxmox.TaskRef{}, false, err
	}
	var found *proxmox.TaskEntry
	for i, t := range tasks {
		if t.Type != rebootTaskType || t.ID != strconv.Itoa(vm.VMID) || t.StartTime.Before(f.Since) {
			continue
		}
		if base != nil && slices.Contains(base.Known, t.Task.UPID) {
			continue
		}
		if found == nil || t.StartTime.Before(found.StartTime) {
			found = &tasks[i]
		}
	}
	if found == nil {
		return proxmox.TaskRef{}, false, nil
	}
	return found.Task, true, nil
}

// rebootTaskError: a reboot task that ended with an error (the guest
// ignored the ACPI request for stop_timeout) falls back to a forced stop.
// A lost or unreadable task, or a failed forced stop, is the step's error:
// the next attempt looks again.
func rebootTaskError(ctx context.Context, env *Env, vm store.VM, failed Result) Result {
	var pe *proxmox.Error
	if !errors.As(failed.Err, &pe) || pe.Task.IsZero() || !strings.HasPrefix(pe.Op, "task ") {
		return failed
	}
	mem := loadMemory(ctx, env, &vm)
	if mem.StopAt != nil {
		return failed
	}
	return rebootFallback(ctx, env, vm, mem, failed.Err)
}

// rebootFallback forces the VM off when its reboot failed, so the next
// step starts it (reboot_fallback); with the fallback off the reboot is
// given up, logged, and the VM left as it is.
func rebootFallback(ctx context.Context, env *Env, vm store.VM, mem StepMemory, cause error) Result {
	if !env.Config.Tasks.ProcessVMs.RebootFallbackOn() {
		return Partial(fmt.Sprintf("gave up the reboot (%v); reboot_fallback is off, the VM was left as it is", cause))
	}
	env.Emit(fmt.Sprintf("reboot failed (%v); falling back to a forced stop, then a start", cause))
	mem.StopAt = stamp(env.Now())
	if err := saveMemory(ctx, env, &vm, mem); err != nil {
		return Retryable(err)
	}
	task, err := env.PVE.Stop(ctx, ref(vm), proxmox.StopOptions{OverruleShutdown: true})
	if proxmox.IsNotRunning(err) {
		return Success()
	}
	r := submit(ctx, env, vm, "forced stop", task, err)
	if r.Kind.Failed() {
		r.ClearTask = true // drop a failed reboot task: the next attempt stops again
	}
	return r
}
