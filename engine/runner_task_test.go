package engine_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pvectl/pvectl/engine"
	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

// taskPVE answers the task calls the runner makes; any other call panics
// (the embedded nil Client), which the runner turns into a held VM.
type taskPVE struct {
	proxmox.Client
	mu     sync.Mutex
	status proxmox.TaskStatus
	err    error
	log    []proxmox.TaskLogLine
	reads  int
}

func (p *taskPVE) TaskStatus(_ context.Context, task proxmox.TaskRef) (proxmox.TaskStatus, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reads++
	st := p.status
	st.Task = task
	return st, p.err
}

func (p *taskPVE) TaskLog(_ context.Context, _ proxmox.TaskRef, start, _ int) ([]proxmox.TaskLogLine, error) {
	if start > 0 {
		return nil, nil
	}
	return p.log, nil
}

// taskRig is a one-step table (set_ip → clone, following a "clone" task)
// and a VM at set_ip whose clone task is pending.
func taskRig(t *testing.T, pve *taskPVE, run states.StepFunc, hook func(context.Context, *states.Env, store.VM, states.Result) states.Result) (*harness, store.VM) {
	t.Helper()
	table := states.MustPipeline("test", states.SetIP, []states.Step{{From: states.SetIP, To: states.Clone, Label: "Clone VM",
		Run: run, Task: func(*states.Env, store.VM) string { return "clone" }, OnTaskError: hook}})
	h := newHarness(t, "", table)
	newEnv := h.e.NewEnv
	h.e.NewEnv = func(ctx context.Context, e *engine.Engine) (*states.Env, error) {
		env, err := newEnv(ctx, e)
		if env != nil {
			env.PVE = pve
		}
		return env, err
	}
	vm := h.vm("svc-1", "set_ip")
	require.NoError(t, h.st.VMSetPendingTask(h.ctx, vm.ID, vm.Status, vm.Version, vm.Status, "pve1",
		"UPID:pve1:00001234:00005678:6744A000:qmclone:9000:root@pam!pvectl:", h.clk.T))
	return h, h.get(vm.ID)
}

// A step whose task is still running is not called: the runner says how
// long it has run and how far it got, and keeps the task.
func TestRunnerWaitsForRunningTaskWithoutCallingTheStep(t *testing.T) {
	t.Parallel()
	pve := &taskPVE{status: proxmox.TaskStatus{Type: "qmclone", Running: true, StartTime: t0.Add(-30 * time.Second)},
		log: []proxmox.TaskLogLine{{N: 1, Text: "create full clone of drive scsi0"}, {N: 2, Text: "transferred 1.0 GiB of 10.0 GiB (10.00%)"}}}
	h, vm := taskRig(t, pve, mustNotRun(t), nil)

	s, out := h.pass()
	require.Contains(t, out, "INF svc-1  Clone VM  set_ip  waiting (clone task qmclone running for 30s (10.00%))")
	require.Equal(t, 1, s.Waiting)
	got := h.get(vm.ID)
	require.Equal(t, "set_ip", got.Status)
	require.Equal(t, vm.PendingUPID, got.PendingUPID, "the task is kept")
	require.Equal(t, 1, got.StepWaits)
	require.Equal(t, 1, pve.reads)
}

// A failed task ends the step with the task's error when the step has no
// task-error hook: a cause PVE gives no class holds the VM, and the task is
// dropped so the next attempt looks again. The step function is not called.
func TestRunnerHoldsOnFailedTaskWithoutHook(t *testing.T) {
	t.Parallel()
	pve := &taskPVE{status: proxmox.TaskStatus{Type: "qmclone", ExitStatus: "clone failed: out of sync"}}
	h, vm := taskRig(t, pve, mustNotRun(t), nil)

	_, out := h.pass()
	require.Contains(t, out, "WRN svc-1  Clone VM  set_ip  error (held): clone task failed: ")
	require.Contains(t, out, "clone failed: out of sync")
	got := h.get(vm.ID)
	require.True(t, got.Held)
	require.Equal(t, "set_ip", got.Status)
	require.Empty(t, got.PendingUPID, "the failed task is dropped")
}

