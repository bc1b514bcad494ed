package dns

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

const testSecret = "c3VwZXItc2VjcmV0LXRzaWcta2V5LWRvLW5vdC1wcmludA=="

func TestReverseName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want string
	}{
		{"192.0.2.10", "10.2.0.192.in-addr.arpa"},
		{"10.0.0.1", "1.0.0.10.in-addr.arpa"},
		{"255.255.255.255", "255.255.255.255.in-addr.arpa"},
		{"2001:db8::1", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"},
		{"2001:0db8:0000:0000:0000:0000:0000:0001", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"},
		{"2001:DB8::ABCD:12", "2.1.0.0.d.c.b.a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"},
		{"::1", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa"},
		{"fe80::1%eth0", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.e.f.ip6.arpa"},
		// IPv4-mapped IPv6 is the IPv4 address it maps.
		{"::ffff:192.0.2.10", "10.2.0.192.in-addr.arpa"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			ip := netip.MustParseAddr(tt.in)
			got := ReverseName(ip)
			require.Equal(t, tt.want, got)
			// Cross-check with miekg/dns's own implementation (which ignores zones and mapping).
			if ip.Zone() == "" && !ip.Is4In6() {
				want, err := mdns.ReverseAddr(ip.String())
				require.NoError(t, err)
				require.Equal(t, want, got+".")
			}
		})
	}
	require.Equal(t, "", ReverseName(netip.Addr{}))
}

func TestInZone(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, zone string
		want       bool
	}{
		{"www.example.test", "example.test", true},
		{"example.test", "example.test", true},
		{"WWW.Example.Test.", "example.test", true},
		{"www.example.test", "EXAMPLE.TEST.", true},
		{"a.b.c.example.test", "example.test", true},
		{"badexample.test", "example.test", false}, // label boundary
		{"www.badexample.test", "example.test", false},
		{"example.test", "www.example.test", false},
		{"example.testing", "example.test", false},
		{"www.example.test", "test", true},
		{"www.example.test", "", false},
		{"", "example.test", false},
		{"10.2.0.192.in-addr.arpa", "2.0.192.in-addr.arpa", true},
		{"10.12.0.192.in-addr.arpa", "2.0.192.in-addr.arpa", false}, // octet boundary: 192.0.12.x
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, InZone(tt.name, tt.zone), "InZone(%q, %q)", tt.name, tt.zone)
	}
}

func zones(names ...string) []Zone {
	out := make([]Zone, 0, len(names))
	for _, n := range names {
		out = append(out, Zone{Name: n, Server: "127.0.0.1:53", KeyName: "k", Secret: testSecret})
	}
	return out
}

func names(zs []Zone) []string {
	out := make([]string, 0, len(zs))
	for _, z := range zs {
		out = append(out, Normalize(z.Name))
	}
	return out
}

func TestMatchForward(t *testing.T) {
	t.Parallel()
	all := zones("example.test", "cust.example.test.", "badexample.test", "test", "Example.Test",
		"2.0.192.in-addr.arpa", "8.b.d.0.1.0.0.2.ip6.arpa", "other.test")
	tests := []struct {
		fqdn string
		want []string
	}{
		{"www.cust.example.test", []string{"example.test", "cust.example.test", "test"}},
		{"www.example.test.", []string{"example.test", "test"}},
		{"WWW.EXAMPLE.TEST", []string{"example.test", "test"}},
		{"badexample.test", []string{"badexample.test", "test"}},
		{"host.badexample.test", []string{"badexample.test", "test"}},
		{"example.org", nil},
		{"test", []string{"test"}},
		{"2.0.192.in-addr.arpa", nil}, // reverse zones never take forward records
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, nilIfEmpty(names(MatchForward(all, tt.fqdn))), tt.fqdn)
	}
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestMatchReverse(t *testing.T) {
	t.Parallel()
	all := zones("example.test", "2.0.192.in-addr.arpa", "0.192.in-addr.arpa", "192.in-addr.arpa.",
		"12.0.192.in-addr.arpa", "8.b.d.0.1.0.0.2.ip6.arpa", "0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa", "9.b.d.0.1.0.0.2.ip6.arpa",
		"0/26.2.0.192.in-addr.arpa")
	tests := []struct {
		ip   string
		want []string
	}{
		{"192.0.2.10", []string{"2.0.192.in-addr.arpa", "0.192.in-addr.arpa", "192.in-addr.arpa"}},
		{"192.0.12.1", []string{"0.192.in-addr.arpa", "192.in-addr.arpa", "12.0.192.in-addr.arpa"}},
		{"::ffff:192.0.2.10", []string{"2.0.192.in-addr.arpa", "0.192.in-addr.arpa", "192.in-addr.arpa"}},
		{"198.51.100.1", nil},
		{"2001:db8::1", []string{"8.b.d.0.1.0.0.2.ip6.arpa", "0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"}},
		{"2001:db8:1::1", []string{"8.b.d.0.1.0.0.2.ip6.arpa"}},
		{"2001:db9::1", []string{"9.b.d.0.1.0.0.2.ip6.arpa"}},
		{"2001:db80::1", nil}, // 2001:db80::/32 shares no nibble boundary with 2001:db8::/32
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, nilIfEmpty(names(MatchReverse(all, netip.MustParseAddr(tt.ip)))), tt.ip)
	}
	require.Nil(t, MatchReverse(all, netip.Addr{}))
}

