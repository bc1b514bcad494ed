// Cloud-init step: user, password, SSH keys, addresses and name servers.

package states

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/pvectl/pvectl/config"
	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/store"
)

// configureCloudInit writes user, password, SSH keys, addresses and name
// servers (NeedProduct, NeedLocation). The password is forgotten once PVE
// has it.
func configureCloudInit(ctx context.Context, env *Env, vm store.VM) Result {
	changed, err := applyCloudInit(ctx, env, vm, env.Product)
	if err != nil {
		return fromError("set cloud-init", err)
	}
	if vm.Password != "" {
		_ = env.Store.VMClearPassword(ctx, vm.ID, env.Now())
	}
	if !changed {
		return Skip("no change")
	}
	return Success()
}

// applyCloudInit writes the VM's cloud-init keys: user, password (if the
// record still has one), SSH keys, ipconfig0 from its addresses, name
// servers, and the VM's name (cloud-init's hostname: see syncName) when a
// VM of ours shows another. PVE applies them at the next boot. It reads the VM's config
// first and writes nothing when every key already has its value (a password
// still to be set is always written: PVE never shows it back). It reports
// whether it wrote.
func applyCloudInit(ctx context.Context, env *Env, vm store.VM, p config.Product) (bool, error) {
	ips, err := env.Store.IPsForVM(ctx, vm.ID)
	if err != nil {
		return false, err
	}
	ipc := proxmox.IPConfig{}
	var nameservers []string
	for _, ip := range ips {
		pool, _ := poolOf(env, ip)
		bits := 32
		if pfx, err := netip.ParsePrefix(pool.Network); err == nil {
			bits = pfx.Bits()
		}
		if ip.Family == 4 && ipc.IPv4 == "" {
			ipc.IPv4, ipc.GW4 = fmt.Sprintf("%s/%d", ip.Address, bits), pool.Gateway
		}
		if ip.Family == 6 && ipc.IPv6 == "" {
			ipc.IPv6, ipc.GW6 = fmt.Sprintf("%s/%d", ip.Address, bits), pool.Gateway
		}
		for _, d := range pool.DNSServers {
			if !slices.Contains(nameservers, d) {
				nameservers = append(nameservers, d)
			}
		}
	}
	if p.Network.DHCPv4 {
		ipc.IPv4, ipc.GW4 = "dhcp", ""
	}
	if p.Network.DHCPv6 {
		ipc.IPv6, ipc.GW6 = "dhcp", ""
	}
	if len(p.CloudInit.DNSServers) > 0 {
		nameservers = p.CloudInit.DNSServers
	}
	ci := proxmox.CloudInit{User: p.CloudInit.User, Password: vm.Password, Nameservers: nameservers,
		SearchDomain: p.CloudInit.SearchDomain}
	if ipc != (proxmox.IPConfig{}) {
		ci.IPConfigs = map[int]proxmox.IPConfig{0: ipc}
	}
	for _, k := range strings.Split(vm.SSHKeys, "\n") {
		if k = strings.TrimSpace(k); k != "" {
			ci.SSHKeys = append(ci.SSHKeys, k)
		}
	}
	cfg, err := readConfig(ctx, env, vm)
	if err != nil {
		return false, err
	}
	renamed := false
	if ours(cfg, vm) {
		if renamed, err = syncName(ctx, env, vm, cfg); err != nil {
			return false, err
		}
	}
	if cloudInitCurrent(cfg, ci) {
		return renamed, nil
	}
	return true, env.PVE.SetCloudInit(ctx, ref(vm), ci)
}

// cloudInitCurrent reports whether cfg (pending values included, as GET
// config returns them) already holds every cloud-init key of ci.
func cloudInitCurrent(cfg proxmox.VMConfig, ci proxmox.CloudInit) bool {
	if ci.Password != "" {
		return false
	}
	for k, want := range ci.Values() {
		have, _ := cfg.Get(k)
		if k == "sshkeys" {
			if !slices.Equal(proxmox.DecodeSSHKeys(have), ci.SSHKeys) {
				return false
			}
			continue
		}
		if have != want {
			return false
		}
	}
	return true
}
