package states

import "fmt"

// ResetTarget is a state an admin may put a VM in with `pvectl reset-status`.
type ResetTarget struct {
	State State
	// Help says what the target does and when to use it.
	Help string
	// NoProxmox marks targets that change only the record (a warning is shown).
	NoProxmox bool
	// NeedsVMID marks targets that carry on with the VM's reserved VMID and
	// the PVE VM behind it; a record without one (never reserved, or
	// released by remove) must go through creation instead.
	NeedsVMID bool
}

// ResetTargets lists the reset-status targets, in the order help shows them.
func ResetTargets() []ResetTarget {
	return []ResetTarget{
		{Ready, "mark the VM as fine after a manual fix; the cron stops touching it", false, true},
		{Creation, "retry the deploy from the beginning after fixing the cause (a VM already cloned with our marker is reused)", false, false},
		{SetIP, "keep the reserved VMID and addresses and continue the deploy from the clone", false, true},
		{ChangePackage, "re-run the whole change-package flow for the VM's current product", false, true},
		{SetDNSRecords, "queue a full DNS resync: delete the VM's records and publish them again (fast and safe)", false, false},
		{Terminate, "retry termination, e.g. after error_terminate once the cause is fixed (node reachable, auth fixed)", false, false},
		{Remove, "mark the VM removed and release its IPs and VMID WITHOUT contacting Proxmox; only when the VM is already gone", true, false},
	}
}

// LookupResetTarget finds a reset target, checking it against the pipeline
// FSMs: it must be a state some table's FSM, walked from its entry, passes
// through, or a final state.
func LookupResetTarget(s string) (ResetTarget, error) {
	for _, t := range ResetTargets() {
		if string(t.State) != s {
			continue
		}
		if t.State.Final() || inSomeTable(t.State) {
			return t, nil
		}
		return ResetTarget{}, fmt.Errorf("reset target %s is not a state of any pipeline", s)
	}
	return ResetTarget{}, fmt.Errorf("not a reset-status target")
}

func inSomeTable(s State) bool {
	for _, p := range Pipelines() {
		if p.Reaches(s) {
			return true
		}
	}
	return false
}