func TestPlan(t *testing.T) {
	t.Parallel()
	all := zones("example.test", "cust.example.test", "2.0.192.in-addr.arpa", "8.b.d.0.1.0.0.2.ip6.arpa", "example.test")
	ips := []netip.Addr{
		netip.MustParseAddr("192.0.2.10"),
		netip.MustParseAddr("2001:0db8:0000:0000:0000:0000:0000:0010"),
		netip.MustParseAddr("::ffff:192.0.2.10"), // duplicate of the first once unmapped
		netip.MustParseAddr("198.51.100.7"),      // no reverse zone
		{},
	}
	got := Plan(all, "WWW.cust.example.test.", ips)
	want := []Record{
		{Zone: "example.test", Name: "www.cust.example.test", Type: "A", Value: "192.0.2.10", TTL: DefaultTTL},
		{Zone: "cust.example.test", Name: "www.cust.example.test", Type: "A", Value: "192.0.2.10", TTL: DefaultTTL},
		{Zone: "example.test", Name: "www.cust.example.test", Type: "AAAA", Value: "2001:db8::10", TTL: DefaultTTL},
		{Zone: "cust.example.test", Name: "www.cust.example.test", Type: "AAAA", Value: "2001:db8::10", TTL: DefaultTTL},
		{Zone: "example.test", Name: "www.cust.example.test", Type: "A", Value: "198.51.100.7", TTL: DefaultTTL},
		{Zone: "cust.example.test", Name: "www.cust.example.test", Type: "A", Value: "198.51.100.7", TTL: DefaultTTL},
		{Zone: "2.0.192.in-addr.arpa", Name: "10.2.0.192.in-addr.arpa", Type: "PTR", Value: "www.cust.example.test", TTL: DefaultTTL},
		{Zone: "8.b.d.0.1.0.0.2.ip6.arpa", Name: "0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa", Type: "PTR", Value: "www.cust.example.test", TTL: DefaultTTL},
	}
	require.Equal(t, want, got)

	require.Nil(t, Plan(all, "", ips))
	require.Nil(t, Plan(all, "host.example.org", nil))
	// No forward zone: only PTRs.
	require.Equal(t, []Record{{Zone: "2.0.192.in-addr.arpa", Name: "1.2.0.192.in-addr.arpa", Type: "PTR", Value: "host.example.org", TTL: DefaultTTL}},
		Plan(all, "host.example.org", []netip.Addr{netip.MustParseAddr("192.0.2.1")}))
	// Compressed and expanded input plan the same records.
	require.Equal(t,
		Plan(all, "h.example.test", []netip.Addr{netip.MustParseAddr("2001:db8::1")}),
		Plan(all, "h.example.test", []netip.Addr{netip.MustParseAddr("2001:0db8:0:0:0:0:0:0001")}))
}

func TestDiff(t *testing.T) {
	t.Parallel()
	a := Record{Zone: "example.test", Name: "www.example.test", Type: "A", Value: "192.0.2.1", TTL: 300}
	b := Record{Zone: "example.test", Name: "www.example.test", Type: "A", Value: "192.0.2.2", TTL: 300}
	c := Record{Zone: "example.test", Name: "www.example.test", Type: "AAAA", Value: "2001:db8::3", TTL: 300}
	cExpanded := Record{Zone: "Example.Test.", Name: "WWW.example.test.", Type: "aaaa", Value: "2001:0db8::0003", TTL: 60}
	del, pub := Diff([]Record{a, b, cExpanded}, []Record{b, c, c})
	require.Equal(t, []Record{a}, del)
	require.Equal(t, []Record{b, c}, pub)
	del, pub = Diff(nil, nil)
	require.Nil(t, del)
	require.Nil(t, pub)
}

