package store

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"
)

// RunsKeptPerVM is how many runs of each VM's log are kept.
const RunsKeptPerVM = 50

// Run is one pass of a task over one VM, with its lines.
type Run struct {
	ID         int64
	VMID       int64 // vms.id
	Task       string
	StartedAt  time.Time
	FinishedAt time.Time
	Result     string
	Lines      []RunLine
	// Repeats counts the waiting runs at the same step folded into this
	// one (collapseWait); LastAt and LastResult are the newest one's.
	Repeats    int
	LastAt     time.Time
	LastResult string
}

// RunLine is one logged step or event of a run.
type RunLine struct {
	ID       int64
	RunID    int64
	At       time.Time
	Step     string
	From     string
	To       string
	Result   string // success, skip, waiting, error, event
	Detail   string
	Duration time.Duration
}

// RunStart opens a run for a VM and prunes that VM's log to the newest
// RunsKeptPerVM runs (including the new one).
func (s *Store) RunStart(ctx context.Context, vmID int64, task string, now time.Time) (int64, error) {
	var id int64
	err := s.group(ctx, func(ctx context.Context, tx *gtx) error {
		var err error
		id, err = startRun(ctx, tx, vmID, task, now)
		return err
	})
	return id, err
}

// startRun is RunStart in tx.
func startRun(ctx context.Context, tx *gtx, vmID int64, task string, now time.Time) (int64, error) {
	res, err := tx.exec(ctx, `INSERT INTO runs (vm_id, task, started_at) VALUES (?, ?, ?)`, vmID, task, ms(now))
	if err != nil {
		return 0, err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, err
	}
	_, err = tx.exec(ctx, `DELETE FROM runs WHERE vm_id = ? AND id NOT IN
		(SELECT id FROM runs WHERE vm_id = ? ORDER BY id DESC LIMIT ?)`, vmID, vmID, RunsKeptPerVM)
	return id, err
}

