package states_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
	"github.com/pvectl/pvectl/states"
	"github.com/stretchr/testify/require"
)

// A graceful shutdown sent while the host clock ran a year ahead records its
// start in the future. Once the clock is right again, the stop timer starts
// over from now: the forced stop follows stop_timeout later, not a year later.
func TestStopTimerWrittenInTheFutureRestartsFromNow(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	vm := r.deployed("g1", "small")
	right := r.clk.Now()

	// The guest ignores the ACPI request.
	r.sim.FailTask(pvesim.TaskFault{Type: "qmshutdown", ExitStatus: "VM quit/powerdown failed - got timeout", Count: 1})
	r.request(vm, states.ChangePackage, "big")
	r.clk.T = right.Add(365 * 24 * time.Hour) // the engine's clock only; PVE's is right
	for range 10 {
		r.clk.T = r.clk.T.Add(20 * time.Second)
		r.sim.Advance(20 * time.Second)
		_, err := r.e.ProcessVMs(r.ctx)
		require.NoError(t, err)
		if strings.Contains(r.get(vm.ID).StepData, "shutdown_at") {
			break
		}
	}
	require.Contains(t, r.get(vm.ID).StepData, "shutdown_at", "the shutdown was sent while the clock ran ahead")

	// The clock is set right again.
	r.clk.T = right.Add(time.Minute)
	fixed := r.clk.Now()
	var stopAt time.Time
	for range 30 {
		r.tick(20 * time.Second)
		for _, task := range r.sim.Tasks() {
			if task.ID == "1000" && task.Type == "qmstop" && stopAt.IsZero() {
				stopAt = r.clk.Now()
			}
		}
		if !stopAt.IsZero() {
			break
		}
	}
	require.False(t, stopAt.IsZero(), "no forced stop within 10 minutes of the clock being set right")
	took := stopAt.Sub(fixed)
	t.Logf("forced stop %s after the clock was set right", took)
	timeout := r.cfg.Tasks.ProcessVMs.StopTimeout.D()
	require.GreaterOrEqual(t, took, timeout, "graceful shutdown given its full stop_timeout from now")
	require.LessOrEqual(t, took, timeout+2*time.Minute, "forced stop soon after stop_timeout")
}
