package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
)

// RestoreBackup asks for the backup volid to be restored over a ready VM
// (pvectl backup restore VM VOLID), after the confirmation: the VM goes to
// restore with the volume in the record (restore_volid), and the request
// returns at once. The restore_backup task stops the VM, deletes its
// snapshots and restores the archive; process_vms then re-applies the VM's
// product (the change-package steps) and starts it.
//
// PVE is the truth about which backups exist: volid must be one of the
// VM's archives (vzdump-qemu-VMID-…) in the content of a storage some
// product backs up to, as backup list shows them, reachable from the VM's
// node; otherwise an *ErrInvalid naming the VM's backups (or saying it has
// none). A VM in any state but ready is an *ErrWrongState; so is a VM whose
// backup (or its quota rotation) is running in PVE.
func (e *Engine) RestoreBackup(ctx context.Context, ref, volid string, ask Ask) (Result, error) {
	volid = strings.TrimSpace(volid)
	if volid == "" {
		return Result{}, &ErrInvalid{Field: "VOLID", Rule: "VOLID is required: a backup volume id as pvectl backup list VM shows it (e.g. local:backup/vzdump-qemu-1000-2026_11_25-01_00_00.vma.zst)"}
	}
	vm, err := e.FindVM(ctx, ref)
	if err != nil {
		return Result{}, err
	}
	res := Result{VM: vm, From: states.State(vm.Status)}
	if err := allowed(vm, states.RestoreFrom()); err != nil {
		return res, &ErrWrongState{VM: vm.ServiceID, State: res.From, Allowed: states.RestoreFrom(),
			Msg: fmt.Sprintf("VM %s is in state %s (allowed: %s): backup restore is only for a ready VM", vm.ServiceID, vm.Status,
				joinStates(states.RestoreFrom()))}
	}
	if b, ok, err := e.Store.BackupInFlight(ctx, vm.ID); err != nil {
		return res, err
	} else if ok {
		what := "backup #" + fmt.Sprint(b.ID) + " is running"
		if b.State == store.BackupStateRotating {
			what = fmt.Sprintf("backup #%d is deleting %s for the quota", b.ID, b.RotateVolID)
		}
		return res, &ErrWrongState{VM: vm.ServiceID, State: res.From, Allowed: states.RestoreFrom(),
			Msg: fmt.Sprintf("VM %s: %s in PVE; a restore is refused until it ended (pvectl backup list %s), then ask again", vm.ServiceID, what, vm.ServiceID)}
	}
	env, err := e.Env(ctx)
	if err != nil {
		return res, err
	}
	if env.PVE == nil {
		return res, errors.New("no Proxmox connection configured: cannot check the backup")
	}
	vols, err := e.backupVolumes(ctx, env.PVE, vm.VMID)
	if err != nil {
		return res, fmt.Errorf("list the backups of VM %s (VMID %d): %w; nothing changed", vm.ServiceID, vm.VMID, err)
	}
	var found *BackupVolume
	names := make([]string, 0, len(vols))
	for i, v := range vols {
		names = append(names, v.VolID)
		if v.VolID == volid {
			found = &vols[i]
		}
	}
	if found == nil {
		rule := fmt.Sprintf("VOLID %q is not a backup of VM %s (VMID %d)", volid, vm.ServiceID, vm.VMID)
		if len(names) == 0 {
			rule += fmt.Sprintf("; it has no backups on %s", strings.Join(e.Config.BackupStorages(), ", "))
		} else {
			rule += "; its backups: " + strings.Join(names, ", ")
		}
		return res, &ErrInvalid{Field: "VOLID", Rule: rule}
	}
	if found.Node != vm.Node {
		shared, err := sharedStorage(ctx, env.PVE, found.Storage)
		if err != nil {
			return res, err
		}
		if !shared {
			return res, &ErrInvalid{Field: "VOLID", Rule: fmt.Sprintf("backup %s is on storage %s of node %s, but VM %s runs on %s: PVE restores on the VM's node (migrate the VM there first)",
				volid, found.Storage, found.Node, vm.ServiceID, vm.Node)}
		}
	}
	when := "unknown time"
	if !found.CTime.IsZero() {
		when = e.HumanTime(found.CTime)
	}
	if err := ask.confirm(fmt.Sprintf("Stop VM %s, delete its snapshots and overwrite its disks with backup %s (from %s)?", vm.ServiceID, volid, when)); err != nil {
		return res, err
	}
	audit := e.audit(vm.ServiceID, "backup restore", vm.Status, states.Restore, "backup "+volid)
	got, err := e.requestWith(ctx, vm, states.RestoreFrom(), states.Restore, "", store.RequestOpts{RestoreVolid: volid}, audit)
	if err != nil {
		return res, err
	}
	res.VM, res.Changed, res.Audit = got, true, audit
	return res, nil
}

// sharedStorage reports whether PVE marks the storage shared (the same
// volumes on every node).
func sharedStorage(ctx context.Context, pve proxmox.Client, storage string) (bool, error) {
	all, err := pve.ClusterResources(ctx, proxmox.ResourceStorage)
	if err != nil {
		return false, fmt.Errorf("list storages: %w", err)
	}
	for _, st := range all {
		if st.Type == "storage" && st.Storage == storage && st.Shared {
			return true, nil
		}
	}
	return false, nil
}
