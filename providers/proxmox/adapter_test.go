package proxmox_test

// Contract tests: the go-proxmox adapter against pvesim served over HTTP,
// for every Client method — success and the error classes it can hit.
// Every test's setup fails the test if any request the adapter sent was
// rejected by pvesim's PVE-schema validation.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
)

const (
	limitedTokenID = "audit@pve!ro"
	limitedSecret  = "00000000-0000-4000-8000-00000000a0d1"
	templateID     = 9000
)

var template = proxmox.VMRef{Node: "pve1", VMID: templateID}

type testBundle struct {
	sim     *pvesim.Sim
	c       proxmox.Client
	limited proxmox.Client // token with audit privileges only
	badAuth proxmox.Client // wrong secret
	ctx     context.Context
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	return setupCluster(t, pvesim.DefaultCluster())
}

func setupCluster(t *testing.T, cl pvesim.Cluster) *testBundle {
	t.Helper()
	cl.Tokens = append(cl.Tokens, pvesim.TokenSpec{ID: limitedTokenID, Secret: limitedSecret,
		Grants: []pvesim.Grant{{Path: "/", Privs: []string{"VM.Audit", "Sys.Audit", "Datastore.Audit"}}}})
	sim, apiURL, id, secret := pvesim.StartTest(t, cl)
	// The contract: nothing the adapter sends may fail PVE's schema.
	t.Cleanup(func() { sim.RequireNoRejections(t) })
	mk := func(id, secret string) proxmox.Client {
		a, err := proxmox.New(proxmox.Options{URL: apiURL, TokenID: id, TokenSecret: secret})
		require.NoError(t, err)
		return a
	}
	return &testBundle{sim: sim, c: mk(id, secret), limited: mk(limitedTokenID, limitedSecret),
		badAuth: mk(id, "00000000-0000-4000-8000-0000000bad00"), ctx: context.Background()}
}

// wait advances the simulated clock until the task stops (never sleeps).
func (b *testBundle) wait(t *testing.T, ref proxmox.TaskRef) proxmox.TaskStatus {
	t.Helper()
	require.False(t, ref.IsZero(), "expected a task")
	for range 600 {
		st, err := b.c.TaskStatus(b.ctx, ref)
		require.NoError(t, err)
		require.Equal(t, ref, st.Task)
		if st.Done() {
			return st
		}
		b.sim.Advance(time.Second)
	}
	t.Fatalf("task %s never finished", ref.UPID)
	return proxmox.TaskStatus{}
}

// ok waits for a task and requires success.
func (b *testBundle) ok(t *testing.T, ref proxmox.TaskRef, err error) proxmox.TaskStatus {
	t.Helper()
	require.NoError(t, err)
	st := b.wait(t, ref)
	require.NoError(t, st.Err(), "task %s", ref.UPID)
	require.True(t, st.Succeeded())
	return st
}

// must is ok for a call's two results: b.must(t)(b.c.Start(…)).
func (b *testBundle) must(t *testing.T) func(proxmox.TaskRef, error) proxmox.TaskStatus {
	t.Helper()
	return func(ref proxmox.TaskRef, err error) proxmox.TaskStatus {
		t.Helper()
		return b.ok(t, ref, err)
	}
}

// outcome is the error of a call that returns a task: the call's own error,
// or the task's exit status. PVE checks some things synchronously and
// others in the worker; the class is the same either way.
func (b *testBundle) outcome(t *testing.T, ref proxmox.TaskRef, err error) error {
	t.Helper()
	if err != nil {
		return err
	}
	if ref.IsZero() {
		return nil
	}
	return b.wait(t, ref).Err()
}

func requireClass(t *testing.T, want proxmox.Class, err error) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, want.String(), proxmox.Classify(err).String(), "error: %v", err)
}

// clone makes a linked clone of the template on pve1 and waits for it.
func (b *testBundle) clone(t *testing.T, vmid int, name string) proxmox.VMRef {
	t.Helper()
	ref, err := b.c.Clone(b.ctx, proxmox.CloneRequest{Source: template, NewID: vmid, Name: name, Mode: proxmox.CloneLinked})
	b.ok(t, ref, err)
	return proxmox.VMRef{Node: "pve1", VMID: vmid}
}

func (b *testBundle) start(t *testing.T, vm proxmox.VMRef) {
	t.Helper()
	ref, err := b.c.Start(b.ctx, vm, proxmox.StartOptions{})
	b.ok(t, ref, err)
}

