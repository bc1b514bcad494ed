package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"
)

// IPAllocation is one address held by one VM.
type IPAllocation struct {
	Address string // canonical text form (netip.Addr.String())
	Family  int    // 4 or 6
	Pool    string
	VMID    int64 // vms.id
}

// IPsForVM returns a VM's addresses, IPv4 first, in allocation order
// (not those being released).
func (s *Store) IPsForVM(ctx context.Context, vmID int64) ([]IPAllocation, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT address, family, pool, vm_id FROM ip_allocations
		WHERE vm_id = ? AND releasing = 0 ORDER BY family, id`, vmID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []IPAllocation
	for rows.Next() {
		var a IPAllocation
		if err := rows.Scan(&a.Address, &a.Family, &a.Pool, &a.VMID); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// IPsInPool returns the set of addresses allocated from a pool.
func (s *Store) IPsInPool(ctx context.Context, pool string) (map[string]bool, error) {
	return s.addressSet(ctx, `SELECT address FROM ip_allocations WHERE pool = ?`, pool)
}

// IPsReleasedAfter returns the pool's addresses freed after since, with
// the time each was freed.
func (s *Store) IPsReleasedAfter(ctx context.Context, pool string, since time.Time) (map[string]time.Time, error) {
	return s.addressTimes(ctx, `SELECT address, released_at FROM ip_released WHERE pool = ? AND released_at > ?`, pool, ms(since))
}

// addressSet runs a query of addresses.
func (s *Store) addressSet(ctx context.Context, q string, args ...any) (map[string]bool, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, err
		}
		out[a] = true
	}
	return out, rows.Err()
}

// addressTimes runs a query of (address, time in ms) pairs.
func (s *Store) addressTimes(ctx context.Context, q string, args ...any) (map[string]time.Time, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var a string
		var at int64
		if err := rows.Scan(&a, &at); err != nil {
			return nil, err
		}
		out[a] = fromMS(at)
	}
	return out, rows.Err()
}

// freeIPs deletes the VM's addresses matching cond (an SQL condition on
// ip_allocations, after vm_id) and records when each was freed (ip_released,
// the quarantine, keyed by address and kept whatever happens to the record)
// and that the VM held it until now (ip_history, the record's own).
func freeIPs(ctx context.Context, tx *sql.Tx, vmID int64, cond string, now time.Time) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO ip_released (address, pool, released_at)
		SELECT address, pool, ? FROM ip_allocations WHERE vm_id = ?`+cond+`
		ON CONFLICT (address) DO UPDATE SET pool = excluded.pool, released_at = excluded.released_at`, ms(now), vmID); err != nil {
		return err
	}
	// The record remembers what it held (pvectl audit ip), until it is deleted.
	if _, err := tx.ExecContext(ctx, `INSERT INTO ip_history (vm_id, address, family, pool, allocated_at, released_at)
		SELECT vm_id, address, family, pool, created_at, ? FROM ip_allocations WHERE vm_id = ?`+cond+` ORDER BY id`, ms(now), vmID); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM ip_allocations WHERE vm_id = ?`+cond, vmID)
	return err
}

// Reservation is the VMID and addresses a VM's first deploy step reserves.
type Reservation struct {
	ID         int64 // vms.id
	Status     string
	Version    int64
	VMID       int
	Node       string // where the clone is made (the template's node)
	TargetNode string // where the VM should end up
	IPs        []IPAllocation
	Now        time.Time
}

// VMReserve writes a VM's VMID, node and addresses in one transaction,
// guarded by the VM still being at Status/Version. A VMID or address taken by
// another VM fails with ErrDuplicate and writes nothing.
func (s *Store) VMReserve(ctx context.Context, r Reservation) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE vms SET vmid = ?, node = ?, target_node = ?, updated_at = ?
			WHERE id = ? AND status = ? AND version = ?`, r.VMID, r.Node, r.TargetNode, ms(r.Now), r.ID, r.Status, r.Version)
		if err != nil {
			if strings.Contains(err.Error(), "UNIQUE constraint failed: vms.vmid") {
				return fmt.Errorf("vmid %d: %w", r.VMID, ErrDuplicate)
			}
			return err
		}
		if err := oneRow(res, r.ID); err != nil {
			return err
		}
		for _, ip := range r.IPs {
			_, err := tx.ExecContext(ctx, `INSERT INTO ip_allocations (address, family, pool, vm_id, created_at)
				VALUES (?, ?, ?, ?, ?)`, ip.Address, ip.Family, ip.Pool, r.ID, ms(r.Now))
			if err != nil {
				if strings.Contains(err.Error(), "UNIQUE constraint failed") {
					return fmt.Errorf("address %s: %w", ip.Address, ErrDuplicate)
				}
				return err
			}
		}
		return nil
	})
}

// UsedVMIDs returns every VMID held by a record.
func (s *Store) UsedVMIDs(ctx context.Context) (map[int]bool, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT vmid FROM vms WHERE vmid IS NOT NULL`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int]bool{}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out[v] = true
	}
	return out, rows.Err()
}

// IPReleasePending frees the VM's addresses marked releasing and returns
// them, if the VM is (still) in one of the given states; otherwise it frees
// nothing. Callers free only once the guest and DNS no longer use the
// addresses: after a change-package has completed (ready, or the resync of
// set_dns_records) or once a removed VM's records are deleted (remove).
// Freed addresses go into quarantine from now (see IPsReleasedAfter).
func (s *Store) IPReleasePending(ctx context.Context, vmID int64, now time.Time, states ...string) ([]string, error) {
	var out []string
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var cur string
		if err := tx.QueryRowContext(ctx, `SELECT status FROM vms WHERE id = ?`, vmID).Scan(&cur); err != nil {
			return err
		}
		if !slices.Contains(states, cur) {
			return nil
		}
		rows, err := tx.QueryContext(ctx, `SELECT address FROM ip_allocations WHERE vm_id = ? AND releasing = 1 ORDER BY id`, vmID)
		if err != nil {
			return err
		}
		for rows.Next() {
			var a string
			if err := rows.Scan(&a); err != nil {
				rows.Close()
				return err
			}
			out = append(out, a)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		return freeIPs(ctx, tx, vmID, ` AND releasing = 1`, now)
	})
	return out, err
}

// guard fails with ErrConflict unless the VM is still at status/version.
func guard(ctx context.Context, tx *sql.Tx, id int64, status string, version int64) error {
	var cur string
	var ver int64
	if err := tx.QueryRowContext(ctx, `SELECT status, version FROM vms WHERE id = ?`, id).Scan(&cur, &ver); err != nil {
		return err
	}
	if cur != status || ver != version {
		return fmt.Errorf("vm #%d is now %s (version %d): %w", id, cur, ver, ErrConflict)
	}
	return nil
}
