package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/pvectl/pvectl/engine"
	"github.com/spf13/cobra"
)

func newSnapshotCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Create, list, delete and roll back VM snapshots",
		Long: `Snapshots are PVE snapshots of a VM. A product's snapshot_quota turns them on (0 = off)
and caps how many a VM may have; snapshot_lifetime_days makes the remove_snapshots task
delete older ones (0 = keep). PVE's snapshot list is the truth: a snapshot deleted in PVE
is gone for pvectl too. create, delete and rollback are requests: the next tick
(process_vms) sends the PVE task when the VM is ready or suspended and PVE holds no lock
on it, and follows it to its end. See docs/snapshots.md.`,
	}
	cmd.AddCommand(newSnapshotCreateCmd(g), newSnapshotListCmd(g), newSnapshotDeleteCmd(g), newSnapshotRollbackCmd(g))
	return cmd
}

func printNotes(cmd *cobra.Command, res engine.Result) {
	for _, n := range res.Notes {
		fmt.Fprintln(cmd.OutOrStdout(), n)
	}
}

func newSnapshotCreateCmd(g *globals) *cobra.Command {
	var req engine.SnapshotRequest
	cmd := &cobra.Command{
		Use:   "create VM [--name NAME] [--description TEXT] [--vmstate]",
		Short: "Queue a snapshot of the VM; the next tick takes it",
		Long: `Queue a snapshot and return at once. NAME defaults to pvectl-YYYYMMDD-HHMM (UTC) and must
be what PVE accepts: a letter, then 1 to 39 letters, digits, '_' or '-' (not "current").
--vmstate saves the RAM of a running VM too (a rollback then resumes it running).

Refused (exit 2, nothing changed) when the product has snapshot_quota 0, when the VM
already has snapshot_quota snapshots in PVE (queued creates count), when it already has a
snapshot of that name, or when it has no VMID yet or is being terminated.`,
		Args: exactArgs(1, "a VM (service id or hostname)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := g.request(cmd, func(ctx context.Context, e *engine.Engine) (engine.Result, error) {
				return e.SnapshotCreate(ctx, args[0], req)
			})
			if err != nil {
				return err
			}
			printNotes(cmd, res)
			return nil
		},
	}
	cmd.Flags().StringVar(&req.Name, "name", "", "the snapshot's name (default pvectl-YYYYMMDD-HHMM)")
	cmd.Flags().StringVar(&req.Description, "description", "", "the snapshot's description (one line)")
	cmd.Flags().BoolVar(&req.VMState, "vmstate", false, "include the RAM of a running VM")
	return cmd
}

func newSnapshotListCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list VM",
		Short: "List the VM's snapshots (PVE's list) and pvectl's pending operations on them",
		Long: `Read the VM's snapshots from PVE, oldest first: name, time, vmstate, parent and
description, and the operation pvectl has queued or running on each (a queued create is
listed without a time). --json: see docs/cli.md.`,
		Args: exactArgs(1, "a VM (service id or hostname)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, closeFn, err := g.openEngine(cmd.Context())
			if err != nil {
				return err
			}
			defer closeFn()
			l, err := e.SnapshotList(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), l)
			}
			printSnapshotList(cmd.OutOrStdout(), l, e.Zone())
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (see docs/cli.md)")
	return cmd
}

func printSnapshotList(w io.Writer, l engine.SnapshotListing, loc *time.Location) {
	lifetime := "kept"
	if l.Lifetime > 0 {
		lifetime = fmt.Sprintf("deleted after %d day(s)", l.Lifetime)
	}
	n := 0
	for _, s := range l.Snapshots {
		if !s.Time.IsZero() {
			n++
		}
	}
	fmt.Fprintf(w, "VM %s: %d of %d snapshot(s); %s\n", l.VM, n, l.Quota, lifetime)
	if len(l.Snapshots) == 0 {
		fmt.Fprintln(w, "no snapshots")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTIME\tVMSTATE\tPARENT\tPENDING\tDESCRIPTION")
	for _, s := range l.Snapshots {
		at, vmstate, parent, pending := "-", "no", s.Parent, s.Pending
		if !s.Time.IsZero() {
			at = engine.HumanTime(s.Time, loc)
		}
		if s.VMState {
			vmstate = "yes"
		}
		if parent == "" {
			parent = "-"
		}
		if pending == "" {
			pending = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, at, vmstate, parent, pending, s.Description)
	}
	_ = tw.Flush()
}

func newSnapshotDeleteCmd(g *globals) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete VM NAME [--yes]",
		Short: "Queue the deletion of one of the VM's snapshots",
		Long: `Queue the deletion of the snapshot and return at once; the next tick sends PVE's
qmdelsnapshot task and follows it. Refused (exit 2) when the VM has no snapshot NAME in
PVE (the error lists them). Asks for confirmation unless --yes.`,
		Args: exactArgs(2, "a VM (service id or hostname) and a snapshot name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := g.request(cmd, func(ctx context.Context, e *engine.Engine) (engine.Result, error) {
				return e.SnapshotDelete(ctx, args[0], args[1], ask(cmd, yes))
			})
			if err != nil {
				return err
			}
			printNotes(cmd, res)
			return nil
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	return cmd
}

func newSnapshotRollbackCmd(g *globals) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "rollback VM NAME [--yes]",
		Short: "Queue the rollback of the VM to one of its snapshots",
		Long: `Queue the rollback and return at once; the next tick sends PVE's qmrollback task and
follows it. PVE stops a running VM first; a snapshot with vmstate resumes it running, and
a VM that ran before a rollback to a snapshot without vmstate is started again by pvectl.
Refused (exit 2) when the VM has no snapshot NAME in PVE. Asks for confirmation unless --yes.`,
		Args: exactArgs(2, "a VM (service id or hostname) and a snapshot name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := g.request(cmd, func(ctx context.Context, e *engine.Engine) (engine.Result, error) {
				return e.SnapshotRollback(ctx, args[0], args[1], ask(cmd, yes))
			})
			if err != nil {
				return err
			}
			printNotes(cmd, res)
			return nil
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	return cmd
}
