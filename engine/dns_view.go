package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/pvectl/pvectl/providers/dns"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
)

// DNS views: the zone check (dns check) and a VM's records, planned and
// published, compared with what the servers answer now (dns show).

// DNSZoneCheck is one zone of `pvectl dns check --json` (stable shape, docs/dns.md).
type DNSZoneCheck struct {
	Zone      string `json:"zone"`
	Server    string `json:"server"`
	KeyName   string `json:"key_name"`
	Algorithm string `json:"algorithm"`
	OK        bool   `json:"ok"`
	Kind      string `json:"kind,omitempty"`  // unreachable, timeout, BADSIG, BADKEY, BADTIME, REFUSED, NOTAUTH, …
	Error     string `json:"error,omitempty"` // e.g. "NOTAUTH (BADSIG)"
	Hint      string `json:"hint,omitempty"`
}

// CheckDNSZones checks every configured zone: its SOA at the zone's server
// and a TSIG-signed update that changes nothing. nil when no zone is configured.
func (e *Engine) CheckDNSZones(ctx context.Context) []DNSZoneCheck {
	u := NewDNSUpdater(e.Config)
	if u == nil {
		return nil
	}
	zones := DNSZones(e.Config)
	rows := make([]DNSZoneCheck, len(zones))
	var wg sync.WaitGroup
	for i, z := range zones {
		rows[i] = DNSZoneCheck{Zone: dns.Normalize(z.Name), Server: z.Server, KeyName: dns.Normalize(z.KeyName),
			Algorithm: algorithmName(z.Algorithm), OK: true}
		wg.Go(func() {
			if err := u.Check(ctx, z.Name); err != nil {
				rows[i].OK = false
				rows[i].Kind = string(dns.KindOf(err))
				rows[i].Error = dns.ShortError(err)
				rows[i].Hint = checkHint(z, err)
			}
		})
	}
	wg.Wait()
	return rows
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

// DNSView is `pvectl dns show VM --json` (stable shape, docs/dns.md).
type DNSView struct {
	ServiceID string          `json:"service_id"`
	Hostname  string          `json:"hostname"`
	Status    string          `json:"status"`
	Dirty     bool            `json:"dns_dirty"`
	Attempts  int             `json:"dns_retries_failed"`
	NextRetry *time.Time      `json:"dns_next_retry_at"`
	Records   []DNSRecordView `json:"records"`
}

type DNSRecordView struct {
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

// DNSShow is a VM's DNS records: those pvectl published or failed to
// publish, those its current plan has that are not recorded yet, and for
// each what the zone's server answers now (a direct, non-recursive query).
func (e *Engine) DNSShow(ctx context.Context, vm VM) (DNSView, error) {
	c, st := e.Config, e.Store
	d, err := st.DNSRetryGet(ctx, vm.ID)
	if err != nil {
		return DNSView{}, err
	}
	rows, err := st.DNSRecords(ctx, vm.ID)
	if err != nil {
		return DNSView{}, err
	}
	ips, err := st.IPsForVM(ctx, vm.ID)
	if err != nil {
		return DNSView{}, err
	}
	j := DNSView{ServiceID: vm.ServiceID, Hostname: vm.Hostname, Status: vm.Status, Dirty: vm.DNSDirty,
		Attempts: d.Attempts, Records: []DNSRecordView{}}
	if vm.DNSDirty && !d.NextAt.IsZero() {
		t := store.DueAt(d.NextAt, e.Clock.Now())
		j.NextRetry = &t
	}
	seen := map[string]bool{}
	add := func(state string, rec dns.Record, errText string) {
		seen[rec.Key()] = true
		j.Records = append(j.Records, DNSRecordView{State: state, Zone: rec.Zone, Name: rec.Name, Type: rec.Type,
			Value: rec.Value, TTL: int(rec.TTL), Error: errText, Answers: []string{}})
	}
	for _, r := range rows {
		add(r.State, dns.Record{Zone: r.Zone, Name: r.Name, Type: r.Type, Value: r.Value, TTL: uint32(max(r.TTL, 0))}, r.Error)
	}
	zones := DNSZones(c)
	for _, rec := range states.DNSPlan(&states.Env{Config: c, Zones: zones}, vm, ips) {
		if !seen[rec.Key()] {
			add("planned", rec, "")
		}
	}
	u := NewDNSUpdater(c)
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

// OtherValues are the values the server answers besides the record's own.
func OtherValues(r DNSRecordView) []string {
	own := dns.Record{Zone: r.Zone, Name: r.Name, Type: r.Type, Value: r.Value}.Key()
	var out []string
	for _, v := range r.Answers {
		if (dns.Record{Zone: r.Zone, Name: r.Name, Type: r.Type, Value: v}).Key() != own {
			out = append(out, v)
		}
	}
	return out
}

// String is the record as a zone file line: NAME TYPE VALUE.
func (r DNSRecordView) String() string {
	return dns.Record{Name: r.Name, Type: r.Type, Value: r.Value}.String()
}
