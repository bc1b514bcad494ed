package store

import (
	"context"
	"database/sql"
	"errors"
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
	ServiceID string // the VM's
	At        time.Time
	What      string // the request as the CLI names it: "vm terminate", "reset-status"
	From      string // the VM's state when the request was accepted
	To        string // its state after the request
	// Detail is who and with which options, never a secret:
	// "by alice; product large".
	Detail string
}

// Audited returns the store with a request to record: every write of the
// returned store that changes a row appends r to the log of the VM with
// r.ServiceID in the same transaction, so a request and its audit line
// commit together or not at all. A write that changes nothing (an
// idempotent repeat, a compare-and-set that found the VM moved) records
// nothing; nor does a write that deletes the VM (its log goes with it).
func (s *Store) Audited(r Request) *Store {
	c := *s
	c.audit = &r
	return &c
}

// recordAudit appends r to its VM's log if the transaction changed a row
// since total_changes() was before.
func recordAudit(ctx context.Context, tx *sql.Tx, r Request, before int64) error {
	var after int64
	if err := tx.QueryRowContext(ctx, `SELECT total_changes()`).Scan(&after); err != nil {
		return err
	}
	if after == before {
		return nil
	}
	var vmID int64
	err := tx.QueryRowContext(ctx, `SELECT id FROM vms WHERE service_id = ?`, r.ServiceID).Scan(&vmID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	return insertRequest(ctx, tx, vmID, r)
}

// insertRequest appends a request to a VM's log and prunes that log to the
// newest RunsKeptPerVM runs, as RunStart does.
func insertRequest(ctx context.Context, tx *sql.Tx, vmID int64, r Request) error {
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
}
