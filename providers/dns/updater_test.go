package dns_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/pvectl/pvectl/providers/dns"
	"github.com/pvectl/pvectl/providers/dns/dnstest"
)

// These tests run against a real BIND 9 named started by dnstest (see dns-recipe.md).

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// values returns the sorted values of records.
func values(recs []dns.Record) []string {
	out := make([]string, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.Value)
	}
	sort.Strings(out)
	return out
}

// inZone returns the sorted "name type value" of the zone's records at name (by AXFR).
func inZone(t *testing.T, s *dnstest.Server, zone, name string) []string {
	t.Helper()
	var out []string
	for _, rr := range s.Transfer(t, zone) {
		if strings.EqualFold(rr.Header().Name, mdns.Fqdn(name)) {
			out = append(out, mdns.TypeToString[rr.Header().Rrtype]+"\t"+strings.TrimPrefix(rr.String(), rr.Header().String()))
		}
	}
	sort.Strings(out)
	return out
}

func TestPublishQueryDelete(t *testing.T) {
	t.Parallel()
	s := dnstest.Start(t)
	u := dns.NewUpdater(s.DNSZones())
	tests := []struct {
		name      string
		fqdn      string
		ip        string
		wantTypes []string // record types Plan gives, in order
		revName   string   // expected PTR owner, "" if none
	}{
		{"A", "a.example.test", "192.0.2.11", []string{"A", "PTR"}, "11.2.0.192.in-addr.arpa"},
		{"AAAA", "aaaa.example.test", "2001:db8::11", []string{"AAAA", "PTR"}, "1.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"},
		{"PTR v4 only", "host.elsewhere.example", "192.0.2.12", []string{"PTR"}, "12.2.0.192.in-addr.arpa"},
		{"PTR v6 compressed", "v6c.elsewhere.example", "2001:db8:0:1::12", []string{"PTR"}, "2.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"},
		{"PTR v6 expanded", "v6e.elsewhere.example", "2001:0db8:0000:0002:0000:0000:0000:0012", []string{"PTR"}, "2.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"},
		{"IPv4-mapped", "mapped.example.test", "::ffff:192.0.2.13", []string{"A", "PTR"}, "13.2.0.192.in-addr.arpa"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := ctxT(t)
			ip := netip.MustParseAddr(tt.ip)
			recs := dns.Plan(s.DNSZones(), tt.fqdn, []netip.Addr{ip})
			var types []string
			for _, r := range recs {
				types = append(types, r.Type)
			}
			require.Equal(t, tt.wantTypes, types)

			for _, r := range recs {
				err := u.Publish(ctx, r)
				require.NoError(t, err, dns.Line(dns.ActionPublish, r, err))
				require.True(t, strings.HasPrefix(dns.Line(dns.ActionPublish, r, err), "· fwd OK ") ||
					strings.HasPrefix(dns.Line(dns.ActionPublish, r, err), "· rev OK "))
			}
			for _, r := range recs {
				got, err := u.Query(ctx, r.Zone, r.Name, r.Type)
				require.NoError(t, err)
				require.Equal(t, []string{r.Value}, values(got), "%s", r)
			}
			if tt.revName != "" {
				// The PTR is where a resolver looks for it, whatever form the address was given in.
				require.Equal(t, tt.revName, dns.ReverseName(ip))
				ptr := s.Lookup(t, tt.revName, mdns.TypePTR)
				require.Len(t, ptr, 1)
				require.Equal(t, mdns.Fqdn(tt.fqdn), ptr[0].(*mdns.PTR).Ptr)
			}
			if ip.Unmap().Is4() && len(recs) > 1 {
				a := s.Lookup(t, tt.fqdn, mdns.TypeA)
				require.Len(t, a, 1)
				require.Equal(t, ip.Unmap().String(), a[0].(*mdns.A).A.String())
			}

			for _, r := range recs {
				err := u.Delete(ctx, r)
				require.NoError(t, err)
				require.Contains(t, dns.Line(dns.ActionDelete, r, err), "-del OK ")
			}
			for _, r := range recs {
				got, err := u.Query(ctx, r.Zone, r.Name, r.Type)
				require.NoError(t, err)
				require.Empty(t, got, "%s still answered after Delete", r)
			}
			// Deleting again is fine.
			for _, r := range recs {
				require.NoError(t, u.Delete(ctx, r))
			}
		})
	}
}

