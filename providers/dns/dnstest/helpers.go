package dnstest

import (
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/pvectl/pvectl/providers/dns"
)

// Update sends a raw update for zone, signed with Key, built by fill (which adds the update
// section, e.g. m.Insert). It fails the test unless the server answers NOERROR. Tests use it to
// play the operator who adds records by hand, independently of providers/dns.
func (s *Server) Update(tb testing.TB, zone string, fill func(m *mdns.Msg)) {
	tb.Helper()
	m := new(mdns.Msg)
	m.SetUpdate(mdns.Fqdn(dns.Normalize(zone)))
	fill(m)
	m.SetTsig(mdns.Fqdn(s.KeyName), mdns.Fqdn(s.Algorithm), 300, time.Now().Unix())
	c := &mdns.Client{Net: "tcp", Timeout: 5 * time.Second,
		TsigSecret: map[string]string{mdns.Fqdn(s.KeyName): s.Secret}}
	r, _, err := c.Exchange(m, s.Addr)
	if err != nil {
		tb.Fatalf("dnstest: update %s: %v", zone, err)
	}
	if r.Rcode != mdns.RcodeSuccess {
		tb.Fatalf("dnstest: update %s: %s\n--- named.log (end) ---\n%s", zone, mdns.RcodeToString[r.Rcode], s.logTail(15))
	}
}

// AddRR adds records given in presentation format ("www.example.test. 300 IN TXT \"x\"") to
// zone, the way an operator would with nsupdate.
func (s *Server) AddRR(tb testing.TB, zone string, rrs ...string) {
	tb.Helper()
	parsed := make([]mdns.RR, 0, len(rrs))
	for _, t := range rrs {
		rr, err := mdns.NewRR(t)
		if err != nil || rr == nil {
			tb.Fatalf("dnstest: bad RR %q: %v", t, err)
		}
		parsed = append(parsed, rr)
	}
	s.Update(tb, zone, func(m *mdns.Msg) { m.Insert(parsed) })
}

// Transfer returns every record of zone by a TSIG-signed AXFR (SOA records left out). It shows
// exactly what the zone holds, even for names that a more specific zone on the same server
// would answer.
func (s *Server) Transfer(tb testing.TB, zone string) []mdns.RR {
	tb.Helper()
	m := new(mdns.Msg)
	m.SetAxfr(mdns.Fqdn(dns.Normalize(zone)))
	m.SetTsig(mdns.Fqdn(s.KeyName), mdns.Fqdn(s.Algorithm), 300, time.Now().Unix())
	tr := &mdns.Transfer{TsigSecret: map[string]string{mdns.Fqdn(s.KeyName): s.Secret}}
	ch, err := tr.In(m, s.Addr)
	if err != nil {
		tb.Fatalf("dnstest: AXFR %s: %v", zone, err)
	}
	var out []mdns.RR
	for env := range ch {
		if env.Error != nil {
			tb.Fatalf("dnstest: AXFR %s: %v", zone, env.Error)
		}
		for _, rr := range env.RR {
			if rr.Header().Rrtype == mdns.TypeSOA {
				continue
			}
			out = append(out, rr)
		}
	}
	return out
}

// Lookup queries the server directly (unsigned, over TCP) and returns the answer records.
func (s *Server) Lookup(tb testing.TB, name string, qtype uint16) []mdns.RR {
	tb.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(dns.Normalize(name)), qtype)
	m.RecursionDesired = false
	c := &mdns.Client{Net: "tcp", Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, s.Addr)
	if err != nil {
		tb.Fatalf("dnstest: query %s: %v", name, err)
	}
	return r.Answer
}

// logTail returns the last n lines of named's log.
func (s *Server) logTail(n int) string {
	lines := strings.Split(strings.TrimRight(s.Log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
