package pvesim_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
)

// Backups and restore as pve-manager (VZDump.pm), qemu-server and
// pve-storage do them; see handlers_vzdump.go for the sources.

func contentPath(volid string) string { return "/nodes/pve1/storage/local/content/" + volid }

func TestVzdumpLogRunningAndStopped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *pvesim.Cluster) { c.Durations.Tasks["vzdump"] = pvesim.Duration(45 * time.Second) })
	addVM(t, e.sim, 101, "name", "web1", "scsi1", "local-lvm:vm-101-disk-1,backup=0,size=4G")
	require.NoError(t, e.sim.StartOutOfBand(101))
	addVM(t, e.sim, 102)

	up := e.upid(e.do("POST", "/nodes/pve1/vzdump", form("vmid", "101", "storage", "local", "compress", "zstd",
		"mode", "snapshot", "notes-template", "{{guestname}}\\n{{vmid}}", "remove", "0")))
	vm, _ := e.sim.VM(101)
	require.Equal(t, "backup", vm.Lock, "vzdump holds lock: backup while it runs")
	st := e.waitTask(up)
	require.Equal(t, "OK", st["exitstatus"])
	vm, _ = e.sim.VM(101)
	require.Empty(t, vm.Lock)
	require.Equal(t, "running", vm.Status)
	lg := e.taskLog(up)
	start := e.sim.Tasks()[len(e.sim.Tasks())-1].Start.UTC()
	name := "vzdump-qemu-101-" + start.Format("2006_01_02-15_04_05") + ".vma.zst"
	require.Equal(t, []string{
		"INFO: starting new backup job: vzdump 101 --compress zstd --mode snapshot --node pve1 --notes-template '{{guestname}}\\n{{vmid}}' --remove 0 --storage local",
		"INFO: Starting Backup of VM 101 (qemu)",
		"INFO: Backup started at " + start.Format("2006-01-02 15:04:05"),
		"INFO: status = running",
		"INFO: VM Name: web1",
		"INFO: include disk 'scsi0' 'local-lvm:vm-101-disk-0' 8G",
		"INFO: exclude disk 'scsi1' 'local-lvm:vm-101-disk-1' (backup=no)",
		"INFO: backup mode: snapshot",
		"INFO: ionice priority: 7",
		"INFO: creating vzdump archive '/var/lib/vz/dump/" + name + "'",
		"INFO: archive file size: 1.00GB",
		"INFO: adding notes to backup",
		"INFO: Finished Backup of VM 101 (00:00:45)",
		"INFO: Backup finished at " + start.Add(45*time.Second).Format("2006-01-02 15:04:05"),
		"INFO: Backup job finished successfully",
		"TASK OK",
	}, lg)

	// the listing: integers, notes' first line only, protected absent
	r := e.do("GET", "/nodes/pve1/storage/local/content", form("content", "backup", "vmid", "101"))
	require.Equal(t, 200, r.code, r.status)
	list := jsonArr(t, r.body["data"], "content")
	require.Len(t, list, 1)
	bk := jsonObj(t, list[0], "backup")
	require.Equal(t, "local:backup/"+name, jsonStr(t, bk["volid"], "volid"))
	require.Equal(t, "vma.zst", bk["format"])
	require.Equal(t, "qemu", bk["subtype"])
	require.Equal(t, "web1", bk["notes"], "the list shows the first line of the notes")
	require.NotContains(t, bk, "protected")
	require.Equal(t, start.Unix(), jsonInt(t, bk["ctime"], "ctime"))
	require.Equal(t, int64(101), jsonInt(t, bk["vmid"], "vmid"))
	require.Positive(t, jsonInt(t, bk["size"], "size"))
	r = e.do("GET", contentPath("local:backup/"+name), nil)
	require.Equal(t, "web1\n101", r.body["data"].(map[string]any)["notes"], "GET of the volume has all the notes")

	// a stopped guest is backed up in stop mode: started paused, stopped after
	up = e.upid(e.do("POST", "/nodes/pve1/vzdump", form("vmid", "102", "storage", "local", "mode", "snapshot", "remove", "0")))
	require.Equal(t, "OK", e.waitTask(up)["exitstatus"])
	lg = e.taskLog(up)
	require.Equal(t, []string{"INFO: status = stopped", "INFO: backup mode: stop", "INFO: ionice priority: 7",
		"INFO: VM Name: vm", "INFO: include disk 'scsi0' 'local-lvm:vm-102-disk-0' 8G"}, lg[3:8])
	require.Regexp(t, `^INFO: creating vzdump archive '/var/lib/vz/dump/vzdump-qemu-102-[0-9_-]+\.vma'$`, lg[8])
	require.Equal(t, "INFO: starting kvm to execute backup task", lg[9])
	require.Equal(t, "INFO: stopping kvm after backup task", lg[10])
	require.Equal(t, "INFO: archive file size: 4.00GB", lg[11], "uncompressed")
	vm, _ = e.sim.VM(102)
	require.Equal(t, "stopped", vm.Status)
	e.sim.RequireNoRejections(t)
}

func TestVzdumpFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *pvesim.Cluster) {
		for i := range c.Nodes {
			c.Nodes[i].Storages = append(c.Nodes[i].Storages, pvesim.StorageSpec{Name: "tiny", Type: "dir", Content: []string{"backup"}, Total: 100 << 20})
		}
	})
	addVM(t, e.sim, 101)

	// storage errors come from the worker (PVE::VZDump->new)
	for _, tc := range []struct{ storage, exit string }{
		{"local-lvm", "could not get storage information for 'local-lvm': can't use storage 'local-lvm' for backups - wrong content type"},
		{"nosuch", "could not activate storage 'nosuch': storage 'nosuch' does not exist could not get storage information for 'nosuch': storage 'nosuch' does not exist"},
	} {
		up := e.upid(e.do("POST", "/nodes/pve1/vzdump", form("vmid", "101", "storage", tc.storage)))
		require.Equal(t, tc.exit, e.waitTask(up)["exitstatus"])
		require.Equal(t, []string{"TASK ERROR: " + tc.exit}, e.taskLog(up))
	}

	// storage full: the compressor reports it, the job fails, nothing is kept
	up := e.upid(e.do("POST", "/nodes/pve1/vzdump", form("vmid", "101", "storage", "tiny", "compress", "zstd")))
	require.Equal(t, "job errors", e.waitTask(up)["exitstatus"])
	lg := e.taskLog(up)
	require.Contains(t, lg, "zstd: error 70 : Write error : cannot write block : No space left on device ")
	require.Contains(t, lg, "ERROR: Backup of VM 101 failed - vma_queue_write: write error - Broken pipe")
	require.Equal(t, []string{"INFO: Backup job finished with errors", "TASK ERROR: job errors"}, lg[len(lg)-2:])
	require.Empty(t, e.sim.StorageContent("pve1", "tiny"))
	vm, _ := e.sim.VM(101)
	require.Empty(t, vm.Lock)
	up = e.upid(e.do("POST", "/nodes/pve1/vzdump", form("vmid", "101", "storage", "tiny")))
	require.Equal(t, "job errors", e.waitTask(up)["exitstatus"])
	require.Contains(t, e.taskLog(up), "ERROR: Backup of VM 101 failed - vma_queue_write: write error - No space left on device")

	// a guest that does not exist fails visibly; one on another node is skipped silently
	up = e.upid(e.do("POST", "/nodes/pve1/vzdump", form("vmid", "999", "storage", "local")))
	require.Equal(t, "job errors", e.waitTask(up)["exitstatus"])
	require.Contains(t, e.taskLog(up), "ERROR: Backup of VM 999 failed - unable to find VM '999'")
	r := e.do("POST", "/nodes/pve2/vzdump", form("vmid", "101", "storage", "local"))
	require.Equal(t, 200, r.code)
	require.Equal(t, "OK", r.body["data"], "API2/VZDump.pm: silent exit if specified VMs run on other nodes")
	r = e.do("POST", "/nodes/pve1/vzdump", form("storage", "local"))
	require.Equal(t, 400, r.code)
	require.Equal(t, "property is missing", r.body["errors"].(map[string]any)["vmid"])
	e.sim.RequireNoRejections(t)
}

