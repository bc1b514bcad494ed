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

// restoreRig is an engine on a pvesim over HTTP (manual clock at t0) whose
// product small backs up to local.
type restoreRig struct {
	*harness
	sim *pvesim.Sim
	pve proxmox.Client
}

func newRestoreRig(t *testing.T) *restoreRig {
	t.Helper()
	h := newHarness(t, "")
	cfg, err := config.Parse("pvectl.yaml", []byte(`proxmox:
  url: https://pve.example.com:8006
  token_id: pvectl@pve!t
  token_secret: s3cr3t-value
vmid_range: {min: 1000, max: 1999}
products:
  small:
    template: {vmid: 9000, node: pve1}
    network: {ipv4: 0}
    backup_quota: 2
`))
	require.NoError(t, err)
	h.e.Config = cfg
	sim, url, tokenID, secret := pvesim.StartTest(t, pvesim.DefaultCluster(), pvesim.WithManualClock(t0))
	t.Cleanup(func() { sim.RequireNoRejections(t) })
	pve, err := proxmox.New(proxmox.Options{URL: url, TokenID: tokenID, TokenSecret: secret})
	require.NoError(t, err)
	h.e.NewEnv = func(_ context.Context, e *engine.Engine) (*states.Env, error) {
		return &states.Env{Store: e.Store, Config: e.Config, PVE: pve, Now: e.Clock.Now}, nil
	}
	return &restoreRig{harness: h, sim: sim, pve: pve}
}

// ready adds VM vmid to the cluster (running, one disk) and a ready record
// for it.
func (r *restoreRig) ready(svc string, vmid int) store.VM {
	r.t.Helper()
	require.NoError(r.t, r.sim.AddVM(pvesim.VMSpec{VMID: vmid, Node: "pve1", Running: true,
		Config: map[string]string{"name": svc, "scsi0": "local-lvm:vm-" + strconv.Itoa(vmid) + "-disk-0,size=8G"}}))
	vm, created, err := r.st.VMCreate(r.ctx, store.NewVM{ServiceID: svc, Hostname: svc + ".example.test",
		Product: "small", Status: "ready", Now: r.clk.T})
	require.NoError(r.t, err)
	require.True(r.t, created)
	require.NoError(r.t, r.st.VMSetNode(r.ctx, vm.ID, vm.Status, vm.Version, "pve1", r.clk.T))
	require.NoError(r.t, r.st.VMSetVMID(r.ctx, vm.ID, vmid, r.clk.T))
	return r.get(vm.ID)
}

// vzdumpNow backs vmid up outside pvectl, lets it finish and returns the
// archive's volume id.
func (r *restoreRig) vzdumpNow(vmid int) string {
	r.t.Helper()
	task, err := r.pve.Backup(r.ctx, proxmox.BackupRequest{VM: proxmox.VMRef{Node: "pve1", VMID: vmid}, Storage: "local"})
	require.NoError(r.t, err)
	r.sim.Advance(time.Minute)
	r.clk.T = r.clk.T.Add(time.Minute)
	st, ok := r.sim.Task(task.UPID)
	require.True(r.t, ok)
	require.Equal(r.t, "OK", st.ExitStatus)
	return r.backupOf(vmid)
}

// backupOf is the newest archive of vmid on local.
func (r *restoreRig) backupOf(vmid int) string {
	r.t.Helper()
	var volid string
	for _, v := range r.sim.StorageContent("pve1", "local") {
		if v.Content == "backup" && v.VMID == vmid {
			volid = v.VolID
		}
	}
	require.NotEmpty(r.t, volid)
	return volid
}

