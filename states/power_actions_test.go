package states_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

// power asks for a power action through the request API, as the CLI does.
func (r *rig) power(vm store.VM, a states.PowerAction, force bool) {
	r.t.Helper()
	_, err := r.e.Power(r.ctx, vm.ServiceID, a, force)
	require.NoError(r.t, err)
}

// tasksOf counts the VM's PVE tasks of type typ started at or after since.
func (r *rig) tasksOf(vmid int, typ string, since time.Time) int {
	n := 0
	for _, task := range r.sim.Tasks() {
		if task.ID == strconv.Itoa(vmid) && task.Type == typ && !task.Start.Before(since) {
			n++
		}
	}
	return n
}

func (r *rig) pveStatus(vmid int) string {
	r.t.Helper()
	st, ok := r.sim.VM(vmid)
	require.True(r.t, ok)
	return st.Status
}

// Stop and start look before acting: a stop of a stopped VM and a start of a
// running one send nothing. The power state as last seen is recorded, and a
// ready VM found stopped is not started on its own.
func TestPowerStopStartLookBeforeActing(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	vm := r.deployed("p1", "small")
	require.Equal(t, "running", r.get(vm.ID).PowerState)

	r.power(vm, states.ActionStop, false)
	r.until(vm.ID, states.Ready, 5)
	require.Equal(t, "stopped", r.pveStatus(vm.VMID))
	got := r.get(vm.ID)
	require.Equal(t, "stopped", got.PowerState)
	require.Equal(t, r.clk.Now(), got.PowerSeenAt, "seen by the last tick")

	for range 5 {
		r.tick(time.Minute)
	}
	require.Equal(t, "stopped", r.pveStatus(vm.VMID), "a ready VM is never started on its own")

	since := r.clk.Now()
	r.power(vm, states.ActionStop, false)
	out := r.tick(20 * time.Second)
	require.Contains(t, out, "Stop VM (forced)  power_stop → ready  skip (already stopped)")
	require.Zero(t, r.tasksOf(vm.VMID, "qmstop", since))

	r.power(vm, states.ActionStart, false)
	r.until(vm.ID, states.Ready, 5)
	require.Equal(t, "running", r.pveStatus(vm.VMID))
	require.Equal(t, "running", r.get(vm.ID).PowerState)
	since = r.clk.Now()
	r.power(vm, states.ActionStart, false)
	out = r.tick(20 * time.Second)
	require.Contains(t, out, "Start VM  power_start → ready  skip (already running)")
	require.Zero(t, r.tasksOf(vm.VMID, "qmstart", since))
}

// A guest that ignores ACPI: the reboot task fails after stop_timeout and
// the fallback stops the VM (forced) and starts it again; with
// reboot_fallback off the reboot is given up and the VM left running.
func TestRebootFallsBackWhenGuestIgnoresACPI(t *testing.T) {
	t.Parallel()
	for _, fallback := range []bool{true, false} {
		r := newRig(t, false)
		r.cfg.Tasks.ProcessVMs.RebootFallback = &fallback
		vm := r.deployed("r1", "small")
		since := r.clk.Now()
		r.sim.FailTask(pvesim.TaskFault{Type: "qmreboot", ExitStatus: "VM quit/powerdown failed - got timeout", Count: 1})
		r.power(vm, states.ActionReboot, false)
		out := r.run(vm.ID, states.Ready, 10, 20*time.Second)
		require.Equal(t, string(states.Ready), r.get(vm.ID).Status, out)
		require.Equal(t, "running", r.pveStatus(vm.VMID))
		require.Equal(t, 1, r.tasksOf(vm.VMID, "qmreboot", since))
		if fallback {
			require.Contains(t, out, "falling back to a forced stop, then a start")
			require.Equal(t, 1, r.tasksOf(vm.VMID, "qmstop", since), out)
			require.Equal(t, 1, r.tasksOf(vm.VMID, "qmstart", since), out)
		} else {
			require.Contains(t, out, "skip (gave up the reboot (")
			require.Contains(t, out, "reboot_fallback is off, the VM was left as it is")
			require.Zero(t, r.tasksOf(vm.VMID, "qmstop", since), out)
			require.Zero(t, r.tasksOf(vm.VMID, "qmstart", since), out)
		}
	}
}

