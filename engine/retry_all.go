package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
)

// RetryFilter selects the VMs of pvectl vm retry --all: those held or
// backing off, narrowed by the flags.
type RetryFilter struct {
	HeldOnly   bool   // --held: not the ones only backing off
	Status     string // --state: only VMs in this state
	ErrorClass string // --error-class: only VMs whose last error is of this PVE error class
}

// Validate checks the filter's values; a bad one is an *ErrInvalid naming
// the valid ones.
func (f RetryFilter) Validate() error {
	if f.Status != "" && !states.State(f.Status).Valid() {
		var names []string
		for _, s := range states.All() {
			names = append(names, string(s))
		}
		return &ErrInvalid{Field: "--state", Rule: fmt.Sprintf("--state: unknown state %q; valid: %s", f.Status, strings.Join(names, ", "))}
	}
	if f.ErrorClass != "" && !slices.Contains(proxmox.ClassNames(), f.ErrorClass) {
		return &ErrInvalid{Field: "--error-class", Rule: fmt.Sprintf("--error-class: unknown error class %q; valid: %s", f.ErrorClass, strings.Join(proxmox.ClassNames(), ", "))}
	}
	return nil
}

// RetryCandidates lists the VMs pvectl vm retry --all would release: held
// or backing off, matching f, oldest record first.
func (e *Engine) RetryCandidates(ctx context.Context, f RetryFilter) ([]VM, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	vms, err := e.Store.VMList(ctx, store.VMFilter{Status: f.Status})
	if err != nil {
		return nil, err
	}
	now := e.Clock.Now()
	var out []VM
	for _, vm := range vms {
		switch {
		case !vm.Held && !vm.NextAttemptAt.After(now):
			continue // nothing to release
		case f.HeldOnly && !vm.Held:
			continue
		case f.ErrorClass != "" && !strings.Contains(vm.LastError, "["+f.ErrorClass+"]"):
			continue
		}
		out = append(out, vm)
	}
	return out, nil
}
