package states_test

import (
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
	"github.com/pvectl/pvectl/states"
	"github.com/stretchr/testify/require"
)

// A VM caught by an upgrade in the middle of its stop step carries step
// memory in the url-encoded format of earlier versions. The step reads it
// (the shutdown was sent long enough ago: the forced stop follows at once,
// not a second shutdown) and writes its memory back as JSON.
func TestStepMemoryOfEarlierVersionResumes(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	vm := r.deployed("up1", "small")

	// The guest ignores the ACPI request.
	r.sim.FailTask(pvesim.TaskFault{Type: "qmshutdown", ExitStatus: "VM quit/powerdown failed - got timeout", Count: 1})
	r.request(vm, states.ChangePackage, "big")
	for range 10 {
		r.tick(20 * time.Second)
		if strings.Contains(r.get(vm.ID).StepData, "shutdown_at") {
			break
		}
	}
	cur := r.get(vm.ID)
	require.Equal(t, string(states.CPUpdateIP), cur.Status)
	require.True(t, strings.HasPrefix(cur.StepData, "{"), "step memory is JSON: %s", cur.StepData)

	// Rewrite it as the earlier version did: the shutdown went out
	// stop_timeout and a minute ago.
	timeout := r.cfg.Tasks.ProcessVMs.StopTimeout.D()
	sent := r.clk.Now().Add(-timeout - time.Minute)
	old := url.Values{"shutdown_at": {strconv.FormatInt(sent.UnixMilli(), 10)}}.Encode()
	require.NoError(t, r.st.VMSetStepData(r.ctx, cur.ID, cur.Status, cur.Version, old, r.clk.Now()))

	out := r.tick(20 * time.Second)
	require.Contains(t, out, "up1  Stop VM  cp_update_ip  waiting (forced stop task started)")
	require.NotContains(t, out, "graceful shutdown task started")
	cur = r.get(vm.ID)
	require.True(t, strings.HasPrefix(cur.StepData, "{"), "written back as JSON: %s", cur.StepData)
	require.Contains(t, cur.StepData, `"v":1`)
	require.Contains(t, cur.StepData, `"stop_at"`)
}
