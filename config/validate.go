package config

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
)

// Defaults applied when a key is absent.
const (
	DefaultTimeout = 10 * time.Second
	// DefaultMaxRequestsPerNode is proxmox.max_requests_per_node's default.
	DefaultMaxRequestsPerNode = 4
	DefaultConcurrency        = 8
	DefaultHeavyPerNode       = 2
	DefaultStopTimeout        = 2 * time.Minute
	DefaultStartWaitTicks     = 5
	DefaultDeleteAttempts     = 10
	DefaultStaleLockAfter     = 6 * time.Hour
	DefaultDNSTimeout         = 5 * time.Second
	DefaultDNSTTL             = 3600
)

func boolPtr(b bool) *bool { return &b }

func (c *Config) applyDefaults() {
	if c.Proxmox.Timeout == 0 {
		c.Proxmox.Timeout = Duration(DefaultTimeout)
	}
	if c.Proxmox.MaxRequestsPerNode == 0 {
		c.Proxmox.MaxRequestsPerNode = DefaultMaxRequestsPerNode
	}
	if s := os.Getenv("PVECTL_PROXMOX_TOKEN_SECRET"); s != "" {
		c.Proxmox.TokenSecret = Secret(s)
	}
	for name, p := range c.Products {
		if p.Cores == 0 {
			p.Cores = 1
		}
		if p.Sockets == 0 {
			p.Sockets = 1
		}
		if p.MemoryMB == 0 {
			p.MemoryMB = 1024
		}
		if p.Clone == "" {
			p.Clone = "linked"
		}
		if p.TargetNode == "" {
			p.TargetNode = "auto"
		}
		if p.SystemDisk.Bus == "" {
			p.SystemDisk.Bus = "scsi"
		}
		if p.AdditionalDisk.Bus == "" {
			p.AdditionalDisk.Bus = p.SystemDisk.Bus
		}
		if p.AdditionalDisk.Storage == "" {
			p.AdditionalDisk.Storage = p.SystemDisk.Storage
		}
		if p.Network.Bridge == "" {
			p.Network.Bridge = "vmbr0"
		}
		f := &p.Firewall
		for _, b := range []**bool{&f.Enable, &f.DHCP, &f.NDP, &f.MACFilter, &f.AntiSpoofing} {
			if *b == nil {
				*b = boolPtr(true)
			}
		}
		if f.PolicyIn == "" {
			f.PolicyIn = "ACCEPT"
		}
		if f.PolicyOut == "" {
			f.PolicyOut = "ACCEPT"
		}
		if f.LogLevelIn == "" {
			f.LogLevelIn = "nolog"
		}
		if f.LogLevelOut == "" {
			f.LogLevelOut = "nolog"
		}
		p.normalizeTemplates()
		c.Products[name] = p
	}
	c.defaultBackups()
	c.defaultStats()
	c.defaultHealth()
	c.defaultNotifications()
	if c.DNS.Timeout == 0 {
		c.DNS.Timeout = Duration(DefaultDNSTimeout)
	}
	if c.DNS.TTL == 0 {
		c.DNS.TTL = DefaultDNSTTL
	}
	for i := range c.DNS.Zones {
		z := &c.DNS.Zones[i]
		if z.Algorithm == "" {
			z.Algorithm = "hmac-sha256"
		}
	}
	pv := &c.Tasks.ProcessVMs
	if pv.StepsPerTick == 0 {
		pv.StepsPerTick = 1
	}
	if pv.Concurrency == 0 {
		pv.Concurrency = DefaultConcurrency
	}
	if pv.HeavyPerNode == 0 {
		pv.HeavyPerNode = DefaultHeavyPerNode
	}
	if pv.StopTimeout == 0 {
		pv.StopTimeout = Duration(DefaultStopTimeout)
	}
	if pv.StartWaitTicks == 0 {
		pv.StartWaitTicks = DefaultStartWaitTicks
	}
	if pv.TerminateDeleteAttempts == 0 {
		pv.TerminateDeleteAttempts = DefaultDeleteAttempts
	}
	if pv.StaleLockAfter == 0 {
		pv.StaleLockAfter = Duration(DefaultStaleLockAfter)
	}
}

