package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The idle tick and the read commands must not scan the vms table: with
// 10,000 ready VMs a scan is most of an idle tick's time (issue 15). Each
// query is checked with EXPLAIN QUERY PLAN against the index it needs
// ("USING INDEX" or "USING COVERING INDEX").
func TestReadQueriesUseIndexes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newInternalStore(t)
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	list := func(f VMFilter) (string, []any) { return vmListQuery(f) }
	due := func(final []string) func() (string, []any) {
		return func() (string, []any) { return vmsDueQuery(now, final) }
	}
	for _, tc := range []struct {
		name  string
		query func() (string, []any)
		index string
	}{
		{"due VMs (step runner)", due(activeFinal), "vms_active"},
		{"due VMs, final states in another order", due([]string{"suspended", "error_terminate", "remove", "ready"}), "vms_active"},
		{"queued suspends", func() (string, []any) { return list(VMFilter{Status: "ready", SuspendPending: true}) }, "vms_suspend_pending"},
		{"vm list --status", func() (string, []any) { return list(VMFilter{Status: "set_ip"}) }, "vms_due"},
		{"suspended VMs", func() (string, []any) { return list(VMFilter{Status: "suspended"}) }, "vms_due"},
		{"vm list --node", func() (string, []any) { return list(VMFilter{Node: "pve2"}) }, "vms_node"},
		{"vm list --product", func() (string, []any) { return list(VMFilter{Product: "small"}) }, "vms_product"},
		{"vm list --held", func() (string, []any) { return list(VMFilter{Held: true}) }, "vms_held"},
		{"vm list --held --status", func() (string, []any) { return list(VMFilter{Held: true, Status: "set_ip"}) }, "vms_held"},
		{"a VM by service id or hostname", func() (string, []any) { return vmFindQuery, []any{"x", "x", "x"} }, "vms_hostname"},
		{"held VMs (process_vms message)", func() (string, []any) { return countAttentionQuery, nil }, "vms_held"},
		{"error_terminate VMs (process_vms message)", func() (string, []any) { return countAttentionQuery, nil }, "vms_due"},
		{"log: a VM's runs", func() (string, []any) {
			return `SELECT id, vm_id, task, started_at, finished_at, result, repeats, last_at, last_result
				FROM runs WHERE vm_id = ? ORDER BY id DESC LIMIT ?`, []any{1, 10}
		}, "runs_vm"},
		{"log: a run's lines", func() (string, []any) { return runLinesQuery, []any{1, 0} }, "run_lines_run"},
		{"vm list: each VM's addresses", func() (string, []any) {
			q, args := list(VMFilter{})
			return strings.Replace(q, vmColumns, listColumns, 1), args
		}, "ip_allocations_vm"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, args := tc.query()
			rows, err := s.db.QueryContext(ctx, `EXPLAIN QUERY PLAN `+q, args...)
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
			require.Contains(t, strings.Join(plan, "; "), "INDEX "+tc.index, "query:\n%s", q)
		})
	}
}

// Without the exact set of final states VMsDue cannot name the partial
// index: it still works, with a scan.
func TestActiveIndexCovers(t *testing.T) {
	t.Parallel()
	require.True(t, ActiveIndexCovers([]string{"ready", "suspended", "remove", "error_terminate"}))
	require.False(t, ActiveIndexCovers([]string{"ready", "remove", "error_terminate"}))
	require.False(t, ActiveIndexCovers([]string{"ready", "remove", "error_terminate", "suspended", "other"}))
	require.False(t, ActiveIndexCovers([]string{"ready", "ready", "remove", "error_terminate"}))
}
