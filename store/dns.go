package store

import (
	"context"
	"time"
)

// DNSRecord is one record pvectl published (or tried to) for a VM.
type DNSRecord struct {
	VMID  int64 // vms.id
	Zone  string
	Name  string
	Type  string
	Value string
	TTL   int
	State string // published | failed
	Error string
}

// DNSRecordSave records the outcome of publishing one record.
func (s *Store) DNSRecordSave(ctx context.Context, r DNSRecord, now time.Time) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO dns_records (vm_id, zone, name, type, value, ttl, state, error, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (vm_id, zone, name, type, value) DO UPDATE SET ttl = excluded.ttl, state = excluded.state,
		error = excluded.error, updated_at = excluded.updated_at`,
		r.VMID, r.Zone, r.Name, r.Type, r.Value, r.TTL, r.State, r.Error, ms(now))
	return err
}

// DNSRecordDelete forgets a record after it was deleted from DNS.
func (s *Store) DNSRecordDelete(ctx context.Context, r DNSRecord) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM dns_records WHERE vm_id = ? AND zone = ? AND name = ? AND type = ? AND value = ?`,
		r.VMID, r.Zone, r.Name, r.Type, r.Value)
	return err
}

// DNSRecords returns the records stored for a VM.
func (s *Store) DNSRecords(ctx context.Context, vmID int64) ([]DNSRecord, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT vm_id, zone, name, type, value, ttl, state, error FROM dns_records
		WHERE vm_id = ? ORDER BY type = 'PTR', zone, name, type, value`, vmID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []DNSRecord
	for rows.Next() {
		var r DNSRecord
		if err := rows.Scan(&r.VMID, &r.Zone, &r.Name, &r.Type, &r.Value, &r.TTL, &r.State, &r.Error); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
