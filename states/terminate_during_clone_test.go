package states_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
	"github.com/pvectl/pvectl/states"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Regression (issue 9, #17): `vm terminate` while the clone task is still
// running. The clone's VM exists with "lock: clone" and a temporary config
// that carries no marker yet, so the terminate took pvectl's own VM for
// someone else's: it skipped the stop and the backups ("pvectl did not
// create"), and the DELETE refused it (error_terminate, IPs kept) or, once
// the clone had ended, destroyed it without the stop. The terminate must wait
// for the clone task to finish, then go on as for any VM of ours.
func TestTerminateDuringCloneWaitsForClone(t *testing.T) {
	c := pvesim.DefaultCluster()
	if c.Durations.Tasks == nil {
		c.Durations.Tasks = map[string]pvesim.Duration{}
	}
	c.Durations.Tasks["qmclone"] = pvesim.Duration(10 * time.Minute)
	r := newRigOn(t, false, c)
	vm := r.create("tc1", "small")
	var out strings.Builder
	for range 5 {
		out.WriteString(r.tick(20 * time.Second))
		if r.get(vm.ID).PendingUPID != "" {
			break
		}
	}
	vm = r.get(vm.ID)
	require.Equal(t, string(states.SetIP), vm.Status)
	require.NotEmpty(t, vm.PendingUPID, "the clone task is pending\n%s", out.String())
	simVM, ok := r.sim.VM(vm.VMID)
	require.True(t, ok)
	require.Equal(t, "clone", simVM.Config["lock"], "the clone is still running")

	// The order is cancelled mid-clone (same store call as the CLI).
	_, err := r.st.VMRequest(r.ctx, vm.ID, []string{string(states.SetIP)}, string(states.Terminate), "", r.clk.Now())
	require.NoError(t, err)

	// While the clone runs, the terminate waits and touches nothing.
	for range 5 {
		out.WriteString(r.tick(time.Minute))
	}
	cur := r.get(vm.ID)
	require.Equal(t, string(states.Terminate), cur.Status, "error %q\n%s", cur.LastError, out.String())
	assert.False(t, cur.Held)
	assert.Contains(t, out.String(), "waiting for the clone task to finish before terminating")
	_, ok = r.sim.VM(vm.VMID)
	require.True(t, ok, "nothing deleted while the clone runs")

	// The clone ends; the terminate goes on as for any VM of ours.
	for range 20 {
		out.WriteString(r.tick(time.Minute))
		if s := r.get(vm.ID).Status; s == string(states.Remove) || s == string(states.ErrorTerminate) {
			break
		}
	}
	cur = r.get(vm.ID)
	log := out.String()
	assert.Equal(t, string(states.Remove), cur.Status, "error %q\n%s", cur.LastError, log)
	assert.NotContains(t, log, "did not create", "pvectl's own clone is not someone else's VM")
	assert.Regexp(t, `Stop VM  terminate → terminate_stopped  (success|skip \(already stopped)`, log)
	_, ok = r.sim.VM(vm.VMID)
	assert.False(t, ok, "the cloned VM is deleted")
}
