// Hardware steps: CPU and RAM, the system disk and the additional disk
// (create, resize, I/O limits; the change-package also removes it).

package states

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/pvectl/pvectl/config"
	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/store"
)

// setCPURAM applies cores, sockets and memory (NeedProduct, NeedConfig).
// The same write gives a VM without it pvectl's marker tag: the first
// config write after the clone, so a deploy tags the VM without a request
// of its own.
func setCPURAM(ctx context.Context, env *Env, vm store.VM) Result {
	p := env.Product
	want := map[string]string{"cores": strconv.Itoa(p.Cores), "sockets": strconv.Itoa(p.Sockets), "memory": strconv.Itoa(p.MemoryMB)}
	change := diffValues(env.VMConfig, want)
	if !env.VMConfig.HasTag(MarkerTag) {
		change["tags"] = strings.Join(append(env.VMConfig.Tags(), MarkerTag), ";")
	}
	if len(change) == 0 {
		return Skip("no change")
	}
	if err := env.PVE.SetConfigSync(ctx, ref(vm), proxmox.ConfigChange{Set: change}); err != nil {
		return fromError("set CPU and RAM", err)
	}
	return Success()
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

// resizeDisk grows disk key to sizeGB; the runner follows the resize task
// (resizeTask), and the step is done once it ended OK (the resize steps
// return done on env.TaskDone before they look at the config: the runner
// does not read it then).
func resizeDisk(ctx context.Context, env *Env, vm store.VM, key string, sizeGB int) Result {
	if env.TaskDone {
		return Success()
	}
	cfg, err := readConfig(ctx, env, vm)
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
	cfg, err := readConfig(ctx, env, vm)
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

// createAdditionalDisk allocates the product's additional disk (deploy).
func createAdditionalDisk(ctx context.Context, env *Env, vm store.VM) Result {
	return addAdditionalDisk(ctx, env, vm, func(key string) string { return key + " already exists" })
}

// addAdditionalDisk allocates the product's additional disk; the runner
// follows the create task, and the step is done once it ended OK. exists is
// the skip reason when the VM already has it.
func addAdditionalDisk(ctx context.Context, env *Env, vm store.VM, exists func(key string) string) Result {
	p := env.Product
	if env.TaskDone {
		return Success()
	}
	cfg, err := readConfig(ctx, env, vm)
	if err != nil {
		return fromError("read config", err)
	}
	if key, ok := findAdditionalDisk(cfg); ok {
		return Skip(exists(key))
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

// noAdditionalDisk skips the additional-disk steps of a product without one.
func noAdditionalDisk(env *Env, _ store.VM) string {
	if env.Product.AdditionalDisk.SizeGB == 0 {
		return "no additional disk in product"
	}
	return ""
}

// diskKey is the key of the VM's system or additional disk in its config.
func diskKey(cfg proxmox.VMConfig, additional bool) string {
	if additional {
		key, _ := findAdditionalDisk(cfg)
		return key
	}
	return systemDiskKey(cfg)
}

// withDisk finds the key of the VM's system or additional disk in the
// config the runner read (NeedConfig) and calls fn with it and the
// product's disk.
func withDisk(env *Env, vm store.VM, additional bool, fn func(key string, d config.Disk) Result) Result {
	d, key := env.Product.SystemDisk, diskKey(env.VMConfig, additional)
	if additional {
		d = env.Product.AdditionalDisk
	}
	if key == "" {
		return Permanent(fmt.Errorf("VM %d has no %s disk in its config; reset-status to the step that creates it", vm.VMID, map[bool]string{true: "additional", false: "system"}[additional]))
	}
	return fn(key, d)
}

// resizeTask names the resize a disk step follows ("resize scsi0"), or ""
// when the step will not resize (no such disk, size 0).
func resizeTask(additional bool) func(env *Env, vm store.VM) string {
	return func(env *Env, _ store.VM) string {
		key := diskKey(env.VMConfig, additional)
		if key == "" || (!additional && env.Product.SystemDisk.SizeGB == 0) {
			return ""
		}
		return "resize " + key
	}
}

func resizeSystemDisk(ctx context.Context, env *Env, vm store.VM) Result {
	if env.TaskDone {
		return Success() // the resize ended OK; the config was not read
	}
	return withDisk(env, vm, false, func(key string, d config.Disk) Result {
		if d.SizeGB == 0 {
			return Skip("size 0 keeps the template's size")
		}
		return resizeDisk(ctx, env, vm, key, d.SizeGB)
	})
}

func setSystemDiskIO(ctx context.Context, env *Env, vm store.VM) Result {
	return withDisk(env, vm, false, func(key string, d config.Disk) Result {
		return setDiskIO(ctx, env, vm, key, d)
	})
}

func resizeAdditionalDisk(ctx context.Context, env *Env, vm store.VM) Result {
	if env.TaskDone {
		return Success() // the resize ended OK; the config was not read
	}
	return withDisk(env, vm, true, func(key string, d config.Disk) Result {
		return resizeDisk(ctx, env, vm, key, d.SizeGB)
	})
}

func setAdditionalDiskIO(ctx context.Context, env *Env, vm store.VM) Result {
	return withDisk(env, vm, true, func(key string, d config.Disk) Result {
		return setDiskIO(ctx, env, vm, key, d)
	})
}

// changeDiskTask names the task the change-package's additional-disk step
// follows: creating the disk the new product brings, or removing it.
func changeDiskTask(env *Env, _ store.VM) string {
	if env.Product.AdditionalDisk.SizeGB > 0 {
		return "create additional disk"
	}
	return "remove additional disk"
}

// changeAdditionalDisk creates the additional disk a new product brings, or
// removes one the new product no longer has (its snapshots first, then
// detach, then destroy the volume).
func changeAdditionalDisk(ctx context.Context, env *Env, vm store.VM) Result {
	if env.Product.AdditionalDisk.SizeGB > 0 {
		// The disk the new product brings; one already there is as the
		// product wants it.
		return addAdditionalDisk(ctx, env, vm, func(key string) string { return "no change (" + key + " exists)" })
	}
	return removeAdditionalDisk(ctx, env, vm)
}

// removeAdditionalDisk removes the additional disk pvectl created, one
// action per tick: its snapshots first, then detach, then destroy the
// volume. The runner follows each task; this then looks again.
func removeAdditionalDisk(ctx context.Context, env *Env, vm store.VM) Result {
	cfg, err := readConfig(ctx, env, vm)
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
		if env.TaskDone {
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
