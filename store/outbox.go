package store

import (
	"context"
	"database/sql"
	"time"
)

// OutboxEvent is a notification to write with a state change: one row per
// channel.
type OutboxEvent struct {
	EventID   string // stable across delivery attempts
	Event     string // vm_ready, vm_held, …
	ServiceID string
	Payload   string // the JSON body
	Channels  []string
}

// OutboxRow is one delivery of an event over one channel.
type OutboxRow struct {
	ID            int64
	EventID       string
	Channel       string
	Event         string
	ServiceID     string
	Payload       string
	CreatedAt     time.Time
	Attempts      int
	NextAttemptAt time.Time
	DeliveredAt   time.Time
	ParkedAt      time.Time
	LastError     string
}

// insertOutbox writes events in tx (a row per channel; an event already
// there is not written twice).
func insertOutbox(ctx context.Context, tx *sql.Tx, evs []OutboxEvent, now time.Time) error {
	for _, ev := range evs {
		for _, ch := range ev.Channels {
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO outbox (event_id, channel, event, service_id, payload, created_at)
				VALUES (?, ?, ?, ?, ?, ?)`, ev.EventID, ch, ev.Event, ev.ServiceID, ev.Payload, ms(now)); err != nil {
				return err
			}
		}
	}
	return nil
}

// OutboxAdd writes events in a transaction of their own (events not tied
// to a VM's status change).
func (s *Store) OutboxAdd(ctx context.Context, evs []OutboxEvent, now time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error { return insertOutbox(ctx, tx, evs, now) })
}

const outboxColumns = `id, event_id, channel, event, service_id, payload, created_at, attempts, next_attempt_at,
	delivered_at, parked_at, last_error`

func scanOutbox(rows *sql.Rows) ([]OutboxRow, error) {
	defer rows.Close()
	var out []OutboxRow
	for rows.Next() {
		var r OutboxRow
		var created, next, delivered, parked int64
		if err := rows.Scan(&r.ID, &r.EventID, &r.Channel, &r.Event, &r.ServiceID, &r.Payload, &created, &r.Attempts,
			&next, &delivered, &parked, &r.LastError); err != nil {
			return nil, err
		}
		r.CreatedAt = fromMS(created)
		if next != 0 {
			r.NextAttemptAt = fromMS(next)
		}
		if delivered != 0 {
			r.DeliveredAt = fromMS(delivered)
		}
		if parked != 0 {
			r.ParkedAt = fromMS(parked)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// OutboxDue lists undelivered, unparked rows due at now, oldest first.
func (s *Store) OutboxDue(ctx context.Context, now time.Time, limit int) ([]OutboxRow, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+outboxColumns+` FROM outbox
		WHERE delivered_at = 0 AND parked_at = 0 AND next_attempt_at <= ? ORDER BY id LIMIT ?`, ms(now), limit)
	if err != nil {
		return nil, err
	}
	return scanOutbox(rows)
}

// OutboxList lists rows newest first: all, or only parked ones (failed).
func (s *Store) OutboxList(ctx context.Context, failedOnly bool, limit int) ([]OutboxRow, error) {
	q := `SELECT ` + outboxColumns + ` FROM outbox`
	if failedOnly {
		q += ` WHERE parked_at <> 0`
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, err
	}
	return scanOutbox(rows)
}

// OutboxCounts returns how many rows wait for delivery and how many are parked.
func (s *Store) OutboxCounts(ctx context.Context) (pending, parked int, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT
		COALESCE(SUM(CASE WHEN delivered_at = 0 AND parked_at = 0 THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN parked_at <> 0 THEN 1 ELSE 0 END), 0) FROM outbox`).Scan(&pending, &parked)
	return pending, parked, err
}

// OutboxDelivered marks a row delivered.
func (s *Store) OutboxDelivered(ctx context.Context, id int64, now time.Time) error {
	_, err := s.exec(ctx, `UPDATE outbox SET delivered_at = ?, attempts = attempts + 1, last_error = '' WHERE id = ?`, ms(now), id)
	return err
}

// OutboxFailed records a failed delivery: retried at next, or parked.
func (s *Store) OutboxFailed(ctx context.Context, id int64, msg string, next time.Time, park bool, now time.Time) error {
	parked := int64(0)
	if park {
		parked = ms(now)
	}
	_, err := s.exec(ctx, `UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, parked_at = ? WHERE id = ?`,
		msg, ms(next), parked, id)
	return err
}