func TestVzdumpRetention(t *testing.T) {
	t.Parallel()
	one := 1
	e := newEnv(t, func(c *pvesim.Cluster) {
		for i := range c.Nodes {
			for j := range c.Nodes[i].Storages {
				if c.Nodes[i].Storages[j].Name == "local" {
					c.Nodes[i].Storages[j].PruneBackups = "keep-last=2"
					c.Nodes[i].Storages[j].MaxProtectedBackups = &one
				}
			}
		}
	})
	addVM(t, e.sim, 101)
	backup := func(kv ...string) (string, []string) {
		up := e.upid(e.do("POST", "/nodes/pve1/vzdump", form(append([]string{"vmid", "101", "storage", "local"}, kv...)...)))
		exit := e.waitTask(up)["exitstatus"].(string)
		return exit, e.taskLog(up)
	}
	// remove=0 (pvectl's choice) fails at the limit instead of pruning
	for i := 0; i < 2; i++ {
		exit, _ := backup("remove", "0")
		require.Equal(t, "OK", exit)
	}
	exit, lg := backup("remove", "0")
	require.Equal(t, "job errors", exit)
	require.Contains(t, lg, "ERROR: Backup of VM 101 failed - There is a max backup limit of 2 enforced by the target storage or the vzdump parameters. Either increase the limit or delete old backups.")
	require.Len(t, backups(e.sim, 101), 2)

	// protected backups do not count; the protected count is limited
	exit, lg = backup("remove", "0", "protected", "1")
	require.Equal(t, "OK", exit, "%v", lg)
	require.Contains(t, lg, "INFO: marking backup as protected")
	exit, lg = backup("remove", "0", "protected", "1")
	require.Equal(t, "job errors", exit)
	require.Contains(t, lg, "ERROR: Backup of VM 101 failed - The number of protected backups per guest is limited to 1 on storage 'local'")

	// PVE's default remove=1 prunes the oldest unprotected backup
	old := backups(e.sim, 101)
	exit, lg = backup()
	require.Equal(t, "OK", exit)
	require.Contains(t, lg, "INFO: prune older backups with retention: keep-last=2")
	require.Contains(t, lg, "INFO: removing backup '"+old[0]+"'")
	require.Contains(t, lg, "INFO: pruned 1 backup(s) not covered by keep-retention policy")
	require.Len(t, backups(e.sim, 101), 3, "two unprotected and the protected one")
	require.NotContains(t, backups(e.sim, 101), old[0])
}

func TestStorageContentUpdateAndDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *pvesim.Cluster) {
		c.Tokens = append(c.Tokens, pvesim.TokenSpec{ID: "bk@pve!t", Secret: "s", Grants: []pvesim.Grant{
			{Path: "/vms/101", Privs: []string{"VM.Backup"}},
			{Path: "/storage/local", Privs: []string{"Datastore.AllocateSpace", "Datastore.Audit"}}}})
	})
	addVM(t, e.sim, 101)
	addVM(t, e.sim, 102)
	up := e.upid(e.do("POST", "/nodes/pve1/vzdump", form("vmid", "101", "storage", "local")))
	require.Equal(t, "OK", e.waitTask(up)["exitstatus"])
	volid := backups(e.sim, 101)[0]

	// PUT notes / protected: synchronous null
	r := e.do("PUT", contentPath(volid), form("notes", "before upgrade", "protected", "1"))
	require.Equal(t, 200, r.code, r.status)
	require.Nil(t, r.body["data"])
	r = e.do("GET", "/nodes/pve1/storage/local/content", form("content", "backup"))
	bk := jsonObj(t, jsonArr(t, r.body["data"], "list")[0], "backup")
	require.Equal(t, "before upgrade", bk["notes"])
	require.Equal(t, int64(1), jsonInt(t, bk["protected"], "protected"))

	// a protected backup cannot be deleted: imgdel fails
	up = e.upid(e.do("DELETE", contentPath(volid), nil))
	require.Contains(t, up, ":imgdel:101@local:")
	_, name, _ := strings.Cut(volid, ":")
	require.Equal(t, "cannot remove protected volume '"+name+"' on 'local'", e.waitTask(up)["exitstatus"])
	require.Len(t, backups(e.sim, 101), 1)

	// a token with VM.Backup + AllocateSpace may protect at most 5 per guest
	for i := 0; i < 5; i++ {
		e.sim.Advance(time.Minute)
		up := e.upid(e.do("POST", "/nodes/pve1/vzdump", form("vmid", "101", "storage", "local")))
		require.Equal(t, "OK", e.waitTask(up)["exitstatus"])
	}
	all := backups(e.sim, 101)
	bkTok := tokenHeader("bk@pve!t", "s")
	for _, v := range all[1:5] {
		r := e.doAuth(bkTok, "PUT", contentPath(v), form("protected", "1"))
		require.Equal(t, 200, r.code, r.status)
	}
	r = e.doAuth(bkTok, "PUT", contentPath(all[5]), form("protected", "1"))
	require.Equal(t, "500 The number of protected backups per guest is limited to 5 on storage 'local'", r.status)
	// unprotect, then delete
	r = e.do("PUT", contentPath(volid), form("protected", "0", "notes", ""))
	require.Equal(t, 200, r.code, r.status)
	r = e.do("DELETE", contentPath(volid), form("delay", "5"))
	require.Equal(t, 200, r.code, r.status)
	require.NotContains(t, backups(e.sim, 101), volid)

	// images have no attributes; another storage's volume id is refused
	r = e.do("PUT", "/nodes/pve1/storage/local-lvm/content/local-lvm:vm-101-disk-0", form("protected", "1"))
	require.Equal(t, "500 only backups support attribute 'protected'", r.status)
	r = e.do("PUT", "/nodes/pve1/storage/local-lvm/content/"+url.PathEscape(all[1]), form("notes", "x"))
	require.Equal(t, 400, r.code)
	require.Equal(t, "storage ID mismatch (local != local-lvm)", r.body["errors"].(map[string]any)["volume"])
	e.sim.RequireNoRejections(t)
}

