package proxmox_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
)

func TestContractClone(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ref, err := b.c.Clone(b.ctx, proxmox.CloneRequest{Source: template, NewID: 101, Name: "web1",
		Description: "pvectl service 42", Mode: proxmox.CloneLinked})
	require.NoError(t, err)
	_, typ, id, err := proxmox.ParseUPID(ref.UPID)
	require.NoError(t, err)
	require.Equal(t, "qmclone", typ)
	require.Equal(t, "9000", id, "a clone's UPID carries the source VMID")
	require.Equal(t, "pve1", ref.Node)

	// While the clone runs the new VM is locked.
	vm := proxmox.VMRef{Node: "pve1", VMID: 101}
	st, err := b.c.VMStatus(b.ctx, vm)
	require.NoError(t, err)
	require.Equal(t, "clone", st.Lock)
	_, err = b.c.SetConfig(b.ctx, vm, proxmox.ConfigChange{Set: map[string]string{"cores": "4"}})
	requireClass(t, proxmox.ClassLocked, err)

	ts := b.ok(t, ref, nil)
	require.Equal(t, "qmclone", ts.Type)
	cfg, err := b.c.VMConfig(b.ctx, vm)
	require.NoError(t, err)
	require.Equal(t, "web1", cfg.Name())
	require.Equal(t, "pvectl service 42", cfg.Description())
	require.Empty(t, cfg.Lock())

	// Full clone to the other storage name works too.
	ref, err = b.c.Clone(b.ctx, proxmox.CloneRequest{Source: template, NewID: 102, Name: "web2", Mode: proxmox.CloneFull, Storage: "local-lvm"})
	b.ok(t, ref, err)

	// Cloning onto an existing VMID fails: already exists.
	ref, err = b.c.Clone(b.ctx, proxmox.CloneRequest{Source: template, NewID: 101, Name: "web1", Mode: proxmox.CloneLinked})
	err = b.outcome(t, ref, err)
	requireClass(t, proxmox.ClassAlreadyExists, err)

	// Missing source.
	_, err = b.c.Clone(b.ctx, proxmox.CloneRequest{Source: proxmox.VMRef{Node: "pve1", VMID: 8999}, NewID: 103, Mode: proxmox.CloneLinked})
	requireClass(t, proxmox.ClassNotFound, err)

	// Lock timeout as a sync error, and as the task's exit status.
	b.sim.FailNext(pvesim.FailNext{Endpoint: "POST /nodes/{node}/qemu/{vmid}/clone", Status: 500,
		Message: "can't lock file '/var/lock/qemu-server/lock-9000.conf' - got timeout"})
	_, err = b.c.Clone(b.ctx, proxmox.CloneRequest{Source: template, NewID: 104, Mode: proxmox.CloneLinked})
	requireClass(t, proxmox.ClassLocked, err)
	require.True(t, proxmox.IsRetryable(err))

	b.sim.FailTask(pvesim.TaskFault{Type: "qmclone", Count: 1,
		ExitStatus: "clone failed: can't lock file '/var/lock/pve-manager/pve-storage-local-lvm' - got timeout"})
	ref, err = b.c.Clone(b.ctx, proxmox.CloneRequest{Source: template, NewID: 105, Mode: proxmox.CloneLinked})
	require.NoError(t, err)
	ts = b.wait(t, ref)
	requireClass(t, proxmox.ClassLocked, ts.Err())
	require.False(t, ts.Succeeded())

	// A worker killed mid-clone: unexpected status, and the lock stays.
	b.sim.FailTask(pvesim.TaskFault{Type: "qmclone", Count: 1, ExitStatus: "unexpected status", KeepLock: true})
	ref, err = b.c.Clone(b.ctx, proxmox.CloneRequest{Source: template, NewID: 106, Mode: proxmox.CloneLinked})
	require.NoError(t, err)
	requireClass(t, proxmox.ClassInterrupted, b.wait(t, ref).Err())
	_, err = b.c.SetConfig(b.ctx, proxmox.VMRef{Node: "pve1", VMID: 106}, proxmox.ConfigChange{Set: map[string]string{"cores": "4"}})
	requireClass(t, proxmox.ClassLocked, err)

	// Permission and auth.
	_, err = b.limited.Clone(b.ctx, proxmox.CloneRequest{Source: template, NewID: 107, Mode: proxmox.CloneLinked})
	requireClass(t, proxmox.ClassPermission, err)
	require.Contains(t, err.Error(), "Permission check failed")
	_, err = b.badAuth.Clone(b.ctx, proxmox.CloneRequest{Source: template, NewID: 107, Mode: proxmox.CloneLinked})
	requireClass(t, proxmox.ClassAuth, err)

	// No quorum.
	b.sim.SetQuorum(false)
	ref, err = b.c.Clone(b.ctx, proxmox.CloneRequest{Source: template, NewID: 108, Mode: proxmox.CloneLinked})
	requireClass(t, proxmox.ClassQuorum, b.outcome(t, ref, err))
}