func TestZoneNeverPrintsSecret(t *testing.T) {
	t.Parallel()
	z := Zone{Name: "example.test.", Server: "192.0.2.53:53", KeyName: "pvectl-key", Secret: testSecret}
	for _, s := range []string{
		z.String(), fmt.Sprint(z), fmt.Sprintf("%v", z), fmt.Sprintf("%+v", z), fmt.Sprintf("%#v", z),
		fmt.Sprintf("%s", []Zone{z}), fmt.Sprintf("%+v", &z),
	} {
		require.NotContains(t, s, testSecret)
		require.NotContains(t, s, testSecret[:12])
		require.Contains(t, s, "[redacted]")
	}
	require.Equal(t, "zone example.test server 192.0.2.53:53 key pvectl-key algorithm hmac-sha256 secret [redacted]", z.String())
}

func TestZoneValidate(t *testing.T) {
	t.Parallel()
	good := Zone{Name: "example.test", Server: "127.0.0.1:53", KeyName: "k", Secret: testSecret}
	require.NoError(t, good.Validate())
	for _, alg := range []string{"", "hmac-sha256", "HMAC-SHA512.", "sha1", "hmac-sha384", "hmac-sha224"} {
		z := good
		z.Algorithm = alg
		require.NoError(t, z.Validate(), alg)
	}
	tests := []struct {
		mut  func(*Zone)
		want string
	}{
		{func(z *Zone) { z.Name = "." }, "empty name"},
		{func(z *Zone) { z.Server = "" }, "empty server"},
		{func(z *Zone) { z.Server = "ns1.example.test" }, "no port"},
		{func(z *Zone) { z.KeyName = "" }, "empty TSIG key name"},
		{func(z *Zone) { z.Secret = "" }, "empty TSIG secret"},
		{func(z *Zone) { z.Algorithm = "hmac-md5" }, "unsupported TSIG algorithm"},
		{func(z *Zone) { z.Secret = testSecret + "!!notbase64" }, "not valid base64"},
	}
	for _, tt := range tests {
		z := good
		tt.mut(&z)
		err := z.Validate()
		require.ErrorContains(t, err, tt.want)
		require.NotContains(t, err.Error(), testSecret[:12])
	}
}

func TestLine(t *testing.T) {
	t.Parallel()
	fwd := Record{Zone: "example.com", Name: "www.example.com", Type: "A", Value: "192.0.2.10"}
	rev := Record{Zone: "2.0.192.in-addr.arpa", Name: "10.2.0.192.in-addr.arpa", Type: "PTR", Value: "www.example.com"}
	badsig := &Error{Op: "update", Zone: "example.com", Server: "192.0.2.53:53", Kind: KindBadSig, Rcode: mdns.RcodeNotAuth, TSIGError: mdns.RcodeBadSig}
	tests := []struct {
		a    Action
		rec  Record
		err  error
		want string
	}{
		{ActionPublish, fwd, nil, "· fwd OK www.example.com A 192.0.2.10 (zone example.com)"},
		{ActionPublish, rev, nil, "· rev OK 10.2.0.192.in-addr.arpa PTR www.example.com (zone 2.0.192.in-addr.arpa)"},
		{ActionPublish, fwd, badsig, "· fwd ERR www.example.com A 192.0.2.10 (zone example.com): NOTAUTH (BADSIG)"},
		{ActionPublish, fwd, fmt.Errorf("step: %w", badsig), "· fwd ERR www.example.com A 192.0.2.10 (zone example.com): NOTAUTH (BADSIG)"},
		{ActionPublish, rev, &Error{Kind: KindRefused, Rcode: mdns.RcodeRefused}, "· rev ERR 10.2.0.192.in-addr.arpa PTR www.example.com (zone 2.0.192.in-addr.arpa): REFUSED"},
		{ActionDelete, fwd, nil, "· fwd-del OK www.example.com A 192.0.2.10 (zone example.com)"},
		{ActionDelete, rev, nil, "· rev-del OK 10.2.0.192.in-addr.arpa PTR www.example.com (zone 2.0.192.in-addr.arpa)"},
		{ActionDelete, rev, &Error{Kind: KindTimeout, Rcode: -1}, "· rev-del ERR 10.2.0.192.in-addr.arpa PTR www.example.com (zone 2.0.192.in-addr.arpa): timeout"},
		{ActionDelete, fwd, errors.New("boom"), "· fwd-del ERR www.example.com A 192.0.2.10 (zone example.com): boom"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, Line(tt.a, tt.rec, tt.err))
	}
}

