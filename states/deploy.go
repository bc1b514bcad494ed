package states

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pvectl/pvectl/config"
	"github.com/pvectl/pvectl/providers/dns"
	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/store"
)

// Deploy is the deploy table: from a new record to a running VM. Each row
// is the action that moves a VM from the state it completed to the next.
func Deploy() *Pipeline {
	return MustPipeline("deploy", Creation, []Step{
		{From: Creation, To: SetIP, Label: "Allocate VMID and IPs", Run: reserveVMIDAndIPs},
		{From: SetIP, To: Clone, Label: "Clone VM", Heavy: true, Run: cloneTemplate},
		{From: Clone, To: SetDNS, Label: "Configure DNS records", Run: publishDNS},
		{From: SetDNS, To: Migrated, Label: "Migrate to target node", Heavy: true, Run: migrateToTarget},
		{From: Migrated, To: SetCPURAM, Label: "Set CPU & RAM", Run: setCPURAM},
		{From: SetCPURAM, To: SetSystemDiskSize, Label: "Resize system disk", Run: resizeSystemDisk},
		{From: SetSystemDiskSize, To: SetSystemDiskBandwidth, Label: "Set system disk I/O", Run: setSystemDiskIO},
		{From: SetSystemDiskBandwidth, To: SetCreatedAdditionalDisk, Label: "Create additional disk", Run: createAdditionalDisk},
		{From: SetCreatedAdditionalDisk, To: SetAdditionalDiskSize, Label: "Resize additional disk", Run: resizeAdditionalDisk},
		{From: SetAdditionalDiskSize, To: SetAdditionalDiskBandwidth, Label: "Set additional disk I/O", Run: setAdditionalDiskIO},
		{From: SetAdditionalDiskBandwidth, To: SetNetwork, Label: "Configure network", Run: configureNetwork},
		{From: SetNetwork, To: SetFirewall, Label: "Configure firewall", Run: configureFirewall},
		{From: SetFirewall, To: SetCloudinit, Label: "Configure cloud-init", Run: configureCloudInit},
		{From: SetCloudinit, To: Starting, Label: "Start VM", Run: startVM},
		{From: Starting, To: Ready, Label: "Verify running", Run: verifyRunning},
	})
}

// reserveVMIDAndIPs picks the target node, a free VMID in the configured
// range (unique in the store and absent from the cluster) and the product's
// addresses, and writes them in one transaction.
func reserveVMIDAndIPs(ctx context.Context, env *Env, vm store.VM) Result {
	if vm.VMID != 0 {
		return Skip(fmt.Sprintf("already reserved VMID %d", vm.VMID))
	}
	p, bad := product(env, vm)
	if bad != nil {
		return *bad
	}
	all, err := env.PVE.ClusterResources(ctx, proxmox.ResourceAll)
	if err != nil {
		return fromError("list cluster resources", err)
	}
	target, err := chooseTargetNode(vm, p, all)
	if errors.Is(err, errUnknownNode) {
		return Permanent(err) // a typo: retrying will not help
	}
	if err != nil {
		return Retryable(err)
	}
	inCluster := map[int]bool{}
	for _, r := range all {
		if r.IsVM() || r.Type == "lxc" {
			inCluster[r.VMID] = true
		}
	}
	// Other workers of this tick pick from the same free lists; the store's
	// unique constraints catch a collision and we read the lists again. Each
	// round has a winner, so with `concurrency` workers a worker loses at
	// most concurrency-1 rounds in a row.
	for range max(10, 2*env.Config.Tasks.ProcessVMs.Concurrency) {
		used, err := env.Store.UsedVMIDs(ctx)
		if err != nil {
			return Retryable(err)
		}
		vmid := 0
		for id := env.Config.VMIDRange.Min; id <= env.Config.VMIDRange.Max; id++ {
			if !used[id] && !inCluster[id] {
				vmid = id
				break
			}
		}
		if vmid == 0 {
			return Retryable(fmt.Errorf("no free VMID in %d-%d", env.Config.VMIDRange.Min, env.Config.VMIDRange.Max))
		}
		ips, err := pickAddresses(ctx, env, vm.Product, p, target, p.Network.IPv4, p.Network.IPv6)
		if err != nil {
			return Retryable(err)
		}
		err = env.Store.VMReserve(ctx, store.Reservation{ID: vm.ID, Status: vm.Status, Version: vm.Version,
			VMID: vmid, Node: p.Template.Node, TargetNode: target, IPs: ips, Now: env.Now()})
		if errors.Is(err, store.ErrDuplicate) {
			continue
		}
		if err != nil {
			return Retryable(err)
		}
		var addrs []string
		for _, ip := range ips {
			addrs = append(addrs, ip.Address)
		}
		env.Emit(fmt.Sprintf("VMID %d, target node %s, addresses: %s", vmid, target, dashIfEmpty(strings.Join(addrs, ", "))))
		return Success()
	}
	return Retryable(errors.New("VMID or address taken by another worker on every try; will retry"))
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "none (DHCP or not configured)"
	}
	return s
}

