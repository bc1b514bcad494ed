package states

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

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
		{From: CPStop, To: CPCPURAM, Label: "Set CPU & RAM", Run: setCPURAM},
		{From: CPCPURAM, To: CPSystemDiskSize, Label: "Resize system disk", Run: resizeSystemDisk},
		{From: CPSystemDiskSize, To: CPSystemDiskBandwidth, Label: "Set system disk I/O", Run: setSystemDiskIO},
		{From: CPSystemDiskBandwidth, To: CPAdditionalDisk, Label: "Additional disk", Run: changeAdditionalDisk},
		{From: CPAdditionalDisk, To: CPAdditionalDiskSize, Label: "Resize additional disk", Run: resizeAdditionalDisk},
		{From: CPAdditionalDiskSize, To: CPAdditionalDiskBandwidth, Label: "Set additional disk I/O", Run: setAdditionalDiskIO},
		{From: CPAdditionalDiskBandwidth, To: CPNetwork, Label: "Configure network", Run: configureNetwork},
		{From: CPNetwork, To: CPFirewall, Label: "Configure firewall", Run: configureFirewall},
		{From: CPFirewall, To: CPStart, Label: "Start VM", Run: startVM},
		{From: CPStart, To: Ready, Label: "Verify running", Run: verifyRunning},
	})
}

// updateIPs makes the VM's addresses match the product's counts, refreshes
// the anti-spoofing IP set and resyncs DNS. Removed addresses go back to the
// pool only after the IP set and DNS no longer use them.
func updateIPs(ctx context.Context, env *Env, vm store.VM) Result {
	p, bad := product(env, vm)
	if bad != nil {
		return *bad
	}
	if res := locate(ctx, env, &vm); res != nil {
		return *res
	}
	ips, err := env.Store.IPsForVM(ctx, vm.ID)
	if err != nil {
		return Retryable(err)
	}
	var keep []store.IPAllocation
	var release []string
	count := map[int]int{}
	want := map[int]int{4: p.Network.IPv4, 6: p.Network.IPv6}
	if p.Network.DHCPv4 {
		want[4] = 0
	}
	if p.Network.DHCPv6 {
		want[6] = 0
	}
	for _, ip := range ips {
		if count[ip.Family] < want[ip.Family] {
			keep = append(keep, ip)
			count[ip.Family]++
		} else {
			release = append(release, ip.Address)
		}
	}
	if more4, more6 := want[4]-count[4], want[6]-count[6]; more4 > 0 || more6 > 0 {
		added := false
		for range 5 {
			fresh, err := pickAddresses(ctx, env, p, vm.TargetNode, more4, more6)
			if err != nil {
				return Retryable(err)
			}
			err = env.Store.IPAllocate(ctx, vm.ID, fresh, env.Now())
			if errors.Is(err, store.ErrDuplicate) {
				continue
			}
			if err != nil {
				return Retryable(err)
			}
			for _, ip := range fresh {
				env.Emit("allocated " + ip.Address)
			}
			keep = append(keep, fresh...)
			added = true
			break
		}
		if !added {
			return Retryable(errors.New("addresses taken concurrently five times in a row; will retry"))
		}
	}
	changed := len(release) > 0 || len(keep) > len(ips)
	if *p.Firewall.AntiSpoofing && !p.Network.DHCPv4 && !p.Network.DHCPv6 {
		setChanged, err := SyncIPSet(ctx, env, vm, keep)
		if err != nil {
			return fromError("anti-spoofing IP set", err)
		}
		changed = changed || setChanged
	}
	if len(env.Zones) > 0 && env.DNS != nil {
		DeleteDNS(ctx, env, vm)
		SyncDNS(ctx, env, vm, keep)
	}
	if len(release) > 0 {
		if err := env.Store.IPRelease(ctx, vm.ID, release); err != nil {
			return Retryable(err)
		}
		env.Emit("released " + strings.Join(release, ", "))
	}
	if !changed {
		return Skip("no change in addresses")
	}
	return Success()
}

