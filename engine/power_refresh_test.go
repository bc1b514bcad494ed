package engine_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/pvectl/pvectl/engine"
	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

// powerRig is an engine whose step environment talks to a pvesim over HTTP.
type powerRig struct {
	*harness
	sim *pvesim.Sim
	pve proxmox.Client
}

func newPowerRig(t *testing.T) *powerRig {
	t.Helper()
	h := newHarness(t, "")
	sim, url, tokenID, secret := pvesim.StartTest(t, pvesim.DefaultCluster())
	t.Cleanup(func() { sim.RequireNoRejections(t) })
	pve, err := proxmox.New(proxmox.Options{URL: url, TokenID: tokenID, TokenSecret: secret})
	require.NoError(t, err)
	h.e.NewEnv = func(_ context.Context, e *engine.Engine) (*states.Env, error) {
		return &states.Env{Store: e.Store, Config: e.Config, PVE: pve, Now: e.Clock.Now}, nil
	}
	return &powerRig{harness: h, sim: sim, pve: pve}
}

// pveVM adds a VM to the cluster, running or not.
func (r *powerRig) pveVM(vmid int, running bool) {
	r.t.Helper()
	require.NoError(r.t, r.sim.AddVM(pvesim.VMSpec{VMID: vmid, Node: "pve1", Running: running,
		Config: map[string]string{"name": "vm" + strconv.Itoa(vmid)}}))
}

// record creates a VM record at status with a VMID (0: none) and a power
// state last seen at t0 ("" none).
func (r *powerRig) record(svc, status string, vmid int, power string) store.VM {
	r.t.Helper()
	vm := r.vmOn(svc, status, "pve1")
	if vmid != 0 {
		require.NoError(r.t, r.st.VMSetVMID(r.ctx, vm.ID, vmid, t0))
	}
	if power != "" {
		require.NoError(r.t, r.st.VMSetPowerSeen(r.ctx, vm.ID, power, t0))
	}
	return r.get(vm.ID)
}

// refresh runs refresh_power as run-task does and returns what it printed
// and its recorded message.
func (r *powerRig) refresh() (string, string) {
	r.t.Helper()
	r.out.Reset()
	require.NoError(r.t, r.e.RunTask(r.ctx, engine.RefreshPowerTask()))
	last, err := r.st.TaskRunLast(r.ctx)
	require.NoError(r.t, err)
	return r.out.String(), last["refresh_power"].Message
}

// pveRequests counts the simulator's requests by endpoint.
func (r *powerRig) pveRequests() map[string]int {
	n := map[string]int{}
	for _, q := range r.sim.Requests() {
		n[q.Endpoint]++
	}
	return n
}

