package engine_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pvectl/pvectl/config"
	"github.com/pvectl/pvectl/engine"
	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

// backupRig is an engine on a pvesim over HTTP (manual clock at t0) whose
// config has products with backups on (small: quota 2) and off (none).
type backupRig struct {
	*harness
	sim *pvesim.Sim
	pve proxmox.Client
}

const backupProducts = `proxmox:
  url: https://pve.example.com:8006
  token_id: pvectl@pve!t
  token_secret: s3cr3t-value
vmid_range: {min: 1000, max: 1999}
products:
  small:
    template: {vmid: 9000, node: pve1}
    network: {ipv4: 0}
    backup_quota: 2
  none:
    template: {vmid: 9000, node: pve1}
    network: {ipv4: 0}
`

func newBackupRig(t *testing.T, tasks string, pipes ...*states.Pipeline) *backupRig {
	t.Helper()
	h := newHarness(t, "", pipes...)
	yaml := backupProducts
	if tasks != "" {
		yaml += "tasks:\n" + tasks
	}
	cfg, err := config.Parse("pvectl.yaml", []byte(yaml))
	require.NoError(t, err)
	h.e.Config = cfg
	sim, url, tokenID, secret := pvesim.StartTest(t, pvesim.DefaultCluster(), pvesim.WithManualClock(t0))
	t.Cleanup(func() { sim.RequireNoRejections(t) })
	pve, err := proxmox.New(proxmox.Options{URL: url, TokenID: tokenID, TokenSecret: secret})
	require.NoError(t, err)
	h.e.NewEnv = func(_ context.Context, e *engine.Engine) (*states.Env, error) {
		return &states.Env{Store: e.Store, Config: e.Config, PVE: pve, Now: e.Clock.Now}, nil
	}
	return &backupRig{harness: h, sim: sim, pve: pve}
}

// ready adds VM vmid to the cluster (running, one disk) and a ready record
// for it with product.
func (r *backupRig) ready(svc string, vmid int, product string) store.VM {
	r.t.Helper()
	require.NoError(r.t, r.sim.AddVM(pvesim.VMSpec{VMID: vmid, Node: "pve1", Running: true,
		Config: map[string]string{"name": svc, "scsi0": "local-lvm:vm-" + strconv.Itoa(vmid) + "-disk-0,size=8G"}}))
	vm, created, err := r.st.VMCreate(r.ctx, store.NewVM{ServiceID: svc, Hostname: svc + ".example.test",
		Product: product, Status: "ready", Now: r.clk.T})
	require.NoError(r.t, err)
	require.True(r.t, created)
	require.NoError(r.t, r.st.VMSetNode(r.ctx, vm.ID, vm.Status, vm.Version, "pve1", r.clk.T))
	require.NoError(r.t, r.st.VMSetVMID(r.ctx, vm.ID, vmid, r.clk.T))
	return r.get(vm.ID)
}

// tick moves both clocks by d and runs one process_vms pass.
func (r *backupRig) tick(d time.Duration) string {
	r.t.Helper()
	r.clk.T = r.clk.T.Add(d)
	r.sim.Advance(d)
	_, out := r.pass()
	return out
}

// tasksOf returns the simulator's tasks of a type.
func (r *backupRig) tasksOf(typ string) []pvesim.TaskState {
	var out []pvesim.TaskState
	for _, t := range r.sim.Tasks() {
		if t.Type == typ {
			out = append(out, t)
		}
	}
	return out
}

func (r *backupRig) rows(vm store.VM) []store.Backup {
	r.t.Helper()
	rows, err := r.st.BackupsOf(r.ctx, vm.ID)
	require.NoError(r.t, err)
	return rows
}

// vzdumpNow makes a backup of vmid outside pvectl and lets it finish.
func (r *backupRig) vzdumpNow(vmid int) {
	r.t.Helper()
	task, err := r.pve.Backup(r.ctx, proxmox.BackupRequest{VM: proxmox.VMRef{Node: "pve1", VMID: vmid}, Storage: "local"})
	require.NoError(r.t, err)
	r.sim.Advance(time.Minute)
	r.clk.T = r.clk.T.Add(time.Minute)
	st, ok := r.sim.Task(task.UPID)
	require.True(r.t, ok)
	require.Equal(r.t, "OK", st.ExitStatus)
}

