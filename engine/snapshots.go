package engine

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
)

// SnapshotOp is one snapshot operation pvectl queued.
type SnapshotOp = store.SnapshotOp

// SnapshotLabel is the step name of snapshot lines in the live output and
// the VM's log.
const SnapshotLabel = "Snapshot"

// PVE's task types of the snapshot operations.
const (
	qmsnapshotType    = "qmsnapshot"
	qmdelsnapshotType = "qmdelsnapshot"
	qmrollbackType    = "qmrollback"
)

// snapNameRE is PVE's pve-configid format (snapname, at most 40 characters).
var snapNameRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_\-]{1,39}$`)

// ValidSnapshotName says why name is not a snapshot name PVE accepts, or nil.
func ValidSnapshotName(name string) error {
	if name == "current" || strings.EqualFold(name, "pending") {
		return &ErrInvalid{Field: "--name", Rule: fmt.Sprintf("snapshot name %q is reserved by PVE", name)}
	}
	if !snapNameRE.MatchString(name) {
		return &ErrInvalid{Field: "--name", Rule: fmt.Sprintf("snapshot name %q: want a letter, then 1 to 39 letters, digits, '_' or '-'", name)}
	}
	return nil
}

// SnapshotRequest is a snapshot create request.
type SnapshotRequest struct {
	Name        string // "" generates pvectl-YYYYMMDD-HHMM
	Description string
	VMState     bool
}

// snapshotAllowed says why the VM cannot have snapshot operations, or nil;
// quota is the product's snapshot_quota.
func (e *Engine) snapshotAllowed(vm VM) (quota int, err error) {
	p, ok := e.Config.Products[vm.Product]
	if !ok {
		return 0, &ErrInvalid{Field: "VM", Rule: fmt.Sprintf("VM %s has product %s, which is not in the config: no snapshot quota", vm.ServiceID, vm.Product)}
	}
	if backupGone(vm) {
		return 0, &ErrInvalid{Field: "VM", Rule: fmt.Sprintf("VM %s is %s: no snapshots", vm.ServiceID, vm.Status)}
	}
	if vm.VMID == 0 {
		return 0, &ErrInvalid{Field: "VM", Rule: fmt.Sprintf("VM %s has no VMID yet (status %s): no snapshots", vm.ServiceID, vm.Status)}
	}
	return p.SnapshotQuota, nil
}

// pveSnapshots reads the VM's snapshots from PVE (the truth).
func (e *Engine) pveSnapshots(ctx context.Context, vm VM) ([]proxmox.Snapshot, error) {
	env, err := e.Env(ctx)
	if err != nil {
		return nil, err
	}
	if env.PVE == nil {
		return nil, errors.New("no PVE connection")
	}
	return env.PVE.Snapshots(ctx, proxmox.VMRef{Node: vm.Node, VMID: vm.VMID})
}

// SnapshotCreate queues a snapshot of the VM; the next process_vms pass
// takes it. Refused (ErrInvalid, nothing changed) for a bad name, when the
// product has snapshot_quota 0, when the VM already has snapshot_quota
// snapshots in PVE (counting the creates queued) or a snapshot of that name.
func (e *Engine) SnapshotCreate(ctx context.Context, ref string, req SnapshotRequest) (Result, error) {
	if req.Name == "" {
		req.Name = "pvectl-" + e.Clock.Now().UTC().Format("20060102-1504")
	}
	if err := ValidSnapshotName(req.Name); err != nil {
		return Result{}, err
	}
	if strings.ContainsAny(req.Description, "\r\n") {
		return Result{}, &ErrInvalid{Field: "--description", Rule: "--description must be one line"}
	}
	vm, err := e.FindVM(ctx, ref)
	if err != nil {
		return Result{}, err
	}
	res := Result{VM: vm, From: states.State(vm.Status)}
	quota, err := e.snapshotAllowed(vm)
	if err != nil {
		return res, err
	}
	if quota == 0 {
		return res, &ErrInvalid{Field: "VM", Rule: fmt.Sprintf("snapshots are off for product %s (snapshot_quota: 0)", vm.Product)}
	}
	snaps, err := e.pveSnapshots(ctx, vm)
	if err != nil {
		return res, fmt.Errorf("VM %s: read snapshots: %w", vm.ServiceID, err)
	}
	ops, err := e.Store.SnapshotOpsOf(ctx, vm.ID)
	if err != nil {
		return res, err
	}
	n := len(snaps)
	for _, s := range snaps {
		if s.Name == req.Name {
			return res, &ErrInvalid{Field: "--name", Rule: fmt.Sprintf("VM %s already has a snapshot %q", vm.ServiceID, req.Name)}
		}
	}
	for _, o := range ops {
		if o.Active() && o.Op == store.SnapOpCreate && o.Name != req.Name {
			n++
		}
	}
	if n >= quota {
		return res, &ErrInvalid{Field: "VM", Rule: fmt.Sprintf("VM %s has %d snapshots (with queued ones); product %s allows %d (snapshot_quota): delete one first",
			vm.ServiceID, n, vm.Product, quota)}
	}
	opts := []string{"name " + req.Name}
	if req.VMState {
		opts = append(opts, "vmstate")
	}
	return e.queueSnapshotOp(ctx, vm, res, "snapshot create", store.SnapshotQueued{VMID: vm.ID, Op: store.SnapOpCreate,
		Name: req.Name, Description: req.Description, VMState: req.VMState, Now: e.Clock.Now()}, opts)
}

// SnapshotDelete queues the deletion of the VM's snapshot name (it must be
// in PVE's list).
func (e *Engine) SnapshotDelete(ctx context.Context, ref, name string, ask Ask) (Result, error) {
	return e.snapshotOnExisting(ctx, ref, name, store.SnapOpDelete, ask)
}

// SnapshotRollback queues the rollback of the VM to its snapshot name (it
// must be in PVE's list). A VM that runs when the rollback starts and whose
// snapshot holds no RAM is started afterwards.
func (e *Engine) SnapshotRollback(ctx context.Context, ref, name string, ask Ask) (Result, error) {
	return e.snapshotOnExisting(ctx, ref, name, store.SnapOpRollback, ask)
}

func (e *Engine) snapshotOnExisting(ctx context.Context, ref, name, op string, ask Ask) (Result, error) {
	vm, err := e.FindVM(ctx, ref)
	if err != nil {
		return Result{}, err
	}
	res := Result{VM: vm, From: states.State(vm.Status)}
	if _, err := e.snapshotAllowed(vm); err != nil {
		return res, err
	}
	snaps, err := e.pveSnapshots(ctx, vm)
	if err != nil {
		return res, fmt.Errorf("VM %s: read snapshots: %w", vm.ServiceID, err)
	}
	if !slices.ContainsFunc(snaps, func(s proxmox.Snapshot) bool { return s.Name == name }) {
		names := make([]string, 0, len(snaps))
		for _, s := range snaps {
			names = append(names, s.Name)
		}
		have := "none"
		if len(names) > 0 {
			have = strings.Join(names, ", ")
		}
		return res, &ErrInvalid{Field: "NAME", Rule: fmt.Sprintf("VM %s has no snapshot %q (it has: %s)", vm.ServiceID, name, have)}
	}
	var snap proxmox.Snapshot
	for _, s := range snaps {
		if s.Name == name {
			snap = s
		}
	}
	q := fmt.Sprintf("Delete snapshot %s of VM %s (taken %s)?", name, vm.ServiceID, e.HumanTime(snap.SnapTime))
	if op == store.SnapOpRollback {
		q = fmt.Sprintf("Roll VM %s back to snapshot %s (taken %s)? Everything since is lost.", vm.ServiceID, name, e.HumanTime(snap.SnapTime))
	}
	if err := ask.confirm(q); err != nil {
		return res, err
	}
	return e.queueSnapshotOp(ctx, vm, res, "snapshot "+op, store.SnapshotQueued{VMID: vm.ID, Op: op, Name: name, Now: e.Clock.Now()},
		[]string{"name " + name})
}

func (e *Engine) queueSnapshotOp(ctx context.Context, vm VM, res Result, what string, q store.SnapshotQueued, opts []string) (Result, error) {
	audit := e.audit(vm.ServiceID, what, vm.Status, states.State(vm.Status), opts...)
	o, created, err := e.Store.Audited(audit).SnapshotQueue(ctx, q)
	if err != nil {
		return res, err
	}
	if !created {
		res.Notes = append(res.Notes, fmt.Sprintf("VM %s: snapshot %s of %q is already %s (queued %s); nothing changed",
			vm.ServiceID, o.Op, o.Name, o.State, e.HumanTime(o.QueuedAt)))
		return res, nil
	}
	res.Changed, res.Audit = true, audit
	res.Notes = append(res.Notes, fmt.Sprintf("VM %s: snapshot %s of %q queued; the next tick starts it", vm.ServiceID, q.Op, q.Name))
	return res, nil
}

// snapRun writes a VM's snapshot lines (live and in the VM's log).
func (e *Engine) snapLine(ctx context.Context, vm VM, result string, failed bool) {
	e.snapLineFor(ctx, vm, "process_vms", result, failed)
}

// snapLineFor is snapLine for a run of task.
func (e *Engine) snapLineFor(ctx context.Context, vm VM, task, result string, failed bool) {
	run := &backupRun{e: e, ctx: ctx, vm: vm, task: task}
	e.Live.Step(StepLine{VM: vm.ServiceID, Hostname: vm.Hostname, Step: SnapshotLabel, From: vm.Status, To: vm.Status,
		Result: result, Failed: failed})
	bg := context.WithoutCancel(ctx)
	if id, err := e.Store.RunStart(bg, vm.ID, run.task, e.Clock.Now()); err == nil {
		_ = e.Store.RunAppendLine(bg, store.RunLine{RunID: id, At: e.Clock.Now(), Step: SnapshotLabel, From: vm.Status, To: vm.Status, Result: result})
		res := RunSuccess
		if failed {
			res = RunError
		}
		_ = e.Store.RunFinish(bg, id, string(res), e.Clock.Now())
	}
}

// driveSnapshots is process_vms' hook: it starts queued snapshot operations
// of VMs that are ready or suspended, not held, without a pending step and
// without a PVE lock, resolves operations interrupted between their intent
// and the write of their UPID, and records how running ones ended. It never
// waits on a PVE task and never fails the pass.
func (e *Engine) driveSnapshots(ctx context.Context) {
	rows, err := e.Store.SnapshotOpsByState(ctx, store.SnapStateQueued, store.SnapStateRunning)
	if err != nil {
		e.Live.Logger().Error().Err(err).Msgf("process_vms: snapshots: %v", err)
		return
	}
	if len(rows) == 0 {
		return // no PVE connection for nothing
	}
	env, err := e.Env(ctx)
	if err != nil || env.PVE == nil {
		return
	}
	busy := map[int64]bool{} // VMs with a running operation: one PVE task at a time
	for _, o := range rows {
		if o.State == store.SnapStateRunning {
			busy[o.VMID] = true
		}
	}
	for _, o := range rows {
		if ctx.Err() != nil {
			return
		}
		vm, err := e.Store.VMGet(ctx, o.VMID)
		if err != nil {
			continue
		}
		switch o.State {
		case store.SnapStateRunning:
			e.followSnapshot(ctx, env.PVE, vm, o)
		case store.SnapStateQueued:
			if busy[o.VMID] {
				continue
			}
			if e.startSnapshot(ctx, env.PVE, vm, o) {
				busy[o.VMID] = true
			}
		}
	}
}

// startSnapshot sends a queued operation's PVE task, intent first. It
// reports whether the operation is now running.
func (e *Engine) startSnapshot(ctx context.Context, pve proxmox.Client, vm VM, o SnapshotOp) bool {
	now := e.Clock.Now()
	fail := func(msg string) {
		if err := e.Store.SnapshotFail(ctx, o.ID, msg, now); err == nil {
			e.snapLine(ctx, vm, fmt.Sprintf("snapshot %s %s failed: %s", o.Op, o.Name, msg), true)
		}
	}
	if backupGone(vm) {
		fail(fmt.Sprintf("the VM is %s", vm.Status))
		return false
	}
	if !backupStartable(vm) || o.NotBefore.After(now) {
		return false // waits for the VM's pipeline to end, or for its backoff
	}
	if inflight, ok, err := e.Store.BackupInFlight(ctx, vm.ID); err != nil || ok {
		_ = inflight
		return false // a backup's task holds the VM
	}
	ref := proxmox.VMRef{Node: vm.Node, VMID: vm.VMID}
	st, err := pve.VMStatus(ctx, ref)
	if err != nil {
		return false // looked at again next pass
	}
	if st.Lock != "" {
		return false // PVE holds a lock (backup, migrate, another snapshot): wait
	}
	snaps, err := pve.Snapshots(ctx, ref)
	if err != nil {
		return false
	}
	var snap *proxmox.Snapshot
	for i := range snaps {
		if snaps[i].Name == o.Name {
			snap = &snaps[i]
		}
	}
	startAfter := false
	switch o.Op {
	case store.SnapOpCreate:
		if snap != nil {
			fail(fmt.Sprintf("snapshot name '%s' already used", o.Name))
			return false
		}
		p, ok := e.Config.Products[vm.Product]
		if !ok || p.SnapshotQuota == 0 {
			fail(fmt.Sprintf("snapshots are off for product %s (snapshot_quota: 0)", vm.Product))
			return false
		}
		if len(snaps) >= p.SnapshotQuota {
			fail(fmt.Sprintf("the VM has %d snapshots; product %s allows %d (snapshot_quota)", len(snaps), vm.Product, p.SnapshotQuota))
			return false
		}
	case store.SnapOpDelete, store.SnapOpRollback:
		if snap == nil {
			if o.Op == store.SnapOpDelete {
				// Already gone (deleted in PVE meanwhile): the effect is there.
				if err := e.Store.SnapshotStartIntent(ctx, o.ID, vm.Node, false, now); err == nil {
					_ = e.Store.SnapshotFinish(ctx, store.SnapshotEnd{ID: o.ID, OK: true, Now: now})
					e.snapLine(ctx, vm, fmt.Sprintf("snapshot %s: already gone", o.Name), false)
				}
				return false
			}
			fail(fmt.Sprintf("snapshot '%s' does not exist", o.Name))
			return false
		}
		startAfter = o.Op == store.SnapOpRollback && st.Status == "running" && !snap.VMState
	}
	if err := e.Store.SnapshotStartIntent(ctx, o.ID, vm.Node, startAfter, now); err != nil {
		return false
	}
	o.State, o.Node, o.StartAfter, o.StartedAt = store.SnapStateRunning, vm.Node, startAfter, now
	e.sendSnapshot(ctx, pve, vm, o)
	return true
}

// sendSnapshot sends the running operation's task and writes its UPID.
func (e *Engine) sendSnapshot(ctx context.Context, pve proxmox.Client, vm VM, o SnapshotOp) {
	ref := proxmox.VMRef{Node: o.Node, VMID: vm.VMID}
	var task proxmox.TaskRef
	var err error
	switch o.Op {
	case store.SnapOpCreate:
		task, err = pve.CreateSnapshot(ctx, ref, proxmox.SnapshotRequest{Name: o.Name, Description: o.Description, VMState: o.VMState})
	case store.SnapOpDelete:
		task, err = pve.DeleteSnapshot(ctx, ref, o.Name, false)
	case store.SnapOpRollback:
		task, err = pve.RollbackSnapshot(ctx, ref, o.Name, false)
	}
	if err != nil {
		if proxmox.ConfigLock(err) != "" {
			// Refused before any task: queued again, the next pass waits for the lock.
			e.snapLine(ctx, vm, fmt.Sprintf("snapshot %s %s: waiting (%v)", o.Op, o.Name, err), false)
			_ = e.Store.SnapshotFinish(ctx, store.SnapshotEnd{ID: o.ID, Error: err.Error(), Now: e.Clock.Now()})
			if o.Origin == store.SnapOriginLifetime || o.Origin == store.SnapOriginManual {
				_, _, _ = e.Store.SnapshotQueue(ctx, store.SnapshotQueued{VMID: o.VMID, Op: o.Op, Origin: o.Origin, Name: o.Name,
					Description: o.Description, VMState: o.VMState, Attempt: o.Attempt, Now: e.Clock.Now()})
			}
			return
		}
		// The call may have reached PVE: left running without a UPID, the
		// next pass looks at PVE's list before sending again.
		e.snapLine(ctx, vm, fmt.Sprintf("snapshot %s %s: %v (looked at again next tick)", o.Op, o.Name, err), true)
		return
	}
	if err := e.Store.SnapshotSetUPID(ctx, o.ID, task.UPID); err != nil {
		return
	}
	e.snapLine(ctx, vm, fmt.Sprintf("snapshot %s %s: started %s", o.Op, o.Name, task.UPID), false)
}

// followSnapshot takes a running operation further: without a UPID (a crash
// or an error after the intent) it looks at the effect before sending
// again; with one it records how the task ended.
func (e *Engine) followSnapshot(ctx context.Context, pve proxmox.Client, vm VM, o SnapshotOp) {
	ref := proxmox.VMRef{Node: o.Node, VMID: vm.VMID}
	if o.UPID == "" {
		e.resolveSnapshotStart(ctx, pve, vm, o)
		return
	}
	node := o.Node
	if r, _, _, err := proxmox.ParseUPID(o.UPID); err == nil {
		node = r.Node
	}
	st, err := pve.TaskStatus(ctx, proxmox.TaskRef{Node: node, UPID: o.UPID})
	if err != nil || !st.Done() {
		return
	}
	if terr := st.Err(); terr != nil {
		msg := taskErrorLine(ctx, pve, st)
		if msg == "" {
			msg = st.ExitStatus
		}
		e.endSnapshot(ctx, vm, o, false, msg)
		return
	}
	if o.Op == store.SnapOpRollback && o.StartAfter {
		// Look before acting: a start sent before a crash is not sent twice.
		if vs, err := pve.VMStatus(ctx, ref); err == nil && vs.Status != "running" {
			if _, err := pve.Start(ctx, ref, proxmox.StartOptions{}); err != nil {
				e.snapLine(ctx, vm, fmt.Sprintf("snapshot rollback %s: start: %v (tried again next tick)", o.Name, err), true)
				return
			}
			e.snapLine(ctx, vm, fmt.Sprintf("snapshot rollback %s: VM started (it ran before)", o.Name), false)
		} else if err != nil {
			return
		}
	}
	e.endSnapshot(ctx, vm, o, true, "")
}

func (e *Engine) endSnapshot(ctx context.Context, vm VM, o SnapshotOp, ok bool, msg string) {
	now := e.Clock.Now()
	if err := e.Store.SnapshotFinish(ctx, store.SnapshotEnd{ID: o.ID, UPID: o.UPID, OK: ok, Error: msg, Now: now}); err != nil {
		return
	}
	if ok {
		e.snapLine(ctx, vm, fmt.Sprintf("snapshot %s %s: done", o.Op, o.Name), false)
		return
	}
	e.snapLine(ctx, vm, fmt.Sprintf("snapshot %s %s failed: %s", o.Op, o.Name, msg), true)
	if o.Origin == store.SnapOriginLifetime && o.Op == store.SnapOpDelete {
		// Retried with backoff; remove_snapshots shows it as needing attention.
		_, _, _ = e.Store.SnapshotQueue(ctx, store.SnapshotQueued{VMID: o.VMID, Op: o.Op, Origin: o.Origin, Name: o.Name,
			Attempt: o.Attempt + 1, NotBefore: now.Add(snapshotBackoff(o.Attempt)), Now: now})
	}
}

// snapshotBackoff is the wait before a failed lifetime delete is tried
// again: 5 minutes doubling per attempt, at most MaxBackoff.
func snapshotBackoff(attempt int) time.Duration {
	d := 5 * time.Minute
	for i := 1; i < attempt && d < MaxBackoff; i++ {
		d *= 2
	}
	return min(d, MaxBackoff)
}

// resolveSnapshotStart: the operation's intent was written but no UPID.
// The effect in PVE decides: create done when the name is listed, delete
// done when it is not; a rollback's task is looked for in PVE's task list
// since the intent. A VM lock means the task may still run: wait.
func (e *Engine) resolveSnapshotStart(ctx context.Context, pve proxmox.Client, vm VM, o SnapshotOp) {
	ref := proxmox.VMRef{Node: o.Node, VMID: vm.VMID}
	typ := map[string]string{store.SnapOpCreate: qmsnapshotType, store.SnapOpDelete: qmdelsnapshotType, store.SnapOpRollback: qmrollbackType}[o.Op]
	tasks, err := pve.Tasks(ctx, o.Node, proxmox.TaskFilter{VMID: vm.VMID, Type: typ})
	if err != nil {
		return
	}
	since := o.StartedAt.Add(-backupClockSkew)
	for _, t := range tasks {
		if !t.StartTime.Before(since) {
			if err := e.Store.SnapshotSetUPID(ctx, o.ID, t.Task.UPID); err == nil {
				e.snapLine(ctx, vm, fmt.Sprintf("snapshot %s %s: found its task %s", o.Op, o.Name, t.Task.UPID), false)
			}
			return
		}
	}
	if o.Op != store.SnapOpRollback {
		snaps, err := pve.Snapshots(ctx, ref)
		if err != nil {
			return
		}
		has := slices.ContainsFunc(snaps, func(s proxmox.Snapshot) bool { return s.Name == o.Name })
		if (o.Op == store.SnapOpCreate) == has {
			_ = e.Store.SnapshotFinish(ctx, store.SnapshotEnd{ID: o.ID, OK: true, Now: e.Clock.Now()})
			e.snapLine(ctx, vm, fmt.Sprintf("snapshot %s %s: done (seen in PVE's list)", o.Op, o.Name), false)
			return
		}
	}
	if st, err := pve.VMStatus(ctx, ref); err != nil || st.Lock != "" {
		return // PVE is busy with the VM: look again next pass
	}
	e.sendSnapshot(ctx, pve, vm, o)
}

// ---- remove_snapshots ----

// RemoveSnapshotsInterval is remove_snapshots' default interval.
const RemoveSnapshotsInterval = time.Hour

// RemoveSnapshotsTask queues the deletion of snapshots older than their
// product's snapshot_lifetime_days; process_vms runs the deletes.
func RemoveSnapshotsTask() Task {
	return Task{
		Name:            "remove_snapshots",
		Description:     "delete snapshots older than the product's snapshot_lifetime_days (each delete a PVE task run by process_vms; failed ones retried with backoff)",
		DefaultInterval: RemoveSnapshotsInterval,
		Run: func(ctx context.Context, e *Engine) (TaskCounts, error) {
			r, err := e.RemoveSnapshots(ctx)
			return TaskCounts{Processed: r.Processed, Errors: r.Failing, Message: r.Message}, err
		},
	}
}

// RemoveSnapshotsReport is what one remove_snapshots run did.
type RemoveSnapshotsReport struct {
	Processed int // VMs looked at
	Queued    int // deletes queued
	Failing   int // VMs whose lifetime delete failed and is being retried
	Message   string
}

// RemoveSnapshots looks at every VM whose product has a lifetime and
// queues a delete (origin lifetime) for each snapshot in PVE's list older
// than it. A VM whose delete failed keeps its retry (with backoff) and is
// named in the message; it never holds the other VMs.
func (e *Engine) RemoveSnapshots(ctx context.Context) (RemoveSnapshotsReport, error) {
	var r RemoveSnapshotsReport
	vms, err := e.Store.VMList(ctx, store.VMFilter{})
	if err != nil {
		return r, err
	}
	var pve proxmox.Client
	var failing []string
	now := e.Clock.Now()
	for _, vm := range vms {
		if ctx.Err() != nil {
			return r, ctx.Err()
		}
		p, ok := e.Config.Products[vm.Product]
		if !ok || p.SnapshotLifetimeDays == 0 || vm.VMID == 0 || backupGone(vm) {
			continue
		}
		s := states.State(vm.Status)
		if s != states.Ready && s != states.Suspended {
			continue
		}
		if pve == nil {
			env, err := e.Env(ctx)
			if err != nil {
				return r, err
			}
			if env.PVE == nil {
				return r, errors.New("no PVE connection")
			}
			pve = env.PVE
		}
		r.Processed++
		ops, err := e.Store.SnapshotOpsOf(ctx, vm.ID)
		if err != nil {
			return r, err
		}
		active := map[string]bool{}
		for _, o := range ops {
			if o.Active() && o.Op == store.SnapOpDelete {
				active[o.Name] = true
				if o.Attempt > 1 {
					failing = append(failing, fmt.Sprintf("%s (%s: %s)", vm.ServiceID, o.Name, lastError(ops, o)))
				}
			}
		}
		snaps, err := pve.Snapshots(ctx, proxmox.VMRef{Node: vm.Node, VMID: vm.VMID})
		if err != nil {
			failing = append(failing, fmt.Sprintf("%s (list: %v)", vm.ServiceID, err))
			continue
		}
		cutoff := now.Add(-time.Duration(p.SnapshotLifetimeDays) * 24 * time.Hour)
		for _, sn := range snaps {
			if sn.SnapTime.IsZero() || !sn.SnapTime.Before(cutoff) || active[sn.Name] {
				continue
			}
			if _, created, err := e.Store.SnapshotQueue(ctx, store.SnapshotQueued{VMID: vm.ID, Op: store.SnapOpDelete,
				Origin: store.SnapOriginLifetime, Name: sn.Name, Now: now}); err != nil {
				return r, err
			} else if created {
				r.Queued++
				// The audit trail: why a snapshot went away is in pvectl log VM.
				e.snapLineFor(ctx, vm, "remove_snapshots", fmt.Sprintf("snapshot delete %s queued: taken %s, older than the product's snapshot_lifetime_days (%d)",
					sn.Name, sn.SnapTime.UTC().Format("2006-01-02 15:04 UTC"), p.SnapshotLifetimeDays), false)
			}
		}
	}
	r.Failing = len(failing)
	switch {
	case len(failing) > 0:
		r.Message = fmt.Sprintf("needs attention: snapshot delete failing for %s", strings.Join(failing, ", "))
	case r.Queued > 0:
		r.Message = fmt.Sprintf("%d expired snapshot(s) queued for deletion", r.Queued)
	}
	return r, nil
}

// lastError is the error of the latest failed operation like o.
func lastError(ops []SnapshotOp, o SnapshotOp) string {
	msg := "failed"
	for _, p := range ops {
		if p.Op == o.Op && p.Name == o.Name && p.State == store.SnapStateFailed && p.Error != "" {
			msg = p.Error
		}
	}
	return msg
}

// ---- list ----

// SnapshotListEntry is one snapshot in PVE's list, or an operation pvectl
// has pending on it.
type SnapshotListEntry struct {
	Name        string    `json:"name"`
	Time        time.Time `json:"time,omitzero"`
	Description string    `json:"description"`
	VMState     bool      `json:"vmstate"`
	Parent      string    `json:"parent,omitempty"`
	Pending     string    `json:"pending,omitempty"` // "create queued", "delete running", …
}

// SnapshotListing is a VM's snapshots (PVE's list) and pvectl's pending operations.
type SnapshotListing struct {
	VM        string              `json:"vm"`
	Quota     int                 `json:"quota"`
	Lifetime  int                 `json:"lifetime_days"`
	Snapshots []SnapshotListEntry `json:"snapshots"`
}

// SnapshotList lists the VM's snapshots as PVE has them, with pvectl's
// queued or running operations on them (a queued create shows as an entry
// without a time).
func (e *Engine) SnapshotList(ctx context.Context, ref string) (SnapshotListing, error) {
	vm, err := e.FindVM(ctx, ref)
	if err != nil {
		return SnapshotListing{}, err
	}
	out := SnapshotListing{VM: vm.ServiceID, Snapshots: []SnapshotListEntry{}}
	if p, ok := e.Config.Products[vm.Product]; ok {
		out.Quota, out.Lifetime = p.SnapshotQuota, p.SnapshotLifetimeDays
	}
	if vm.VMID == 0 {
		return out, nil
	}
	snaps, err := e.pveSnapshots(ctx, vm)
	if err != nil {
		return out, fmt.Errorf("VM %s: read snapshots: %w", vm.ServiceID, err)
	}
	ops, err := e.Store.SnapshotOpsOf(ctx, vm.ID)
	if err != nil {
		return out, err
	}
	pending := map[string]string{}
	for _, o := range ops {
		if o.Active() {
			pending[o.Name] = o.Op + " " + o.State
		}
	}
	for _, s := range snaps {
		out.Snapshots = append(out.Snapshots, SnapshotListEntry{Name: s.Name, Time: s.SnapTime, Description: s.Description,
			VMState: s.VMState, Parent: s.Parent, Pending: pending[s.Name]})
		delete(pending, s.Name)
	}
	for _, o := range ops {
		if p, ok := pending[o.Name]; ok && o.Active() {
			out.Snapshots = append(out.Snapshots, SnapshotListEntry{Name: o.Name, Description: o.Description, VMState: o.VMState, Pending: p})
			delete(pending, o.Name)
		}
	}
	return out, nil
}
