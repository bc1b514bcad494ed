package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Snapshot operations (snapshot_ops.op).
const (
	SnapOpCreate   = "create"
	SnapOpDelete   = "delete"
	SnapOpRollback = "rollback"
)

// Snapshot operation origins (snapshot_ops.origin).
const (
	SnapOriginManual   = "manual"   // a snapshot create/delete/rollback request
	SnapOriginLifetime = "lifetime" // remove_snapshots: the snapshot outlived snapshot_lifetime_days
)

// Snapshot operation states (snapshot_ops.state). An operation is queued by
// a request or by remove_snapshots, started by process_vms (running: the
// PVE task sent, UPID once PVE returned it) and ended when its task ended.
const (
	SnapStateQueued  = "queued"
	SnapStateRunning = "running"
	SnapStateOK      = "ok"
	SnapStateFailed  = "failed"
)

// SnapshotOp is one row of the snapshot_ops table. PVE's snapshot list
// stays the truth about which snapshots exist.
type SnapshotOp struct {
	ID          int64
	VMID        int64 // the vms.id
	Op          string
	Origin      string
	Name        string
	Description string // create only
	VMState     bool   // create only: with RAM
	// StartAfter: a rollback whose VM ran before and whose snapshot holds
	// no RAM, so PVE leaves it stopped: pvectl starts it afterwards.
	StartAfter bool
	State      string
	Node       string // the node the task was sent to
	UPID       string
	Error      string
	Attempt    int       // 1 for the first try; a retried lifetime delete counts up
	NotBefore  time.Time // a retried operation is not started before (zero: at once)
	QueuedAt   time.Time
	StartedAt  time.Time
	EndedAt    time.Time
}

// Active reports whether the operation is still to be done or under way.
func (o SnapshotOp) Active() bool {
	return o.State == SnapStateQueued || o.State == SnapStateRunning
}

const snapOpColumns = `id, vm_id, op, origin, name, description, vmstate, start_after, state, node, upid, error,
	attempt, not_before, queued_at, started_at, ended_at`

func scanSnapOp(r scanner) (SnapshotOp, error) {
	var o SnapshotOp
	var vmstate, startAfter int
	var notBefore, queued, started, ended int64
	err := r.Scan(&o.ID, &o.VMID, &o.Op, &o.Origin, &o.Name, &o.Description, &vmstate, &startAfter, &o.State,
		&o.Node, &o.UPID, &o.Error, &o.Attempt, &notBefore, &queued, &started, &ended)
	if err != nil {
		return SnapshotOp{}, err
	}
	o.VMState, o.StartAfter = vmstate == 1, startAfter == 1
	o.NotBefore, o.QueuedAt, o.StartedAt, o.EndedAt = fromMS(notBefore), fromMS(queued), fromMS(started), fromMS(ended)
	return o, nil
}

// SnapshotQueued is what SnapshotQueue writes.
type SnapshotQueued struct {
	VMID        int64
	Op          string // create | delete | rollback
	Origin      string // manual (default) | lifetime
	Name        string
	Description string
	VMState     bool
	Attempt     int       // 0 means 1
	NotBefore   time.Time // zero: at once
	Now         time.Time
}

// SnapshotQueue inserts a queued operation. While the VM has an active
// (queued or running) operation of the same op on the same name, that one
// is returned with created=false and nothing changes.
func (s *Store) SnapshotQueue(ctx context.Context, q SnapshotQueued) (o SnapshotOp, created bool, err error) {
	switch q.Op {
	case SnapOpCreate, SnapOpDelete, SnapOpRollback:
	default:
		return SnapshotOp{}, false, fmt.Errorf("snapshot op %q: want create, delete or rollback", q.Op)
	}
	if q.Origin == "" {
		q.Origin = SnapOriginManual
	}
	if q.Origin != SnapOriginManual && q.Origin != SnapOriginLifetime {
		return SnapshotOp{}, false, fmt.Errorf("snapshot origin %q: want manual or lifetime", q.Origin)
	}
	if q.Name == "" {
		return SnapshotOp{}, false, errors.New("snapshot op: empty name")
	}
	if q.Attempt < 1 {
		q.Attempt = 1
	}
	var notBefore int64
	if !q.NotBefore.IsZero() {
		notBefore = ms(q.NotBefore)
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		created = false
		got, err := scanSnapOp(tx.QueryRowContext(ctx, `SELECT `+snapOpColumns+` FROM snapshot_ops
			WHERE vm_id = ? AND op = ? AND name = ? AND state IN ('queued', 'running') ORDER BY id LIMIT 1`, q.VMID, q.Op, q.Name))
		switch {
		case err == nil:
			o = got
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO snapshot_ops (vm_id, op, origin, name, description, vmstate, state,
			attempt, not_before, queued_at) VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?)`,
			q.VMID, q.Op, q.Origin, q.Name, q.Description, b2i(q.VMState), q.Attempt, notBefore, ms(q.Now))
		if err != nil {
			return err
		}
		id, err := res.LastInsertId()
		if err != nil {
			return err
		}
		created = true
		o, err = scanSnapOp(tx.QueryRowContext(ctx, `SELECT `+snapOpColumns+` FROM snapshot_ops WHERE id = ?`, id))
		return err
	})
	if err != nil {
		return SnapshotOp{}, false, err
	}
	return o, created, nil
}

// SnapshotOpGet returns one operation (ErrNotFound if there is none).
func (s *Store) SnapshotOpGet(ctx context.Context, id int64) (SnapshotOp, error) {
	o, err := scanSnapOp(s.db.QueryRowContext(ctx, `SELECT `+snapOpColumns+` FROM snapshot_ops WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return SnapshotOp{}, fmt.Errorf("snapshot operation #%d: %w", id, ErrNotFound)
	}
	return o, explainAt(s.path, err)
}

