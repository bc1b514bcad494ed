package pvesim_test

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
)

// Tests for places where the simulator used to be kinder than PVE.

func addVM(t *testing.T, sim *pvesim.Sim, vmid int, extra ...string) {
	t.Helper()
	cfg := map[string]string{"name": "vm", "cores": "1", "memory": "512",
		"scsi0": "local-lvm:vm-" + strconv.Itoa(vmid) + "-disk-0,size=8G"}
	for i := 0; i+1 < len(extra); i += 2 {
		cfg[extra[i]] = extra[i+1]
	}
	require.NoError(t, sim.AddVM(pvesim.VMSpec{VMID: vmid, Node: "pve1", Config: cfg}))
}

func (e *env) taskLog(upid string) []string {
	e.t.Helper()
	r := e.do("GET", "/nodes/pve1/tasks/"+url.PathEscape(upid)+"/log", form("limit", "500"))
	require.Equal(e.t, 200, r.code, r.status)
	var out []string
	for _, l := range r.body["data"].([]any) {
		out = append(out, l.(map[string]any)["t"].(string))
	}
	return out
}

func backups(sim *pvesim.Sim, vmid int) []string {
	var out []string
	for _, v := range sim.StorageContent("pve1", "local") {
		if v.Content == "backup" && v.VMID == vmid {
			out = append(out, v.VolID)
		}
	}
	return out
}

func tokenHeader(id, secret string) string { return "PVEAPIToken=" + id + "=" + secret }

// vzdump: real PVE checks Datastore.AllocateSpace on the target storage in
// the API call (403) and VM.Backup on each guest in the worker (task error,
// pve-manager PVE::VZDump::exec_backup).
func TestVzdumpPermissions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *pvesim.Cluster) {
		c.Tokens = append(c.Tokens,
			pvesim.TokenSpec{ID: "nobackup@pve!t", Secret: "s1", Grants: []pvesim.Grant{
				{Path: "/vms/101", Privs: []string{"VM.Audit"}},
				{Path: "/storage/local", Privs: []string{"Datastore.AllocateSpace"}}}},
			pvesim.TokenSpec{ID: "nostore@pve!t", Secret: "s2", Grants: []pvesim.Grant{
				{Path: "/vms/101", Privs: []string{"VM.Backup"}}}},
			pvesim.TokenSpec{ID: "backup@pve!t", Secret: "s3", Grants: []pvesim.Grant{
				{Path: "/vms/101", Privs: []string{"VM.Backup"}},
				{Path: "/storage/local", Privs: []string{"Datastore.AllocateSpace"}}}},
		)
	})
	addVM(t, e.sim, 101)
	addVM(t, e.sim, 102)

	r := e.doAuth(tokenHeader("nostore@pve!t", "s2"), "POST", "/nodes/pve1/vzdump", form("vmid", "101", "storage", "local"))
	require.Equal(t, "403 Permission check failed (/storage/local, Datastore.AllocateSpace)", r.status)

	up := e.upid(e.doAuth(tokenHeader("nobackup@pve!t", "s1"), "POST", "/nodes/pve1/vzdump", form("vmid", "101", "storage", "local")))
	st := e.waitTask(up)
	require.Equal(t, "Permission check failed (/vms/101, VM.Backup)", st["exitstatus"])
	require.Empty(t, backups(e.sim, 101))
	vm, _ := e.sim.VM(101)
	require.Empty(t, vm.Lock)

	// one guest without VM.Backup fails the whole job before any backup
	up = e.upid(e.doAuth(tokenHeader("backup@pve!t", "s3"), "POST", "/nodes/pve1/vzdump", form("vmid", "101,102", "storage", "local")))
	require.Equal(t, "Permission check failed (/vms/102, VM.Backup)", e.waitTask(up)["exitstatus"])
	require.Empty(t, backups(e.sim, 101))

	up = e.upid(e.doAuth(tokenHeader("backup@pve!t", "s3"), "POST", "/nodes/pve1/vzdump", form("vmid", "101", "storage", "local")))
	require.Equal(t, "OK", e.waitTask(up)["exitstatus"])
	require.Len(t, backups(e.sim, 101), 1)

	// with all=1 guests without VM.Backup are skipped silently
	up = e.upid(e.doAuth(tokenHeader("backup@pve!t", "s3"), "POST", "/nodes/pve1/vzdump", form("all", "1", "storage", "local")))
	require.Equal(t, "OK", e.waitTask(up)["exitstatus"])
	require.Len(t, backups(e.sim, 101), 2)
	require.Empty(t, backups(e.sim, 102))
	e.sim.RequireNoRejections(t)
}

