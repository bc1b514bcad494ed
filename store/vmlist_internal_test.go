package store

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// vm list shows a VM's addresses IPv4 first, each family in allocation
// (id) order, whatever order they were allocated in.
func TestVMListIPsOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newInternalStore(t)
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for i, tc := range []struct {
		name  string
		alloc []string // in id order; a ':' makes it IPv6
		want  []string
	}{
		{"none", nil, nil},
		{"one IPv6", []string{"2001:db8::1"}, []string{"2001:db8::1"}},
		{"IPv4 then IPv6", []string{"10.0.0.1", "2001:db8::11"}, []string{"10.0.0.1", "2001:db8::11"}},
		{"IPv6 first", []string{"2001:db8::2", "10.0.0.2"}, []string{"10.0.0.2", "2001:db8::2"}},
		{"interleaved", []string{"2001:db8::3", "10.0.0.3", "2001:db8::4", "10.0.0.4", "10.0.0.5"},
			[]string{"10.0.0.3", "10.0.0.4", "10.0.0.5", "2001:db8::3", "2001:db8::4"}},
	} {
		vm, _, err := s.VMCreate(ctx, NewVM{ServiceID: fmt.Sprintf("svc-%d", i), Hostname: fmt.Sprintf("vm%d.example.com", i),
			Product: "small", Status: "ready", Now: now})
		require.NoError(t, err)
		for _, a := range tc.alloc {
			family, pool := 4, "v4"
			if strings.Contains(a, ":") {
				family, pool = 6, "v6"
			}
			_, err := s.db.ExecContext(ctx, `INSERT INTO ip_allocations (address, family, pool, vm_id, created_at) VALUES (?, ?, ?, ?, ?)`,
				a, family, pool, vm.ID, now.UnixMilli())
			require.NoError(t, err)
		}
		// An address being released is not shown.
		_, err = s.db.ExecContext(ctx, `INSERT INTO ip_allocations (address, family, pool, vm_id, created_at, releasing) VALUES (?, 4, 'v4', ?, ?, 1)`,
			fmt.Sprintf("10.9.9.%d", i), vm.ID, now.UnixMilli())
		require.NoError(t, err)
		var listed []VMListed
		err = s.VMListEach(ctx, VMFilter{}, func(l *VMListed) error {
			listed = append(listed, *l)
			return nil
		})
		require.NoError(t, err)
		require.Len(t, listed, i+1)
		require.Equal(t, tc.want, listed[i].IPs, tc.name)
	}
}

// vm list's per-VM address subquery reads ip_allocations_vm in its order:
// no sorter per VM (at 10,000 VMs one was a third of the query's time).
func TestVMListNoSortPerVM(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newInternalStore(t)
	q, args := vmListQuery(VMFilter{})
	rows, err := s.db.QueryContext(ctx, `EXPLAIN QUERY PLAN `+strings.Replace(q, vmColumns, listColumns, 1), args...)
	require.NoError(t, err)
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		require.NoError(t, rows.Scan(&id, &parent, &unused, &detail))
		plan = append(plan, detail)
	}
	require.NoError(t, rows.Err())
	p := strings.Join(plan, "; ")
	require.Contains(t, p, "INDEX ip_allocations_vm")
	require.NotContains(t, p, "TEMP B-TREE", "plan: %s", p)
}
