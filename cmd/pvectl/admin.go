package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/pvectl/pvectl/engine"
	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
	"github.com/spf13/cobra"
)

// request moves a VM into a pipeline's entry state, mapping "wrong state"
// to a usage error that names the VM's state.
func request(ctx context.Context, e *engine.Engine, vm store.VM, allowed []states.State, to states.State, product string) (store.VM, error) {
	var names []string
	for _, a := range allowed {
		names = append(names, string(a))
	}
	got, err := e.Store.VMRequest(ctx, vm.ID, names, string(to), product, e.Clock.Now())
	if errors.Is(err, store.ErrWrongState) {
		return got, usageError{err}
	}
	return got, err
}

func newVMChangePackageCmd(g *globals) *cobra.Command {
	var productName string
	cmd := &cobra.Command{
		Use:   "change-package VM --product NAME",
		Short: "Switch a ready VM to another product; the ticks reconfigure it",
		Long: `Write the new product and state change_package, and return at once. Accepted only for a
VM in ready (repeating it while the change runs is a no-op); a VM in a deploy or
terminate is refused with its current state. The ticks then update IPs, IP set and
DNS, stop the VM once, apply CPU/RAM/disks/network/firewall (skipping what did not
change; disks never shrink) and start it once.`,
		Args: exactArgs(1, "a VM (service id or hostname)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, closeFn, err := g.openWritable(cmd.Context())
			if err != nil {
				return err
			}
			defer closeFn()
			if _, ok := e.Config.Products[productName]; !ok {
				return usagef("--product %q: valid: %s", productName, strings.Join(e.Config.ProductNames(), ", "))
			}
			vm, err := findVM(cmd.Context(), e, args[0])
			if err != nil {
				return err
			}
			if changing(vm) {
				// Past its first step: the same request again is a no-op (a
				// billing system retrying), another product waits for ready.
				held := ""
				if vm.Held {
					held = fmt.Sprintf("; HELD: %s (fix it, then pvectl vm retry %s)", vm.LastError, vm.ServiceID)
				}
				if vm.Product != productName {
					return usagef("VM %s is already changing to product %s (status %s%s); wait for it to reach ready", vm.ServiceID, vm.Product, vm.Status, held)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "VM %s: already changing to product %s (status %s%s)\n", vm.ServiceID, vm.Product, vm.Status, held)
				return nil
			}
			vm, err = request(cmd.Context(), e, vm, []states.State{states.Ready, states.ChangePackage}, states.ChangePackage, productName)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "VM %s: product %s, status %s; the next ticks apply it\n", vm.ServiceID, vm.Product, vm.Status)
			return nil
		},
	}
	cmd.Flags().StringVar(&productName, "product", "", "the new product")
	return cmd
}

// changing reports whether a VM is inside the change-package table past its
// entry state (cp_update_ip … cp_start).
func changing(vm store.VM) bool {
	s := states.State(vm.Status)
	if s == states.ChangePackage || s == states.Ready {
		return false
	}
	return slices.Contains(states.ChangePackageTable().States(), s)
}

// terminatable are the states a terminate request is accepted from.
func terminatable() []states.State {
	var out []states.State
	for _, s := range states.All() {
		switch s {
		case states.Remove, states.ErrorTerminate, states.Terminate, states.TerminateStopped, states.TerminateBackupsRemoved,
			states.TerminateDNSRemoved, states.TerminateDeleted:
			continue
		}
		out = append(out, s)
	}
	return out
}

func newVMTerminateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "terminate VM",
		Short: "Terminate a VM: send a stop now, set terminate, return at once",
		Long: `Send a stop request to Proxmox without waiting (a failure to send is reported but not
fatal), set the VM to terminate and return at once. The ticks then stop it (graceful,
then forced), remove its backups and DNS records (best effort), DELETE it with purge and
verify it is gone, and only then release its IPs and VMID (state remove). If the DELETE
fails, the VM goes to error_terminate and keeps its IPs; see pvectl reset-status.`,
		Args: exactArgs(1, "a VM (service id or hostname)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return g.withVM(ctx, args[0], func(e *engine.Engine, vm store.VM) error {
				w := cmd.OutOrStdout()
				switch states.State(vm.Status) {
				case states.Terminate, states.TerminateStopped, states.TerminateBackupsRemoved, states.TerminateDNSRemoved, states.TerminateDeleted:
					fmt.Fprintf(w, "VM %s is already terminating (status %s)\n", vm.ServiceID, vm.Status)
					return nil
				case states.ErrorTerminate:
					return usagef("VM %s is in error_terminate: fix the cause, then pvectl reset-status %s terminate", vm.ServiceID, vm.ServiceID)
				}
				vm, err := request(ctx, e, vm, terminatable(), states.Terminate, "")
				if err != nil {
					return err
				}
				if vm.VMID != 0 && vm.Node != "" {
					sendStop(ctx, e, vm, w)
				}
				fmt.Fprintf(w, "VM %s: status terminate; the next ticks destroy it\n", vm.ServiceID)
				return nil
			})
		},
	}
}

