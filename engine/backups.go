package engine

// Backups (issue 12): the backup now request, the start of queued backups
// at the beginning of each process_vms pass (quota rotation first, then the
// vzdump), the runner's guard against steps while a backup's PVE task is in
// flight, the backup_status task that records how backups ended, and the
// listing that joins PVE's storage content with the store's rows.
//
// PVE is the truth: which archives exist is read from the storage content
// every time (backups made outside pvectl count against the quota), and
// after an interruption between a PVE call and the write of its UPID the
// task list and the storage content say whether the call was made.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
)

// Backup is a backup row as the request API and its callers see it.
type Backup = store.Backup

// BackupStatusInterval is backup_status's default interval.
const BackupStatusInterval = 5 * time.Minute

// BackupNoteMax is the longest --note of backup now, in characters.
const BackupNoteMax = 200

// BackupLabel is the step name of backup lines in the live output and the
// VM's log.
const BackupLabel = "Backup"

// backupClockSkew is how far pvectl's clock may be ahead of PVE's: a task
// that PVE started that much before the row's started_at still counts as
// sent for the row (as rebootClockSkew in states/power_actions.go).
const backupClockSkew = 2 * time.Minute

// vzdumpType and imgdelType are PVE's task types of a backup and of a
// volume deletion.
const (
	vzdumpType = "vzdump"
	imgdelType = "imgdel"
)

// BackupNow queues a backup of the VM; the next process_vms pass starts it.
// Refused (ErrInvalid, nothing changed) when the VM's product has
// backup_quota 0, when the VM has no VMID or is being terminated (or is
// gone), or when the note is not one line of at most BackupNoteMax
// characters. While the VM has a backup queued, rotating or running the
// request changes nothing (Result.Changed false).
func (e *Engine) BackupNow(ctx context.Context, ref, note string, protected bool) (Result, error) {
	if strings.ContainsAny(note, "\r\n") {
		return Result{}, &ErrInvalid{Field: "--note", Rule: "--note must be one line"}
	}
	if n := utf8.RuneCountInString(note); n > BackupNoteMax {
		return Result{}, &ErrInvalid{Field: "--note", Rule: fmt.Sprintf("--note is %d characters; at most %d", n, BackupNoteMax)}
	}
	vm, err := e.FindVM(ctx, ref)
	if err != nil {
		return Result{}, err
	}
	res := Result{VM: vm, From: states.State(vm.Status)}
	if err := e.backupAllowed(vm); err != nil {
		return res, err
	}
	opts := []string{}
	if note != "" {
		opts = append(opts, "note "+strconv.Quote(note))
	}
	if protected {
		opts = append(opts, "protected")
	}
	audit := e.audit(vm.ServiceID, "backup now", vm.Status, states.State(vm.Status), opts...)
	b, created, err := e.Store.Audited(audit).BackupQueue(ctx, store.BackupQueued{VMID: vm.ID, Kind: store.BackupManual,
		Note: note, Protected: protected, Now: e.Clock.Now()})
	if err != nil {
		return res, err
	}
	if !created {
		res.Notes = append(res.Notes, fmt.Sprintf("VM %s: a backup is already %s (queued %s); nothing changed",
			vm.ServiceID, b.State, e.HumanTime(b.QueuedAt)))
		return res, nil
	}
	res.Changed, res.Audit = true, audit
	res.Notes = append(res.Notes, fmt.Sprintf("VM %s: backup queued; the next tick starts it", vm.ServiceID))
	return res, nil
}

// backupAllowed says why the VM cannot be backed up now, or nil.
func (e *Engine) backupAllowed(vm VM) error {
	p, ok := e.Config.Products[vm.Product]
	if !ok {
		return &ErrInvalid{Field: "VM", Rule: fmt.Sprintf("VM %s has product %s, which is not in the config: no backup quota", vm.ServiceID, vm.Product)}
	}
	if p.BackupQuota == 0 {
		return &ErrInvalid{Field: "VM", Rule: fmt.Sprintf("backups are off for product %s (backup_quota: 0)", vm.Product)}
	}
	if backupGone(vm) {
		return &ErrInvalid{Field: "VM", Rule: fmt.Sprintf("VM %s is %s: nothing to back up", vm.ServiceID, vm.Status)}
	}
	if vm.VMID == 0 {
		return &ErrInvalid{Field: "VM", Rule: fmt.Sprintf("VM %s has no VMID yet (status %s): nothing to back up", vm.ServiceID, vm.Status)}
	}
	return nil
}

// backupGone: the VM is being terminated or is gone; its backups are the
// terminate's to remove, none is made.
func backupGone(vm VM) bool {
	s := states.State(vm.Status)
	return s == states.Remove || s == states.ErrorTerminate || states.Terminating(s)
}

// backupStartable: the VM can take a backup's PVE task now: ready or
// suspended, not held, no step task pending (the same guard the store's
// intent writes check).
func backupStartable(vm VM) bool {
	s := states.State(vm.Status)
	return (s == states.Ready || s == states.Suspended) && !vm.Held && vm.PendingUPID == ""
}

// backupRun writes a VM's backup lines: live, and in the VM's log as one run
// of task, opened at the first line.
type backupRun struct {
	e      *Engine
	ctx    context.Context
	vm     VM
	task   string
	runID  int64
	failed bool
}

