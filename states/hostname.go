// Hostname change (vm set-hostname): the rename step. The DNS step of the
// set_hostname table is resyncDNS (dns.go).

package states

import (
	"context"
	"fmt"
	"strings"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/store"
)

// renameVM gives the VM in PVE the record's hostname: its name (which
// PVE's cloud-init hands the guest as hostname, applied at the guest's
// next boot) and the hostname line of its description. Nothing is written
// when both already match (NeedConfig).
func renameVM(ctx context.Context, env *Env, vm store.VM) Result {
	cfg := env.VMConfig
	if !ours(cfg, vm) {
		return Permanent(fmt.Errorf("VMID %d does not carry %q; not renaming it", vm.VMID, marker(vm)))
	}
	changed, err := syncName(ctx, env, vm, cfg)
	if err != nil {
		return fromError("rename VM", err)
	}
	if !changed {
		return Skip("already named " + vm.Hostname)
	}
	return Success()
}

// syncName gives the VM in PVE the record's hostname where cfg shows
// another: its name (which PVE's cloud-init hands the guest as hostname at
// its next boot) and the description's hostname= line. It reports whether
// it wrote. A rename, and a restore of a backup made before one (the
// archive brings the old name back), both end here.
func syncName(ctx context.Context, env *Env, vm store.VM, cfg proxmox.VMConfig) (bool, error) {
	name, _ := cfg.Get("name")
	desc := withHostnameLine(cfg.Description(), vm.Hostname)
	set := map[string]string{}
	if name != vm.Hostname {
		set["name"] = vm.Hostname
	}
	if desc != cfg.Description() {
		set["description"] = desc
	}
	if len(set) == 0 {
		return false, nil
	}
	if err := env.PVE.SetConfigSync(ctx, ref(vm), proxmox.ConfigChange{Set: set}); err != nil {
		return false, err
	}
	if name != vm.Hostname {
		env.Emit(fmt.Sprintf("VM name %s → %s; the guest takes the new hostname from cloud-init at its next boot", name, vm.Hostname))
	}
	return true, nil
}

// withHostnameLine returns the description with its hostname= line set to
// hostname (added after the marker line when missing).
func withHostnameLine(desc, hostname string) string {
	lines := strings.Split(desc, "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "hostname=") {
			lines[i] = "hostname=" + hostname
			return strings.Join(lines, "\n")
		}
	}
	if desc == "" {
		return "hostname=" + hostname
	}
	return desc + "\nhostname=" + hostname
}
