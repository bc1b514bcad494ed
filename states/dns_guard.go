package states

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/pvectl/pvectl/providers/dns"
	"github.com/pvectl/pvectl/store"
)

// A VM's hostname must not hijack a name: before pvectl publishes the first forward record
// for a hostname it checks that the name is not a zone's apex (unless the zone has
// allow_apex: true) and that the zones' servers hold no record there that is not the VM's.
// `vm create` checks it (refusing with exit 2), and so do the deploy's DNS step (which holds
// the VM), the DNS resync step (which holds it too) and the background DNS retry (which
// publishes nothing for the name and keeps the VM DNS-dirty).
//
// Once the VM holds its name — the store says one of its forward records there was published,
// or the server answers one of the VM's own records there (a crash between the update and the
// store write) — the name is the VM's: records an operator adds next to them later are left
// alone and are no reason to stop.

// NameQuerier is what the hostname check needs from the DNS provider: every record a zone's
// server holds at a name (dns.Updater has it).
type NameQuerier interface {
	RecordsAt(ctx context.Context, zone, name string) ([]dns.Record, error)
}

// HostnameError says why a hostname may not receive a VM's forward records.
type HostnameError struct {
	Name    string
	Apex    []string     // the zones whose apex Name is and that do not allow it
	Foreign []dns.Record // records at Name that are not the VM's
}

func (e *HostnameError) Error() string {
	if len(e.Apex) > 0 {
		return fmt.Sprintf("hostname %s is the apex of DNS zone %s, where the zone's own records live (SOA, NS, the domain's web and mail); a VM's hostname must be a name inside the zone, like vm1.%s, unless the zone has allow_apex: true",
			e.Name, strings.Join(e.Apex, ", "), e.Apex[0])
	}
	return fmt.Sprintf("hostname %s already has DNS records that are not this VM's: %s; a VM's hostname must be a name that holds no records yet",
		e.Name, DescribeRecords(e.Foreign))
}

// Fix says what an operator can do about a VM held at a DNS step for this error.
func (e *HostnameError) Fix(serviceID string) string {
	if len(e.Apex) > 0 {
		return fmt.Sprintf("set allow_apex: true on zone %s if VMs may use its apex and run `pvectl vm retry %s`, or terminate the VM and create it with another hostname",
			e.Apex[0], serviceID)
	}
	return fmt.Sprintf("remove those records from the zone if they are stale and run `pvectl vm retry %s`, or terminate the VM and create it with another hostname",
		serviceID)
}

// DescribeRecords lists records as "NAME TYPE VALUE (zone Z)", the same RR once, at most 5.
func DescribeRecords(recs []dns.Record) string {
	var parts []string
	seen := map[string]bool{}
	for _, r := range recs {
		k := dns.Record{Name: r.Name, Type: r.Type, Value: r.Value}.Key()
		if seen[k] {
			continue
		}
		seen[k] = true
		parts = append(parts, fmt.Sprintf("%s (zone %s)", r.String(), dns.Normalize(r.Zone)))
	}
	if len(parts) > 5 {
		parts = append(parts[:5], fmt.Sprintf("and %d more", len(parts)-5))
	}
	return strings.Join(parts, ", ")
}

// ApexZones returns the configured forward zones whose apex fqdn is and whose apex is not
// allowed (allowApex reports a zone's allow_apex; nil allows none).
func ApexZones(zones []dns.Zone, allowApex func(zone string) bool, fqdn string) []string {
	var out []string
	for _, z := range dns.MatchForward(zones, fqdn) {
		n := dns.Normalize(z.Name)
		if n == dns.Normalize(fqdn) && (allowApex == nil || !allowApex(n)) {
			out = append(out, n)
		}
	}
	return out
}

// Owns returns whether a record at a name is the VM's: one recorded in the store for it (rows),
// or an A/AAAA at its hostname whose address is one of its own (ips) — what a crash between
// publishing and recording leaves.
func Owns(hostname string, rows []store.DNSRecord, ips []store.IPAllocation) func(dns.Record) bool {
	host := dns.Normalize(hostname)
	recorded := map[string]bool{}
	for _, row := range rows {
		recorded[dns.Record{Name: row.Name, Type: row.Type, Value: row.Value}.Key()] = true
	}
	addrs := map[netip.Addr]bool{}
	for _, ip := range ips {
		if a, err := netip.ParseAddr(ip.Address); err == nil {
			addrs[a.Unmap()] = true
		}
	}
	return func(r dns.Record) bool {
		if dns.Normalize(r.Name) != host {
			return false
		}
		if recorded[dns.Record{Name: r.Name, Type: r.Type, Value: r.Value}.Key()] {
			return true
		}
		t := strings.ToUpper(r.Type)
		a, err := netip.ParseAddr(r.Value)
		return (t == "A" || t == "AAAA") && err == nil && addrs[a.Unmap()]
	}
}

