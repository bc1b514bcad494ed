package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/pvectl/pvectl/config"
	"github.com/pvectl/pvectl/providers/dns"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
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

// newUpdater builds the DNS updater from the config, or nil when no zone is configured.
func newUpdater(c *config.Config) *dns.Updater {
	zones := dnsZones(c)
	if len(zones) == 0 {
		return nil
	}
	u := dns.NewUpdater(zones)
	u.Timeout = c.DNS.Timeout.D()
	return u
}

// dnsCheckJSON is one zone of `pvectl dns check --json` (stable shape, docs/dns.md).
type dnsCheckJSON struct {
	Zone      string `json:"zone"`
	Server    string `json:"server"`
	KeyName   string `json:"key_name"`
	Algorithm string `json:"algorithm"`
	OK        bool   `json:"ok"`
	Kind      string `json:"kind,omitempty"`  // unreachable, timeout, BADSIG, BADKEY, BADTIME, REFUSED, NOTAUTH, …
	Error     string `json:"error,omitempty"` // e.g. "NOTAUTH (BADSIG)"
	Hint      string `json:"hint,omitempty"`
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
			u := newUpdater(c)
			w := cmd.OutOrStdout()
			if u == nil {
				if asJSON {
					return writeJSON(w, []dnsCheckJSON{})
				}
				fmt.Fprintln(w, "no DNS zones configured (dns.zones in the config); nothing to check")
				return nil
			}
			zones := dnsZones(c)
			rows := make([]dnsCheckJSON, len(zones))
			var wg sync.WaitGroup
			for i, z := range zones {
				rows[i] = dnsCheckJSON{Zone: dns.Normalize(z.Name), Server: z.Server, KeyName: dns.Normalize(z.KeyName),
					Algorithm: algorithmName(z.Algorithm), OK: true}
				wg.Go(func() {
					if err := u.Check(cmd.Context(), z.Name); err != nil {
						rows[i].OK = false
						rows[i].Kind = string(dns.KindOf(err))
						rows[i].Error = dns.ShortError(err)
						rows[i].Hint = checkHint(z, err)
					}
				})
			}
			wg.Wait()
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

func algorithmName(a string) string {
	if a == "" {
		return dns.DefaultAlgorithm
	}
	return strings.TrimSuffix(strings.ToLower(a), ".")
}

// checkHint says what to do about a failed zone check.
func checkHint(z dns.Zone, err error) string {
	key, alg := dns.Normalize(z.KeyName), algorithmName(z.Algorithm)
	var de *dns.Error
	soa := errors.As(err, &de) && de.Msg == "SOA query"
	switch kind := dns.KindOf(err); {
	case soa && kind == dns.KindRefused:
		return fmt.Sprintf("%s does not serve zone %s: check the zone name and the server", z.Server, dns.Normalize(z.Name))
	case soa && de.Rcode == mdns.RcodeNameError:
		return fmt.Sprintf("%s does not exist on %s: it is not a zone there; check the zone name", dns.Normalize(z.Name), z.Server)
	}
	switch dns.KindOf(err) {
	case dns.KindUnreachable:
		return fmt.Sprintf("nothing answers at %s: start the server, check the zone's server host:port and firewalls (UDP and TCP)", z.Server)
	case dns.KindTimeout:
		return fmt.Sprintf("no answer from %s in time: a firewall drops UDP or TCP port 53, or the server is overloaded", z.Server)
	case dns.KindBadSig:
		return fmt.Sprintf("the server knows key %s but the signature does not verify: wrong secret; copy it again on both sides", key)
	case dns.KindBadKey:
		return fmt.Sprintf("the server has no key %s with algorithm %s: make key name and algorithm identical on both sides, reload the server", key, alg)
	case dns.KindBadTime:
		return "the clocks of this host and the DNS server differ by more than 5 minutes: run NTP on both"
	case dns.KindRefused:
		return fmt.Sprintf("key %s may not update %s (allow-update / update-policy / ACL), or the server does not serve the zone", key, dns.Normalize(z.Name))
	case dns.KindNotAuth:
		return fmt.Sprintf("%s is not authoritative for %s: point server at the zone's primary, check the zone name", z.Server, dns.Normalize(z.Name))
	case dns.KindServFail:
		return "the server failed to apply the update (journal not writable, zone not loaded): read its log"
	case dns.KindConfig:
		return "fix this zone in dns.zones of the config"
	}
	return ""
}

// dnsShowJSON is `pvectl dns show VM --json` (stable shape, docs/dns.md).
type dnsShowJSON struct {
	ServiceID string          `json:"service_id"`
	Hostname  string          `json:"hostname"`
	Status    string          `json:"status"`
	Dirty     bool            `json:"dns_dirty"`
	Attempts  int             `json:"dns_retries_failed"`
	NextRetry *time.Time      `json:"dns_next_retry_at"`
	Records   []dnsRecordJSON `json:"records"`
}

type dnsRecordJSON struct {
	State   string   `json:"state"` // published | failed | planned (in the plan, not recorded yet)
	Zone    string   `json:"zone"`
	Name    string   `json:"name"`
	Type    string   `json:"type"`
	Value   string   `json:"value"`
	TTL     int      `json:"ttl"`
	Error   string   `json:"error,omitempty"` // the last publish error
	Present *bool    `json:"present"`         // the server answers this value; null when the query failed
	Answers []string `json:"answers"`         // every value the server answers for name and type
	Query   string   `json:"query_error,omitempty"`
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
			vm, err := findVM(ctx, e, args[0])
			if err != nil {
				return err
			}
			j, err := dnsShow(ctx, e.Config, e.Store, vm)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), j)
			}
			printDNSShow(cmd.OutOrStdout(), j, e.Clock.Now())
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (stable shape, see docs/dns.md)")
	return cmd
}

