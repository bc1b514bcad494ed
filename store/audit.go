package store

import (
	"context"
	"database/sql"
	"sort"
	"time"
)

// Audit "how" values: what deleted an audited record.
const (
	AuditPurge        = "purge"
	AuditDeleteRecord = "delete-record"
)

// removedAtSQL is when a record reached its status (remove, for the purge):
// step_started_at, or, for a record that never had one, its last update.
const removedAtSQL = `CASE WHEN step_started_at > 0 THEN step_started_at ELSE updated_at END`

// auditRecord writes the vm_audit row of record id, about to be deleted,
// with the addresses it held (its ip_history, then any allocation it still
// holds, until now), in the caller's transaction.
func auditRecord(ctx context.Context, tx *sql.Tx, id int64, how string, now time.Time) error {
	removedAt := removedAtSQL
	if how == AuditDeleteRecord {
		removedAt = `?`
	}
	args := []any{ms(now), how}
	if how == AuditDeleteRecord {
		args = []any{ms(now), ms(now), how}
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO vm_audit (service_id, hostname, product, vmid, node, status,
		created_at, released_at, removed_at, deleted_at, how)
		SELECT service_id, hostname, product, COALESCE(vmid, last_vmid),
			CASE WHEN vmid IS NOT NULL THEN node ELSE last_node END, status,
			created_at, released_at, `+removedAt+`, ?, ? FROM vms WHERE id = ?`, append(args, id)...)
	if err != nil {
		return err
	}
	auditID, err := res.LastInsertId()
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO vm_audit_ips (audit_id, address, family, pool, held_from, held_until)
		SELECT ?, address, family, pool, allocated_at, released_at FROM ip_history WHERE vm_id = ? ORDER BY id`, auditID, id); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO vm_audit_ips (audit_id, address, family, pool, held_from, held_until)
		SELECT ?, address, family, pool, created_at, ? FROM ip_allocations WHERE vm_id = ? ORDER BY id`, auditID, ms(now), id)
	return err
}

// AuditHold is one record that held an address or a VMID, from From until
// Until (zero: it still holds it). Live records come from the vms table
// (Status is theirs), deleted ones from the audit (Deleted is when, How
// purge or delete-record).
type AuditHold struct {
	ServiceID string
	Hostname  string
	Product   string
	VMID      int    // the record's VMID (0 unknown)
	Node      string // where the VM lived ("" unknown)
	Address   string // for an address query: the address; else ""
	Status    string // the record's status (when deleted: its last)
	From      time.Time
	Until     time.Time
	Deleted   time.Time // zero: the record still exists
	How       string    // purge | delete-record, when deleted
}

// AuditIP returns every record that held address (canonical form), live or
// deleted, oldest first.
func (s *Store) AuditIP(ctx context.Context, address string) ([]AuditHold, error) {
	return s.auditQuery(ctx, `
		SELECT v.service_id, v.hostname, v.product, COALESCE(v.vmid, v.last_vmid),
			CASE WHEN v.vmid IS NOT NULL THEN v.node ELSE v.last_node END, a.address, v.status, a.created_at, 0, 0, ''
		FROM ip_allocations a JOIN vms v ON v.id = a.vm_id WHERE a.address = ?
		UNION ALL
		SELECT v.service_id, v.hostname, v.product, COALESCE(v.vmid, v.last_vmid),
			CASE WHEN v.vmid IS NOT NULL THEN v.node ELSE v.last_node END, h.address, v.status, h.allocated_at, h.released_at, 0, ''
		FROM ip_history h JOIN vms v ON v.id = h.vm_id WHERE h.address = ?
		UNION ALL
		SELECT d.service_id, d.hostname, d.product, d.vmid, d.node, i.address, d.status, i.held_from, i.held_until, d.deleted_at, d.how
		FROM vm_audit_ips i JOIN vm_audit d ON d.id = i.audit_id WHERE i.address = ?`, address, address, address)
}

// AuditVMID returns every record that held vmid, live or deleted, oldest
// first. A record holds its VMID from its creation (the VMID is reserved
// at its first step) until it was released. VMID 0 (unknown) matches none.
func (s *Store) AuditVMID(ctx context.Context, vmid int) ([]AuditHold, error) {
	if vmid < 1 {
		return nil, nil
	}
	return s.auditQuery(ctx, `
		SELECT service_id, hostname, product, vmid, node, '', status, created_at, 0, 0, ''
		FROM vms WHERE vmid = ?
		UNION ALL
		SELECT service_id, hostname, product, last_vmid, last_node, '', status, created_at, released_at, 0, ''
		FROM vms WHERE vmid IS NULL AND last_vmid = ?
		UNION ALL
		SELECT service_id, hostname, product, vmid, node, '', status, created_at,
			CASE WHEN released_at > 0 THEN released_at ELSE removed_at END, deleted_at, how
		FROM vm_audit WHERE vmid = ?`, vmid, vmid, vmid)
}

func (s *Store) auditQuery(ctx context.Context, q string, args ...any) ([]AuditHold, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []AuditHold
	for rows.Next() {
		var h AuditHold
		var from, until, deleted int64
		if err := rows.Scan(&h.ServiceID, &h.Hostname, &h.Product, &h.VMID, &h.Node, &h.Address, &h.Status,
			&from, &until, &deleted, &h.How); err != nil {
			return nil, err
		}
		h.From, h.Until, h.Deleted = fromMS(from), fromMS(until), fromMS(deleted)
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].From.Before(out[j].From) })
	return out, nil
}

// purgeableSQL picks records in remove since before (?) with nothing left
// to do: not held, no DNS record still to delete, no address still
// reserved, no backup or snapshot operation under way.
const purgeableSQL = `status = 'remove' AND held = 0 AND dns_dirty = 0 AND ` + removedAtSQL + ` < ?
	AND NOT EXISTS (SELECT 1 FROM ip_allocations a WHERE a.vm_id = vms.id)
	AND NOT EXISTS (SELECT 1 FROM dns_records d WHERE d.vm_id = vms.id)
	AND NOT EXISTS (SELECT 1 FROM backups b WHERE b.vm_id = vms.id AND b.state IN ('queued', 'rotating', 'running'))
	AND NOT EXISTS (SELECT 1 FROM snapshot_ops o WHERE o.vm_id = vms.id AND o.state IN ('queued', 'running'))`

// purgeBatch is how many records one purge transaction deletes.
const purgeBatch = 100

// purgeRemoved deletes (dry: counts) the records purgeableSQL picks, each
// with everything hanging off it (log, DNS bookkeeping, address history,
// backups and snapshot operations, backup schedule: ON DELETE CASCADE),
// writing its vm_audit row in the same transaction, purgeBatch records a
// transaction. Traffic statistics and notifications are keyed by service
// id and kept by their own retention; the address quarantine (ip_released)
// is keyed by address and stays.
func (s *Store) purgeRemoved(ctx context.Context, before, now time.Time, dry bool) (int64, error) {
	if dry {
		var n int64
		err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM vms WHERE `+purgeableSQL, ms(before)).Scan(&n)
		return n, err
	}
	var total int64
	for {
		var n int64
		err := s.tx(ctx, func(tx *sql.Tx) error {
			n = 0
			rows, err := tx.QueryContext(ctx, `SELECT id FROM vms WHERE `+purgeableSQL+` ORDER BY id LIMIT ?`, ms(before), purgeBatch)
			if err != nil {
				return err
			}
			var ids []int64
			for rows.Next() {
				var id int64
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return err
				}
				ids = append(ids, id)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			for _, id := range ids {
				if err := auditRecord(ctx, tx, id, AuditPurge, now); err != nil {
					return err
				}
				res, err := tx.ExecContext(ctx, `DELETE FROM vms WHERE id = ?`, id)
				if err != nil {
					return err
				}
				if err := oneRow(res, id); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += n
		if n < purgeBatch {
			return total, nil
		}
	}
}
