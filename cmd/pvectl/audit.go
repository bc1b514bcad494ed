package main

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pvectl/pvectl/store"
)

// auditJSON is one holder of pvectl audit ip|vmid --json.
type auditJSON struct {
	ServiceID string     `json:"service_id"`
	Hostname  string     `json:"hostname"`
	Product   string     `json:"product"`
	VMID      *int       `json:"vmid"`    // null: unknown
	Node      string     `json:"node"`    // "" unknown
	Address   string     `json:"address"` // audit ip: the address; audit vmid: ""
	From      time.Time  `json:"from"`
	Until     *time.Time `json:"until"`  // null: still held
	Status    string     `json:"status"` // the record's (last) status
	Deleted   *time.Time `json:"deleted"`
	DeletedBy string     `json:"deleted_by"` // purge, delete-record; "" while the record exists
}

func newAuditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Who held an IP address or a VMID, and when (records purged or deleted included)",
		Long: `Answer "who had IP X / VMID Y on date D" (abuse reports): every VM record that held
the address or VMID, oldest first, from the live records and from the audit that the purge
task and delete-record leave behind when they delete a record. See docs/cli.md.`,
	}
	var asJSON bool
	run := func(what string, query func(context.Context, *store.Store) ([]store.AuditHold, error)) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, _ []string) error {
			e, closeFn, err := g.openEngine(cmd.Context())
			if err != nil {
				return err
			}
			defer closeFn()
			holds, err := query(cmd.Context(), e.Store)
			if err != nil {
				return err
			}
			return printAudit(cmd, what, holds, asJSON)
		}
	}
	ip := &cobra.Command{
		Use:   "ip ADDRESS",
		Short: "Every VM record that held an IPv4 or IPv6 address, and when",
		Args:  exactArgs(1, "one IP address"),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := netip.ParseAddr(args[0])
			if err != nil || a.Zone() != "" {
				return usagef("%q is not an IP address; valid: an IPv4 or IPv6 address such as 192.0.2.10 or 2001:db8::10", args[0])
			}
			addr := a.Unmap().String()
			return run("address "+addr, func(ctx context.Context, st *store.Store) ([]store.AuditHold, error) {
				return st.AuditIP(ctx, addr)
			})(cmd, args)
		},
	}
	vmid := &cobra.Command{
		Use:   "vmid VMID",
		Short: "Every VM record that held a Proxmox VMID, and when",
		Args:  exactArgs(1, "one VMID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := strconv.Atoi(args[0])
			if err != nil || n < 1 {
				return usagef("%q is not a VMID; valid: a whole number of 1 or more", args[0])
			}
			return run(fmt.Sprintf("VMID %d", n), func(ctx context.Context, st *store.Store) ([]store.AuditHold, error) {
				return st.AuditVMID(ctx, n)
			})(cmd, args)
		},
	}
	for _, c := range []*cobra.Command{ip, vmid} {
		c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	}
	cmd.AddCommand(ip, vmid)
	return cmd
}

func printAudit(cmd *cobra.Command, what string, holds []store.AuditHold, asJSON bool) error {
	out := []auditJSON{}
	for _, h := range holds {
		j := auditJSON{ServiceID: h.ServiceID, Hostname: h.Hostname, Product: h.Product, Node: h.Node,
			Address: h.Address, From: h.From, Status: h.Status, DeletedBy: h.How}
		if h.VMID != 0 {
			v := h.VMID
			j.VMID = &v
		}
		if !h.Until.IsZero() {
			u := h.Until
			j.Until = &u
		}
		if !h.Deleted.IsZero() {
			d := h.Deleted
			j.Deleted = &d
		}
		out = append(out, j)
	}
	w := cmd.OutOrStdout()
	if asJSON {
		return writeJSON(w, out)
	}
	if len(out) == 0 {
		fmt.Fprintf(w, "no record held %s\n", what)
		return nil
	}
	ts := func(t *time.Time, none string) string {
		if t == nil {
			return none
		}
		return t.UTC().Format(time.RFC3339)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tHOSTNAME\tPRODUCT\tVMID\tNODE\tFROM\tUNTIL\tRECORD")
	for _, j := range out {
		vmid := "-"
		if j.VMID != nil {
			vmid = strconv.Itoa(*j.VMID)
		}
		record := j.Status
		if j.Deleted != nil {
			record = fmt.Sprintf("deleted by %s at %s (was %s)", j.DeletedBy, ts(j.Deleted, ""), j.Status)
		}
		from := j.From
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.ServiceID, j.Hostname, j.Product, vmid, dash(j.Node),
			ts(&from, "-"), ts(j.Until, "still held"), record)
	}
	return tw.Flush()
}