// POST /nodes/{node}/qemu: vmid is a body parameter; qemu-server checks
// VM.Allocate on /vms/<vmid> itself and raises a bare "Permission check
// failed" when it is missing.
func TestCreateRestorePermissionPath(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *pvesim.Cluster) {
		c.Tokens = append(c.Tokens,
			pvesim.TokenSpec{ID: "r201@pve!t", Secret: "s1", Grants: []pvesim.Grant{
				{Path: "/vms/201", Privs: []string{"VM.Allocate", "VM.Audit"}},
				{Path: "/storage/local-lvm", Privs: []string{"Datastore.AllocateSpace"}}}},
			pvesim.TokenSpec{ID: "r201b@pve!t", Secret: "s2", Grants: []pvesim.Grant{
				{Path: "/vms/201", Privs: []string{"VM.Allocate"}},
				{Path: "/vms/101", Privs: []string{"VM.Backup"}},
				{Path: "/storage", Privs: []string{"Datastore.AllocateSpace"}}}},
		)
	})
	addVM(t, e.sim, 101)
	e.waitTask(e.upid(e.do("POST", "/nodes/pve1/vzdump", form("vmid", "101", "storage", "local"))))
	archive := backups(e.sim, 101)[0]
	limited := tokenHeader("r201@pve!t", "s1")

	// create: a grant on /vms/201 allows 201 and nothing else
	up := e.upid(e.doAuth(limited, "POST", "/nodes/pve1/qemu", form("vmid", "201", "name", "x", "scsi0", "local-lvm:4")))
	require.Equal(t, "OK", e.waitTask(up)["exitstatus"])
	r := e.doAuth(limited, "POST", "/nodes/pve1/qemu", form("vmid", "202", "name", "x"))
	require.Equal(t, "403 Permission check failed", r.status)
	// new disks need Datastore.AllocateSpace on their storage
	r = e.doAuth(limited, "POST", "/nodes/pve1/qemu", form("vmid", "201", "scsi0", "local:4"))
	require.Equal(t, "403 Permission check failed (/storage/local, Datastore.AllocateSpace)", r.status)
	up = e.upid(e.do("DELETE", "/nodes/pve1/qemu/201", nil))
	require.Equal(t, "OK", e.waitTask(up)["exitstatus"])

	// restore of another guest's backup: Datastore.AllocateSpace on the
	// archive storage and VM.Backup on the owner are needed too
	r = e.doAuth(limited, "POST", "/nodes/pve1/qemu", form("vmid", "201", "archive", archive))
	require.Equal(t, "403 Permission check failed (/storage/local, Datastore.AllocateSpace)", r.status)
	up = e.upid(e.doAuth(tokenHeader("r201b@pve!t", "s2"), "POST", "/nodes/pve1/qemu", form("vmid", "201", "archive", archive, "storage", "local-lvm")))
	require.Contains(t, up, ":qmrestore:201:")
	require.Equal(t, "OK", e.waitTask(up)["exitstatus"])
	r = e.doAuth(tokenHeader("r201b@pve!t", "s2"), "POST", "/nodes/pve1/qemu", form("vmid", "202", "archive", archive))
	require.Equal(t, "403 Permission check failed", r.status)
	e.sim.RequireNoRejections(t)
}

