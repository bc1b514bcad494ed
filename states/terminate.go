package states

import (
	"context"
	"fmt"
	"net/url"
	"strings"

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
	if res.Kind == Skipped {
		res.Reason += "; going on: PVE refuses to delete a running VM, so if it is still running then, the VM goes to error_terminate with its IPs kept"
	}
	return res
}

// backupWaitTicks is how many ticks the terminate follows backup deletion
// tasks before it leaves the rest to PVE and goes on.
const backupWaitTicks = 10

// removeBackups deletes the VM's backups from every backup storage, best
// effort: each failure is logged and the terminate goes on. PVE deletes a
// volume in an imgdel task (a protected archive fails there), so the step
// submits the deletions, remembers their tasks in its step data and reports
// each outcome when the task has ended, on a later tick.
func removeBackups(ctx context.Context, env *Env, vm store.VM) Result {
	if vm.VMID == 0 {
		return Skip("no VMID")
	}
	if res := cloneBusy(ctx, env, &vm); res != nil {
		return *res
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
	data := stepData(vm)
	seen := map[string]bool{}
	listed := map[string]bool{}
	running, listFailed := 0, 0
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
			listFailed++
			env.Emit(fmt.Sprintf("· backup ERR %s on %s: %v", st.Storage, st.Node, err))
			continue
		}
		for _, v := range vols {
			if v.VMID != vm.VMID {
				continue
			}
			listed[v.VolID] = true
			if data.Get("res "+v.VolID) != "" {
				continue // reported already (a failed deletion is not tried again)
			}
			if rec := data.Get("del " + v.VolID); rec != "" && rec != lostTask {
				if !backupDeleteEnded(ctx, env, data, v.VolID) {
					running++
				}
				continue
			}
			// Not submitted yet, or PVE lost its task and the backup is
			// still there: (again) ask PVE to delete it.
			task, err := env.PVE.DeleteVolume(ctx, st.Node, st.Storage, v.VolID)
			switch {
			case proxmox.IsNotFound(err):
				continue
			case err != nil && proxmox.IsRetryable(err):
				env.Emit(fmt.Sprintf("· backup-del ERR %s: %v (will try again)", v.VolID, err))
				running++
				continue
			case err != nil:
				env.Emit(fmt.Sprintf("· backup-del ERR %s: %v", v.VolID, err))
				data.Set("res "+v.VolID, "failed")
			case task.IsZero():
				env.Emit("· backup-del OK " + v.VolID)
				data.Set("res "+v.VolID, "ok")
			default:
				data.Set("del "+v.VolID, task.Node+" "+task.UPID)
				running++
			}
			// The task is remembered before the next volume is touched.
			if err := saveStepData(ctx, env, &vm, data); err != nil {
				return Retryable(fmt.Errorf("remember backup deletion of %s: %w", v.VolID, err))
			}
		}
	}
	// Deletions that ended since the last tick and are no longer listed.
	for key := range data {
		volid, ok := strings.CutPrefix(key, "del ")
		if !ok || listed[volid] || data.Get("res "+volid) != "" {
			continue
		}
		if data.Get(key) == lostTask { // PVE lost the task, but the backup is gone
			env.Emit("· backup-del OK " + volid)
			data.Set("res "+volid, "ok")
			continue
		}
		if !backupDeleteEnded(ctx, env, data, volid) {
			running++
		}
	}
	if err := saveStepData(ctx, env, &vm, data); err != nil {
		return Retryable(err)
	}
	if running > 0 {
		if vm.StepWaits+1 < backupWaitTicks {
			return Wait(fmt.Sprintf("%d backup deletion(s) running", running))
		}
		env.Emit(fmt.Sprintf("· backup-del %d deletion(s) still running after %d ticks; left to PVE", running, vm.StepWaits+1))
	}
	removed, failed := 0, listFailed
	for key, v := range data {
		if strings.HasPrefix(key, "res ") {
			if v[0] == "ok" {
				removed++
			} else {
				failed++
			}
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

// lostTask marks a deletion whose task PVE no longer knows (node rebooted):
// the next listing decides (still there: delete again; gone: deleted).
const lostTask = "lost"

// backupDeleteEnded reads the deletion task of volid remembered in data and,
// once it has ended, prints its outcome and records it. A task PVE no longer
// knows is marked lostTask and is not ended: the step lists again next tick.
func backupDeleteEnded(ctx context.Context, env *Env, data url.Values, volid string) bool {
	node, upid, _ := strings.Cut(data.Get("del "+volid), " ")
	task := proxmox.TaskRef{Node: node, UPID: upid}
	st, err := env.PVE.TaskStatus(ctx, task)
	switch {
	case proxmox.IsNotFound(err):
		data.Set("del "+volid, lostTask)
		return false
	case err != nil || st.Running:
		return false
	}
	if st.Err() != nil {
		env.Emit(fmt.Sprintf("· backup-del ERR %s: %v", volid, taskFailure(ctx, env, st)))
		data.Set("res "+volid, "failed")
		return true
	}
	env.Emit("· backup-del OK " + volid)
	data.Set("res "+volid, "ok")
	return true
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
