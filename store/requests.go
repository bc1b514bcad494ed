package store

import (
	"context"
	"database/sql"
	"time"
)

// A request (vm create, change-package, terminate, reset-status, …) is kept
// in the VM's log as a run of task RequestTask with one line whose result
// is RequestTask: it is ordered with the step runs by run id (the order they
// were written in), pruned with them (RunsKeptPerVM) and deleted with the
// record. No migration: runs and run_lines already hold every field.
const RequestTask = "request"

// Request is one audit event: who asked for what, when, from which state.
type Request struct {
	At   time.Time
	What string // the request as the CLI names it: "vm terminate", "reset-status"
	From string // the VM's state when the request was accepted
	To   string // its state after the request
	// Detail is who and with which options, never a secret:
	// "by alice; product large".
	Detail string
}

// RequestRecord appends a request to a VM's log and prunes that log to the
// newest RunsKeptPerVM runs, as RunStart does.
func (s *Store) RequestRecord(ctx context.Context, vmID int64, r Request) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO runs (vm_id, task, started_at, finished_at, result) VALUES (?, ?, ?, ?, ?)`,
			vmID, RequestTask, ms(r.At), ms(r.At), RequestTask)
		if err != nil {
			return err
		}
		runID, err := res.LastInsertId()
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO run_lines (run_id, at, step, from_state, to_state, result, detail)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, runID, ms(r.At), r.What, r.From, r.To, RequestTask, r.Detail); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM runs WHERE vm_id = ? AND id NOT IN
			(SELECT id FROM runs WHERE vm_id = ? ORDER BY id DESC LIMIT ?)`, vmID, vmID, RunsKeptPerVM)
		return err
	})
}