func (r *backupRun) line(result string, failed bool) {
	e := r.e
	bg := context.WithoutCancel(r.ctx)
	if r.runID == 0 {
		id, err := e.Store.RunStart(bg, r.vm.ID, r.task, e.Clock.Now())
		if err == nil {
			r.runID = id
		}
	}
	r.failed = r.failed || failed
	e.Live.Step(StepLine{VM: r.vm.ServiceID, Hostname: r.vm.Hostname, Step: BackupLabel, From: r.vm.Status, To: r.vm.Status,
		Result: result, Failed: failed})
	if r.runID != 0 {
		_ = e.Store.RunAppendLine(bg, store.RunLine{RunID: r.runID, At: e.Clock.Now(), Step: BackupLabel,
			From: r.vm.Status, To: r.vm.Status, Result: result})
	}
}

func (r *backupRun) close() {
	if r.runID == 0 {
		return
	}
	res := RunSuccess
	if r.failed {
		res = RunError
	}
	_ = r.e.Store.RunFinish(context.WithoutCancel(r.ctx), r.runID, string(res), r.e.Clock.Now())
}

// waitForBackup is the runner's guard: a VM with a backup rotating or
// running gets a waiting line instead of its step. It reports whether the
// VM waits.
func (r *runPass) waitForBackup(ctx context.Context, vm VM) bool {
	if !r.backups[vm.ID] {
		return false
	}
	e := r.e
	b, ok, err := e.Store.BackupInFlight(ctx, vm.ID)
	if err != nil || !ok {
		return false
	}
	what := "UPID " + b.UPID
	switch {
	case b.State == store.BackupStateRotating && b.RotateUPID != "":
		what = "deleting " + b.RotateVolID + ": UPID " + b.RotateUPID
	case b.State == store.BackupStateRotating:
		what = "deleting " + b.RotateVolID
	case b.UPID == "":
		what = "vzdump being started"
	}
	result := fmt.Sprintf("waiting (backup running: %s)", what)
	step := "Wait for backup"
	if st, _, ok := e.Pipelines.StepFor(states.State(vm.Status)); ok {
		step = st.Label
	}
	now := e.Clock.Now()
	if runID, err := e.Store.RunStart(ctx, vm.ID, "process_vms", now); err == nil {
		bg := context.WithoutCancel(ctx)
		_ = e.Store.RunAppendLine(bg, store.RunLine{RunID: runID, At: now, Step: step, From: vm.Status, To: vm.Status, Result: result})
		_ = e.Store.RunFinish(bg, runID, string(RunWaiting), now)
	}
	e.Live.Step(StepLine{VM: vm.ServiceID, Hostname: vm.Hostname, Step: step, From: vm.Status, To: vm.Status, Result: result, Waiting: true})
	r.count(func(s *Summary) { s.Waiting++ })
	return true
}

// countBackupsHeavy adds the running backups (a vzdump is a heavy task on
// its node) to the pass's per-node limiter.
func (e *Engine) countBackupsHeavy(ctx context.Context, l *nodeLimiter) {
	rows, err := e.Store.BackupsByState(ctx, store.BackupStateRunning)
	if err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range rows {
		if b.Node != "" {
			l.used[b.Node]++
		}
	}
}

// startQueuedBackups drives every queued, rotating or started-but-unconfirmed
// backup of a VM that is ready or suspended, not held and without a pending
// step task: the quota rotation (each deletion its own PVE task, followed
// over passes), then the vzdump. It never waits on a PVE task and never
// fails the pass; problems are logged.
func (e *Engine) startQueuedBackups(ctx context.Context) {
	rows, err := e.Store.BackupsByState(ctx, store.BackupStateQueued, store.BackupStateRotating, store.BackupStateRunning)
	if err != nil {
		e.Live.Logger().Error().Err(err).Msgf("process_vms: backups: %v", err)
		return
	}
	var todo []Backup
	for _, b := range rows {
		if b.State != store.BackupStateRunning || b.UPID == "" {
			todo = append(todo, b)
		}
	}
	if len(todo) == 0 {
		return // no PVE connection for nothing
	}
	env, err := e.Env(ctx)
	if err != nil || env.PVE == nil {
		return
	}
	heavy, err := e.heavyPerNode(ctx, rows)
	if err != nil {
		e.Live.Logger().Error().Err(err).Msgf("process_vms: backups: %v", err)
		return
	}
	for _, b := range todo {
		if ctx.Err() != nil {
			return
		}
		vm, err := e.Store.VMGet(ctx, b.VMID)
		if err != nil {
			continue
		}
		run := &backupRun{e: e, ctx: ctx, vm: vm, task: "process_vms"}
		e.driveBackup(ctx, env.PVE, vm, b, heavy, run)
		run.close()
	}
}

// heavyPerNode counts the heavy PVE tasks in flight per node: the pending
// heavy steps of VMs and the running backups.
func (e *Engine) heavyPerNode(ctx context.Context, backups []Backup) (map[string]int, error) {
	pending, err := e.Store.VMsDue(ctx, endOfTime, finalStates())
	if err != nil {
		return nil, err
	}
	l := newNodeLimiter(0, pending, e.Pipelines)
	for _, b := range backups {
		if b.State == store.BackupStateRunning && b.Node != "" {
			l.used[b.Node]++
		}
	}
	return l.used, nil
}

