// Restore steps (pvectl backup restore VM VOLID): delete the VM's
// snapshots, then restore the archive the record names (restore_volid)
// over the VM. The stop before them is the change-package's; the
// change-package table re-applies the product after them.

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

// restoreTaskType is PVE's task type of a restore (POST /nodes/{node}/qemu
// with an archive).
const restoreTaskType = "qmrestore"

// snapshotDeleteTask names the task the snapshot step follows.
func snapshotDeleteTask(*Env, store.VM) string { return "delete snapshot" }

// removeSnapshotsForRestore deletes the VM's snapshots, one per tick (PVE
// refuses to destroy a disk that still has snapshots on most storages, and
// a restore destroys the VM's disks). The runner follows each qmdelsnapshot
// task; the step then lists the snapshots again. A snapshot deletion killed
// between its request and recording its task leaves PVE's snapshot-delete
// lock on the VM: the step waits for it (Step.Call) and then lists again.
func removeSnapshotsForRestore(ctx context.Context, env *Env, vm store.VM) Result {
	snaps, err := env.PVE.Snapshots(ctx, ref(vm))
	if err != nil {
		return fromError("list snapshots", err)
	}
	if len(snaps) == 0 {
		if env.TaskDone {
			return Success() // the last deletion ended
		}
		return Skip("no snapshots")
	}
	s := snaps[0]
	env.Emit(fmt.Sprintf("deleting snapshot %s before the restore (%d left)", s.Name, len(snaps)))
	task, err := env.PVE.DeleteSnapshot(ctx, ref(vm), s.Name, false)
	if proxmox.IsNotFound(err) {
		return Wait("snapshot " + s.Name + " was gone already; listing again")
	}
	return submit(ctx, env, vm, "delete snapshot "+s.Name, task, err)
}

// restoreTask is the task the restore step follows: the restore, unless
// the step is stopping the VM again (then it looks at the VM itself).
func restoreTask(_ *Env, vm store.VM) string {
	if memory(vm).ShutdownAt != nil {
		return ""
	}
	return "restore"
}

// restoreArchive restores the record's archive (restore_volid) over the
// VM: POST /nodes/{node}/qemu with archive, vmid = the VM's, force=1 and
// unique=0 (the MAC stays). The runner follows the qmrestore task; the step
// is done when it ended OK, and the VM goes on at change_package.
//
// The restore is sent at most once per attempt, and PVE's own task list is
// the evidence that it was sent: before sending, the step commits its
// intent (RestoreAt) with the qmrestore tasks PVE already had for the VM
// (the baseline). A tick that finds the intent but no task to follow (killed
// between the intent and the request, or between the request and recording
// its task) lists the VM's qmrestore tasks again: a new one is the restore,
// and the step follows it; none means it was not sent, and the step sends it.
// A VM found running (started since it was stopped for the restore) is
// stopped again first, graceful then forced.
func restoreArchive(ctx context.Context, env *Env, vm store.VM) Result {
	if env.TaskDone {
		if res := reattachAdditionalDisk(ctx, env, vm); res != nil {
			return *res
		}
		env.Emit(fmt.Sprintf("restored %s over VMID %d; re-applying product %s", vm.RestoreVolid, vm.VMID, vm.Product))
		return Success()
	}
	if vm.RestoreVolid == "" {
		return Permanent(errors.New("the record names no backup to restore (restore_volid is empty); pvectl reset-status VM ready, then ask again with pvectl backup restore VM VOLID"))
	}
	mem := loadMemory(ctx, env, &vm)
	if mem.RestoreAt != nil && mem.ShutdownAt == nil {
		task, found, err := sentTask(ctx, env.PVE, vm, restoreTaskType, *mem.RestoreAt, mem.RestoreBaseline)
		if err != nil {
			return fromError("list the VM's restore tasks", err)
		}
		if found {
			env.Emit(fmt.Sprintf("the restore was sent before (PVE task %s); following it", task.UPID))
			return submit(ctx, env, vm, "restore", task, nil)
		}
		env.Emit("PVE has no restore task since the request: the restore was not sent; sending it")
	}
	if res := keepStopped(ctx, env, &vm); res != nil {
		return *res
	}
	if res := noHeavySlot(env, vm.Node); res != nil {
		return *res
	}
	mem = memory(vm)
	if mem.RestoreAt == nil {
		base, err := taskBaseline(ctx, env.PVE, vm, restoreTaskType)
		if err != nil {
			return fromError("list the VM's restore tasks", err)
		}
		mem.RestoreAt, mem.RestoreBaseline = stamp(env.Now()), &base
		// The additional disk's volume, remembered once per restore (a
		// failed restore may already have turned it into unusedN).
		if mem.RestoreAdditional == "" {
			cfg, err := env.PVE.VMConfig(ctx, ref(vm))
			if err != nil {
				return fromError("read config", err)
			}
			if key, ok := findAdditionalDisk(cfg); ok {
				mem.RestoreAdditional, _ = proxmox.ParsePropertyString(cfg.Values[key])
			}
		}
		if err := saveMemory(ctx, env, &vm, mem); err != nil {
			return Retryable(err)
		}
	}
	env.Emit(fmt.Sprintf("restoring %s over VMID %d on %s", vm.RestoreVolid, vm.VMID, vm.Node))
	task, err := env.PVE.Restore(ctx, proxmox.RestoreRequest{VM: ref(vm), Archive: vm.RestoreVolid, Force: true})
	return submit(ctx, env, vm, "restore", task, err)
}

