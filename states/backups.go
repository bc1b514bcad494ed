// Backup steps: the terminate's best-effort removal of the VM's backups.

package states

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/store"
)

// backupWaitTicks is how many ticks the terminate follows backup deletion
// tasks before it leaves the rest to PVE and goes on.
const backupWaitTicks = 10

// removeBackups deletes the VM's backups from every backup storage, best
// effort: each failure is logged and the terminate goes on. PVE deletes a
// volume in an imgdel task (a protected archive fails there), so the step
// submits the deletions, remembers their tasks in its step memory and reports
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
	all, err := fleetResources(ctx, env, proxmox.ResourceStorage) // the pass's view: storages
	if err != nil {
		env.Emit("· backups ERR list storages: " + err.Error())
		return Partial("could not list storages; backups left in place")
	}
	mem := loadMemory(ctx, env, &vm)
	if mem.Backups == nil {
		mem.Backups = map[string]*BackupDeletion{}
	}
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
			d := mem.Backups[v.VolID]
			if d != nil && d.Result != "" {
				continue // reported already (a failed deletion is not tried again)
			}
			if d.Submitted() {
				if !backupDeleteEnded(ctx, env, d, v.VolID) {
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
				mem.Backups[v.VolID] = &BackupDeletion{Result: deletionFailed}
			case task.IsZero():
				env.Emit("· backup-del OK " + v.VolID)
				mem.Backups[v.VolID] = &BackupDeletion{Result: deletionOK}
			default:
				mem.Backups[v.VolID] = &BackupDeletion{Node: task.Node, UPID: task.UPID}
				running++
			}
			// The task is remembered before the next volume is touched.
			if err := saveMemory(ctx, env, &vm, mem); err != nil {
				return Retryable(fmt.Errorf("remember backup deletion of %s: %w", v.VolID, err))
			}
		}
	}
	// Deletions that ended since the last tick and are no longer listed.
	for _, volid := range slices.Sorted(maps.Keys(mem.Backups)) {
		d := mem.Backups[volid]
		if listed[volid] || d.Result != "" || (d.UPID == "" && !d.Lost) {
			continue
		}
		if d.Lost { // PVE lost the task, but the backup is gone
			env.Emit("· backup-del OK " + volid)
			d.Result = deletionOK
			continue
		}
		if !backupDeleteEnded(ctx, env, d, volid) {
			running++
		}
	}
	if err := saveMemory(ctx, env, &vm, mem); err != nil {
		return Retryable(err)
	}
	if running > 0 {
		if vm.StepWaits+1 < backupWaitTicks {
			return Wait(fmt.Sprintf("%d backup deletion(s) running", running))
		}
		env.Emit(fmt.Sprintf("· backup-del %d deletion(s) still running after %d ticks; left to PVE", running, vm.StepWaits+1))
	}
	removed, failed := 0, listFailed
	for _, d := range mem.Backups {
		switch d.Result {
		case deletionOK:
			removed++
		case "":
		default:
			failed++
		}
	}
	if failed > 0 {
		return Partial(fmt.Sprintf("%d backup(s) removed, %d failed (best effort)", removed, failed))
	}
	if removed == 0 {
		return Skip("no backups")
	}
	return Success()
}

// backupDeleteEnded reads the deletion task d of volid and, once it has
// ended, prints its outcome and records it in d. A task PVE no longer knows
// is marked lost and is not ended: the step lists again next tick.
func backupDeleteEnded(ctx context.Context, env *Env, d *BackupDeletion, volid string) bool {
	task := proxmox.TaskRef{Node: d.Node, UPID: d.UPID}
	st, err := env.PVE.TaskStatus(ctx, task)
	switch {
	case proxmox.IsNotFound(err):
		d.Node, d.UPID, d.Lost = "", "", true
		return false
	case err != nil || st.Running:
		return false
	}
	if st.Err() != nil {
		env.Emit(fmt.Sprintf("· backup-del ERR %s: %v", volid, taskFailure(ctx, env, st)))
		d.Result = deletionFailed
		return true
	}
	env.Emit("· backup-del OK " + volid)
	d.Result = deletionOK
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
