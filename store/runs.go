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
		id, err = startRun(ctx, tx, vmID, task, now, "", time.Time{})
		return err
	})
	return id, err
}

// startRun is RunStart in tx. A run whose result is already known
// (finish, at finishedAt) is written finished in the same INSERT.
func startRun(ctx context.Context, tx *gtx, vmID int64, task string, now time.Time, finish string, finishedAt time.Time) (int64, error) {
	var res sql.Result
	var err error
	if finish == "" {
		res, err = tx.exec(ctx, `INSERT INTO runs (vm_id, task, started_at) VALUES (?, ?, ?)`, vmID, task, ms(now))
	} else {
		res, err = tx.exec(ctx, `INSERT INTO runs (vm_id, task, started_at, finished_at, result) VALUES (?, ?, ?, ?, ?)`,
			vmID, task, ms(now), ms(finishedAt), finish)
	}
	if err != nil {
		return 0, err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, err
	}
	// Keep the newest RunsKeptPerVM: everything older than the
	// RunsKeptPerVM-th newest goes (a seek on runs_vm; nothing while the
	// VM has fewer runs).
	_, err = tx.exec(ctx, `DELETE FROM runs WHERE vm_id = ? AND id <
		(SELECT id FROM runs WHERE vm_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`, vmID, vmID, RunsKeptPerVM-1)
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

// foldWait folds a waiting run about to be opened for VM vmID, holding
// only line l, into the VM's newest run when that one waited at the same
// step of the same task: its repeats, last_at, last_result and finished_at
// are updated and nothing new is written. It reports the run that took the
// wait. Called in the transaction of the outcome.
func foldWait(ctx context.Context, tx *gtx, vmID int64, task string, l RunLine, now time.Time) (int64, bool, error) {
	var prevID int64
	var prevTask, prevResult string
	err := tx.queryRow(ctx, `SELECT id, task, result FROM runs WHERE vm_id = ? ORDER BY id DESC LIMIT 1`, vmID).
		Scan(&prevID, &prevTask, &prevResult)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil || prevResult != "waiting" || prevTask != task {
		return 0, false, err
	}
	var step, from, result string
	err = tx.queryRow(ctx, `SELECT step, from_state, result FROM run_lines WHERE run_id = ? ORDER BY id DESC LIMIT 1`, prevID).
		Scan(&step, &from, &result)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil || step != l.Step || from != l.From || !strings.HasPrefix(result, "waiting") {
		return 0, false, err
	}
	_, err = tx.exec(ctx, `UPDATE runs SET repeats = repeats + 1, last_at = ?, last_result = ?, finished_at = ? WHERE id = ?`,
		ms(now), l.Result, ms(now), prevID)
	return prevID, err == nil, err
}