func TestContractResizeDisk(t *testing.T) {
	t.Parallel()
	b := setup(t)
	vm := b.clone(t, 101, "web1")

	ref, err := b.c.ResizeDisk(b.ctx, vm, "scsi0", "40G")
	ts := b.ok(t, ref, err)
	require.Equal(t, "resize", ts.Type)
	cfg, err := b.c.VMConfig(b.ctx, vm)
	require.NoError(t, err)
	size, ok := cfg.DiskSize("scsi0")
	require.True(t, ok)
	require.Equal(t, int64(40<<30), size)

	// Same size: no-op success.
	ref, err = b.c.ResizeDisk(b.ctx, vm, "scsi0", "40G")
	b.ok(t, ref, err)

	ref, err = b.c.ResizeDisk(b.ctx, vm, "scsi0", "20G")
	requireClass(t, proxmox.ClassInvalid, b.outcome(t, ref, err))

	ref, err = b.c.ResizeDisk(b.ctx, vm, "scsi1", "20G")
	requireClass(t, proxmox.ClassInvalid, b.outcome(t, ref, err))

	ref, err = b.c.ResizeDisk(b.ctx, proxmox.VMRef{Node: "pve1", VMID: 555}, "scsi0", "40G")
	requireClass(t, proxmox.ClassNotFound, b.outcome(t, ref, err))

	_, err = b.limited.ResizeDisk(b.ctx, vm, "scsi0", "50G")
	requireClass(t, proxmox.ClassPermission, err)
}

