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
		return Skip("already named " + vm.Hostname)
	}
	if err := env.PVE.SetConfigSync(ctx, ref(vm), proxmox.ConfigChange{Set: set}); err != nil {
		return fromError("rename VM", err)
	}
	if name != vm.Hostname {
		env.Emit(fmt.Sprintf("VM name %s → %s; the guest takes the new hostname from cloud-init at its next boot", name, vm.Hostname))
	}
	return Success()
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
