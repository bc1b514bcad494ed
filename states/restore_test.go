package states_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

// vmRef is where the record says the VM lives.
func vmRef(vm store.VM) proxmox.VMRef { return proxmox.VMRef{Node: vm.Node, VMID: vm.VMID} }

// backupNow backs the VM up through PVE (vzdump to local), ticking until
// the task ended OK, and returns the archive's volume id.
func (r *rig) backupNow(vm store.VM) string {
	r.t.Helper()
	task, err := r.pve.Backup(r.ctx, proxmox.BackupRequest{VM: vmRef(vm), Storage: "local", Mode: "snapshot"})
	require.NoError(r.t, err)
	for range 10 {
		r.tick(20 * time.Second)
		if ts, ok := r.sim.Task(task.UPID); ok && ts.Status == "stopped" {
			require.Equal(r.t, "OK", ts.ExitStatus, ts.Log)
			break
		}
	}
	var volid string
	for _, v := range r.sim.StorageContent(vm.Node, "local") {
		if v.Content == "backup" && v.VMID == vm.VMID {
			volid = v.VolID // sorted: the newest is last
		}
	}
	require.NotEmpty(r.t, volid, "no backup of VM %d on local", vm.VMID)
	return volid
}

// restore queues a restore of volid over the VM as the request API
// records it (ready → restore, restore_volid set).
func (r *rig) restore(vm store.VM, volid string) {
	r.t.Helper()
	_, err := r.st.VMRequestWith(r.ctx, vm.ID, []string{string(states.Ready)}, string(states.Restore), "",
		store.RequestOpts{RestoreVolid: volid}, r.clk.Now())
	require.NoError(r.t, err)
}

func (r *rig) snapshot(vm store.VM, name string) {
	r.t.Helper()
	_, err := r.pve.CreateSnapshot(r.ctx, vmRef(vm), proxmox.SnapshotRequest{Name: name})
	require.NoError(r.t, err)
	r.tick(20 * time.Second)
	st, ok := r.sim.VM(vm.VMID)
	require.True(r.t, ok)
	require.Contains(r.t, st.Snapshots, name)
}

// diskSize is the size= property of a disk's config value.
func diskSize(v string) string {
	for _, p := range strings.Split(v, ",") {
		if s, ok := strings.CutPrefix(p, "size="); ok {
			return s
		}
	}
	return ""
}