// validate reports every problem it finds, each with file, line and key.
func (c *Config) validate() error {
	var errs []error
	bad := func(key, format string, args ...any) { errs = append(errs, c.Errorf(key, format, args...)) }

	if _, err := LoadZone(c.Timezone); err != nil {
		bad("timezone", "%v", err)
	}

	// proxmox
	px := c.Proxmox
	if px.URL == "" {
		bad("proxmox.url", "required: the PVE API URL, like https://pve1.example.com:8006")
	} else if u, err := url.Parse(px.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		bad("proxmox.url", "invalid URL %q: want https://HOST:8006", px.URL)
	}
	if px.TokenID == "" {
		bad("proxmox.token_id", "required: an API token id like pvectl@pve!provision")
	} else if !strings.Contains(px.TokenID, "@") || !strings.Contains(px.TokenID, "!") {
		bad("proxmox.token_id", "invalid token id %q: want USER@REALM!TOKENID", px.TokenID)
	}
	switch {
	case px.TokenSecret != "" && px.TokenSecretFile != "" && os.Getenv("PVECTL_PROXMOX_TOKEN_SECRET") == "":
		bad("proxmox.token_secret_file", "set token_secret or token_secret_file, not both")
	case px.TokenSecret == "" && px.TokenSecretFile != "":
		if s, err := readSecretFile(px.TokenSecretFile); err != nil {
			bad("proxmox.token_secret_file", "%v", err)
		} else {
			c.Proxmox.TokenSecret = s
		}
	case px.TokenSecret == "":
		bad("proxmox.token_secret", "required: set token_secret, token_secret_file, or PVECTL_PROXMOX_TOKEN_SECRET")
	}
	if px.CAFile != "" {
		if _, err := os.Stat(px.CAFile); err != nil {
			bad("proxmox.ca_file", "cannot read %s", px.CAFile)
		}
	}
	if px.MaxRequestsPerNode < 1 {
		bad("proxmox.max_requests_per_node", "must be at least 1 (requests in flight to one node at a time), got %d", px.MaxRequestsPerNode)
	}

	// vmid_range
	r := c.VMIDRange
	switch {
	case r.Min == 0 && r.Max == 0:
		bad("vmid_range", "required: min and max VMIDs pvectl may use (100..999999999)")
	case r.Min < 100 || r.Max > 999999999 || r.Min > r.Max:
		bad("vmid_range", "invalid range %d..%d: want 100 <= min <= max <= 999999999", r.Min, r.Max)
	}

	// products
	if len(c.Products) == 0 {
		bad("products", "required: at least one product")
	}
	for _, name := range c.ProductNames() {
		errs = append(errs, c.validateProduct(name, c.Products[name])...)
	}

	errs = append(errs, c.validateSuspend()...)
	errs = append(errs, c.validateBackups()...)
	errs = append(errs, c.validateStats()...)
	errs = append(errs, c.validateHealth()...)
	errs = append(errs, c.validateNotifications()...)
	errs = append(errs, c.validatePurge()...)

	// ip_pools
	names := map[string]bool{}
	for i, p := range c.IPPools {
		k := fmt.Sprintf("ip_pools[%d]", i)
		if p.Name == "" {
			bad(k+".name", "required")
		} else if names[p.Name] {
			bad(k+".name", "duplicate pool name %q", p.Name)
		}
		names[p.Name] = true
		if len(p.Nodes) == 0 {
			bad(k+".nodes", "required: the nodes whose VMs take addresses from this pool")
		}
		for j, node := range p.Nodes {
			if err := ValidNodeName(node); err != nil {
				bad(fmt.Sprintf("%s.nodes[%d]", k, j), "%v", err)
			}
		}
		if p.Family != 4 && p.Family != 6 {
			bad(k+".family", "must be 4 or 6, got %d", p.Family)
			continue
		}
		if p.Bridge == "" {
			bad(k+".bridge", "required, like vmbr0")
		}
		if p.VLAN < 0 || p.VLAN > 4094 {
			bad(k+".vlan", "must be 0 (untagged) to 4094, got %d", p.VLAN)
		}
		if p.Network == "" {
			bad(k+".network", "required, a CIDR like 192.0.2.0/24")
			continue
		}
		pfx, err := netip.ParsePrefix(p.Network)
		if err != nil {
			bad(k+".network", "invalid network %q: want CIDR like 192.0.2.0/24", p.Network)
			continue
		}
		if (p.Family == 4) != pfx.Addr().Is4() {
			bad(k+".network", "network %s is not IPv%d", p.Network, p.Family)
			continue
		}
		for _, f := range []struct{ key, val string }{{"gateway", p.Gateway}, {"first", p.First}, {"last", p.Last}} {
			a, err := netip.ParseAddr(f.val)
			if err != nil {
				bad(k+"."+f.key, "invalid address %q", f.val)
			} else if !pfx.Contains(a) {
				bad(k+"."+f.key, "%s is outside %s", f.val, p.Network)
			}
		}
		if a, err1 := netip.ParseAddr(p.First); err1 == nil {
			if b, err2 := netip.ParseAddr(p.Last); err2 == nil && b.Less(a) {
				bad(k+".last", "last %s is before first %s", p.Last, p.First)
			} else if g, err3 := netip.ParseAddr(p.Gateway); err2 == nil && err3 == nil && !g.Less(a) && !b.Less(g) {
				// pvectl would hand the router's address to a VM.
				bad(k+".gateway", "gateway %s lies inside first..last (%s..%s), so a VM could be given it; start the range after the gateway or end it before",
					p.Gateway, p.First, p.Last)
			}
		}
		// The network and broadcast addresses of an IPv4 subnet are not
		// usable host addresses (except in /31 and /32).
		if p.Family == 4 && pfx.Bits() < 31 {
			network, broadcast := pfx.Masked().Addr(), lastAddr(pfx)
			for _, f := range []struct{ key, val string }{{"first", p.First}, {"last", p.Last}} {
				if a, err := netip.ParseAddr(f.val); err == nil && (a == network || a == broadcast) {
					bad(k+"."+f.key, "%s is the network or broadcast address of %s; the range must start at %s or later and end at %s or earlier",
						f.val, p.Network, network.Next(), broadcast.Prev())
				}
			}
		}
		for j, d := range p.DNSServers {
			if _, err := netip.ParseAddr(d); err != nil {
				bad(fmt.Sprintf("%s.dns_servers[%d]", k, j), "invalid address %q", d)
			}
		}
	}

	// dns
	for i, z := range c.DNS.Zones {
		k := fmt.Sprintf("dns.zones[%d]", i)
		if z.Name == "" {
			bad(k+".name", "required, like example.com or 2.0.192.in-addr.arpa")
		}
		if z.Server == "" {
			bad(k+".server", "required: host:port of the primary server")
		} else if _, _, err := splitHostPort(z.Server); err != nil {
			bad(k+".server", "invalid %q: want host:port, like 192.0.2.53:53", z.Server)
		}
		if z.KeyName == "" {
			bad(k+".key_name", "required: the TSIG key name")
		}
		if !slices.Contains([]string{"hmac-sha256", "hmac-sha512", "hmac-sha384", "hmac-sha224", "hmac-sha1"}, z.Algorithm) {
			bad(k+".algorithm", "unknown %q; valid: hmac-sha256, hmac-sha512, hmac-sha384, hmac-sha224, hmac-sha1", z.Algorithm)
		}
		switch {
		case z.Secret != "" && z.SecretFile != "":
			bad(k+".secret_file", "set secret or secret_file, not both")
		case z.SecretFile != "":
			if sec, err := readZoneSecretFile(z.SecretFile); err != nil {
				bad(k+".secret_file", "%v", err)
			} else {
				c.DNS.Zones[i].Secret = sec
			}
		case z.Secret == "":
			bad(k+".secret", "required: the TSIG secret (base64), or secret_file")
		}
		if z.AllowApex && isReverseZone(z.Name) {
			bad(k+".allow_apex", "only for forward zones: %s is a reverse zone, whose names are never a VM's hostname", z.Name)
		}
	}

	if c.DNS.TTL < 1 || c.DNS.TTL > 2147483647 {
		bad("dns.ttl", "must be 1..2147483647 seconds, got %d", c.DNS.TTL)
	}

	// tasks
	pv := c.Tasks.ProcessVMs
	for _, f := range []struct {
		key string
		v   int
	}{{"steps_per_tick", pv.StepsPerTick}, {"concurrency", pv.Concurrency}, {"heavy_per_node", pv.HeavyPerNode},
		{"start_wait_ticks", pv.StartWaitTicks}, {"terminate_delete_attempts", pv.TerminateDeleteAttempts}} {
		if f.v < 1 {
			bad("tasks.process_vms."+f.key, "must be at least 1, got %d", f.v)
		}
	}
	return errors.Join(errs...)
}

