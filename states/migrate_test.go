package states_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

// migrate asks for a migration through the request API, as the CLI does.
func (r *rig) migrate(vm store.VM, node string, online bool) {
	r.t.Helper()
	_, err := r.e.Migrate(r.ctx, vm.ServiceID, node, online)
	require.NoError(r.t, err)
}

// migrateParams returns the parameters of every POST …/migrate sent.
func (r *rig) migrateParams() []map[string]string { return r.sentParams("/migrate", "POST") }

// A stopped VM is migrated offline: one qmigrate task, the record's node
// and target follow, the IP set and firewall options are still there.
func TestMigrateOffline(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	vm := r.deployed("m1", "small")
	require.Equal(t, "pve1", vm.Node)
	r.power(vm, states.ActionStop, false)
	r.until(vm.ID, states.Ready, 5)
	since := r.clk.Now()

	r.migrate(vm, "pve2", false)
	out := r.run(vm.ID, states.Ready, 10, 20*time.Second)
	require.Equal(t, string(states.Ready), r.get(vm.ID).Status, out)
	require.Contains(t, out, "target node pve2 (asked: pve2)")
	require.Contains(t, out, "migrate to pve2 task started")
	require.Contains(t, out, "IP set and firewall options in place on node pve2")
	got := r.get(vm.ID)
	require.Equal(t, "pve2", got.Node)
	require.Equal(t, "pve2", got.TargetNode)
	st, ok := r.sim.VM(vm.VMID)
	require.True(t, ok)
	require.Equal(t, "pve2", st.Node)
	require.Equal(t, "stopped", st.Status)
	require.NotEmpty(t, st.IPSets[states.IPSetName])
	require.Equal(t, 1, r.tasksOf(vm.VMID, "qmigrate", since))
	params := r.migrateParams()
	require.Len(t, params, 1)
	require.Empty(t, params[0]["online"])
}

// A running VM asked with --online (and --node auto: pve2, the only other
// node) is migrated live with its local disks; it keeps running.
func TestMigrateOnlineRunning(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	vm := r.deployed("m2", "small")
	_, err := r.e.Migrate(r.ctx, "m2", "pve2", false)
	require.ErrorContains(t, err, "--online", "a VM last seen running needs --online")

	r.migrate(vm, "auto", true)
	out := r.run(vm.ID, states.Ready, 10, 20*time.Second)
	require.Equal(t, string(states.Ready), r.get(vm.ID).Status, out)
	require.Contains(t, out, "target node pve2 (asked: auto)")
	require.Contains(t, out, "live migrate to pve2 with local disks")
	st, _ := r.sim.VM(vm.VMID)
	require.Equal(t, "pve2", st.Node)
	require.Equal(t, "running", st.Status)
	require.Equal(t, "pve2", r.get(vm.ID).Node)
	params := r.migrateParams()
	require.Len(t, params, 1)
	require.Equal(t, "1", params[0]["online"])
	require.Equal(t, "1", params[0]["with-local-disks"])
}

// Look before acting: a VM already on the node asked for is done without a
// migration; so is one found there after a migration whose UPID was never
// recorded (a kill -9 right after the POST). An IP set PVE lost is re-applied.
func TestMigrateAlreadyOnTarget(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	vm := r.deployed("m3", "small")
	since := r.clk.Now()
	r.migrate(vm, "pve1", true)
	out := r.run(vm.ID, states.Ready, 5, 20*time.Second)
	require.Contains(t, out, "skip (already on node pve1)")
	require.Equal(t, 0, r.tasksOf(vm.VMID, "qmigrate", since))

	// Moved behind the record's back, as if the step's POST had gone out
	// and the process died before the UPID was written.
	task, err := r.pve.Migrate(r.ctx, proxmox.MigrateRequest{VM: proxmox.VMRef{Node: "pve1", VMID: vm.VMID}, Target: "pve2", Online: true, WithLocalDisks: true})
	require.NoError(t, err)
	require.NoError(t, r.pve.DeleteIPSet(r.ctx, proxmox.VMRef{Node: "pve1", VMID: vm.VMID}, states.IPSetName, true))
	r.migrate(vm, "pve2", true)
	out = r.run(vm.ID, states.Ready, 20, 2*time.Second)
	require.Equal(t, string(states.Ready), r.get(vm.ID).Status, out)
	require.Contains(t, out, "waiting (migration in progress (VM locked: migrate))")
	require.Contains(t, out, "skip (already on node pve2)")
	require.Contains(t, out, "IP set or firewall options were missing on node pve2; re-applied")
	require.Equal(t, 1, r.tasksOf(vm.VMID, "qmigrate", since), "only the out-of-band migration: %s", task.UPID)
	st, _ := r.sim.VM(vm.VMID)
	require.NotEmpty(t, st.IPSets[states.IPSetName])
	require.Equal(t, "pve2", r.get(vm.ID).Node)
}

