package store

import (
	"context"
	"database/sql"
	"time"
)

// PowerObservation is what one power refresh found for a VM record that
// has a VMID.
type PowerObservation struct {
	ID        int64
	ServiceID string
	Hostname  string
	Status    string // the record's pipeline status
	VMID      int
	// Before is the power state as last seen before the refresh ("" never).
	Before string
	// Listed is the power state the cluster listing reported; "" when the
	// listing had no usable state for the VMID (not listed, or "unknown").
	Listed string
	// Recorded: Listed was written. False when nothing was listed, or when a
	// step recorded a newer observation after the listing was read.
	Recorded bool
}

// Changed reports whether the refresh recorded a power state other than
// the one last seen.
func (o PowerObservation) Changed() bool { return o.Recorded && o.Listed != o.Before }

// VMsWithVMID counts the VM records that have a VMID.
func (s *Store) VMsWithVMID(ctx context.Context) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM vms WHERE vmid IS NOT NULL`).Scan(&n)
	return n, explainAt(s.path, err)
}

// VMsObservePower records a cluster-wide listing of power states (VMID →
// "running", "stopped", …, read at listedAt) for every VM record that has a
// VMID, in one transaction, and returns what it found per record, ordered
// by service id. It is an observation: power_state and power_seen_at
// change, nothing else — not the status, not the version (a request's or
// step's compare-and-set stays valid), not updated_at. A record whose VMID
// the listing lacks keeps its power state and power_seen_at: nothing fresh
// was seen. A record whose power state a step recorded after listedAt (and
// not later than now, so a time written while the clock ran ahead does not
// block refreshes) keeps that newer observation.
func (s *Store) VMsObservePower(ctx context.Context, listed map[int]string, listedAt, now time.Time) ([]PowerObservation, error) {
	var out []PowerObservation
	err := s.tx(ctx, func(tx *sql.Tx) error {
		out = nil
		rows, err := tx.QueryContext(ctx, `SELECT id, service_id, hostname, status, vmid, power_state
			FROM vms WHERE vmid IS NOT NULL ORDER BY service_id`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var o PowerObservation
			if err := rows.Scan(&o.ID, &o.ServiceID, &o.Hostname, &o.Status, &o.VMID, &o.Before); err != nil {
				_ = rows.Close()
				return err
			}
			o.Listed = listed[o.VMID]
			out = append(out, o)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for i := range out {
			o := &out[i]
			if o.Listed == "" {
				continue
			}
			res, err := tx.ExecContext(ctx, `UPDATE vms SET power_state = ?, power_seen_at = ?
				WHERE id = ? AND (power_seen_at <= ? OR power_seen_at > ?)`,
				o.Listed, ms(listedAt), o.ID, ms(listedAt), ms(now))
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			o.Recorded = n == 1
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
