package main

import (
	"context"
	"fmt"

	"github.com/pvectl/pvectl/engine"
	"github.com/pvectl/pvectl/states"
	"github.com/spf13/cobra"
)

// newVMPowerCmds builds vm start, stop, shutdown and reboot: requests that
// return at once; the ticks carry them out (see docs/pipelines.md#power-actions).
func newVMPowerCmds(g *globals) []*cobra.Command {
	type spec struct {
		action      states.PowerAction
		short, long string
		next        string
	}
	specs := []spec{
		{states.ActionStart, "Start a ready VM (the next tick starts it; nothing to do if it runs)",
			`Set the VM to power_start and return at once. The next tick starts the VM in Proxmox
(a running VM is left as it is) and brings it back to ready.`, "starts it"},
		{states.ActionStop, "Stop a ready VM at once (forced, like pulling the plug)",
			`Set the VM to power_stop and return at once. The next tick stops the VM in Proxmox
without asking the guest (a stopped VM is left as it is) and brings it back to ready.
To let the guest shut down cleanly use pvectl vm shutdown.`, "stops it"},
		{states.ActionShutdown, "Ask a ready VM's guest to shut down (ACPI); --force stops it after stop_timeout",
			`Set the VM to power_shutdown and return at once. The next tick sends the guest an ACPI
shutdown request. A guest still running tasks.process_vms.stop_timeout later is stopped
(forced) with --force; without it the shutdown is given up, logged in pvectl log VM, and
the VM stays running. The VM is back at ready in both cases.`, "shuts it down"},
		{states.ActionReboot, "Reboot a ready VM (PVE reboot; forced stop + start if the guest ignores ACPI)",
			`Set the VM to power_reboot and return at once. The next ticks ask Proxmox to reboot the
VM (the guest gets stop_timeout to shut down). If the guest ignores the request and
tasks.process_vms.reboot_fallback is on (the default), the VM is stopped (forced) and
started again. A stopped VM is started.`, "reboots it"},
	}
	var cmds []*cobra.Command
	for _, s := range specs {
		var force bool
		cmd := &cobra.Command{
			Use:   string(s.action) + " VM",
			Short: s.short,
			Long: s.long + `

Allowed only for a ready VM (exit 2 otherwise). While the same action is pending the
request changes nothing; another power action is refused (exit 2) until it is done.`,
			Args: exactArgs(1, "a VM (service id or hostname)"),
			RunE: func(cmd *cobra.Command, args []string) error {
				res, err := g.request(cmd, func(ctx context.Context, e *engine.Engine) (engine.Result, error) {
					return e.Power(ctx, args[0], s.action, force)
				})
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if !res.Changed {
					fmt.Fprintf(w, "VM %s: %s already requested (status %s); nothing changed\n", res.VM.ServiceID, s.action, res.VM.Status)
					return nil
				}
				extra := ""
				if res.VM.PowerForce {
					extra = " (forced after stop_timeout)"
				}
				fmt.Fprintf(w, "VM %s: status %s; the next tick %s%s\n", res.VM.ServiceID, res.VM.Status, s.next, extra)
				return nil
			},
		}
		if s.action == states.ActionShutdown {
			cmd.Flags().BoolVar(&force, "force", false, "stop the VM (forced) if the guest is still running after stop_timeout")
		}
		cmds = append(cmds, cmd)
	}
	return cmds
}

func newVMSuspendCmd(g *globals) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "suspend VM [--reason TEXT]",
		Short: "Suspend a VM (billing): stop it, onboot=0, tag it suspended",
		Long: `Set the VM to suspend and return at once. The next ticks stop it (graceful, then forced
after stop_timeout), set onboot=0 and add the PVE tag "suspended" (state suspended). While
suspended, every request but vm unsuspend and vm terminate is refused, and a VM found
running (started through another path) is stopped again at the next tick.

A VM still deploying (or in another pipeline that ends in ready) gets the suspend queued:
it is carried out once the VM is ready. Repeating the request changes nothing.`,
		Args: exactArgs(1, "a VM (service id or hostname)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := g.request(cmd, func(ctx context.Context, e *engine.Engine) (engine.Result, error) {
				return e.Suspend(ctx, args[0], reason)
			})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			switch {
			case !res.Changed && res.VM.SuspendPending:
				fmt.Fprintf(w, "VM %s: suspend already queued (status %s); nothing changed\n", res.VM.ServiceID, res.VM.Status)
			case !res.Changed:
				fmt.Fprintf(w, "VM %s: already suspending or suspended (status %s); nothing changed\n", res.VM.ServiceID, res.VM.Status)
			case len(res.Notes) > 0:
				for _, n := range res.Notes {
					fmt.Fprintln(w, n)
				}
			default:
				fmt.Fprintf(w, "VM %s: status suspend; the next ticks stop it and mark it suspended\n", res.VM.ServiceID)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (one line, kept in the record and the log)")
	return cmd
}

func newVMUnsuspendCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "unsuspend VM",
		Short: "Undo a suspend: restore onboot and tags, start the VM, back to ready",
		Long: `Set a suspended VM (or one being suspended) to unsuspend and return at once. The next
ticks restore onboot and the tags as they were before the suspend and start the VM
(state ready). A queued suspend is cancelled instead. A VM that is not suspended is left
as it is (exit 0).`,
		Args: exactArgs(1, "a VM (service id or hostname)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := g.request(cmd, func(ctx context.Context, e *engine.Engine) (engine.Result, error) {
				return e.Unsuspend(ctx, args[0])
			})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			switch {
			case !res.Changed:
				fmt.Fprintf(w, "VM %s is not suspended (status %s); nothing changed\n", res.VM.ServiceID, res.VM.Status)
			case len(res.Notes) > 0:
				for _, n := range res.Notes {
					fmt.Fprintln(w, n)
				}
			default:
				fmt.Fprintf(w, "VM %s: status unsuspend; the next ticks restore access, onboot and tags and start it\n", res.VM.ServiceID)
			}
			return nil
		},
	}
}

func newVMMigrateCmd(g *globals) *cobra.Command {
	var node string
	var online bool
	cmd := &cobra.Command{
		Use:   "migrate VM --node NODE|auto [--online]",
		Short: "Move a ready VM to another node (live with --online)",
		Long: `Set the VM to migrate and return at once. The next ticks choose the target (NODE, or
with --node auto the deploy's placement rule: the online node other than the VM's that has
the product's storage and the most free memory), migrate the VM (it counts against
heavy_per_node), record its new node and verify its IP set and firewall options there
(state ready). A running VM needs --online: it is migrated live (disks on local storage are
copied along); a stopped VM is migrated offline. A VM pvectl last saw running is refused
without --online (exit 2): stop it first (pvectl vm stop) or ask with --online. A VM
already on NODE is left where it is. The same request again changes nothing.`,
		Args: exactArgs(1, "a VM (service id or hostname)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := g.request(cmd, func(ctx context.Context, e *engine.Engine) (engine.Result, error) {
				return e.Migrate(ctx, args[0], node, online)
			})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if !res.Changed {
				fmt.Fprintf(w, "VM %s: migration already requested (status %s); nothing changed\n", res.VM.ServiceID, res.VM.Status)
				return nil
			}
			how := "offline"
			if online {
				how = "live if it runs"
			}
			fmt.Fprintf(w, "VM %s: status migrate (node %s, %s); the next ticks migrate it from %s\n", res.VM.ServiceID, node, how, dash(res.VM.Node))
			return nil
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "target node, or auto (the deploy's placement rule)")
	cmd.Flags().BoolVar(&online, "online", false, "migrate a running VM live")
	return cmd
}