// errUnknownNode: the requested node is not part of the cluster.
var errUnknownNode = errors.New("target node is not in the cluster")

// chooseTargetNode returns the requested node, the product's node, or for
// "auto" the online node that has the system-disk storage and the most free
// memory.
func chooseTargetNode(vm store.VM, p config.Product, all []proxmox.Resource) (string, error) {
	want := p.TargetNode
	if vm.RequestedNode != "" {
		want = vm.RequestedNode
	}
	online := map[string]proxmox.Resource{}
	var known []string
	for _, r := range all {
		if r.Type == "node" {
			known = append(known, r.Node)
			if r.Status == "online" {
				online[r.Node] = r
			}
		}
	}
	if !slices.Contains(known, p.Template.Node) {
		sort.Strings(known)
		return "", fmt.Errorf("%w: %s is product %s's template node (cluster nodes: %s); fix template.node in the config, then pvectl vm retry",
			errUnknownNode, p.Template.Node, vm.Product, strings.Join(known, ", "))
	}
	if want != "auto" {
		if !slices.Contains(known, want) {
			sort.Strings(known)
			return "", fmt.Errorf("%w: %s (cluster nodes: %s); fix the product or the VM's node, then pvectl vm retry", errUnknownNode, want, strings.Join(known, ", "))
		}
		if _, ok := online[want]; !ok {
			return "", fmt.Errorf("target node %s is not online in the cluster", want)
		}
		return want, nil
	}
	hasStorage := map[string]bool{}
	for _, r := range all {
		if r.Type == "storage" && (p.SystemDisk.Storage == "" || r.Storage == p.SystemDisk.Storage) && r.Status == "available" {
			hasStorage[r.Node] = true
		}
	}
	var best string
	var bestFree int64 = -1
	nodes := make([]string, 0, len(online))
	for n := range online {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	for _, n := range nodes {
		if !hasStorage[n] {
			continue
		}
		if free := online[n].MaxMem - online[n].Mem; free > bestFree {
			best, bestFree = n, free
		}
	}
	if best == "" {
		return "", fmt.Errorf("no online node has storage %q for product %s", p.SystemDisk.Storage, vm.Product)
	}
	return best, nil
}

// pickAddresses chooses v4 IPv4 and v6 IPv6 free addresses from pools
// matching the node and the product's bridge and VLAN (none for a family the
// product runs with DHCP).
func pickAddresses(ctx context.Context, env *Env, name string, p config.Product, node string, v4, v6 int) ([]store.IPAllocation, error) {
	// The safety net: addresses of VMs pvectl created that no record knows
	// (a lost or replaced database) are never handed out.
	if err := env.Strays.Look(ctx, env); err != nil {
		return nil, fmt.Errorf("not handing out addresses: %w", err)
	}
	// Taken and quarantined addresses are looked up by address, not by
	// the pool they were recorded under: a pool renamed (or split) in the
	// config still holds them.
	used, err := env.Store.IPsAllocated(ctx)
	if err != nil {
		return nil, err
	}
	// Freed addresses wait out their quarantine: resolvers may still cache
	// the old VM's records for them.
	quarantined, err := env.Store.IPsReleasedSince(ctx, env.Now().Add(-env.Config.AddressQuarantine()))
	if err != nil {
		return nil, err
	}
	var out []store.IPAllocation
	for _, fam := range []struct {
		family, count int
		dhcp          bool
	}{{4, v4, p.Network.DHCPv4}, {6, v6, p.Network.DHCPv6}} {
		if fam.count == 0 || fam.dhcp {
			continue
		}
		need := fam.count
		var waiting []time.Time
		stray := 0
		for _, pool := range env.Config.IPPools {
			if need == 0 {
				break
			}
			if pool.Family != fam.family || pool.Bridge != p.Network.Bridge || pool.VLAN != p.Network.VLAN || !slices.Contains(pool.Nodes, node) {
				continue
			}
			gw, _ := netip.ParseAddr(pool.Gateway)
			last := netip.MustParseAddr(pool.Last)
			for a := netip.MustParseAddr(pool.First); a.IsValid() && !last.Less(a) && need > 0; a = a.Next() {
				if a == gw || used[a.String()] {
					continue
				}
				if env.Strays.Holds(a) {
					stray++ // a VM no record knows may still use it
					continue
				}
				if at, ok := quarantined[a.String()]; ok && env.Config.AddressQuarantine() > 0 {
					waiting = append(waiting, at)
					continue
				}
				out = append(out, store.IPAllocation{Address: a.String(), Family: fam.family, Pool: pool.Name})
				need--
			}
		}
		if need > 0 {
			q := ""
			if len(waiting) > 0 {
				first := slices.MinFunc(waiting, func(a, b time.Time) int { return a.Compare(b) })
				q = fmt.Sprintf("; %d freed address(es) are in quarantine (ip_quarantine %s), the first free again at %s",
					len(waiting), env.Config.AddressQuarantine(), first.Add(env.Config.AddressQuarantine()).UTC().Format(time.RFC3339))
			}
			if stray > 0 {
				q += fmt.Sprintf("; %d address(es) are used by PVE VMs that carry pvectl's marker but no record knows", stray)
			}
			return nil, fmt.Errorf("no free IPv%d address for product %s on node %s, bridge %s, VLAN %d (needed %d more%s); add addresses to an ip_pool",
				fam.family, name, node, p.Network.Bridge, p.Network.VLAN, need, q)
		}
	}
	return out, nil
}

// poolOf is the configured pool an allocated address belongs to: the one it
// was recorded under or, when that name is no longer configured (a pool
// renamed or split), the pool of its family whose range holds it.
func poolOf(env *Env, ip store.IPAllocation) (config.IPPool, bool) {
	a, err := netip.ParseAddr(ip.Address)
	if err != nil {
		return config.IPPool{}, false
	}
	var byRange *config.IPPool
	for i, pool := range env.Config.IPPools {
		if pool.Name == ip.Pool {
			return pool, true
		}
		first, ferr := netip.ParseAddr(pool.First)
		last, lerr := netip.ParseAddr(pool.Last)
		if byRange == nil && pool.Family == ip.Family && ferr == nil && lerr == nil && !a.Less(first) && !last.Less(a) {
			byRange = &env.Config.IPPools[i]
		}
	}
	if byRange != nil {
		return *byRange, true
	}
	return config.IPPool{}, false
}

// cloneTemplate clones the product's template to the reserved VMID, marked
// as ours, and follows the clone task.
func cloneTemplate(ctx context.Context, env *Env, vm store.VM) Result {
	p, bad := product(env, vm)
	if bad != nil {
		return *bad
	}
	if pending(vm) {
		// A clone task that failed because the VMID already exists means an
		// earlier attempt (before a crash) made it: look below.
		if ok, res := awaitTask(ctx, env, vm, "clone"); !ok && !proxmox.IsAlreadyExists(res.Err) {
			return res
		}
	}
	// Look before acting: does the VMID already hold a VM? /cluster/resources
	// lags a few seconds behind, so also ask the template's node directly.
	r, exists, err := findVM(ctx, env, vm.VMID)
	if err != nil {
		return fromError("find VM in cluster", err)
	}
	if !exists {
		r = proxmox.Resource{Type: "qemu", VMID: vm.VMID, Node: p.Template.Node}
		_, err := env.PVE.VMStatus(ctx, proxmox.VMRef{Node: p.Template.Node, VMID: vm.VMID})
		if err != nil && !proxmox.IsNotFound(err) {
			return fromError("look for VM "+strconv.Itoa(vm.VMID), err)
		}
		exists = err == nil
	}
	var cfg proxmox.VMConfig
	if exists {
		cfg, err = env.PVE.VMConfig(ctx, proxmox.VMRef{Node: r.Node, VMID: vm.VMID})
		if proxmox.IsNotFound(err) {
			exists = false // listed, but gone (the list lags a destroy)
		} else if err != nil {
			return fromError("read config of VM "+strconv.Itoa(vm.VMID), err)
		}
		if exists && cfg.Lock() == "clone" {
			if res := staleLock(ctx, env, &vm, "clone"); res != nil {
				return *res
			}
			return Wait("clone in progress (VM locked: clone)")
		}
	}
	if exists {
		if !ours(cfg, vm) {
			return Permanent(fmt.Errorf("VMID %d on node %s holds a VM pvectl did not create (no %q in its notes); not touching it — free the VMID or reset-status creation", vm.VMID, r.Node, marker(vm)))
		}
		if r.Node != vm.Node {
			if err := env.Store.VMSetNode(ctx, vm.ID, vm.Status, vm.Version, r.Node, env.Now()); err != nil {
				return Retryable(err)
			}
		}
		if !cfg.HasTag(MarkerTag) {
			err := env.PVE.SetConfigSync(ctx, proxmox.VMRef{Node: r.Node, VMID: vm.VMID},
				proxmox.ConfigChange{Set: map[string]string{"tags": strings.Join(append(cfg.Tags(), MarkerTag), ";")}})
			if err != nil {
				return fromError("tag VM", err)
			}
		}
		return Success()
	}
	if res := noHeavySlot(env, p.Template.Node); res != nil {
		return *res
	}
	mode := proxmox.CloneLinked
	storage := ""
	if p.Clone == "full" {
		mode, storage = proxmox.CloneFull, p.SystemDisk.Storage
		if vm.TargetNode != p.Template.Node {
			storage = "" // the migration maps storage on the target node
		}
	}
	task, err := env.PVE.Clone(ctx, proxmox.CloneRequest{
		Source: proxmox.VMRef{Node: p.Template.Node, VMID: p.Template.VMID}, NewID: vm.VMID,
		Name: vm.Hostname, Description: marker(vm) + "\nhostname=" + vm.Hostname, Mode: mode, Storage: storage,
	})
	if proxmox.IsAlreadyExists(err) {
		return Wait(fmt.Sprintf("VMID %d appeared while cloning; looking at it next tick", vm.VMID))
	}
	return submit(ctx, env, vm, "clone", task, err)
}

// publishDNS writes A/AAAA and PTR records to every matching zone. DNS
// errors never block the pipeline: the VM is marked DNS-dirty instead. The
// one exception is a hostname the VM must not take (a zone apex without
// allow_apex, or a name holding records that are not the VM's: see
// dns_guard.go): the VM is held and nothing is published. A name that could
// not be checked gets nothing either: the VM goes on DNS-dirty and the
// background retry checks and publishes.
func publishDNS(ctx context.Context, env *Env, vm store.VM) Result {
	if len(env.Zones) == 0 || env.DNS == nil {
		return Skip("no DNS zones configured")
	}
	ips, err := env.Store.IPsForVM(ctx, vm.ID)
	if err != nil {
		return Retryable(err)
	}
	if res, unchecked := guardDNS(ctx, env, vm, ips); res != nil {
		return *res
	} else if unchecked != nil {
		failed := notPublished(ctx, env, vm, DNSPlan(env, vm, ips), unchecked)
		if err := env.Store.VMSetDNSDirty(ctx, vm.ID, true, env.Now()); err != nil {
			return Retryable(fmt.Errorf("record the DNS state: %w", err))
		}
		return Skip(fmt.Sprintf("%d DNS record(s) failed; will retry in the background", failed))
	}
	failed, err := SyncDNS(ctx, env, vm, ips)
	if err != nil {
		return Retryable(err) // publishing again is idempotent
	}
	if failed > 0 {
		return Skip(fmt.Sprintf("%d DNS record(s) failed; will retry in the background", failed))
	}
	return Success()
}

// SyncDNS publishes the VM's planned records, records each outcome and
// marks the VM DNS-dirty when any failed. It returns the number of failures,
// and an error when the DNS-dirty flag could not be stored (the background
// retry would then never see the failures). It does not check the hostname
// (guardDNS): its callers do, or (change_package) run for a VM whose name
// the deploy's DNS step checked.
func SyncDNS(ctx context.Context, env *Env, vm store.VM, ips []store.IPAllocation) (int, error) {
	var addrs []netip.Addr
	for _, ip := range ips {
		if a, err := netip.ParseAddr(ip.Address); err == nil {
			addrs = append(addrs, a)
		}
	}
	ttl := uint32(env.Config.DNS.TTL)
	failed := 0
	for _, rec := range dns.Plan(env.Zones, vm.Hostname, addrs) {
		rec.TTL = ttl
		if publishRecord(ctx, env, vm, rec) != nil {
			failed++
		}
	}
	if err := env.Store.VMSetDNSDirty(ctx, vm.ID, failed > 0, env.Now()); err != nil {
		return failed, fmt.Errorf("record the DNS state: %w", err)
	}
	return failed, nil
}

// migrateToTarget moves the VM offline from the template's node to its
// target node, mapping disks to the product's storage.
func migrateToTarget(ctx context.Context, env *Env, vm store.VM) Result {
	p, bad := product(env, vm)
	if bad != nil {
		return *bad
	}
	if pending(vm) {
		if ok, res := awaitTask(ctx, env, vm, "migrate"); !ok {
			return res
		}
	}
	r, exists, err := findVMNear(ctx, env, vm)
	if err != nil {
		return fromError("find VM in cluster", err)
	}
	if !exists {
		return Permanent(fmt.Errorf("VM %d is not in the cluster", vm.VMID))
	}
	if r.Node == vm.TargetNode || vm.TargetNode == "" {
		if r.Node != vm.Node {
			if err := env.Store.VMSetNode(ctx, vm.ID, vm.Status, vm.Version, r.Node, env.Now()); err != nil {
				return Retryable(err)
			}
			return Success()
		}
		return Skip("already on target node " + r.Node)
	}
	if r.Lock == "migrate" {
		if res := staleLock(ctx, env, &vm, "migrate"); res != nil {
			return *res
		}
		return Wait("migration in progress (VM locked: migrate)")
	}
	if res := noHeavySlot(env, r.Node); res != nil {
		return *res
	}
	task, err := env.PVE.Migrate(ctx, proxmox.MigrateRequest{VM: proxmox.VMRef{Node: r.Node, VMID: vm.VMID},
		Target: vm.TargetNode, TargetStorage: p.SystemDisk.Storage})
	if proxmox.IsNotFound(err) {
		return Wait(fmt.Sprintf("VM %d is not on %s any more (the cluster list lags); looking again next tick", vm.VMID, r.Node))
	}
	return submit(ctx, env, vm, "migrate to "+vm.TargetNode, task, err)
}

// setCPURAM applies cores, sockets and memory.
func setCPURAM(ctx context.Context, env *Env, vm store.VM) Result {
	return withConfig(ctx, env, vm, func(vm store.VM, p config.Product, cfg proxmox.VMConfig) Result {
		want := map[string]string{"cores": strconv.Itoa(p.Cores), "sockets": strconv.Itoa(p.Sockets), "memory": strconv.Itoa(p.MemoryMB)}
		change := diffValues(cfg, want)
		if len(change) == 0 {
			return Skip("no change")
		}
		if err := env.PVE.SetConfigSync(ctx, ref(vm), proxmox.ConfigChange{Set: change}); err != nil {
			return fromError("set CPU and RAM", err)
		}
		return Success()
	})
}

// withConfig does the lookups most steps share: the product, where the VM
// is now, and its current config.
func withConfig(ctx context.Context, env *Env, vm store.VM, fn func(vm store.VM, p config.Product, cfg proxmox.VMConfig) Result) Result {
	p, bad := product(env, vm)
	if bad != nil {
		return *bad
	}
	if res := locate(ctx, env, &vm); res != nil {
		return *res
	}
	cfg, err := env.PVE.VMConfig(ctx, ref(vm))
	if err != nil {
		return fromError("read config", err)
	}
	return fn(vm, p, cfg)
}

// diffValues returns the keys of want whose config value differs.
func diffValues(cfg proxmox.VMConfig, want map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range want {
		if cur, _ := cfg.Get(k); cur != v {
			out[k] = v
		}
	}
	return out
}

// systemDiskKey finds the boot disk: the first disk in the boot order, or
// the first scsi/virtio/sata/ide disk that is not a CD-ROM.
func systemDiskKey(cfg proxmox.VMConfig) string {
	isDisk := func(k string) bool {
		v, ok := cfg.Get(k)
		return ok && !strings.Contains(v, "media=cdrom") && !strings.Contains(v, "cloudinit")
	}
	_, boot := proxmox.ParsePropertyString(cfg.Values["boot"])
	for _, k := range strings.Split(boot["order"], ";") {
		if isDisk(k) {
			return k
		}
	}
	for _, bus := range []string{"scsi", "virtio", "sata", "ide"} {
		for i := range 31 {
			if k := bus + strconv.Itoa(i); isDisk(k) {
				return k
			}
		}
	}
	return ""
}

// additionalDiskKey is the additional disk's key: the product's bus with
// the lowest free index after the system disk.
func additionalDiskKey(cfg proxmox.VMConfig, p config.Product) string {
	sys := systemDiskKey(cfg)
	for i := 1; i < 31; i++ {
		k := p.AdditionalDisk.Bus + strconv.Itoa(i)
		if _, taken := cfg.Get(k); !taken && k != sys {
			return k
		}
	}
	return p.AdditionalDisk.Bus + "1"
}

const gib = int64(1) << 30

// resizeDisk grows disk key to sizeGB, following the resize task.
func resizeDisk(ctx context.Context, env *Env, vm store.VM, key string, sizeGB int) Result {
	if pending(vm) {
		if ok, res := awaitTask(ctx, env, vm, "resize "+key); !ok {
			return res
		}
		return Success()
	}
	cfg, err := env.PVE.VMConfig(ctx, ref(vm))
	if err != nil {
		return fromError("read config", err)
	}
	cur, ok := cfg.DiskSize(key)
	if !ok {
		return Permanent(fmt.Errorf("VM %d has no disk %s to resize", vm.VMID, key))
	}
	want := int64(sizeGB) * gib
	if cur == want {
		return Skip("no change")
	}
	if cur > want {
		return Skip(fmt.Sprintf("new size is smaller: %s is %s, product says %dG; disks never shrink", key, humanSize(cur), sizeGB))
	}
	task, err := env.PVE.ResizeDisk(ctx, ref(vm), key, fmt.Sprintf("%dG", sizeGB))
	return submit(ctx, env, vm, "resize "+key, task, err)
}

func humanSize(b int64) string {
	if b%gib == 0 {
		return fmt.Sprintf("%dG", b/gib)
	}
	return fmt.Sprintf("%.1fG", float64(b)/float64(gib))
}

// setDiskIO sets a disk's iops/mbps limits; 0 removes a limit.
func setDiskIO(ctx context.Context, env *Env, vm store.VM, key string, d config.Disk) Result {
	cfg, err := env.PVE.VMConfig(ctx, ref(vm))
	if err != nil {
		return fromError("read config", err)
	}
	cur, ok := cfg.Get(key)
	if !ok {
		return Permanent(fmt.Errorf("VM %d has no disk %s", vm.VMID, key))
	}
	next := withDiskLimits(cur, d)
	if next == cur {
		return Skip("no change")
	}
	if err := env.PVE.SetConfigSync(ctx, ref(vm), proxmox.ConfigChange{Set: map[string]string{key: next}}); err != nil {
		return fromError("set I/O limits on "+key, err)
	}
	return Success()
}

// withDiskLimits rewrites a disk property string with the product's limits,
// keeping every other option in place.
func withDiskLimits(cur string, d config.Disk) string {
	limits := map[string]int{"iops_rd": d.IopsRd, "iops_wr": d.IopsWr, "mbps_rd": d.MbpsRd, "mbps_wr": d.MbpsWr}
	parts := strings.Split(cur, ",")
	var out []string
	seen := map[string]bool{}
	for _, part := range parts {
		k, _, _ := strings.Cut(part, "=")
		if v, ok := limits[k]; ok {
			seen[k] = true
			if v > 0 {
				out = append(out, k+"="+strconv.Itoa(v))
			}
			continue
		}
		out = append(out, part)
	}
	for _, k := range []string{"iops_rd", "iops_wr", "mbps_rd", "mbps_wr"} {
		if !seen[k] && limits[k] > 0 {
			out = append(out, k+"="+strconv.Itoa(limits[k]))
		}
	}
	return strings.Join(out, ",")
}

// createAdditionalDisk allocates the product's additional disk.
func createAdditionalDisk(ctx context.Context, env *Env, vm store.VM) Result {
	p, bad := product(env, vm)
	if bad != nil {
		return *bad
	}
	if p.AdditionalDisk.SizeGB == 0 {
		return Skip("no additional disk in product")
	}
	if res := locate(ctx, env, &vm); res != nil {
		return *res
	}
	if pending(vm) {
		if ok, res := awaitTask(ctx, env, vm, "create additional disk"); !ok {
			return res
		}
		return Success()
	}
	cfg, err := env.PVE.VMConfig(ctx, ref(vm))
	if err != nil {
		return fromError("read config", err)
	}
	if key, ok := findAdditionalDisk(cfg); ok {
		if State(vm.Status) == CPSystemDiskBandwidth { // change-package: the disk is as the product wants
			return Skip("no change (" + key + " exists)")
		}
		return Skip(key + " already exists")
	}
	key := additionalDiskKey(cfg, p)
	value := fmt.Sprintf("%s:%d,serial=pvectl-additional", p.AdditionalDisk.Storage, p.AdditionalDisk.SizeGB)
	// The digest makes this POST idempotent: PVE applies a POST config in
	// its worker, so after a crash between the POST and recording its UPID
	// the next tick may not see the disk yet and POST again; with the digest
	// of the config it read, that second worker fails with "checksum
	// mismatch" (retryable) instead of allocating a second disk and leaving
	// the first as unusedN.
	task, err := env.PVE.SetConfig(ctx, ref(vm), proxmox.ConfigChange{Set: map[string]string{key: value}, Digest: cfg.Digest})
	return submit(ctx, env, vm, "create "+key, task, err)
}

// findAdditionalDisk finds the disk pvectl created (serial=pvectl-additional).
func findAdditionalDisk(cfg proxmox.VMConfig) (string, bool) {
	keys := make([]string, 0, len(cfg.Values))
	for k := range cfg.Values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if strings.Contains(cfg.Values[k], "serial=pvectl-additional") && !strings.HasPrefix(k, "unused") {
			return k, true
		}
	}
	return "", false
}