// vzdump takes each guest's config lock when it reaches the guest
// (set_lock, which fails on a locked guest): that guest fails with
// "VM is locked (…)" and the job ends with "job errors".
func TestVzdumpHonoursConfigLock(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *pvesim.Cluster) {
		c.Durations.Tasks["vzdump"] = pvesim.Duration(10 * time.Second)
		c.Durations.Tasks["qmsnapshot"] = pvesim.Duration(30 * time.Second)
	})
	addVM(t, e.sim, 101)
	addVM(t, e.sim, 102)

	up := e.upid(e.do("POST", "/nodes/pve1/vzdump", form("vmid", "102,101", "storage", "local", "compress", "zstd")))
	require.Contains(t, up, ":vzdump::")
	vm, _ := e.sim.VM(101)
	require.Equal(t, "backup", vm.Lock, "the first guest is locked when the worker starts")
	vm, _ = e.sim.VM(102)
	require.Empty(t, vm.Lock, "the second guest is not locked before vzdump reaches it")

	// a snapshot of 102 locks it before the job gets there
	snap := e.upid(e.do("POST", "/nodes/pve1/qemu/102/snapshot", form("snapname", "s1")))
	e.sim.Advance(5 * time.Second)
	vm, _ = e.sim.VM(101)
	require.Empty(t, vm.Lock, "101 is done at half time")
	require.Len(t, backups(e.sim, 101), 1)
	vm, _ = e.sim.VM(102)
	require.Equal(t, "snapshot", vm.Lock)

	st := e.waitTask(up)
	require.Equal(t, "job errors", st["exitstatus"])
	lg := e.taskLog(up)
	require.Contains(t, lg, "ERROR: Backup of VM 102 failed - VM is locked (snapshot)")
	require.Contains(t, lg, "INFO: Finished Backup of VM 101 (00:00:05)")
	require.Equal(t, "TASK ERROR: job errors", lg[len(lg)-1])
	require.Empty(t, backups(e.sim, 102))
	require.Equal(t, "OK", e.waitTask(snap)["exitstatus"])

	// a lock left behind fails a single-guest job too
	require.NoError(t, e.sim.LeaveLock(101, "clone"))
	up = e.upid(e.do("POST", "/nodes/pve1/vzdump", form("vmid", "101", "storage", "local")))
	require.Equal(t, "job errors", e.waitTask(up)["exitstatus"])
	require.Contains(t, e.taskLog(up), "ERROR: Backup of VM 101 failed - VM is locked (clone)")
	vm, _ = e.sim.VM(101)
	require.Equal(t, "clone", vm.Lock, "vzdump does not touch a lock it does not own")
	e.sim.RequireNoRejections(t)
}

func (e *env) config(vmid string) map[string]any {
	e.t.Helper()
	r := e.do("GET", "/nodes/pve1/qemu/"+vmid+"/config", nil)
	require.Equal(e.t, 200, r.code, r.status)
	return r.body["data"].(map[string]any)
}

// POST config: the qmconfig worker writes the change under the config
// lock; a digest that no longer matches when the worker runs fails the
// task with the checksum message (qemu-server $load_and_check_config).
func TestAsyncConfigAppliedByWorker(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *pvesim.Cluster) {
		c.Durations.Tasks["qmconfig"] = pvesim.Duration(8 * time.Second)
	})
	addVM(t, e.sim, 101)
	digest := e.config("101")["digest"].(string)

	up := e.upid(e.do("POST", "/nodes/pve1/qemu/101/config", form("cores", "4", "digest", digest)))
	require.Equal(t, json.Number("1"), e.config("101")["cores"], "not applied before the worker ran")
	require.Equal(t, digest, e.config("101")["digest"])
	// a second update with the same (soon stale) digest queues behind the
	// first worker's flock
	up2 := e.upid(e.do("POST", "/nodes/pve1/qemu/101/config", form("memory", "1024", "digest", digest)))
	require.Contains(t, e.taskLog(up2), "trying to acquire lock...")
	e.sim.Advance(8 * time.Second)
	require.Equal(t, "OK", e.taskStatus(up)["exitstatus"])
	cfg := e.config("101")
	require.Equal(t, json.Number("4"), cfg["cores"])
	require.NotEqual(t, digest, cfg["digest"])
	st := e.waitTask(up2)
	require.Equal(t, "checksum mismatch (file change by other user?)", st["exitstatus"])
	require.Equal(t, "512", e.config("101")["memory"])

	// a digest already stale at request time is a synchronous error
	r := e.do("POST", "/nodes/pve1/qemu/101/config", form("memory", "1024", "digest", digest))
	require.Equal(t, "500 checksum mismatch (file change by other user?)", r.status)

	// a lock taken after the request fails the worker
	up = e.upid(e.do("POST", "/nodes/pve1/qemu/101/config", form("memory", "1024")))
	require.NoError(t, e.sim.LeaveLock(101, "backup"))
	require.Equal(t, "VM is locked (backup)", e.waitTask(up)["exitstatus"])
	require.Equal(t, "512", e.config("101")["memory"])
	require.NoError(t, e.sim.LeaveLock(101, ""))

	// storage allocation happens in the worker too
	up = e.upid(e.do("POST", "/nodes/pve1/qemu/101/config", form("scsi1", "local-lvm:100000")))
	require.Regexp(t, `^not enough free space \(\d+ < \d+\)$`, e.waitTask(up)["exitstatus"])
	require.NotContains(t, e.config("101"), "scsi1")

	// background_delay: null when the worker finished in time, else the
	// API dies with "failed to update VM N: <status>"
	r = e.do("POST", "/nodes/pve1/qemu/101/config", form("memory", "2048", "background_delay", "30"))
	require.JSONEq(t, `{"data":null}`, r.raw)
	require.Equal(t, "2048", e.config("101")["memory"])
	r = e.do("POST", "/nodes/pve1/qemu/101/config", form("scsi1", "local-lvm:100000", "background_delay", "30"))
	require.Regexp(t, `^500 failed to update VM 101: not enough free space \(\d+ < \d+\)$`, r.status)
	e.sim.RequireNoRejections(t)
}

