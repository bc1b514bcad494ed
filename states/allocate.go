// Allocation steps: the target node, the VMID and the addresses a deploy
// reserves, the change-package's re-allocation of addresses, and their
// release (taken addresses once DNS no longer points at them, everything at
// the end of a terminate).

package states

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pvectl/pvectl/config"
	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/store"
)

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
	tpl, err := p.TemplateFor(vm.Template)
	if err != nil {
		return Permanent(fmt.Errorf("product %s: %w; fix the config, or reset-status creation after recreating the VM with a valid --template", vm.Product, err))
	}
	// The pass's view of the cluster (Fleet): a VMID taken in PVE after it
	// was read cannot become a duplicate (the clone looks on the template's
	// node, and PVE refuses a clone onto a VMID that exists), and one freed
	// since is only skipped.
	all, err := fleetResources(ctx, env, proxmox.ResourceAll)
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
	// The pass's workers pick one at a time from the pass's view of what is
	// taken (Claims); a value another process took meanwhile is caught by
	// the store's unique constraints, and we pick again from a fresh read.
	if err := env.Strays.Look(ctx, env); err != nil {
		return Retryable(fmt.Errorf("not handing out addresses: %w", err))
	}
	for range 5 {
		vmid, ips, err := env.Claims.pick(ctx, env, func(t *taken) (int, []store.IPAllocation, error) {
			vmid := t.freeVMID(env.Config.VMIDRange.Min, env.Config.VMIDRange.Max, inCluster)
			if vmid == 0 {
				return 0, nil, fmt.Errorf("no free VMID in %d-%d", env.Config.VMIDRange.Min, env.Config.VMIDRange.Max)
			}
			ips, err := pickAddresses(env, t, vm.Product, p, target, p.Network.IPv4, p.Network.IPv6)
			return vmid, ips, err
		})
		if err != nil {
			return Retryable(err)
		}
		err = env.Store.VMReserve(ctx, store.Reservation{ID: vm.ID, Status: vm.Status, Version: vm.Version,
			VMID: vmid, Node: tpl.Node, TargetNode: target, IPs: ips, Now: env.Now()})
		if errors.Is(err, store.ErrDuplicate) {
			env.Claims.Reset()
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
	return Retryable(errors.New("VMID or address taken by another process on every try; will retry"))
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
	var known []string
	for _, r := range all {
		if r.Type == "node" {
			known = append(known, r.Node)
		}
	}
	tpl, err := p.TemplateFor(vm.Template)
	if err != nil {
		return "", fmt.Errorf("%w: product %s: %v", errUnknownNode, vm.Product, err)
	}
	if !slices.Contains(known, tpl.Node) {
		sort.Strings(known)
		key := "template.node"
		if vm.Template != "" {
			key = "templates." + vm.Template + ".node"
		}
		return "", fmt.Errorf("%w: %s is product %s's template node (cluster nodes: %s); fix %s in the config, then pvectl vm retry",
			errUnknownNode, tpl.Node, vm.Product, strings.Join(known, ", "), key)
	}
	return placeNode(want, vm.Product, p, all, "")
}

// placeNode applies the placement rule to want: a named node must be in
// the cluster (else errUnknownNode) and online; "auto" is the online node
// other than exclude that has the system-disk storage and the most free
// memory.
func placeNode(want, productName string, p config.Product, all []proxmox.Resource, exclude string) (string, error) {
	online := map[string]proxmox.Resource{}
	var known []string
	for _, r := range all {
		if r.Type == "node" {
			known = append(known, r.Node)
			if r.Status == "online" && r.Node != exclude {
				online[r.Node] = r
			}
		}
	}
	if want != "auto" {
		if !slices.Contains(known, want) {
			sort.Strings(known)
			return "", fmt.Errorf("%w: %s (cluster nodes: %s); fix the product or the VM's node, then pvectl vm retry", errUnknownNode, want, strings.Join(known, ", "))
		}
		if _, ok := online[want]; !ok && want != exclude {
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
		if exclude != "" {
			return "", fmt.Errorf("no online node but %s has storage %q for product %s", exclude, p.SystemDisk.Storage, productName)
		}
		return "", fmt.Errorf("no online node has storage %q for product %s", p.SystemDisk.Storage, productName)
	}
	return best, nil
}

// pickAddresses chooses v4 IPv4 and v6 IPv6 free addresses from pools
// matching the node and the product's bridge and VLAN (none for a family the
// product runs with DHCP), avoiding those taken. Call Strays.Look first.
func pickAddresses(env *Env, t *taken, name string, p config.Product, node string, v4, v6 int) ([]store.IPAllocation, error) {
	// Taken and quarantined addresses are looked up by address, not by
	// the pool they were recorded under: a pool renamed (or split) in the
	// config still holds them.
	used, quarantined := t.ips, t.quarantined
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

// updateIPs makes the VM's addresses match the product: its counts, and its
// network. An address whose pool no longer serves the product's bridge and
// VLAN on the VM's node (a change to a product on another bridge or VLAN,
// or a VM moved to a node the pool does not list) is re-pooled: the same
// number of addresses is taken from a pool that does, in the same store
// transaction that takes the old ones away. It then refreshes the
// anti-spoofing IP set, the cloud-init addresses and DNS. Removed addresses
// go back to the pool only after the IP set and DNS no longer use them
// (NeedProduct, NeedLocation).
func updateIPs(ctx context.Context, env *Env, vm store.VM) Result {
	p := env.Product
	// The node the VM runs on now: its bridges are the ones its NIC uses.
	node := vm.Node
	if node == "" {
		node = vm.TargetNode
	}
	ips, err := env.Store.IPsForVM(ctx, vm.ID)
	if err != nil {
		return Retryable(err)
	}
	var keep []store.IPAllocation
	var release, repool []string
	count := map[int]int{}
	want := map[int]int{4: p.Network.IPv4, 6: p.Network.IPv6}
	// A family the product runs with DHCP needs no static address: those the
	// VM holds are released like a lowered count.
	if p.Network.DHCPv4 {
		want[4] = 0
	}
	if p.Network.DHCPv6 {
		want[6] = 0
	}
	for _, ip := range ips {
		switch {
		case count[ip.Family] >= want[ip.Family]:
			release = append(release, ip.Address)
		case !addressFits(env, ip, p, node):
			release = append(release, ip.Address)
			repool = append(repool, ip.Address)
		default:
			keep = append(keep, ip)
			count[ip.Family]++
		}
	}
	var fresh []store.IPAllocation
	if more4, more6 := want[4]-count[4], want[6]-count[6]; more4 > 0 || more6 > 0 || len(release) > 0 {
		// New addresses and the release of the old ones are one store
		// transaction: a crash leaves both or neither, and a resumed step
		// finds the new ones fitting and the old ones gone from the VM.
		done := false
		for range 5 {
			fresh = nil
			if more4 > 0 || more6 > 0 {
				// The safety net: addresses of VMs pvectl created that no
				// record knows (a lost or replaced database) are never
				// handed out.
				if err = env.Strays.Look(ctx, env); err != nil {
					err = fmt.Errorf("not handing out addresses: %w", err)
				} else {
					_, fresh, err = env.Claims.pick(ctx, env, func(t *taken) (int, []store.IPAllocation, error) {
						ips, err := pickAddresses(env, t, vm.Product, p, node, more4, more6)
						return 0, ips, err
					})
				}
				if err != nil {
					if len(repool) > 0 {
						err = fmt.Errorf("re-pool %s (no configured pool for bridge %s VLAN %d on node %s holds it): %w; the VM keeps its addresses and nothing was changed",
							strings.Join(repool, ", "), p.Network.Bridge, p.Network.VLAN, node, err)
					}
					return Retryable(err)
				}
			}
			err = env.Store.IPReplace(ctx, vm.ID, vm.Status, vm.Version, fresh, release, env.Now())
			if errors.Is(err, store.ErrDuplicate) {
				env.Claims.Reset()
				continue
			}
			if err != nil {
				return Retryable(err)
			}
			done = true
			break
		}
		if !done {
			return Retryable(errors.New("addresses taken concurrently five times in a row; will retry"))
		}
		for _, ip := range fresh {
			env.Emit("allocated " + ip.Address)
		}
		if len(repool) > 0 {
			env.Emit(fmt.Sprintf("re-pooled: %s not in a pool for bridge %s VLAN %d on node %s", strings.Join(repool, ", "), p.Network.Bridge, p.Network.VLAN, node))
		}
		keep = append(keep, fresh...)
	}
	changed := len(release) > 0 || len(fresh) > 0
	setChanged, err := refreshIPSet(ctx, env, vm, p, keep)
	if err != nil {
		return fromError("anti-spoofing IP set", err)
	}
	changed = changed || setChanged
	// The guest learns its new addresses from cloud-init at cp_start's boot.
	ciChanged, err := applyCloudInit(ctx, env, vm, p)
	if err != nil {
		return fromError("update cloud-init addresses", err)
	}
	changed = changed || ciChanged
	dnsClean := true
	if len(env.Zones) > 0 && env.DNS != nil {
		delFailed := DeleteDNS(ctx, env, vm)
		pubFailed, err := SyncDNS(ctx, env, vm, keep)
		if err != nil {
			return Retryable(err)
		}
		if delFailed > 0 {
			if err := env.Store.VMSetDNSDirty(ctx, vm.ID, true, env.Now()); err != nil {
				return Retryable(fmt.Errorf("record the DNS state: %w", err))
			}
		}
		dnsClean = delFailed == 0 && pubFailed == 0
	}
	if len(release) > 0 {
		// The guest keeps using them until it reboots with the new
		// cloud-init at cp_start: they are freed once the change is done and
		// DNS no longer points at them.
		when := "the change is done"
		if !dnsClean {
			when += " and the DNS retry has deleted their records"
		}
		env.Emit("taking " + strings.Join(release, ", ") + " away; reserved until " + when)
	}
	if !changed {
		return Skip("no change")
	}
	return Success()
}

// addressFits reports whether an address may stay with a VM on node running
// product p: a configured pool of its family for the product's bridge and
// VLAN that lists node holds it in its first–last range. That is normally
// the pool recorded with it; a pool renamed in the config (same range)
// counts as well.
func addressFits(env *Env, ip store.IPAllocation, p config.Product, node string) bool {
	a, err := netip.ParseAddr(ip.Address)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(env.Config.IPPools, func(pool config.IPPool) bool {
		if pool.Family != ip.Family || pool.Bridge != p.Network.Bridge || pool.VLAN != p.Network.VLAN || !slices.Contains(pool.Nodes, node) {
			return false
		}
		first, err1 := netip.ParseAddr(pool.First)
		last, err2 := netip.ParseAddr(pool.Last)
		return err1 == nil && err2 == nil && !a.Less(first) && !last.Less(a)
	})
}

// freeTakenAddresses gives the addresses taken from the VM (a change-package
// that lowered its counts, or a terminate whose DNS deletes failed) back to
// the pool, if the VM is in one of the given states. Call it only once DNS no
// longer points at them. A VM mid-change keeps them: its IP set and its guest
// may still use them until cp_start reboots it with the new cloud-init.
func freeTakenAddresses(ctx context.Context, env *Env, vm store.VM, in ...State) error {
	names := make([]string, len(in))
	for i, s := range in {
		names[i] = string(s)
	}
	freed, err := env.Store.IPReleasePending(ctx, vm.ID, env.Now(), names...)
	if err != nil {
		return err
	}
	if len(freed) > 0 {
		env.Emit("released " + strings.Join(freed, ", ") + " (back in the pool)")
	}
	return nil
}

// releaseResources frees the IPs and VMID once PVE confirmed the VM is gone.
func releaseResources(ctx context.Context, env *Env, vm store.VM) Result {
	ips, err := env.Store.IPsForVM(ctx, vm.ID)
	if err != nil {
		return Retryable(err)
	}
	if err := env.Store.VMReleaseResources(ctx, vm.ID, vm.Status, vm.Version, env.Now()); err != nil {
		return Retryable(err)
	}
	env.Emit(fmt.Sprintf("released VMID %d and %d address(es)", vm.VMID, len(ips)))
	return Success()
}
