package dns

import (
	"net/netip"
	"strconv"
	"strings"
)

// ReverseName returns the reverse-lookup name of an address, without a trailing dot:
// "10.2.0.192.in-addr.arpa" for 192.0.2.10 and the 32-nibble ip6.arpa name for an IPv6 address
// (compressed or expanded input give the same name). An IPv4-mapped IPv6 address
// (::ffff:192.0.2.10) is treated as the IPv4 address it maps; an IPv6 zone (%eth0) is ignored.
// It returns "" for the zero Addr.
func ReverseName(ip netip.Addr) string {
	if !ip.IsValid() {
		return ""
	}
	ip = ip.WithZone("").Unmap()
	var b strings.Builder
	if ip.Is4() {
		a := ip.As4()
		for i := len(a) - 1; i >= 0; i-- {
			b.WriteString(strconv.Itoa(int(a[i])))
			b.WriteByte('.')
		}
		b.WriteString("in-addr.arpa")
		return b.String()
	}
	const hexdigits = "0123456789abcdef"
	a := ip.As16()
	for i := len(a) - 1; i >= 0; i-- {
		b.WriteByte(hexdigits[a[i]&0x0f])
		b.WriteByte('.')
		b.WriteByte(hexdigits[a[i]>>4])
		b.WriteByte('.')
	}
	b.WriteString("ip6.arpa")
	return b.String()
}

// MatchForward returns every forward zone whose name is a suffix of fqdn on a label boundary,
// in the order given, without duplicate zone names. Reverse zones never match.
func MatchForward(zones []Zone, fqdn string) []Zone {
	var out []Zone
	seen := map[string]bool{}
	for _, z := range zones {
		n := Normalize(z.Name)
		if z.IsReverse() || seen[n] || !InZone(fqdn, n) {
			continue
		}
		seen[n] = true
		out = append(out, z)
	}
	return out
}

// MatchReverse returns every reverse zone that contains the address (IPv4 on octet boundaries,
// IPv6 on nibble boundaries), in the order given, without duplicate zone names.
// Classless (RFC 2317) delegations such as "0/26.2.0.192.in-addr.arpa" are not matched.
func MatchReverse(zones []Zone, ip netip.Addr) []Zone {
	rev := ReverseName(ip)
	if rev == "" {
		return nil
	}
	var out []Zone
	seen := map[string]bool{}
	for _, z := range zones {
		n := Normalize(z.Name)
		if !z.IsReverse() || seen[n] || !InZone(rev, n) {
			continue
		}
		seen[n] = true
		out = append(out, z)
	}
	return out
}

// Plan returns the records a VM named fqdn with the addresses ips should have: for each
// address an A (IPv4) or AAAA (IPv6) record in every matching forward zone, then for each
// address a PTR pointing at fqdn in every reverse zone containing it. Records carry DefaultTTL.
// Duplicate and invalid addresses are ignored; IPv4-mapped IPv6 addresses count as IPv4.
// Names are normalised (lower case, no trailing dot). An empty fqdn gives no records.
func Plan(zones []Zone, fqdn string, ips []netip.Addr) []Record {
	host := Normalize(fqdn)
	if host == "" {
		return nil
	}
	var addrs []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, ip := range ips {
		if !ip.IsValid() {
			continue
		}
		ip = ip.WithZone("").Unmap()
		if seen[ip] {
			continue
		}
		seen[ip] = true
		addrs = append(addrs, ip)
	}
	var out []Record
	fwd := MatchForward(zones, host)
	for _, ip := range addrs {
		typ := "AAAA"
		if ip.Is4() {
			typ = "A"
		}
		for _, z := range fwd {
			out = append(out, Record{Zone: Normalize(z.Name), Name: host, Type: typ, Value: ip.String(), TTL: DefaultTTL})
		}
	}
	for _, ip := range addrs {
		for _, z := range MatchReverse(zones, ip) {
			out = append(out, Record{Zone: Normalize(z.Name), Name: ReverseName(ip), Type: "PTR", Value: host, TTL: DefaultTTL})
		}
	}
	return out
}

// Diff compares what was published with what is wanted now. toDelete holds the published
// records that are no longer wanted; toPublish holds every wanted record (publishing is
// idempotent, so records already present are simply re-asserted). Records are compared by Key,
// so TTL and letter case do not matter.
func Diff(published, wanted []Record) (toDelete, toPublish []Record) {
	want := map[string]bool{}
	for _, r := range wanted {
		if !want[r.Key()] {
			want[r.Key()] = true
			toPublish = append(toPublish, r)
		}
	}
	gone := map[string]bool{}
	for _, r := range published {
		k := r.Key()
		if !want[k] && !gone[k] {
			gone[k] = true
			toDelete = append(toDelete, r)
		}
	}
	return toDelete, toPublish
}