// Growing a disk, or adding one, past the storage's free space: pvesim
// charges full-clone disks to their storage (lvm-style) and fails like
// pve-storage with `not enough free space (<free> < <size>)`. The requests
// are valid, so PVE takes them; the class comes from the task's exit status
// (POST config, resize) or from the 500 reason phrase (PUT config).
func TestContractNoSpace(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// A full clone owns its disk on local-lvm (a linked clone's delta is not
	// charged, so it would never run out).
	ref, err := b.c.Clone(b.ctx, proxmox.CloneRequest{Source: template, NewID: 101, Name: "web1", Mode: proxmox.CloneFull, Storage: "local-lvm"})
	b.ok(t, ref, err)
	vm := proxmox.VMRef{Node: "pve1", VMID: 101}
	before, err := b.c.StorageStatus(b.ctx, "pve1", "local-lvm")
	require.NoError(t, err)
	require.Positive(t, before.Avail)
	tooMuch := fmt.Sprintf("+%dG", before.Avail>>30+1)

	requireNoSpace := func(t *testing.T, err error) *proxmox.Error {
		t.Helper()
		requireClass(t, proxmox.ClassNoSpace, err)
		require.False(t, proxmox.IsRetryable(err), "no space is not retryable until space is freed")
		require.False(t, proxmox.MaybeApplied(err))
		for _, is := range []func(error) bool{proxmox.IsNotFound, proxmox.IsLocked, proxmox.IsAlreadyExists, proxmox.IsNotRunning, proxmox.IsPermission, proxmox.IsAuth} {
			require.False(t, is(err))
		}
		var pe *proxmox.Error
		require.ErrorAs(t, err, &pe)
		require.Equal(t, proxmox.ClassNoSpace, pe.Class)
		require.Regexp(t, `^not enough free space \(\d+ < \d+\)$`, pe.Message)
		require.Equal(t, "pve1", pe.Node)
		require.Equal(t, 101, pe.VMID)
		return pe
	}

	// Resize: accepted (UPID), fails in the worker.
	ref, err = b.c.ResizeDisk(b.ctx, vm, "scsi0", tooMuch)
	require.NoError(t, err, "free space is checked in the worker, not at request time")
	req := requireAccepted(t, b.sim, "PUT /nodes/{node}/qemu/{vmid}/resize")
	require.Equal(t, 200, req.Status)
	require.Equal(t, tooMuch, req.Params["size"])
	ts := b.wait(t, ref)
	require.Equal(t, "resize", ts.Type)
	require.False(t, ts.Succeeded())
	pe := requireNoSpace(t, ts.Err())
	require.Equal(t, ref, pe.Task)
	require.Zero(t, pe.HTTPStatus, "a task failure has no HTTP status")
	cfg, err := b.c.VMConfig(b.ctx, vm)
	require.NoError(t, err)
	size, ok := cfg.DiskSize("scsi0")
	require.True(t, ok)
	require.Equal(t, int64(32<<30), size, "the disk did not grow")

	// A new disk bigger than the free space: POST config (task error) and
	// PUT config (sync 500 with the message as reason phrase).
	newDisk := fmt.Sprintf("local-lvm:%d", before.Avail>>30+1)
	ref, err = b.c.SetConfig(b.ctx, vm, proxmox.ConfigChange{Set: map[string]string{"scsi1": newDisk}})
	require.NoError(t, err)
	requireAccepted(t, b.sim, "POST /nodes/{node}/qemu/{vmid}/config")
	pe = requireNoSpace(t, b.outcome(t, ref, err))
	require.Equal(t, ref, pe.Task)

	err = b.c.SetConfigSync(b.ctx, vm, proxmox.ConfigChange{Set: map[string]string{"scsi1": newDisk}})
	requireAccepted(t, b.sim, "PUT /nodes/{node}/qemu/{vmid}/config")
	pe = requireNoSpace(t, err)
	require.Equal(t, 500, pe.HTTPStatus)
	require.True(t, pe.Task.IsZero())

	cfg, err = b.c.VMConfig(b.ctx, vm)
	require.NoError(t, err)
	_, ok = cfg.Get("scsi1")
	require.False(t, ok, "no disk was added")
	after, err := b.c.StorageStatus(b.ctx, "pve1", "local-lvm")
	require.NoError(t, err)
	require.Equal(t, before.Used, after.Used, "nothing was allocated")
	b.sim.RequireNoRejections(t)
}

func TestContractResizeOnPVE7ReturnsNoTask(t *testing.T) {
	t.Parallel()
	cl := pvesim.DefaultCluster()
	cl.Version = "7.4-3"
	b := setupCluster(t, cl)
	vm := b.clone(t, 101, "web1")
	ref, err := b.c.ResizeDisk(b.ctx, vm, "scsi0", "40G")
	require.NoError(t, err)
	require.True(t, ref.IsZero(), "PVE 7 resizes synchronously and returns null")
}

