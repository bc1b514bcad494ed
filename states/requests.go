package states

import (
	"fmt"
	"slices"
	"sync"
)

// The sets of states a request may come from. The request API (engine,
// requests*.go) checks a VM against them before it writes anything, and
// CheckRequestSets checks them against the pipeline FSMs.

// CreateTo is the state a new VM record starts in.
func CreateTo() State { return Creation }

// ChangePackageFrom are the states a change-package request is accepted
// from: ready, or the entry state of a change already requested (the same
// request again is a no-op). A VM further inside the change-package table is
// answered by ChangingPackage.
func ChangePackageFrom() []State { return []State{Ready, ChangePackage} }

// ChangingPackage reports whether s is a change-package state past the
// table's entry (cp_update_ip … cp_start): a change is under way.
func ChangingPackage(s State) bool {
	if s == ChangePackage || s == Ready {
		return false
	}
	return slices.Contains(ChangePackageTable().States(), s)
}

// Terminating reports whether s is a state of the terminate table before
// remove: a terminate is under way.
func Terminating(s State) bool {
	if s.Final() {
		return false
	}
	return slices.Contains(TerminateTable().States(), s)
}

// TerminateFrom are the states a terminate request is accepted from: every
// state but the terminate table's own and the final remove and
// error_terminate (which needs reset-status VM terminate). A deploy in
// progress may be terminated.
func TerminateFrom() []State {
	var out []State
	for _, s := range All() {
		if s == Remove || s == ErrorTerminate || Terminating(s) {
			continue
		}
		out = append(out, s)
	}
	return out
}

// ReinstallFrom are the states a reinstall request is accepted from.
func ReinstallFrom() []State { return []State{Ready} }

// SyncDNSFrom are the states a DNS resync (dns sync) is accepted from.
func SyncDNSFrom() []State { return []State{Ready} }

// DeleteRecordFrom are the states whose record may be deleted: the VM is
// gone from Proxmox (remove) or the cron leaves it alone (error_terminate).
func DeleteRecordFrom() []State { return []State{ErrorTerminate, Remove} }

// PowerFrom are the states a power request (vm start, stop, shutdown,
// reboot) is accepted from.
func PowerFrom() []State { return []State{Ready} }

// PowerAction is a power request as the CLI names it.
type PowerAction string

// The power actions, each with its own table.
const (
	ActionStart    PowerAction = "start"
	ActionStop     PowerAction = "stop"
	ActionShutdown PowerAction = "shutdown"
	ActionReboot   PowerAction = "reboot"
)

// PowerActions lists the power actions.
func PowerActions() []PowerAction {
	return []PowerAction{ActionStart, ActionStop, ActionShutdown, ActionReboot}
}

// Entry is the state the action's request writes (its table's entry).
func (a PowerAction) Entry() State {
	switch a {
	case ActionStart:
		return PowerStart
	case ActionStop:
		return PowerStop
	case ActionShutdown:
		return PowerShutdown
	case ActionReboot:
		return PowerReboot
	}
	return ""
}

// PendingPower returns the power action a VM in state s is carrying out
// (any state of that action's table but ready), and false when none.
func PendingPower(s State) (PowerAction, bool) {
	if s == Ready {
		return "", false
	}
	for _, a := range PowerActions() {
		if p, ok := Pipelines().Get(string(a.Entry())); ok && slices.Contains(p.States(), s) {
			return a, true
		}
	}
	return "", false
}

// SuspendFrom are the states a suspend is carried out from at once. A VM
// in a pipeline that ends in ready (SuspendQueues) gets the suspend queued.
func SuspendFrom() []State { return []State{Ready} }

// Suspending reports whether s is a state of the suspend table (suspend,
// suspend_stopped, suspended): a suspend is under way or done.
func Suspending(s State) bool { return slices.Contains(suspendStates(), s) }

// suspendStates are the suspend table's states, walked once (vm list asks
// for every VM).
var suspendStates = sync.OnceValue(func() []State { return SuspendTable().States() })

// Unsuspending reports whether s is a state of the unsuspend table before ready.
func Unsuspending(s State) bool { return s != Ready && slices.Contains(UnsuspendTable().States(), s) }

// SuspendQueues reports whether a suspend asked while the VM is in state
// s is queued until the VM is ready: s is in a pipeline that ends in
// ready (deploy, change-package, reinstall, DNS resync, a power action,
// an unsuspend).
func SuspendQueues(s State) bool {
	if s.Final() || Suspending(s) || Terminating(s) {
		return false
	}
	return inSomeTable(s)
}

// UnsuspendFrom are the states an unsuspend is accepted from: every
// suspend state (a suspend under way is undone).
func UnsuspendFrom() []State { return []State{Suspend, SuspendStopped, Suspended} }

// SetHostnameFrom are the states a hostname change (vm set-hostname) is
// accepted from: ready, or a hostname change under way (a new name
// replaces the pending one and the rename starts again; the same name
// again changes nothing).
func SetHostnameFrom() []State { return []State{Ready, SetHostname, HostnameRenamed} }

// MigrateFrom are the states a migrate request (vm migrate) is accepted from.
func MigrateFrom() []State { return []State{Ready} }

// RestoreFrom are the states a backup restore (backup restore) is
// accepted from.
func RestoreFrom() []State { return []State{Ready} }

// Restoring reports whether s is a state the restore table has a step
// from (restore, restore_stopped, restore_snapshots_removed; not the
// change_package it hands over to): the restore_backup task drives them;
// process_vms leaves them alone.
func Restoring(s State) bool {
	_, ok := RestoreTable().StepFrom(s)
	return ok
}

// RequestSets names each request's source set, for CheckRequestSets and
// the docs.
func RequestSets() map[string][]State {
	return map[string][]State{
		"change-package":  ChangePackageFrom(),
		"terminate":       TerminateFrom(),
		"reinstall":       ReinstallFrom(),
		"dns sync":        SyncDNSFrom(),
		"delete-record":   DeleteRecordFrom(),
		"vm start":        PowerFrom(),
		"vm stop":         PowerFrom(),
		"vm shutdown":     PowerFrom(),
		"vm reboot":       PowerFrom(),
		"vm suspend":      SuspendFrom(),
		"vm unsuspend":    UnsuspendFrom(),
		"vm migrate":      MigrateFrom(),
		"vm set-hostname": SetHostnameFrom(),
		"backup restore":  RestoreFrom(),
	}
}

// CheckRequestSets checks every request's source set and every reset-status
// target against the pipeline FSMs: each must be a state some table starts
// from or passes through, or a final state.
func CheckRequestSets() error {
	for name, set := range RequestSets() {
		for _, s := range set {
			if !s.Final() && !inSomeTable(s) {
				return fmt.Errorf("request %s: source state %s is not a state of any pipeline", name, s)
			}
		}
	}
	for _, t := range ResetTargets() {
		if _, err := LookupResetTarget(string(t.State)); err != nil {
			return err
		}
	}
	return nil
}
