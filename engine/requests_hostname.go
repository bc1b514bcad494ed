package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/pvectl/pvectl/providers/dns"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
)

// SetHostname is a request to rename a ready VM: the record takes the new
// name at once (so no other VM can take it), then ticks rename the VM in
// PVE (name, cloud-init hostname, description) and move its DNS records
// from the old name to the new one (the set_hostname table). The new name
// is checked like vm create's --hostname: a fully qualified name, not a
// zone apex, not used by another live VM, holding no DNS records yet. A
// new name while a rename is under way replaces it; the same name again
// changes nothing.
func (e *Engine) SetHostname(ctx context.Context, ref, hostname string) (Result, error) {
	const field = "NEW"
	hostname, p := checkHostname(e.Config, field, hostname)
	if p != nil {
		return Result{}, p
	}
	vm, err := e.FindVM(ctx, ref)
	if err != nil {
		return Result{}, err
	}
	res := Result{VM: vm, From: states.State(vm.Status)}
	if err := allowed(vm, states.SetHostnameFrom()); err != nil {
		return res, &ErrWrongState{VM: vm.ServiceID, State: res.From, Allowed: states.SetHostnameFrom(),
			Msg: fmt.Sprintf("VM %s is in state %s (allowed: %s): vm set-hostname is only for a ready VM", vm.ServiceID, vm.Status,
				joinStates(states.SetHostnameFrom()))}
	}
	if vm.Hostname == hostname {
		return res, nil // already its name, or the same rename again
	}
	if len(dns.MatchForward(DNSZones(e.Config), hostname)) > 0 {
		if other, err := e.Store.VMFind(ctx, hostname); err == nil && other.Status != string(states.Remove) {
			return res, &conflictError{msg: fmt.Sprintf("hostname %s is used by service %s (status %s); nothing changed", hostname, other.ServiceID, other.Status),
				cause: store.ErrDuplicate}
		}
		p, warning, err := e.nameFreeProblem(ctx, field, hostname)
		if err != nil {
			return res, err
		}
		if p != nil {
			return res, p
		}
		if warning != "" {
			res.Warnings = append(res.Warnings, warning)
		}
	}
	audit := e.audit(vm.ServiceID, "vm set-hostname", vm.Status, states.SetHostname, vm.Hostname+" → "+hostname)
	got, err := e.requestWith(ctx, vm, states.SetHostnameFrom(), states.SetHostname, "", store.RequestOpts{Hostname: hostname, KeepQueuedSuspend: true}, audit)
	if errors.Is(err, store.ErrDuplicate) {
		return res, &conflictError{msg: err.Error() + "; nothing changed", cause: err}
	}
	if err != nil {
		return res, err
	}
	res.VM, res.Changed, res.Audit = got, true, audit
	return res, nil
}