// backup now is refused (ErrInvalid, nothing written) for a product with
// quota 0, a VM without a VMID, a VM being terminated, and a bad note; a
// repeat while one is queued changes nothing; the request is audited.
func TestBackupNowRefusals(t *testing.T) {
	t.Parallel()
	r := newBackupRig(t, "")
	bk := r.ready("bk1", 1000, "small")
	off := r.ready("off1", 1001, "none")

	invalid := func(err error, want string) {
		t.Helper()
		var inv *engine.ErrInvalid
		require.True(t, errors.As(err, &inv), "want ErrInvalid, got %v", err)
		require.Contains(t, inv.Rule, want)
	}
	_, err := r.e.BackupNow(r.ctx, "off1", "", false)
	invalid(err, "backups are off for product none (backup_quota: 0)")
	_, err = r.e.BackupNow(r.ctx, "bk1", "two\nlines", false)
	invalid(err, "one line")
	_, err = r.e.BackupNow(r.ctx, "bk1", strings.Repeat("é", engine.BackupNoteMax+1), false)
	invalid(err, "at most 200")
	_, err = r.e.BackupNow(r.ctx, "nosuch", "", false)
	require.ErrorIs(t, err, engine.ErrNotFound)

	fresh, _, err := r.st.VMCreate(r.ctx, store.NewVM{ServiceID: "new1", Hostname: "new1.example.test", Product: "small", Status: "creation", Now: t0})
	require.NoError(t, err)
	_, err = r.e.BackupNow(r.ctx, "new1", "", false)
	invalid(err, "has no VMID")

	term := r.ready("term1", 1002, "small")
	require.NoError(t, r.st.VMSetStatus(r.ctx, term.ID, "terminate_stopped", t0))
	_, err = r.e.BackupNow(r.ctx, "term1", "", false)
	invalid(err, "is terminate_stopped")
	for _, vm := range []store.VM{off, fresh, term} {
		require.Empty(t, r.rows(vm))
	}

	res, err := r.e.BackupNow(r.ctx, "bk1.example.test", strings.Repeat("é", engine.BackupNoteMax), true)
	require.NoError(t, err)
	require.True(t, res.Changed)
	require.Equal(t, []string{"VM bk1: backup queued; the next tick starts it"}, res.Notes)
	require.Equal(t, "backup now", res.Audit.What)
	require.Contains(t, res.Audit.Detail, "protected")
	res, err = r.e.BackupNow(r.ctx, "bk1", "again", false)
	require.NoError(t, err)
	require.False(t, res.Changed)
	require.Contains(t, res.Notes[0], "a backup is already queued")
	rows := r.rows(bk)
	require.Len(t, rows, 1)
	require.True(t, rows[0].Protected)
	require.Equal(t, store.BackupStateQueued, rows[0].State)
	run := r.lastRun(bk.ID)
	require.Equal(t, store.RequestTask, run.Task)
	require.Equal(t, "backup now", run.Lines[0].Step)
	require.Empty(t, r.sim.Requests(), "a request never talks to PVE")
}

// A manual backup end to end: the pass starts the vzdump (snapshot mode,
// storage and compression from the config, notes with pvectl's marker and
// the note, protected, no PVE pruning) and records its UPID; backup_status
// records the archive, its size and the run line; a pass with nothing to
// start talks to no one.
func TestBackupStartAndStatus(t *testing.T) {
	t.Parallel()
	r := newBackupRig(t, "")
	vm := r.ready("bk1", 1000, "small")
	_, err := r.e.BackupNow(r.ctx, "bk1", "before upgrade", true)
	require.NoError(t, err)

	out := r.tick(20 * time.Second)
	require.Contains(t, out, "bk1  Backup  ready  backup started: UPID:pve1:")
	rows := r.rows(vm)
	require.Equal(t, store.BackupStateRunning, rows[0].State)
	require.NotEmpty(t, rows[0].UPID)
	require.Equal(t, "pve1", rows[0].Node)
	require.Equal(t, "local", rows[0].Storage)
	var posted pvesim.Request
	for _, q := range r.sim.Requests() {
		if q.Endpoint == "POST /nodes/{node}/vzdump" {
			posted = q
		}
	}
	require.Equal(t, "snapshot", posted.Params["mode"])
	require.Equal(t, "zstd", posted.Params["compress"])
	require.Equal(t, "local", posted.Params["storage"])
	require.Equal(t, "0", posted.Params["remove"])
	require.Equal(t, "1", posted.Params["protected"])
	require.Contains(t, posted.Params["notes-template"], "pvectl service=bk1 backup=")
	require.Contains(t, posted.Params["notes-template"], "before upgrade")

	// Still running: backup_status records nothing and prints nothing.
	r.out.Reset()
	rep, err := r.e.BackupStatus(r.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, rep.Running)
	require.Empty(t, r.out.String())

	r.sim.Advance(time.Minute)
	r.clk.T = r.clk.T.Add(time.Minute)
	r.out.Reset()
	require.NoError(t, r.e.RunTask(r.ctx, engine.BackupStatusTask()))
	require.Contains(t, r.out.String(), "bk1  Backup  ready  backup OK: local:backup/vzdump-qemu-1000-")
	require.Contains(t, r.out.String(), "backup_status: 1 ended (1 OK, 0 failed), 0 running")
	rows = r.rows(vm)
	require.Equal(t, store.BackupStateOK, rows[0].State)
	require.True(t, strings.HasPrefix(rows[0].VolID, "local:backup/vzdump-qemu-1000-"), rows[0].VolID)
	require.Positive(t, rows[0].Size)
	require.False(t, rows[0].EndedAt.IsZero())
	run := r.lastRun(vm.ID)
	require.Equal(t, "backup_status", run.Task)
	require.Contains(t, run.Lines[0].Result, "backup OK: "+rows[0].VolID)

	l, err := r.e.BackupList(r.ctx, "bk1")
	require.NoError(t, err)
	require.Len(t, l.Backups, 1)
	b := l.Backups[0]
	require.Equal(t, rows[0].VolID, b.VolID)
	require.Equal(t, engine.MadeByPvectl, b.MadeBy)
	require.Equal(t, "before upgrade", b.Note)
	require.True(t, b.Protected)
	require.Equal(t, 0, l.Counted, "a protected archive does not count")

	n := len(r.sim.Requests())
	r.tick(20 * time.Second)
	require.Len(t, r.sim.Requests(), n, "nothing queued: the pass asks PVE nothing")
}