// The task-error hook decides for a failed task: here it finds the failure
// means the work was done ("already exists") and the VM advances. The step
// function itself is not called.
func TestRunnerHandsFailedTaskToTheHook(t *testing.T) {
	t.Parallel()
	pve := &taskPVE{status: proxmox.TaskStatus{Type: "qmclone", ExitStatus: "unable to create VM 1000: config file already exists"}}
	var got states.Result
	hook := func(_ context.Context, _ *states.Env, _ store.VM, failed states.Result) states.Result {
		got = failed
		if proxmox.IsAlreadyExists(failed.Err) {
			return states.Skip("made by an earlier attempt")
		}
		return failed
	}
	h, vm := taskRig(t, pve, mustNotRun(t), hook)

	_, out := h.pass()
	require.Contains(t, out, "INF svc-1  Clone VM  set_ip → clone  skip (made by an earlier attempt)")
	require.True(t, got.ClearTask)
	require.Contains(t, got.Err.Error(), "clone task failed: ")
	require.Equal(t, "clone", h.get(vm.ID).Status)
}

// A task that ended OK lets the step run, told so (env.TaskDone).
func TestRunnerRunsStepWhenTaskDone(t *testing.T) {
	t.Parallel()
	pve := &taskPVE{status: proxmox.TaskStatus{Type: "qmclone", ExitStatus: "WARNINGS: 1"}}
	h, vm := taskRig(t, pve, func(_ context.Context, env *states.Env, _ store.VM) states.Result {
		if !env.TaskDone {
			return states.Permanent(errString("ran without the task resolved"))
		}
		return states.Success()
	}, nil)

	_, out := h.pass()
	require.Contains(t, out, "INF svc-1  Clone VM  set_ip → clone  success")
	require.Equal(t, "clone", h.get(vm.ID).Status)
}

// A task PVE no longer knows (node rebooted) is dropped with a retryable
// error, without calling the step: the next attempt looks again.
func TestRunnerDropsLostTask(t *testing.T) {
	t.Parallel()
	pve := &taskPVE{err: &proxmox.Error{Class: proxmox.ClassNotFound, Message: "no such task"}}
	h, vm := taskRig(t, pve, mustNotRun(t), nil)

	_, out := h.pass()
	require.Contains(t, out, "error: clone: task "+vm.PendingUPID+" is unknown to PVE (node rebooted?); will look again (attempt 1;")
	got := h.get(vm.ID)
	require.Empty(t, got.PendingUPID)
	require.False(t, got.Held)
}

// The runner resolves the product before the step runs: a step that needs
// it gets it in env; a product missing from the config holds the VM and the
// step is not called.
func TestRunnerResolvesProduct(t *testing.T) {
	t.Parallel()
	var cores int
	table := states.MustPipeline("test", states.Creation, []states.Step{{From: states.Creation, To: states.SetIP,
		Label: "Allocate VMID and IPs", Needs: states.NeedProduct, Run: func(_ context.Context, env *states.Env, _ store.VM) states.Result {
			cores = env.Product.Cores
			return states.Success()
		}}})
	h := newHarness(t, "", table)
	vm := h.vm("svc-1", "creation")
	_, out := h.pass()
	require.Contains(t, out, "creation → set_ip  success")
	require.Equal(t, h.e.Config.Products["small"].Cores, cores)
	require.Equal(t, "set_ip", h.get(vm.ID).Status)

	missing := states.MustPipeline("test", states.Creation, []states.Step{{From: states.Creation, To: states.SetIP,
		Label: "Allocate VMID and IPs", Needs: states.NeedProduct, Run: mustNotRun(t)}})
	h = newHarness(t, "", missing)
	vm, created, err := h.st.VMCreate(h.ctx, store.NewVM{ServiceID: "svc-2", Hostname: "svc-2.example.test",
		Product: "gone", Status: "creation", Now: h.clk.T})
	require.NoError(t, err)
	require.True(t, created)
	_, out = h.pass()
	require.Contains(t, out, `error (held): product "gone" is not in the config; valid: small`)
	require.True(t, h.get(vm.ID).Held)
}
