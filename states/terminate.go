package states

import (
	"context"
	"fmt"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/store"
)

// TerminateTable destroys a VM in resumable phases. Only the DELETE can fail
// the terminate: then the VM goes to error_terminate, its record and IPs stay
// allocated, and the cron leaves it alone until an admin resets it.
func TerminateTable() *Pipeline {
	return MustPipeline("terminate", Terminate, []Step{
		{From: Terminate, To: TerminateStopped, Label: "Stop VM", Run: stopForTerminate},
		{From: TerminateStopped, To: TerminateBackupsRemoved, Label: "Remove backups", Run: removeBackups},
		{From: TerminateBackupsRemoved, To: TerminateDNSRemoved, Label: "Delete DNS records", Run: deleteDNSForTerminate},
		{From: TerminateDNSRemoved, To: TerminateDeleted, Label: "Delete VM", Exit: ErrorTerminate, Run: deleteVM},
		{From: TerminateDeleted, To: Remove, Label: "Release IPs and VMID", Run: releaseResources},
	})
}

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

func stopForTerminate(ctx context.Context, env *Env, vm store.VM) Result {
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
	if res.Kind == Skipped {
		res.Reason += "; going on: PVE refuses to delete a running VM, so if it is still running then, the VM goes to error_terminate with its IPs kept"
	}
	return res
}

// removeBackups deletes the VM's backups from every backup storage, best
// effort: each failure is logged and the terminate goes on.
func removeBackups(ctx context.Context, env *Env, vm store.VM) Result {
	if vm.VMID == 0 {
		return Skip("no VMID")
	}
	if g, res := gone(ctx, env, &vm); res != nil {
		return *res
	} else if !g {
		if f, res := foreign(ctx, env, vm); res != nil {
			return *res
		} else if f {
			return Skip(fmt.Sprintf("VMID %d holds a VM pvectl did not create; its backups are not ours", vm.VMID))
		}
	}
	all, err := env.PVE.ClusterResources(ctx, proxmox.ResourceStorage)
	if err != nil {
		env.Emit("· backups ERR list storages: " + err.Error())
		return Skip("could not list storages; backups left in place")
	}
	seen := map[string]bool{}
	removed, failed := 0, 0
	for _, st := range all {
		if st.Type != "storage" || st.Status != "available" || !hasContent(st.Content, "backup") {
			continue
		}
		key := st.Storage
		if !st.Shared {
			key = st.Node + "/" + st.Storage
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		vols, err := env.PVE.StorageContent(ctx, st.Node, st.Storage, proxmox.ContentFilter{Content: "backup", VMID: vm.VMID})
		if err != nil {
			failed++
			env.Emit(fmt.Sprintf("· backup ERR %s on %s: %v", st.Storage, st.Node, err))
			continue
		}
		for _, v := range vols {
			if v.VMID != vm.VMID {
				continue
			}
			if _, err := env.PVE.DeleteVolume(ctx, st.Node, st.Storage, v.VolID); err != nil && !proxmox.IsNotFound(err) {
				failed++
				env.Emit(fmt.Sprintf("· backup-del ERR %s: %v", v.VolID, err))
				continue
			}
			removed++
			env.Emit("· backup-del OK " + v.VolID)
		}
	}
	if failed > 0 {
		return Skip(fmt.Sprintf("%d backup(s) removed, %d failed (best effort)", removed, failed))
	}
	if removed == 0 {
		return Skip("no backups")
	}
	return Success()
}

func hasContent(content []string, c string) bool {
	for _, x := range content {
		if x == c {
			return true
		}
	}
	return false
}

func deleteDNSForTerminate(ctx context.Context, env *Env, vm store.VM) Result {
	if len(env.Zones) == 0 || env.DNS == nil {
		return Skip("no DNS zones configured")
	}
	if failed := DeleteDNS(ctx, env, vm); failed > 0 {
		// The DNS retry keeps deleting them after the VM is removed.
		_ = env.Store.VMSetDNSDirty(ctx, vm.ID, true, env.Now())
		return Skip(fmt.Sprintf("%d DNS record(s) could not be deleted; the DNS retry deletes them later", failed))
	}
	return Success()
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

// releaseResources frees the IPs and VMID once PVE confirmed the VM is gone.
func releaseResources(ctx context.Context, env *Env, vm store.VM) Result {
	ips, err := env.Store.IPsForVM(ctx, vm.ID)
	if err != nil {
		return Retryable(err)
	}
	if err := env.Store.VMReleaseResources(ctx, vm.ID, vm.Status, vm.Version, env.Now()); err != nil {
		return Retryable(err)
	}
	env.Emit(fmt.Sprintf("released VMID %d and %d address(es)", vm.VMID, len(ips)))
	return Success()
}