// stopForChange stops the VM for the hardware changes: a graceful shutdown,
// then a forced stop once stop_timeout has passed (measured across ticks).
func stopForChange(ctx context.Context, env *Env, vm store.VM) Result {
	if res := locate(ctx, env, &vm); res != nil {
		return *res
	}
	stopped, res := stopVM(ctx, env, vm)
	if stopped {
		return Success()
	}
	if res.Kind == Skipped { // gave up: still running after the forced stop
		return Retryable(errors.New("VM still running after graceful shutdown and forced stop"))
	}
	return res
}

// stopVM drives a VM towards stopped without ever waiting inside a tick:
// shutdown first, a forced stop after stop_timeout, and after twice that it
// gives up with a Skip result. stopped reports the VM is stopped now.
func stopVM(ctx context.Context, env *Env, vm store.VM) (stopped bool, res Result) {
	st, err := env.PVE.VMStatus(ctx, ref(vm))
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
	elapsed := env.Now().Sub(vm.StepStartedAt)
	forced := false
	if pending(vm) {
		task := proxmox.TaskRef{Node: vm.PendingNode, UPID: vm.PendingUPID}
		_, typ, _, _ := proxmox.ParseUPID(task.UPID)
		forced = typ == "qmstop"
		ts, err := env.PVE.TaskStatus(ctx, task)
		if err == nil && ts.Running && (forced || elapsed < timeout) {
			return false, Wait(fmt.Sprintf("%s running for %s", typ, elapsed.Round(time.Second)))
		}
	}
	switch {
	case elapsed < timeout:
		if pending(vm) {
			return false, Wait(fmt.Sprintf("waiting for graceful shutdown (%s of %s)", elapsed.Round(time.Second), timeout))
		}
		task, err := env.PVE.Shutdown(ctx, ref(vm), proxmox.ShutdownOptions{Timeout: timeout})
		if proxmox.IsNotRunning(err) {
			return true, Result{}
		}
		return false, submit(ctx, env, vm, "shutdown", task, err)
	case elapsed < 2*timeout || !forced:
		if forced {
			return false, Wait(fmt.Sprintf("waiting for forced stop (%s)", elapsed.Round(time.Second)))
		}
		env.Emit(fmt.Sprintf("graceful shutdown did not finish in %s; forcing stop", timeout))
		task, err := env.PVE.Stop(ctx, ref(vm), proxmox.StopOptions{OverruleShutdown: true})
		if proxmox.IsNotRunning(err) {
			return true, Result{}
		}
		return false, submit(ctx, env, vm, "stop", task, err)
	}
	return false, Skip(fmt.Sprintf("still %s after graceful shutdown and forced stop", st.Status))
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
	key, ok := findAdditionalDisk(cfg)
	if !ok {
		if pending(vm) {
			return Success() // our removal task finished
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
	// Detach (PVE moves the volume to an unusedN key), then destroy that
	// unused volume.
	volid, _ := proxmox.ParsePropertyString(cfg.Values[key])
	env.Emit("detaching additional disk " + key + " (" + volid + ")")
	if err := env.PVE.SetConfigSync(ctx, ref(vm), proxmox.ConfigChange{Delete: []string{key}}); err != nil {
		return fromError("detach "+key, err)
	}
	cfg, err = env.PVE.VMConfig(ctx, ref(vm))
	if err != nil {
		return fromError("read config", err)
	}
	for k, v := range cfg.Values {
		if strings.HasPrefix(k, "unused") && v == volid {
			env.Emit("destroying " + k + " (" + volid + ")")
			task, err := env.PVE.SetConfig(ctx, ref(vm), proxmox.ConfigChange{Delete: []string{k}})
			return submit(ctx, env, vm, "destroy "+volid, task, err)
		}
	}
	return Success() // PVE destroyed it on detach
}
