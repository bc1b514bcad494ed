package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pvectl/pvectl/engine"
	"github.com/spf13/cobra"
)

// backupSubcommands are the backup subcommands written in other files
// (backup restore, backup schedule): each file appends its constructor in
// its init, and newBackupCmd adds them after now and list.
var backupSubcommands []func(*globals) *cobra.Command

func newBackupCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Back VMs up (vzdump), list their backups",
		Long: `Backups are PVE vzdump archives. A product's backup_quota turns them on (0 = off) and
caps how many unprotected archives a VM keeps: before a new backup starts, the oldest
unprotected one is deleted (as its own PVE task). PVE's storage content is the truth:
backup list reads it, and archives made outside pvectl count against the quota.
See docs/backups.md.`,
	}
	cmd.AddCommand(newBackupNowCmd(g), newBackupListCmd(g))
	for _, sub := range backupSubcommands {
		cmd.AddCommand(sub(g))
	}
	return cmd
}

func newBackupNowCmd(g *globals) *cobra.Command {
	var note string
	var protected bool
	cmd := &cobra.Command{
		Use:   "now VM",
		Short: "Queue a backup of the VM; the next tick starts it",
		Long: `Queue a backup and return at once. The next tick (process_vms) starts it when the VM is
ready or suspended: first, if the VM has backup_quota unprotected archives, the oldest is
deleted (a PVE task the ticks follow to its end); then vzdump runs (mode, compression and
storage from the config and the product). backup_status records how it ended (archive,
size, duration, or the task's error line) in pvectl log VM.

Refused (exit 2, nothing changed) when the VM's product has backup_quota 0, when the VM has
no VMID yet or is being terminated, or when --note is not one line of at most 200 characters.
While a backup of the VM is queued or running the request changes nothing.`,
		Args: exactArgs(1, "a VM (service id or hostname)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := g.request(cmd, func(ctx context.Context, e *engine.Engine) (engine.Result, error) {
				return e.BackupNow(ctx, args[0], note, protected)
			})
			if err != nil {
				return err
			}
			for _, n := range res.Notes {
				fmt.Fprintln(cmd.OutOrStdout(), n)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&note, "note", "", "a note stored with the archive (one line, at most 200 characters)")
	cmd.Flags().BoolVar(&protected, "protected", false, "protect the archive: never deleted by rotation nor counted against the quota")
	return cmd
}

func newBackupListCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list VM",
		Short: "List the VM's backups: PVE's storage content joined with what pvectl recorded",
		Long: `Read the storage content of every storage a product backs up to (on every node that has
it) and show the VM's archives, oldest first: volume id, creation time, size, protected,
and who made it (pvectl manual/scheduled with its note and slot, or outside pvectl). Then
the backups pvectl knows that have no archive: queued, rotating or running ones, and the
last failed or skipped ones. An archive deleted in PVE is not shown. A storage that
cannot be read is a warning (its archives are missing). --json: see docs/cli.md.`,
		Args: exactArgs(1, "a VM (service id or hostname)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, closeFn, err := g.openEngine(cmd.Context())
			if err != nil {
				return err
			}
			defer closeFn()
			l, err := e.BackupList(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(w, l)
			}
			printBackupList(w, l, e.Zone())
			if err := printBackupSchedule(cmd.Context(), w, e, args[0]); err != nil {
				return err
			}
			for _, warn := range l.Warnings {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", warn)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (see docs/cli.md)")
	return cmd
}

func printBackupList(w io.Writer, l engine.BackupListing, loc *time.Location) {
	fmt.Fprintf(w, "VM %s (VMID %d, product %s): %d of %d unprotected backup(s); storages %s\n",
		l.VM, l.VMID, l.Product, l.Counted, l.Quota, strings.Join(l.Storages, ", "))
	if len(l.Backups) == 0 {
		fmt.Fprintln(w, "no backups")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VOLID\tCREATED\tSIZE\tPROTECTED\tMADE BY\tSTATE\tNOTE")
	for _, b := range l.Backups {
		vol, created, size := b.VolID, "-", "-"
		if vol == "" {
			vol = "(no archive)"
		}
		if b.CTime != nil {
			created = engine.HumanTime(*b.CTime, loc)
		} else if b.QueuedAt != nil {
			created = "queued " + engine.HumanTime(*b.QueuedAt, loc)
		}
		if b.VolID != "" {
			size = engine.FormatSize(b.Size)
		}
		prot := "no"
		if b.Protected {
			prot = "yes"
		}
		by := b.MadeBy
		if b.Kind != "" {
			by += " " + b.Kind
		}
		if b.Slot != "" {
			by += " " + b.Slot
		}
		state := b.State
		if state == "" {
			state = "-"
		}
		note := b.Note
		if b.MadeBy != engine.MadeByPvectl {
			note = b.Notes
		}
		if b.Error != "" {
			note = strings.TrimSpace(note + " [" + b.Error + "]")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", vol, created, size, prot, by, state, note)
	}
	_ = tw.Flush()
}
