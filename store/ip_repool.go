package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// IPReplace gives a VM that is still at status/version (so a step cannot
// change the addresses of a VM an admin moved meanwhile) the addresses add,
// and takes the addresses release away from it: they leave the VM's address
// list but stay reserved until IPReleasePending. One transaction: after a
// crash either both happened or neither did. An address in add taken by
// another VM meanwhile fails with ErrDuplicate and writes nothing. Either
// list may be empty.
func (s *Store) IPReplace(ctx context.Context, vmID int64, status string, version int64, add []IPAllocation, release []string, now time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := guard(ctx, tx, vmID, status, version); err != nil {
			return err
		}
		for _, ip := range add {
			_, err := tx.ExecContext(ctx, `INSERT INTO ip_allocations (address, family, pool, vm_id, created_at)
				VALUES (?, ?, ?, ?, ?)`, ip.Address, ip.Family, ip.Pool, vmID, ms(now))
			if err != nil {
				if strings.Contains(err.Error(), "UNIQUE constraint failed") {
					return fmt.Errorf("address %s: %w", ip.Address, ErrDuplicate)
				}
				return err
			}
		}
		for _, a := range release {
			if _, err := tx.ExecContext(ctx, `UPDATE ip_allocations SET releasing = 1 WHERE vm_id = ? AND address = ?`, vmID, a); err != nil {
				return err
			}
		}
		return nil
	})
}
