package proxmox_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
)

func TestContractSnapshots(t *testing.T) {
	t.Parallel()
	b := setup(t)
	vm := b.clone(t, 101, "web1")

	snaps, err := b.c.Snapshots(b.ctx, vm)
	require.NoError(t, err)
	require.Empty(t, snaps, "the 'current' pseudo entry is not a snapshot")

	ref, err := b.c.CreateSnapshot(b.ctx, vm, proxmox.SnapshotRequest{Name: "before_upgrade", Description: "pvectl"})
	ts := b.ok(t, ref, err)
	require.Equal(t, "qmsnapshot", ts.Type)
	snaps, err = b.c.Snapshots(b.ctx, vm)
	require.NoError(t, err)
	require.Len(t, snaps, 1)
	require.Equal(t, "before_upgrade", snaps[0].Name)
	require.Equal(t, "pvectl", snaps[0].Description)
	require.False(t, snaps[0].SnapTime.IsZero())

	// Creating it again: already exists.
	ref, err = b.c.CreateSnapshot(b.ctx, vm, proxmox.SnapshotRequest{Name: "before_upgrade"})
	requireClass(t, proxmox.ClassAlreadyExists, b.outcome(t, ref, err))

	ref, err = b.c.DeleteSnapshot(b.ctx, vm, "before_upgrade", false)
	ts = b.ok(t, ref, err)
	require.Equal(t, "qmdelsnapshot", ts.Type)
	snaps, err = b.c.Snapshots(b.ctx, vm)
	require.NoError(t, err)
	require.Empty(t, snaps)

	ref, err = b.c.DeleteSnapshot(b.ctx, vm, "before_upgrade", true)
	requireClass(t, proxmox.ClassNotFound, b.outcome(t, ref, err))

	_, err = b.c.Snapshots(b.ctx, proxmox.VMRef{Node: "pve1", VMID: 555})
	requireClass(t, proxmox.ClassNotFound, err)
	_, err = b.limited.CreateSnapshot(b.ctx, vm, proxmox.SnapshotRequest{Name: "x"})
	requireClass(t, proxmox.ClassPermission, err)
	require.NoError(t, b.sim.LeaveLock(vm.VMID, "backup"))
	ref, err = b.c.CreateSnapshot(b.ctx, vm, proxmox.SnapshotRequest{Name: "locked"})
	requireClass(t, proxmox.ClassLocked, b.outcome(t, ref, err))
}

func TestContractRRDData(t *testing.T) {
	t.Parallel()
	b := setup(t)
	vm := b.clone(t, 101, "web1")
	b.start(t, vm)
	b.sim.SetNetRate(vm.VMID, 1000, 2000)
	b.sim.Advance(10 * time.Minute)

	for _, cf := range []proxmox.ConsolidationFunction{"", proxmox.CFAverage, proxmox.CFMax} {
		pts, err := b.c.RRDData(b.ctx, vm, proxmox.TimeframeHour, cf)
		require.NoError(t, err)
		require.NotEmpty(t, pts)
		var in, out float64
		for _, p := range pts {
			require.False(t, p.Time.IsZero())
			in, out = max(in, p.NetIn), max(out, p.NetOut)
		}
		require.InDelta(t, 1000, in, 1, "cf %q", cf)
		require.InDelta(t, 2000, out, 1, "cf %q", cf)
	}
	for _, tf := range []proxmox.Timeframe{proxmox.TimeframeDay, proxmox.TimeframeWeek, proxmox.TimeframeMonth, proxmox.TimeframeYear} {
		_, err := b.c.RRDData(b.ctx, vm, tf, proxmox.CFAverage)
		require.NoError(t, err, tf)
	}
	_, err := b.c.RRDData(b.ctx, proxmox.VMRef{Node: "pve1", VMID: 555}, proxmox.TimeframeHour, "")
	require.Error(t, err)

	_, err = b.badAuth.RRDData(b.ctx, vm, proxmox.TimeframeHour, "")
	requireClass(t, proxmox.ClassAuth, err)
}

func TestContractRollbackSnapshot(t *testing.T) {
	t.Parallel()
	b := setup(t)
	vm := b.clone(t, 101, "web1")
	b.start(t, vm)

	ts := b.must(t)(b.c.CreateSnapshot(b.ctx, vm, proxmox.SnapshotRequest{Name: "s1"}))
	require.Equal(t, "qmsnapshot", ts.Type)
	ts = b.must(t)(b.c.CreateSnapshot(b.ctx, vm, proxmox.SnapshotRequest{Name: "s2", VMState: true}))
	require.Equal(t, "qmsnapshot", ts.Type)
	snaps, err := b.c.Snapshots(b.ctx, vm)
	require.NoError(t, err)
	require.Len(t, snaps, 2)
	require.Equal(t, "s1", snaps[1].Parent, "s2's parent is s1")
	require.True(t, snaps[1].VMState)

	// Without start a running VM is stopped by the rollback of a snapshot without RAM.
	ts = b.must(t)(b.c.RollbackSnapshot(b.ctx, vm, "s1", false))
	require.Equal(t, "qmrollback", ts.Type)
	st, ok := b.sim.VM(vm.VMID)
	require.True(t, ok)
	require.Equal(t, "stopped", st.Status)
	require.Empty(t, st.Lock, "the rollback lock is released when the task ends")

	// With start it runs again.
	b.must(t)(b.c.RollbackSnapshot(b.ctx, vm, "s1", true))
	st, _ = b.sim.VM(vm.VMID)
	require.Equal(t, "running", st.Status)

	// A missing snapshot fails the task.
	ref, err := b.c.RollbackSnapshot(b.ctx, vm, "nope", false)
	require.Error(t, b.outcome(t, ref, err))

	_, err = b.limited.RollbackSnapshot(b.ctx, vm, "s1", false)
	requireClass(t, proxmox.ClassPermission, err)
	require.NoError(t, b.sim.LeaveLock(vm.VMID, "backup"))
	ref, err = b.c.RollbackSnapshot(b.ctx, vm, "s1", false)
	requireClass(t, proxmox.ClassLocked, b.outcome(t, ref, err))
}

func TestContractSnapshotRawDisk(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.NoError(t, b.sim.AddVM(pvesim.VMSpec{VMID: 777, Node: "pve1",
		Config: map[string]string{"name": "raw", "scsi0": "local:777/vm-777-disk-0.raw,size=1G"}}))
	vm := proxmox.VMRef{Node: "pve1", VMID: 777}
	ref, err := b.c.CreateSnapshot(b.ctx, vm, proxmox.SnapshotRequest{Name: "s1"})
	require.ErrorContains(t, b.outcome(t, ref, err), "snapshot feature is not available")
	snaps, err := b.c.Snapshots(b.ctx, vm)
	require.NoError(t, err)
	require.Empty(t, snaps)
}
