package states

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/pvectl/pvectl/config"
	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/store"
)

// MarkerTag is the PVE tag pvectl puts on every VM it creates.
const MarkerTag = "pvectl"

// marker is the description line that ties a PVE VM to its record.
func marker(vm store.VM) string { return "pvectl service=" + vm.ServiceID }

// Ours reports whether a PVE VM's config carries this record's marker.
func Ours(cfg proxmox.VMConfig, vm store.VM) bool { return ours(cfg, vm) }

// ours reports whether a PVE VM's config carries this record's marker.
func ours(cfg proxmox.VMConfig, vm store.VM) bool {
	for _, line := range strings.Split(cfg.Description(), "\n") {
		if strings.TrimSpace(line) == marker(vm) {
			return true
		}
	}
	return false
}

// fromError turns a provider error into a step result: retryable classes
// back off, everything else holds the VM for an admin.
func fromError(what string, err error) Result {
	err = fmt.Errorf("%s: %w", what, err)
	if proxmox.IsRetryable(err) {
		return Retryable(err)
	}
	return Permanent(err)
}

// product returns the VM's product or a permanent error naming the valid ones.
func product(env *Env, vm store.VM) (config.Product, *Result) {
	p, ok := env.Config.Products[vm.Product]
	if !ok {
		r := Permanent(fmt.Errorf("product %q is not in the config; valid: %s", vm.Product, strings.Join(env.Config.ProductNames(), ", ")))
		return p, &r
	}
	return p, nil
}

// ref is where the VM lives now.
func ref(vm store.VM) proxmox.VMRef { return proxmox.VMRef{Node: vm.Node, VMID: vm.VMID} }

// pending reports whether the VM has a stored task submitted by the step it
// is at now (tasks are keyed by the state they were submitted from, so a step
// function can serve several pipelines).
func pending(vm store.VM) bool {
	return vm.PendingUPID != "" && vm.PendingStep == vm.Status
}

var progressRE = regexp.MustCompile(`(\d{1,3}(?:\.\d+)?)\s?%`)

// awaitTask reads the stored task of a step. finished is true when the task
// ended OK (or WARNINGS); otherwise res is the result to return (waiting with
// a heartbeat, or the task's error with the task reference cleared so the
// next attempt looks again).
func awaitTask(ctx context.Context, env *Env, vm store.VM, what string) (finished bool, res Result) {
	st, err := env.PVE.TaskStatus(ctx, pendingTask(vm))
	return judgeTask(ctx, env, vm, what, st, err)
}

// pendingTask is the VM's stored task.
func pendingTask(vm store.VM) proxmox.TaskRef {
	return proxmox.TaskRef{Node: vm.PendingNode, UPID: vm.PendingUPID}
}

// taskEndedOK reports whether a task status read says the task ended OK
// (or WARNINGS).
func taskEndedOK(st proxmox.TaskStatus, err error) bool {
	return err == nil && !st.Running && st.Err() == nil
}

// judgeTask is awaitTask's verdict on the status (st, err) already read
// for the stored task.
func judgeTask(ctx context.Context, env *Env, vm store.VM, what string, st proxmox.TaskStatus, err error) (finished bool, res Result) {
	task := pendingTask(vm)
	if err != nil {
		if proxmox.IsNotFound(err) {
			r := Retryable(fmt.Errorf("%s: task %s is unknown to PVE (node rebooted?); will look again", what, task.UPID))
			r.ClearTask = true
			return false, r
		}
		return false, fromError(what+": read task status", err)
	}
	if st.Running {
		elapsed := env.Now().Sub(vm.StepStartedAt).Round(time.Second)
		if !st.StartTime.IsZero() {
			elapsed = env.Now().Sub(st.StartTime).Round(time.Second)
		}
		if elapsed < 0 {
			elapsed = 0
		}
		return false, Wait(fmt.Sprintf("%s task %s running for %s%s", what, st.Type, elapsed, taskProgress(ctx, env, task)))
	}
	if st.Err() != nil {
		r := fromError(what+" task failed", taskFailure(ctx, env, st))
		r.ClearTask = true
		return false, r
	}
	return true, Result{}
}

// taskProgress returns " (NN%)" from the newest task-log line that has a
// percentage, or "".
func taskProgress(ctx context.Context, env *Env, task proxmox.TaskRef) string {
	lines, err := env.PVE.TaskLog(ctx, task, 0, 500)
	if err != nil {
		return ""
	}
	for i := len(lines) - 1; i >= 0; i-- {
		if m := progressRE.FindStringSubmatch(lines[i].Text); m != nil {
			return " (" + m[1] + "%)"
		}
	}
	return ""
}

// taskLogPage is how many task-log lines one request reads.
const taskLogPage = 1000