// CheckHostname checks that fqdn may receive a VM's forward records: it is not the apex of a
// configured forward zone that does not allow it, and the servers of the forward zones it is in
// hold no record at it that the VM does not own (owns). At an allowed apex only address records
// (A, AAAA, CNAME) count: the zone's SOA, NS, MX, TXT … are expected there. A delegation of the
// name to a configured zone containing it is not foreign. When any record there is the VM's the
// name is already the VM's, and nothing is foreign.
//
// It returns nil, a *HostnameError, or the query error when a server could not tell (then the
// name is unchecked). With a nil q only the apex is checked.
func CheckHostname(ctx context.Context, q NameQuerier, zones []dns.Zone, allowApex func(zone string) bool, fqdn string,
	owns func(dns.Record) bool) error {
	host := dns.Normalize(fqdn)
	if apex := ApexZones(zones, allowApex, host); len(apex) > 0 {
		return &HostnameError{Name: host, Apex: apex}
	}
	fwd := dns.MatchForward(zones, host)
	if q == nil || len(fwd) == 0 {
		return nil
	}
	configured := map[string]bool{}
	apexOK := false
	for _, z := range fwd {
		n := dns.Normalize(z.Name)
		configured[n] = true
		apexOK = apexOK || n == host
	}
	// The most specific zone first: a server answers a name from its most specific zone, so
	// that is the zone the records are reported in.
	fwd = slices.Clone(fwd)
	slices.SortStableFunc(fwd, func(a, b dns.Zone) int { return len(dns.Normalize(b.Name)) - len(dns.Normalize(a.Name)) })
	var foreign []dns.Record
	asked := map[string]bool{}
	for _, z := range fwd {
		if asked[z.Server] {
			continue // one server answers a name the same way, whichever of its zones is asked
		}
		asked[z.Server] = true
		recs, err := q.RecordsAt(ctx, z.Name, host)
		if err != nil {
			return err
		}
		for _, r := range recs {
			switch t := strings.ToUpper(r.Type); {
			case owns != nil && owns(r):
				return nil
			case t == "NS" && configured[dns.Normalize(r.Name)]:
				// the name's own configured zone, delegated (or its apex)
			case apexOK && t != "A" && t != "AAAA" && t != "CNAME":
			default:
				foreign = append(foreign, r)
			}
		}
	}
	if len(foreign) > 0 {
		return &HostnameError{Name: host, Foreign: foreign}
	}
	return nil
}

// HoldsName reports whether a VM already holds its hostname: the store (rows, the VM's
// records) says one of its forward records there was published.
func HoldsName(hostname string, rows []store.DNSRecord) bool {
	host := dns.Normalize(hostname)
	for _, row := range rows {
		if row.State == "published" && !dns.IsReverseName(row.Zone) && dns.Normalize(row.Name) == host {
			return true
		}
	}
	return false
}

// checkVMHostname runs CheckHostname for a VM about to publish its records, unless it already
// holds its name (a published forward record recorded at its hostname). rows are its store
// records, ips its addresses.
func checkVMHostname(ctx context.Context, env *Env, vm store.VM, rows []store.DNSRecord, ips []store.IPAllocation) error {
	host := dns.Normalize(vm.Hostname)
	if HoldsName(host, rows) {
		return nil
	}
	q, _ := env.DNS.(NameQuerier) // a fake updater that cannot query gets the apex check only
	allow := func(zone string) bool { return env.Config != nil && env.Config.DNS.ApexAllowed(zone) }
	return CheckHostname(ctx, q, env.Zones, allow, host, Owns(host, rows, ips))
}

// uncheckedLine is the live line of a hostname that could not be checked.
func uncheckedLine(vm store.VM, err error) string {
	zone := ""
	var de *dns.Error
	if errors.As(err, &de) && de.Zone != "" {
		zone = " (zone " + de.Zone + ")"
	}
	return fmt.Sprintf("· fwd ERR %s%s: cannot check the name for DNS records that are not this VM's: %s; nothing published",
		dns.Normalize(vm.Hostname), zone, dns.ShortError(err))
}

// notPublished records recs as failed with reason, unsent, each with its `· fwd|rev ERR` line,
// so that the VM's DNS state shows them and the background retry publishes them once the
// hostname check passes. It returns how many there were. A reason that is
// dns.KindNotSent (the pass stopped sending to the zone's server) prints and
// records nothing.
func notPublished(ctx context.Context, env *Env, vm store.VM, recs []dns.Record, reason error) int {
	if dns.IsNotSent(reason) {
		return len(recs) // the server's breaker is open: the pass's one line says so
	}
	for _, rec := range recs {
		env.Emit(dns.Line(dns.ActionPublish, rec, reason))
		row := store.DNSRecord{VMID: vm.ID, Zone: rec.Zone, Name: rec.Name, Type: rec.Type, Value: rec.Value,
			TTL: int(rec.TTL), State: "failed", Error: dns.ShortError(reason)}
		if err := env.Store.DNSRecordSave(ctx, row, env.Now()); err != nil {
			env.Emit("· store ERR cannot record " + rec.String() + ": " + err.Error())
		}
	}
	return len(recs)
}

// errForeignName is the per-record reason of records not published because the hostname
// check refused the name (the retry's line before them says why).
func errForeignName(he *HostnameError) error {
	if len(he.Apex) > 0 {
		return fmt.Errorf("not published: %s is the apex of zone %s (allow_apex is off)", he.Name, he.Apex[0])
	}
	return fmt.Errorf("not published: %s holds DNS records that are not this VM's", he.Name)
}

// guardDNS is the hostname check of a DNS step, before anything is published: nil to go on;
// a held VM (Permanent) for a name it must not take; a store error to retry. unchecked is the
// query error when the name could not be checked: its line is printed, and the step publishes
// nothing (notPublished) and leaves the VM DNS-dirty for the background retry.
func guardDNS(ctx context.Context, env *Env, vm store.VM, ips []store.IPAllocation) (res *Result, unchecked error) {
	rows, err := env.Store.DNSRecords(ctx, vm.ID)
	if err != nil {
		r := Retryable(err)
		return &r, nil
	}
	err = checkVMHostname(ctx, env, vm, rows, ips)
	var he *HostnameError
	switch {
	case err == nil:
		return nil, nil
	case errors.As(err, &he):
		r := Permanent(fmt.Errorf("%w. Nothing was published: %s", he, he.Fix(vm.ServiceID)))
		return &r, nil
	default:
		if !dns.IsNotSent(err) {
			env.Emit(uncheckedLine(vm, err))
		}
		return nil, err
	}
}