func TestContractClusterResources(t *testing.T) {
	t.Parallel()
	b := setup(t)
	all, err := b.c.ClusterResources(b.ctx, proxmox.ResourceAll)
	require.NoError(t, err)
	types := map[string]int{}
	for _, r := range all {
		types[r.Type]++
	}
	require.Equal(t, 2, types["node"])
	require.Equal(t, 1, types["qemu"])
	require.Equal(t, 4, types["storage"])

	vms, err := b.c.ClusterResources(b.ctx, proxmox.ResourceVM)
	require.NoError(t, err)
	require.Len(t, vms, 1)
	v := vms[0]
	require.True(t, v.IsVM())
	require.Equal(t, "qemu/9000", v.ID)
	require.Equal(t, templateID, v.VMID)
	require.Equal(t, "pve1", v.Node)
	require.Equal(t, "debian-12-template", v.Name)
	require.True(t, v.Template)

	nodes, err := b.c.ClusterResources(b.ctx, proxmox.ResourceNode)
	require.NoError(t, err)
	require.Len(t, nodes, 2)
	for _, n := range nodes {
		require.Equal(t, "node", n.Type)
		require.Equal(t, "online", n.Status)
		require.Equal(t, int64(64<<30), n.MaxMem)
	}

	st, err := b.c.ClusterResources(b.ctx, proxmox.ResourceStorage)
	require.NoError(t, err)
	require.Len(t, st, 4)
	for _, s := range st {
		require.Equal(t, "storage", s.Type)
		require.NotEmpty(t, s.Storage)
		require.NotEmpty(t, s.Content)
	}

	// A clone shows lock, tags and name while and after it runs.
	ref, err := b.c.Clone(b.ctx, proxmox.CloneRequest{Source: template, NewID: 101, Name: "web1", Mode: proxmox.CloneLinked})
	require.NoError(t, err)
	vms, err = b.c.ClusterResources(b.ctx, proxmox.ResourceVM)
	require.NoError(t, err)
	var locked bool
	for _, r := range vms {
		if r.VMID == 101 {
			locked = r.Lock == "clone"
		}
	}
	require.True(t, locked, "new VM carries lock clone while the clone runs: %+v", vms)
	b.ok(t, ref, nil)
	b.must(t)(b.c.SetConfig(b.ctx, proxmox.VMRef{Node: "pve1", VMID: 101}, proxmox.ConfigChange{Set: map[string]string{"tags": "pvectl;svc-42"}}))
	vms, err = b.c.ClusterResources(b.ctx, proxmox.ResourceVM)
	require.NoError(t, err)
	for _, r := range vms {
		if r.VMID == 101 {
			require.Equal(t, "web1", r.Name)
			require.Empty(t, r.Lock)
			require.False(t, r.Template)
			require.True(t, r.HasTag("pvectl") && r.HasTag("svc-42"), "%+v", r)
		}
	}

	_, err = b.badAuth.ClusterResources(b.ctx, proxmox.ResourceVM)
	requireClass(t, proxmox.ClassAuth, err)

	// Reads are retried (retry_test.go): fail every attempt.
	b.sim.FailNext(pvesim.FailNext{Endpoint: "GET /cluster/resources", Count: proxmox.ReadAttempts, Status: 503})
	_, err = b.c.ClusterResources(b.ctx, proxmox.ResourceVM)
	requireClass(t, proxmox.ClassTransient, err)
}

func TestContractNodeStatus(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ns, err := b.c.NodeStatus(b.ctx, "pve1")
	require.NoError(t, err)
	require.Equal(t, "pve1", ns.Node)
	require.Equal(t, int64(64<<30), ns.MemoryTotal)
	require.Positive(t, ns.MemoryFree)
	require.Equal(t, ns.MemoryTotal, ns.MemoryUsed+ns.MemoryFree)
	require.Equal(t, 16, ns.CPUs)

	require.NoError(t, b.sim.SetNodeOffline("pve2", true))
	_, err = b.c.NodeStatus(b.ctx, "pve2")
	requireClass(t, proxmox.ClassTransient, err)
	var pe *proxmox.Error
	require.ErrorAs(t, err, &pe)
	require.Equal(t, 595, pe.HTTPStatus)

	_, err = b.c.NodeStatus(b.ctx, "nosuchnode")
	requireClass(t, proxmox.ClassInvalid, err)

	_, err = b.badAuth.NodeStatus(b.ctx, "pve1")
	requireClass(t, proxmox.ClassAuth, err)
}

func TestContractStorageStatus(t *testing.T) {
	t.Parallel()
	cl := pvesim.DefaultCluster()
	cl.Nodes[1].Storages = append(cl.Nodes[1].Storages,
		pvesim.StorageSpec{Name: "nfs-off", Type: "nfs", Content: []string{"backup"}, Shared: true, Offline: true},
		pvesim.StorageSpec{Name: "old", Type: "dir", Content: []string{"backup"}, Disabled: true})
	b := setupCluster(t, cl)

	st, err := b.c.StorageStatus(b.ctx, "pve1", "local-lvm")
	require.NoError(t, err)
	require.Equal(t, "lvmthin", st.Type)
	require.True(t, st.Enabled)
	require.True(t, st.Active)
	require.True(t, st.HasContent("images"))
	require.Equal(t, int64(500<<30), st.Total)
	require.Equal(t, st.Total, st.Used+st.Avail)

	_, err = b.c.StorageStatus(b.ctx, "pve1", "nosuch")
	requireClass(t, proxmox.ClassStorage, err)

	// PVE reports an offline or disabled storage's status (active/enabled
	// 0); using it is what fails.
	st, err = b.c.StorageStatus(b.ctx, "pve2", "nfs-off")
	require.NoError(t, err)
	require.False(t, st.Active)
	st, err = b.c.StorageStatus(b.ctx, "pve2", "old")
	require.NoError(t, err)
	require.False(t, st.Enabled)

	// A VM on pve2: local storage cannot be cloned across nodes, so clone
	// on pve1 and migrate.
	_, err = b.c.Clone(b.ctx, proxmox.CloneRequest{Source: template, NewID: 102, Target: "pve2", Mode: proxmox.CloneFull, Storage: "local-lvm"})
	requireClass(t, proxmox.ClassInvalid, err)
	require.Contains(t, err.Error(), "VM uses local storage")
	ref, err := b.c.Clone(b.ctx, proxmox.CloneRequest{Source: template, NewID: 102, Mode: proxmox.CloneFull})
	b.ok(t, ref, err)
	b.must(t)(b.c.Migrate(b.ctx, proxmox.MigrateRequest{VM: proxmox.VMRef{Node: "pve1", VMID: 102}, Target: "pve2", TargetStorage: "local-lvm"}))
	vm := proxmox.VMRef{Node: "pve2", VMID: 102}
	ref, err = b.c.Backup(b.ctx, proxmox.BackupRequest{VM: vm, Storage: "nfs-off"})
	requireClass(t, proxmox.ClassStorageOffline, b.outcome(t, ref, err))
	ref, err = b.c.Backup(b.ctx, proxmox.BackupRequest{VM: vm, Storage: "old"})
	requireClass(t, proxmox.ClassStorage, b.outcome(t, ref, err))
	_, err = b.c.StorageContent(b.ctx, "pve2", "nfs-off", proxmox.ContentFilter{})
	requireClass(t, proxmox.ClassStorageOffline, err)
}

