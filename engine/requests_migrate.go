package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/pvectl/pvectl/config"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
)

// MigrateAuto is the --node value that lets the deploy's placement rule
// pick the target (the VM's current node excluded).
const MigrateAuto = "auto"

// Migrate asks for a ready VM to be moved to node ("auto": the deploy's
// placement rule, the current node excluded): the VM goes to migrate with
// the node and online recorded, and the request returns at once; the
// ticks choose the target, migrate the VM (live when it runs and online
// is set, offline otherwise) and verify its IP set and firewall on the
// new node. A VM pvectl last saw running needs online (an *ErrInvalid
// naming --online): PVE cannot migrate a running VM offline, and pvectl
// does not stop a customer's VM on its own. The same migration asked
// again while it is under way changes nothing; a different one is an
// *ErrWrongState naming the pending one. Any other state is an
// *ErrWrongState listing states.MigrateFrom.
func (e *Engine) Migrate(ctx context.Context, ref, node string, online bool) (Result, error) {
	if node == "" {
		return Result{}, &ErrInvalid{Field: "--node", Rule: "--node is required: a cluster node name, or auto"}
	}
	if node != MigrateAuto {
		if err := config.ValidNodeName(node); err != nil {
			return Result{}, &ErrInvalid{Field: "--node", Rule: "--node: " + err.Error()}
		}
	}
	vm, err := e.FindVM(ctx, ref)
	if err != nil {
		return Result{}, err
	}
	res := Result{VM: vm, From: states.State(vm.Status)}
	if res.From == states.Migrate || res.From == states.MigrateMoved {
		if vm.MigrateNode == node && vm.MigrateOnline == online {
			return res, nil // the same request again: nothing to change
		}
		return res, &ErrWrongState{VM: vm.ServiceID, State: res.From, Allowed: states.MigrateFrom(),
			Msg: fmt.Sprintf("VM %s has a pending migration (--node %s%s, status %s); another is refused until it is done — wait for ready (pvectl vm show %s), then ask again",
				vm.ServiceID, vm.MigrateNode, onlineFlag(vm.MigrateOnline), vm.Status, vm.ServiceID)}
	}
	if err := allowed(vm, states.MigrateFrom()); err != nil {
		return res, &ErrWrongState{VM: vm.ServiceID, State: res.From, Allowed: states.MigrateFrom(),
			Msg: fmt.Sprintf("VM %s is in state %s (allowed: %s): vm migrate is only for a ready VM", vm.ServiceID, vm.Status,
				joinStates(states.MigrateFrom()))}
	}
	if vm.PowerState == "running" && !online {
		return res, &ErrInvalid{Field: "--online", Rule: fmt.Sprintf("VM %s is running (as last seen): migrate it live with --online, or stop it first (pvectl vm stop %s)",
			vm.ServiceID, vm.ServiceID)}
	}
	opts := []string{"node " + node}
	if online {
		opts = append(opts, "online")
	}
	audit := e.audit(vm.ServiceID, "vm migrate", vm.Status, states.Migrate, opts...)
	got, err := e.Store.Audited(audit).VMRequestWith(ctx, vm.ID, []string{string(states.Ready)}, string(states.Migrate), "",
		store.RequestOpts{MigrateNode: node, MigrateOnline: online}, e.Clock.Now())
	if errors.Is(err, store.ErrWrongState) {
		return res, &ErrWrongState{VM: vm.ServiceID, State: res.From, Allowed: states.MigrateFrom(), Msg: err.Error()}
	}
	if err != nil {
		return res, err
	}
	res.VM, res.Changed, res.Audit = got, true, audit
	return res, nil
}

func onlineFlag(online bool) string {
	if online {
		return " --online"
	}
	return ""
}
