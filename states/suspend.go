// Suspend and unsuspend (billing): the steps of the suspend and unsuspend
// tables (tables.go). What the VM had before the suspend (onboot, and the
// customers' PVE access it takes away: ACL entries on /vms/VMID and pool
// membership) is kept in the record (suspend_saved) until the unsuspend
// restored it.

package states

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/store"
)

// SuspendedTag is the PVE tag a suspended VM carries.
const SuspendedTag = "suspended"

// suspendSaved is what a VM had before its suspend: onboot, and the
// customers' PVE access the suspend took away (ACL entries on the VM's path,
// pool membership) when suspend.revoke_access is on.
type suspendSaved struct {
	Onboot    string `json:"onboot"` // "" when onboot was not set (PVE's default: 0)
	HadOnboot bool   `json:"had_onboot"`
	// ACL holds the entries removed from /vms/VMID, each with its role,
	// principal and propagate flag.
	ACL []proxmox.ACLEntry `json:"acl,omitempty"`
	// Pool is the pool the VM was taken out of ("" = none).
	Pool string `json:"pool,omitempty"`
}

// loadSaved reads the record's suspend_saved; ok is false when nothing is
// saved.
func loadSaved(vm store.VM) (saved suspendSaved, ok bool, err error) {
	if vm.SuspendSaved == "" {
		return saved, false, nil
	}
	if err := json.Unmarshal([]byte(vm.SuspendSaved), &saved); err != nil {
		return saved, false, fmt.Errorf("suspend_saved of the record is not valid JSON: %w", err)
	}
	return saved, true, nil
}

// stopForSuspend stops the VM: a graceful shutdown, then a forced stop
// once stop_timeout has passed (as the change-package's stop).
func stopForSuspend(ctx context.Context, env *Env, vm store.VM) Result {
	res := stopForChange(ctx, env, vm)
	if res.Kind.Advances() {
		seen(ctx, env, vm, "stopped")
	}
	return res
}

// markSuspended takes the customers' PVE access away (revoke_access) and
// sets onboot=0 and the suspended tag, after keeping in the record what
// the VM had. What is kept only grows: a rerun (after a crash between
// saving and removing, or between removing and the state's advance) reads
// PVE again, adds what it still finds to what was kept and never replaces
// the kept list with the shorter one it reads after the removal.
func markSuspended(ctx context.Context, env *Env, vm store.VM) Result {
	cfg := env.VMConfig
	onboot, has := cfg.Get("onboot")
	saved, ok, err := loadSaved(vm)
	if err != nil {
		return Permanent(err)
	}
	if !ok {
		saved = suspendSaved{Onboot: onboot, HadOnboot: has}
	}
	var revoke []proxmox.ACLEntry
	var pool string
	if env.Config.Suspend.RevokeAccessOn() {
		if revoke, pool, err = accessToRevoke(ctx, env, vm); err != nil {
			return fromError("read the VM's ACL entries and pool", err)
		}
	}
	grew := false
	for _, e := range revoke {
		if !slices.Contains(saved.ACL, e) {
			saved.ACL = append(saved.ACL, e)
			grew = true
		}
	}
	if pool != "" && saved.Pool == "" {
		saved.Pool, grew = pool, true
	}
	if !ok || grew {
		b, _ := json.Marshal(saved)
		if err := env.Store.VMSetSuspendSaved(ctx, vm.ID, string(b), env.Now()); err != nil {
			return Retryable(err)
		}
	}
	var revoked []string
	for _, e := range revoke {
		err := env.PVE.RevokeACL(ctx, e)
		switch {
		case err == nil:
			revoked = append(revoked, describeACL(e))
		case proxmox.IsUnknownPrincipal(err) || proxmox.IsUnknownRole(err):
			// Deleted in PVE since the read, and its entries with it.
		default:
			return fromError("revoke "+describeACL(e), err)
		}
	}
	if pool != "" {
		err := env.PVE.RemoveFromPool(ctx, pool, vm.VMID)
		switch {
		case err == nil:
			revoked = append(revoked, "member of pool "+pool)
		case proxmox.IsNotFound(err) || proxmox.IsUnknownPool(err):
			// Already out of it (or the pool is gone).
		default:
			return fromError("remove from pool "+pool, err)
		}
	}
	if len(revoked) > 0 {
		env.Emit("revoked access: " + strings.Join(revoked, "; "))
	}
	if cfg.HasTag(SuspendedTag) && onboot == "0" {
		if len(revoked) > 0 {
			return Success()
		}
		return Skip("already onboot=0 and tagged " + SuspendedTag)
	}
	tags := cfg.Tags()
	if !slices.Contains(tags, SuspendedTag) {
		tags = append(tags, SuspendedTag)
	}
	err = env.PVE.SetConfigSync(ctx, ref(vm), proxmox.ConfigChange{Set: map[string]string{
		"onboot": "0", "tags": strings.Join(tags, ";")}})
	if err != nil {
		return fromError("set onboot and tags", err)
	}
	return Success()
}

