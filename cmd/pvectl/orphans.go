package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/pvectl/pvectl/engine"
)

func newOrphansCmd(g *globals) *cobra.Command {
	var asJSON, last bool
	cmd := &cobra.Command{
		Use:   "orphans [--json] [--last]",
		Short: "Report orphans and drift between PVE, DNS and the records; changes nothing (exit 0 none, 1 findings, 3 not checked)",
		Long: `Look at PVE and DNS now and report what does not match the records: PVE VMs in the VMID
range (or tagged pvectl) that no record holds, records whose VM is gone, a record's VMID
holding another service's VM, ready VMs whose CPU, memory, disks, NIC, firewall, IP set or
cloud-init addresses differ from their product or record, IP set addresses no record (or
another record) holds, and published DNS records the server no longer answers as published.

Each finding is listed once, with the command that would fix it. Nothing is changed: an
admin decides. The reconcile task (hourly) runs the same look and keeps its findings, with
the time each was first seen; --last prints those without contacting PVE or DNS.

Exit 0: no findings; 1: findings; 3: a part could not be checked (see the errors) and
nothing was found elsewhere. See docs/monitoring.md.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, closeFn, err := g.openEngine(cmd.Context())
			if err != nil {
				return err
			}
			defer closeFn()
			var r engine.Reconciliation
			if last {
				r, err = e.LastReconciliation(cmd.Context())
			} else {
				r, err = e.Reconcile(cmd.Context())
			}
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "error: cannot check: "+err.Error())
				return exitStatus{3}
			}
			w := cmd.OutOrStdout()
			if asJSON {
				if err := writeJSON(w, r); err != nil {
					return err
				}
			} else {
				printFindings(w, r, last, e.HumanTime)
			}
			switch {
			case len(r.Findings) > 0:
				return exitStatus{1}
			case len(r.Errors) > 0:
				return exitStatus{3}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON (stable shape, see docs/monitoring.md)")
	cmd.Flags().BoolVar(&last, "last", false, "print what the last reconcile run found, without contacting PVE or DNS")
	return cmd
}

func printFindings(w io.Writer, r engine.Reconciliation, last bool, human func(time.Time) string) {
	for _, f := range r.Findings {
		fmt.Fprintln(w, f.Line())
		fmt.Fprintln(w, "    fix: "+f.Fix)
		if f.FirstSeen != nil {
			fmt.Fprintln(w, "    first seen: "+human(*f.FirstSeen))
		}
	}
	for _, msg := range r.Errors {
		fmt.Fprintln(w, "not checked: "+msg)
	}
	if last {
		if r.CheckedAt.IsZero() {
			fmt.Fprintln(w, "the reconcile task has not run yet (pvectl run-task reconcile)")
			return
		}
		fmt.Fprintf(w, "reconcile at %s: %s\n", human(r.CheckedAt), r.Message)
		return
	}
	fmt.Fprintln(w, r.Summary())
}