func TestContractMigrate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	vm := b.clone(t, 101, "web1")
	// Linked clones cannot leave the template's local storage; use a full clone.
	ref, err := b.c.Clone(b.ctx, proxmox.CloneRequest{Source: template, NewID: 102, Name: "web2", Mode: proxmox.CloneFull})
	b.ok(t, ref, err)
	vm2 := proxmox.VMRef{Node: "pve1", VMID: 102}

	ref, err = b.c.Migrate(b.ctx, proxmox.MigrateRequest{VM: vm2, Target: "pve2", TargetStorage: "local-lvm"})
	ts := b.ok(t, ref, err)
	require.Equal(t, "qmigrate", ts.Type)
	_, err = b.c.VMStatus(b.ctx, proxmox.VMRef{Node: "pve2", VMID: 102})
	require.NoError(t, err)
	_, err = b.c.VMStatus(b.ctx, vm2)
	requireClass(t, proxmox.ClassNotFound, err)

	// Running VM: offline migration refused.
	b.start(t, vm)
	ref, err = b.c.Migrate(b.ctx, proxmox.MigrateRequest{VM: vm, Target: "pve2", TargetStorage: "local-lvm"})
	requireClass(t, proxmox.ClassPrecondition, b.outcome(t, ref, err))

	// Same node: invalid.
	_, err = b.c.Migrate(b.ctx, proxmox.MigrateRequest{VM: proxmox.VMRef{Node: "pve2", VMID: 102}, Target: "pve2"})
	requireClass(t, proxmox.ClassInvalid, err)

	// Missing VM.
	_, err = b.c.Migrate(b.ctx, proxmox.MigrateRequest{VM: proxmox.VMRef{Node: "pve1", VMID: 555}, Target: "pve2"})
	requireClass(t, proxmox.ClassNotFound, err)

	// Target node down: PVE takes the request (no online check before the
	// worker) and the task ends with the generic "migration aborted"; the
	// cause is only in its log, and TaskFailure reads it from there.
	ref, err = b.c.Stop(b.ctx, vm, proxmox.StopOptions{})
	b.ok(t, ref, err)
	require.NoError(t, b.sim.SetNodeOffline("pve2", true))
	ref, err = b.c.Migrate(b.ctx, proxmox.MigrateRequest{VM: vm, Target: "pve2", TargetStorage: "local-lvm"})
	require.NoError(t, err)
	ts = b.wait(t, ref)
	require.Equal(t, "migration aborted", ts.ExitStatus)
	requireClass(t, proxmox.ClassUnknown, ts.Err())
	log, err := b.c.TaskLog(b.ctx, ref, 0, 100)
	require.NoError(t, err)
	failure := proxmox.TaskFailure(ts, log)
	requireClass(t, proxmox.ClassTransient, failure)
	require.True(t, proxmox.IsRetryable(failure))
	require.Contains(t, failure.Error(), "migration aborted (Can't connect to destination address using public key)")
	_, err = b.c.VMStatus(b.ctx, vm)
	require.NoError(t, err, "the VM stays where it was")
	require.NoError(t, b.sim.SetNodeOffline("pve2", false))

	// Source node down: its API proxy answers 595.
	require.NoError(t, b.sim.SetNodeOffline("pve1", true))
	_, err = b.c.Migrate(b.ctx, proxmox.MigrateRequest{VM: vm, Target: "pve2"})
	requireClass(t, proxmox.ClassTransient, err)
}

