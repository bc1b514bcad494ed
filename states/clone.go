// Clone steps: the clone of the product's template and the migration to
// the target node (the two heavy steps).

package states

import (
	"context"
	"fmt"
	"strconv"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/store"
)

// cloneTemplate clones the product's template to the reserved VMID, marked
// as ours; the runner follows the clone task (Task "clone").
func cloneTemplate(ctx context.Context, env *Env, vm store.VM) Result {
	p := env.Product
	tpl, err := p.TemplateFor(vm.Template)
	if err != nil {
		return Permanent(fmt.Errorf("product %s: %w; fix the config or reinstall with another --template", vm.Product, err))
	}
	var r proxmox.Resource
	var exists bool
	hold := holdHeavy(env)
	defer hold.done()
	switch {
	case env.TaskDone:
		// Our clone task ended OK on the template's node: PVE made the
		// VM there, with the marker the clone request gave it. Nothing
		// to look at: the record takes the node (the next steps locate
		// the VM before they act), and the marker tag comes with the
		// VM's first config write (Set CPU & RAM).
		if vm.Node != tpl.Node {
			if err := env.Store.VMSetNode(ctx, vm.ID, vm.Status, vm.Version, tpl.Node, env.Now()); err != nil {
				return Retryable(err)
			}
		}
		return Success()
	default:
		// The clone's slot is taken before looking (the look guards only
		// the submit): no slot, wait without asking PVE; nothing to
		// submit, the slot is given back.
		if res := hold.at(tpl.Node); res != nil {
			return *res
		}
		// Look before acting: does the VMID already hold a VM? The pass's
		// view of /cluster/resources is read once per pass and lags a few
		// seconds behind, so also ask the template's node directly (PVE
		// refuses a clone onto a VMID that exists anywhere).
		r, exists, err = findVMIn(ctx, env, vm.VMID)
		if err != nil {
			return fromError("find VM in cluster", err)
		}
	}
	if !exists {
		r = proxmox.Resource{Type: "qemu", VMID: vm.VMID, Node: tpl.Node}
		_, err := env.PVE.VMStatus(ctx, proxmox.VMRef{Node: tpl.Node, VMID: vm.VMID})
		if err != nil && !proxmox.IsNotFound(err) {
			return fromError("look for VM "+strconv.Itoa(vm.VMID), err)
		}
		exists = err == nil
	}
	var cfg proxmox.VMConfig
	if exists {
		cfg, err = env.PVE.VMConfig(ctx, proxmox.VMRef{Node: r.Node, VMID: vm.VMID})
		if proxmox.IsNotFound(err) {
			exists = false // listed, but gone (the list lags a destroy)
		} else if err != nil {
			return fromError("read config of VM "+strconv.Itoa(vm.VMID), err)
		}
		if exists && cfg.Lock() == "clone" {
			if res := staleLock(ctx, env, &vm, "clone"); res != nil {
				return *res
			}
			return Wait("clone in progress (VM locked: clone)")
		}
	}
	if exists {
		if !ours(cfg, vm) {
			return Permanent(fmt.Errorf("VMID %d on node %s holds a VM pvectl did not create (no %q in its notes); not touching it — free the VMID or reset-status creation", vm.VMID, r.Node, marker(vm)))
		}
		if r.Node != vm.Node {
			if err := env.Store.VMSetNode(ctx, vm.ID, vm.Status, vm.Version, r.Node, env.Now()); err != nil {
				return Retryable(err)
			}
		}
		return Success() // an earlier attempt's clone; tagged by Set CPU & RAM
	}
	if res := hold.at(tpl.Node); res != nil {
		return *res
	}
	mode := proxmox.CloneLinked
	storage := ""
	if p.Clone == "full" {
		mode, storage = proxmox.CloneFull, p.SystemDisk.Storage
		if vm.TargetNode != tpl.Node {
			storage = "" // the migration maps storage on the target node
		}
	}
	hold.submitted()
	task, err := env.PVE.Clone(ctx, proxmox.CloneRequest{
		Source: proxmox.VMRef{Node: tpl.Node, VMID: tpl.VMID}, NewID: vm.VMID,
		Name: vm.Hostname, Description: marker(vm) + "\nhostname=" + vm.Hostname, Mode: mode, Storage: storage,
	})
	if proxmox.IsAlreadyExists(err) {
		return Wait(fmt.Sprintf("VMID %d appeared while cloning; looking at it next tick", vm.VMID))
	}
	return submit(ctx, env, vm, "clone", task, err)
}

// cloneTaskError: a clone task that failed because the VMID already exists
// means an earlier attempt (before a crash) made it: look at it.
func cloneTaskError(ctx context.Context, env *Env, vm store.VM, failed Result) Result {
	if proxmox.IsAlreadyExists(failed.Err) {
		return cloneTemplate(ctx, env, vm)
	}
	return failed
}

// migrateToTarget moves the VM offline from the template's node to its
// target node, mapping disks to the product's storage; the runner follows
// the migration task (Task "migrate"), and once it ended OK the record
// takes the target node.
func migrateToTarget(ctx context.Context, env *Env, vm store.VM) Result {
	p := env.Product
	hold := holdHeavy(env)
	defer hold.done()
	switch {
	case env.TaskDone && vm.TargetNode != "":
		// The migration ended OK: PVE moved the VM to the target. The
		// record follows it; no need to look (the next step locates the
		// VM before it acts, and looks cluster-wide if it is not there).
		if vm.Node != vm.TargetNode {
			if err := env.Store.VMSetNode(ctx, vm.ID, vm.Status, vm.Version, vm.TargetNode, env.Now()); err != nil {
				return Retryable(err)
			}
		}
		return Success()
	case vm.TargetNode != "" && vm.TargetNode != vm.Node && vm.Node != "":
		// A migration to make: its slot is taken before looking; no slot,
		// wait without asking PVE.
		if res := hold.at(vm.Node); res != nil {
			return *res
		}
	}
	r, exists, err := findVMNear(ctx, env, vm)
	if err != nil {
		return fromError("find VM in cluster", err)
	}
	if !exists {
		return Permanent(fmt.Errorf("VM %d is not in the cluster", vm.VMID))
	}
	if r.Node == vm.TargetNode || vm.TargetNode == "" {
		if r.Node != vm.Node {
			if err := env.Store.VMSetNode(ctx, vm.ID, vm.Status, vm.Version, r.Node, env.Now()); err != nil {
				return Retryable(err)
			}
			return Success()
		}
		return Skip("already on target node " + r.Node)
	}
	if r.Lock == "migrate" {
		if res := staleLock(ctx, env, &vm, "migrate"); res != nil {
			return *res
		}
		return Wait("migration in progress (VM locked: migrate)")
	}
	if res := hold.at(r.Node); res != nil {
		return *res
	}
	hold.submitted()
	task, err := env.PVE.Migrate(ctx, proxmox.MigrateRequest{VM: proxmox.VMRef{Node: r.Node, VMID: vm.VMID},
		Target: vm.TargetNode, TargetStorage: p.SystemDisk.Storage})
	if proxmox.IsNotFound(err) {
		return Wait(fmt.Sprintf("VM %d is not on %s any more (the cluster list lags); looking again next tick", vm.VMID, r.Node))
	}
	return submit(ctx, env, vm, "migrate to "+vm.TargetNode, task, err)
}