func TestTwoMatchingForwardZones(t *testing.T) {
	t.Parallel()
	s := dnstest.Start(t)
	ctx := ctxT(t)
	u := dns.NewUpdater(s.DNSZones())
	fqdn := "www.cust.example.test"
	recs := dns.Plan(s.DNSZones(), fqdn, []netip.Addr{netip.MustParseAddr("192.0.2.20"), netip.MustParseAddr("2001:db8::20")})
	var zonesA []string
	for _, r := range recs {
		if r.Type == "A" {
			zonesA = append(zonesA, r.Zone)
		}
		require.NoError(t, u.Publish(ctx, r))
	}
	require.Equal(t, []string{dnstest.Forward, dnstest.Forward2}, zonesA)
	// Both zones hold the records (a query would only show the more specific zone).
	want := []string{"A\t192.0.2.20", "AAAA\t2001:db8::20"}
	require.Equal(t, want, inZone(t, s, dnstest.Forward, fqdn))
	require.Equal(t, want, inZone(t, s, dnstest.Forward2, fqdn))

	for _, r := range recs {
		require.NoError(t, u.Delete(ctx, r))
	}
	require.Empty(t, inZone(t, s, dnstest.Forward, fqdn))
	require.Empty(t, inZone(t, s, dnstest.Forward2, fqdn))
}

func TestRepublishNoDuplicates(t *testing.T) {
	t.Parallel()
	s := dnstest.Start(t)
	ctx := ctxT(t)
	u := dns.NewUpdater(s.DNSZones())
	recs := dns.Plan(s.DNSZones(), "dup.example.test", []netip.Addr{netip.MustParseAddr("192.0.2.30"), netip.MustParseAddr("2001:db8::30")})
	for i := 0; i < 3; i++ {
		for _, r := range recs {
			require.NoError(t, u.Publish(ctx, r))
		}
	}
	require.Equal(t, []string{"A\t192.0.2.30", "AAAA\t2001:db8::30"}, inZone(t, s, dnstest.Forward, "dup.example.test"))
	require.Equal(t, []string{"PTR\tdup.example.test."}, inZone(t, s, dnstest.Reverse4, "30.2.0.192.in-addr.arpa"))

	// Re-publishing with another TTL replaces the RR, still once.
	r := recs[0]
	r.TTL = 60
	require.NoError(t, u.Publish(ctx, r))
	got, err := u.Query(ctx, r.Zone, r.Name, "A")
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, uint32(60), got[0].TTL)
}