// withDisk does the lookups the disk steps share: the product, where the VM
// is, its config and the key of its system or additional disk. A product
// without an additional disk skips the additional-disk steps.
func withDisk(ctx context.Context, env *Env, vm store.VM, additional bool, fn func(vm store.VM, key string, d config.Disk) Result) Result {
	if p, bad := product(env, vm); bad == nil && additional && p.AdditionalDisk.SizeGB == 0 {
		return Skip("no additional disk in product")
	}
	return withConfig(ctx, env, vm, func(vm store.VM, p config.Product, cfg proxmox.VMConfig) Result {
		d, key, ok := p.SystemDisk, systemDiskKey(cfg), true
		if additional {
			d = p.AdditionalDisk
			key, ok = findAdditionalDisk(cfg)
		}
		if !ok || key == "" {
			return Permanent(fmt.Errorf("VM %d has no %s disk in its config; reset-status to the step that creates it", vm.VMID, map[bool]string{true: "additional", false: "system"}[additional]))
		}
		return fn(vm, key, d)
	})
}

func resizeSystemDisk(ctx context.Context, env *Env, vm store.VM) Result {
	return withDisk(ctx, env, vm, false, func(vm store.VM, key string, d config.Disk) Result {
		if d.SizeGB == 0 {
			return Skip("size 0 keeps the template's size")
		}
		return resizeDisk(ctx, env, vm, key, d.SizeGB)
	})
}

