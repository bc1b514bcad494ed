package states_test

import (
	"testing"
	"time"

	"github.com/pvectl/pvectl/states"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Regression (found in review): DNS deletes that fail during terminate are never retried.
// deleteDNSForTerminate keeps the failed rows but does not mark the VM
// DNS-dirty. The background DNS retry skips every terminate state and
// remove anyway. releaseResources (VMReleaseResources) then DELETEs the
// VM's dns_records rows. The A record and the PTR of an address that goes
// back to the pool stay in DNS, and pvectl no longer knows about them.
func TestTerminateDNSFailureIsEventuallyCleaned(t *testing.T) {
	r := newRig(t, true)
	vm := r.create("d1", "small")
	r.until(vm.ID, states.Ready, 40)
	require.NotEmpty(t, r.dns.records(), "deploy published records")

	// The DNS primary is unreachable while the VM is terminated.
	r.dns.failDeletes = true
	_, err := r.st.VMRequest(r.ctx, vm.ID, []string{string(states.Ready)}, string(states.Terminate), "", r.clk.Now())
	require.NoError(t, err)
	r.until(vm.ID, states.Remove, 20)

	// The DNS primary comes back; give the background retry plenty of time.
	r.dns.failDeletes = false
	for range 120 {
		r.tick(time.Minute)
	}
	rows, err := r.st.DNSRecords(r.ctx, vm.ID)
	require.NoError(t, err)
	t.Logf("store rows left for the removed VM: %d", len(rows))
	assert.Empty(t, r.dns.records(), "records of a terminated VM must be deleted once DNS is reachable again")
}