// A VM's address set changes (change package): Diff + Publish/Delete leave exactly the new set of
// pvectl's records, and an operator's record at the same name survives.
func TestAddressSetConverges(t *testing.T) {
	t.Parallel()
	s := dnstest.Start(t)
	ctx := ctxT(t)
	zones := s.DNSZones()
	u := dns.NewUpdater(zones)
	fqdn := "vm.example.test"
	s.AddRR(t, dnstest.Forward, "vm.example.test. 300 IN A 192.0.2.99") // the operator's

	addrs := func(ss ...string) []netip.Addr {
		var out []netip.Addr
		for _, a := range ss {
			out = append(out, netip.MustParseAddr(a))
		}
		return out
	}
	old := dns.Plan(zones, fqdn, addrs("192.0.2.40", "192.0.2.41", "2001:db8::40"))
	for _, r := range old {
		require.NoError(t, u.Publish(ctx, r))
	}
	wanted := dns.Plan(zones, fqdn, addrs("192.0.2.41", "192.0.2.42"))
	del, pub := dns.Diff(old, wanted)
	for _, r := range del {
		require.NoError(t, u.Delete(ctx, r))
	}
	for _, r := range pub {
		require.NoError(t, u.Publish(ctx, r))
	}
	a, err := u.Query(ctx, dnstest.Forward, fqdn, "A")
	require.NoError(t, err)
	require.Equal(t, []string{"192.0.2.41", "192.0.2.42", "192.0.2.99"}, values(a))
	aaaa, err := u.Query(ctx, dnstest.Forward, fqdn, "AAAA")
	require.NoError(t, err)
	require.Empty(t, aaaa)
	for ip, want := range map[string][]string{"192.0.2.40": nil, "192.0.2.41": {fqdn}, "192.0.2.42": {fqdn}, "2001:db8::40": nil} {
		got, err := u.Query(ctx, "", dns.ReverseName(netip.MustParseAddr(ip)), "PTR")
		_ = got
		require.Equal(t, dns.KindConfig, dns.KindOf(err), "Query needs a configured zone")
		zone := dnstest.Reverse4
		if strings.Contains(ip, ":") {
			zone = dnstest.Reverse6
		}
		got, err = u.Query(ctx, zone, dns.ReverseName(netip.MustParseAddr(ip)), "PTR")
		require.NoError(t, err)
		require.Equal(t, want, nilIfEmpty(values(got)), ip)
	}
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestDeleteLeavesOperatorRecords(t *testing.T) {
	t.Parallel()
	s := dnstest.Start(t)
	ctx := ctxT(t)
	u := dns.NewUpdater(s.DNSZones())
	// The operator's records at the very names pvectl writes.
	s.AddRR(t, dnstest.Forward,
		"mail.example.test. 300 IN A 192.0.2.97", // BIND refuses an MX whose target has no address
		"op.example.test. 300 IN A 192.0.2.98",
		"op.example.test. 300 IN AAAA 2001:db8::98",
		`op.example.test. 300 IN TXT "operator was here"`,
		"op.example.test. 300 IN MX 10 mail.example.test.")
	s.AddRR(t, dnstest.Reverse4, "50.2.0.192.in-addr.arpa. 300 IN PTR alias.example.test.")

	recs := dns.Plan(s.DNSZones(), "op.example.test", []netip.Addr{netip.MustParseAddr("192.0.2.50"), netip.MustParseAddr("2001:db8::50")})
	for _, r := range recs {
		require.NoError(t, u.Publish(ctx, r))
	}
	require.Equal(t, []string{"PTR\talias.example.test.", "PTR\top.example.test."}, inZone(t, s, dnstest.Reverse4, "50.2.0.192.in-addr.arpa"))
	for _, r := range recs {
		require.NoError(t, u.Delete(ctx, r))
	}
	require.Equal(t, []string{"A\t192.0.2.98", "AAAA\t2001:db8::98", "MX\t10 mail.example.test.", "TXT\t\"operator was here\""},
		inZone(t, s, dnstest.Forward, "op.example.test"))
	require.Equal(t, []string{"PTR\talias.example.test."}, inZone(t, s, dnstest.Reverse4, "50.2.0.192.in-addr.arpa"))
	require.Empty(t, inZone(t, s, dnstest.Reverse6, dns.ReverseName(netip.MustParseAddr("2001:db8::50"))))
}

// Every failure a server or the network can cause, as BIND 9 really answers it.
func TestFailuresClassified(t *testing.T) {
	t.Parallel()
	s := dnstest.Start(t)
	good := s.Zone(dnstest.Forward)
	rec := dns.Record{Zone: dnstest.Forward, Name: "fail.example.test", Type: "A", Value: "192.0.2.60"}

	wrongSecret := good
	wrongSecret.Secret = "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZyE="
	unknownKey := good
	unknownKey.KeyName = "no-such-key"
	notAllowed := good
	notAllowed.KeyName = dnstest.OtherKeyName
	notAllowed.Secret = s.OtherSecret
	wrongAlg := good
	wrongAlg.Algorithm = "hmac-sha512"
	notServed := good
	notServed.Name = "not-served.test"
	badConfig := good
	badConfig.Secret = "%%% not base64 %%%"

	tests := []struct {
		name      string
		zone      dns.Zone
		now       func() time.Time
		wantKind  dns.Kind
		wantShort string
		checkKind dns.Kind // what Check says ("" = same as wantKind)
	}{
		{"wrong secret", wrongSecret, nil, dns.KindBadSig, "NOTAUTH (BADSIG)", ""},
		{"unknown key name", unknownKey, nil, dns.KindBadKey, "NOTAUTH (BADKEY)", ""},
		// BIND knows the key name but with another algorithm: it treats it as an unknown key.
		{"wrong algorithm", wrongAlg, nil, dns.KindBadKey, "NOTAUTH (BADKEY)", ""},
		{"key not allowed to update", notAllowed, nil, dns.KindRefused, "REFUSED", ""},
		{"clock off by an hour", good, func() time.Time { return time.Now().Add(-time.Hour) }, dns.KindBadTime, "NOTAUTH (BADTIME)", ""},
		// The update says NOTAUTH; Check stops earlier: BIND refuses the SOA query for a zone it does not serve.
		{"zone not served", notServed, nil, dns.KindNotAuth, "NOTAUTH", dns.KindRefused},
		{"secret not base64", badConfig, nil, dns.KindConfig, "config: dns zone example.test: TSIG secret is not valid base64 (18 characters)", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := ctxT(t)
			u := dns.NewUpdater([]dns.Zone{tt.zone})
			u.Now = tt.now
			r := rec
			r.Zone = tt.zone.Name
			r.Name = "fail." + tt.zone.Name
			err := u.Publish(ctx, r)
			require.Error(t, err)
			require.Equal(t, tt.wantKind, dns.KindOf(err), "%v", err)
			require.Equal(t, tt.wantShort, dns.ShortError(err))
			line := dns.Line(dns.ActionPublish, r, err)
			require.Equal(t, fmt.Sprintf("· fwd ERR %s A 192.0.2.60 (zone %s): %s", r.Name, tt.zone.Name, tt.wantShort), line)

			delErr := u.Delete(ctx, r)
			require.Equal(t, tt.wantKind, dns.KindOf(delErr), "%v", delErr)
			require.True(t, strings.HasPrefix(dns.Line(dns.ActionDelete, r, delErr), "· fwd-del ERR "))

			checkErr := u.Check(ctx, tt.zone.Name)
			wantCheck := tt.checkKind
			if wantCheck == "" {
				wantCheck = tt.wantKind
			}
			require.Equal(t, wantCheck, dns.KindOf(checkErr), "%v", checkErr)

			for _, e := range []error{err, delErr, checkErr} {
				for _, str := range []string{e.Error(), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e), line} {
					require.NotContains(t, str, tt.zone.Secret)
					require.NotContains(t, str, s.Secret)
					require.NotContains(t, str, s.OtherSecret)
				}
			}
			if tt.zone.Name == dnstest.Forward {
				got, qerr := dns.NewUpdater(s.DNSZones()).Query(ctx, dnstest.Forward, r.Name, "A")
				require.NoError(t, qerr)
				require.Empty(t, got, "a failed update must change nothing")
			}
		})
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	s := dnstest.Start(t)
	ctx := ctxT(t)
	u := dns.NewUpdater(s.DNSZones())
	for _, z := range s.Zones {
		require.NoError(t, u.Check(ctx, z), z)
	}
	// Check changes nothing.
	require.Empty(t, inZone(t, s, dnstest.Forward, dns.CheckName+"."+dnstest.Forward))
	err := u.Check(ctx, "unknown.test")
	require.Equal(t, dns.KindConfig, dns.KindOf(err))
	require.Equal(t, "dns check unknown.test: config: zone is not configured", err.Error())
}