func TestRestoreAsPVE(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	addVM(t, e.sim, 101, "cores", "2", "memory", "2048", "net0", "virtio=BC:24:11:00:00:01,bridge=vmbr0", "vmgenid", "11111111-2222-3333-4444-555555555555")
	r := e.do("PUT", "/nodes/pve1/qemu/101/firewall/options", form("enable", "1"))
	require.Equal(t, 200, r.code, r.status)
	r = e.do("POST", "/nodes/pve1/qemu/101/firewall/ipset", form("name", "ipfilter-net0"))
	require.Equal(t, 200, r.code, r.status)
	r = e.do("POST", "/nodes/pve1/qemu/101/firewall/ipset/ipfilter-net0", form("cidr", "10.0.0.5"))
	require.Equal(t, 200, r.code, r.status)
	up := e.upid(e.do("POST", "/nodes/pve1/vzdump", form("vmid", "101", "storage", "local")))
	require.Equal(t, "OK", e.waitTask(up)["exitstatus"])
	archive := backups(e.sim, 101)[0]

	// the VM changes after the backup: more cores, a second disk, a
	// snapshot, no firewall
	r = e.do("PUT", "/nodes/pve1/qemu/101/config", form("cores", "8"))
	require.Equal(t, 200, r.code, r.status)
	up = e.upid(e.do("POST", "/nodes/pve1/qemu/101/config", form("scsi1", "local-lvm:4")))
	require.Equal(t, "OK", e.waitTask(up)["exitstatus"])
	up = e.upid(e.do("POST", "/nodes/pve1/qemu/101/snapshot", form("snapname", "s1")))
	require.Equal(t, "OK", e.waitTask(up)["exitstatus"])
	r = e.do("PUT", "/nodes/pve1/qemu/101/firewall/options", form("enable", "0"))
	require.Equal(t, 200, r.code, r.status)

	// refused without force; refused (in the task) while running
	r = e.do("POST", "/nodes/pve1/qemu", form("vmid", "101", "archive", archive))
	require.Equal(t, "500 unable to restore VM 101 - VM 101 already exists on node 'pve1'", r.status)
	require.NoError(t, e.sim.StartOutOfBand(101))
	up = e.upid(e.do("POST", "/nodes/pve1/qemu", form("vmid", "101", "archive", archive, "force", "1")))
	require.Contains(t, up, ":qmrestore:101:")
	vm, _ := e.sim.VM(101)
	require.Equal(t, "create", vm.Lock, "create_and_lock_config locks before the worker")
	require.Equal(t, "unable to restore VM 101 - vm is running", e.waitTask(up)["exitstatus"])
	vm, _ = e.sim.VM(101)
	require.Empty(t, vm.Lock)
	require.Equal(t, "8", vm.Config["cores"], "nothing restored")
	up = e.upid(e.do("POST", "/nodes/pve1/qemu/101/status/stop", nil))
	require.Equal(t, "OK", e.waitTask(up)["exitstatus"])

	// a lock refuses synchronously
	require.NoError(t, e.sim.LeaveLock(101, "backup"))
	r = e.do("POST", "/nodes/pve1/qemu", form("vmid", "101", "archive", archive, "force", "1"))
	require.Equal(t, "500 unable to restore VM 101 - VM is locked (backup)", r.status)
	require.NoError(t, e.sim.LeaveLock(101, ""))

	// force over the stopped VM: the archive's config, disks, firewall
	up = e.upid(e.do("POST", "/nodes/pve1/qemu", form("vmid", "101", "archive", archive, "force", "1")))
	require.Equal(t, "OK", e.waitTask(up)["exitstatus"])
	vm, _ = e.sim.VM(101)
	require.Equal(t, "2", vm.Config["cores"])
	require.Equal(t, "2048", vm.Config["memory"])
	require.Equal(t, "virtio=BC:24:11:00:00:01,bridge=vmbr0", vm.Config["net0"], "unique=0 keeps the MAC")
	require.NotEqual(t, "11111111-2222-3333-4444-555555555555", vm.Config["vmgenid"], "a restore always gets a new vmgenid")
	require.Contains(t, vm.Config["scsi0"], ",size=8G")
	require.Equal(t, "local-lvm:vm-101-disk-1", vm.Config["unused0"], "a disk the archive does not hold is kept as unused")
	require.NotContains(t, vm.Config, "scsi1")
	require.Empty(t, vm.Snapshots, "after the restore we have no snapshots anymore")
	require.Equal(t, "1", vm.Firewall["enable"])
	require.Equal(t, []string{"10.0.0.5"}, vm.IPSets["ipfilter-net0"])
	require.Contains(t, e.taskLog(up), "VM 101 add unreferenced volume 'local-lvm:vm-101-disk-1' as 'unused0' to config")

	// unique=1 to a new VMID: new MAC
	up = e.upid(e.do("POST", "/nodes/pve1/qemu", form("vmid", "201", "archive", archive, "unique", "1")))
	require.Equal(t, "OK", e.waitTask(up)["exitstatus"])
	vm, _ = e.sim.VM(201)
	require.NotContains(t, vm.Config["net0"], "BC:24:11:00:00:01")

	// the archive must exist and its storage be active on the node
	r = e.do("POST", "/nodes/pve1/qemu", form("vmid", "202", "archive", "local:backup/vzdump-qemu-101-2020_01_01-00_00_00.vma.zst"))
	require.Equal(t, "500 can't find file 'local:backup/vzdump-qemu-101-2020_01_01-00_00_00.vma.zst'", r.status)
	r = e.do("POST", "/nodes/pve1/qemu", form("vmid", "202", "archive", "nfs:backup/vzdump-qemu-101-2020_01_01-00_00_00.vma.zst"))
	require.Equal(t, "500 storage 'nfs' does not exist", r.status)
	_, ok := e.sim.VM(202)
	require.False(t, ok)

	// a failed restore to a new VMID leaves its (empty) config behind
	up = e.upid(e.do("POST", "/nodes/pve1/qemu", form("vmid", "203", "archive", archive, "storage", "local")))
	require.Equal(t, "storage 'local' does not support vm images", e.waitTask(up)["exitstatus"])
	vm, ok = e.sim.VM(203)
	require.True(t, ok, "VM 203 state is NOT cleaned up")
	require.Empty(t, vm.Config)

	// every step is a task of its type in the node's task list
	r = e.do("GET", "/nodes/pve1/tasks", form("limit", "100"))
	types := map[string]bool{}
	for _, x := range jsonArr(t, r.body["data"], "tasks") {
		types[x.(map[string]any)["type"].(string)] = true
	}
	require.True(t, types["vzdump"] && types["qmrestore"])
	e.sim.RequireNoRejections(t)
}

func TestBackupTaskFaultWithLog(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	addVM(t, e.sim, 101)
	e.sim.FailTask(pvesim.TaskFault{Type: "vzdump", VMID: 101, ExitStatus: "job errors", Count: 1,
		Log: []string{"ERROR: Backup of VM 101 failed - vma_queue_write: write error - No space left on device", "INFO: Backup job finished with errors"}})
	up := e.upid(e.do("POST", "/nodes/pve1/vzdump", form("vmid", "101", "storage", "local")))
	require.Equal(t, "job errors", e.waitTask(up)["exitstatus"])
	lg := e.taskLog(up)
	require.Equal(t, []string{"ERROR: Backup of VM 101 failed - vma_queue_write: write error - No space left on device",
		"INFO: Backup job finished with errors", "TASK ERROR: job errors"}, lg[len(lg)-3:])
	vm, _ := e.sim.VM(101)
	require.Empty(t, vm.Lock, "the worker's lock goes with it")
	require.Empty(t, backups(e.sim, 101))
}