// reattachAdditionalDisk runs once the restore ended OK. An archive made
// before the VM had its additional disk does not hold it: PVE restores the
// other disks and keeps the additional disk's volume as an unusedN entry
// (qmrestore frees only the volumes the archive replaces). Left there, it
// would leak: the change-package that follows finds no additional disk and
// creates a new, empty one. The step attaches the kept volume again under
// the key the product's bus gives (with pvectl's serial), so the customer
// keeps the data on it and the change-package resizes it if needed. When
// the archive brought an additional disk of its own, the kept volume is
// left where PVE put it and the log names it. Look before acting: a volume
// already attached is not attached again (a crash after the update).
// nil: go on.
func reattachAdditionalDisk(ctx context.Context, env *Env, vm store.VM) *Result {
	volid := memory(vm).RestoreAdditional
	if volid == "" {
		return nil
	}
	cfg, err := env.PVE.VMConfig(ctx, ref(vm))
	if err != nil {
		res := fromError("read config", err)
		return &res
	}
	unused := ""
	for _, k := range sortedKeys(cfg.Values) {
		if v, _ := proxmox.ParsePropertyString(cfg.Values[k]); v != volid {
			continue
		}
		if !strings.HasPrefix(k, "unused") {
			return nil // attached (by an earlier attempt, or the archive had it)
		}
		unused = k
	}
	if unused == "" {
		return nil // PVE did not keep it (the archive replaced it)
	}
	if key, ok := findAdditionalDisk(cfg); ok {
		env.Emit(fmt.Sprintf("the archive brought its own additional disk (%s); the VM's previous one, %s, is kept as %s: delete it in PVE once it is no longer needed", key, volid, unused))
		return nil
	}
	key := additionalDiskKey(cfg, env.Product)
	env.Emit(fmt.Sprintf("the archive has no additional disk: attaching the VM's own (%s, kept by PVE as %s) again as %s", volid, unused, key))
	change := proxmox.ConfigChange{Set: map[string]string{key: volid + ",serial=pvectl-additional"}, Digest: cfg.Digest}
	if err := env.PVE.SetConfigSync(ctx, ref(vm), change); err != nil {
		res := fromError("attach "+volid+" as "+key, err)
		return &res
	}
	return nil
}

// restoreTaskError: a restore task that ended with an error is the step's
// error (the VM is held with the task's error line and stays stopped: its
// disks may be partly overwritten). The intent is forgotten, so the next
// attempt (pvectl vm retry) sends a new restore instead of finding the
// failed one in PVE's task list. A lost or unreadable task keeps the
// intent: the next attempt looks in the task list again.
func restoreTaskError(ctx context.Context, env *Env, vm store.VM, failed Result) Result {
	var pe *proxmox.Error
	if !errors.As(failed.Err, &pe) || pe.Task.IsZero() || !strings.HasPrefix(pe.Op, "task ") {
		return failed
	}
	mem := loadMemory(ctx, env, &vm)
	mem.RestoreAt, mem.RestoreBaseline = nil, nil
	if err := saveMemory(ctx, env, &vm, mem); err != nil {
		return Retryable(err)
	}
	if failed.Kind == Fail {
		failed.Err = fmt.Errorf("%w; the VM stays stopped (its disks may be partly overwritten): pvectl vm retry restores again, or restore another backup after pvectl reset-status %s ready",
			failed.Err, vm.ServiceID)
	}
	return failed
}

// taskBaseline reads the VM's tasks of type typ before a task of that type
// is sent: the start (PVE's clock) of the newest and the UPIDs that started
// in that second.
func taskBaseline(ctx context.Context, pve proxmox.Client, vm store.VM, typ string) (RebootBaseline, error) {
	tasks, err := pve.Tasks(ctx, vm.Node, proxmox.TaskFilter{VMID: vm.VMID, Type: typ})
	if err != nil {
		return RebootBaseline{}, err
	}
	var base RebootBaseline
	for _, t := range tasks {
		if t.Type != typ || t.ID != strconv.Itoa(vm.VMID) {
			continue
		}
		switch s := t.StartTime.Unix(); {
		case s > base.Since:
			base = RebootBaseline{Since: s, Known: []string{t.Task.UPID}}
		case s == base.Since:
			base.Known = append(base.Known, t.Task.UPID)
		}
	}
	return base, nil
}

// taskClockSkew is how far pvectl's clock may run ahead of PVE's for an
// intent without a baseline.
const taskClockSkew = 2 * time.Minute

// sentTask looks in PVE's task list for the task of type typ sent after
// the intent recorded at `at` with baseline base: a task of the VM not in
// the baseline, the oldest such if there are several.
func sentTask(ctx context.Context, pve proxmox.Client, vm store.VM, typ string, at time.Time, base *RebootBaseline) (proxmox.TaskRef, bool, error) {
	f := proxmox.TaskFilter{VMID: vm.VMID, Type: typ}
	switch {
	case base == nil:
		f.Since = at.Add(-taskClockSkew)
	case base.Since > 0:
		f.Since = time.Unix(base.Since, 0)
	}
	tasks, err := pve.Tasks(ctx, vm.Node, f)
	if err != nil {
		return proxmox.TaskRef{}, false, err
	}
	var found *proxmox.TaskEntry
	for i, t := range tasks {
		if t.Type != typ || t.ID != strconv.Itoa(vm.VMID) || t.StartTime.Before(f.Since) {
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
