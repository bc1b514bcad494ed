// Backup steps: the terminate's best-effort removal of the VM's backups.

package states

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/store"
)

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
		return Partial("could not list storages; backups left in place")
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
		return Partial(fmt.Sprintf("%d backup(s) removed, %d failed (best effort)", removed, failed))
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
