// Package dns publishes a VM's forward (A/AAAA) and reverse (PTR) records by RFC 2136 dynamic
// update, signed with TSIG, using github.com/miekg/dns.
//
// The package has its own plain types and imports nothing else of pvectl:
//
//   - Zone is one configured zone: its name, the server that accepts updates for it and the
//     TSIG key. A zone is reverse when its name ends in in-addr.arpa or ip6.arpa.
//   - Record is one resource record pvectl publishes (or published) in one zone.
//   - Plan computes the records of a VM: A/AAAA for each address in every forward zone that is
//     a suffix of the FQDN, and a PTR for each address in every reverse zone containing it.
//   - Updater sends the updates (Publish, Delete), checks a zone (Check) and reads what a
//     server answers now (Query). Its errors are *Error values with a Kind the caller can act on.
//   - Line formats the live log line of one outcome ("· fwd OK www.example.com A 192.0.2.10
//     (zone example.com)").
//
// The TSIG secret never appears in any string this package produces.
package dns

import (
	"fmt"
	"net/netip"
	"strings"
)

// DefaultTTL is the TTL Plan gives records, and the TTL Publish uses for a record with TTL 0.
const DefaultTTL uint32 = 300

// DefaultAlgorithm is the TSIG algorithm used when Zone.Algorithm is empty.
const DefaultAlgorithm = "hmac-sha256"

// Zone is one DNS zone pvectl may update.
type Zone struct {
	Name      string // zone apex, e.g. "example.com" or "2.0.192.in-addr.arpa"; trailing dot optional
	Server    string // host:port of the primary that accepts updates, e.g. "192.0.2.53:53"
	KeyName   string // TSIG key name, e.g. "pvectl-key"
	Algorithm string // hmac-sha256 (default), hmac-sha512, hmac-sha384, hmac-sha224 or hmac-sha1
	Secret    string // base64 TSIG secret; never printed
}

// String describes the zone without its secret.
func (z Zone) String() string {
	secret := "none"
	if z.Secret != "" {
		secret = "[redacted]"
	}
	return fmt.Sprintf("zone %s server %s key %s algorithm %s secret %s",
		Normalize(z.Name), z.Server, Normalize(z.KeyName), z.algorithm(), secret)
}

// GoString is String, so that %#v does not print the secret either.
func (z Zone) GoString() string { return "dns.Zone{" + z.String() + "}" }

// IsReverse reports whether the zone is a reverse zone (in-addr.arpa or ip6.arpa).
func (z Zone) IsReverse() bool { return IsReverseName(z.Name) }

// Validate checks the zone's fields: a name, a host:port server, a key name, a known algorithm
// and a base64 secret. Its error never contains the secret.
func (z Zone) Validate() error {
	name := Normalize(z.Name)
	switch {
	case name == "":
		return fmt.Errorf("dns zone: empty name")
	case z.Server == "":
		return fmt.Errorf("dns zone %s: empty server (want host:port)", name)
	case !strings.Contains(z.Server, ":"):
		return fmt.Errorf("dns zone %s: server %q has no port (want host:port, e.g. %s:53)", name, z.Server, z.Server)
	case Normalize(z.KeyName) == "":
		return fmt.Errorf("dns zone %s: empty TSIG key name", name)
	case z.Secret == "":
		return fmt.Errorf("dns zone %s: empty TSIG secret", name)
	}
	if _, err := canonicalAlgorithm(z.Algorithm); err != nil {
		return fmt.Errorf("dns zone %s: %w", name, err)
	}
	if _, err := decodeSecret(z.Secret); err != nil {
		return fmt.Errorf("dns zone %s: %w", name, err)
	}
	return nil
}

func (z Zone) algorithm() string {
	a, err := canonicalAlgorithm(z.Algorithm)
	if err != nil {
		return strings.ToLower(z.Algorithm) + "(unsupported)"
	}
	return strings.TrimSuffix(a, ".")
}

// Record is one resource record in one zone.
type Record struct {
	Zone  string // the zone the record is published in, e.g. "example.com"
	Name  string // owner name, e.g. "www.example.com" or "10.2.0.192.in-addr.arpa"
	Type  string // "A", "AAAA" or "PTR" (other types are accepted in presentation format)
	Value string // an address for A/AAAA, the target FQDN for PTR
	TTL   uint32 // 0 means DefaultTTL
}

// String is "NAME TYPE VALUE", e.g. "www.example.com A 192.0.2.10".
func (r Record) String() string {
	return Normalize(r.Name) + " " + strings.ToUpper(r.Type) + " " + r.Value
}

// IsReverse reports whether the record belongs to a reverse zone (a PTR, normally).
func (r Record) IsReverse() bool {
	if r.Zone != "" {
		return IsReverseName(r.Zone)
	}
	return IsReverseName(r.Name)
}

// Key identifies the RR regardless of TTL and letter case: two records with equal keys are the
// same RR in DNS terms.
func (r Record) Key() string {
	v := strings.TrimSpace(r.Value)
	switch strings.ToUpper(r.Type) {
	case "PTR", "CNAME", "NS":
		v = Normalize(v)
	case "A", "AAAA":
		if ip, err := netip.ParseAddr(v); err == nil {
			v = ip.Unmap().String()
		}
	}
	return Normalize(r.Zone) + "|" + Normalize(r.Name) + "|" + strings.ToUpper(r.Type) + "|" + v
}

// Normalize lowercases a domain name and removes surrounding spaces and trailing dots.
func Normalize(name string) string {
	return strings.TrimRight(strings.ToLower(strings.TrimSpace(name)), ".")
}

// InZone reports whether name is the zone apex or below it, on a label boundary:
// "www.example.test" is in "example.test", "badexample.test" is not. Case and trailing dots are
// ignored. An empty zone name contains nothing.
func InZone(name, zone string) bool {
	n, z := Normalize(name), Normalize(zone)
	if z == "" || n == "" {
		return false
	}
	return n == z || strings.HasSuffix(n, "."+z)
}

// IsReverseName reports whether name is in in-addr.arpa or ip6.arpa.
func IsReverseName(name string) bool {
	return InZone(name, "in-addr.arpa") || InZone(name, "ip6.arpa")
}
