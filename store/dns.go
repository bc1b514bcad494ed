package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
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
	_, err := s.exec(ctx, `INSERT INTO dns_records (vm_id, zone, name, type, value, ttl, state, error, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (vm_id, zone, name, type, value) DO UPDATE SET ttl = excluded.ttl, state = excluded.state,
		error = excluded.error, updated_at = excluded.updated_at`,
		r.VMID, r.Zone, r.Name, r.Type, r.Value, r.TTL, r.State, r.Error, ms(now))
	return err
}

// DNSRecordDelete forgets a record after it was deleted from DNS.
func (s *Store) DNSRecordDelete(ctx context.Context, r DNSRecord) error {
	_, err := s.exec(ctx, `DELETE FROM dns_records WHERE vm_id = ? AND zone = ? AND name = ? AND type = ? AND value = ?`,
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

// DNSRetry is a VM's DNS retry state: whether some of its records are not in place (Dirty), how
// many background retries failed in a row since it became dirty, and when the next one is due.
type DNSRetry struct {
	VM       VM
	Attempts int
	NextAt   time.Time // zero: at the next process_vms pass
}

// extraScan scans the VM columns followed by extra columns.
type extraScan struct {
	r     scanner
	extra []any
}

func (e extraScan) Scan(dest ...any) error { return e.r.Scan(append(dest, e.extra...)...) }

func scanDNSRetry(r scanner) (DNSRetry, error) {
	var d DNSRetry
	var next int64
	vm, err := scanVM(extraScan{r, []any{&d.Attempts, &next}})
	if err != nil {
		return DNSRetry{}, err
	}
	d.VM, d.NextAt = vm, fromMS(next)
	return d, nil
}

// DNSDirtyDue returns the DNS-dirty VMs whose retry is due at now, oldest record first, leaving
// out VMs whose status is in skip (e.g. a pipeline that rewrites or removes the records itself).
// Held VMs are included: DNS retries do not depend on the pipeline.
func (s *Store) DNSDirtyDue(ctx context.Context, now time.Time, skip []string) ([]DNSRetry, error) {
	q := `SELECT ` + vmColumns + `, dns_attempts, dns_next_at FROM vms WHERE dns_dirty = 1 AND (dns_next_at <= ? OR dns_next_at > ?)`
	args := []any{ms(now), ms(now.Add(MaxRetryDelay))}
	if len(skip) > 0 {
		q += ` AND status NOT IN (?` + strings.Repeat(`, ?`, len(skip)-1) + `)`
		for _, st := range skip {
			args = append(args, st)
		}
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []DNSRetry
	for rows.Next() {
		d, err := scanDNSRetry(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// DNSRetryGet returns one VM's DNS retry state.
func (s *Store) DNSRetryGet(ctx context.Context, id int64) (DNSRetry, error) {
	d, err := scanDNSRetry(s.db.QueryRowContext(ctx, `SELECT `+vmColumns+`, dns_attempts, dns_next_at FROM vms WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return DNSRetry{}, fmt.Errorf("vm #%d: %w", id, ErrNotFound)
	}
	return d, err
}

// DNSSetDirty marks the VM DNS-dirty with its retry state: attempts failed retries so far, the
// next one not before next (zero: at the next pass).
func (s *Store) DNSSetDirty(ctx context.Context, id int64, attempts int, next, now time.Time) error {
	res, err := s.exec(ctx, `UPDATE vms SET dns_dirty = 1, dns_attempts = ?, dns_next_at = ?, updated_at = ?
		WHERE id = ?`, attempts, ms(clampRetry(next, now)), ms(now), id)
	if err != nil {
		return err
	}
	return oneRow(res, id)
}

// DNSSetClean clears the VM's DNS-dirty flag and its retry state: every
// record is in place. It applies only if the VM is still at version (the
// one the DNS pass read): an admin action in between (reset-status remove
// marks records for deletion) is never undone; then nothing changes and
// the next pass looks again.
func (s *Store) DNSSetClean(ctx context.Context, id, version int64, now time.Time) error {
	_, err := s.exec(ctx, `UPDATE vms SET dns_dirty = 0, dns_attempts = 0, dns_next_at = 0, updated_at = ?
		WHERE id = ? AND version = ?`, ms(now), id, version)
	return err
}