// sendStop asks PVE to stop the VM and does not wait for the task.
func sendStop(ctx context.Context, e *engine.Engine, vm store.VM, w io.Writer) {
	env, err := e.Env(ctx)
	if err != nil {
		fmt.Fprintf(w, "warning: stop request not sent (%v); the next tick stops the VM\n", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	ref := proxmox.VMRef{Node: vm.Node, VMID: vm.VMID}
	// Never stop a VM pvectl did not create (the VMID may hold someone
	// else's VM if our clone never happened).
	cfg, err := env.PVE.VMConfig(ctx, ref)
	if err != nil {
		if !proxmox.IsNotFound(err) {
			fmt.Fprintf(w, "warning: stop request not sent (%v); the next tick stops the VM\n", err)
		}
		return
	}
	if cfg.Lock() == "clone" {
		// The clone's temporary config has no marker yet: not foreign.
		fmt.Fprintf(w, "VMID %d is still being cloned; the next ticks wait for the clone to finish, then stop the VM\n", vm.VMID)
		return
	}
	if !states.Ours(cfg, vm) {
		fmt.Fprintf(w, "warning: VMID %d holds a VM pvectl did not create; not stopping it\n", vm.VMID)
		return
	}
	task, err := env.PVE.Stop(ctx, ref, proxmox.StopOptions{OverruleShutdown: true})
	switch {
	case err == nil:
		fmt.Fprintf(w, "stop requested (task %s)\n", task.UPID)
	case proxmox.IsNotRunning(err) || proxmox.IsNotFound(err):
	default:
		fmt.Fprintf(w, "warning: stop request failed (%v); the next tick stops the VM\n", err)
	}
}

func newVMReinstallCmd(g *globals) *cobra.Command {
	var yes bool
	var passwordFile string
	cmd := &cobra.Command{
		Use:   "reinstall VM",
		Short: "Destroy a ready VM in Proxmox and deploy it again, keeping VMID, IPs and MAC",
		Long: `Set the VM to reinstall and return at once. The next tick stops and destroys the VM in
Proxmox (all disks and snapshots; backups are kept), then the deploy continues at
set_ip: a fresh clone with the same VMID, addresses and MAC address. The SSH keys
given at create are set again; --password-file sets a new cloud-init password
(without it the reinstalled VM gets none). Asks for confirmation unless --yes.`,
		Args: exactArgs(1, "a VM (service id or hostname)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return g.withVM(ctx, args[0], func(e *engine.Engine, vm store.VM) error {
				if vm.Status != string(states.Ready) {
					return usagef("VM %s is in state %s; reinstall needs ready", vm.ServiceID, vm.Status)
				}
				var password string
				if passwordFile != "" {
					var err error
					if password, err = readPasswordFile(passwordFile); err != nil {
						return usagef("--password-file: %v; nothing changed", err)
					}
				}
				if !yes && !confirm(cmd, fmt.Sprintf("Destroy all disks and snapshots of %s (VMID %d) and deploy it again?", vm.Hostname, vm.VMID)) {
					return usagef("not confirmed; nothing changed")
				}
				vm, err := request(ctx, e, vm, []states.State{states.Ready}, states.Reinstall, "")
				if err != nil {
					return err
				}
				if password != "" {
					if err := e.Store.VMSetPassword(ctx, vm.ID, password, e.Clock.Now()); err != nil {
						return err
					}
				}
				fmt.Fprintf(cmd.OutOrStdout(), "VM %s: status reinstall; the next ticks destroy and redeploy it\n", vm.ServiceID)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	cmd.Flags().StringVar(&passwordFile, "password-file", "", "file whose first line is the new cloud-init password")
	return cmd
}

func newVMDeleteRecordCmd(g *globals) *cobra.Command {
	var yes, force bool
	cmd := &cobra.Command{
		Use:   "delete-record VM",
		Short: "Delete the record of a VM in error_terminate or remove; never touches Proxmox",
		Long: `Delete the VM's record, its run log, DNS bookkeeping and IP allocations from pvectl's
store. Only for a VM in error_terminate or remove. It never contacts Proxmox: use it
when the VM is long gone. For a VM in error_terminate its IPs become free for new VMs,
so make sure the VM really is gone first. Asks for confirmation unless --yes.`,
		Args: exactArgs(1, "a VM (service id or hostname)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return g.withVM(ctx, args[0], func(e *engine.Engine, vm store.VM) error {
				if vm.Status != string(states.ErrorTerminate) && vm.Status != string(states.Remove) {
					return usagef("VM %s is in state %s; delete-record is only for error_terminate or remove", vm.ServiceID, vm.Status)
				}
				w := cmd.OutOrStdout()
				if vm.Status == string(states.ErrorTerminate) {
					fmt.Fprintf(w, "warning: %s is in error_terminate; its IPs are released with the record. Proxmox is not contacted; "+
						"while its VM is still there, new VMs do not get the addresses it uses.\n", vm.ServiceID)
				}
				if vm.DNSDirty && !force {
					if recs, err := e.Store.DNSRecords(ctx, vm.ID); err == nil && len(recs) > 0 {
						return usagef("%d DNS record(s) of %s are still being deleted by the DNS retry; wait for it (pvectl dns show %s), or use --force to forget them", len(recs), vm.ServiceID, vm.ServiceID)
					}
				}
				if !yes && !confirm(cmd, fmt.Sprintf("Delete the record of %s?", vm.ServiceID)) {
					return usagef("not confirmed; nothing changed")
				}
				if err := e.Store.VMDelete(ctx, vm.ID, vm.Status, vm.Version, e.Clock.Now()); err != nil {
					return changed(err, vm)
				}
				fmt.Fprintf(w, "record of %s deleted\n", vm.ServiceID)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(&force, "force", false, "delete even while DNS records wait to be deleted (they are then forgotten)")
	return cmd
}

// changed turns a compare-and-set conflict into a usage error: the VM moved
// while the admin looked at it; nothing was changed.
func changed(err error, vm store.VM) error {
	if errors.Is(err, store.ErrConflict) {
		return usagef("VM %s changed since it was read (it was %s); nothing changed — look again and re-run", vm.ServiceID, vm.Status)
	}
	return err
}

func resetStatusHelp() string {
	var b strings.Builder
	b.WriteString(`Put a VM in another state so the cron runs (or stops running) a pipeline from there.
Clears held, backoff, attempts and any pending task. Asks for confirmation unless --yes.

Targets:
`)
	for _, t := range states.ResetTargets() {
		fmt.Fprintf(&b, "  %-16s %s\n", t.State, t.Help)
	}
	return b.String()
}

func newResetStatusCmd(g *globals) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "reset-status VM STATUS",
		Short: "Admin override: move a VM to a re-runnable state (see targets)",
		Long:  resetStatusHelp(),
		Args:  exactArgs(2, "a VM and a target status"),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := states.LookupResetTarget(args[1])
			if err != nil {
				var names []string
				for _, t := range states.ResetTargets() {
					names = append(names, string(t.State))
				}
				return usagef("unknown status %q; valid targets: %s", args[1], strings.Join(names, ", "))
			}
			ctx := cmd.Context()
			return g.withVM(ctx, args[0], func(e *engine.Engine, vm store.VM) error {
				w := cmd.OutOrStdout()
				if t.NeedsVMID && vm.VMID == 0 {
					return usagef("VM %s has no VMID (it is %s): %s carries on with an existing VM; to deploy it again use: pvectl reset-status %s creation; nothing changed",
						vm.ServiceID, vm.Status, t.State, vm.ServiceID)
				}
				if t.NoProxmox {
					what := "the VM's IPs"
					if vm.VMID != 0 {
						what = fmt.Sprintf("VMID %d and the VM's IPs", vm.VMID)
					}
					fmt.Fprintf(w, "warning: %s does not contact Proxmox; it releases %s. Use it only if the VM is already gone.\n", t.State, what)
				}
				if !yes && !confirm(cmd, fmt.Sprintf("Set %s from %s to %s?", vm.ServiceID, vm.Status, t.State)) {
					return usagef("not confirmed; nothing changed")
				}
				now := e.Clock.Now()
				if t.State == states.Remove {
					// Status, IPs and VMID in one transaction; published DNS
					// records are deleted by the DNS retry.
					if err := e.Store.VMSetRemoved(ctx, vm.ID, vm.Status, vm.Version, now); err != nil {
						return changed(err, vm)
					}
				} else if err := e.Store.VMSetStatusIf(ctx, vm.ID, vm.Status, vm.Version, string(t.State), now); err != nil {
					return changed(err, vm)
				}
				fmt.Fprintf(w, "VM %s: %s → %s\n", vm.ServiceID, vm.Status, t.State)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	return cmd
}

// confirm asks on the terminal; anything but "y"/"yes" is no.
func confirm(cmd *cobra.Command, question string) bool {
	fmt.Fprintf(cmd.OutOrStdout(), "%s [y/N] ", question)
	line, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
	line = strings.ToLower(strings.TrimSpace(line))
	return line == "y" || line == "yes"
}