// start: "already running" is decided by the qmstart worker when it runs,
// so of two queued starts the second fails.
func TestQueuedStartsSecondFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	addVM(t, e.sim, 101)
	up1 := e.upid(e.do("POST", "/nodes/pve1/qemu/101/status/start", nil))
	up2 := e.upid(e.do("POST", "/nodes/pve1/qemu/101/status/start", nil))
	require.Equal(t, "OK", e.waitTask(up1)["exitstatus"])
	require.Equal(t, "VM 101 already running", e.waitTask(up2)["exitstatus"])
	require.Equal(t, "TASK ERROR: VM 101 already running", e.taskLog(up2)[len(e.taskLog(up2))-1])
	vm, _ := e.sim.VM(101)
	require.Equal(t, "running", vm.Status)

	// stop then start queued: the start sees the stopped VM and succeeds
	stop := e.upid(e.do("POST", "/nodes/pve1/qemu/101/status/stop", nil))
	start := e.upid(e.do("POST", "/nodes/pve1/qemu/101/status/start", nil))
	require.Equal(t, "OK", e.waitTask(stop)["exitstatus"])
	require.Equal(t, "OK", e.waitTask(start)["exitstatus"])

	// a lock that appears before the worker runs fails it
	stop = e.upid(e.do("POST", "/nodes/pve1/qemu/101/status/stop", nil))
	require.NoError(t, e.sim.LeaveLock(101, "backup"))
	require.Equal(t, "VM is locked (backup)", e.waitTask(stop)["exitstatus"])
	e.sim.RequireNoRejections(t)
}

// resize: the worker reads the disk size when it runs; two queued "+1G"
// grow the disk by 2G, and a size made smaller meanwhile is shrinking.
func TestResizeReadsSizeInWorker(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	addVM(t, e.sim, 101)
	up1 := e.upid(e.do("PUT", "/nodes/pve1/qemu/101/resize", form("disk", "scsi0", "size", "+1G")))
	up2 := e.upid(e.do("PUT", "/nodes/pve1/qemu/101/resize", form("disk", "scsi0", "size", "+1G")))
	require.Equal(t, "OK", e.waitTask(up1)["exitstatus"])
	require.Equal(t, "OK", e.waitTask(up2)["exitstatus"])
	require.Equal(t, "local-lvm:vm-101-disk-0,size=10G", e.config("101")["scsi0"])

	up1 = e.upid(e.do("PUT", "/nodes/pve1/qemu/101/resize", form("disk", "scsi0", "size", "12G")))
	up2 = e.upid(e.do("PUT", "/nodes/pve1/qemu/101/resize", form("disk", "scsi0", "size", "11G")))
	require.Equal(t, "OK", e.waitTask(up1)["exitstatus"])
	require.Equal(t, "shrinking disks is not supported", e.waitTask(up2)["exitstatus"])
	require.Equal(t, "local-lvm:vm-101-disk-0,size=12G", e.config("101")["scsi0"])
	e.sim.RequireNoRejections(t)
}

