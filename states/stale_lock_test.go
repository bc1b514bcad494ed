package states_test

import (
	"testing"
	"time"

	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
	"github.com/stretchr/testify/assert"
)

// Regression (found in review): when a clone worker dies, it leaves "lock: clone" on the
// target VMID, and only `qm unlock` clears that lock (reliability-notes
// rule 5: never auto-unlock, escalate after a threshold). cloneTemplate
// answers every later tick with Wait("clone in progress (VM locked:
// clone)"). Nothing counts these waits: there is no attempt increment, no
// hold, and no threshold. The VM sits "waiting" at set_ip for ever.
// migrateToTarget does the same with "lock: migrate". The errors.go comment
// "the engine escalates a lock that never goes away" is not implemented.
func TestStaleCloneLockEscalates(t *testing.T) {
	r := newRig(t, false)
	r.sim.FailTask(pvesim.TaskFault{Type: "qmclone", ExitStatus: "unexpected status", KeepLock: true, Count: 1})
	vm := r.create("l1", "small")
	var last string
	for range 24 * 60 / 5 { // one day of 5-minute ticks
		last = r.tick(5 * time.Minute)
	}
	vm = r.get(vm.ID)
	t.Logf("after a day: status %s, held %v, attempts %d, step_waits %d, last_error %q\nlast tick:\n%s",
		vm.Status, vm.Held, vm.Attempts, vm.StepWaits, vm.LastError, last)
	assert.True(t, vm.Held, "a config lock that has not moved for a day must hold the VM for an admin, not wait silently")
}