func dnsShow(ctx context.Context, c *config.Config, st *store.Store, vm store.VM) (dnsShowJSON, error) {
	d, err := st.DNSRetryGet(ctx, vm.ID)
	if err != nil {
		return dnsShowJSON{}, err
	}
	rows, err := st.DNSRecords(ctx, vm.ID)
	if err != nil {
		return dnsShowJSON{}, err
	}
	ips, err := st.IPsForVM(ctx, vm.ID)
	if err != nil {
		return dnsShowJSON{}, err
	}
	j := dnsShowJSON{ServiceID: vm.ServiceID, Hostname: vm.Hostname, Status: vm.Status, Dirty: vm.DNSDirty,
		Attempts: d.Attempts, Records: []dnsRecordJSON{}}
	if vm.DNSDirty && !d.NextAt.IsZero() {
		t := d.NextAt
		j.NextRetry = &t
	}
	seen := map[string]bool{}
	add := func(state string, rec dns.Record, errText string) {
		seen[rec.Key()] = true
		j.Records = append(j.Records, dnsRecordJSON{State: state, Zone: rec.Zone, Name: rec.Name, Type: rec.Type,
			Value: rec.Value, TTL: int(rec.TTL), Error: errText, Answers: []string{}})
	}
	for _, r := range rows {
		add(r.State, dns.Record{Zone: r.Zone, Name: r.Name, Type: r.Type, Value: r.Value, TTL: uint32(max(r.TTL, 0))}, r.Error)
	}
	zones := dnsZones(c)
	for _, rec := range states.DNSPlan(&states.Env{Config: c, Zones: zones}, vm, ips) {
		if !seen[rec.Key()] {
			add("planned", rec, "")
		}
	}
	u := newUpdater(c)
	type answer struct {
		values []string
		err    error
	}
	answers := map[string]*answer{} // zone|name|type
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, r := range j.Records {
		k := dns.Normalize(r.Zone) + "|" + dns.Normalize(r.Name) + "|" + strings.ToUpper(r.Type)
		if _, ok := answers[k]; ok {
			continue
		}
		a := &answer{}
		answers[k] = a
		if u == nil {
			a.err = errors.New("zone not configured")
			continue
		}
		if _, ok := u.Zone(r.Zone); !ok {
			a.err = errors.New("zone not configured")
			continue
		}
		wg.Go(func() {
			got, err := u.Query(ctx, r.Zone, r.Name, r.Type)
			mu.Lock()
			defer mu.Unlock()
			a.err = err
			for _, g := range got {
				a.values = append(a.values, g.Value)
			}
		})
	}
	wg.Wait()
	for i, r := range j.Records {
		a := answers[dns.Normalize(r.Zone)+"|"+dns.Normalize(r.Name)+"|"+strings.ToUpper(r.Type)]
		if a.err != nil {
			j.Records[i].Query = dns.ShortError(a.err)
			continue
		}
		want := dns.Record{Zone: r.Zone, Name: r.Name, Type: r.Type, Value: r.Value}.Key()
		present := false
		for _, v := range a.values {
			j.Records[i].Answers = append(j.Records[i].Answers, v)
			if (dns.Record{Zone: r.Zone, Name: r.Name, Type: r.Type, Value: v}).Key() == want {
				present = true
			}
		}
		slices.Sort(j.Records[i].Answers)
		j.Records[i].Present = &present
	}
	return j, nil
}

