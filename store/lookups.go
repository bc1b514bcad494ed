package store

import (
	"context"
	"time"
)

// VMIDOwners maps every VMID a record holds to that record's service id.
// The startup safety net uses it to find PVE VMs no record knows.
func (s *Store) VMIDOwners(ctx context.Context) (map[int]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT vmid, service_id FROM vms WHERE vmid IS NOT NULL`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int]string{}
	for rows.Next() {
		var (
			id  int
			svc string
		)
		if err := rows.Scan(&id, &svc); err != nil {
			return nil, err
		}
		out[id] = svc
	}
	return out, rows.Err()
}

// IPsAllocated returns every allocated address, whatever pool it was
// recorded under (a pool renamed in the config still holds its addresses).
func (s *Store) IPsAllocated(ctx context.Context) (map[string]bool, error) {
	return s.addressSet(ctx, `SELECT address FROM ip_allocations`)
}

// IPsReleasedSince returns every address freed after since, whatever pool
// it was recorded under, with the time it was freed (the newest when an
// address was freed more than once): the allocator keeps them in quarantine.
func (s *Store) IPsReleasedSince(ctx context.Context, since time.Time) (map[string]time.Time, error) {
	return s.addressTimes(ctx, `SELECT address, MAX(released_at) FROM ip_released WHERE released_at > ? GROUP BY address`, ms(since))
}