func TestServerDownThenBack(t *testing.T) {
	t.Parallel()
	s := dnstest.Start(t)
	ctx := ctxT(t)
	u := dns.NewUpdater(s.DNSZones())
	u.Timeout = 500 * time.Millisecond
	before := dns.Record{Zone: dnstest.Forward, Name: "before.example.test", Type: "A", Value: "192.0.2.70"}
	require.NoError(t, u.Publish(ctx, before))

	s.Stop()
	require.Zero(t, s.PID())
	recs := dns.Plan(s.DNSZones(), "later.example.test", []netip.Addr{netip.MustParseAddr("192.0.2.71")})
	for _, r := range recs {
		err := u.Publish(ctx, r)
		require.Error(t, err)
		kind := dns.KindOf(err)
		// Loopback UDP to a closed port gets ICMP port unreachable at once.
		require.Contains(t, []dns.Kind{dns.KindUnreachable, dns.KindTimeout}, kind, "%v", err)
		require.True(t, err.(*dns.Error).Temporary())
		line := dns.Line(dns.ActionPublish, r, err)
		require.Contains(t, line, " ERR ")
		require.Regexp(t, `: (unreachable \(connection refused\)|timeout)$`, line)
	}
	require.Contains(t, []dns.Kind{dns.KindUnreachable, dns.KindTimeout}, dns.KindOf(u.Check(ctx, dnstest.Forward)))

	s.Restart()
	// Published before the outage: kept (journal).
	got, err := u.Query(ctx, dnstest.Forward, before.Name, "A")
	require.NoError(t, err)
	require.Equal(t, []string{"192.0.2.70"}, values(got))
	// The retry succeeds.
	for _, r := range recs {
		require.NoError(t, u.Publish(ctx, r))
		got, err := u.Query(ctx, r.Zone, r.Name, r.Type)
		require.NoError(t, err)
		require.Equal(t, []string{r.Value}, values(got))
	}
	require.NoError(t, u.Check(ctx, dnstest.Forward))
}