// Interrupted between the vzdump call and the write of its UPID: the next
// pass finds the task in PVE's task list (not in the baseline) and records
// it; no second vzdump is sent. Interrupted before the call: the next pass
// sends exactly one.
func TestBackupStartLookBeforeAct(t *testing.T) {
	t.Parallel()
	r := newBackupRig(t, "")
	vm := r.ready("bk1", 1000, "small")
	r.vzdumpNow(1000) // an older vzdump of the VM, in the baseline
	b, _, err := r.st.BackupQueue(r.ctx, store.BackupQueued{VMID: vm.ID, Kind: store.BackupManual, Now: r.clk.T})
	require.NoError(t, err)

	// The intent as the hook writes it, then the call, then the "crash".
	base := `{"since":` + strconv.FormatInt(r.tasksOf("vzdump")[0].Start.Unix(), 10) + `,"known":["` + r.tasksOf("vzdump")[0].UPID + `"]}`
	require.NoError(t, r.st.BackupStartIntent(r.ctx, b.ID, "pve1", "local", base, r.clk.T))
	task, err := r.pve.Backup(r.ctx, proxmox.BackupRequest{VM: proxmox.VMRef{Node: "pve1", VMID: 1000}, Storage: "local"})
	require.NoError(t, err)

	out := r.tick(5 * time.Second)
	require.Contains(t, out, "found in PVE's task list after an interruption")
	got, err := r.st.BackupGet(r.ctx, b.ID)
	require.NoError(t, err)
	require.Equal(t, task.UPID, got.UPID)
	require.Len(t, r.tasksOf("vzdump"), 2, "no second vzdump")
	for range 3 {
		r.tick(20 * time.Second)
	}
	require.Len(t, r.tasksOf("vzdump"), 2)

	// Before the call: the intent only. One vzdump is sent, once.
	_, err = r.e.BackupStatus(r.ctx)
	require.NoError(t, err)
	c, _, err := r.st.BackupQueue(r.ctx, store.BackupQueued{VMID: vm.ID, Kind: store.BackupManual, Now: r.clk.T})
	require.NoError(t, err)
	require.NoError(t, r.st.BackupStartIntent(r.ctx, c.ID, "pve1", "local", "", r.clk.T))
	out = r.tick(20 * time.Second)
	require.Contains(t, out, "backup started: UPID:")
	require.NotContains(t, out, "interruption")
	require.Len(t, r.tasksOf("vzdump"), 3)
	r.tick(20 * time.Second)
	require.Len(t, r.tasksOf("vzdump"), 3)
}

// Interrupted between the rotation's intent and the write of the imgdel
// UPID, with the DELETE sent: the next pass adopts (or sees the result of)
// that deletion; no other volume is deleted, and the vzdump starts only
// after the deletion ended.
func TestBackupRotationLookBeforeAct(t *testing.T) {
	t.Parallel()
	r := newBackupRig(t, "")
	vm := r.ready("bk1", 1000, "small")
	r.vzdumpNow(1000)
	r.vzdumpNow(1000)
	vols := r.sim.StorageContent("pve1", "local")
	require.Len(t, vols, 2)
	oldest := vols[0].VolID
	for _, v := range vols {
		if v.VolID < oldest {
			oldest = v.VolID
		}
	}
	b, _, err := r.st.BackupQueue(r.ctx, store.BackupQueued{VMID: vm.ID, Kind: store.BackupManual, Now: r.clk.T})
	require.NoError(t, err)
	require.NoError(t, r.st.BackupRotateIntent(r.ctx, b.ID, oldest, r.clk.T))
	_, err = r.pve.DeleteVolume(r.ctx, "pve1", "local", oldest)
	require.NoError(t, err)

	r.tick(time.Second)
	for range 4 {
		r.tick(20 * time.Second)
	}
	require.Len(t, r.tasksOf("imgdel"), 1, "the deletion is not sent twice")
	left := r.sim.StorageContent("pve1", "local")
	var ids []string
	for _, v := range left {
		ids = append(ids, v.VolID)
	}
	require.NotContains(t, ids, oldest)
	require.Len(t, left, 2, "the newer archive stays; the new backup is added")
	del, dump := r.tasksOf("imgdel")[0], r.tasksOf("vzdump")
	last := dump[len(dump)-1]
	require.False(t, last.Start.Before(del.End), "the vzdump starts after the deletion ended")
}