// A restore stops the VM, deletes its snapshots, restores the archive over
// it (one qmrestore, force=1, MAC kept) and re-applies the VM's current
// product through the change-package steps: CPU and RAM back to the
// product's, a disk smaller in the archive grown to the product's, a disk
// larger in the archive than the product wants never shrunk, an additional
// disk created or removed as the product says, the IP set as the record.
// The run ends with the "backup restored" event and restore_volid cleared.
func TestRestoreReappliesProduct(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name            string
		backedUp, now   string // product at the backup, product at the restore
		cores, memory   string
		scsi0           string
		additional      bool
		skipDiskMessage string
	}{
		{name: "product grew since the backup", backedUp: "small", now: "big", cores: "4", memory: "4096", scsi0: "40G", additional: true},
		{name: "product shrank since the backup", backedUp: "big", now: "small", cores: "1", memory: "1024", scsi0: "40G",
			skipDiskMessage: "disks never shrink"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, false)
			vm := r.deployed("r1", tc.backedUp)
			mac := r.get(vm.ID).MAC
			require.NotEmpty(t, mac)
			volid := r.backupNow(vm)
			r.request(vm, states.ChangePackage, tc.now)
			vm = r.until(vm.ID, states.Ready, 40)
			r.snapshot(vm, "before")
			r.snapshot(vm, "later")
			since := r.clk.Now()
			var additionalBefore string // the VM's additional disk's volume before the restore
			if st, ok := r.sim.VM(vm.VMID); ok {
				for k, v := range st.Config {
					if strings.Contains(v, "pvectl-additional") && !strings.HasPrefix(k, "unused") {
						additionalBefore, _, _ = strings.Cut(v, ",")
					}
				}
			}

			r.restore(vm, volid)
			out := r.run(vm.ID, states.Ready, 60, 20*time.Second)
			got := r.get(vm.ID)
			require.Equal(t, string(states.Ready), got.Status, "%s\n%s", got.LastError, out)
			require.Empty(t, got.RestoreVolid, "cleared at ready")
			require.Equal(t, 1, r.tasksOf(vm.VMID, "qmrestore", since), out)
			require.Equal(t, 2, r.tasksOf(vm.VMID, "qmdelsnapshot", since), out)
			require.Contains(t, out, "Stop VM  restore → restore_stopped  success")
			require.Contains(t, out, "deleting snapshot ")
			require.Contains(t, out, "Delete snapshots  restore_stopped → restore_snapshots_removed  success")
			require.Contains(t, out, "Restore backup  restore_snapshots_removed → change_package  success")
			require.Contains(t, out, "event: backup restored — r1.example.test from "+volid)
			require.NotContains(t, out, "event: upgraded")
			if tc.skipDiskMessage != "" {
				require.Contains(t, out, tc.skipDiskMessage)
			}

			st, ok := r.sim.VM(vm.VMID)
			require.True(t, ok)
			require.Equal(t, "running", st.Status)
			require.Empty(t, st.Snapshots)
			cfg := st.Config
			require.Equal(t, tc.cores, cfg["cores"])
			require.Equal(t, tc.memory, cfg["memory"])
			require.Equal(t, tc.scsi0, diskSize(cfg["scsi0"]), cfg["scsi0"])
			hasAdditional := slices.ContainsFunc([]string{"scsi1", "scsi2"}, func(k string) bool { return strings.Contains(cfg[k], "pvectl-additional") })
			require.Equal(t, tc.additional, hasAdditional, cfg)
			// No disk leaked: no unusedN entry, every volume of the VM in a
			// config key; an additional disk the archive lacked is the VM's
			// own, attached again (its data kept), not a new empty one.
			referenced := map[string]bool{}
			for k, v := range cfg {
				require.False(t, strings.HasPrefix(k, "unused"), "leaked disk %s: %v", k, cfg)
				volid, _, _ := strings.Cut(v, ",")
				referenced[volid] = true
			}
			for _, v := range r.sim.StorageContent(vm.Node, "local-lvm") {
				if v.VMID == vm.VMID {
					require.True(t, referenced[v.VolID], "volume %s in no config key: %v", v.VolID, cfg)
				}
			}
			if tc.additional && additionalBefore != "" {
				require.Contains(t, out, "the archive has no additional disk: attaching the VM's own ("+additionalBefore)
				require.True(t, slices.ContainsFunc([]string{"scsi1", "scsi2"}, func(k string) bool {
					return strings.HasPrefix(cfg[k], additionalBefore+",") && strings.Contains(cfg[k], "pvectl-additional")
				}), "the VM's own additional disk %s attached again: %v", additionalBefore, cfg)
			}
			require.Contains(t, cfg["net0"], mac, "unique=0: the MAC stays")
			require.Equal(t, mac, got.MAC)

			ips, err := r.st.IPsForVM(r.ctx, vm.ID)
			require.NoError(t, err)
			var want []string
			for _, ip := range ips {
				want = append(want, ip.Address)
			}
			var have []string
			for _, c := range st.IPSets[states.IPSetName] {
				have = append(have, strings.TrimSuffix(c, "/32"))
			}
			require.ElementsMatch(t, want, have, "IP set as the record")
			require.Contains(t, cfg["ipconfig0"], want[0])
		})
	}
}

// killedAtRestore is the PVE client of a tick killed at the restore
// request: before it reached PVE (sent false), or after PVE started the
// task but before the tick recorded it (sent true).
type killedAtRestore struct {
	proxmox.Client
	sent bool
}

func (k killedAtRestore) Restore(ctx context.Context, req proxmox.RestoreRequest) (proxmox.TaskRef, error) {
	if k.sent {
		if _, err := k.Client.Restore(ctx, req); err != nil {
			return proxmox.TaskRef{}, err
		}
	}
	return proxmox.TaskRef{}, errKilled
}