// refresh_power records what PVE shows for every record with a VMID, in
// any state, with one /cluster/resources read and nothing else sent to
// PVE: a ready VM the customer shut down is recorded stopped and stays
// stopped; a suspended VM found running is named; a VM not in the cluster
// keeps its last observation. Versions do not change, so a request's
// compare-and-set taken before the refresh still holds.
func TestRefreshPowerRecordsWithoutActing(t *testing.T) {
	t.Parallel()
	r := newPowerRig(t)
	r.pveVM(1001, false) // web1: the customer shut it down from inside the guest
	r.pveVM(1002, true)  // web2: running, as last seen
	r.pveVM(1003, true)  // web3: suspended, but started in the PVE GUI
	r.pveVM(1005, true)  // web5: deploying, never seen yet
	web1 := r.record("web1", string(states.Ready), 1001, "running")
	web2 := r.record("web2", string(states.Ready), 1002, "running")
	web3 := r.record("web3", string(states.Suspended), 1003, "stopped")
	web4 := r.record("web4", string(states.Ready), 1004, "running") // deleted behind pvectl's back
	web5 := r.record("web5", string(states.SetCPURAM), 1005, "")
	web6 := r.record("web6", string(states.Creation), 0, "") // no VMID yet

	r.at(time.Minute)
	out, msg := r.refresh()
	want := "refreshed power state of 4 VM(s); 3 changed: web1 running→stopped, web3 stopped→running (suspended), " +
		"web5 (never seen)→running; 1 suspended VM(s) running: web3 (process_vms stops them again at its next pass); " +
		"1 not in the cluster, power state left as last seen: web4"
	require.Equal(t, want, msg)
	require.Contains(t, out, "INF refresh_power: "+want)

	for _, tc := range []struct {
		vm    store.VM
		power string
		seen  time.Time
	}{
		{web1, "stopped", t0.Add(time.Minute)},
		{web2, "running", t0.Add(time.Minute)},
		{web3, "running", t0.Add(time.Minute)},
		{web4, "running", t0}, // not claimed as seen now
		{web5, "running", t0.Add(time.Minute)},
		{web6, "", time.Time{}},
	} {
		got := r.get(tc.vm.ID)
		require.Equal(t, tc.power, got.PowerState, got.ServiceID)
		require.Equal(t, tc.seen, got.PowerSeenAt, got.ServiceID)
		require.Equal(t, tc.vm.Version, got.Version, "%s: an observation bumps no version", got.ServiceID)
		require.Equal(t, tc.vm.Status, got.Status, got.ServiceID)
	}
	require.Equal(t, map[string]int{"GET /cluster/resources": 1}, r.pveRequests(), "one read, nothing else")
	require.Empty(t, r.sim.Tasks(), "nothing started or stopped")
	st, _ := r.sim.VM(1001)
	require.Equal(t, "stopped", st.Status)

	// A request taken before a refresh is not disturbed by it: its
	// compare-and-set on the version it read still holds.
	before := r.get(web2.ID)
	r.at(2 * time.Minute)
	r.refresh()
	require.NoError(t, r.st.VMSetStatusIf(r.ctx, before.ID, before.Status, before.Version, string(states.PowerStop), t0.Add(2*time.Minute)))

	// Nothing changed: recorded in task_runs, nothing printed (cron mails
	// nothing for a quiet fleet).
	require.NoError(t, r.st.VMSetStatus(r.ctx, web2.ID, string(states.Ready), t0.Add(2*time.Minute)))
	require.NoError(t, r.sim.StartOutOfBand(1001))
	_, err := r.pve.Stop(r.ctx, proxmox.VMRef{Node: "pve1", VMID: 1003}, proxmox.StopOptions{}) // as process_vms does
	require.NoError(t, err)
	r.sim.Advance(time.Minute)
	r.at(3 * time.Minute)
	out, _ = r.refresh()
	require.Contains(t, out, "2 changed: web1 stopped→running, web3 running→stopped (suspended); 1 not in the cluster")
	r.at(4 * time.Minute)
	out, msg = r.refresh()
	require.Empty(t, out)
	require.Contains(t, msg, "refreshed power state of 4 VM(s); 0 changed")
	require.Equal(t, 4, r.pveRequests()["GET /cluster/resources"])
	require.Len(t, r.sim.Tasks(), 1, "only the test's own stop")
}

// A node that is offline lists its VMs with status unknown: their power
// state and its time are kept. PVE unreachable: the run fails, nothing is
// written.
func TestRefreshPowerUnknownAndUnreachable(t *testing.T) {
	t.Parallel()
	r := newPowerRig(t)
	r.pveVM(1001, true)
	web1 := r.record("web1", string(states.Ready), 1001, "stopped")
	require.NoError(t, r.sim.SetNodeOffline("pve1", true))
	r.at(time.Minute)
	out, msg := r.refresh()
	require.Empty(t, out)
	require.Equal(t, "refreshed power state of 0 VM(s); 0 changed; 1 with status unknown (no data yet, or node offline), left as last seen: web1", msg)
	got := r.get(web1.ID)
	require.Equal(t, "stopped", got.PowerState)
	require.Equal(t, t0, got.PowerSeenAt)

	r.sim.FailNext(pvesim.FailNext{Endpoint: "GET /cluster/resources", Count: 10, Status: 596, Message: "Connection timed out"})
	r.at(2 * time.Minute)
	err := r.e.RunTask(r.ctx, engine.RefreshPowerTask())
	require.ErrorContains(t, err, "task refresh_power: read the cluster's VMs (GET /cluster/resources): ")
	require.ErrorContains(t, err, "power states left as last seen")
	last, err := r.st.TaskRunLast(r.ctx)
	require.NoError(t, err)
	require.Equal(t, "error", last["refresh_power"].Result)
	got = r.get(web1.ID)
	require.Equal(t, "stopped", got.PowerState)
	require.Equal(t, t0, got.PowerSeenAt)
}

// With no record holding a VMID the task sends nothing to PVE.
func TestRefreshPowerIdleConnectsToNothing(t *testing.T) {
	t.Parallel()
	r := newPowerRig(t)
	r.record("web6", string(states.Creation), 0, "")
	out, msg := r.refresh()
	require.Empty(t, out)
	require.Equal(t, "no VM has a VMID; nothing to refresh", msg)
	require.Empty(t, r.sim.Requests())
}

// refresh_power is a standard task, due every 5 minutes by default.
func TestRefreshPowerIsAStandardTask(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	task, ok := h.e.LookupTask("refresh_power")
	require.True(t, ok)
	require.Equal(t, 5*time.Minute, h.e.Interval(task))
	require.Equal(t, []string{"process_vms", "refresh_power"}, h.e.TaskNames()[:2])
	h = newHarness(t, "  intervals: {refresh_power: 15m}\n")
	require.Equal(t, 15*time.Minute, h.e.Interval(task))
}
