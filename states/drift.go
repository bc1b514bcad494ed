// Drift: how a ready VM's PVE config differs from what its product and
// its record say. The reconcile task reports it; nothing here changes PVE.
// Each comparison uses the same rule the step that applies the value uses,
// so a VM the change-package just finished never shows drift.

package states

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pvectl/pvectl/config"
	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/store"
)

// Drift is one aspect of a VM that differs from its product or record.
type Drift struct {
	// Aspect names what differs: cpu, memory, system_disk, additional_disk,
	// disk_io, nic, firewall, ipset, ipconfig.
	Aspect string
	// Detail says what PVE has and what pvectl expects.
	Detail string
}

// ConfigDrift compares a VM's PVE config with its product p and record vm
// at now (the NIC's rate follows a traffic throttle while it lasts).
// Disks larger than the product are not drift: disks never shrink.
func ConfigDrift(p config.Product, vm store.VM, cfg proxmox.VMConfig, ips []store.IPAllocation, now time.Time) []Drift {
	var out []Drift
	add := func(aspect, format string, args ...any) {
		out = append(out, Drift{Aspect: aspect, Detail: fmt.Sprintf(format, args...)})
	}
	val := func(k string) string {
		if v, ok := cfg.Get(k); ok {
			return v
		}
		return "(unset)"
	}
	if c, s := val("cores"), val("sockets"); c != strconv.Itoa(p.Cores) || s != strconv.Itoa(p.Sockets) {
		add("cpu", "cores=%s sockets=%s, product %s has cores=%d sockets=%d", c, s, vm.Product, p.Cores, p.Sockets)
	}
	if m := val("memory"); m != strconv.Itoa(p.MemoryMB) {
		add("memory", "%s MB, product %s has %d MB", m, vm.Product, p.MemoryMB)
	}
	sys := systemDiskKey(cfg)
	if sys == "" {
		add("system_disk", "no system disk in the config")
	} else {
		if p.SystemDisk.SizeGB > 0 {
			if cur, ok := cfg.DiskSize(sys); ok && cur < int64(p.SystemDisk.SizeGB)*gib {
				add("system_disk", "%s is %s, product %s has %dG", sys, humanSize(cur), vm.Product, p.SystemDisk.SizeGB)
			}
		}
		if cur := cfg.Values[sys]; withDiskLimits(cur, p.SystemDisk) != cur {
			add("disk_io", "%s I/O limits (%s) differ from product %s's (%s)", sys, diskLimits(cur), vm.Product, wantLimits(p.SystemDisk))
		}
	}
	addKey, hasAdd := findAdditionalDisk(cfg)
	switch {
	case p.AdditionalDisk.SizeGB == 0 && hasAdd:
		add("additional_disk", "%s is pvectl's additional disk, product %s has none", addKey, vm.Product)
	case p.AdditionalDisk.SizeGB > 0 && !hasAdd:
		add("additional_disk", "no additional disk, product %s has %dG", vm.Product, p.AdditionalDisk.SizeGB)
	case hasAdd:
		if cur, ok := cfg.DiskSize(addKey); ok && cur < int64(p.AdditionalDisk.SizeGB)*gib {
			add("additional_disk", "%s is %s, product %s has %dG", addKey, humanSize(cur), vm.Product, p.AdditionalDisk.SizeGB)
		}
		if cur := cfg.Values[addKey]; withDiskLimits(cur, p.AdditionalDisk) != cur {
			add("disk_io", "%s I/O limits (%s) differ from product %s's (%s)", addKey, diskLimits(cur), vm.Product, wantLimits(p.AdditionalDisk))
		}
	}
	cur, _ := cfg.Get("net0")
	if want := netValue(cur, nicNetwork(p, vm, now), vm.MAC); !sameProps(cur, want) {
		add("nic", "net0 is %q, expected %q", cur, want)
	}
	if !p.Network.DHCPv4 && !p.Network.DHCPv6 {
		// ipconfig0 carries the first address of each family (applyCloudInit).
		var first []store.IPAllocation
		for _, fam := range []int{4, 6} {
			if i := slices.IndexFunc(ips, func(ip store.IPAllocation) bool { return ip.Family == fam }); i >= 0 {
				first = append(first, ips[i])
			}
		}
		have := ipconfigAddresses(cfg)
		if missing, extra := compareAddresses(have, first); len(missing)+len(extra) > 0 {
			add("ipconfig", "cloud-init addresses %s, expected %s (the record's first address of each family)", joinOrNone(have), joinOrNone(recordAddresses(first)))
		}
	}
	return out
}