// driveBackup takes a backup one move further; see startQueuedBackups.
func (e *Engine) driveBackup(ctx context.Context, pve proxmox.Client, vm VM, b Backup, heavy map[string]int, run *backupRun) {
	fail := func(msg string) {
		if err := e.Store.BackupFail(ctx, b.ID, b.State, msg, e.Clock.Now(), e.backupFailed(vm, b, msg, e.Clock.Now())...); err == nil {
			run.line("backup failed: "+msg, true)
		}
	}
	gone := backupGone(vm)
	p, ok := e.Config.Products[vm.Product]
	// A deletion that ended at once moves on in the same pass; the loop is
	// bounded so a storage that lies cannot spin.
	for range 4 {
		switch b.State {
		case store.BackupStateRunning:
			// Interrupted after its intent: finish what was started, even
			// if the VM moved on since (its steps wait for the backup).
			e.resolveBackupStart(ctx, pve, vm, b, !gone, run)
			return
		case store.BackupStateRotating:
			if b.RotateUPID == "" && gone {
				fail(fmt.Sprintf("the VM is %s; no backup made (the terminate removes its backups)", vm.Status))
				return
			}
			if !e.followRotation(ctx, pve, vm, b, run) {
				return
			}
		case store.BackupStateQueued:
			switch {
			case gone:
				fail(fmt.Sprintf("the VM is %s; no backup made", vm.Status))
				return
			case !ok || p.BackupQuota == 0:
				fail(fmt.Sprintf("backups are off for product %s (backup_quota: 0)", vm.Product))
				return
			case !backupStartable(vm):
				return // waits for the VM's pipeline to end
			}
			if !e.rotateOrStart(ctx, pve, vm, p.BackupQuota, b, heavy, run) {
				return
			}
		default:
			return
		}
		var err error
		if b, err = e.Store.BackupGet(ctx, b.ID); err != nil {
			return
		}
		if vm, err = e.Store.VMGet(ctx, vm.ID); err != nil {
			return
		}
	}
}

// rotateOrStart counts the VM's unprotected backups on every backup storage
// and either starts the deletion of the oldest (quota reached) or the
// vzdump. It reports whether the backup should be looked at again at once
// (a deletion PVE did synchronously).
func (e *Engine) rotateOrStart(ctx context.Context, pve proxmox.Client, vm VM, quota int, b Backup, heavy map[string]int, run *backupRun) bool {
	vols, err := e.backupVolumes(ctx, pve, vm.VMID)
	if err != nil {
		// Counting needs every storage: a backup started now could exceed
		// the quota. The next pass looks again.
		e.Live.Logger().Warn().Str("vm", vm.ServiceID).Err(err).Msgf("%s  backup waits: %v", vm.ServiceID, err)
		return false
	}
	var unprotected []BackupVolume
	for _, v := range vols {
		if !v.Protected {
			unprotected = append(unprotected, v)
		}
	}
	if len(unprotected) >= quota {
		oldest := unprotected[0] // backupVolumes sorts by ctime
		if err := e.Store.BackupRotateIntent(ctx, b.ID, oldest.VolID, e.Clock.Now()); err != nil {
			return false
		}
		b.State, b.RotateVolID, b.StartedAt = store.BackupStateRotating, oldest.VolID, e.Clock.Now()
		return e.sendDelete(ctx, pve, vm, b, oldest, fmt.Sprintf(" (oldest of %d unprotected; quota %d)", len(unprotected), quota), run)
	}
	opts := e.Config.Tasks.ProcessVMs
	if opts.HeavyPerNode > 0 && heavy[vm.Node] >= opts.HeavyPerNode {
		e.Live.Logger().Debug().Str("vm", vm.ServiceID).Msgf("%s  backup waits: %d heavy task(s) in flight on %s", vm.ServiceID, heavy[vm.Node], vm.Node)
		return false
	}
	base, err := vzdumpBaseline(ctx, pve, vm)
	if err != nil {
		e.Live.Logger().Warn().Str("vm", vm.ServiceID).Err(err).Msgf("%s  backup waits: list vzdump tasks: %v", vm.ServiceID, err)
		return false
	}
	raw, _ := json.Marshal(base)
	storage := e.Config.BackupStorageOf(e.Config.Products[vm.Product])
	if err := e.Store.BackupStartIntent(ctx, b.ID, vm.Node, storage, string(raw), e.Clock.Now()); err != nil {
		return false
	}
	heavy[vm.Node]++
	b.State, b.Node, b.Storage, b.Baseline = store.BackupStateRunning, vm.Node, storage, string(raw)
	e.sendVzdump(ctx, pve, vm, b, run)
	return false
}

// sendVzdump sends the vzdump of a backup in state running without a UPID
// and records the UPID PVE returns.
func (e *Engine) sendVzdump(ctx context.Context, pve proxmox.Client, vm VM, b Backup, run *backupRun) {
	keep := false // pvectl rotates; PVE's prune-after-backup must not delete anything
	req := proxmox.BackupRequest{VM: proxmox.VMRef{Node: b.Node, VMID: vm.VMID}, Storage: b.Storage,
		Mode: e.Config.Backups.Mode, Compress: e.Config.Backups.Compress, NotesTemplate: backupNotes(vm, b),
		Protected: b.Protected, Remove: &keep}
	task, err := pve.Backup(ctx, req)
	switch {
	case err != nil && proxmox.IsRetryable(err):
		// PVE may or may not have started it: the next pass looks at its
		// task list before sending again.
		run.line(fmt.Sprintf("vzdump: %v (looked at again next tick)", err), true)
		return
	case err != nil:
		if ferr := e.Store.BackupFail(ctx, b.ID, store.BackupStateRunning, "vzdump: "+states.ErrText(err), e.Clock.Now(), e.backupFailed(vm, b, "vzdump: "+states.ErrText(err), e.Clock.Now())...); ferr == nil {
			run.line("backup failed: vzdump: "+states.ErrText(err), true)
		}
		return
	}
	if err := e.Store.BackupSetUPID(ctx, b.ID, task.UPID); err != nil {
		run.line(fmt.Sprintf("backup started but its task not recorded: %v (found in PVE's task list next tick)", err), true)
		return
	}
	run.line(fmt.Sprintf("backup started: %s (storage %s, mode %s)", task.UPID, b.Storage, e.Config.Backups.Mode), false)
}

