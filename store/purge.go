package store

import (
	"context"
	"database/sql"
	"time"
)

// PurgeCounts is what a purge deleted (or, dry, would delete).
type PurgeCounts struct {
	TaskRuns      int64
	Notifications int64
	// RemovedVMs: records in remove deleted (each leaves a vm_audit row).
	RemovedVMs int64
}

// PurgeBefore is what a purge lets go: rows older than each time; a zero
// time keeps that kind. Now is when the purge runs (the audit rows' time).
type PurgeBefore struct {
	TaskRuns      time.Time // task runs started before
	Notifications time.Time // notifications delivered before
	Removed       time.Time // records that reached remove before
	Now           time.Time
}

// Purge deletes task runs started before b.TaskRuns (each task's newest run
// is kept, so pvectl tasks and pvectl health still see it), notifications
// delivered before b.Notifications (pending and parked ones are kept), and
// records that reached remove before b.Removed with nothing left to do,
// each replaced by its vm_audit row (see purgeRemoved). dry counts without
// deleting.
func (s *Store) Purge(ctx context.Context, b PurgeBefore, dry bool) (PurgeCounts, error) {
	var c PurgeCounts
	runsWhere := `started_at < ? AND id NOT IN (SELECT MAX(id) FROM task_runs GROUP BY task)`
	notesWhere := `delivered_at <> 0 AND delivered_at < ?`
	err := s.tx(ctx, func(tx *sql.Tx) error {
		run := func(table, where string, before time.Time, n *int64) error {
			if before.IsZero() {
				return nil
			}
			if dry {
				return tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table+` WHERE `+where, ms(before)).Scan(n)
			}
			res, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE `+where, ms(before))
			if err != nil {
				return err
			}
			*n, err = res.RowsAffected()
			return err
		}
		if err := run("task_runs", runsWhere, b.TaskRuns, &c.TaskRuns); err != nil {
			return err
		}
		return run("outbox", notesWhere, b.Notifications, &c.Notifications)
	})
	if err != nil || b.Removed.IsZero() {
		return c, err
	}
	c.RemovedVMs, err = s.purgeRemoved(ctx, b.Removed, b.Now, dry)
	return c, err
}
