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

// Regression (third review): stopVM keeps shutdown_at/stop_at in step_data, and
// `vm retry` (VMRelease) keeps step_data. A change-package held at
// cp_update_ip because the forced stop was refused (403) and released hours
// later therefore powers the VM off hard as its very first action after the
// retry: the hours-old shutdown_at says the graceful shutdown "timed out".
// The fix for "graceful shutdown always first" named exactly this case
// ("or the VM was held and then released with `vm retry`").
func TestChangePackageGracefulFirstAfterVMRetry(t *testing.T) {
	r := newRig(t, false)
	vm := r.deployed("g1", "small")

	r.sim.FailTask(pvesim.TaskFault{Type: "qmshutdown", ExitStatus: "VM quit/powerdown failed - got timeout", Count: 1})
	r.request(vm, states.ChangePackage, "big")
	for range 10 {
		r.tick(20 * time.Second)
		if strings.Contains(r.get(vm.ID).StepData, "shutdown_at") {
			break
		}
	}
	require.Contains(t, r.get(vm.ID).StepData, "shutdown_at")
	r.sim.FailNext(pvesim.FailNext{Endpoint: "POST /nodes/{node}/qemu/{vmid}/status/stop", Count: 1, Status: 403,
		Message: "Permission check failed (/vms/1000, VM.PowerMgmt)"})
	for range 30 {
		r.tick(20 * time.Second)
		if r.get(vm.ID).Held {
			break
		}
	}
	cur := r.get(vm.ID)
	require.True(t, cur.Held, "the refused forced stop holds the VM (status %s, error %q)", cur.Status, cur.LastError)
	require.Equal(t, string(states.CPUpdateIP), cur.Status)

	// Hours later the admin fixes the permission and retries.
	r.tick(3 * time.Hour)
	released := r.clk.Now()
	require.NoError(t, r.st.VMRelease(r.ctx, cur.ID, cur.Status, cur.Version, r.clk.Now()))
	r.tick(20 * time.Second)

	first := ""
	for _, task := range r.sim.Tasks() {
		if task.ID == "1000" && !task.Start.Before(released) && (task.Type == "qmshutdown" || task.Type == "qmstop") {
			first = task.Type
			break
		}
	}
	assert.Equal(t, "qmshutdown", first, "after vm retry the guest must be asked to shut down before it is powered off")
}
