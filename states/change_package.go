package states

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pvectl/pvectl/config"
	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/store"
)

// ChangePackageTable reconfigures a ready VM to its new product. Every cp_*
// step compares the VM with the product and logs `skip (no change)` when they
// match; disks never shrink; the VM is stopped once and started once.
func ChangePackageTable() *Pipeline {
	return MustPipeline("change_package", ChangePackage, []Step{
		{From: ChangePackage, To: CPUpdateIP, Label: "Update IPs, IP set and DNS", Run: updateIPs},
		{From: CPUpdateIP, To: CPStop, Label: "Stop VM", Run: stopForChange},
		{From: CPStop, To: CPCPURAM, Label: "Set CPU & RAM", Run: keepRunning(setCPURAM)},
		{From: CPCPURAM, To: CPSystemDiskSize, Label: "Resize system disk", Run: keepRunning(resizeSystemDisk)},
		{From: CPSystemDiskSize, To: CPSystemDiskBandwidth, Label: "Set system disk I/O", Run: keepRunning(setSystemDiskIO)},
		{From: CPSystemDiskBandwidth, To: CPAdditionalDisk, Label: "Additional disk", Run: keepRunning(changeAdditionalDisk)},
		{From: CPAdditionalDisk, To: CPAdditionalDiskSize, Label: "Resize additional disk", Run: keepRunning(resizeAdditionalDisk)},
		{From: CPAdditionalDiskSize, To: CPAdditionalDiskBandwidth, Label: "Set additional disk I/O", Run: keepRunning(setAdditionalDiskIO)},
		{From: CPAdditionalDiskBandwidth, To: CPNetwork, Label: "Configure network", Run: keepRunning(configureNetwork)},
		{From: CPNetwork, To: CPFirewall, Label: "Configure firewall", Run: keepRunning(configureFirewall)},
		{From: CPFirewall, To: CPStart, Label: "Start VM", Run: startVM},
		{From: CPStart, To: Ready, Label: "Verify running", Run: verifyRunning},
	})
}