func setSystemDiskIO(ctx context.Context, env *Env, vm store.VM) Result {
	return withDisk(ctx, env, vm, false, func(vm store.VM, key string, d config.Disk) Result {
		return setDiskIO(ctx, env, vm, key, d)
	})
}

func resizeAdditionalDisk(ctx context.Context, env *Env, vm store.VM) Result {
	return withDisk(ctx, env, vm, true, func(vm store.VM, key string, d config.Disk) Result {
		return resizeDisk(ctx, env, vm, key, d.SizeGB)
	})
}

func setAdditionalDiskIO(ctx context.Context, env *Env, vm store.VM) Result {
	return withDisk(ctx, env, vm, true, func(vm store.VM, key string, d config.Disk) Result {
		return setDiskIO(ctx, env, vm, key, d)
	})
}

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

func configureNetwork(ctx context.Context, env *Env, vm store.VM) Result {
	return withConfig(ctx, env, vm, func(vm store.VM, p config.Product, cfg proxmox.VMConfig) Result {
		cur, _ := cfg.Get("net0")
		if vm.MAC == "" {
			if mac := macOf(cur); mac != "" {
				_ = env.Store.VMSetMAC(ctx, vm.ID, mac, env.Now())
			}
		}
		next := netValue(cur, p.Network, vm.MAC)
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
	})
}