// taskFailure is the error of a failed task with the cause its log gives
// when the exit status does not ("migration aborted").
func taskFailure(ctx context.Context, env *Env, st proxmox.TaskStatus) error {
	log, _ := taskLogTail(ctx, env, st.Task)
	return proxmox.TaskFailure(st, log)
}

// taskLogTail returns the end of a finished task's log (the last two pages
// read; the cause of a failure is next to its end), reading at most 20 pages
// of a very long log (a copy that logged its progress every second).
func taskLogTail(ctx context.Context, env *Env, task proxmox.TaskRef) ([]proxmox.TaskLogLine, error) {
	var prev, last []proxmox.TaskLogLine
	for page := range 20 {
		lines, err := env.PVE.TaskLog(ctx, task, page*taskLogPage, taskLogPage)
		if err != nil {
			return append(prev, last...), err
		}
		if len(lines) > 0 {
			prev, last = last, lines
		}
		if len(lines) < taskLogPage {
			break
		}
	}
	return append(prev, last...), nil
}

// submit records a task a step just started, so the next tick follows it
// instead of starting another. A zero TaskRef (PVE finished synchronously)
// is done at once.
func submit(ctx context.Context, env *Env, vm store.VM, what string, task proxmox.TaskRef, err error) Result {
	if err != nil {
		return fromError(what, err)
	}
	if task.IsZero() {
		return Success()
	}
	if err := env.Store.VMSetPendingTask(ctx, vm.ID, vm.Status, vm.Version, vm.Status, task.Node, task.UPID, env.Now()); err != nil {
		return Retryable(fmt.Errorf("%s: started task %s but could not record it: %w", what, task.UPID, err))
	}
	return Wait(fmt.Sprintf("%s task started", what))
}

// noHeavySlot returns a wait result when node has no free slot for a heavy
// task, nil when the step took one and may submit it.
func noHeavySlot(env *Env, node string) *Result {
	if env.HeavySlot == nil || env.HeavySlot(node) {
		return nil
	}
	r := Wait(fmt.Sprintf("node %s has %d heavy tasks in flight", node, env.HeavyLimit))
	return &r
}

// heavyHold is a heavy slot a step took before it looks at PVE: waiting
// for a slot has no side effect, so the look waits for it too, and the
// workers of a pass never all look and then find the node's slots taken
// by each other. The step gives the slot back (done) unless it submitted
// the task the slot is for (submitted).
type heavyHold struct {
	env  *Env
	node string
	held bool
}

// holdHeavy is a hold with no slot yet; defer its done.
func holdHeavy(env *Env) *heavyHold { return &heavyHold{env: env} }

// at takes a slot on node (the template's node before a clone looks, the
// VM's node before a migration looks, then the node the look found the VM
// on: the slot that counts is the node's the task runs on), giving back
// one it holds on another node. A wait result when node has no free slot.
// A hold that already has node's slot keeps it.
func (h *heavyHold) at(node string) *Result {
	if node == h.node && (h.held || h.env.HeavySlot == nil) {
		return nil
	}
	h.done()
	h.node = node
	if res := noHeavySlot(h.env, node); res != nil {
		return res
	}
	h.held = h.env.HeavySlot != nil
	return nil
}

// submitted keeps the slot: the task it is for was sent (the slot stays
// taken for the rest of the pass, whatever PVE answered).
func (h *heavyHold) submitted() { h.held = false }

// done gives the slot back unless the task was submitted.
func (h *heavyHold) done() {
	if h.held && h.env.HeavyRelease != nil {
		h.env.HeavyRelease(h.node)
	}
	h.held = false
}

// findVM looks the VMID up in /cluster/resources: where it lives, if anywhere.
func findVM(ctx context.Context, env *Env, vmid int) (proxmox.Resource, bool, error) {
	res, err := env.PVE.ClusterResources(ctx, proxmox.ResourceVM)
	if err != nil {
		return proxmox.Resource{}, false, err
	}
	for _, r := range res {
		if r.IsVM() && r.VMID == vmid {
			return r, true, nil
		}
	}
	return proxmox.Resource{}, false, nil
}

// findVMIn looks the VMID up in the pass's view of /cluster/resources
// (Fleet): only for a look that a view from earlier in the pass cannot
// mislead into a duplicate.
func findVMIn(ctx context.Context, env *Env, vmid int) (proxmox.Resource, bool, error) {
	res, err := fleetResources(ctx, env, proxmox.ResourceVM)
	if err != nil {
		return proxmox.Resource{}, false, err
	}
	for _, r := range res {
		if r.IsVM() && r.VMID == vmid {
			return r, true, nil
		}
	}
	return proxmox.Resource{}, false, nil
}