func TestContractPower(t *testing.T) {
	t.Parallel()
	b := setup(t)
	vm := b.clone(t, 101, "web1")

	ref, err := b.c.Start(b.ctx, vm, proxmox.StartOptions{Timeout: 60 * time.Second})
	ts := b.ok(t, ref, err)
	require.Equal(t, "qmstart", ts.Type)
	st, err := b.c.VMStatus(b.ctx, vm)
	require.NoError(t, err)
	require.Equal(t, "running", st.Status)

	// Start again: the task fails with "already running".
	ref, err = b.c.Start(b.ctx, vm, proxmox.StartOptions{})
	err = b.outcome(t, ref, err)
	requireClass(t, proxmox.ClassAlreadyRunning, err)
	require.True(t, proxmox.IsAlreadyRunning(err))

	// Template: cannot start.
	ref, err = b.c.Start(b.ctx, template, proxmox.StartOptions{})
	requireClass(t, proxmox.ClassPrecondition, b.outcome(t, ref, err))

	// Reboot: the guest starts again (a new uptime); a guest ignoring ACPI
	// fails the task after the timeout; a stopped VM is refused at once.
	ref, err = b.c.Reboot(b.ctx, vm, proxmox.RebootOptions{Timeout: 30 * time.Second})
	ts = b.ok(t, ref, err)
	require.Equal(t, "qmreboot", ts.Type)
	b.sim.FailTask(pvesim.TaskFault{Type: "qmreboot", Count: 1, ExitStatus: "VM quit/powerdown failed - got timeout"})
	ref, err = b.c.Reboot(b.ctx, vm, proxmox.RebootOptions{})
	requireClass(t, proxmox.ClassTransient, b.outcome(t, ref, err))
	_, err = b.limited.Reboot(b.ctx, vm, proxmox.RebootOptions{})
	requireClass(t, proxmox.ClassPermission, err)

	// Graceful shutdown with forceStop.
	ref, err = b.c.Shutdown(b.ctx, vm, proxmox.ShutdownOptions{Timeout: 30 * time.Second, ForceStop: true})
	ts = b.ok(t, ref, err)
	require.Equal(t, "qmshutdown", ts.Type)
	st, err = b.c.VMStatus(b.ctx, vm)
	require.NoError(t, err)
	require.True(t, st.Stopped())

	// Shutdown and stop of a stopped VM are no-ops; a reboot is refused.
	ref, err = b.c.Shutdown(b.ctx, vm, proxmox.ShutdownOptions{})
	b.ok(t, ref, err)
	_, err = b.c.Reboot(b.ctx, vm, proxmox.RebootOptions{})
	requireClass(t, proxmox.ClassNotRunning, err)
	ref, err = b.c.Stop(b.ctx, vm, proxmox.StopOptions{})
	b.ok(t, ref, err)

	// Stop a running VM, with overrule-shutdown.
	b.start(t, vm)
	ref, err = b.c.Stop(b.ctx, vm, proxmox.StopOptions{Timeout: 10 * time.Second, OverruleShutdown: true})
	ts = b.ok(t, ref, err)
	require.Equal(t, "qmstop", ts.Type)

	// A guest that never reaches running: start succeeds, status never running.
	b.sim.SetNeverRunning(vm.VMID, true)
	ref, err = b.c.Start(b.ctx, vm, proxmox.StartOptions{})
	_ = b.outcome(t, ref, err)
	st, err = b.c.VMStatus(b.ctx, vm)
	require.NoError(t, err)
	require.False(t, st.Running(), "%+v", st)
	b.sim.SetNeverRunning(vm.VMID, false)

	// Errors.
	missing := proxmox.VMRef{Node: "pve1", VMID: 555}
	ref, err = b.c.Start(b.ctx, missing, proxmox.StartOptions{})
	requireClass(t, proxmox.ClassNotFound, b.outcome(t, ref, err))
	ref, err = b.c.Stop(b.ctx, missing, proxmox.StopOptions{})
	requireClass(t, proxmox.ClassNotFound, b.outcome(t, ref, err))
	_, err = b.limited.Start(b.ctx, vm, proxmox.StartOptions{})
	requireClass(t, proxmox.ClassPermission, err)
	require.Contains(t, err.Error(), "VM.PowerMgmt")
	_, err = b.badAuth.Stop(b.ctx, vm, proxmox.StopOptions{})
	requireClass(t, proxmox.ClassAuth, err)
	_, err = b.limited.Shutdown(b.ctx, vm, proxmox.ShutdownOptions{})
	requireClass(t, proxmox.ClassPermission, err)
	require.Contains(t, err.Error(), "VM.PowerMgmt")
	_, err = b.badAuth.Shutdown(b.ctx, vm, proxmox.ShutdownOptions{})
	requireClass(t, proxmox.ClassAuth, err)

	b.sim.FailNext(pvesim.FailNext{Endpoint: "POST /nodes/{node}/qemu/{vmid}/status/start", Status: 500,
		Message: "got no worker upid - start worker failed"})
	_, err = b.c.Start(b.ctx, vm, proxmox.StartOptions{})
	requireClass(t, proxmox.ClassTransient, err)
	require.False(t, proxmox.MaybeApplied(err))

	b.sim.FailTask(pvesim.TaskFault{Type: "qmstart", Count: 1, ExitStatus: "VM 101 qmp command 'query-status' failed - got timeout"})
	ref, err = b.c.Start(b.ctx, vm, proxmox.StartOptions{})
	requireClass(t, proxmox.ClassTransient, b.outcome(t, ref, err))
}

