// Suspend and unsuspend (billing): the steps of the suspend and unsuspend
// tables (tables.go). What the VM had before the suspend (onboot, tags) is
// kept in the record (suspend_saved) until the unsuspend restored it.

package states

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/store"
)

// SuspendedTag is the PVE tag a suspended VM carries.
const SuspendedTag = "suspended"

// suspendSaved is what a VM had before its suspend.
type suspendSaved struct {
	Onboot    string `json:"onboot"` // "" when onboot was not set (PVE's default: 0)
	HadOnboot bool   `json:"had_onboot"`
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

// markSuspended sets onboot=0 and adds the suspended tag, after keeping
// what onboot was (once: a second run finds it kept and the config marked).
func markSuspended(ctx context.Context, env *Env, vm store.VM) Result {
	cfg := env.VMConfig
	onboot, has := cfg.Get("onboot")
	if cfg.HasTag(SuspendedTag) && onboot == "0" {
		return Skip("already onboot=0 and tagged " + SuspendedTag)
	}
	if vm.SuspendSaved == "" {
		b, _ := json.Marshal(suspendSaved{Onboot: onboot, HadOnboot: has})
		if err := env.Store.VMSetSuspendSaved(ctx, vm.ID, string(b), env.Now()); err != nil {
			return Retryable(err)
		}
	}
	tags := cfg.Tags()
	if !slices.Contains(tags, SuspendedTag) {
		tags = append(tags, SuspendedTag)
	}
	err := env.PVE.SetConfigSync(ctx, ref(vm), proxmox.ConfigChange{Set: map[string]string{
		"onboot": "0", "tags": strings.Join(tags, ";")}})
	if err != nil {
		return fromError("set onboot and tags", err)
	}
	return Success()
}

// restoreSuspended puts onboot back as it was before the suspend and
// removes the suspended tag; nothing saved (the suspend never reached its
// config step) means only the tag is looked at.
func restoreSuspended(ctx context.Context, env *Env, vm store.VM) Result {
	cfg := env.VMConfig
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
	if vm.SuspendSaved != "" {
		var saved suspendSaved
		if err := json.Unmarshal([]byte(vm.SuspendSaved), &saved); err == nil {
			cur, has := cfg.Get("onboot")
			switch {
			case saved.HadOnboot && cur != saved.Onboot:
				change.Set["onboot"] = saved.Onboot
			case !saved.HadOnboot && has:
				change.Delete = append(change.Delete, "onboot")
			}
		}
	}
	if len(change.Set) == 0 && len(change.Delete) == 0 {
		_ = env.Store.VMSetSuspendSaved(ctx, vm.ID, "", env.Now())
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