// RunAppendLine appends a line to a run. Lines are written as they happen
// (through the group commit: durable when it returns).
func (s *Store) RunAppendLine(ctx context.Context, l RunLine) error {
	return s.group(ctx, func(ctx context.Context, tx *gtx) error {
		_, err := tx.exec(ctx, `INSERT INTO run_lines (run_id, at, step, from_state, to_state, result, detail, duration_ms)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, l.RunID, ms(l.At), l.Step, l.From, l.To, l.Result, l.Detail, l.Duration.Milliseconds())
		return err
	})
}

// RunFinish closes a run with its overall result.
func (s *Store) RunFinish(ctx context.Context, runID int64, result string, now time.Time) error {
	return s.group(ctx, func(ctx context.Context, tx *gtx) error {
		_, err := tx.exec(ctx, `UPDATE runs SET finished_at = ?, result = ? WHERE id = ?`, ms(now), result, runID)
		return err
	})
}

// RunsForVM returns a VM's newest runs first, each with its lines in order.
// afterLine > 0 returns only lines with a greater id (for --follow).
func (s *Store) RunsForVM(ctx context.Context, vmID int64, limit int) ([]Run, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, vm_id, task, started_at, finished_at, result, repeats, last_at, last_result
		FROM runs WHERE vm_id = ? ORDER BY id DESC LIMIT ?`, vmID, limit)
	if err != nil {
		return nil, err
	}
	var runs []Run
	for rows.Next() {
		var r Run
		var st, fin, last int64
		if err := rows.Scan(&r.ID, &r.VMID, &r.Task, &st, &fin, &r.Result, &r.Repeats, &last, &r.LastResult); err != nil {
			rows.Close()
			return nil, err
		}
		r.StartedAt, r.FinishedAt = fromMS(st), fromMS(fin)
		if last != 0 {
			r.LastAt = fromMS(last)
		}
		runs = append(runs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range runs {
		lines, err := s.RunLinesAfter(ctx, runs[i].ID, 0)
		if err != nil {
			return nil, err
		}
		runs[i].Lines = lines
	}
	return runs, nil
}

const runLinesQuery = `SELECT id, run_id, at, step, from_state, to_state, result, detail, duration_ms
		FROM run_lines WHERE run_id = ? AND id > ? ORDER BY id`

// RunLinesAfter returns a run's lines with id > after, in order.
func (s *Store) RunLinesAfter(ctx context.Context, runID, after int64) ([]RunLine, error) {
	rows, err := s.db.QueryContext(ctx, runLinesQuery, runID, after)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []RunLine
	for rows.Next() {
		var l RunLine
		var at, dur int64
		if err := rows.Scan(&l.ID, &l.RunID, &at, &l.Step, &l.From, &l.To, &l.Result, &l.Detail, &dur); err != nil {
			return nil, err
		}
		l.At, l.Duration = fromMS(at), time.Duration(dur)*time.Millisecond
		out = append(out, l)
	}
	return out, rows.Err()
}

// TaskRun is one run of a scheduled task.
type TaskRun struct {
	ID         int64
	Task       string
	PID        int
	StartedAt  time.Time
	FinishedAt time.Time
	Duration   time.Duration
	Result     string // running, ok, error
	Processed  int
	Errors     int
	Message    string
}

// TaskRunStart records that a task started.
func (s *Store) TaskRunStart(ctx context.Context, task string, pid int, now time.Time) (int64, error) {
	res, err := s.exec(ctx, `INSERT INTO task_runs (task, pid, started_at) VALUES (?, ?, ?)`, task, pid, ms(now))
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

// TaskRunFinish records a task's end, result and counts.
func (s *Store) TaskRunFinish(ctx context.Context, r TaskRun) error {
	_, err := s.exec(ctx, `UPDATE task_runs SET finished_at = ?, duration_ms = ?, result = ?,
		processed = ?, errors = ?, message = ? WHERE id = ?`,
		ms(r.FinishedAt), r.Duration.Milliseconds(), r.Result, r.Processed, r.Errors, r.Message, r.ID)
	return err
}

// TaskRunLast returns the newest run of each task, keyed by task name.
func (s *Store) TaskRunLast(ctx context.Context) (map[string]TaskRun, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, task, pid, started_at, finished_at, duration_ms, result,
		processed, errors, message FROM task_runs WHERE id IN (SELECT MAX(id) FROM task_runs GROUP BY task)`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]TaskRun{}
	for rows.Next() {
		var r TaskRun
		var st, fin, dur int64
		if err := rows.Scan(&r.ID, &r.Task, &r.PID, &st, &fin, &dur, &r.Result, &r.Processed, &r.Errors, &r.Message); err != nil {
			return nil, err
		}
		r.StartedAt, r.FinishedAt, r.Duration = fromMS(st), fromMS(fin), time.Duration(dur)*time.Millisecond
		out[r.Task] = r
	}
	return out, rows.Err()
}

// TaskRunLastOK returns when each task's newest successful run finished.
func (s *Store) TaskRunLastOK(ctx context.Context) (map[string]time.Time, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT task, MAX(finished_at) FROM task_runs WHERE result = 'ok' GROUP BY task`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var task string
		var fin int64
		if err := rows.Scan(&task, &fin); err != nil {
			return nil, err
		}
		out[task] = fromMS(fin)
	}
	return out, rows.Err()
}

// collapseWait folds the just finished waiting run runID of VM vmID into
// the VM's previous run when that one waited at the same step of the same
// task and this one has nothing but its step line: the previous run's
// repeats, last_at and last_result are updated and this run is deleted.
// So a wait of many ticks keeps the run that started it (and its lines) in
// the log instead of pushing it out with RunsKeptPerVM copies of "still
// waiting". Called in the transaction that finished the run.
func collapseWait(ctx context.Context, tx *sql.Tx, runID, vmID int64, now time.Time) error {
	type line struct{ step, from, result string }
	var cur []line
	rows, err := tx.QueryContext(ctx, `SELECT step, from_state, result FROM run_lines WHERE run_id = ? ORDER BY id`, runID)
	if err != nil {
		return err
	}
	for rows.Next() {
		var l line
		if err := rows.Scan(&l.step, &l.from, &l.result); err != nil {
			rows.Close()
			return err
		}
		cur = append(cur, l)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(cur) != 1 {
		return err
	}
	var task string
	if err := tx.QueryRowContext(ctx, `SELECT task FROM runs WHERE id = ?`, runID).Scan(&task); err != nil {
		return err
	}
	var prevID int64
	var prevTask, prevResult string
	err = tx.QueryRowContext(ctx, `SELECT id, task, result FROM runs WHERE vm_id = ? AND id < ? ORDER BY id DESC LIMIT 1`,
		vmID, runID).Scan(&prevID, &prevTask, &prevResult)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	if prevResult != "waiting" || prevTask != task {
		return nil
	}
	var last line
	err = tx.QueryRowContext(ctx, `SELECT step, from_state, result FROM run_lines WHERE run_id = ? ORDER BY id DESC LIMIT 1`,
		prevID).Scan(&last.step, &last.from, &last.result)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	if last.step != cur[0].step || last.from != cur[0].from || !strings.HasPrefix(last.result, "waiting") {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE runs SET repeats = repeats + 1, last_at = ?, last_result = ?, finished_at = ? WHERE id = ?`,
		ms(now), cur[0].result, ms(now), prevID); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM run_lines WHERE run_id = ?`, runID); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `DELETE FROM runs WHERE id = ?`, runID)
	return err
}
