package store

import "context"

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