// A volume kept as unusedN attached again under a drive key: PVE writes
// its size into the drive (create_disks) and drops the unusedN entry when
// it writes the config (write_vm_config: "remove 'unusedX' settings if we
// re-add a volume"); a volume that does not exist is refused.
func TestReattachUnusedVolume(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	addVM(t, e.sim, 101)
	r := e.do("PUT", "/nodes/pve1/qemu/101/config", form("scsi1", "local-lvm:2,serial=data"))
	require.Equal(t, 200, r.code, r.status)
	volid, _, _ := strings.Cut(e.config("101")["scsi1"].(string), ",")
	r = e.do("PUT", "/nodes/pve1/qemu/101/config", form("delete", "scsi1"))
	require.Equal(t, 200, r.code, r.status)
	require.Equal(t, volid, e.config("101")["unused0"])

	r = e.do("PUT", "/nodes/pve1/qemu/101/config", form("scsi2", volid+",serial=data"))
	require.Equal(t, 200, r.code, r.status)
	cfg := e.config("101")
	require.Equal(t, volid+",serial=data,size=2G", cfg["scsi2"])
	require.NotContains(t, cfg, "unused0")

	r = e.do("PUT", "/nodes/pve1/qemu/101/config", form("scsi3", "local-lvm:vm-101-disk-77"))
	require.Contains(t, r.status, "volume local-lvm:vm-101-disk-77 does not exist")
	require.NotContains(t, e.config("101"), "scsi3")
	e.sim.RequireNoRejections(t)
}

// rrddata traffic follows the VM's run history and its NIC's rate limit:
// the cluster's traffic section gives every VM its rates; net0's rate
// (MB/s) caps them from the moment it is set; a stop leaves a gap, and the
// history before a restart is kept (PVE's RRD files keep it).
func TestTrafficRunHistoryAndRateCap(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *pvesim.Cluster) { c.Traffic = &pvesim.TrafficSpec{In: 4 << 20, Out: 1 << 19} })
	net0 := "virtio=BC:24:11:00:00:01,bridge=vmbr0"
	require.NoError(t, e.sim.AddVM(pvesim.VMSpec{VMID: 101, Node: "pve1", Running: true,
		Config: map[string]string{"name": "vm", "net0": net0}})) // started an hour ago
	t0 := e.sim.Clock().Now()
	in, out := e.sim.TrafficGenerated(101, t0.Add(-time.Hour), t0)
	require.Equal(t, float64(4<<20)*3600, in)
	require.Equal(t, float64(1<<19)*3600, out)

	r := e.do("PUT", "/nodes/pve1/qemu/101/config", form("net0", net0+",rate=1"))
	require.Equal(t, 200, r.code, r.status)
	e.sim.Advance(time.Hour)
	in, out = e.sim.TrafficGenerated(101, t0, t0.Add(time.Hour))
	require.Equal(t, float64(1<<20)*3600, in, "capped at 1 MB/s")
	require.Equal(t, float64(1<<19)*3600, out, "below the cap")

	e.waitTask(e.upid(e.do("POST", "/nodes/pve1/qemu/101/status/stop", nil)))
	stopped := e.sim.Clock().Now()
	e.sim.Advance(30 * time.Minute)
	e.waitTask(e.upid(e.do("POST", "/nodes/pve1/qemu/101/status/start", nil)))
	e.sim.Advance(time.Hour)
	in, _ = e.sim.TrafficGenerated(101, t0.Add(-time.Hour), t0)
	require.Equal(t, float64(4<<20)*3600, in, "the history before the restart is kept")
	in, _ = e.sim.TrafficGenerated(101, stopped, stopped.Add(30*time.Minute))
	require.Zero(t, in, "nothing while stopped")
	in, _ = e.sim.TrafficGenerated(101, stopped.Add(32*time.Minute), stopped.Add(92*time.Minute))
	require.Equal(t, float64(1<<20)*3600, in, "running again, still capped")
	e.sim.RequireNoRejections(t)
}
