package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Backup states (backups.state). A backup is queued by a request (backup
// now) or by the schedule, started by process_vms (rotating first when the
// VM is at its product's backup_quota), and ended by backup_status.
const (
	BackupStateQueued   = "queued"   // waiting for a tick to start it
	BackupStateRotating = "rotating" // deleting the oldest unprotected backup first (RotateVolID)
	BackupStateRunning  = "running"  // vzdump sent (UPID once PVE returned it)
	BackupStateOK       = "ok"
	BackupStateFailed   = "failed"
	BackupStateSkipped  = "skipped" // a scheduled slot recorded as not run; Error says why
)

// Backup kinds.
const (
	BackupManual    = "manual"
	BackupScheduled = "scheduled"
)

// Backup is one row of the backups table: a backup pvectl queued or made.
// PVE's storage content stays the truth about which archives exist.
type Backup struct {
	ID        int64
	VMID      int64 // the vms.id
	Kind      string
	Slot      string // "" for manual; the slot's local start for scheduled ("2026-12-07T03:10")
	Note      string
	Protected bool
	State     string
	Storage   string // where the vzdump writes (set when it is started)
	Node      string // the node the vzdump runs on
	UPID      string // the vzdump task
	// Baseline is the VM's vzdump tasks PVE listed just before the vzdump
	// was sent (JSON), to tell after a crash whether it was sent.
	Baseline string
	// RotateVolID is the archive being deleted to make room (written before
	// the DELETE); RotateUPID its imgdel task.
	RotateVolID string
	RotateUPID  string
	VolID       string // the archive, once the vzdump ended OK
	Size        int64
	Error       string // the failure, or why a slot was skipped
	QueuedAt    time.Time
	StartedAt   time.Time // when the row entered rotating or running
	EndedAt     time.Time
}

// Active reports whether the backup is still to be done or under way.
func (b Backup) Active() bool {
	return b.State == BackupStateQueued || b.State == BackupStateRotating || b.State == BackupStateRunning
}

// InFlight reports whether a PVE task of the backup may be running on its
// VM (a deletion for the quota, or the vzdump): no pipeline step may run.
func (b Backup) InFlight() bool {
	return b.State == BackupStateRotating || b.State == BackupStateRunning
}

const backupColumns = `id, vm_id, kind, slot, note, protected, state, storage, node, upid, baseline,
	rotate_volid, rotate_upid, volid, size, error, queued_at, started_at, ended_at`

func scanBackup(r scanner) (Backup, error) {
	var b Backup
	var prot int
	var queued, started, ended int64
	err := r.Scan(&b.ID, &b.VMID, &b.Kind, &b.Slot, &b.Note, &prot, &b.State, &b.Storage, &b.Node, &b.UPID,
		&b.Baseline, &b.RotateVolID, &b.RotateUPID, &b.VolID, &b.Size, &b.Error, &queued, &started, &ended)
	if err != nil {
		return Backup{}, err
	}
	b.Protected = prot == 1
	b.QueuedAt, b.StartedAt, b.EndedAt = fromMS(queued), fromMS(started), fromMS(ended)
	return b, nil
}

// BackupQueued is what BackupQueue writes.
type BackupQueued struct {
	VMID      int64  // the vms.id
	Kind      string // "manual" | "scheduled"
	Slot      string // "" for manual
	Note      string
	Protected bool
	Skipped   string // non-empty: record the slot as skipped with this reason (state 'skipped'), nothing to run
	Now       time.Time
}

// BackupQueue inserts a queued (or skipped) backup; for a non-empty Slot an
// existing row for (VMID, Slot) is returned with created=false and nothing
// changes. A manual backup (empty Slot) while the VM has a backup queued,
// rotating or running returns that one with created=false, and nothing
// changes either. On an audited store the insert is recorded in the VM's
// log in the same transaction.
func (s *Store) BackupQueue(ctx context.Context, q BackupQueued) (b Backup, created bool, err error) {
	if q.Kind != BackupManual && q.Kind != BackupScheduled {
		return Backup{}, false, fmt.Errorf("backup kind %q: want manual or scheduled", q.Kind)
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		created = false
		var existing *sql.Row
		if q.Slot != "" {
			existing = tx.QueryRowContext(ctx, `SELECT `+backupColumns+` FROM backups WHERE vm_id = ? AND slot = ?`, q.VMID, q.Slot)
		} else {
			existing = tx.QueryRowContext(ctx, `SELECT `+backupColumns+` FROM backups WHERE vm_id = ?
				AND state IN ('queued', 'rotating', 'running') ORDER BY id LIMIT 1`, q.VMID)
		}
		got, err := scanBackup(existing)
		switch {
		case err == nil:
			b = got
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		state, ended := BackupStateQueued, int64(0)
		if q.Skipped != "" {
			state, ended = BackupStateSkipped, ms(q.Now)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO backups (vm_id, kind, slot, note, protected, state, error, queued_at, ended_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, q.VMID, q.Kind, q.Slot, q.Note, b2i(q.Protected), state, q.Skipped, ms(q.Now), ended)
		if err != nil {
			return err
		}
		id, err := res.LastInsertId()
		if err != nil {
			return err
		}
		created = true
		b, err = scanBackup(tx.QueryRowContext(ctx, `SELECT `+backupColumns+` FROM backups WHERE id = ?`, id))
		return err
	})
	if err != nil {
		return Backup{}, false, err
	}
	return b, created, nil
}

// BackupGet returns one backup row (ErrNotFound if there is none).
func (s *Store) BackupGet(ctx context.Context, id int64) (Backup, error) {
	b, err := scanBackup(s.db.QueryRowContext(ctx, `SELECT `+backupColumns+` FROM backups WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Backup{}, fmt.Errorf("backup #%d: %w", id, ErrNotFound)
	}
	return b, explainAt(s.path, err)
}

// BackupsOf returns a VM's backup rows, oldest first.
func (s *Store) BackupsOf(ctx context.Context, vmID int64) ([]Backup, error) {
	return s.queryBackups(ctx, `SELECT `+backupColumns+` FROM backups WHERE vm_id = ? ORDER BY id`, vmID)
}

// BackupsByState returns the backup rows in any of the states, oldest first.
func (s *Store) BackupsByState(ctx context.Context, states ...string) ([]Backup, error) {
	if len(states) == 0 {
		return nil, nil
	}
	args := make([]any, len(states))
	for i, st := range states {
		args[i] = st
	}
	q := `SELECT ` + backupColumns + ` FROM backups WHERE state IN (?` + strings.Repeat(", ?", len(states)-1) + `) ORDER BY id`
	return s.queryBackups(ctx, q, args...)
}

// BackupInFlight returns the VM's backup that is rotating or running, if any.
func (s *Store) BackupInFlight(ctx context.Context, vmID int64) (Backup, bool, error) {
	b, err := scanBackup(s.queryRow(ctx, `SELECT `+backupColumns+` FROM backups
		WHERE vm_id = ? AND state IN ('rotating', 'running') ORDER BY id LIMIT 1`, vmID))
	if errors.Is(err, sql.ErrNoRows) {
		return Backup{}, false, nil
	}
	if err != nil {
		return Backup{}, false, explainAt(s.path, err)
	}
	return b, true, nil
}

// BackupsInFlightVMs returns the VMs (vms.id) that BackupInFlight would
// find a backup for: the step runner reads them once per pass. Backups
// start only in process_vms before its steps run, so none starts during
// the pass.
func (s *Store) BackupsInFlightVMs(ctx context.Context) (map[int64]bool, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT vm_id FROM backups WHERE state IN ('rotating', 'running')`)
	if err != nil {
		return nil, explainAt(s.path, err)
	}
	defer rows.Close()
	out := map[int64]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, explainAt(s.path, err)
		}
		out[id] = true
	}
	return out, explainAt(s.path, rows.Err())
}

func (s *Store) queryBackups(ctx context.Context, q string, args ...any) ([]Backup, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, explainAt(s.path, err)
	}
	defer rows.Close()
	var out []Backup
	for rows.Next() {
		b, err := scanBackup(rows)
		if err != nil {
			return nil, explainAt(s.path, err)
		}
		out = append(out, b)
	}
	return out, explainAt(s.path, rows.Err())
}