func TestContractVMStatusAndConfig(t *testing.T) {
	t.Parallel()
	b := setup(t)
	st, err := b.c.VMStatus(b.ctx, template)
	require.NoError(t, err)
	require.True(t, st.Template)
	require.True(t, st.Stopped())
	require.Equal(t, "debian-12-template", st.Name)

	cfg, err := b.c.VMConfig(b.ctx, template)
	require.NoError(t, err)
	require.NotEmpty(t, cfg.Digest)
	require.True(t, cfg.Template())
	require.Equal(t, "2", cfg.Values["cores"])
	require.Equal(t, "2048", cfg.Values["memory"])
	size, ok := cfg.DiskSize("scsi0")
	require.True(t, ok)
	require.Equal(t, int64(32<<30), size)

	vm := b.clone(t, 101, "web1")
	st, err = b.c.VMStatus(b.ctx, vm)
	require.NoError(t, err)
	require.False(t, st.Template, "template key must be absent for a normal VM")
	require.Equal(t, "web1", st.Name)

	missing := proxmox.VMRef{Node: "pve1", VMID: 555}
	_, err = b.c.VMStatus(b.ctx, missing)
	requireClass(t, proxmox.ClassNotFound, err)
	require.True(t, proxmox.IsNotFound(err))
	_, err = b.c.VMConfig(b.ctx, missing)
	requireClass(t, proxmox.ClassNotFound, err)

	_, err = b.badAuth.VMConfig(b.ctx, template)
	requireClass(t, proxmox.ClassAuth, err)
}

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

