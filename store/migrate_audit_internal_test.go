package store

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// 00020 backfills the VMID of records that released it before the audit
// existed, from the line of their log that says so (the release step's, or
// reset-status remove's), so the audit can still answer for them.
func TestMigrationBackfillsReleasedVMIDFromTheLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path, db := migratedTo(t, 18)
	removed := ms(t0ms())
	tests := []struct {
		svc, status string
		vmid        any    // the live column: NULL once released
		detail      string // a line of its log
		wantVMID    int    // what audit vmid finds it under (0: none)
	}{
		{"step", "remove", nil, "released VMID 1000 and 1 address(es)", 1000},
		{"reset", "remove", nil, "by alice; was held; released VMID 1001", 1001},
		{"nolog", "remove", nil, "", 0},
		{"live", "ready", 1003, "allocated", 1003},
	}
	for i, tc := range tests {
		_, err := db.Exec(`INSERT INTO vms (id, service_id, hostname, product, status, vmid, step_started_at, created_at, updated_at)
			VALUES (?, ?, ?, 'small', ?, ?, ?, 1, 1)`, i+1, tc.svc, tc.svc+".example.test", tc.status, tc.vmid, removed)
		require.NoError(t, err, tc.svc)
		if tc.detail != "" {
			_, err = db.Exec(`INSERT INTO runs (id, vm_id, task, started_at) VALUES (?, ?, 'process_vms', 1)`, i+1, i+1)
			require.NoError(t, err, tc.svc)
			_, err = db.Exec(`INSERT INTO run_lines (run_id, at, result, detail) VALUES (?, 1, 'ok', ?)`, i+1, tc.detail)
			require.NoError(t, err, tc.svc)
		}
	}
	require.NoError(t, db.Close())

	s, err := Open(ctx, path)
	require.NoError(t, err)
	defer s.Close()
	for _, tc := range tests {
		if tc.wantVMID == 0 {
			continue
		}
		got, err := s.AuditVMID(ctx, tc.wantVMID)
		require.NoError(t, err, tc.svc)
		require.Len(t, got, 1, tc.svc)
		require.Equal(t, tc.svc, got[0].ServiceID)
		if tc.status == "remove" {
			require.Equal(t, t0ms(), got[0].Until, "%s: released when it reached remove", tc.svc)
		} else {
			require.Zero(t, got[0].Until, "%s: still held", tc.svc)
		}
	}
	var unknown int
	require.NoError(t, s.db.QueryRowContext(ctx, `SELECT last_vmid FROM vms WHERE service_id = 'nolog'`).Scan(&unknown))
	require.Zero(t, unknown)
}