// backupRow checks that a guarded backup write changed its row.
func backupRow(res sql.Result, id int64, want string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n != 1 {
		return fmt.Errorf("backup #%d is no longer %s: %w", id, want, ErrConflict)
	}
	return nil
}

// startableVM is the guard of every write that sends a backup's PVE task:
// the VM is ready or suspended, not held, with no pending step task.
const startableVM = `EXISTS (SELECT 1 FROM vms WHERE vms.id = backups.vm_id
	AND vms.status IN ('ready', 'suspended') AND vms.held = 0 AND vms.pending_upid = '')`

// BackupRotateIntent records, before the DELETE is sent, that the queued
// backup first deletes volid (the oldest unprotected archive): state
// rotating, rotate_volid set, no rotate_upid yet, started_at now. Guarded:
// the backup is queued and its VM can take a PVE task (else ErrConflict).
func (s *Store) BackupRotateIntent(ctx context.Context, id int64, volid string, now time.Time) error {
	res, err := s.exec(ctx, `UPDATE backups SET state = 'rotating', rotate_volid = ?, rotate_upid = '', started_at = ?
		WHERE id = ? AND state = 'queued' AND `+startableVM, volid, ms(now), id)
	if err != nil {
		return err
	}
	return backupRow(res, id, "queued (or its VM is busy)")
}

