package dns_test

import (
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pvectl/pvectl/providers/dns"
	"github.com/pvectl/pvectl/providers/dns/dnstest"
)

// RecordsAt lists what a real named holds at a name, whatever the type, without
// wildcard answers, and reports delegations.
func TestRecordsAt(t *testing.T) {
	t.Parallel()
	s := dnstest.Start(t)
	ctx := ctxT(t)
	u := dns.NewUpdater(s.DNSZones())
	s.AddRR(t, dnstest.Forward,
		"txt.example.test. 300 IN TXT \"v=spf1 -all\"",
		"mx.example.test. 300 IN MX 10 ns1.example.test.",
		"alias.example.test. 300 IN CNAME ns1.example.test.",
		"both.example.test. 300 IN A 192.0.2.50", "both.example.test. 300 IN AAAA 2001:db8::50",
		"both.example.test. 300 IN TXT \"web\"",
		"afsdb.example.test. 300 IN AFSDB 1 afs.example.test.", // not asked by type: found by ANY
		"leaf.ent.example.test. 300 IN A 192.0.2.51",
		"*.wild.example.test. 300 IN A 192.0.2.52",
		"real.wild.example.test. 300 IN A 192.0.2.53",
		"sub.example.test. 300 IN NS ns.elsewhere.invalid.",
	)
	tests := []struct {
		name, zone, fqdn string
		want             []string // "NAME TYPE VALUE" ("NAME SOA"), sorted
	}{
		{"no such name", dnstest.Forward, "free.example.test", nil},
		{"provider's A", dnstest.Forward, "ns1.example.test", []string{"ns1.example.test A 127.0.0.1"}},
		{"letter case and trailing dot", dnstest.Forward, "NS1.Example.Test.", []string{"ns1.example.test A 127.0.0.1"}},
		{"zone apex", dnstest.Forward, "example.test", []string{"example.test NS ns1.example.test", "example.test SOA"}},
		{"nested zone's apex, asked in the parent", dnstest.Forward, "cust.example.test", []string{"cust.example.test NS ns1.example.test", "cust.example.test SOA"}},
		{"TXT only", dnstest.Forward, "txt.example.test", []string{`txt.example.test TXT "v=spf1 -all"`}},
		{"MX only", dnstest.Forward, "mx.example.test", []string{"mx.example.test MX 10 ns1.example.test."}},
		{"CNAME", dnstest.Forward, "alias.example.test", []string{"alias.example.test CNAME ns1.example.test"}},
		{"several types", dnstest.Forward, "both.example.test", []string{"both.example.test A 192.0.2.50", "both.example.test AAAA 2001:db8::50", `both.example.test TXT "web"`}},
		{"a type found by ANY", dnstest.Forward, "afsdb.example.test", []string{"afsdb.example.test AFSDB 1 afs.example.test."}},
		{"empty non-terminal", dnstest.Forward, "ent.example.test", nil},
		{"wildcard answer left out", dnstest.Forward, "vm1.wild.example.test", nil},
		{"explicit record under a wildcard", dnstest.Forward, "real.wild.example.test", []string{"real.wild.example.test A 192.0.2.53"}},
		{"delegated name", dnstest.Forward, "vm1.sub.example.test", []string{"sub.example.test NS ns.elsewhere.invalid"}},
		{"delegation point", dnstest.Forward, "sub.example.test", []string{"sub.example.test NS ns.elsewhere.invalid"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			recs, err := u.RecordsAt(ctx, tc.zone, tc.fqdn)
			require.NoError(t, err)
			var got []string
			for _, r := range recs {
				require.Equal(t, dnstest.Forward, r.Zone)
				if r.Type == "SOA" {
					r.Value = "" // the serial changes with every update
				}
				got = append(got, strings.TrimSpace(r.String()))
			}
			sort.Strings(got)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestRecordsAtFailures(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	u := dns.NewUpdater([]dns.Zone{{Name: "example.test", Server: "127.0.0.1:1", KeyName: "k", Secret: "c2VjcmV0"}})
	u.Timeout = 300 * time.Millisecond
	_, err := u.RecordsAt(ctx, "other.test", "www.other.test")
	require.Equal(t, dns.KindConfig, dns.KindOf(err), "%v", err)

	// Nothing listens: an error, never "no records".
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = pc.Close() })
	for _, srv := range []string{"127.0.0.1:1", pc.LocalAddr().String()} {
		u := dns.NewUpdater([]dns.Zone{{Name: "example.test", Server: srv, KeyName: "k", Secret: "c2VjcmV0"}})
		u.Timeout = 300 * time.Millisecond
		recs, err := u.RecordsAt(ctx, "example.test", "www.example.test")
		require.Error(t, err)
		require.Nil(t, recs)
		require.Contains(t, []dns.Kind{dns.KindUnreachable, dns.KindTimeout}, dns.KindOf(err), "%v", err)
	}
}