// IPSetName is the anti-spoofing IP set PVE's ipfilter uses for net0.
const IPSetName = "ipfilter-net0"

func configureFirewall(ctx context.Context, env *Env, vm store.VM) Result {
	p, bad := product(env, vm)
	if bad != nil {
		return *bad
	}
	if res := locate(ctx, env, &vm); res != nil {
		return *res
	}
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
	sets, err := env.PVE.IPSets(ctx, ref(vm))
	if err != nil {
		return false, err
	}
	if !slices.ContainsFunc(sets, func(s proxmox.IPSet) bool { return s.Name == IPSetName }) {
		changed = true
		if err := env.PVE.CreateIPSet(ctx, ref(vm), IPSetName, "pvectl anti-spoofing"); err != nil && !proxmox.IsAlreadyExists(err) {
			return changed, err
		}
	}
	entries, err := env.PVE.IPSetEntries(ctx, ref(vm), IPSetName)
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

// configureCloudInit writes user, password, SSH keys, addresses and name
// servers. The password is forgotten once PVE has it.
func configureCloudInit(ctx context.Context, env *Env, vm store.VM) Result {
	p, bad := product(env, vm)
	if bad != nil {
		return *bad
	}
	if res := locate(ctx, env, &vm); res != nil {
		return *res
	}
	changed, err := applyCloudInit(ctx, env, vm, p)
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
// servers. PVE applies them at the next boot. It reads the VM's config
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
	cfg, err := env.PVE.VMConfig(ctx, ref(vm))
	if err != nil {
		return false, err
	}
	if cloudInitCurrent(cfg, ci) {
		return false, nil
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

// startVM starts the VM and follows the start task.
func startVM(ctx context.Context, env *Env, vm store.VM) Result {
	if res := locate(ctx, env, &vm); res != nil {
		return *res
	}
	if pending(vm) {
		ok, res := awaitTask(ctx, env, vm, "start")
		if ok {
			return Success()
		}
		if res.Kind == Retry || res.Kind == Fail {
			if proxmox.IsAlreadyRunning(res.Err) {
				return Success()
			}
		}
		return res
	}
	st, err := env.PVE.VMStatus(ctx, ref(vm))
	if err != nil {
		return fromError("read VM status", err)
	}
	if st.Status == "running" {
		return Skip("already running")
	}
	task, err := env.PVE.Start(ctx, ref(vm), proxmox.StartOptions{})
	if proxmox.IsAlreadyRunning(err) {
		return Skip("already running")
	}
	return submit(ctx, env, vm, "start", task, err)
}

// retrying reports whether this is the first tick of a new attempt of the
// VM's step after an error: no wait counted yet, and an error recorded. It
// covers both ways a retry comes: the backoff ended (attempts > 0) and
// `pvectl vm retry` (attempts and step data reset to zero, the last error
// kept). A VM that just entered its step has neither: the step's outcome
// clears the last error.
func retrying(vm store.VM) bool {
	return vm.StepWaits == 0 && (vm.Attempts > 0 || vm.LastError != "")
}

// verifyRunning waits up to start_wait_ticks ticks for the guest to run,
// then emits the "VM is ready" notification event.
func verifyRunning(ctx context.Context, env *Env, vm store.VM) Result {
	if res := locate(ctx, env, &vm); res != nil {
		return *res
	}
	st, err := env.PVE.VMStatus(ctx, ref(vm))
	if err != nil {
		return fromError("read VM status", err)
	}
	if st.Running() {
		if vm.Status == string(CPStart) {
			// The guest runs with its new addresses: the ones taken away are
			// free now, unless DNS still points at them (then the DNS retry
			// frees them once it has deleted their records).
			if !vm.DNSDirty {
				if err := freeTakenAddresses(ctx, env, vm, CPStart); err != nil {
					return Retryable(err)
				}
			}
			env.Emit(fmt.Sprintf("event: upgraded — %s now runs product %s (package changed)", vm.Hostname, vm.Product))
		} else {
			env.Emit(fmt.Sprintf("event: VM is ready — %s (VMID %d on %s)", vm.Hostname, vm.VMID, vm.Node))
		}
		return Success()
	}
	if pending(vm) {
		// The start this step requested again: a failed start task is an
		// error with its exit status, not a silent wait.
		if ok, res := awaitTask(ctx, env, vm, "start again"); !ok {
			return res
		}
	} else if st.Stopped() && retrying(vm) {
		// A retry after the guest did not come up (the backoff ended, or
		// `pvectl vm retry` released it): start it again.
		task, err := env.PVE.Start(ctx, ref(vm), proxmox.StartOptions{})
		if proxmox.IsAlreadyRunning(err) || (err == nil && task.IsZero()) {
			return Wait("guest was stopped; start requested again")
		}
		return submit(ctx, env, vm, "start again", task, err)
	}
	limit := env.Config.Tasks.ProcessVMs.StartWaitTicks
	seen := st.Status
	if st.QMPStatus != "" && st.QMPStatus != st.Status {
		seen += "/" + st.QMPStatus
	}
	if vm.StepWaits+1 >= limit {
		r := Retryable(fmt.Errorf("guest not running after %d ticks (status %s)", limit, seen))
		r.ClearTask = true // a start requested again is done with: the next attempt may request another
		return r
	}
	return Wait(fmt.Sprintf("guest status %s, tick %d of %d", seen, vm.StepWaits+1, limit))
}