func TestContractSetConfig(t *testing.T) {
	t.Parallel()
	b := setup(t)
	vm := b.clone(t, 101, "web1")

	// Async POST.
	ref, err := b.c.SetConfig(b.ctx, vm, proxmox.ConfigChange{Set: map[string]string{"cores": "4", "sockets": "1", "memory": "4096", "onboot": "1"}})
	ts := b.ok(t, ref, err)
	require.Equal(t, "qmconfig", ts.Type)
	cfg, err := b.c.VMConfig(b.ctx, vm)
	require.NoError(t, err)
	require.Equal(t, "4", cfg.Values["cores"])
	require.Equal(t, "4096", cfg.Values["memory"])
	require.Equal(t, "1", cfg.Values["onboot"])

	// Sync PUT with the current digest, then delete a key.
	require.NoError(t, b.c.SetConfigSync(b.ctx, vm, proxmox.ConfigChange{Set: map[string]string{"description": "hello"}, Digest: cfg.Digest}))
	require.NoError(t, b.c.SetConfigSync(b.ctx, vm, proxmox.ConfigChange{Delete: []string{"onboot"}}))
	cfg2, err := b.c.VMConfig(b.ctx, vm)
	require.NoError(t, err)
	require.Equal(t, "hello", cfg2.Description())
	_, set := cfg2.Get("onboot")
	require.False(t, set)
	require.NotEqual(t, cfg.Digest, cfg2.Digest)

	// A stale digest: conflict, in PUT and POST.
	err = b.c.SetConfigSync(b.ctx, vm, proxmox.ConfigChange{Set: map[string]string{"description": "x"}, Digest: cfg.Digest})
	requireClass(t, proxmox.ClassConflict, err)
	ref, err = b.c.SetConfig(b.ctx, vm, proxmox.ConfigChange{Set: map[string]string{"cores": "2"}, Digest: cfg.Digest})
	requireClass(t, proxmox.ClassConflict, b.outcome(t, ref, err))

	// A lock left behind by a dead task.
	require.NoError(t, b.sim.LeaveLock(vm.VMID, "backup"))
	_, err = b.c.SetConfig(b.ctx, vm, proxmox.ConfigChange{Set: map[string]string{"cores": "2"}})
	requireClass(t, proxmox.ClassLocked, err)
	require.Contains(t, err.Error(), "VM is locked (backup)")
	err = b.c.SetConfigSync(b.ctx, vm, proxmox.ConfigChange{Set: map[string]string{"cores": "2"}})
	requireClass(t, proxmox.ClassLocked, err)

	// Missing VM, permission, auth, ambiguous 596.
	missing := proxmox.VMRef{Node: "pve1", VMID: 555}
	_, err = b.c.SetConfig(b.ctx, missing, proxmox.ConfigChange{Set: map[string]string{"cores": "2"}})
	requireClass(t, proxmox.ClassNotFound, err)
	err = b.limited.SetConfigSync(b.ctx, template, proxmox.ConfigChange{Set: map[string]string{"description": "x"}})
	requireClass(t, proxmox.ClassPermission, err)
	err = b.badAuth.SetConfigSync(b.ctx, template, proxmox.ConfigChange{Set: map[string]string{"description": "x"}})
	requireClass(t, proxmox.ClassAuth, err)

	vm2 := b.clone(t, 102, "web2")
	b.sim.FailNext(pvesim.FailNext{Endpoint: "PUT /nodes/{node}/qemu/{vmid}/config", Status: 596, AfterApply: true})
	err = b.c.SetConfigSync(b.ctx, vm2, proxmox.ConfigChange{Set: map[string]string{"description": "applied"}})
	requireClass(t, proxmox.ClassTransient, err)
	require.True(t, proxmox.MaybeApplied(err))
	cfg, err = b.c.VMConfig(b.ctx, vm2)
	require.NoError(t, err)
	require.Equal(t, "applied", cfg.Description())
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

// requireAccepted fails unless the last request to endpoint passed pvesim's
// PVE-schema validation (it reached the handler: not a 400 rejection).
func requireAccepted(t *testing.T, sim *pvesim.Sim, endpoint string) pvesim.Request {
	t.Helper()
	reqs := sim.Requests()
	for i := len(reqs) - 1; i >= 0; i-- {
		if reqs[i].Endpoint == endpoint {
			require.False(t, reqs[i].Rejected, "%s rejected by the PVE schema: %v", endpoint, reqs[i].Errors)
			require.Empty(t, reqs[i].Errors)
			return reqs[i]
		}
	}
	t.Fatalf("no request to %s recorded", endpoint)
	return pvesim.Request{}
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

	// Graceful shutdown with forceStop.
	ref, err = b.c.Shutdown(b.ctx, vm, proxmox.ShutdownOptions{Timeout: 30 * time.Second, ForceStop: true})
	ts = b.ok(t, ref, err)
	require.Equal(t, "qmshutdown", ts.Type)
	st, err = b.c.VMStatus(b.ctx, vm)
	require.NoError(t, err)
	require.True(t, st.Stopped())

	// Shutdown and stop of a stopped VM are no-ops.
	ref, err = b.c.Shutdown(b.ctx, vm, proxmox.ShutdownOptions{})
	b.ok(t, ref, err)
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

func TestContractTaskStatusAndLog(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ref, err := b.c.Clone(b.ctx, proxmox.CloneRequest{Source: template, NewID: 101, Mode: proxmox.CloneLinked})
	require.NoError(t, err)
	st, err := b.c.TaskStatus(b.ctx, ref)
	require.NoError(t, err)
	require.True(t, st.Running)
	require.Empty(t, st.ExitStatus)
	require.NoError(t, st.Err())
	require.Equal(t, "qmclone", st.Type)
	require.Equal(t, "9000", st.ID)
	require.Equal(t, pvesim.DefaultTokenID, st.User)
	require.Equal(t, pvesim.DefaultStart.Unix(), st.StartTime.Unix())
	b.ok(t, ref, nil)

	lines, err := b.c.TaskLog(b.ctx, ref, 0, 0)
	require.NoError(t, err)
	require.NotEmpty(t, lines)
	require.Equal(t, 1, lines[0].N)
	require.Equal(t, "TASK OK", lines[len(lines)-1].Text)
	tail, err := b.c.TaskLog(b.ctx, ref, len(lines)-1, 1)
	require.NoError(t, err)
	require.Equal(t, []proxmox.TaskLogLine{lines[len(lines)-1]}, tail)

	// WARNINGS: n is success.
	b.sim.FailTask(pvesim.TaskFault{Type: "qmconfig", Count: 1, ExitStatus: "WARNINGS: 1"})
	ref, err = b.c.SetConfig(b.ctx, proxmox.VMRef{Node: "pve1", VMID: 101}, proxmox.ConfigChange{Set: map[string]string{"cores": "3"}})
	st = b.ok(t, ref, err)
	require.Equal(t, "WARNINGS: 1", st.ExitStatus)

	// A task that never ends stays running.
	b.sim.FailTask(pvesim.TaskFault{Type: "qmstart", Count: 1, Hang: true})
	ref, err = b.c.Start(b.ctx, proxmox.VMRef{Node: "pve1", VMID: 101}, proxmox.StartOptions{})
	require.NoError(t, err)
	b.sim.Advance(time.Hour)
	st, err = b.c.TaskStatus(b.ctx, ref)
	require.NoError(t, err)
	require.True(t, st.Running)

	// Unknown task: not found. Well-formed UPID of a node that exists.
	_, err = b.c.TaskStatus(b.ctx, proxmox.TaskRef{Node: "pve1", UPID: "UPID:pve1:0000FFFF:0000FFFF:6000FFFF:qmstart:101:root@pam:"})
	requireClass(t, proxmox.ClassNotFound, err)
	// Malformed: refused before sending.
	_, err = b.c.TaskStatus(b.ctx, proxmox.TaskRef{Node: "pve1", UPID: "UPID:nonsense"})
	requireClass(t, proxmox.ClassInvalid, err)

	// Node down: transient.
	require.NoError(t, b.sim.SetNodeOffline("pve1", true))
	_, err = b.c.TaskStatus(b.ctx, ref)
	requireClass(t, proxmox.ClassTransient, err)
	_, err = b.c.TaskLog(b.ctx, ref, 0, 0)
	requireClass(t, proxmox.ClassTransient, err)
}

func TestContractFirewallOptions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	vm := b.clone(t, 101, "web1")

	o, err := b.c.FirewallOptions(b.ctx, vm)
	require.NoError(t, err)
	require.Nil(t, o.Enable)

	require.NoError(t, b.c.SetFirewallOptions(b.ctx, vm, proxmox.FirewallOptions{Enable: proxmox.Bool(true), IPFilter: proxmox.Bool(true),
		MACFilter: proxmox.Bool(true), DHCP: proxmox.Bool(false), PolicyIn: "DROP", PolicyOut: "ACCEPT", LogLevelIn: "nolog"}))
	o, err = b.c.FirewallOptions(b.ctx, vm)
	require.NoError(t, err)
	require.Equal(t, proxmox.Bool(true), o.Enable)
	require.Equal(t, proxmox.Bool(true), o.IPFilter)
	require.Equal(t, proxmox.Bool(false), o.DHCP)
	require.Equal(t, "DROP", o.PolicyIn)
	require.Equal(t, "ACCEPT", o.PolicyOut)

	// enable=0 reaches PVE (go-proxmox drops it).
	require.NoError(t, b.c.SetFirewallOptions(b.ctx, vm, proxmox.FirewallOptions{Enable: proxmox.Bool(false)}))
	o, err = b.c.FirewallOptions(b.ctx, vm)
	require.NoError(t, err)
	require.Equal(t, proxmox.Bool(false), o.Enable)

	// Stale digest: conflict.
	require.NotEmpty(t, o.Digest)
	require.NoError(t, b.c.SetFirewallOptions(b.ctx, vm, proxmox.FirewallOptions{NDP: proxmox.Bool(true)}))
	err = b.c.SetFirewallOptions(b.ctx, vm, proxmox.FirewallOptions{RAdv: proxmox.Bool(true), Digest: o.Digest})
	requireClass(t, proxmox.ClassConflict, err)

	_, err = b.c.FirewallOptions(b.ctx, proxmox.VMRef{Node: "pve1", VMID: 555})
	requireClass(t, proxmox.ClassNotFound, err)
	err = b.limited.SetFirewallOptions(b.ctx, vm, proxmox.FirewallOptions{Enable: proxmox.Bool(true)})
	requireClass(t, proxmox.ClassPermission, err)
}

func TestContractIPSets(t *testing.T) {
	t.Parallel()
	b := setup(t)
	vm := b.clone(t, 101, "web1")
	const set = "ipfilter-net0"

	sets, err := b.c.IPSets(b.ctx, vm)
	require.NoError(t, err)
	require.Empty(t, sets)

	require.NoError(t, b.c.CreateIPSet(b.ctx, vm, set, "pvectl anti-spoofing"))
	sets, err = b.c.IPSets(b.ctx, vm)
	require.NoError(t, err)
	require.Len(t, sets, 1)
	require.Equal(t, set, sets[0].Name)
	require.Equal(t, "pvectl anti-spoofing", sets[0].Comment)
	requireClass(t, proxmox.ClassAlreadyExists, b.c.CreateIPSet(b.ctx, vm, set, ""))

	for _, cidr := range []string{"192.0.2.10", "2001:db8::10", "198.51.100.0/24", "2001:db8:1::/64"} {
		require.NoError(t, b.c.AddIPSetEntry(b.ctx, vm, set, proxmox.IPSetEntry{CIDR: cidr, Comment: "vm ip"}))
	}
	requireClass(t, proxmox.ClassAlreadyExists, b.c.AddIPSetEntry(b.ctx, vm, set, proxmox.IPSetEntry{CIDR: "192.0.2.10"}))
	entries, err := b.c.IPSetEntries(b.ctx, vm, set)
	require.NoError(t, err)
	var cidrs []string
	for _, e := range entries {
		cidrs = append(cidrs, e.CIDR)
	}
	require.ElementsMatch(t, []string{"192.0.2.10", "2001:db8::10", "198.51.100.0/24", "2001:db8:1::/64"}, cidrs)

	require.NoError(t, b.c.RemoveIPSetEntry(b.ctx, vm, set, "198.51.100.0/24"))
	require.NoError(t, b.c.RemoveIPSetEntry(b.ctx, vm, set, "2001:db8:1::/64"))
	require.NoError(t, b.c.RemoveIPSetEntry(b.ctx, vm, set, "2001:db8::10"))
	requireClass(t, proxmox.ClassNotFound, b.c.RemoveIPSetEntry(b.ctx, vm, set, "2001:db8::10"))
	entries, err = b.c.IPSetEntries(b.ctx, vm, set)
	require.NoError(t, err)
	require.Len(t, entries, 1)

	// Not empty without force; then force.
	requireClass(t, proxmox.ClassPrecondition, b.c.DeleteIPSet(b.ctx, vm, set, false))
	require.NoError(t, b.c.DeleteIPSet(b.ctx, vm, set, true))
	requireClass(t, proxmox.ClassNotFound, b.c.DeleteIPSet(b.ctx, vm, set, false))
	_, err = b.c.IPSetEntries(b.ctx, vm, set)
	requireClass(t, proxmox.ClassNotFound, err)
	requireClass(t, proxmox.ClassNotFound, b.c.AddIPSetEntry(b.ctx, vm, set, proxmox.IPSetEntry{CIDR: "192.0.2.10"}))

	// Empty set deletes without force.
	require.NoError(t, b.c.CreateIPSet(b.ctx, vm, "empty", ""))
	require.NoError(t, b.c.DeleteIPSet(b.ctx, vm, "empty", false))

	requireClass(t, proxmox.ClassPermission, b.limited.CreateIPSet(b.ctx, vm, "x", ""))
	requireClass(t, proxmox.ClassAuth, b.badAuth.CreateIPSet(b.ctx, vm, "x", ""))
	_, err = b.badAuth.IPSets(b.ctx, vm)
	requireClass(t, proxmox.ClassAuth, err)
	_, err = b.badAuth.IPSetEntries(b.ctx, vm, set)
	requireClass(t, proxmox.ClassAuth, err)
}

func TestContractCloudInit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	vm := b.clone(t, 101, "web1")
	// Real public keys (PVE parses each one), with '+' and '/' to encode.
	keys := []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL6j+kE1W98w6oNjS4+E3DHwbcBtPaDeVZ388oOL31ke admin@example.com",
		"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQCkItwh9VN9jnzhdUcYSE0TfxJh2mcnm2v8XPjvxvO+tPsHgZu+7QDlI1NoEARTqN/UB3jew+ynnPDMXTrfFSoPBPtaSNs6qhmc/Opu1FZU/iKdGPhqZi07+eA/rGmYCO0gk9H4YOK2jFVWDaurCSNP1EKQZo0PjirWXBwNC8e44w== user@host"}
	ci := proxmox.CloudInit{User: "admin", Password: "s3cret pass", SSHKeys: keys,
		IPConfigs:   map[int]proxmox.IPConfig{0: {IPv4: "192.0.2.10/24", GW4: "192.0.2.1", IPv6: "2001:db8::10/64", GW6: "2001:db8::1"}},
		Nameservers: []string{"192.0.2.53", "2001:db8::53"}, SearchDomain: "example.com"}
	require.NoError(t, b.c.SetCloudInit(b.ctx, vm, ci))
	cfg, err := b.c.VMConfig(b.ctx, vm)
	require.NoError(t, err)
	require.Equal(t, keys, cfg.SSHKeys())
	require.Equal(t, "admin", cfg.Values["ciuser"])
	require.Equal(t, "ip=192.0.2.10/24,gw=192.0.2.1,ip6=2001:db8::10/64,gw6=2001:db8::1", cfg.Values["ipconfig0"])
	require.Equal(t, "192.0.2.53 2001:db8::53", cfg.Values["nameserver"])
	require.Equal(t, "example.com", cfg.Values["searchdomain"])
	require.NotContains(t, ci.String(), "s3cret")

	// DHCP.
	require.NoError(t, b.c.SetCloudInit(b.ctx, vm, proxmox.CloudInit{IPConfigs: map[int]proxmox.IPConfig{0: {IPv4: "dhcp", IPv6: "auto"}}}))
	cfg, err = b.c.VMConfig(b.ctx, vm)
	require.NoError(t, err)
	require.Equal(t, "ip=dhcp,ip6=auto", cfg.Values["ipconfig0"])

	requireClass(t, proxmox.ClassNotFound, b.c.SetCloudInit(b.ctx, proxmox.VMRef{Node: "pve1", VMID: 555}, ci))
	requireClass(t, proxmox.ClassPermission, b.limited.SetCloudInit(b.ctx, vm, ci))
}

