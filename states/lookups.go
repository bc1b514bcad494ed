// What a step already knows, so it does not ask PVE again: the pass's one
// view of /cluster/resources (Fleet), and the status or config the runner
// read to locate the VM for the step about to run (a step's own look).

package states

import (
	"context"
	"sync"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/store"
)

// Fleet is one process_vms pass's view of /cluster/resources: read once, by
// the first step that needs it (workers running at the same time wait for
// that read), and shared by every step of the pass. It is never kept
// across passes. A failed read is not kept: the next step asks again.
//
// It serves only looks that a view from earlier in the pass cannot mislead
// into a duplicate: the VMID allocation (the store's unique VMIDs keep
// workers apart, and PVE refuses a clone onto a VMID that exists), the
// placement of a new VM, the safety net's list of marked VMs, the first
// look of a clone (followed by a direct look on the template's node) and
// the list of storages. Whether a VM is gone (terminate, reinstall) is
// always asked fresh.
type Fleet struct {
	mu  sync.Mutex
	all []proxmox.Resource
	ok  bool
}

// NewFleet returns a view that has not been read yet.
func NewFleet() *Fleet { return &Fleet{} }

// Resources returns the pass's view filtered as PVE filters type (all, vm,
// node, storage).
func (f *Fleet) Resources(ctx context.Context, pve proxmox.Client, typ proxmox.ResourceType) ([]proxmox.Resource, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.ok {
		all, err := pve.ClusterResources(ctx, proxmox.ResourceAll)
		if err != nil {
			return nil, err
		}
		f.all, f.ok = all, true
	}
	if typ == proxmox.ResourceAll {
		return f.all, nil
	}
	out := make([]proxmox.Resource, 0, len(f.all))
	for _, r := range f.all {
		if resourceOfType(r, typ) {
			out = append(out, r)
		}
	}
	return out, nil
}

// resourceOfType is PVE's type filter of /cluster/resources: "vm" lists
// qemu and lxc guests.
func resourceOfType(r proxmox.Resource, typ proxmox.ResourceType) bool {
	switch typ {
	case proxmox.ResourceVM:
		return r.Type == "qemu" || r.Type == "lxc"
	case proxmox.ResourceNode:
		return r.Type == "node"
	case proxmox.ResourceStorage:
		return r.Type == "storage"
	}
	return true
}

// fleetResources is the pass's view when the runner gave one, a fresh
// read otherwise. Use it only where Fleet says a view from earlier in the
// pass is safe.
func fleetResources(ctx context.Context, env *Env, typ proxmox.ResourceType) ([]proxmox.Resource, error) {
	if env.Fleet != nil {
		return env.Fleet.Resources(ctx, env.PVE, typ)
	}
	return env.PVE.ClusterResources(ctx, typ)
}

// looked is what the runner read about the VM for the step about to run
// (Step.Call's location and config): the step's own look. The step's first
// read of the same thing takes it instead of asking PVE again; a later
// read (after the step acted) asks PVE.
type looked struct {
	at     proxmox.VMRef
	status *proxmox.VMStatus
	config *proxmox.VMConfig
}

// takeStatus returns the status the runner read for this VM at its current
// node, once.
func (env *Env) takeStatus(vm store.VM) (proxmox.VMStatus, bool) {
	l := env.looked
	if l == nil || l.status == nil || l.at != ref(vm) {
		return proxmox.VMStatus{}, false
	}
	st := *l.status
	l.status = nil
	return st, true
}

// takeConfig returns the config the runner read for this VM at its current
// node, once.
func (env *Env) takeConfig(vm store.VM) (proxmox.VMConfig, bool) {
	l := env.looked
	if l == nil || l.config == nil || l.at != ref(vm) {
		return proxmox.VMConfig{}, false
	}
	cfg := *l.config
	l.config = nil
	return cfg, true
}

// readConfig is the VM's config: the one the runner just read for this
// step, once, or PVE's.
func readConfig(ctx context.Context, env *Env, vm store.VM) (proxmox.VMConfig, error) {
	if cfg, ok := env.takeConfig(vm); ok {
		return cfg, nil
	}
	return env.PVE.VMConfig(ctx, ref(vm))
}