// SnapshotOpsOf returns a VM's snapshot operations, oldest first.
func (s *Store) SnapshotOpsOf(ctx context.Context, vmID int64) ([]SnapshotOp, error) {
	return s.querySnapOps(ctx, `SELECT `+snapOpColumns+` FROM snapshot_ops WHERE vm_id = ? ORDER BY id`, vmID)
}

// SnapshotOpsByState returns the operations in any of the states, oldest first.
func (s *Store) SnapshotOpsByState(ctx context.Context, states ...string) ([]SnapshotOp, error) {
	if len(states) == 0 {
		return nil, nil
	}
	args := make([]any, len(states))
	for i, st := range states {
		args[i] = st
	}
	q := `SELECT ` + snapOpColumns + ` FROM snapshot_ops WHERE state IN (?` + strings.Repeat(", ?", len(states)-1) + `) ORDER BY id`
	return s.querySnapOps(ctx, q, args...)
}

// SnapshotOpRunning returns the VM's running operation, if any (its PVE
// task may hold the VM's lock: no other task may be sent).
func (s *Store) SnapshotOpRunning(ctx context.Context, vmID int64) (SnapshotOp, bool, error) {
	o, err := scanSnapOp(s.db.QueryRowContext(ctx, `SELECT `+snapOpColumns+` FROM snapshot_ops
		WHERE vm_id = ? AND state = 'running' ORDER BY id LIMIT 1`, vmID))
	if errors.Is(err, sql.ErrNoRows) {
		return SnapshotOp{}, false, nil
	}
	if err != nil {
		return SnapshotOp{}, false, explainAt(s.path, err)
	}
	return o, true, nil
}

func (s *Store) querySnapOps(ctx context.Context, q string, args ...any) ([]SnapshotOp, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, explainAt(s.path, err)
	}
	defer rows.Close()
	var out []SnapshotOp
	for rows.Next() {
		o, err := scanSnapOp(rows)
		if err != nil {
			return nil, explainAt(s.path, err)
		}
		out = append(out, o)
	}
	return out, explainAt(s.path, rows.Err())
}

func snapOpRow(res sql.Result, id int64, want string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n != 1 {
		return fmt.Errorf("snapshot operation #%d is no longer %s: %w", id, want, ErrConflict)
	}
	return nil
}

// snapStartableVM guards every write that sends a snapshot operation's PVE
// task: the VM is ready or suspended, not held, with no pending step task,
// and no other operation of it is running.
const snapStartableVM = `EXISTS (SELECT 1 FROM vms WHERE vms.id = snapshot_ops.vm_id
	AND vms.status IN ('ready', 'suspended') AND vms.held = 0 AND vms.pending_upid = '')
	AND NOT EXISTS (SELECT 1 FROM snapshot_ops o2 WHERE o2.vm_id = snapshot_ops.vm_id AND o2.state = 'running')`

// SnapshotStartIntent records, before the PVE task is sent, that the queued
// operation runs on node: state running, no UPID yet, start_after (rollback),
// started_at now. Guarded: the operation is queued, its not_before has
// passed, and its VM can take a PVE task (else ErrConflict).
func (s *Store) SnapshotStartIntent(ctx context.Context, id int64, node string, startAfter bool, now time.Time) error {
	res, err := s.exec(ctx, `UPDATE snapshot_ops SET state = 'running', node = ?, upid = '', start_after = ?, started_at = ?
		WHERE id = ? AND state = 'queued' AND not_before <= ? AND `+snapStartableVM, node, b2i(startAfter), ms(now), id, ms(now))
	if err != nil {
		return err
	}
	return snapOpRow(res, id, "queued (or its VM is busy)")
}

// SnapshotSetUPID records the task PVE returned (or found after a crash),
// once: the operation is running without a UPID.
func (s *Store) SnapshotSetUPID(ctx context.Context, id int64, upid string) error {
	res, err := s.exec(ctx, `UPDATE snapshot_ops SET upid = ? WHERE id = ? AND state = 'running' AND upid = ''`, upid, id)
	if err != nil {
		return err
	}
	return snapOpRow(res, id, "running without a task")
}

// SnapshotEnd is how a running operation ended.
type SnapshotEnd struct {
	ID    int64
	UPID  string // the task the end was read from ("" when the effect was read from PVE's list)
	OK    bool
	Error string
	Now   time.Time
}

// SnapshotFinish records the end of a running operation whose UPID is
// e.UPID (else ErrConflict).
func (s *Store) SnapshotFinish(ctx context.Context, e SnapshotEnd) error {
	state := SnapStateFailed
	if e.OK {
		state = SnapStateOK
	}
	res, err := s.exec(ctx, `UPDATE snapshot_ops SET state = ?, error = ?, ended_at = ?
		WHERE id = ? AND state = 'running' AND upid = ?`, state, e.Error, ms(e.Now), e.ID, e.UPID)
	if err != nil {
		return err
	}
	return snapOpRow(res, e.ID, "running task "+e.UPID)
}

// SnapshotFail ends an operation still queued (a request PVE or the config
// made moot) as failed with errText.
func (s *Store) SnapshotFail(ctx context.Context, id int64, errText string, now time.Time) error {
	res, err := s.exec(ctx, `UPDATE snapshot_ops SET state = 'failed', error = ?, ended_at = ?
		WHERE id = ? AND state = 'queued'`, errText, ms(now), id)
	if err != nil {
		return err
	}
	return snapOpRow(res, id, "queued")
}
