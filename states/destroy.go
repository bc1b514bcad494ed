// Destroy steps: the terminate's DELETE of the VM and the reinstall's
// destroy, with the checks they share (is the VM gone, is it ours, is its
// clone still running).

package states

import (
	"context"
	"fmt"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/store"
)

// gone reports whether the VM no longer exists in the cluster (or never got
// a VMID); when it exists, vm.Node is updated to where it is.
func gone(ctx context.Context, env *Env, vm *store.VM) (bool, *Result) {
	if vm.VMID == 0 {
		return true, nil
	}
	r, ok, err := findVM(ctx, env, vm.VMID)
	if err != nil {
		res := fromError("find VM in cluster", err)
		return false, &res
	}
	if !ok {
		return true, nil
	}
	vm.Node = r.Node
	return false, nil
}

// foreign reports whether the VMID holds a VM that does not carry this
// record's marker (someone else's VM took the VMID before the clone). The
// terminate never stops it or touches its backups.
func foreign(ctx context.Context, env *Env, vm store.VM) (bool, *Result) {
	cfg, err := env.PVE.VMConfig(ctx, ref(vm))
	if proxmox.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		res := fromError("read config", err)
		return false, &res
	}
	return !ours(cfg, vm), nil
}

// cloneBusy returns a wait result while the VM's clone task is still running:
// the task the deploy recorded on the VM (when the terminate kept it), or PVE
// reports the VMID locked by a clone. The clone's temporary config carries no
// marker yet, so without this wait the terminate took pvectl's own VM for
// someone else's (no stop, no backup removal, a refused DELETE), or did not
// see it at all in a lagging /cluster/resources and released its VMID under
// a VM about to exist. It asks the VM's node directly. A clone lock that
// outlives stale_lock_after holds the VM for an admin (see staleLock).
func cloneBusy(ctx context.Context, env *Env, vm *store.VM) *Result {
	if vm.VMID == 0 {
		return nil
	}
	if vm.PendingUPID != "" && !pending(*vm) {
		// A task submitted by the step the VM was at before the terminate.
		st, err := env.PVE.TaskStatus(ctx, proxmox.TaskRef{Node: vm.PendingNode, UPID: vm.PendingUPID})
		switch {
		case err != nil && !proxmox.IsNotFound(err):
			res := fromError("read the VM's pending task", err)
			return &res
		case err == nil && st.Running:
			what := st.Type
			switch st.Type {
			case "qmclone":
				what = "clone"
			case "qmigrate":
				what = "migrate"
			}
			res := Wait(fmt.Sprintf("waiting for the %s task to finish before terminating", what))
			return &res
		}
	}
	if vm.Node == "" {
		return nil
	}
	cfg, err := env.PVE.VMConfig(ctx, ref(*vm))
	if proxmox.IsNotFound(err) {
		return nil // not on its node: gone() looks cluster-wide
	}
	if err != nil {
		res := fromError("read config", err)
		return &res
	}
	if cfg.Lock() != "clone" {
		return nil
	}
	if res := staleLock(ctx, env, vm, "clone"); res != nil {
		return res
	}
	res := Wait("waiting for the clone task to finish before terminating (VM locked: clone)")
	return &res
}

// goneWaitTicks is how many ticks a finished delete may take to leave
// /cluster/resources (it is refreshed every few seconds) before pvectl gives
// up and sends the VM to error_terminate.
const goneWaitTicks = 5

