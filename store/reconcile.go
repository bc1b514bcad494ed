package store

import (
	"context"
	"database/sql"
	"time"
)

// Finding is one thing a reconcile run found in PVE or DNS that does not
// match the store: an orphan, a missing VM, drift. Key says what it is
// about and stays the same across runs while the finding lasts.
type Finding struct {
	Key       string
	Kind      string
	ServiceID string
	VMID      int
	Node      string
	Detail    string
	Fix       string
	FirstSeen time.Time
	LastSeen  time.Time
}

// FindingsReplace makes the run's findings the stored set in one
// transaction: a finding seen before keeps its first-seen time, one not
// seen by this run is dropped. It returns the findings new in this run
// and those resolved since the last one.
func (s *Store) FindingsReplace(ctx context.Context, found []Finding, now time.Time) (added, resolved []Finding, err error) {
	err = s.tx(ctx, func(tx *sql.Tx) error {
		added, resolved = nil, nil
		old, err := queryFindings(ctx, tx)
		if err != nil {
			return err
		}
		prev := map[string]Finding{}
		for _, f := range old {
			prev[f.Key] = f
		}
		seen := map[string]bool{}
		for _, f := range found {
			if seen[f.Key] {
				continue
			}
			seen[f.Key] = true
			first := now
			if p, ok := prev[f.Key]; ok {
				first = p.FirstSeen
			} else {
				f.FirstSeen, f.LastSeen = now, now
				added = append(added, f)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO reconcile_findings (key, kind, service_id, vmid, node, detail, fix, first_seen_at, last_seen_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (key) DO UPDATE SET kind = excluded.kind, service_id = excluded.service_id, vmid = excluded.vmid,
					node = excluded.node, detail = excluded.detail, fix = excluded.fix, last_seen_at = excluded.last_seen_at`,
				f.Key, f.Kind, f.ServiceID, f.VMID, f.Node, f.Detail, f.Fix, ms(first), ms(now)); err != nil {
				return err
			}
		}
		for _, f := range old {
			if seen[f.Key] {
				continue
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM reconcile_findings WHERE key = ?`, f.Key); err != nil {
				return err
			}
			resolved = append(resolved, f)
		}
		return nil
	})
	return added, resolved, err
}

// Findings returns what the last reconcile run found, oldest first.
func (s *Store) Findings(ctx context.Context) ([]Finding, error) {
	return queryFindings(ctx, s.db)
}

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

func queryFindings(ctx context.Context, q querier) ([]Finding, error) {
	rows, err := q.QueryContext(ctx, `SELECT key, kind, service_id, vmid, node, detail, fix, first_seen_at, last_seen_at
		FROM reconcile_findings ORDER BY first_seen_at, key`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Finding
	for rows.Next() {
		var f Finding
		var first, last int64
		if err := rows.Scan(&f.Key, &f.Kind, &f.ServiceID, &f.VMID, &f.Node, &f.Detail, &f.Fix, &first, &last); err != nil {
			return nil, err
		}
		f.FirstSeen, f.LastSeen = fromMS(first), fromMS(last)
		out = append(out, f)
	}
	return out, rows.Err()
}

// IPOwners maps every allocated address to the service id of the record
// holding it.
func (s *Store) IPOwners(ctx context.Context) (map[string]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT a.address, v.service_id FROM ip_allocations a JOIN vms v ON v.id = a.vm_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var addr, svc string
		if err := rows.Scan(&addr, &svc); err != nil {
			return nil, err
		}
		out[addr] = svc
	}
	return out, rows.Err()
}
