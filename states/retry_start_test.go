package states_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/states"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// qmstartsSince counts the start tasks PVE received for vmid at or after t.
func (r *rig) qmstartsSince(vmid string, t time.Time) int {
	n := 0
	for _, task := range r.sim.Tasks() {
		if task.Type == "qmstart" && task.ID == vmid && !task.Start.Before(t) {
			n++
		}
	}
	return n
}

// Regression (issue 9, #14): a VM at starting whose guest did not come up
// backs off with "guest not running after N ticks". Verify running sends the
// start again only when vm.Attempts > 0, and `pvectl vm retry` (VMRelease)
// resets attempts to 0, so the retry the admin asked for sent no start: the
// step waited start_wait_ticks ticks for a stopped guest, failed again, and
// only the natural backoff after that sent the start. After a retry the
// next tick must send the start.
func TestVMRetryAtStartingSendsStartAtNextTick(t *testing.T) {
	r := newRig(t, false)
	vm := r.create("rs1", "small")
	vm = r.until(vm.ID, states.Clone, 20)
	r.sim.SetNeverRunning(vm.VMID, true)
	for range 30 {
		r.tick(20 * time.Second)
		if strings.Contains(r.get(vm.ID).LastError, "guest not running") {
			break
		}
	}
	cur := r.get(vm.ID)
	require.Equal(t, string(states.Starting), cur.Status)
	require.Contains(t, cur.LastError, "guest not running")
	require.Positive(t, cur.Attempts)
	require.True(t, cur.NextAttemptAt.After(r.clk.Now()), "the VM backs off")

	// The admin fixes the guest and ends the backoff early.
	r.sim.SetNeverRunning(vm.VMID, false)
	r.tick(time.Second)
	cur = r.get(vm.ID)
	require.Equal(t, string(states.Starting), cur.Status)
	released := r.clk.Now()
	require.NoError(t, r.st.VMRelease(r.ctx, cur.ID, cur.Status, cur.Version, released))

	out := r.tick(20 * time.Second)
	assert.Equal(t, 1, r.qmstartsSince("1000", released), "the tick after vm retry must send the start again\n%s", out)
	out += r.tick(20 * time.Second)
	cur = r.get(vm.ID)
	assert.Equal(t, string(states.Ready), cur.Status, "status %s, error %q\n%s", cur.Status, cur.LastError, out)
	assert.Equal(t, 1, r.qmstartsSince("1000", released), "exactly one start after the retry")
}

// The look before the start: a guest that is already running after a retry
// is done, with no start sent.
func TestVMRetryAtStartingRunningGuestIsDone(t *testing.T) {
	r := newRig(t, false)
	vm := r.create("rs2", "small")
	vm = r.until(vm.ID, states.Clone, 20)
	r.sim.SetNeverRunning(vm.VMID, true)
	for range 30 {
		r.tick(20 * time.Second)
		if strings.Contains(r.get(vm.ID).LastError, "guest not running") {
			break
		}
	}
	cur := r.get(vm.ID)
	require.Contains(t, cur.LastError, "guest not running")

	// Someone starts the guest by hand, then the admin retries.
	r.sim.SetNeverRunning(vm.VMID, false)
	_, err := r.pve.Start(r.ctx, proxmox.VMRef{Node: cur.Node, VMID: cur.VMID}, proxmox.StartOptions{})
	require.NoError(t, err)
	r.tick(10 * time.Second)
	cur = r.get(vm.ID)
	released := r.clk.Now()
	require.NoError(t, r.st.VMRelease(r.ctx, cur.ID, cur.Status, cur.Version, released))
	r.tick(20 * time.Second)
	cur = r.get(vm.ID)
	assert.Equal(t, string(states.Ready), cur.Status, "error %q", cur.LastError)
	assert.Zero(t, r.qmstartsSince("1000", released), "a running guest is not started again")
}