// accessToRevoke reads what a suspend takes away: the ACL entries on the
// VM's own path (/vms/VMID) whose principal is not kept
// (suspend.keep_access, pvectl's own token and its user), and the VM's pool
// (/cluster/resources names it).
func accessToRevoke(ctx context.Context, env *Env, vm store.VM) ([]proxmox.ACLEntry, string, error) {
	acl, err := env.PVE.ACL(ctx)
	if err != nil {
		return nil, "", err
	}
	keep := keptPrincipals(env)
	path := vmACLPath(vm.VMID)
	var revoke []proxmox.ACLEntry
	for _, e := range acl {
		if e.Path == path && !keep[e.Principal()] {
			revoke = append(revoke, e)
		}
	}
	res, err := env.PVE.ClusterResources(ctx, proxmox.ResourceVM)
	if err != nil {
		return nil, "", err
	}
	for _, r := range res {
		if r.IsVM() && r.VMID == vm.VMID {
			return revoke, r.Pool, nil
		}
	}
	return revoke, "", nil
}

// keptPrincipals: suspend.keep_access, pvectl's own API token and the
// token's user.
func keptPrincipals(env *Env) map[string]bool {
	keep := map[string]bool{}
	for _, p := range env.Config.Suspend.KeepAccess {
		keep[p] = true
	}
	if id := env.Config.Proxmox.TokenID; id != "" {
		keep[id] = true
		user, _, _ := strings.Cut(id, "!")
		keep[user] = true
	}
	return keep
}

func vmACLPath(vmid int) string { return "/vms/" + strconv.Itoa(vmid) }

func describeACL(e proxmox.ACLEntry) string {
	s := e.RoleID + " for " + e.Principal() + " on " + e.Path
	if !e.Propagate {
		s += " (no propagate)"
	}
	return s
}

// restoreSuspended gives back the access the suspend took away (the saved
// ACL entries and pool membership), puts onboot back as it was and
// removes the suspended tag; nothing saved (the suspend never reached its
// config step) means only the tag is looked at. An entry whose principal or
// role, or a pool, no longer exists in PVE is logged and left: the
// unsuspend carries on.
func restoreSuspended(ctx context.Context, env *Env, vm store.VM) Result {
	cfg := env.VMConfig
	saved, ok, err := loadSaved(vm)
	if err != nil {
		return Permanent(err)
	}
	acted := false
	if ok && (len(saved.ACL) > 0 || saved.Pool != "") {
		did, res := restoreAccess(ctx, env, vm, saved)
		if res != nil {
			return *res
		}
		acted = did
	}
	change := proxmox.ConfigChange{Set: map[string]string{}}
	if cfg.HasTag(SuspendedTag) {
		var keep []string
		for _, t := range cfg.Tags() {
			if t != SuspendedTag {
				keep = append(keep, t)
			}
		}
		if len(keep) == 0 {
			change.Delete = append(change.Delete, "tags")
		} else {
			change.Set["tags"] = strings.Join(keep, ";")
		}
	}
	if ok {
		cur, has := cfg.Get("onboot")
		switch {
		case saved.HadOnboot && cur != saved.Onboot:
			change.Set["onboot"] = saved.Onboot
		case !saved.HadOnboot && has:
			change.Delete = append(change.Delete, "onboot")
		}
	}
	if len(change.Set) == 0 && len(change.Delete) == 0 {
		_ = env.Store.VMSetSuspendSaved(ctx, vm.ID, "", env.Now())
		if acted {
			return Success()
		}
		return Skip("nothing to restore")
	}
	if len(change.Set) == 0 {
		change.Set = nil
	}
	if err := env.PVE.SetConfigSync(ctx, ref(vm), change); err != nil {
		return fromError("restore onboot and tags", err)
	}
	_ = env.Store.VMSetSuspendSaved(ctx, vm.ID, "", env.Now()) // a rerun restores the same
	env.Emit(fmt.Sprintf("restored onboot and tags (%s)", describeChange(change)))
	return Success()
}

