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
}

// Purge deletes task runs started before runsBefore (each task's newest run
// is kept, so pvectl tasks and pvectl health still see it) and delivered
// notifications delivered before notesBefore (pending and parked ones are
// kept). A zero time keeps that kind. dry counts without deleting.
func (s *Store) Purge(ctx context.Context, runsBefore, notesBefore time.Time, dry bool) (PurgeCounts, error) {
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
		if err := run("task_runs", runsWhere, runsBefore, &c.TaskRuns); err != nil {
			return err
		}
		return run("outbox", notesWhere, notesBefore, &c.Notifications)
	})
	return c, err
}