func TestContractBackupAndRestore(t *testing.T) {
	t.Parallel()
	b := setup(t)
	vm := b.clone(t, 101, "web1")

	ref, err := b.c.Backup(b.ctx, proxmox.BackupRequest{VM: vm, Storage: "local", Mode: "snapshot", Compress: "zstd", NotesTemplate: "{{guestname}}"})
	ts := b.ok(t, ref, err)
	require.Equal(t, "vzdump", ts.Type)
	require.Equal(t, "101", ts.ID)

	vols, err := b.c.StorageContent(b.ctx, "pve1", "local", proxmox.ContentFilter{Content: "backup", VMID: 101})
	require.NoError(t, err)
	require.Len(t, vols, 1)
	bk := vols[0]
	require.True(t, strings.HasPrefix(bk.VolID, "local:backup/vzdump-qemu-101-"), bk.VolID)
	require.Equal(t, "backup", bk.Content)
	require.Equal(t, 101, bk.VMID)
	require.Positive(t, bk.Size)
	require.False(t, bk.CTime.IsZero())

	all, err := b.c.StorageContent(b.ctx, "pve1", "local-lvm", proxmox.ContentFilter{})
	require.NoError(t, err)
	require.NotEmpty(t, all, "disk images of the template and the clone")

	// Restore to a new VMID, then again without force.
	ref, err = b.c.Restore(b.ctx, proxmox.RestoreRequest{VM: proxmox.VMRef{Node: "pve1", VMID: 201}, Archive: bk.VolID, Storage: "local-lvm", Unique: true})
	ts = b.ok(t, ref, err)
	require.Equal(t, "qmrestore", ts.Type)
	_, err = b.c.VMConfig(b.ctx, proxmox.VMRef{Node: "pve1", VMID: 201})
	require.NoError(t, err)
	ref, err = b.c.Restore(b.ctx, proxmox.RestoreRequest{VM: proxmox.VMRef{Node: "pve1", VMID: 201}, Archive: bk.VolID, Storage: "local-lvm"})
	requireClass(t, proxmox.ClassAlreadyExists, b.outcome(t, ref, err))
	// With force it overwrites.
	ref, err = b.c.Restore(b.ctx, proxmox.RestoreRequest{VM: proxmox.VMRef{Node: "pve1", VMID: 201}, Archive: bk.VolID, Storage: "local-lvm", Force: true})
	b.ok(t, ref, err)

	// Delete the backup.
	ref, err = b.c.DeleteVolume(b.ctx, "pve1", "local", bk.VolID)
	require.NoError(t, err)
	if !ref.IsZero() {
		st := b.ok(t, ref, nil)
		require.Equal(t, "imgdel", st.Type)
	}
	vols, err = b.c.StorageContent(b.ctx, "pve1", "local", proxmox.ContentFilter{Content: "backup", VMID: 101})
	require.NoError(t, err)
	require.Empty(t, vols)

	// Protected backups cannot be deleted.
	ref, err = b.c.Backup(b.ctx, proxmox.BackupRequest{VM: vm, Storage: "local", Protected: true, Remove: proxmox.Bool(false)})
	b.ok(t, ref, err)
	vols, err = b.c.StorageContent(b.ctx, "pve1", "local", proxmox.ContentFilter{Content: "backup", VMID: 101})
	require.NoError(t, err)
	require.Len(t, vols, 1)
	require.True(t, vols[0].Protected)
	ref, err = b.c.DeleteVolume(b.ctx, "pve1", "local", vols[0].VolID)
	requireClass(t, proxmox.ClassPrecondition, b.outcome(t, ref, err))

	// Errors.
	_, err = b.c.StorageContent(b.ctx, "pve1", "nosuch", proxmox.ContentFilter{})
	requireClass(t, proxmox.ClassStorage, err)
	ref, err = b.c.Backup(b.ctx, proxmox.BackupRequest{VM: vm, Storage: "nosuch"})
	requireClass(t, proxmox.ClassStorage, b.outcome(t, ref, err))
	ref, err = b.c.Restore(b.ctx, proxmox.RestoreRequest{VM: proxmox.VMRef{Node: "pve1", VMID: 202}, Archive: vols[0].VolID, Storage: "nosuch"})
	requireClass(t, proxmox.ClassStorage, b.outcome(t, ref, err))
	ref, err = b.c.Restore(b.ctx, proxmox.RestoreRequest{VM: proxmox.VMRef{Node: "pve1", VMID: 202}, Archive: bk.VolID, Storage: "local-lvm"})
	requireClass(t, proxmox.ClassNotFound, b.outcome(t, ref, err))
	ref, err = b.c.DeleteVolume(b.ctx, "pve1", "local", bk.VolID)
	requireClass(t, proxmox.ClassNotFound, b.outcome(t, ref, err))
	// A token without VM.Backup / Datastore.AllocateSpace cannot back up,
	// nor delete a volume.
	ref, err = b.limited.Backup(b.ctx, proxmox.BackupRequest{VM: vm, Storage: "local"})
	requireClass(t, proxmox.ClassPermission, b.outcome(t, ref, err))
	_, err = b.limited.DeleteVolume(b.ctx, "pve1", "local", vols[0].VolID)
	requireClass(t, proxmox.ClassPermission, err)
	_, err = b.badAuth.StorageContent(b.ctx, "pve1", "local", proxmox.ContentFilter{})
	requireClass(t, proxmox.ClassAuth, err)
}

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