// restoreAccess grants the saved ACL entries and pool membership that PVE
// does not show now (look before act; a rerun finds them there). acted
// says whether anything was changed or logged; res is set when the step
// must stop here.
func restoreAccess(ctx context.Context, env *Env, vm store.VM, saved suspendSaved) (acted bool, res *Result) {
	stop := func(r Result) (bool, *Result) { return acted, &r }
	var restored []string
	if len(saved.ACL) > 0 {
		acl, err := env.PVE.ACL(ctx)
		if err != nil {
			return stop(fromError("read the ACL", err))
		}
		for _, e := range saved.ACL {
			if slices.Contains(acl, e) {
				continue
			}
			err := env.PVE.GrantACL(ctx, e)
			switch {
			case err == nil:
				restored = append(restored, describeACL(e))
			case proxmox.IsUnknownPrincipal(err) || proxmox.IsUnknownRole(err):
				env.Emit(fmt.Sprintf("access not restored: %s: %s", describeACL(e), pveMessage(err)))
				acted = true
			default:
				return stop(fromError("restore "+describeACL(e), err))
			}
		}
	}
	if saved.Pool != "" {
		res, err := env.PVE.ClusterResources(ctx, proxmox.ResourceVM)
		if err != nil {
			return stop(fromError("read the VM's pool", err))
		}
		cur := ""
		for _, r := range res {
			if r.IsVM() && r.VMID == vm.VMID {
				cur = r.Pool
			}
		}
		switch {
		case cur == saved.Pool:
		case cur != "":
			env.Emit(fmt.Sprintf("access not restored: member of pool %s: the VM is in pool %s now", saved.Pool, cur))
			acted = true
		default:
			err := env.PVE.AddToPool(ctx, saved.Pool, vm.VMID)
			switch {
			case err == nil:
				restored = append(restored, "member of pool "+saved.Pool)
			case proxmox.IsAlreadyExists(err):
			case proxmox.IsUnknownPool(err) || proxmox.Classify(err) == proxmox.ClassPrecondition:
				env.Emit(fmt.Sprintf("access not restored: member of pool %s: %s", saved.Pool, pveMessage(err)))
				acted = true
			default:
				return stop(fromError("restore member of pool "+saved.Pool, err))
			}
		}
	}
	if len(restored) > 0 {
		env.Emit("restored access: " + strings.Join(restored, "; "))
		acted = true
	}
	return acted, nil
}

// pveMessage is PVE's own message of an error (without the request).
func pveMessage(err error) string {
	var pe *proxmox.Error
	if errors.As(err, &pe) && pe.Message != "" {
		return pe.Message
	}
	return err.Error()
}

func describeChange(c proxmox.ConfigChange) string {
	var parts []string
	for _, k := range []string{"onboot", "tags"} {
		if v, ok := c.Set[k]; ok {
			parts = append(parts, k+"="+v)
		}
	}
	for _, k := range c.Delete {
		parts = append(parts, "delete "+k)
	}
	return strings.Join(parts, ", ")
}

// KeepSuspended stops again a suspended VM that a pass found running
// (started through some other path than pvectl): a forced stop, not
// followed (the next pass looks again). It returns what to log.
func KeepSuspended(ctx context.Context, env *Env, vm store.VM) string {
	task, err := env.PVE.Stop(ctx, ref(vm), proxmox.StopOptions{OverruleShutdown: true})
	switch {
	case err == nil:
		seen(ctx, env, vm, "running")
		return fmt.Sprintf("suspended VM found running; stopped again (task %s)", task.UPID)
	case proxmox.IsNotRunning(err) || proxmox.IsNotFound(err):
		return ""
	default:
		return fmt.Sprintf("suspended VM found running; stopping it failed: %v (the next pass tries again)", err)
	}
}
