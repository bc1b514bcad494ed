// Migrate a ready VM (pvectl vm migrate VM --node N [--online]): the steps
// of the migrate table (tables.go). The request records the node asked
// for and --online and clears target_node; the first step chooses the
// target once (a named node, or "auto": the deploy's placement rule
// without the current node), keeps it in target_node before PVE is asked,
// and submits the migration; the runner follows the task and records the
// VM's new node. A VM found on its target is done, whatever became of the
// task (a kill -9 between the POST and the UPID's write, say): no second
// migration is ever sent for a VM that has arrived.

package states

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/store"
)

// migrateVM chooses the target (once), looks where the VM is, and
// migrates it: live (online=1, with-local-disks=1 when a disk is on local
// storage) when it runs and the request said --online, offline when it is
// stopped. A running VM asked without --online is held: pvectl does not
// stop a customer's VM on its own.
func migrateVM(ctx context.Context, env *Env, vm store.VM) Result {
	if env.TaskDone {
		// The runner located the VM before it looked at the task.
		if vm.TargetNode != "" && vm.Node != vm.TargetNode {
			return Retryable(fmt.Errorf("the migrate task ended OK but VM %d is on %s, not %s; looking again", vm.VMID, vm.Node, vm.TargetNode))
		}
		env.Emit("now on node " + vm.Node)
		return Success()
	}
	target := vm.TargetNode
	if target == "" {
		all, err := env.PVE.ClusterResources(ctx, proxmox.ResourceAll)
		if err != nil {
			return fromError("list cluster resources", err)
		}
		want := vm.MigrateNode
		if want == "" {
			want = "auto" // a migrate state set by hand (reset-status)
		}
		target, err = placeNode(want, vm.Product, env.Product, all, vm.Node)
		if errors.Is(err, errUnknownNode) {
			return Permanent(fmt.Errorf("node %s is not in the cluster: pvectl reset-status %s ready, then vm migrate to a cluster node", want, vm.ServiceID))
		}
		if err != nil {
			return Retryable(err)
		}
		if err := env.Store.VMSetTargetNode(ctx, vm.ID, vm.Status, vm.Version, target, env.Now()); err != nil {
			return Retryable(err)
		}
		env.Emit(fmt.Sprintf("target node %s (asked: %s)", target, want))
	}
	if vm.Node == target {
		return Skip("already on node " + target)
	}
	// The step resolves only the VM's location: its config is read here,
	// after the pending task was followed, and a VM gone from the node it
	// was just found on has been moved by its migration, which ended
	// between the two reads: look again, never hold it.
	if env.VMConfig.Values == nil {
		cfg, err := env.PVE.VMConfig(ctx, ref(vm))
		if proxmox.IsNotFound(err) {
			return Wait(fmt.Sprintf("VM %d is not on %s any more (its migration just ended?); looking again next tick", vm.VMID, vm.Node))
		}
		if err != nil {
			return fromError("read config", err)
		}
		env.VMConfig = cfg
	}
	if env.VMConfig.Lock() == "migrate" {
		if res := staleLock(ctx, env, &vm, "migrate"); res != nil {
			return *res
		}
		return Wait("migration in progress (VM locked: migrate)")
	}
	st, err := readStatus(ctx, env, vm)
	if proxmox.IsNotFound(err) {
		return Wait(fmt.Sprintf("VM %d is not on %s any more (moved?); looking again next tick", vm.VMID, vm.Node))
	}
	if err != nil {
		return fromError("read VM status", err)
	}
	running := !st.Stopped()
	if running && !vm.MigrateOnline {
		return Permanent(fmt.Errorf("VM %d is running and the migration was asked without --online; to migrate it live: pvectl reset-status %s ready, then pvectl vm migrate %s --node %s --online (or stop it first)",
			vm.VMID, vm.ServiceID, vm.ServiceID, vm.MigrateNode))
	}
	if res := noHeavySlot(env, vm.Node); res != nil {
		return *res
	}
	req := proxmox.MigrateRequest{VM: ref(vm), Target: target}
	what := "migrate to " + target
	if running {
		req.Online = true
		local, err := localDisks(ctx, env, vm)
		if err != nil {
			return fromError("list storages", err)
		}
		req.WithLocalDisks = len(local) > 0
		what = "live migrate to " + target
		if req.WithLocalDisks {
			what += " with local disks " + strings.Join(local, ", ")
		}
	}
	task, err := env.PVE.Migrate(ctx, req)
	if proxmox.IsNotFound(err) {
		return Wait(fmt.Sprintf("VM %d is not on %s any more (the cluster list lags); looking again next tick", vm.VMID, vm.Node))
	}
	return submit(ctx, env, vm, what, task, err)
}

var diskKeyRe = regexp.MustCompile(`^(scsi|virtio|sata|ide|efidisk|tpmstate)\d+$`)

// localDisks returns the VM's disks (config keys) on storage that is not
// shared between nodes: a live migration copies them (with-local-disks).
// A storage the cluster does not list counts as local.
func localDisks(ctx context.Context, env *Env, vm store.VM) ([]string, error) {
	var disks []string
	storages := map[string]string{}
	for k, v := range env.VMConfig.Values {
		if !diskKeyRe.MatchString(k) || strings.Contains(v, "media=cdrom") {
			continue
		}
		st, _, ok := strings.Cut(strings.SplitN(v, ",", 2)[0], ":")
		if !ok || st == "" {
			continue
		}
		disks = append(disks, k)
		storages[k] = st
	}
	if len(disks) == 0 {
		return nil, nil
	}
	res, err := env.PVE.ClusterResources(ctx, proxmox.ResourceStorage)
	if err != nil {
		return nil, err
	}
	shared := map[string]bool{}
	for _, r := range res {
		if r.Type == "storage" && r.Node == vm.Node {
			shared[r.Storage] = r.Shared
		}
	}
	var local []string
	for _, k := range disks {
		if !shared[storages[k]] {
			local = append(local, k)
		}
	}
	slices.Sort(local)
	return local, nil
}

// verifyFirewallAfterMigrate reads the anti-spoofing IP set and the
// firewall options on the VM's new node (PVE keeps them with the VM) and
// re-applies what is missing.
func verifyFirewallAfterMigrate(ctx context.Context, env *Env, vm store.VM) Result {
	res := configureFirewall(ctx, env, vm)
	switch res.Kind {
	case Skipped:
		env.Emit("IP set and firewall options in place on node " + vm.Node)
		return Success()
	case Done:
		env.Emit("IP set or firewall options were missing on node " + vm.Node + "; re-applied")
		return Success()
	}
	return res
}