func TestContractDelete(t *testing.T) {
	t.Parallel()
	b := setup(t)
	vm := b.clone(t, 101, "web1")

	// Running: refused.
	b.start(t, vm)
	ref, err := b.c.Delete(b.ctx, vm, proxmox.DeleteOptions{Purge: true, DestroyUnreferencedDisks: true})
	requireClass(t, proxmox.ClassPrecondition, b.outcome(t, ref, err))
	ref, err = b.c.Stop(b.ctx, vm, proxmox.StopOptions{})
	b.ok(t, ref, err)

	// Locked: fails.
	require.NoError(t, b.sim.LeaveLock(vm.VMID, "backup"))
	ref, err = b.c.Delete(b.ctx, vm, proxmox.DeleteOptions{Purge: true, DestroyUnreferencedDisks: true})
	requireClass(t, proxmox.ClassLocked, b.outcome(t, ref, err))
	require.NoError(t, b.sim.LeaveLock(vm.VMID, ""))

	_, err = b.limited.Delete(b.ctx, vm, proxmox.DeleteOptions{Purge: true})
	requireClass(t, proxmox.ClassPermission, err)

	ref, err = b.c.Delete(b.ctx, vm, proxmox.DeleteOptions{Purge: true, DestroyUnreferencedDisks: true})
	ts := b.ok(t, ref, err)
	require.Equal(t, "qmdestroy", ts.Type)
	_, err = b.c.VMStatus(b.ctx, vm)
	requireClass(t, proxmox.ClassNotFound, err)
	res, err := b.c.ClusterResources(b.ctx, proxmox.ResourceVM)
	require.NoError(t, err)
	for _, r := range res {
		require.NotEqual(t, 101, r.VMID)
	}

	// Deleting again: not found (= already deleted).
	ref, err = b.c.Delete(b.ctx, vm, proxmox.DeleteOptions{Purge: true, DestroyUnreferencedDisks: true})
	err = b.outcome(t, ref, err)
	requireClass(t, proxmox.ClassNotFound, err)
	require.True(t, proxmox.IsNotFound(err))
}

// A running VM migrates live with online=1; its disks on local storage need
// with-local-disks=1, else the migration task fails as PVE's does.
func TestContractMigrateOnline(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ref, err := b.c.Clone(b.ctx, proxmox.CloneRequest{Source: template, NewID: 102, Name: "web2", Mode: proxmox.CloneFull})
	b.ok(t, ref, err)
	vm := proxmox.VMRef{Node: "pve1", VMID: 102}
	b.start(t, vm)

	ref, err = b.c.Migrate(b.ctx, proxmox.MigrateRequest{VM: vm, Target: "pve2", Online: true})
	require.NoError(t, err)
	ts := b.wait(t, ref)
	require.Equal(t, "can't live migrate attached local disks without with-local-disks option", ts.ExitStatus)
	_, err = b.c.VMStatus(b.ctx, vm)
	require.NoError(t, err, "the VM stays where it was")

	ref, err = b.c.Migrate(b.ctx, proxmox.MigrateRequest{VM: vm, Target: "pve2", Online: true, WithLocalDisks: true})
	ts = b.ok(t, ref, err)
	require.Equal(t, "qmigrate", ts.Type)
	st, err := b.c.VMStatus(b.ctx, proxmox.VMRef{Node: "pve2", VMID: 102})
	require.NoError(t, err)
	require.Equal(t, "running", st.Status, "a live migration keeps the VM running")
}
