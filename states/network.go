// Network steps: the NIC (net0 property string, MAC address kept), the
// firewall options and the anti-spoofing IP set.

package states

import (
	"context"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/pvectl/pvectl/config"
	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/store"
)

var nicModels = []string{"virtio", "e1000", "e1000e", "rtl8139", "vmxnet3"}

// netValue builds net0 from the product, keeping the model and MAC address
// the VM already has (a MAC must survive reinstalls and changes).
func netValue(cur string, n config.Network, keepMAC string) string {
	model, mac := "virtio", ""
	rest := map[string]string{}
	for _, part := range strings.Split(cur, ",") {
		k, v, _ := strings.Cut(part, "=")
		if slices.Contains(nicModels, k) {
			model, mac = k, v
			continue
		}
		rest[k] = v
	}
	if n.Model != "" && n.Model != model {
		model = n.Model // the MAC is sent along, so it survives a model change
	}
	if keepMAC != "" {
		mac = keepMAC // a reinstalled VM gets its old MAC back
	}
	first := model
	if mac != "" {
		first += "=" + mac
	}
	parts := []string{first, "bridge=" + n.Bridge, "firewall=1"}
	if n.VLAN > 0 {
		parts = append(parts, "tag="+strconv.Itoa(n.VLAN))
	}
	if n.RateMBps > 0 {
		parts = append(parts, "rate="+strconv.Itoa(n.RateMBps))
	}
	for _, k := range []string{"queues", "mtu", "link_down"} {
		if v, ok := rest[k]; ok {
			parts = append(parts, k+"="+v)
		}
	}
	return strings.Join(parts, ",")
}

// macOf returns the MAC address in a netN value, or "".
func macOf(net string) string {
	first, _, _ := strings.Cut(net, ",")
	if m, mac, ok := strings.Cut(first, "="); ok && slices.Contains(nicModels, m) {
		return mac
	}
	return ""
}

// sameProps compares two property strings as sets of options.
func sameProps(a, b string) bool {
	pa, pb := strings.Split(a, ","), strings.Split(b, ",")
	sort.Strings(pa)
	sort.Strings(pb)
	return slices.Equal(pa, pb)
}

// configureNetwork sets net0 from the product (NeedProduct, NeedConfig),
// with the traffic throttle's rate while it lasts (nicNetwork).
func configureNetwork(ctx context.Context, env *Env, vm store.VM) Result {
	cur, _ := env.VMConfig.Get("net0")
	if vm.MAC == "" {
		if mac := macOf(cur); mac != "" {
			_ = env.Store.VMSetMAC(ctx, vm.ID, mac, env.Now())
		}
	}
	next := netValue(cur, nicNetwork(env.Product, vm, env.Now()), vm.MAC)
	if sameProps(cur, next) {
		return Skip("no change")
	}
	if err := env.PVE.SetConfigSync(ctx, ref(vm), proxmox.ConfigChange{Set: map[string]string{"net0": next}}); err != nil {
		return fromError("configure net0", err)
	}
	if vm.MAC == "" {
		if mac := macOf(next); mac != "" {
			_ = env.Store.VMSetMAC(ctx, vm.ID, mac, env.Now())
		}
	}
	return Success()
}

// IPSetName is the anti-spoofing IP set PVE's ipfilter uses for net0.
const IPSetName = "ipfilter-net0"

// configureFirewall sets the firewall options and the anti-spoofing IP set
// (NeedProduct, NeedLocation).
func configureFirewall(ctx context.Context, env *Env, vm store.VM) Result {
	p := env.Product
	f := p.Firewall
	want := proxmox.FirewallOptions{Enable: f.Enable, DHCP: f.DHCP, NDP: f.NDP, RAdv: proxmox.Bool(f.RADV),
		MACFilter: f.MACFilter, IPFilter: proxmox.Bool(f.IPFilter), PolicyIn: f.PolicyIn, PolicyOut: f.PolicyOut,
		LogLevelIn: f.LogLevelIn, LogLevelOut: f.LogLevelOut}
	cur, err := env.PVE.FirewallOptions(ctx, ref(vm))
	if err != nil {
		return fromError("read firewall options", err)
	}
	changed := !sameFirewall(cur, want)
	if changed {
		if err := env.PVE.SetFirewallOptions(ctx, ref(vm), want); err != nil {
			return fromError("set firewall options", err)
		}
	}
	if *f.AntiSpoofing && !p.Network.DHCPv4 && !p.Network.DHCPv6 {
		ips, err := env.Store.IPsForVM(ctx, vm.ID)
		if err != nil {
			return Retryable(err)
		}
		setChanged, err := SyncIPSet(ctx, env, vm, ips)
		if err != nil {
			return fromError("anti-spoofing IP set", err)
		}
		changed = changed || setChanged
	}
	if !changed {
		return Skip("no change")
	}
	return Success()
}