// A tick killed in the restore step after it committed its intent: PVE's
// task list decides whether the restore was sent. Not sent: the next tick
// sends it; sent: the next tick follows PVE's task. Either way the VM gets
// exactly one qmrestore, even with an earlier restore in PVE's list.
func TestRestoreKilledBetweenIntentAndTask(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		sent    bool
		earlier bool
		found   string
	}{
		{name: "not sent", found: "the restore was not sent; sending it"},
		{name: "not sent, earlier restore listed", earlier: true, found: "the restore was not sent; sending it"},
		{name: "sent", sent: true, found: "the restore was sent before (PVE task UPID:pve1:"},
		{name: "sent, earlier restore listed", sent: true, earlier: true, found: "the restore was sent before"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, false)
			vm := r.deployed("k1", "small")
			volid := r.backupNow(vm)
			if tc.earlier {
				r.restore(vm, volid)
				r.until(vm.ID, states.Ready, 60)
				require.Equal(t, 1, r.tasksOf(vm.VMID, "qmrestore", time.Time{}))
			}
			before := r.tasksOf(vm.VMID, "qmrestore", time.Time{})
			r.restore(vm, volid)
			r.until(vm.ID, states.RestoreSnapshotsRemoved, 20)

			// The killed tick: nothing of its result is ever applied.
			r.clk.T = r.clk.T.Add(20 * time.Second)
			r.sim.Advance(20 * time.Second)
			step, ok := states.RestoreTable().StepFrom(states.RestoreSnapshotsRemoved)
			require.True(t, ok)
			env := *r.env
			env.PVE = killedAtRestore{Client: r.pve, sent: tc.sent}
			res := step.Call(r.ctx, &env, r.get(vm.ID))
			require.ErrorIs(t, res.Err, errKilled)
			cur := r.get(vm.ID)
			require.Equal(t, string(states.RestoreSnapshotsRemoved), cur.Status)
			require.Contains(t, cur.StepData, `"restore_at"`, "the intent was committed before the request")
			require.Empty(t, cur.PendingUPID)
			sent := 0
			if tc.sent {
				sent = 1
			}
			require.Equal(t, before+sent, r.tasksOf(vm.VMID, "qmrestore", time.Time{}))

			out := r.run(vm.ID, states.Ready, 60, 20*time.Second)
			require.Equal(t, string(states.Ready), r.get(vm.ID).Status, out)
			require.Equal(t, before+1, r.tasksOf(vm.VMID, "qmrestore", time.Time{}), "exactly one restore per request\n%s", out)
			require.Contains(t, out, tc.found)
			require.Contains(t, out, "event: backup restored")
		})
	}
}

// A restore whose task fails (a bad archive) holds the VM at its step
// with the task's error, leaves it stopped, and sends nothing else; vm
// retry (memory cleared) restores again.
func TestRestoreOfFailedArchiveHoldsTheVM(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	vm := r.deployed("f1", "small")
	volid := r.backupNow(vm)
	since := r.clk.Now()
	r.sim.FailTask(pvesim.TaskFault{Type: "qmrestore", ExitStatus: "command 'zstd -q -d -c /var/lib/vz/dump/x.vma.zst | vma extract' failed: exit code 1", Count: 1})
	r.restore(vm, volid)
	out := r.run(vm.ID, "", 15, 20*time.Second)
	got := r.get(vm.ID)
	require.True(t, got.Held, out)
	require.Equal(t, string(states.RestoreSnapshotsRemoved), got.Status, out)
	require.Contains(t, got.LastError, "restore task failed", out)
	require.Contains(t, got.LastError, "exit code 1", out)
	require.Contains(t, got.LastError, "the VM stays stopped")
	require.Equal(t, "stopped", r.pveStatus(vm.VMID), "a half-restored VM is not started")
	require.Equal(t, 1, r.tasksOf(vm.VMID, "qmrestore", since), out)
	require.Zero(t, r.tasksOf(vm.VMID, "qmstart", since), out)

	// vm retry: restores again (the failed task is not followed again).
	_, err := r.e.Retry(r.ctx, vm.ServiceID)
	require.NoError(t, err)
	out = r.run(vm.ID, states.Ready, 60, 20*time.Second)
	require.Equal(t, string(states.Ready), r.get(vm.ID).Status, out)
	require.Equal(t, 2, r.tasksOf(vm.VMID, "qmrestore", since), out)
	require.Contains(t, out, "event: backup restored")
}

