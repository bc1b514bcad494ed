package states

import (
	"context"
	"fmt"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/store"
)

// ReinstallTable destroys the VM in PVE, keeping its VMID, addresses and
// MAC address, and hands it back to the deploy table at set_ip: the next
// step clones it afresh. Backups are kept.
func ReinstallTable() *Pipeline {
	return MustPipeline("reinstall", Reinstall, []Step{
		{From: Reinstall, To: SetIP, Label: "Destroy VM for reinstall", Run: destroyForReinstall},
	})
}

func destroyForReinstall(ctx context.Context, env *Env, vm store.VM) Result {
	if pending(vm) {
		if ok, res := awaitTask(ctx, env, vm, "reinstall"); !ok && !proxmox.IsNotFound(res.Err) && !proxmox.IsNotRunning(res.Err) {
			return res
		}
	}
	g, res := gone(ctx, env, &vm)
	if res != nil {
		return *res
	}
	if g {
		return Success()
	}
	cfg, err := env.PVE.VMConfig(ctx, ref(vm))
	if proxmox.IsNotFound(err) {
		return Success()
	}
	if err != nil {
		return fromError("read config", err)
	}
	if !ours(cfg, vm) {
		return Permanent(fmt.Errorf("VMID %d does not carry %q; refusing to destroy it", vm.VMID, marker(vm)))
	}
	if vm.MAC == "" {
		if mac := macOf(cfg.Values["net0"]); mac != "" {
			if err := env.Store.VMSetMAC(ctx, vm.ID, mac, env.Now()); err != nil {
				return Retryable(err)
			}
			env.Emit("keeping MAC address " + mac)
		}
	}
	st, err := env.PVE.VMStatus(ctx, ref(vm))
	if err != nil {
		return fromError("read VM status", err)
	}
	if !st.Stopped() {
		task, err := env.PVE.Stop(ctx, ref(vm), proxmox.StopOptions{OverruleShutdown: true})
		if proxmox.IsNotRunning(err) {
			return Wait("VM stopped; destroying it next")
		}
		return submit(ctx, env, vm, "stop before reinstall", task, err)
	}
	task, err := env.PVE.Delete(ctx, ref(vm), proxmox.DeleteOptions{Purge: true, DestroyUnreferencedDisks: true})
	if proxmox.IsNotFound(err) {
		return Success()
	}
	return submit(ctx, env, vm, "destroy for reinstall", task, err)
}
