package main

import (
	"bufio"
	"context"
	"fmt"
	"strings"

	"github.com/pvectl/pvectl/engine"
	"github.com/pvectl/pvectl/states"
	"github.com/spf13/cobra"
)

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
			res, err := g.request(cmd, func(ctx context.Context, e *engine.Engine) (engine.Result, error) {
				return e.ChangePackage(ctx, args[0], productName)
			})
			if err != nil {
				return err
			}
			vm := res.VM
			if !res.Changed && states.ChangingPackage(res.From) {
				held := ""
				if vm.Held {
					held = fmt.Sprintf("; HELD: %s (fix it, then pvectl vm retry %s)", vm.LastError, vm.ServiceID)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "VM %s: already changing to product %s (status %s%s)\n", vm.ServiceID, vm.Product, vm.Status, held)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "VM %s: product %s, status %s; the next ticks apply it\n", vm.ServiceID, vm.Product, vm.Status)
			return nil
		},
	}
	cmd.Flags().StringVar(&productName, "product", "", "the new product")
	return cmd
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
			res, err := g.request(cmd, func(ctx context.Context, e *engine.Engine) (engine.Result, error) {
				return e.Terminate(ctx, args[0])
			})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if !res.Changed {
				fmt.Fprintf(w, "VM %s is already terminating (status %s)\n", res.VM.ServiceID, res.VM.Status)
				return nil
			}
			for _, n := range res.Notes {
				fmt.Fprintln(w, n)
			}
			fmt.Fprintf(w, "VM %s: status terminate; the next ticks destroy it\n", res.VM.ServiceID)
			return nil
		},
	}
}

func newVMReinstallCmd(g *globals) *cobra.Command {
	var yes bool
	var passwordFile, template string
	cmd := &cobra.Command{
		Use:   "reinstall VM [--template NAME]",
		Short: "Destroy a ready VM in Proxmox and deploy it again, keeping VMID, IPs and MAC",
		Long: `Set the VM to reinstall and return at once. The next tick stops and destroys the VM in
Proxmox (all disks and snapshots; backups are kept), then the deploy continues at
set_ip: a fresh clone with the same VMID, addresses and MAC address. The SSH keys
given at create are set again; --password-file sets a new cloud-init password
(without it the reinstalled VM gets none). --template reinstalls from another template
of the VM's product (its templates map: another operating system); without it the VM
gets the template it has now. Hostname and DNS records stay.
Asks for confirmation unless --yes.`,
		Args: exactArgs(1, "a VM (service id or hostname)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := g.request(cmd, func(ctx context.Context, e *engine.Engine) (engine.Result, error) {
				return e.Reinstall(ctx, args[0], engine.Reinstall{PasswordFile: passwordFile, Template: template, Ask: ask(cmd, yes)})
			})
			if err != nil {
				return err
			}
			from := ""
			if res.VM.Template != "" {
				from = " from template " + res.VM.Template
			}
			fmt.Fprintf(cmd.OutOrStdout(), "VM %s: status reinstall; the next ticks destroy and redeploy it%s\n", res.VM.ServiceID, from)
			return nil
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	cmd.Flags().StringVar(&template, "template", "", "template (operating system) from the product's templates map (default: the VM's current one)")
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
			res, err := g.request(cmd, func(ctx context.Context, e *engine.Engine) (engine.Result, error) {
				return e.DeleteRecord(ctx, args[0], force, ask(cmd, yes))
			})
			if err != nil {
				return err
			}
			// The record's log is gone with it: this line is the request's
			// only trace.
			fmt.Fprintf(cmd.OutOrStdout(), "record of %s deleted (%s, from %s)\n", res.VM.ServiceID, res.Audit.Detail, res.From)
			return nil
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(&force, "force", false, "delete even while DNS records wait to be deleted (they are then forgotten)")
	return cmd
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
			if _, err := engine.ResetTarget(args[1]); err != nil {
				return err
			}
			res, err := g.request(cmd, func(ctx context.Context, e *engine.Engine) (engine.Result, error) {
				return e.ResetStatus(ctx, args[0], args[1], ask(cmd, yes))
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "VM %s: %s → %s\n", res.VM.ServiceID, res.From, res.VM.Status)
			return nil
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

// ask is how an admin request warns and asks on the terminal: warnings on
// stdout; with --yes no question.
func ask(cmd *cobra.Command, yes bool) engine.Ask {
	a := engine.Ask{Warn: func(msg string) { fmt.Fprintln(cmd.OutOrStdout(), msg) }}
	if !yes {
		a.Confirm = func(question string) error {
			if !confirm(cmd, question) {
				return usagef("not confirmed; nothing changed")
			}
			return nil
		}
	}
	return a
}