func splitHostPort(s string) (string, string, error) {
	ap, err := netip.ParseAddrPort(s)
	if err == nil {
		return ap.Addr().String(), fmt.Sprint(ap.Port()), nil
	}
	i := strings.LastIndex(s, ":")
	if i <= 0 || i == len(s)-1 {
		return "", "", fmt.Errorf("missing port")
	}
	return s[:i], s[i+1:], nil
}

func (c *Config) validateProduct(name string, p Product) []error {
	var errs []error
	k := "products." + name
	bad := func(key, format string, args ...any) { errs = append(errs, c.Errorf(k+"."+key, format, args...)) }
	if p.Cores < 1 || p.Cores > 512 {
		bad("cores", "must be 1..512, got %d", p.Cores)
	}
	if p.Sockets < 1 || p.Sockets > 4 {
		bad("sockets", "must be 1..4, got %d", p.Sockets)
	}
	if p.MemoryMB < 16 {
		bad("memory_mb", "must be at least 16, got %d", p.MemoryMB)
	}
	errs = append(errs, c.validateTemplates(k, p)...)
	if p.TargetNode != "auto" {
		if err := ValidNodeName(p.TargetNode); err != nil {
			bad("target_node", "%v; or auto (pvectl picks a node)", err)
		}
	}
	if p.Clone != "linked" && p.Clone != "full" {
		bad("clone", "unknown %q; valid: linked, full", p.Clone)
	}
	for _, d := range []struct {
		key  string
		disk Disk
	}{{"system_disk", p.SystemDisk}, {"additional_disk", p.AdditionalDisk}} {
		if d.disk.SizeGB < 0 {
			bad(d.key+".size_gb", "must not be negative")
		}
		if !slices.Contains([]string{"scsi", "virtio", "sata"}, d.disk.Bus) {
			bad(d.key+".bus", "unknown %q; valid: scsi, virtio, sata", d.disk.Bus)
		}
		for _, l := range []struct {
			key string
			v   int
		}{{"iops_rd", d.disk.IopsRd}, {"iops_wr", d.disk.IopsWr}, {"mbps_rd", d.disk.MbpsRd}, {"mbps_wr", d.disk.MbpsWr}} {
			if l.v < 0 {
				bad(d.key+"."+l.key, "must be 0 (unlimited) or more, got %d", l.v)
			}
		}
	}
	if p.AdditionalDisk.SizeGB > 0 && p.AdditionalDisk.Storage == "" {
		bad("additional_disk.storage", "required when size_gb > 0 and system_disk.storage is not set")
	}
	n := p.Network
	if n.VLAN < 0 || n.VLAN > 4094 {
		bad("network.vlan", "must be 0 (untagged) to 4094, got %d", n.VLAN)
	}
	if n.RateMBps < 0 {
		bad("network.rate_mbps", "must be 0 (unlimited) or more")
	}
	if n.Model != "" && !slices.Contains([]string{"virtio", "e1000", "e1000e", "rtl8139", "vmxnet3"}, n.Model) {
		bad("network.model", "unknown %q; valid: virtio, e1000, e1000e, rtl8139, vmxnet3 (or omit to keep the template's)", n.Model)
	}
	if n.IPv4 < 0 || n.IPv6 < 0 {
		bad("network", "ipv4 and ipv6 counts must not be negative")
	}
	if n.IPv4 > 0 && !n.DHCPv4 && !c.hasPool(4, n.Bridge, n.VLAN) {
		bad("network.ipv4", "no IPv4 pool in ip_pools for bridge %s VLAN %d", n.Bridge, n.VLAN)
	}
	if n.IPv6 > 0 && !n.DHCPv6 && !c.hasPool(6, n.Bridge, n.VLAN) {
		bad("network.ipv6", "no IPv6 pool in ip_pools for bridge %s VLAN %d", n.Bridge, n.VLAN)
	}
	f := p.Firewall
	for _, pol := range []struct{ key, v string }{{"policy_in", f.PolicyIn}, {"policy_out", f.PolicyOut}} {
		if !slices.Contains([]string{"ACCEPT", "DROP", "REJECT"}, pol.v) {
			bad("firewall."+pol.key, "unknown %q; valid: ACCEPT, DROP, REJECT", pol.v)
		}
	}
	levels := []string{"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug", "nolog"}
	for _, l := range []struct{ key, v string }{{"log_level_in", f.LogLevelIn}, {"log_level_out", f.LogLevelOut}} {
		if !slices.Contains(levels, l.v) {
			bad("firewall."+l.key, "unknown %q; valid: %s", l.v, strings.Join(levels, ", "))
		}
	}
	for j, d := range p.CloudInit.DNSServers {
		if _, err := netip.ParseAddr(d); err != nil {
			bad(fmt.Sprintf("cloudinit.dns_servers[%d]", j), "invalid address %q", d)
		}
	}
	if p.SnapshotLifetimeDays < 0 {
		bad("snapshot_lifetime_days", "must be 0 (keep) or more")
	}
	if p.BackupQuota < 0 {
		bad("backup_quota", "must be 0 (no backups) or more")
	}
	return errs
}

func (c *Config) hasPool(family int, bridge string, vlan int) bool {
	for _, p := range c.IPPools {
		if p.Family == family && p.Bridge == bridge && p.VLAN == vlan {
			return true
		}
	}
	return false
}

// lastAddr is the highest address of an IPv4 prefix (its broadcast address).
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := 32 - p.Bits()
	n := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	n |= (1 << host) - 1
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}
