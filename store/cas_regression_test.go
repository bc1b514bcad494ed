package store_test

import (
	"context"
	"testing"

	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

// change_package's first step (states/change_package.go updateIPs) reads the
// VM, then calls IPAllocate, which is not guarded by status/version. If an
// admin runs `reset-status VM remove` (VMSetRemoved: releases VMID and
// addresses) while that step is running, the step's IPAllocate still
// succeeds: the removed record now holds addresses that nothing will ever
// release (remove is final; the terminate release never runs), and the pool
// shrinks silently until someone runs delete-record.
func TestIPAllocateAfterRemoveIsRefused_regression(t *testing.T) {
	t.Parallel()
	s := open(t)
	ctx := context.Background()
	vm := newVM(t, s, "svc-cp")
	require.NoError(t, s.VMReserve(ctx, store.Reservation{ID: vm.ID, Status: vm.Status, Version: vm.Version, VMID: 1000,
		Node: "pve1", TargetNode: "pve1", IPs: []store.IPAllocation{{Address: "192.0.2.10", Family: 4, Pool: "v4"}}, Now: t0}))
	require.NoError(t, s.VMSetStatus(ctx, vm.ID, "change_package", t0))
	// The tick's change_package step has read the VM ...
	read, err := s.VMGet(ctx, vm.ID)
	require.NoError(t, err)
	// ... the admin removes it ...
	require.NoError(t, s.VMSetRemoved(ctx, vm.ID, read.Status, read.Version, t0))
	// ... and the step allocates the product's extra address.
	err = s.IPAllocate(ctx, vm.ID, read.Status, read.Version, []store.IPAllocation{{Address: "192.0.2.11", Family: 4, Pool: "v4"}}, t0)
	require.ErrorIs(t, err, store.ErrConflict)

	got, gerr := s.VMGet(ctx, vm.ID)
	require.NoError(t, gerr)
	require.Equal(t, "remove", got.Status)
	used, uerr := s.IPsInPool(ctx, "v4")
	require.NoError(t, uerr)
	require.Error(t, err, "a step that read an older status/version must not add addresses to a removed VM")
	require.Empty(t, used, "a removed VM holds addresses nothing will release")
}