// An intent written by an earlier version of pvectl (the reboot's time, no
// baseline of PVE's reboot tasks), killed between the reboot request and
// recording its task: the next ticks find the qmreboot task PVE started
// since then and follow it, never sending a second reboot.
func TestRebootAfterKillIsNotSentTwice(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	vm := r.deployed("k1", "small")
	since := r.clk.Now()
	r.power(vm, states.ActionReboot, false)
	cur := r.get(vm.ID)
	at := r.clk.Now().UTC().Format(time.RFC3339Nano)
	require.NoError(t, r.st.VMSetStepData(r.ctx, cur.ID, cur.Status, cur.Version, `{"v":1,"reboot_at":"`+at+`"}`, r.clk.Now()))
	_, err := r.pve.Reboot(r.ctx, proxmox.VMRef{Node: vm.Node, VMID: vm.VMID}, proxmox.RebootOptions{Timeout: time.Minute})
	require.NoError(t, err) // … and the process died before recording the task

	out := r.run(vm.ID, states.Ready, 10, 20*time.Second)
	require.Equal(t, string(states.Ready), r.get(vm.ID).Status, out)
	require.Equal(t, 1, r.tasksOf(vm.VMID, "qmreboot", since), out)
	require.Zero(t, r.tasksOf(vm.VMID, "qmstop", since), out)
	require.Contains(t, out, "Reboot VM  power_reboot → power_rebooted  success")
	require.Contains(t, out, "the reboot was sent before (PVE task UPID:pve1:")
}

// shutdown without --force of a guest that ignores ACPI: given up after
// stop_timeout, logged, never forced; with --force the VM is stopped.
func TestShutdownForcesOnlyWithForce(t *testing.T) {
	t.Parallel()
	for _, force := range []bool{false, true} {
		r := newRig(t, false)
		vm := r.deployed("s1", "small")
		since := r.clk.Now()
		r.sim.FailTask(pvesim.TaskFault{Type: "qmshutdown", ExitStatus: "VM quit/powerdown failed - got timeout", Count: 1})
		r.power(vm, states.ActionShutdown, force)
		out := r.run(vm.ID, states.Ready, 20, 20*time.Second)
		require.Equal(t, string(states.Ready), r.get(vm.ID).Status, out)
		require.Equal(t, 1, r.tasksOf(vm.VMID, "qmshutdown", since), out)
		if force {
			require.Equal(t, "stopped", r.pveStatus(vm.VMID), out)
			require.Equal(t, 1, r.tasksOf(vm.VMID, "qmstop", since), out)
			require.Contains(t, out, "Shut down VM  power_shutdown → ready  success")
		} else {
			require.Equal(t, "running", r.pveStatus(vm.VMID), out)
			require.Zero(t, r.tasksOf(vm.VMID, "qmstop", since), out)
			require.Contains(t, out, "skip (gave up: guest still running")
		}
	}
}

// errKilled stands for the tick's process dying inside the reboot request.
var errKilled = errors.New("killed")

// killedAtReboot is the PVE client of a tick killed at the reboot request:
// before it reached PVE (sent false), or after PVE started the task but
// before the tick recorded it (sent true).
type killedAtReboot struct {
	proxmox.Client
	sent bool
}

func (k killedAtReboot) Reboot(ctx context.Context, vm proxmox.VMRef, opts proxmox.RebootOptions) (proxmox.TaskRef, error) {
	if k.sent {
		if _, err := k.Client.Reboot(ctx, vm, opts); err != nil {
			return proxmox.TaskRef{}, err
		}
	}
	return proxmox.TaskRef{}, errKilled
}