func TestErrorShort(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  *Error
		want string
	}{
		{&Error{Kind: KindBadKey, Rcode: mdns.RcodeNotAuth}, "NOTAUTH (BADKEY)"},
		{&Error{Kind: KindBadTime, Rcode: mdns.RcodeNotAuth}, "NOTAUTH (BADTIME)"},
		{&Error{Kind: KindNotAuth, Rcode: mdns.RcodeNotAuth}, "NOTAUTH"},
		{&Error{Kind: KindNotZone, Rcode: mdns.RcodeNotZone}, "NOTZONE"},
		{&Error{Kind: KindServFail, Rcode: mdns.RcodeServerFailure}, "SERVFAIL"},
		{&Error{Kind: KindRcode, Rcode: mdns.RcodeYXDomain}, "YXDOMAIN"},
		{&Error{Kind: KindRcode, Rcode: 3841}, "RCODE3841"},
		{&Error{Kind: KindConfig, Rcode: -1, Msg: "zone is not configured"}, "config: zone is not configured"},
		{&Error{Kind: KindUnreachable, Rcode: -1}, "unreachable"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, tt.err.Short())
	}
	e := &Error{Op: "update", Zone: "example.com", Server: "192.0.2.53:53", Kind: KindTimeout, Rcode: -1, Err: errors.New("i/o timeout")}
	require.Equal(t, "dns update example.com via 192.0.2.53:53: timeout (i/o timeout)", e.Error())
	require.True(t, e.Temporary())
	require.Equal(t, KindTimeout, KindOf(fmt.Errorf("wrapped: %w", e)))
	require.Equal(t, Kind(""), KindOf(errors.New("x")))
	require.False(t, (&Error{Kind: KindBadSig}).Temporary())
}

func TestBuildRR(t *testing.T) {
	t.Parallel()
	z := Zone{Name: "example.test", Server: "127.0.0.1:53", KeyName: "k", Secret: testSecret}
	rz := Zone{Name: "8.b.d.0.1.0.0.2.ip6.arpa", Server: "127.0.0.1:53", KeyName: "k", Secret: testSecret}
	tests := []struct {
		z       Zone
		rec     Record
		want    string
		wantErr string
	}{
		{z, Record{Name: "WWW.example.test.", Type: "a", Value: "192.0.2.1"}, "www.example.test.\t300\tIN\tA\t192.0.2.1", ""},
		{z, Record{Name: "www.example.test", Type: "A", Value: "::ffff:192.0.2.1", TTL: 60}, "www.example.test.\t60\tIN\tA\t192.0.2.1", ""},
		{z, Record{Name: "www.example.test", Type: "AAAA", Value: "2001:0db8::0001"}, "www.example.test.\t300\tIN\tAAAA\t2001:db8::1", ""},
		{rz, Record{Name: ReverseName(netip.MustParseAddr("2001:db8::1")), Type: "PTR", Value: "WWW.example.test"}, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.\t300\tIN\tPTR\twww.example.test.", ""},
		{z, Record{Name: "www.example.test", Type: "TXT", Value: `"hello"`}, "www.example.test.\t300\tIN\tTXT\t\"hello\"", ""},
		{z, Record{Name: "www.badexample.test", Type: "A", Value: "192.0.2.1"}, "", "outside zone"},
		{z, Record{Name: "www.example.test", Type: "A", Value: "2001:db8::1"}, "", "not an IPv4 address"},
		{z, Record{Name: "www.example.test", Type: "AAAA", Value: "192.0.2.1"}, "", "not an IPv6 address"},
		{z, Record{Name: "www.example.test", Type: "A", Value: "nope"}, "", "invalid address"},
		{z, Record{Name: "www.example.test", Type: "", Value: "x"}, "", "empty type"},
		{rz, Record{Name: ReverseName(netip.MustParseAddr("2001:db8::1")), Type: "PTR", Value: ""}, "", "empty target"},
	}
	for _, tt := range tests {
		rr, err := buildRR(tt.z, tt.rec)
		if tt.wantErr != "" {
			require.ErrorContains(t, err, tt.wantErr)
			require.Equal(t, KindConfig, KindOf(err))
			continue
		}
		require.NoError(t, err)
		require.Equal(t, tt.want, rr.String())
	}
}

func TestCanonicalAlgorithm(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"": mdns.HmacSHA256, "hmac-sha256": mdns.HmacSHA256, "HMAC-SHA512.": mdns.HmacSHA512,
		"sha1": mdns.HmacSHA1, "hmac-sha1": mdns.HmacSHA1,
	} {
		got, err := canonicalAlgorithm(in)
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
	_, err := canonicalAlgorithm("hmac-md5.sig-alg.reg.int")
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), "unsupported"))
}