// findVMNear asks the node the record names first (one small request) and
// falls back to the cluster-wide list only when the VM is not there, so a
// pass over a large fleet does not fetch /cluster/resources once per VM.
func findVMNear(ctx context.Context, env *Env, vm store.VM) (proxmox.Resource, bool, error) {
	r, _, ok, err := findVMNearStatus(ctx, env, vm)
	return r, ok, err
}

// findVMNearStatus is findVMNear with the status it read on the record's
// node (nil when it had to look cluster-wide).
func findVMNearStatus(ctx context.Context, env *Env, vm store.VM) (proxmox.Resource, *proxmox.VMStatus, bool, error) {
	if vm.Node != "" {
		st, err := readStatus(ctx, env, vm)
		if err == nil {
			return proxmox.Resource{Type: "qemu", VMID: vm.VMID, Node: vm.Node, Name: st.Name, Status: st.Status,
				Lock: st.Lock, Tags: st.Tags, Template: st.Template}, &st, true, nil
		}
		if !proxmox.IsNotFound(err) {
			return proxmox.Resource{}, nil, false, err
		}
	}
	r, ok, err := findVM(ctx, env, vm.VMID)
	return r, nil, ok, err
}

// locate finds the VM in the cluster and records its node if it moved,
// and returns the config lock PVE shows on it ("" when none). A missing VM
// is a permanent error: the record says it exists. The status it read on
// the VM's node is the step's own first readStatus.
func locate(ctx context.Context, env *Env, vm *store.VM) (lock string, res *Result) {
	r, st, ok, err := findVMNearStatus(ctx, env, *vm)
	if err != nil {
		res := fromError("find VM in cluster", err)
		return "", &res
	}
	if res := moved(ctx, env, vm, r, ok); res != nil {
		return "", res
	}
	if st != nil {
		env.looked = &looked{at: ref(*vm), status: st}
	}
	return r.Lock, nil
}

// locateConfig finds the VM by reading its config on the record's node (the
// config shows the lock too), and only when it is not there looks
// cluster-wide, records the node it moved to and reads the config there.
// The config is the step's env.VMConfig and its own first readConfig.
func locateConfig(ctx context.Context, env *Env, vm *store.VM) (proxmox.VMConfig, *Result) {
	if vm.Node != "" {
		cfg, err := env.PVE.VMConfig(ctx, ref(*vm))
		if err == nil {
			env.looked = &looked{at: ref(*vm), config: &cfg}
			return cfg, nil
		}
		if !proxmox.IsNotFound(err) {
			res := fromError("read config", err)
			return cfg, &res
		}
	}
	r, ok, err := findVM(ctx, env, vm.VMID)
	if err != nil {
		res := fromError("find VM in cluster", err)
		return proxmox.VMConfig{}, &res
	}
	if res := moved(ctx, env, vm, r, ok); res != nil {
		return proxmox.VMConfig{}, res
	}
	cfg, err := env.PVE.VMConfig(ctx, ref(*vm))
	if err != nil {
		res := fromError("read config", err)
		return cfg, &res
	}
	env.looked = &looked{at: ref(*vm), config: &cfg}
	return cfg, nil
}

// moved records the node the VM was found on (r, ok); a missing VM is a
// permanent error: the record says it exists.
func moved(ctx context.Context, env *Env, vm *store.VM, r proxmox.Resource, ok bool) *Result {
	if !ok {
		res := Permanent(fmt.Errorf("VM %d is not in the cluster; if it was removed by hand, use pvectl reset-status", vm.VMID))
		return &res
	}
	if r.Node != vm.Node {
		if err := env.Store.VMSetNode(ctx, vm.ID, vm.Status, vm.Version, r.Node, env.Now()); err != nil {
			res := Retryable(err)
			return &res
		}
		vm.Node = r.Node
	}
	return nil
}

// staleLock holds the VM when a config lock has blocked its step for
// stale_lock_after (measured from when the step first saw it, across ticks)
// with no pvectl task known to hold it: a worker died and left it, and the
// VM must not wait forever without anyone noticing. A legitimately long
// clone or migration of a big disk can take hours: raise the setting then.
func staleLock(ctx context.Context, env *Env, vm *store.VM, lock string) *Result {
	limit := env.Config.Tasks.ProcessVMs.StaleLockAfter.D()
	mem := loadMemory(ctx, env, vm)
	locked, seen := since(ctx, env, vm, &mem, &mem.LockSince)
	if !seen {
		mem.LockSince = stamp(env.Now())
		_ = saveMemory(ctx, env, vm, mem)
		return nil
	}
	if locked < limit {
		return nil
	}
	r := Permanent(fmt.Errorf("VM %d has been locked (%s) for %s with no pvectl task running: a PVE worker probably died; check the node's task log, then `qm unlock %d` and pvectl vm retry",
		vm.VMID, lock, locked.Round(time.Minute), vm.VMID))
	return &r
}
