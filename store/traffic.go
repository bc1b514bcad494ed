package store

import (
	"context"
	"database/sql"
	"time"
)

// TrafficHour is one row of traffic_hours: a VM's traffic in one UTC hour.
type TrafficHour struct {
	ServiceID string
	Hour      time.Time // UTC start of the hour
	VMRecord  int64     // vms.id as last seen (the record may be gone)
	VMID      int
	Product   string
	BytesIn   int64
	BytesOut  int64
	Step      int // RRD step the bucket was computed from (seconds)
	Covered   int // seconds of the hour the rows covered (3600 = complete)
}

// TrafficReplace writes buckets, replacing any bucket already stored for
// the same VM and hour (a bucket read again is never added to).
func (s *Store) TrafficReplace(ctx context.Context, rows []TrafficHour, now time.Time) error {
	if len(rows) == 0 {
		return nil
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `INSERT INTO traffic_hours
			(service_id, hour, vm_id, vmid, product, bytes_in, bytes_out, step, covered, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (service_id, hour) DO UPDATE SET vm_id = excluded.vm_id, vmid = excluded.vmid,
			product = excluded.product, bytes_in = excluded.bytes_in, bytes_out = excluded.bytes_out,
			step = excluded.step, covered = excluded.covered, updated_at = excluded.updated_at`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, r := range rows {
			if _, err := st.ExecContext(ctx, r.ServiceID, r.Hour.UTC().Truncate(time.Hour).Unix(), r.VMRecord, r.VMID,
				r.Product, r.BytesIn, r.BytesOut, r.Step, r.Covered, now.Unix()); err != nil {
				return err
			}
		}
		return nil
	})
}

// TrafficHours returns the buckets in [from, to) ordered by service_id and
// hour; serviceID "" means every VM (terminated ones included).
func (s *Store) TrafficHours(ctx context.Context, serviceID string, from, to time.Time) ([]TrafficHour, error) {
	q := `SELECT service_id, hour, vm_id, vmid, product, bytes_in, bytes_out, step, covered FROM traffic_hours
		WHERE hour >= ? AND hour < ?`
	args := []any{from.Unix(), to.Unix()}
	if serviceID != "" {
		q += ` AND service_id = ?`
		args = append(args, serviceID)
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY service_id, hour`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []TrafficHour
	for rows.Next() {
		var r TrafficHour
		var h int64
		if err := rows.Scan(&r.ServiceID, &h, &r.VMRecord, &r.VMID, &r.Product, &r.BytesIn, &r.BytesOut, &r.Step, &r.Covered); err != nil {
			return nil, err
		}
		r.Hour = time.Unix(h, 0).UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}

// TrafficLastComplete is the latest complete bucket (covered = 3600)
// stored per service_id.
func (s *Store) TrafficLastComplete(ctx context.Context) (map[string]time.Time, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT service_id, MAX(hour) FROM traffic_hours WHERE covered >= 3600 GROUP BY service_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var id string
		var h int64
		if err := rows.Scan(&id, &h); err != nil {
			return nil, err
		}
		out[id] = time.Unix(h, 0).UTC()
	}
	return out, rows.Err()
}

// TrafficPurge deletes buckets (and over-limit marks) older than before,
// for every VM including terminated ones, and returns how many buckets went.
func (s *Store) TrafficPurge(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM traffic_hours WHERE hour < ?`, before.Unix())
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		_, err = tx.ExecContext(ctx, `DELETE FROM traffic_limit_events WHERE period_start < ?`, before.Unix())
		return err
	})
	return n, err
}

// TrafficLimitMark records that the over-limit event of serviceID's period
// starting at period was logged; it reports false when it already was.
func (s *Store) TrafficLimitMark(ctx context.Context, serviceID string, period, now time.Time) (bool, error) {
	res, err := s.db.ExecContext(ctx, `INSERT OR IGNORE INTO traffic_limit_events (service_id, period_start, logged_at)
		VALUES (?, ?, ?)`, serviceID, period.Unix(), now.Unix())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}