// A server that never answers: the error is a timeout, within the configured timeout.
func TestTimeout(t *testing.T) {
	t.Parallel()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = pc.Close() })
	go func() { // read and drop
		buf := make([]byte, 4096)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	z := dns.Zone{Name: "example.test", Server: pc.LocalAddr().String(), KeyName: "k", Secret: "c2VjcmV0c2VjcmV0c2VjcmV0"}
	u := dns.NewUpdater([]dns.Zone{z})
	u.Timeout = 200 * time.Millisecond
	rec := dns.Record{Zone: "example.test", Name: "t.example.test", Type: "A", Value: "192.0.2.80"}

	err = u.Publish(context.Background(), rec)
	require.Equal(t, dns.KindTimeout, dns.KindOf(err), "%v", err)
	require.Equal(t, "· fwd ERR t.example.test A 192.0.2.80 (zone example.test): timeout", dns.Line(dns.ActionPublish, rec, err))
	require.Equal(t, dns.KindTimeout, dns.KindOf(u.Check(context.Background(), "example.test")))

	// A context deadline shorter than the timeout wins.
	u.Timeout = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = u.Query(ctx, "example.test", "t.example.test", "A")
	require.Equal(t, dns.KindTimeout, dns.KindOf(err), "%v", err)

	// A canceled context sends nothing.
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	require.Equal(t, dns.KindCanceled, dns.KindOf(u.Publish(ctx, rec)))
}

// An answer too big for UDP comes back truncated; Query retries over TCP.
func TestTCPFallback(t *testing.T) {
	t.Parallel()
	s := dnstest.Start(t)
	ctx := ctxT(t)
	const n = 40
	var rrs []string
	for i := 0; i < n; i++ {
		rrs = append(rrs, fmt.Sprintf(`big.example.test. 300 IN TXT "%03d %s"`, i, strings.Repeat("x", 200)))
	}
	s.AddRR(t, dnstest.Forward, rrs...)

	// Over UDP alone the answer is truncated.
	m := new(mdns.Msg)
	m.SetQuestion("big.example.test.", mdns.TypeTXT)
	m.SetEdns0(4096, false)
	r, _, err := (&mdns.Client{Net: "udp", Timeout: 2 * time.Second, UDPSize: 4096}).Exchange(m, s.Addr)
	require.NoError(t, err)
	require.True(t, r.Truncated)

	u := dns.NewUpdater(s.DNSZones())
	got, err := u.Query(ctx, dnstest.Forward, "big.example.test", "TXT")
	require.NoError(t, err)
	require.Len(t, got, n)
}

func TestAlgorithms(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{"hmac-sha512", "hmac-sha1", "hmac-sha256"} {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			s := dnstest.StartWith(t, dnstest.Options{Algorithm: alg, Zones: []string{dnstest.Forward, dnstest.Reverse6}})
			ctx := ctxT(t)
			zones := s.DNSZones()
			require.Equal(t, alg, zones[0].Algorithm)
			u := dns.NewUpdater(zones)
			require.NoError(t, u.Check(ctx, dnstest.Forward))
			recs := dns.Plan(zones, "alg.example.test", []netip.Addr{netip.MustParseAddr("2001:db8::90")})
			require.Len(t, recs, 2)
			for _, r := range recs {
				require.NoError(t, u.Publish(ctx, r))
				got, err := u.Query(ctx, r.Zone, r.Name, r.Type)
				require.NoError(t, err)
				require.Equal(t, []string{r.Value}, values(got))
				require.NoError(t, u.Delete(ctx, r))
			}
		})
	}
}

// With the restrictive update-policy docs/dns.md suggests, Check passes and pvectl's records can
// be written, while other types are refused.
func TestUpdatePolicy(t *testing.T) {
	t.Parallel()
	s := dnstest.StartWith(t, dnstest.Options{UpdatePolicy: true})
	ctx := ctxT(t)
	u := dns.NewUpdater(s.DNSZones())
	for _, z := range s.Zones {
		require.NoError(t, u.Check(ctx, z), z)
	}
	recs := dns.Plan(s.DNSZones(), "policy.example.test", []netip.Addr{netip.MustParseAddr("192.0.2.100"), netip.MustParseAddr("2001:db8::100")})
	require.Len(t, recs, 4)
	for _, r := range recs {
		require.NoError(t, u.Publish(ctx, r), "%s", r)
		require.NoError(t, u.Delete(ctx, r), "%s", r)
	}
	txt := dns.Record{Zone: dnstest.Forward, Name: "policy.example.test", Type: "TXT", Value: `"x"`}
	err := u.Publish(ctx, txt)
	require.Equal(t, dns.KindRefused, dns.KindOf(err), "%v", err)
	require.Equal(t, `· fwd ERR policy.example.test TXT "x" (zone example.test): REFUSED`, dns.Line(dns.ActionPublish, txt, err))
}