// FirewallDrift reads the VM's firewall options and anti-spoofing IP set
// and compares them with product p and the record's addresses. extra are
// the IP set's addresses the record does not hold (the caller tells
// whether another record holds them).
func FirewallDrift(ctx context.Context, pve proxmox.Client, p config.Product, vm store.VM, ips []store.IPAllocation) (drift []Drift, extra []string, err error) {
	f := p.Firewall
	want := proxmox.FirewallOptions{Enable: f.Enable, DHCP: f.DHCP, NDP: f.NDP, RAdv: proxmox.Bool(f.RADV),
		MACFilter: f.MACFilter, IPFilter: proxmox.Bool(f.IPFilter), PolicyIn: f.PolicyIn, PolicyOut: f.PolicyOut,
		LogLevelIn: f.LogLevelIn, LogLevelOut: f.LogLevelOut}
	cur, err := pve.FirewallOptions(ctx, ref(vm))
	if err != nil {
		return nil, nil, fmt.Errorf("read firewall options of VM %d: %w", vm.VMID, err)
	}
	if !sameFirewall(cur, want) {
		drift = append(drift, Drift{Aspect: "firewall", Detail: fmt.Sprintf("firewall options %s, product %s has %s", firewallText(cur), vm.Product, firewallText(want))})
	}
	static := f.AntiSpoofing != nil && *f.AntiSpoofing && !p.Network.DHCPv4 && !p.Network.DHCPv6
	sets, err := pve.IPSets(ctx, ref(vm))
	if err != nil {
		return drift, nil, fmt.Errorf("read IP sets of VM %d: %w", vm.VMID, err)
	}
	if !slices.ContainsFunc(sets, func(s proxmox.IPSet) bool { return s.Name == IPSetName }) {
		if static {
			drift = append(drift, Drift{Aspect: "ipset", Detail: fmt.Sprintf("no IP set %s, product %s uses anti-spoofing", IPSetName, vm.Product)})
		}
		return drift, nil, nil
	}
	entries, err := pve.IPSetEntries(ctx, ref(vm), IPSetName)
	if err != nil {
		return drift, nil, fmt.Errorf("read IP set %s of VM %d: %w", IPSetName, vm.VMID, err)
	}
	var have []string
	for _, e := range entries {
		have = append(have, canonicalAddress(e.CIDR))
	}
	missing, extra := compareAddresses(have, ips)
	switch {
	case !static:
		drift = append(drift, Drift{Aspect: "ipset", Detail: fmt.Sprintf("IP set %s exists, product %s has no static anti-spoofing", IPSetName, vm.Product)})
	case len(missing) > 0:
		drift = append(drift, Drift{Aspect: "ipset", Detail: fmt.Sprintf("IP set %s lacks %s", IPSetName, strings.Join(missing, ", "))})
	}
	return drift, extra, nil
}

// canonicalAddress turns "192.0.2.10/32" or "2001:db8::1" into the form
// the store keeps; anything else is returned as it is.
func canonicalAddress(s string) string {
	if p, err := netip.ParsePrefix(s); err == nil && p.Bits() == p.Addr().BitLen() {
		return p.Addr().String()
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.String()
	}
	return s
}

// ipconfigAddresses are the static addresses in the VM's ipconfigN keys.
func ipconfigAddresses(cfg proxmox.VMConfig) []string {
	var out []string
	for key, val := range cfg.Values {
		n, ok := strings.CutPrefix(key, "ipconfig")
		if _, err := strconv.Atoi(n); !ok || err != nil {
			continue
		}
		for _, kv := range strings.Split(val, ",") {
			if k, v, _ := strings.Cut(kv, "="); k == "ip" || k == "ip6" {
				if p, err := netip.ParsePrefix(v); err == nil {
					out = append(out, p.Addr().String())
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// compareAddresses returns the record's addresses missing from have, and
// those in have the record does not hold.
func compareAddresses(have []string, ips []store.IPAllocation) (missing, extra []string) {
	want := map[string]bool{}
	for _, ip := range ips {
		want[ip.Address] = true
	}
	got := map[string]bool{}
	for _, h := range have {
		got[h] = true
		if !want[h] {
			extra = append(extra, h)
		}
	}
	for _, ip := range ips {
		if !got[ip.Address] {
			missing = append(missing, ip.Address)
		}
	}
	return missing, extra
}

func recordAddresses(ips []store.IPAllocation) []string {
	out := make([]string, 0, len(ips))
	for _, ip := range ips {
		out = append(out, ip.Address)
	}
	return out
}

func joinOrNone(s []string) string {
	if len(s) == 0 {
		return "(none)"
	}
	return strings.Join(s, ", ")
}

// diskLimits is the limit options of a disk value, "none" without any.
func diskLimits(v string) string {
	var out []string
	for _, part := range strings.Split(v, ",") {
		if k, _, _ := strings.Cut(part, "="); slices.Contains([]string{"iops_rd", "iops_wr", "mbps_rd", "mbps_wr"}, k) {
			out = append(out, part)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ",")
}

func wantLimits(d config.Disk) string { return diskLimits(withDiskLimits("", d)) }

func firewallText(o proxmox.FirewallOptions) string {
	b := func(name string, v *bool) string {
		switch {
		case v == nil:
			return name + "=?"
		case *v:
			return name + "=1"
		}
		return name + "=0"
	}
	return strings.Join([]string{b("enable", o.Enable), b("dhcp", o.DHCP), b("ndp", o.NDP), b("radv", o.RAdv),
		b("macfilter", o.MACFilter), b("ipfilter", o.IPFilter), "policy_in=" + dashIfEmpty(o.PolicyIn),
		"policy_out=" + dashIfEmpty(o.PolicyOut),
		"log_level_in=" + dashIfEmpty(o.LogLevelIn), "log_level_out=" + dashIfEmpty(o.LogLevelOut)}, " ")
}