// sameFirewall compares the options pvectl sets; an option PVE does not
// report counts as different, so it gets set explicitly.
func sameFirewall(cur, want proxmox.FirewallOptions) bool {
	eq := func(a, b *bool) bool { return a != nil && b != nil && *a == *b }
	return eq(cur.Enable, want.Enable) && eq(cur.DHCP, want.DHCP) && eq(cur.NDP, want.NDP) && eq(cur.RAdv, want.RAdv) &&
		eq(cur.MACFilter, want.MACFilter) && eq(cur.IPFilter, want.IPFilter) && cur.PolicyIn == want.PolicyIn &&
		cur.PolicyOut == want.PolicyOut && cur.LogLevelIn == want.LogLevelIn && cur.LogLevelOut == want.LogLevelOut
}

// SyncIPSet makes the VM's ipfilter-net0 hold exactly its addresses and
// reports whether it changed anything.
func SyncIPSet(ctx context.Context, env *Env, vm store.VM, ips []store.IPAllocation) (changed bool, err error) {
	// One look: the set's entries, or PVE saying there is no such set.
	entries, err := env.PVE.IPSetEntries(ctx, ref(vm), IPSetName)
	if proxmox.IsNotFound(err) {
		// No set yet (a VM gone from its node fails the create too). A
		// set this request creates is empty; one created meanwhile is
		// read.
		changed = true
		err = env.PVE.CreateIPSet(ctx, ref(vm), IPSetName, "pvectl anti-spoofing")
		if proxmox.IsAlreadyExists(err) {
			entries, err = env.PVE.IPSetEntries(ctx, ref(vm), IPSetName)
		}
	}
	if err != nil {
		return changed, err
	}
	want := map[string]bool{}
	for _, ip := range ips {
		want[ip.Address] = true
	}
	have := map[string]bool{}
	for _, e := range entries {
		addr := strings.TrimSuffix(strings.TrimSuffix(e.CIDR, "/32"), "/128")
		have[addr] = true
		if !want[addr] {
			changed = true
			if err := env.PVE.RemoveIPSetEntry(ctx, ref(vm), IPSetName, e.CIDR); err != nil && !proxmox.IsNotFound(err) {
				return changed, err
			}
		}
	}
	for _, ip := range ips {
		if have[ip.Address] {
			continue
		}
		changed = true
		if err := env.PVE.AddIPSetEntry(ctx, ref(vm), IPSetName, proxmox.IPSetEntry{CIDR: ip.Address}); err != nil && !proxmox.IsAlreadyExists(err) {
			return changed, err
		}
	}
	return changed, nil
}

// refreshIPSet makes ipfilter-net0 hold the VM's addresses when the product
// uses anti-spoofing with static addresses, and removes the set otherwise,
// so an address taken from the VM never stays allowed.
func refreshIPSet(ctx context.Context, env *Env, vm store.VM, p config.Product, ips []store.IPAllocation) (bool, error) {
	if *p.Firewall.AntiSpoofing && !p.Network.DHCPv4 && !p.Network.DHCPv6 {
		return SyncIPSet(ctx, env, vm, ips)
	}
	sets, err := env.PVE.IPSets(ctx, ref(vm))
	if err != nil {
		return false, err
	}
	for _, set := range sets {
		if set.Name == IPSetName {
			if err := env.PVE.DeleteIPSet(ctx, ref(vm), IPSetName, true); err != nil && !proxmox.IsNotFound(err) {
				return false, err
			}
			env.Emit("removed IP set " + IPSetName + " (product has no static anti-spoofing)")
			return true, nil
		}
	}
	return false, nil
}