// VzdumpBaseline is the VM's vzdump tasks PVE listed before a vzdump was
// sent: the newest start (PVE's clock, Unix seconds) and the UPIDs that
// started in that second. A vzdump task of the VM not among them, started
// then or later, was sent after.
type VzdumpBaseline struct {
	Since int64    `json:"since"`
	Known []string `json:"known,omitempty"`
}

func vzdumpBaseline(ctx context.Context, pve proxmox.Client, vm VM) (VzdumpBaseline, error) {
	tasks, err := pve.Tasks(ctx, vm.Node, proxmox.TaskFilter{VMID: vm.VMID, Type: vzdumpType})
	if err != nil {
		return VzdumpBaseline{}, err
	}
	var base VzdumpBaseline
	for _, t := range tasks {
		switch s := t.StartTime.Unix(); {
		case s > base.Since:
			base = VzdumpBaseline{Since: s, Known: []string{t.Task.UPID}}
		case s == base.Since:
			base.Known = append(base.Known, t.Task.UPID)
		}
	}
	return base, nil
}

// resolveBackupStart looks, for a backup in state running without a UPID
// (interrupted between the vzdump call and the write of its UPID, or the
// call failed in a way that may have reached PVE), whether the vzdump was
// sent: a vzdump task of the VM in PVE's task list that is not in the
// baseline nor another backup's; else an archive carrying the backup's
// marker. Only when neither is found is the vzdump sent (again).
func (e *Engine) resolveBackupStart(ctx context.Context, pve proxmox.Client, vm VM, b Backup, maySend bool, run *backupRun) {
	var base VzdumpBaseline
	f := proxmox.TaskFilter{VMID: vm.VMID, Type: vzdumpType}
	if b.Baseline != "" && json.Unmarshal([]byte(b.Baseline), &base) == nil && base.Since > 0 {
		f.Since = time.Unix(base.Since, 0)
	} else {
		f.Since = b.StartedAt.Add(-backupClockSkew)
	}
	tasks, err := pve.Tasks(ctx, b.Node, f)
	if err != nil {
		e.Live.Logger().Warn().Str("vm", vm.ServiceID).Err(err).Msgf("%s  backup: list vzdump tasks: %v", vm.ServiceID, err)
		return
	}
	known := map[string]bool{}
	for _, u := range base.Known {
		known[u] = true
	}
	others, err := e.Store.BackupsOf(ctx, vm.ID)
	if err != nil {
		return
	}
	for _, o := range others {
		if o.UPID != "" {
			known[o.UPID] = true
		}
	}
	var found *proxmox.TaskEntry
	for i, t := range tasks {
		if t.Type != vzdumpType || t.ID != strconv.Itoa(vm.VMID) || t.StartTime.Before(f.Since) || known[t.Task.UPID] {
			continue
		}
		if found == nil || t.StartTime.Before(found.StartTime) {
			found = &tasks[i]
		}
	}
	if found != nil {
		if err := e.Store.BackupSetUPID(ctx, b.ID, found.Task.UPID); err == nil {
			run.line("backup started: "+found.Task.UPID+" (found in PVE's task list after an interruption)", false)
		}
		return
	}
	vols, err := e.backupVolumes(ctx, pve, vm.VMID)
	if err != nil {
		e.Live.Logger().Warn().Str("vm", vm.ServiceID).Err(err).Msgf("%s  backup: %v", vm.ServiceID, err)
		return
	}
	for _, v := range vols {
		if id, ok := backupMarker(v.Notes); ok && id == b.ID {
			end := store.BackupEnd{ID: b.ID, OK: true, VolID: v.VolID, Size: v.Size, Now: e.Clock.Now()}
			if err := e.Store.BackupFinish(ctx, end); err == nil {
				run.line(fmt.Sprintf("backup OK: %s, %s (found on the storage after an interruption)", v.VolID, FormatSize(v.Size)), false)
			}
			return
		}
	}
	if !maySend {
		msg := fmt.Sprintf("the VM is %s; the vzdump was not sent", vm.Status)
		if e.Store.BackupFail(ctx, b.ID, store.BackupStateRunning, msg, e.Clock.Now(), e.backupFailed(vm, b, msg, e.Clock.Now())...) == nil {
			run.line("backup failed: "+msg, true)
		}
		return
	}
	e.sendVzdump(ctx, pve, vm, b, run)
}