// updateIPs makes the VM's addresses match the product: its counts, and its
// network. An address whose pool no longer serves the product's bridge and
// VLAN on the VM's node (a change to a product on another bridge or VLAN,
// or a VM moved to a node the pool does not list) is re-pooled: the same
// number of addresses is taken from a pool that does, in the same store
// transaction that takes the old ones away. It then refreshes the
// anti-spoofing IP set, the cloud-init addresses and DNS. Removed addresses
// go back to the pool only after the IP set and DNS no longer use them.
func updateIPs(ctx context.Context, env *Env, vm store.VM) Result {
	p, bad := product(env, vm)
	if bad != nil {
		return *bad
	}
	if res := locate(ctx, env, &vm); res != nil {
		return *res
	}
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
				fresh, err = pickAddresses(ctx, env, vm.Product, p, node, more4, more6)
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

// stopForChange stops the VM for the hardware changes: a graceful shutdown,
// then a forced stop once stop_timeout has passed (measured across ticks).
func stopForChange(ctx context.Context, env *Env, vm store.VM) Result {
	if res := locate(ctx, env, &vm); res != nil {
		return *res
	}
	_, sent := stepTime(stepData(vm), "shutdown_at")
	stopped, res := stopVM(ctx, env, &vm)
	if stopped && !sent {
		return Skip("VM already stopped")
	}
	if stopped {
		return Success()
	}
	if res.Kind == Skipped { // gave up: still running after the forced stop
		// The next attempt starts over with a graceful shutdown.
		_ = saveStepData(ctx, env, &vm, url.Values{})
		return Retryable(errors.New("VM still running after graceful shutdown and forced stop; will try again"))
	}
	return res
}

// stopVM drives a VM towards stopped without ever waiting inside a tick:
// a graceful shutdown first, always; a forced stop once stop_timeout has
// passed since the shutdown was sent (measured across ticks and backoffs,
// remembered in the step's data); after another stop_timeout it gives up
// with a Skip result. stopped reports the VM is stopped now.
func stopVM(ctx context.Context, env *Env, vm *store.VM) (stopped bool, res Result) {
	st, err := env.PVE.VMStatus(ctx, ref(*vm))
	if proxmox.IsNotFound(err) {
		return true, Result{}
	}
	if err != nil {
		return false, fromError("read VM status", err)
	}
	if st.Stopped() {
		return true, Result{}
	}
	timeout := env.Config.Tasks.ProcessVMs.StopTimeout.D()
	now := env.Now()
	data := stepData(*vm)
	sinceShutdown, sent := stepSince(ctx, env, vm, data, "shutdown_at")
	if !sent {
		task, err := env.PVE.Shutdown(ctx, ref(*vm), proxmox.ShutdownOptions{Timeout: timeout})
		if proxmox.IsNotRunning(err) {
			return true, Result{}
		}
		if err != nil {
			return false, fromError("shutdown", err)
		}
		setStepTime(data, "shutdown_at", now)
		if err := saveStepData(ctx, env, vm, data); err != nil {
			return false, Retryable(err)
		}
		return false, submit(ctx, env, *vm, "graceful shutdown", task, nil)
	}
	if waited := sinceShutdown; waited < timeout {
		return false, Wait(fmt.Sprintf("waiting for graceful shutdown (%s of %s)", waited.Round(time.Second), timeout))
	}
	sinceStop, forced := stepSince(ctx, env, vm, data, "stop_at")
	if !forced {
		env.Emit(fmt.Sprintf("graceful shutdown did not finish in %s; forcing stop", timeout))
		task, err := env.PVE.Stop(ctx, ref(*vm), proxmox.StopOptions{OverruleShutdown: true})
		if proxmox.IsNotRunning(err) {
			return true, Result{}
		}
		if err != nil {
			return false, fromError("stop", err)
		}
		setStepTime(data, "stop_at", now)
		if err := saveStepData(ctx, env, vm, data); err != nil {
			return false, Retryable(err)
		}
		return false, submit(ctx, env, *vm, "forced stop", task, nil)
	}
	if waited := sinceStop; waited < timeout {
		return false, Wait(fmt.Sprintf("waiting for forced stop (%s)", waited.Round(time.Second)))
	}
	why := ""
	if vm.PendingUPID != "" { // the forced stop's task says why it did not stop
		if ts, err := env.PVE.TaskStatus(ctx, proxmox.TaskRef{Node: vm.PendingNode, UPID: vm.PendingUPID}); err == nil && ts.Err() != nil {
			why = "; the stop task ended: " + ts.ExitStatus
		}
	}
	return false, Skip(fmt.Sprintf("still %s after graceful shutdown and forced stop%s", st.Status, why))
}

// keepRunning wraps the change-package steps that run while the VM is
// stopped (cp_stop … cp_firewall). A permanent failure starts the VM again
// (best effort) so the customer is not left offline while it is held at the
// failed step. After the fix, `pvectl vm retry` resumes at that same step:
// the wrapper finds the VM running, stops it again (graceful shutdown, then
// forced, as cp_stop does) and only then runs the step. Steps already done
// are never repeated.
func keepRunning(fn StepFunc) StepFunc {
	return func(ctx context.Context, env *Env, vm store.VM) Result {
		data := stepData(vm)
		_, stopping := stepTime(data, "shutdown_at")
		if !pending(vm) || stopping {
			// No task of the step itself is in flight: the VM must be stopped first.
			stopped, res := stopVM(ctx, env, &vm)
			if !stopped {
				if res.Kind == Skipped { // still running after graceful and forced stop
					_ = saveStepData(ctx, env, &vm, url.Values{})
					return Retryable(errors.New("VM still running after graceful shutdown and forced stop; will try again"))
				}
				return res
			}
			if stopping { // our stop is done: forget it, so the step sees only its own task
				data.Del("shutdown_at")
				data.Del("stop_at")
				if err := saveStepData(ctx, env, &vm, data); err != nil {
					return Retryable(err)
				}
				if err := env.Store.VMSetPendingTask(ctx, vm.ID, vm.Status, vm.Version, "", "", "", env.Now()); err != nil {
					return Retryable(err)
				}
				vm.PendingUPID, vm.PendingNode, vm.PendingStep = "", "", ""
				env.Emit("VM stopped again; resuming the change at this step")
			}
		}
		res := fn(ctx, env, vm)
		if res.Kind != Fail || res.Goto != "" {
			return res
		}
		if _, err := env.PVE.Start(ctx, ref(vm), proxmox.StartOptions{}); err != nil && !proxmox.IsAlreadyRunning(err) {
			env.Emit("could not start the VM again after the failure: " + err.Error())
		} else {
			env.Emit("started the VM again so the customer is not left offline; after fixing the cause, pvectl vm retry stops it and resumes at this step")
		}
		return res
	}
}

// changeAdditionalDisk creates the additional disk a new product brings, or
// removes one the new product no longer has (its snapshots first, then
// detach, then destroy the volume).
func changeAdditionalDisk(ctx context.Context, env *Env, vm store.VM) Result {
	p, bad := product(env, vm)
	if bad != nil {
		return *bad
	}
	if p.AdditionalDisk.SizeGB > 0 {
		return createAdditionalDisk(ctx, env, vm)
	}
	if res := locate(ctx, env, &vm); res != nil {
		return *res
	}
	if pending(vm) {
		if ok, res := awaitTask(ctx, env, vm, "remove additional disk"); !ok {
			return res
		}
	}
	cfg, err := env.PVE.VMConfig(ctx, ref(vm))
	if err != nil {
		return fromError("read config", err)
	}
	// A volume detached by an earlier attempt (remembered before the detach,
	// across retries and rewinds) is destroyed first, so a crash or a failed
	// destroy leaks nothing.
	if volid := vm.DetachedVolume; volid != "" {
		for _, k := range sortedKeys(cfg.Values) {
			if strings.HasPrefix(k, "unused") && cfg.Values[k] == volid {
				env.Emit("destroying " + k + " (" + volid + ")")
				task, err := env.PVE.SetConfig(ctx, ref(vm), proxmox.ConfigChange{Delete: []string{k}, Digest: cfg.Digest})
				return submit(ctx, env, vm, "destroy "+volid, task, err)
			}
		}
		// Gone: the destroy finished (or PVE destroyed it on detach).
		if err := env.Store.VMSetDetachedVolume(ctx, vm.ID, vm.Status, vm.Version, "", env.Now()); err != nil {
			return Retryable(err)
		}
		if _, ok := findAdditionalDisk(cfg); !ok {
			return Success()
		}
	}
	key, ok := findAdditionalDisk(cfg)
	if !ok {
		if pending(vm) {
			return Success() // our removal finished
		}
		return Skip("no additional disk in product")
	}
	snaps, err := env.PVE.Snapshots(ctx, ref(vm))
	if err != nil {
		return fromError("list snapshots", err)
	}
	if len(snaps) > 0 {
		env.Emit(fmt.Sprintf("deleting snapshot %s before removing the additional disk (%d left)", snaps[0].Name, len(snaps)))
		task, err := env.PVE.DeleteSnapshot(ctx, ref(vm), snaps[0].Name, false)
		return submit(ctx, env, vm, "delete snapshot "+snaps[0].Name, task, err)
	}
	// Detach (PVE moves the volume to an unusedN key); the next tick destroys
	// that unused volume.
	volid, _ := proxmox.ParsePropertyString(cfg.Values[key])
	if err := env.Store.VMSetDetachedVolume(ctx, vm.ID, vm.Status, vm.Version, volid, env.Now()); err != nil {
		return Retryable(err)
	}
	env.Emit("detaching additional disk " + key + " (" + volid + ")")
	if err := env.PVE.SetConfigSync(ctx, ref(vm), proxmox.ConfigChange{Delete: []string{key}, Digest: cfg.Digest}); err != nil {
		return fromError("detach "+key, err)
	}
	return Wait("detached " + key + "; destroying the volume next")
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