// A full pipeline-shaped run through every mutating method, asserting at the
// end that pvesim validated (and accepted) every request the adapter sent.
func TestContractNoSchemaRejections(t *testing.T) {
	t.Parallel()
	b := setup(t)
	vm := b.clone(t, 101, "web1")
	b.must(t)(b.c.SetConfig(b.ctx, vm, proxmox.ConfigChange{Set: map[string]string{
		"cores": "4", "sockets": "1", "memory": "4096", "tags": "pvectl;svc-1", "description": "pvectl:svc-1",
		"net0":  "virtio=BC:24:11:00:01:01,bridge=vmbr0,tag=100,rate=12.5,firewall=1",
		"scsi1": "local-lvm:10,iops_rd=100,iops_wr=100,mbps_rd=50,mbps_wr=50"}}))
	b.must(t)(b.c.ResizeDisk(b.ctx, vm, "scsi0", "40G"))
	require.NoError(t, b.c.SetFirewallOptions(b.ctx, vm, proxmox.FirewallOptions{Enable: proxmox.Bool(true), IPFilter: proxmox.Bool(true), DHCP: proxmox.Bool(false), MACFilter: proxmox.Bool(true), NDP: proxmox.Bool(true), RAdv: proxmox.Bool(false), PolicyIn: "DROP", PolicyOut: "ACCEPT", LogLevelIn: "nolog", LogLevelOut: "nolog"}))
	require.NoError(t, b.c.CreateIPSet(b.ctx, vm, "ipfilter-net0", "pvectl"))
	require.NoError(t, b.c.AddIPSetEntry(b.ctx, vm, "ipfilter-net0", proxmox.IPSetEntry{CIDR: "192.0.2.10", Comment: "v4"}))
	require.NoError(t, b.c.AddIPSetEntry(b.ctx, vm, "ipfilter-net0", proxmox.IPSetEntry{CIDR: "2001:db8::/64", NoMatch: true}))
	require.NoError(t, b.c.SetCloudInit(b.ctx, vm, proxmox.CloudInit{User: "admin", Password: "pw", SSHKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL6j+kE1W98w6oNjS4+E3DHwbcBtPaDeVZ388oOL31ke a@b"},
		IPConfigs: map[int]proxmox.IPConfig{0: {IPv4: "192.0.2.10/24", GW4: "192.0.2.1"}}, Nameservers: []string{"192.0.2.53"}, SearchDomain: "example.com"}))
	b.must(t)(b.c.Start(b.ctx, vm, proxmox.StartOptions{Timeout: time.Minute}))
	b.must(t)(b.c.CreateSnapshot(b.ctx, vm, proxmox.SnapshotRequest{Name: "s1", Description: "d", VMState: false}))
	b.must(t)(b.c.DeleteSnapshot(b.ctx, vm, "s1", true))
	b.must(t)(b.c.Backup(b.ctx, proxmox.BackupRequest{VM: vm, Storage: "local", Mode: "snapshot", Compress: "zstd", Remove: proxmox.Bool(true), NotesTemplate: "{{guestname}}"}))
	_, err := b.c.RRDData(b.ctx, vm, proxmox.TimeframeDay, proxmox.CFMax)
	require.NoError(t, err)
	b.must(t)(b.c.Shutdown(b.ctx, vm, proxmox.ShutdownOptions{Timeout: 30 * time.Second, ForceStop: true}))
	b.must(t)(b.c.Stop(b.ctx, vm, proxmox.StopOptions{Timeout: 5 * time.Second, OverruleShutdown: true}))
	require.NoError(t, b.c.RemoveIPSetEntry(b.ctx, vm, "ipfilter-net0", "2001:db8::/64"))
	require.NoError(t, b.c.DeleteIPSet(b.ctx, vm, "ipfilter-net0", true))
	vols, err := b.c.StorageContent(b.ctx, "pve1", "local", proxmox.ContentFilter{Content: "backup", VMID: vm.VMID})
	require.NoError(t, err)
	require.Len(t, vols, 1)
	b.must(t)(b.c.Restore(b.ctx, proxmox.RestoreRequest{VM: proxmox.VMRef{Node: "pve1", VMID: 301}, Archive: vols[0].VolID, Storage: "local-lvm", Unique: true, Pool: ""}))
	if ref, err := b.c.DeleteVolume(b.ctx, "pve1", "local", vols[0].VolID); err == nil && !ref.IsZero() {
		b.ok(t, ref, nil)
	} else {
		require.NoError(t, err)
	}
	ref, err := b.c.Clone(b.ctx, proxmox.CloneRequest{Source: template, NewID: 102, Name: "web2", Mode: proxmox.CloneFull, Storage: "local-lvm", Format: "raw", Description: "d"})
	b.ok(t, ref, err)
	b.must(t)(b.c.Migrate(b.ctx, proxmox.MigrateRequest{VM: proxmox.VMRef{Node: "pve1", VMID: 102}, Target: "pve2", TargetStorage: "local-lvm", BWLimitKiB: 10240}))
	b.must(t)(b.c.Delete(b.ctx, proxmox.VMRef{Node: "pve2", VMID: 102}, proxmox.DeleteOptions{Purge: true, DestroyUnreferencedDisks: true}))
	b.must(t)(b.c.Delete(b.ctx, vm, proxmox.DeleteOptions{Purge: true, DestroyUnreferencedDisks: true}))

	require.NotEmpty(t, b.sim.Requests())
	require.Empty(t, b.sim.Rejected(), "requests rejected by the PVE schema: %v", fmt.Sprint(b.sim.Rejected()))
}

// The check itself works: a request PVE's schema rejects is recorded.
func TestContractRejectionsAreDetected(t *testing.T) {
	t.Parallel()
	sim, apiURL, id, secret := pvesim.StartTest(t, pvesim.DefaultCluster())
	a, err := proxmox.New(proxmox.Options{URL: apiURL, TokenID: id, TokenSecret: secret})
	require.NoError(t, err)
	_, err = a.ResizeDisk(context.Background(), template, "scsi0", "forty gigabytes")
	requireClass(t, proxmox.ClassInvalid, err)
	var pe *proxmox.Error
	require.ErrorAs(t, err, &pe)
	require.Equal(t, 400, pe.HTTPStatus)
	require.Equal(t, "Parameter verification failed.", pe.Message)
	require.Contains(t, pe.Fields, "size")
	require.Len(t, sim.Rejected(), 1)
}