// While PVE holds a backup, snapshot, snapshot-delete or rollback lock on
// a VM, a step that looks at it waits ("PVE lock backup") without acting,
// and goes on once the lock is gone.
func TestStepsWaitForPVELocks(t *testing.T) {
	t.Parallel()
	for _, lock := range []string{"backup", "snapshot", "snapshot-delete", "rollback"} {
		t.Run(lock, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, false)
			vm := r.deployed("l1", "small")
			since := r.clk.Now()
			require.NoError(t, r.sim.LeaveLock(vm.VMID, lock))
			r.power(vm, states.ActionStop, false)
			for range 3 {
				out := r.tick(20 * time.Second)
				require.Contains(t, out, "Stop VM (forced)  power_stop  waiting (PVE lock "+lock+")")
			}
			got := r.get(vm.ID)
			require.Equal(t, string(states.PowerStop), got.Status)
			require.False(t, got.Held)
			require.Zero(t, got.Attempts)
			require.Zero(t, r.tasksOf(vm.VMID, "qmstop", since))

			require.NoError(t, r.sim.LeaveLock(vm.VMID, ""))
			r.until(vm.ID, states.Ready, 5)
			require.Equal(t, "stopped", r.pveStatus(vm.VMID))
		})
	}
}

// The terminate's steps look at PVE's lock too: a terminate during a
// backup waits for it instead of sending a stop PVE refuses and ending in
// error_terminate, then goes on.
func TestTerminateWaitsForPVELock(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	vm := r.deployed("l1", "small")
	require.NoError(t, r.sim.LeaveLock(vm.VMID, "backup"))
	r.request(vm, states.Terminate, "")
	for range 3 {
		require.Contains(t, r.tick(20*time.Second), "Stop VM  terminate  waiting (PVE lock backup)")
	}
	require.NoError(t, r.sim.LeaveLock(vm.VMID, ""))
	out := r.run(vm.ID, states.Remove, 30, 20*time.Second)
	require.Equal(t, string(states.Remove), r.get(vm.ID).Status, out)
	require.NotContains(t, out, "error_terminate")
}

// A step that PVE refuses with "VM is locked (backup)" (or snapshot,
// snapshot-delete, rollback) waits instead of failing: no attempt, no
// backoff, no hold; the next tick runs it again.
func TestLockedErrorIsAWait(t *testing.T) {
	t.Parallel()
	for _, lock := range []string{"backup", "snapshot", "snapshot-delete", "rollback"} {
		t.Run(lock, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, false)
			vm := r.deployed("e1", "small")
			r.request(vm, states.ChangePackage, "big")
			r.until(vm.ID, states.CPStop, 20)
			r.sim.FailNext(pvesim.FailNext{Endpoint: "PUT /nodes/{node}/qemu/{vmid}/config", Count: 1, Status: 500,
				Message: "VM is locked (" + lock + ")"})
			out := r.tick(20 * time.Second)
			require.Contains(t, out, "Set CPU & RAM  cp_stop  waiting (PVE lock "+lock+")")
			got := r.get(vm.ID)
			require.Equal(t, string(states.CPStop), got.Status)
			require.Zero(t, got.Attempts)
			require.False(t, got.Held)
			out = r.tick(20 * time.Second)
			require.Contains(t, out, "Set CPU & RAM  cp_stop → cp_cpu_ram  success")
		})
	}
	// Other locks keep their classification: a clone lock is a retryable error.
	r := newRig(t, false)
	vm := r.deployed("e2", "small")
	r.request(vm, states.ChangePackage, "big")
	r.until(vm.ID, states.CPStop, 20)
	r.sim.FailNext(pvesim.FailNext{Endpoint: "PUT /nodes/{node}/qemu/{vmid}/config", Count: 1, Status: 500, Message: "VM is locked (clone)"})
	require.Contains(t, r.tick(20*time.Second), "Set CPU & RAM  cp_stop  error: ")
	require.Equal(t, 1, r.get(vm.ID).Attempts)
}