func printDNSShow(w io.Writer, j dnsShowJSON, now time.Time) {
	fmt.Fprintf(w, "VM %s (%s), status %s\n", j.ServiceID, j.Hostname, j.Status)
	switch {
	case !j.Dirty:
		fmt.Fprintln(w, "dns: in sync")
	case j.NextRetry == nil:
		fmt.Fprintf(w, "dns: DIRTY — some records are not in place; process_vms retries them at its next run (%d retries failed so far)\n", j.Attempts)
	default:
		fmt.Fprintf(w, "dns: DIRTY — some records are not in place; %d retries failed, next at %s (in %s)\n",
			j.Attempts, j.NextRetry.Format(time.RFC3339), max(0, j.NextRetry.Sub(now)).Round(time.Second))
	}
	if len(j.Records) == 0 {
		fmt.Fprintln(w, "no records (no DNS zones match, or no addresses yet)")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STATE\tRECORD\tZONE\tSERVER ANSWERS")
	for _, r := range j.Records {
		rec := dns.Record{Name: r.Name, Type: r.Type, Value: r.Value}.String()
		var says string
		switch {
		case r.Query != "":
			says = "query failed: " + r.Query
		case *r.Present:
			says = "present"
		default:
			says = "MISSING"
		}
		if others := otherValues(r); len(others) > 0 {
			says += " (also: " + strings.Join(others, ", ") + ")"
		}
		if r.Error != "" {
			says += " — last error: " + r.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.State, rec, r.Zone, says)
	}
	_ = tw.Flush()
}

// otherValues are the values the server answers besides the record's own.
func otherValues(r dnsRecordJSON) []string {
	own := dns.Record{Zone: r.Zone, Name: r.Name, Type: r.Type, Value: r.Value}.Key()
	var out []string
	for _, v := range r.Answers {
		if (dns.Record{Zone: r.Zone, Name: r.Name, Type: r.Type, Value: v}).Key() != own {
			out = append(out, v)
		}
	}
	return out
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
			e, closeFn, err := g.openEngine(cmd.Context())
			if err != nil {
				return err
			}
			defer closeFn()
			ctx := cmd.Context()
			if len(e.Config.DNS.Zones) == 0 {
				return usagef("no DNS zones configured (dns.zones in the config); nothing to sync")
			}
			vm, err := findVM(ctx, e, args[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			switch states.State(vm.Status) {
			case states.SetDNSRecords:
				fmt.Fprintf(w, "VM %s is already queued for a DNS resync (status %s); the next tick does it\n", vm.ServiceID, vm.Status)
				return nil
			case states.Ready:
			default:
				return usagef("VM %s is in state %s, not ready; dns sync only queues a resync of a ready VM — "+
					"let its pipeline finish (it publishes DNS itself, and failed records are retried in the background), "+
					"or use pvectl reset-status %s set_dns_records", vm.ServiceID, vm.Status, vm.ServiceID)
			}
			err = e.Store.VMApplyOutcome(ctx, store.Outcome{ID: vm.ID, FromStatus: vm.Status, FromVersion: vm.Version,
				ToStatus: string(states.SetDNSRecords), ClearPending: true, Now: e.Clock.Now()})
			if errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("VM %s changed while queuing the resync (someone else moved it); nothing done — run pvectl vm show %s and try again", vm.ServiceID, vm.ServiceID)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "VM %s queued for a DNS resync (ready → set_dns_records); the next tick deletes and republishes its records\n", vm.ServiceID)
			return nil
		},
	}
}
