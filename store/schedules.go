package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// BackupSchedule is a VM's backup schedule (table backup_schedules, at most
// one per VM, deleted with its record).
type BackupSchedule struct {
	VMID int64 // vms.id
	// Days is a 7-bit mask of weekdays: bit n is Go's time.Weekday n
	// (1 = Sunday, 2 = Monday … 64 = Saturday); never 0.
	Days int
	// AtMinute is the slot's start in minutes after midnight, in the
	// schedule time zone (backups.timezone).
	AtMinute int
	// Randomised: pvectl picked AtMinute in backups.window (no --at given).
	Randomised bool
	// CheckedUntil is the time up to which schedule_backup has handled the
	// schedule's slots (queued or recorded as skipped); zero = never. A
	// hint that bounds the look-back, not the guard against running a slot
	// twice: that is the backups table's unique (vm, slot) row.
	CheckedUntil time.Time
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// ScheduledVM is a schedule with what schedule_backup needs of its VM.
type ScheduledVM struct {
	BackupSchedule
	ServiceID string
	Hostname  string
	Product   string
	Status    string
}

const scheduleColumns = `s.vm_id, s.days, s.at_minute, s.randomised, s.checked_until, s.created_at, s.updated_at`

func scanSchedule(r scanner, extra ...any) (BackupSchedule, error) {
	var b BackupSchedule
	var randomised int
	var checked, created, updated int64
	dst := append([]any{&b.VMID, &b.Days, &b.AtMinute, &randomised, &checked, &created, &updated}, extra...)
	if err := r.Scan(dst...); err != nil {
		return BackupSchedule{}, err
	}
	b.Randomised = randomised == 1
	b.CheckedUntil, b.CreatedAt, b.UpdatedAt = fromMS(checked), fromMS(created), fromMS(updated)
	return b, nil
}

// BackupScheduleSet saves a VM's schedule (Days, AtMinute, Randomised of
// b), creating it or replacing the saved one. Saving what is already saved
// changes nothing (changed = false; an Audited store records nothing). A
// changed schedule keeps its created_at and checked_until; updated_at is
// now. It returns the schedule as saved. A VM that does not exist is
// ErrNotFound.
func (s *Store) BackupScheduleSet(ctx context.Context, b BackupSchedule, now time.Time) (got BackupSchedule, changed bool, err error) {
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM vms WHERE id = ?`, b.VMID).Scan(&one); errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO backup_schedules (vm_id, days, at_minute, randomised, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (vm_id) DO UPDATE SET days = excluded.days, at_minute = excluded.at_minute,
				randomised = excluded.randomised, updated_at = excluded.updated_at
			WHERE days <> excluded.days OR at_minute <> excluded.at_minute OR randomised <> excluded.randomised`,
			b.VMID, b.Days, b.AtMinute, b2i(b.Randomised), ms(now), ms(now))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		changed = n == 1
		got, err = scanSchedule(tx.QueryRowContext(ctx, `SELECT `+scheduleColumns+` FROM backup_schedules s WHERE s.vm_id = ?`, b.VMID))
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return BackupSchedule{}, false, ErrNotFound
	}
	return got, changed, err
}

// BackupScheduleClear deletes a VM's schedule; existed is false (and an
// Audited store records nothing) when it had none.
func (s *Store) BackupScheduleClear(ctx context.Context, vmID int64) (existed bool, err error) {
	err = s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM backup_schedules WHERE vm_id = ?`, vmID)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		existed = n == 1
		return err
	})
	return existed, err
}

// BackupScheduleGet returns a VM's schedule, or ErrNotFound.
func (s *Store) BackupScheduleGet(ctx context.Context, vmID int64) (BackupSchedule, error) {
	b, err := scanSchedule(s.db.QueryRowContext(ctx, `SELECT `+scheduleColumns+` FROM backup_schedules s WHERE s.vm_id = ?`, vmID))
	if errors.Is(err, sql.ErrNoRows) {
		return BackupSchedule{}, ErrNotFound
	}
	return b, explainAt(s.path, err)
}

// BackupSchedules lists every schedule with its VM, ordered by service id.
func (s *Store) BackupSchedules(ctx context.Context) ([]ScheduledVM, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+scheduleColumns+`, v.service_id, v.hostname, v.product, v.status
		FROM backup_schedules s JOIN vms v ON v.id = s.vm_id ORDER BY v.service_id`)
	if err != nil {
		return nil, explainAt(s.path, err)
	}
	defer rows.Close()
	var out []ScheduledVM
	for rows.Next() {
		var v ScheduledVM
		b, err := scanSchedule(rows, &v.ServiceID, &v.Hostname, &v.Product, &v.Status)
		if err != nil {
			return nil, err
		}
		v.BackupSchedule = b
		out = append(out, v)
	}
	return out, explainAt(s.path, rows.Err())
}

// BackupScheduleChecked records that schedule_backup has handled the VM's
// slots up to until. It is written as given, also when earlier than the
// value stored (a clock stepped back): the stored value is only a hint.
// A schedule cleared meanwhile is not an error.
func (s *Store) BackupScheduleChecked(ctx context.Context, vmID int64, until time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE backup_schedules SET checked_until = ? WHERE vm_id = ?`, ms(until), vmID)
		return err
	})
}
