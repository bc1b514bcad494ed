package states_test

import (
	"testing"
	"time"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
	"github.com/pvectl/pvectl/states"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Regression (found in review): stopVM measures stop_timeout from vm.StepStartedAt. That
// is the moment the VM entered the state, not the moment pvectl first asked
// the guest to shut down. If the first attempts at cp_stop fail (node
// briefly unreachable: 595 with backoff 1, 2, 4 min; or the VM was held and
// then released with `vm retry`), more than stop_timeout has already
// passed. The first thing pvectl sends is then a forced qmstop. A
// customer's running VM is powered off hard, and no graceful shutdown is
// ever tried. Change-package and terminate both have this problem.
func TestChangePackageTriesGracefulShutdownFirst(t *testing.T) {
	r := newRig(t, false)
	vm := r.create("s1", "small")
	vm = r.until(vm.ID, states.Ready, 40)
	_, err := r.st.VMRequest(r.ctx, vm.ID, []string{string(states.Ready)}, string(states.ChangePackage), "big", r.clk.Now())
	require.NoError(t, err)
	r.tick(20 * time.Second)
	require.Equal(t, string(states.CPUpdateIP), r.get(vm.ID).Status)
	cpStarted := r.clk.Now()

	// The node is unreachable for three calls (595), which backs off ~7 minutes.
	r.sim.FailNext(pvesim.FailNext{Endpoint: "GET /nodes/{node}/qemu/{vmid}/status/current", Count: 3 * proxmox.ReadAttempts, Status: 595})
	for range 30 {
		r.tick(time.Minute)
		if r.get(vm.ID).Status != string(states.CPUpdateIP) {
			break
		}
	}
	var first string
	for _, task := range r.sim.Tasks() {
		if task.ID == "1000" && task.Start.After(cpStarted) && (task.Type == "qmshutdown" || task.Type == "qmstop") {
			first = task.Type
			break
		}
	}
	t.Logf("first power task sent: %s", first)
	assert.Equal(t, "qmshutdown", first, "the guest must be asked to shut down before it is powered off")
}