// A target node that is offline is retried with backoff (not held) until it
// is back; one that is not in the cluster holds the VM.
func TestMigrateTargetNodeDown(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	vm := r.deployed("m4", "small")
	require.NoError(t, r.sim.SetNodeOffline("pve2", true))
	r.migrate(vm, "pve2", true)
	r.tick(20 * time.Second)
	got := r.get(vm.ID)
	require.Equal(t, string(states.Migrate), got.Status)
	require.False(t, got.Held)
	require.Contains(t, got.LastError, "target node pve2 is not online")
	require.Empty(t, got.TargetNode, "no target chosen yet")
	require.NoError(t, r.sim.SetNodeOffline("pve2", false))
	out := r.run(vm.ID, states.Ready, 20, 2*time.Minute)
	require.Equal(t, string(states.Ready), r.get(vm.ID).Status, out)
	require.Equal(t, "pve2", r.get(vm.ID).Node)

	vm2 := r.deployed("m5", "small")
	r.migrate(vm2, "pve9", true)
	r.tick(20 * time.Second)
	got = r.get(vm2.ID)
	require.True(t, got.Held)
	require.Contains(t, got.LastError, "node pve9 is not in the cluster")
}

// A migration that ends between the tick's location read (the VM still on
// its old node) and its config read makes PVE answer 404 for the config:
// the VM has moved, it is not gone. The step looks again instead of
// holding the VM, with its task recorded and with the task's UPID lost to
// a kill (the VM locked by a migration pvectl did not record).
func TestMigrateConfigGoneMidMigration(t *testing.T) {
	t.Parallel()
	for _, lost := range []bool{false, true} {
		r := newRig(t, false)
		vm := r.deployed("m6", "small")
		since := r.clk.Now()
		r.migrate(vm, "pve2", true)
		out := r.tick(time.Second)
		require.Contains(t, out, "live migrate to pve2", "lost %v", lost)
		got := r.get(vm.ID)
		require.NotEmpty(t, got.PendingUPID)
		if lost {
			require.NoError(t, r.st.VMSetPendingTask(r.ctx, got.ID, got.Status, got.Version, "", "", "", r.clk.Now()))
		}
		r.sim.FailNext(pvesim.FailNext{Endpoint: "GET /nodes/{node}/qemu/{vmid}/config", Node: "pve1", VMID: vm.VMID,
			Status: 500, Message: fmt.Sprintf("Configuration file 'nodes/pve1/qemu-server/%d.conf' does not exist", vm.VMID)})
		out = r.tick(time.Second)
		got = r.get(vm.ID)
		require.False(t, got.Held, "lost %v: held: %s\n%s", lost, got.LastError, out)
		out = r.run(vm.ID, states.Ready, 10, 20*time.Second)
		got = r.get(vm.ID)
		require.Equal(t, string(states.Ready), got.Status, "lost %v: %s", lost, out)
		require.Equal(t, "pve2", got.Node)
		st, _ := r.sim.VM(vm.VMID)
		require.Equal(t, "pve2", st.Node)
		require.Equal(t, "running", st.Status)
		require.Equal(t, 1, r.tasksOf(vm.VMID, "qmigrate", since), "lost %v", lost)
	}
}