// sendDelete sends the deletion of the rotation's volume (recorded before)
// and records its task. It reports whether the volume is gone already.
func (e *Engine) sendDelete(ctx context.Context, pve proxmox.Client, vm VM, b Backup, v BackupVolume, why string, run *backupRun) bool {
	task, err := pve.DeleteVolume(ctx, v.Node, v.Storage, v.VolID)
	switch {
	case proxmox.IsNotFound(err), err == nil && task.IsZero():
		if err := e.Store.BackupRotateDone(ctx, b.ID, v.VolID); err != nil {
			return false
		}
		run.line("quota: deleted "+v.VolID+why, false)
		return true
	case err != nil && proxmox.IsRetryable(err):
		run.line(fmt.Sprintf("quota: delete %s: %v (looked at again next tick)", v.VolID, err), true)
		return false
	case err != nil:
		msg := fmt.Sprintf("quota: could not delete %s: %s", v.VolID, states.ErrText(err))
		if e.Store.BackupFail(ctx, b.ID, store.BackupStateRotating, msg, e.Clock.Now(), e.backupFailed(vm, b, msg, e.Clock.Now())...) == nil {
			run.line("backup failed: "+msg, true)
		}
		return false
	}
	if err := e.Store.BackupSetRotateUPID(ctx, b.ID, v.VolID, task.UPID); err != nil {
		return false
	}
	run.line(fmt.Sprintf("quota: deleting %s%s: %s", v.VolID, why, task.UPID), false)
	return false
}

// followRotation follows a rotation's deletion. Without a recorded task it
// looks before acting: the volume gone means done; an imgdel task in PVE's
// task list since the rotation began is adopted; otherwise the deletion of
// the same volume is sent (again). It reports whether the volume is gone.
func (e *Engine) followRotation(ctx context.Context, pve proxmox.Client, vm VM, b Backup, run *backupRun) bool {
	volid := b.RotateVolID
	if b.RotateUPID != "" {
		ref, _, _, perr := proxmox.ParseUPID(b.RotateUPID)
		if perr != nil {
			_ = e.Store.BackupSetRotateUPID(ctx, b.ID, volid, "")
			return false
		}
		st, err := pve.TaskStatus(ctx, ref)
		switch {
		case proxmox.IsNotFound(err):
			// PVE lost the task: look at the storage next pass.
			_ = e.Store.BackupSetRotateUPID(ctx, b.ID, volid, "")
			return false
		case err != nil || st.Running:
			return false
		case st.Err() != nil:
			line := taskErrorLine(ctx, pve, st)
			msg := fmt.Sprintf("quota: deleting %s failed: %s", volid, line)
			if e.Store.BackupFail(ctx, b.ID, store.BackupStateRotating, msg, e.Clock.Now(), e.backupFailed(vm, b, msg, e.Clock.Now())...) == nil {
				run.line("backup failed: "+msg, true)
			}
			return false
		}
		if err := e.Store.BackupRotateDone(ctx, b.ID, volid); err != nil {
			return false
		}
		run.line("quota: deleted "+volid, false)
		return true
	}
	vols, err := e.backupVolumes(ctx, pve, vm.VMID)
	if err != nil {
		return false
	}
	i := slices.IndexFunc(vols, func(v BackupVolume) bool { return v.VolID == volid })
	if i < 0 {
		if err := e.Store.BackupRotateDone(ctx, b.ID, volid); err != nil {
			return false
		}
		run.line("quota: deleted "+volid+" (gone from the storage)", false)
		return true
	}
	v := vols[i]
	tasks, err := pve.Tasks(ctx, v.Node, proxmox.TaskFilter{Type: imgdelType, Since: b.StartedAt.Add(-backupClockSkew)})
	if err != nil {
		return false
	}
	for _, t := range tasks {
		if t.Type != imgdelType || !t.Running() || !imgdelOf(t.ID, v, vm.VMID) {
			continue
		}
		if err := e.Store.BackupSetRotateUPID(ctx, b.ID, volid, t.Task.UPID); err == nil {
			run.line(fmt.Sprintf("quota: deleting %s: %s (found in PVE's task list after an interruption)", volid, t.Task.UPID), false)
		}
		return false
	}
	return e.sendDelete(ctx, pve, vm, b, v, "", run)
}

// imgdelOf reports whether an imgdel task's id names the volume: PVE uses
// the volume id; the simulator "VMID@storage".
func imgdelOf(id string, v BackupVolume, vmid int) bool {
	return id == v.VolID || id == fmt.Sprintf("%d@%s", vmid, v.Storage)
}

// BackupVolume is one backup archive of a VM in PVE's storage content.
type BackupVolume struct {
	Node    string
	Storage string
	proxmox.Volume
}