// backup restore: from ready only; VOLID must be one of the VM's archives
// in PVE's storage content (another VM's archive, a made-up one or a VM
// without backups is an ErrInvalid naming what there is); refused while a
// backup of the VM runs; asks first (a no changes nothing); an accepted
// request records the volume, moves the VM to restore and is audited; a
// second one while it runs is refused.
func TestRestoreBackupRequests(t *testing.T) {
	t.Parallel()
	r := newRestoreRig(t)
	vm := r.ready("r1", 1000)
	r.ready("r2", 1001)
	r.ready("none1", 1002)
	own := r.vzdumpNow(1000)
	other := r.vzdumpNow(1001)
	never := engine.Ask{Confirm: func(string) error { panic("must not ask") }}

	invalid := func(err error, want ...string) {
		t.Helper()
		var inv *engine.ErrInvalid
		require.True(t, errors.As(err, &inv), "want ErrInvalid, got %v", err)
		require.Equal(t, "VOLID", inv.Field)
		for _, w := range want {
			require.Contains(t, inv.Rule, w)
		}
	}
	_, err := r.e.RestoreBackup(r.ctx, "r1", " ", never)
	invalid(err, "VOLID is required")
	_, err = r.e.RestoreBackup(r.ctx, "r1", other, never)
	invalid(err, `VOLID "`+other+`" is not a backup of VM r1 (VMID 1000)`, "its backups: "+own)
	_, err = r.e.RestoreBackup(r.ctx, "r1", "local:backup/vzdump-qemu-1000-2020_01_01-00_00_00.vma.zst", never)
	invalid(err, "its backups: "+own)
	_, err = r.e.RestoreBackup(r.ctx, "none1", own, never)
	invalid(err, "it has no backups on local")
	_, err = r.e.RestoreBackup(r.ctx, "nosuch", own, never)
	require.ErrorIs(t, err, engine.ErrNotFound)

	// Not ready: refused, naming the allowed state.
	busy := r.ready("busy1", 1003)
	require.NoError(t, r.st.VMSetStatus(r.ctx, busy.ID, string(states.ChangePackage), t0))
	_, err = r.e.RestoreBackup(r.ctx, "busy1", own, never)
	var ws *engine.ErrWrongState
	require.ErrorAs(t, err, &ws)
	require.Equal(t, []states.State{states.Ready}, ws.Allowed)
	require.Contains(t, err.Error(), "VM busy1 is in state change_package (allowed: ready)")

	// The confirmation names the VM, the volume and its time; no changes nothing.
	var asked string
	no := errors.New("not confirmed")
	_, err = r.e.RestoreBackup(r.ctx, "r1", own, engine.Ask{Confirm: func(q string) error { asked = q; return no }})
	require.ErrorIs(t, err, no)
	require.Contains(t, asked, "Stop VM r1, delete its snapshots and overwrite its disks with backup "+own+" (from 20")
	require.Equal(t, string(states.Ready), r.get(vm.ID).Status)

	res, err := r.e.RestoreBackup(r.ctx, "r1.example.test", own, engine.Ask{})
	require.NoError(t, err)
	require.True(t, res.Changed)
	require.Equal(t, string(states.Restore), res.VM.Status)
	require.Equal(t, own, res.VM.RestoreVolid)
	require.Equal(t, "backup restore", res.Audit.What)
	run := r.lastRun(vm.ID)
	require.Equal(t, store.RequestTask, run.Task)
	require.Equal(t, "backup restore", run.Lines[0].Step)
	require.Contains(t, run.Lines[0].Detail, "backup "+own)

	_, err = r.e.RestoreBackup(r.ctx, "r1", own, never)
	require.ErrorAs(t, err, &ws)
	require.Contains(t, err.Error(), "VM r1 is in state restore (allowed: ready)")
}

// A backup of the VM running in PVE refuses a restore, naming it.
func TestRestoreRefusedWhileBackupRuns(t *testing.T) {
	t.Parallel()
	r := newRestoreRig(t)
	r.ready("r1", 1000)
	own := r.vzdumpNow(1000)
	_, err := r.e.BackupNow(r.ctx, "r1", "", false)
	require.NoError(t, err)
	r.clk.T = r.clk.T.Add(time.Second)
	r.sim.Advance(time.Second)
	_, out := r.pass() // starts the vzdump
	require.Contains(t, out, "vzdump")
	_, err = r.e.RestoreBackup(r.ctx, "r1", own, engine.Ask{})
	var ws *engine.ErrWrongState
	require.ErrorAs(t, err, &ws, out)
	require.True(t, strings.Contains(err.Error(), "backup #1 is running in PVE; a restore is refused until it ended"), err.Error())
}