// A tick killed in the reboot step, after it committed its intent: PVE's
// task list, not pvectl's clock or the guest's uptime, decides whether the
// reboot was sent. Not sent: the next tick sends it, once, even when
// pvectl's clock jumped ahead meanwhile (which the guest's uptime read as
// rebooted). Sent: the next tick follows PVE's task and sends no second one,
// even when pvectl's clock runs an hour ahead of PVE's, or an earlier reboot
// is in PVE's list. A found task that failed (the guest ignores ACPI) still
// falls back to a forced stop and a start.
func TestRebootKilledBetweenIntentAndTask(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		sent    bool
		earlier bool          // a reboot done before this request: in PVE's list already
		ahead   time.Duration // pvectl's clock ahead of PVE's from the request on
		jump    time.Duration // pvectl's clock jumps ahead after the killed tick
		ignore  bool          // the guest ignores ACPI: the reboot task fails
		found   string        // what the tick after the kill says
	}{
		{name: "not sent, clock jumped ahead", jump: time.Hour, found: "the reboot was not sent; sending it"},
		{name: "not sent, earlier reboot listed", earlier: true, found: "the reboot was not sent; sending it"},
		{name: "not sent, clock ahead of PVE", ahead: time.Hour, found: "the reboot was not sent; sending it"},
		{name: "sent", sent: true, found: "the reboot was sent before (PVE task UPID:pve1:"},
		{name: "sent, clock jumped ahead", sent: true, jump: time.Hour, found: "the reboot was sent before"},
		{name: "sent, clock ahead of PVE", sent: true, ahead: time.Hour, found: "the reboot was sent before"},
		{name: "sent, clock behind PVE", sent: true, ahead: -time.Hour, found: "the reboot was sent before"},
		{name: "sent, earlier reboot listed", sent: true, earlier: true, found: "the reboot was sent before"},
		{name: "sent, guest ignores ACPI", sent: true, ignore: true, found: "the reboot was sent before"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, false)
			vm := r.deployed("k1", "small")
			if tc.earlier {
				r.power(vm, states.ActionReboot, false)
				r.until(vm.ID, states.Ready, 10)
				require.Equal(t, 1, r.tasksOf(vm.VMID, "qmreboot", time.Time{}))
			}
			before := r.tasksOf(vm.VMID, "qmreboot", time.Time{})
			r.clk.T = r.clk.T.Add(tc.ahead)
			if tc.ignore {
				r.sim.FailTask(pvesim.TaskFault{Type: "qmreboot", ExitStatus: "VM quit/powerdown failed - got timeout", Count: 1})
			}
			r.power(vm, states.ActionReboot, false)

			// The killed tick: the step runs with a client that dies in the
			// reboot request; nothing of its result is ever applied.
			r.clk.T = r.clk.T.Add(20 * time.Second)
			r.sim.Advance(20 * time.Second)
			step, ok := states.PowerRebootTable().StepFrom(states.PowerReboot)
			require.True(t, ok)
			env := *r.env
			env.PVE = killedAtReboot{Client: r.pve, sent: tc.sent}
			res := step.Call(r.ctx, &env, r.get(vm.ID))
			require.ErrorIs(t, res.Err, errKilled)
			cur := r.get(vm.ID)
			require.Equal(t, string(states.PowerReboot), cur.Status)
			require.Contains(t, cur.StepData, `"reboot_at"`, "the intent was committed before the request")
			require.Empty(t, cur.PendingUPID)
			sent := 0
			if tc.sent {
				sent = 1
			}
			require.Equal(t, before+sent, r.tasksOf(vm.VMID, "qmreboot", time.Time{}))

			r.clk.T = r.clk.T.Add(tc.jump)
			out := r.run(vm.ID, states.Ready, 10, 20*time.Second)
			require.Equal(t, before+1, r.tasksOf(vm.VMID, "qmreboot", time.Time{}), "exactly one reboot per request\n%s", out)
			require.Equal(t, string(states.Ready), r.get(vm.ID).Status, out)
			require.Contains(t, out, tc.found)
			require.Equal(t, "running", r.pveStatus(vm.VMID))
			if tc.ignore {
				require.Contains(t, out, "falling back to a forced stop, then a start")
				require.Equal(t, 1, r.tasksOf(vm.VMID, "qmstop", time.Time{}), out)
			} else {
				require.Contains(t, out, "Reboot VM  power_reboot → power_rebooted  success")
				require.Zero(t, r.tasksOf(vm.VMID, "qmstop", time.Time{}), out)
			}
		})
	}
}
