package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

// The purge deletes only records in remove for longer than purge.removed_days
// with nothing left to do, each replaced by an audit row that still answers
// who held its address and VMID; the address quarantine is untouched.
func TestPurgeRemovedRecordsLeavesAudit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t)
	day := func(n int) time.Time { return t0.Add(time.Duration(n) * 24 * time.Hour) }
	tests := []struct {
		name      string
		removedAt int  // day the record reached remove; -1: never (it stays ready)
		dnsDirty  bool // DNS records still to delete
		purged    bool
	}{
		{"removed 100 days ago", 0, false, true},
		{"removed 89 days ago", 11, false, false},
		{"never removed", -1, false, false},
		{"removed long ago, DNS still to delete", 0, true, false},
	}
	for i, tc := range tests {
		vm := newVM(t, s, fmt.Sprintf("svc%d", i))
		addr := fmt.Sprintf("192.0.2.%d", 10+i)
		require.NoError(t, s.VMReserve(ctx, store.Reservation{ID: vm.ID, Status: vm.Status, Version: vm.Version, VMID: 1000 + i,
			Node: "pve1", TargetNode: "pve1", IPs: []store.IPAllocation{{Address: addr, Family: 4, Pool: "v4"}}, Now: t0}), tc.name)
		if tc.removedAt >= 0 {
			vm, err := s.VMGet(ctx, vm.ID)
			require.NoError(t, err)
			require.NoError(t, s.VMSetRemoved(ctx, vm.ID, vm.Status, vm.Version, day(tc.removedAt)), tc.name)
		}
		if tc.dnsDirty {
			require.NoError(t, s.VMSetDNSDirty(ctx, vm.ID, true, day(tc.removedAt)), tc.name)
		}
	}
	before := store.PurgeBefore{Removed: day(10), Now: day(100)}

	dry, err := s.Purge(ctx, before, true)
	require.NoError(t, err)
	require.Equal(t, int64(1), dry.RemovedVMs)
	all, err := s.VMList(ctx, store.VMFilter{})
	require.NoError(t, err)
	require.Len(t, all, len(tests), "a dry run deletes nothing")

	done, err := s.Purge(ctx, before, false)
	require.NoError(t, err)
	require.Equal(t, dry, done)
	again, err := s.Purge(ctx, before, false)
	require.NoError(t, err)
	require.Zero(t, again.RemovedVMs)

	for i, tc := range tests {
		svc, addr := fmt.Sprintf("svc%d", i), fmt.Sprintf("192.0.2.%d", 10+i)
		_, err := s.VMFind(ctx, svc)
		if tc.purged {
			require.Error(t, err, tc.name)
		} else {
			require.NoError(t, err, tc.name)
		}
		ips, err := s.AuditIP(ctx, addr)
		require.NoError(t, err, tc.name)
		require.Len(t, ips, 1, tc.name)
		require.Equal(t, svc, ips[0].ServiceID, tc.name)
		require.Equal(t, 1000+i, ips[0].VMID, tc.name)
		require.Equal(t, "pve1", ips[0].Node, tc.name)
		require.Equal(t, t0, ips[0].From, tc.name)
		vmids, err := s.AuditVMID(ctx, 1000+i)
		require.NoError(t, err, tc.name)
		require.Len(t, vmids, 1, tc.name)
		require.Equal(t, svc, vmids[0].ServiceID, tc.name)
		if tc.removedAt >= 0 {
			require.Equal(t, day(tc.removedAt), ips[0].Until, tc.name)
			require.Equal(t, day(tc.removedAt), vmids[0].Until, tc.name)
		} else {
			require.Zero(t, ips[0].Until, "%s: still held", tc.name)
			require.Zero(t, vmids[0].Until, "%s: still held", tc.name)
		}
		if tc.purged {
			require.Equal(t, day(100), ips[0].Deleted, tc.name)
			require.Equal(t, store.AuditPurge, ips[0].How, tc.name)
			require.Equal(t, "remove", vmids[0].Status, tc.name)
		} else {
			require.Zero(t, ips[0].Deleted, tc.name)
		}
	}

	// The purged record's address stays in quarantine: released on day 0,
	// it is still among the addresses the allocator keeps out.
	q, err := s.IPsReleasedAfter(ctx, "v4", t0.Add(-time.Hour))
	require.NoError(t, err)
	require.Contains(t, q, "192.0.2.10")
	require.Equal(t, t0, q["192.0.2.10"])
}

// delete-record leaves an audit row too, with the addresses the record
// still held when it was deleted.
func TestDeleteRecordLeavesAudit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t)
	vm := newVM(t, s, "et")
	require.NoError(t, s.VMReserve(ctx, store.Reservation{ID: vm.ID, Status: vm.Status, Version: vm.Version, VMID: 1005,
		Node: "pve2", IPs: []store.IPAllocation{{Address: "2001:db8::5", Family: 6, Pool: "v6"}}, Now: t0}))
	require.NoError(t, s.VMSetStatus(ctx, vm.ID, "error_terminate", t0))
	vm, err := s.VMGet(ctx, vm.ID)
	require.NoError(t, err)
	at := t0.Add(48 * time.Hour)
	require.NoError(t, s.VMDelete(ctx, vm.ID, vm.Status, vm.Version, at))

	for _, q := range []func() ([]store.AuditHold, error){
		func() ([]store.AuditHold, error) { return s.AuditIP(ctx, "2001:db8::5") },
		func() ([]store.AuditHold, error) { return s.AuditVMID(ctx, 1005) },
	} {
		got, err := q()
		require.NoError(t, err)
		require.Len(t, got, 1)
		require.Equal(t, "et", got[0].ServiceID)
		require.Equal(t, 1005, got[0].VMID)
		require.Equal(t, "pve2", got[0].Node)
		require.Equal(t, "error_terminate", got[0].Status)
		require.Equal(t, at, got[0].Until)
		require.Equal(t, at, got[0].Deleted)
		require.Equal(t, store.AuditDeleteRecord, got[0].How)
	}
	none, err := s.AuditVMID(ctx, 1006)
	require.NoError(t, err)
	require.Empty(t, none)
}
