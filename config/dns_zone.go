package config

import "strings"

// isReverseZone reports whether a zone name is in in-addr.arpa or ip6.arpa.
func isReverseZone(name string) bool {
	n := strings.TrimRight(strings.ToLower(strings.TrimSpace(name)), ".")
	for _, suffix := range []string{"in-addr.arpa", "ip6.arpa"} {
		if n == suffix || strings.HasSuffix(n, "."+suffix) {
			return true
		}
	}
	return false
}

// ApexAllowed reports whether the configured forward zone named zone (case and a trailing dot
// ignored) has allow_apex: true.
func (d DNS) ApexAllowed(zone string) bool {
	n := strings.TrimRight(strings.ToLower(strings.TrimSpace(zone)), ".")
	for _, z := range d.Zones {
		if strings.TrimRight(strings.ToLower(strings.TrimSpace(z.Name)), ".") == n && z.AllowApex {
			return true
		}
	}
	return false
}
