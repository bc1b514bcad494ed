package main

import (
	"context"
	"fmt"

	"github.com/pvectl/pvectl/engine"
	"github.com/spf13/cobra"
)

func init() { backupSubcommands = append(backupSubcommands, newBackupRestoreCmd) }

// newBackupRestoreCmd builds backup restore: restore a backup over a ready
// VM (docs/backups.md#restore).
func newBackupRestoreCmd(g *globals) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "restore VM VOLID [--yes]",
		Short: "Restore a backup over a ready VM, then re-apply its product",
		Long: `Set the VM to restore and return at once. The restore_backup task (every minute by
default) stops the VM (graceful shutdown, then forced after stop_timeout), deletes its
snapshots and restores the archive over it in PVE (same VMID; the MAC address stays);
then process_vms re-applies the VM's current product as a change-package does (addresses,
IP set, DNS and cloud-init, CPU and RAM, disks grown but never shrunk below the archive's,
I/O limits, network, firewall), starts it and logs "event: backup restored".

VOLID is one of the VM's archives as pvectl backup list VM shows it. Refused (exit 2,
nothing changed) when the VM is not ready, when VOLID is not one of its backups (the
error lists them), or while a backup of the VM runs. A restore task that fails (a bad
archive) holds the VM, stopped, with the task's error. Asks for confirmation unless --yes.`,
		Args: exactArgs(2, "a VM (service id or hostname) and a backup volume id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := g.request(cmd, func(ctx context.Context, e *engine.Engine) (engine.Result, error) {
				return e.RestoreBackup(ctx, args[0], args[1], ask(cmd, yes))
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "VM %s: status restore; the next ticks stop it, delete its snapshots, restore %s and re-apply product %s\n",
				res.VM.ServiceID, res.VM.RestoreVolid, res.VM.Product)
			return nil
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	return cmd
}