// deleteVM DELETEs the VM with purge and destroy-unreferenced-disks and
// then verifies it is gone from /cluster/resources. A permanent failure, or
// transient failures past terminate_delete_attempts, end in error_terminate.
func deleteVM(ctx context.Context, env *Env, vm store.VM) Result {
	limit := env.Config.Tasks.ProcessVMs.TerminateDeleteAttempts
	fail := func(what string, err error) Result {
		res := fromError(what, err)
		if res.Kind == Fail || vm.Attempts+1 >= limit {
			return FailTo(ErrorTerminate, fmt.Errorf("%s (attempt %d of %d): %w; the record and its IPs are kept — fix the cause, then pvectl reset-status %s terminate",
				what, vm.Attempts+1, limit, err, vm.ServiceID))
		}
		return res
	}
	if pending(vm) {
		task := proxmox.TaskRef{Node: vm.PendingNode, UPID: vm.PendingUPID}
		st, err := env.PVE.TaskStatus(ctx, task)
		switch {
		case err != nil && !proxmox.IsNotFound(err):
			return fromError("read delete task", err)
		case err == nil && st.Running:
			return Wait("delete task qmdestroy running")
		case err == nil && st.Err() != nil && !proxmox.IsNotFound(st.Err()):
			r := fail("delete task failed", st.Err())
			r.ClearTask = true
			return r
		}
	} else if res := cloneBusy(ctx, env, &vm); res != nil {
		return *res
	}
	g, res := gone(ctx, env, &vm)
	if res != nil {
		return *res
	}
	if g {
		return Success()
	}
	if pending(vm) {
		// The task ended OK but the VM is still listed: verify again next tick.
		if vm.StepWaits+1 >= goneWaitTicks {
			return FailTo(ErrorTerminate, fmt.Errorf("delete task finished but VM %d is still in /cluster/resources after %d ticks", vm.VMID, vm.StepWaits+1))
		}
		return Wait("delete finished; waiting for the VM to leave /cluster/resources")
	}
	cfg, err := env.PVE.VMConfig(ctx, ref(vm))
	if proxmox.IsNotFound(err) {
		return Success()
	}
	if err != nil {
		return fail("read config before delete", err)
	}
	if !ours(cfg, vm) {
		return FailTo(ErrorTerminate, fmt.Errorf("VMID %d on %s does not carry %q; refusing to delete a VM pvectl did not create", vm.VMID, vm.Node, marker(vm)))
	}
	task, err := env.PVE.Delete(ctx, ref(vm), proxmox.DeleteOptions{Purge: true, DestroyUnreferencedDisks: true})
	if proxmox.IsNotFound(err) {
		return Success()
	}
	if err != nil {
		return fail("delete VM", err)
	}
	return submit(ctx, env, vm, "delete", task, nil)
}

// destroyForReinstall stops and destroys the VM, keeping its MAC address;
// the runner follows the stop and destroy tasks (Task "reinstall").
func destroyForReinstall(ctx context.Context, env *Env, vm store.VM) Result {
	g, res := gone(ctx, env, &vm)
	if res != nil {
		return *res
	}
	if g {
		return Success()
	}
	cfg, err := env.PVE.VMConfig(ctx, ref(vm))
	if proxmox.IsNotFound(err) {
		return Success()
	}
	if err != nil {
		return fromError("read config", err)
	}
	if !ours(cfg, vm) {
		return Permanent(fmt.Errorf("VMID %d does not carry %q; refusing to destroy it", vm.VMID, marker(vm)))
	}
	if vm.MAC == "" {
		if mac := macOf(cfg.Values["net0"]); mac != "" {
			if err := env.Store.VMSetMAC(ctx, vm.ID, mac, env.Now()); err != nil {
				return Retryable(err)
			}
			env.Emit("keeping MAC address " + mac)
		}
	}
	st, err := readStatus(ctx, env, vm)
	if err != nil {
		return fromError("read VM status", err)
	}
	if !st.Stopped() {
		task, err := env.PVE.Stop(ctx, ref(vm), proxmox.StopOptions{OverruleShutdown: true})
		if proxmox.IsNotRunning(err) {
			return Wait("VM stopped; destroying it next")
		}
		return submit(ctx, env, vm, "stop before reinstall", task, err)
	}
	task, err := env.PVE.Delete(ctx, ref(vm), proxmox.DeleteOptions{Purge: true, DestroyUnreferencedDisks: true})
	if proxmox.IsNotFound(err) {
		return Success()
	}
	return submit(ctx, env, vm, "destroy for reinstall", task, err)
}

// reinstallTaskError: a stop or destroy that failed because the VM was not
// running or is gone already is what the step wants: look again.
func reinstallTaskError(ctx context.Context, env *Env, vm store.VM, failed Result) Result {
	if proxmox.IsNotFound(failed.Err) || proxmox.IsNotRunning(failed.Err) {
		return destroyForReinstall(ctx, env, vm)
	}
	return failed
}