// BackupSetRotateUPID records the imgdel task of the rotation of volid
// ("" forgets a task PVE lost, so the deletion is looked at again).
func (s *Store) BackupSetRotateUPID(ctx context.Context, id int64, volid, upid string) error {
	res, err := s.exec(ctx, `UPDATE backups SET rotate_upid = ? WHERE id = ? AND state = 'rotating' AND rotate_volid = ?`,
		upid, id, volid)
	if err != nil {
		return err
	}
	return backupRow(res, id, "rotating "+volid)
}

// BackupRotateDone records that volid is gone: the backup is queued again
// (the next look counts the archives anew).
func (s *Store) BackupRotateDone(ctx context.Context, id int64, volid string) error {
	res, err := s.exec(ctx, `UPDATE backups SET state = 'queued', rotate_volid = '', rotate_upid = ''
		WHERE id = ? AND state = 'rotating' AND rotate_volid = ?`, id, volid)
	if err != nil {
		return err
	}
	return backupRow(res, id, "rotating "+volid)
}

// BackupStartIntent records, before the vzdump is sent, that the queued
// backup runs on node to storage: state running, no UPID yet, the task
// baseline, started_at now. Guarded: the backup is queued and its VM can
// take a PVE task (else ErrConflict).
func (s *Store) BackupStartIntent(ctx context.Context, id int64, node, storage, baseline string, now time.Time) error {
	res, err := s.exec(ctx, `UPDATE backups SET state = 'running', node = ?, storage = ?, upid = '', baseline = ?, started_at = ?
		WHERE id = ? AND state = 'queued' AND `+startableVM, node, storage, baseline, ms(now), id)
	if err != nil {
		return err
	}
	return backupRow(res, id, "queued (or its VM is busy)")
}

// BackupSetUPID records the vzdump task PVE returned (or found in PVE's
// task list after a crash), once: the backup is running without a UPID.
func (s *Store) BackupSetUPID(ctx context.Context, id int64, upid string) error {
	res, err := s.exec(ctx, `UPDATE backups SET upid = ? WHERE id = ? AND state = 'running' AND upid = ''`, upid, id)
	if err != nil {
		return err
	}
	return backupRow(res, id, "running without a task")
}

// BackupEnd is how a running backup ended.
type BackupEnd struct {
	ID    int64
	UPID  string // the task the end was read from ("" when none was recorded)
	OK    bool
	VolID string
	Size  int64
	Error string
	Now   time.Time
	// Events (a failed backup's notification) are written to the outbox
	// in the same transaction when the backup failed.
	Events []OutboxEvent
}

// BackupFinish records the end of a running backup whose UPID is e.UPID
// (else ErrConflict: someone else recorded it).
func (s *Store) BackupFinish(ctx context.Context, e BackupEnd) error {
	state := BackupStateFailed
	if e.OK {
		state = BackupStateOK
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE backups SET state = ?, volid = ?, size = ?, error = ?, ended_at = ?
			WHERE id = ? AND state = 'running' AND upid = ?`, state, e.VolID, e.Size, e.Error, ms(e.Now), e.ID, e.UPID)
		if err != nil {
			return err
		}
		if err := backupRow(res, e.ID, "running task "+e.UPID); err != nil || e.OK {
			return err
		}
		return insertOutbox(ctx, tx, e.Events, e.Now)
	})
}

// BackupFail ends a backup that is still in state from (queued, rotating,
// or running without a task) as failed with errText, and writes evs (its
// notification) to the outbox in the same transaction.
func (s *Store) BackupFail(ctx context.Context, id int64, from, errText string, now time.Time, evs ...OutboxEvent) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE backups SET state = 'failed', error = ?, ended_at = ?
			WHERE id = ? AND state = ? AND (state <> 'running' OR upid = '')`, errText, ms(now), id, from)
		if err != nil {
			return err
		}
		if err := backupRow(res, id, from); err != nil {
			return err
		}
		return insertOutbox(ctx, tx, evs, now)
	})
}