// backupVolumes lists the VM's backup archives on every storage a product
// backs up to (config.BackupStorages), on every node that has it (a shared
// storage once), oldest first. Any storage that cannot be listed is an
// error: the quota is counted over all of them.
func (e *Engine) backupVolumes(ctx context.Context, pve proxmox.Client, vmid int) ([]BackupVolume, error) {
	vols, problems, err := e.listBackupVolumes(ctx, pve, vmid)
	if err != nil {
		return nil, err
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return vols, nil
}

// listBackupVolumes is backupVolumes that returns the storages it could not
// list as problems next to what it could.
func (e *Engine) listBackupVolumes(ctx context.Context, pve proxmox.Client, vmid int) ([]BackupVolume, []string, error) {
	all, err := pve.ClusterResources(ctx, proxmox.ResourceStorage)
	if err != nil {
		return nil, nil, fmt.Errorf("list storages: %w", err)
	}
	want := e.Config.BackupStorages()
	seen := map[string]bool{}
	var out []BackupVolume
	var problems []string
	for _, st := range all {
		if st.Type != "storage" || !slices.Contains(want, st.Storage) {
			continue
		}
		key := st.Node + "/" + st.Storage
		if st.Shared {
			key = st.Storage
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		if st.Status != "available" {
			problems = append(problems, fmt.Sprintf("storage %s on %s is %s", st.Storage, st.Node, st.Status))
			continue
		}
		vols, err := pve.StorageContent(ctx, st.Node, st.Storage, proxmox.ContentFilter{Content: "backup", VMID: vmid})
		if err != nil {
			problems = append(problems, fmt.Sprintf("storage %s on %s: %v", st.Storage, st.Node, err))
			continue
		}
		for _, v := range vols {
			if v.VMID == vmid && v.Content == "backup" {
				out = append(out, BackupVolume{Node: st.Node, Storage: st.Storage, Volume: v})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].CTime.Equal(out[j].CTime) {
			return out[i].CTime.Before(out[j].CTime)
		}
		return out[i].VolID < out[j].VolID
	})
	return out, problems, nil
}

// backupNotes is the notes-template of a backup: pvectl's marker (the
// service id and the backup's row id) and the note, one line; PVE expands
// {{…}} and wants '\' escaped.
func backupNotes(vm VM, b Backup) string {
	s := fmt.Sprintf("pvectl service=%s backup=%d", vm.ServiceID, b.ID)
	if b.Note != "" {
		s += " " + b.Note
	}
	return strings.ReplaceAll(s, `\`, `\\`)
}

var markerRE = regexp.MustCompile(`(?:^|\s)pvectl service=(\S+) backup=(\d+)(?:\s|$)`)

// backupMarker returns the backup row id in an archive's notes.
func backupMarker(notes string) (int64, bool) {
	m := markerRE.FindStringSubmatch(notes)
	if m == nil {
		return 0, false
	}
	id, err := strconv.ParseInt(m[2], 10, 64)
	return id, err == nil
}

// backupNoteOf is the note an admin gave, from an archive's notes.
func backupNoteOf(notes string) string {
	loc := markerRE.FindStringIndex(notes)
	if loc == nil {
		return notes
	}
	return strings.TrimSpace(notes[loc[1]:])
}

// ---- backup_status ----

// BackupStatusTask records how running backups ended.
func BackupStatusTask() Task {
	return Task{
		Name:            "backup_status",
		Description:     "record how running backups ended (vzdump task status; archive, size and duration, or the task's error line)",
		DefaultInterval: BackupStatusInterval,
		Run: func(ctx context.Context, e *Engine) (TaskCounts, error) {
			r, err := e.BackupStatus(ctx)
			return TaskCounts{Processed: r.Processed, Errors: r.Failed, Message: r.Message}, err
		},
	}
}

// BackupStatusReport is what one backup_status run found.
type BackupStatusReport struct {
	Processed int // running backups with a task looked at
	OK        int
	Failed    int
	Running   int
	Message   string
}

// BackupStatus reads the task of every running backup and records the
// ended ones: OK with the archive's volume id, size and duration; failed
// with the task's error line. Each end is a line in the VM's log. The
// summary line is printed only when something ended.
func (e *Engine) BackupStatus(ctx context.Context) (BackupStatusReport, error) {
	var r BackupStatusReport
	rows, err := e.Store.BackupsByState(ctx, store.BackupStateRunning)
	if err != nil {
		return r, err
	}
	var todo []Backup
	for _, b := range rows {
		if b.UPID != "" {
			todo = append(todo, b)
		}
	}
	if len(todo) == 0 {
		r.Message = "no backup running"
		e.Live.Logger().Debug().Str("task", "backup_status").Msg("backup_status: " + r.Message)
		return r, nil
	}
	env, err := e.Env(ctx)
	if err != nil {
		return r, fmt.Errorf("prepare step environment: %w", err)
	}
	if env.PVE == nil {
		return r, errors.New("no PVE client configured")
	}
	var errs []error
	for _, b := range todo {
		if ctx.Err() != nil {
			break
		}
		r.Processed++
		ended, ok, err := e.backupEnded(ctx, env.PVE, b)
		switch {
		case err != nil:
			errs = append(errs, err)
			r.Running++
		case !ended:
			r.Running++
		case ok:
			r.OK++
		default:
			r.Failed++
		}
	}
	r.Message = fmt.Sprintf("%d ended (%d OK, %d failed), %d running", r.OK+r.Failed, r.OK, r.Failed, r.Running)
	if r.OK+r.Failed > 0 {
		e.Live.Logger().Info().Str("task", "backup_status").Msg("backup_status: " + r.Message)
	} else {
		e.Live.Logger().Debug().Str("task", "backup_status").Msg("backup_status: " + r.Message)
	}
	if len(errs) > 0 {
		// Reading a task failed: the others were recorded; the next run
		// reads again. Only the count reaches the task's result.
		e.Live.Logger().Warn().Str("task", "backup_status").Msgf("backup_status: %v", errors.Join(errs...))
	}
	return r, nil
}

// backupEnded reads one running backup's task and records its end.
func (e *Engine) backupEnded(ctx context.Context, pve proxmox.Client, b Backup) (ended, ok bool, err error) {
	vm, err := e.Store.VMGet(ctx, b.VMID)
	if err != nil {
		return false, false, err
	}
	ref, _, _, err := proxmox.ParseUPID(b.UPID)
	if err != nil {
		return false, false, err
	}
	st, err := pve.TaskStatus(ctx, ref)
	lost := proxmox.IsNotFound(err)
	switch {
	case lost:
	case err != nil:
		return false, false, fmt.Errorf("VM %s: backup task %s: %w", vm.ServiceID, b.UPID, err)
	case st.Running:
		return false, false, nil
	}
	run := &backupRun{e: e, ctx: ctx, vm: vm, task: "backup_status"}
	defer run.close()
	end := store.BackupEnd{ID: b.ID, UPID: b.UPID, Now: e.Clock.Now()}
	var logLines []proxmox.TaskLogLine
	if !lost {
		logLines, _ = taskLog(ctx, pve, ref)
	}
	if lost || st.Err() == nil {
		vols, _, lerr := e.listBackupVolumes(ctx, pve, vm.VMID)
		archive := archiveFromLog(logLines)
		var vol *BackupVolume
		for i, v := range vols {
			id, marked := backupMarker(v.Notes)
			if (marked && id == b.ID) || (archive != "" && path.Base(v.VolID) == archive) {
				vol = &vols[i]
				break
			}
		}
		switch {
		case vol != nil:
			end.OK, end.VolID, end.Size = true, vol.VolID, vol.Size
		case !lost:
			end.OK = true
			if archive != "" {
				end.VolID = b.Storage + ":backup/" + archive
			}
		case lerr != nil:
			return false, false, fmt.Errorf("VM %s: backup task %s is gone from PVE and the storage cannot be read: %w", vm.ServiceID, b.UPID, lerr)
		default:
			end.Error = "PVE no longer knows task " + b.UPID + " and no archive of it is on the storage"
		}
	} else {
		end.Error = errorLine(logLines, st.ExitStatus)
	}
	took := time.Duration(0)
	if d, ok := durationFromLog(logLines); ok {
		took = d
		if !b.StartedAt.IsZero() {
			end.Now = b.StartedAt.Add(d) // ended_at - started_at is the backup's duration
		}
	} else if !b.StartedAt.IsZero() {
		took = e.Clock.Now().Sub(b.StartedAt)
	}
	if !end.OK {
		end.Events = e.backupFailed(vm, b, end.Error, end.Now)
	}
	if err := e.Store.BackupFinish(ctx, end); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return false, false, nil // recorded by someone else
		}
		return false, false, err
	}
	if end.OK {
		what := end.VolID
		if what == "" {
			what = "archive not found on the storage"
		}
		run.line(fmt.Sprintf("backup OK: %s, %s, %s", what, FormatSize(end.Size), took.Round(time.Second)), false)
		return true, true, nil
	}
	run.line("backup failed: "+end.Error, true)
	return true, false, nil
}

var (
	logStampRE    = regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d `)
	archiveRE     = regexp.MustCompile(`creating (?:vzdump )?archive '([^']+)'`)
	finishedVMRE  = regexp.MustCompile(`Finished Backup of VM \d+ \((\d+):(\d\d):(\d\d)\)`)
	backupErrorRE = regexp.MustCompile(`^ERROR: (.+)$`)
)

// taskLog reads a finished task's log (at most 20 pages of 500 lines).
func taskLog(ctx context.Context, pve proxmox.Client, ref proxmox.TaskRef) ([]proxmox.TaskLogLine, error) {
	const page = 500
	var out []proxmox.TaskLogLine
	for p := range 20 {
		lines, err := pve.TaskLog(ctx, ref, p*page, page)
		if err != nil {
			return out, err
		}
		out = append(out, lines...)
		if len(lines) < page {
			break
		}
	}
	return out, nil
}

func logText(l proxmox.TaskLogLine) string {
	return strings.TrimPrefix(logStampRE.ReplaceAllString(l.Text, ""), "INFO: ")
}

// archiveFromLog is the archive's file name from "creating vzdump archive '…'".
func archiveFromLog(lines []proxmox.TaskLogLine) string {
	for _, l := range lines {
		if m := archiveRE.FindStringSubmatch(logText(l)); m != nil {
			return path.Base(m[1])
		}
	}
	return ""
}

// durationFromLog is the backup's duration from "Finished Backup of VM N (HH:MM:SS)".
func durationFromLog(lines []proxmox.TaskLogLine) (time.Duration, bool) {
	for _, l := range lines {
		if m := finishedVMRE.FindStringSubmatch(logText(l)); m != nil {
			h, _ := strconv.Atoi(m[1])
			mi, _ := strconv.Atoi(m[2])
			s, _ := strconv.Atoi(m[3])
			return time.Duration(h)*time.Hour + time.Duration(mi)*time.Minute + time.Duration(s)*time.Second, true
		}
	}
	return 0, false
}

// errorLine is a failed task's error line: its first "ERROR: …" line (the
// cause; later ones repeat it), else the exit status.
func errorLine(lines []proxmox.TaskLogLine, exit string) string {
	for _, l := range lines {
		if m := backupErrorRE.FindStringSubmatch(logStampRE.ReplaceAllString(l.Text, "")); m != nil {
			return m[1]
		}
	}
	if exit == "" {
		return "task failed"
	}
	return exit
}

// taskErrorLine reads a failed task's log for its error line.
func taskErrorLine(ctx context.Context, pve proxmox.Client, st proxmox.TaskStatus) string {
	lines, _ := taskLog(ctx, pve, st.Task)
	return errorLine(lines, st.ExitStatus)
}

// FormatSize renders a byte count for people: "1.2 GiB".
func FormatSize(b int64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := int64(unit), 0
	for n := b / unit; n >= unit && exp < 4; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTP"[exp])
}

// ---- backup list ----

// BackupListing is what backup list shows: the VM's archives as PVE's
// storage content lists them, joined with pvectl's rows, plus the rows
// pvectl knows that have no archive (queued, rotating, running, failed,
// skipped). An archive deleted in PVE is not shown, whatever pvectl
// recorded.
type BackupListing struct {
	VM       string   `json:"vm"`
	VMID     int      `json:"vmid"`
	Product  string   `json:"product"`
	Quota    int      `json:"quota"`
	Storages []string `json:"storages"`
	// Counted is how many archives count against the quota (unprotected).
	Counted int               `json:"counted"`
	Backups []BackupListEntry `json:"backups"`
	// Warnings: storages that could not be listed (their archives are
	// missing from Backups).
	Warnings []string `json:"warnings"`
	// Schedule is the VM's backup schedule; null when it has none.
	Schedule *ScheduleJSON `json:"schedule"`
}

// BackupListEntry is one archive or one row without an archive.
type BackupListEntry struct {
	VolID     string     `json:"volid"` // "" for a row without an archive
	Storage   string     `json:"storage"`
	Node      string     `json:"node"`
	CTime     *time.Time `json:"ctime"`
	Size      int64      `json:"size"`
	Protected bool       `json:"protected"`
	Notes     string     `json:"notes"`
	// MadeBy is "pvectl" or "outside pvectl".
	MadeBy string `json:"made_by"`
	// ID is pvectl's backup id (0: not pvectl's, or its row is gone).
	ID        int64      `json:"id"`
	Kind      string     `json:"kind"`  // manual | scheduled | ""
	Slot      string     `json:"slot"`  // scheduled: the slot's local start
	Note      string     `json:"note"`  // the --note
	State     string     `json:"state"` // the row's state; "" when pvectl has no row
	UPID      string     `json:"upid"`
	Error     string     `json:"error"`
	QueuedAt  *time.Time `json:"queued_at"`
	StartedAt *time.Time `json:"started_at"`
	EndedAt   *time.Time `json:"ended_at"`
}

// Made-by values of a listing entry.
const (
	MadeByPvectl  = "pvectl"
	MadeByOutside = "outside pvectl"
)

// backupListRowsKept is how many failed or skipped rows without an archive
// backup list shows (the newest).
const backupListRowsKept = 10

// BackupList lists a VM's backups (see BackupListing). Storages are read
// from every node that has them; one that cannot be read is a warning.
func (e *Engine) BackupList(ctx context.Context, ref string) (BackupListing, error) {
	vm, err := e.FindVM(ctx, ref)
	if err != nil {
		return BackupListing{}, err
	}
	out := BackupListing{VM: vm.ServiceID, VMID: vm.VMID, Product: vm.Product, Storages: e.Config.BackupStorages(),
		Backups: []BackupListEntry{}, Warnings: []string{}}
	if p, ok := e.Config.Products[vm.Product]; ok {
		out.Quota = p.BackupQuota
	}
	if sched, ok, err := e.BackupScheduleOf(ctx, vm); err != nil {
		return out, err
	} else if ok {
		j := sched.JSON()
		out.Schedule = &j
	}
	rows, err := e.Store.BackupsOf(ctx, vm.ID)
	if err != nil {
		return out, err
	}
	byID := map[int64]*Backup{}
	byVol := map[string]*Backup{}
	for i := range rows {
		byID[rows[i].ID] = &rows[i]
		if rows[i].VolID != "" {
			byVol[rows[i].VolID] = &rows[i]
		}
	}
	shown := map[int64]bool{}
	if vm.VMID != 0 {
		env, err := e.Env(ctx)
		if err != nil {
			return out, fmt.Errorf("prepare PVE client: %w", err)
		}
		if env.PVE == nil {
			return out, errors.New("no PVE client configured")
		}
		vols, problems, err := e.listBackupVolumes(ctx, env.PVE, vm.VMID)
		if err != nil {
			return out, err
		}
		out.Warnings = append(out.Warnings, problems...)
		for _, v := range vols {
			ct := v.CTime
			en := BackupListEntry{VolID: v.VolID, Storage: v.Storage, Node: v.Node, CTime: &ct, Size: v.Size,
				Protected: v.Protected, Notes: v.Notes, MadeBy: MadeByOutside}
			if !v.Protected {
				out.Counted++
			}
			row := byVol[v.VolID]
			if id, ok := backupMarker(v.Notes); ok && row == nil {
				row = byID[id]
				en.MadeBy = MadeByPvectl // pvectl's marker, even if its row is gone
				en.Note = backupNoteOf(v.Notes)
			}
			if row != nil {
				shown[row.ID] = true
				fillEntry(&en, *row)
			}
			out.Backups = append(out.Backups, en)
		}
	}
	var rest []BackupListEntry
	kept := 0
	for i := len(rows) - 1; i >= 0; i-- { // newest first, to keep the newest failed ones
		b := rows[i]
		if shown[b.ID] || b.State == store.BackupStateOK {
			continue // an archive deleted in PVE is gone from the list
		}
		if !b.Active() {
			if kept >= backupListRowsKept {
				continue
			}
			kept++
		}
		en := BackupListEntry{Storage: b.Storage, Node: b.Node}
		fillEntry(&en, b)
		rest = append(rest, en)
	}
	slices.Reverse(rest)
	out.Backups = append(out.Backups, rest...)
	return out, nil
}

func fillEntry(en *BackupListEntry, b Backup) {
	t := func(v time.Time) *time.Time {
		if v.IsZero() {
			return nil
		}
		return &v
	}
	en.MadeBy, en.ID, en.Kind, en.Slot, en.Note = MadeByPvectl, b.ID, b.Kind, b.Slot, b.Note
	en.State, en.UPID, en.Error = b.State, b.UPID, b.Error
	en.QueuedAt, en.StartedAt, en.EndedAt = t(b.QueuedAt), t(b.StartedAt), t(b.EndedAt)
	if en.VolID == "" {
		en.Protected = b.Protected
	}
}
