package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pvectl/pvectl/engine"
	"github.com/spf13/cobra"
)

func newDNSCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dns",
		Short: "Check the DNS zones, show a VM's records, resync them",
		Long: `pvectl publishes each VM's A/AAAA and PTR records by RFC 2136 dynamic update signed
with TSIG (see docs/dns.md). Failed records never block a pipeline: the VM is marked
DNS-dirty and process_vms retries them with backoff until they succeed.`,
	}
	cmd.AddCommand(newDNSCheckCmd(g), newDNSShowCmd(g), newDNSSyncCmd(g))
	return cmd
}

func newDNSCheckCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "check",
		Short: "For each zone: query its SOA and send a TSIG-signed update that changes nothing",
		Long: `For each configured zone, query the SOA at the zone's server (the answer must be
authoritative) and send a TSIG-signed no-op update (prerequisite "pvectl-check.<zone> does
not exist", update "delete its A/PTR records"). Prints OK or the exact failure —
unreachable, timeout, NOTAUTH (BADSIG), NOTAUTH (BADKEY), NOTAUTH (BADTIME), REFUSED,
NOTAUTH — with what to do. Exit 1 when any zone fails. Nothing in DNS changes.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.loadConfig()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			rows := (&engine.Engine{Config: c}).CheckDNSZones(cmd.Context())
			if rows == nil {
				if asJSON {
					return writeJSON(w, []engine.DNSZoneCheck{})
				}
				fmt.Fprintln(w, "no DNS zones configured (dns.zones in the config); nothing to check")
				return nil
			}
			failed := 0
			for _, r := range rows {
				if !r.OK {
					failed++
				}
			}
			if asJSON {
				if err := writeJSON(w, rows); err != nil {
					return err
				}
			} else {
				for _, r := range rows {
					where := fmt.Sprintf("(server %s, key %s, %s)", r.Server, r.KeyName, r.Algorithm)
					if r.OK {
						fmt.Fprintf(w, "OK    %s %s\n", r.Zone, where)
						continue
					}
					fmt.Fprintf(w, "FAIL  %s %s: %s\n", r.Zone, where, r.Error)
					if r.Hint != "" {
						fmt.Fprintf(w, "      → %s\n", r.Hint)
					}
				}
				fmt.Fprintf(w, "%d zone(s) checked: %d OK, %d failed\n", len(rows), len(rows)-failed, failed)
			}
			if failed > 0 {
				return fmt.Errorf("dns check: %d of %d zone(s) failed", failed, len(rows))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (stable shape, see docs/dns.md)")
	return cmd
}

func newDNSShowCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show VM",
		Short: "Show the records pvectl published for a VM and what the servers answer now",
		Long: `Show the records pvectl published (or failed to publish) for a VM (service id or
hostname), the records its current plan has that are not recorded yet, and for each what
the zone's server answers now (a direct, non-recursive query). Read-only.`,
		Args: exactArgs(1, "a VM (service id or hostname)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, closeFn, err := g.openEngine(cmd.Context())
			if err != nil {
				return err
			}
			defer closeFn()
			ctx := cmd.Context()
			vm, err := e.FindVM(ctx, args[0])
			if err != nil {
				return err
			}
			j, err := e.DNSShow(ctx, vm)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), j)
			}
			printDNSShow(cmd.OutOrStdout(), j, e.Clock.Now(), e.Zone())
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (stable shape, see docs/dns.md)")
	return cmd
}

func printDNSShow(w io.Writer, j engine.DNSView, now time.Time, loc *time.Location) {
	fmt.Fprintf(w, "VM %s (%s), status %s\n", j.ServiceID, j.Hostname, j.Status)
	switch {
	case !j.Dirty:
		fmt.Fprintln(w, "dns: in sync")
	case j.NextRetry == nil:
		fmt.Fprintf(w, "dns: DIRTY — some records are not in place; process_vms retries them at its next run (%d retries failed so far)\n", j.Attempts)
	default:
		fmt.Fprintf(w, "dns: DIRTY — some records are not in place; %d retries failed, next at %s (in %s)\n",
			j.Attempts, engine.HumanTime(*j.NextRetry, loc), max(0, j.NextRetry.Sub(now)).Round(time.Second))
	}
	if len(j.Records) == 0 {
		fmt.Fprintln(w, "no records (no DNS zones match, or no addresses yet)")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STATE\tRECORD\tZONE\tSERVER ANSWERS")
	for _, r := range j.Records {
		rec := r.String()
		var says string
		switch {
		case r.Query != "":
			says = "query failed: " + r.Query
		case *r.Present:
			says = "present"
		default:
			says = "MISSING"
		}
		if others := engine.OtherValues(r); len(others) > 0 {
			says += " (also: " + strings.Join(others, ", ") + ")"
		}
		if r.Error != "" {
			says += " — last error: " + r.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.State, rec, r.Zone, says)
	}
	_ = tw.Flush()
}

func newDNSSyncCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "sync VM",
		Short: "Queue a full DNS resync of a ready VM (delete its records, publish them again)",
		Long: `Move a ready VM to set_dns_records and return at once. The next tick deletes every
record pvectl published for it (exactly those: records an operator added stay), publishes
its current records and moves it back to ready. Only ready VMs: a VM in a pipeline gets
its records from that pipeline, and DNS-dirty records are retried in the background anyway.
Nothing is sent to the DNS servers here.`,
		Args: exactArgs(1, "a VM (service id or hostname)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := g.request(cmd, func(ctx context.Context, e *engine.Engine) (engine.Result, error) {
				return e.SyncDNS(ctx, args[0])
			})
			if errors.Is(err, engine.ErrConflict) {
				return failure{err} // exit 1: nothing was refused, someone else moved the VM
			}
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if !res.Changed {
				fmt.Fprintf(w, "VM %s is already queued for a DNS resync (status %s); the next tick does it\n", res.VM.ServiceID, res.VM.Status)
				return nil
			}
			fmt.Fprintf(w, "VM %s queued for a DNS resync (ready → set_dns_records); the next tick deletes and republishes its records\n", res.VM.ServiceID)
			return nil
		},
	}
}