// A VM whose backup is running waits (a waiting line, no step); the backup
// of a VM in a pipeline waits for the pipeline to end.
func TestBackupAndStepsExclude(t *testing.T) {
	t.Parallel()
	c := newCalls()
	pipe := states.MustPipeline("test", states.Creation, []states.Step{
		{From: states.ChangePackage, To: states.Ready, Label: "Finish", Run: c.wrap(done)},
	})
	r := newBackupRig(t, "", pipe)
	vm := r.ready("bk1", 1000, "small")
	_, err := r.e.BackupNow(r.ctx, "bk1", "", false)
	require.NoError(t, err)
	r.tick(time.Second)
	require.Equal(t, store.BackupStateRunning, r.rows(vm)[0].State)

	require.NoError(t, r.st.VMSetStatus(r.ctx, vm.ID, "change_package", r.clk.T))
	out := r.tick(5 * time.Second)
	require.Contains(t, out, "bk1  Finish  change_package  waiting (backup running: UPID UPID:pve1:")
	require.Equal(t, 0, c.of("bk1"))

	r.sim.Advance(time.Minute)
	_, err = r.e.BackupStatus(r.ctx)
	require.NoError(t, err)
	// A backup queued now waits while the VM is in its pipeline …
	_, err = r.e.BackupNow(r.ctx, "bk1", "", false)
	require.NoError(t, err)
	out = r.tick(5 * time.Second)
	require.Equal(t, 1, c.of("bk1"))
	require.NotContains(t, out, "backup started")
	require.Equal(t, "ready", r.get(vm.ID).Status)
	// … and starts once it is ready.
	out = r.tick(5 * time.Second)
	require.Contains(t, out, "backup started")
}

// heavy_per_node caps vzdumps per node with the pipelines' heavy tasks.
func TestBackupHeavyPerNode(t *testing.T) {
	t.Parallel()
	r := newBackupRig(t, "  process_vms: {heavy_per_node: 1}\n")
	a := r.ready("a1", 1000, "small")
	b := r.ready("b1", 1001, "small")
	for _, svc := range []string{"a1", "b1"} {
		_, err := r.e.BackupNow(r.ctx, svc, "", false)
		require.NoError(t, err)
	}
	r.tick(time.Second)
	require.Equal(t, store.BackupStateRunning, r.rows(a)[0].State)
	require.Equal(t, store.BackupStateQueued, r.rows(b)[0].State)
	require.Len(t, r.tasksOf("vzdump"), 1)
	r.sim.Advance(time.Minute)
	_, err := r.e.BackupStatus(r.ctx)
	require.NoError(t, err)
	r.tick(time.Second)
	require.Equal(t, store.BackupStateRunning, r.rows(b)[0].State)
}

// A failed vzdump is recorded with the task's error line, in the row and in
// the VM's log.
func TestBackupFailedTaskErrorLine(t *testing.T) {
	t.Parallel()
	r := newBackupRig(t, "")
	vm := r.ready("bk1", 1000, "small")
	require.NoError(t, r.sim.LeaveLock(1000, "snapshot"))
	_, err := r.e.BackupNow(r.ctx, "bk1", "", false)
	require.NoError(t, err)
	r.tick(time.Second)
	r.sim.Advance(time.Minute)
	r.out.Reset()
	rep, err := r.e.BackupStatus(r.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, rep.Failed)
	row := r.rows(vm)[0]
	require.Equal(t, store.BackupStateFailed, row.State)
	require.Equal(t, "Backup of VM 1000 failed - VM is locked (snapshot)", row.Error)
	require.Contains(t, r.out.String(), "bk1  Backup  ready  backup failed: Backup of VM 1000 failed - VM is locked (snapshot)")
}

func TestBackupStatusIsAStandardTask(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	task, ok := h.e.LookupTask("backup_status")
	require.True(t, ok)
	require.Equal(t, 5*time.Minute, h.e.Interval(task))
	// Nothing running: it connects to nothing.
	rep, err := h.e.BackupStatus(h.ctx)
	require.NoError(t, err)
	require.Equal(t, "no backup running", rep.Message)
}
