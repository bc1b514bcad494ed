package config_test

import (
	"testing"

	"github.com/pvectl/pvectl/config"
	"github.com/stretchr/testify/require"
)

func TestZoneAllowApex(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, zones string
		want        string          // "" = loads
		allowed     map[string]bool // zone -> ApexAllowed
	}{
		{"default false", "    - {name: example.com, server: 192.0.2.53:53, key_name: k, secret: c2VjcmV0}\n", "",
			map[string]bool{"example.com": false, "other.com": false}},
		{"set", "    - {name: Example.COM., server: 192.0.2.53:53, key_name: k, secret: c2VjcmV0, allow_apex: true}\n" +
			"    - {name: cust.example.com, server: 192.0.2.53:53, key_name: k, secret: c2VjcmV0}\n", "",
			map[string]bool{"example.com": true, "EXAMPLE.com.": true, "cust.example.com": false}},
		{"reverse zone", "    - {name: 2.0.192.in-addr.arpa, server: 192.0.2.53:53, key_name: k, secret: c2VjcmV0, allow_apex: true}\n",
			"pvectl.yaml:12: dns.zones[0].allow_apex: only for forward zones: 2.0.192.in-addr.arpa is a reverse zone", nil},
		{"not a boolean", "    - {name: example.com, server: 192.0.2.53:53, key_name: k, secret: c2VjcmV0, allow_apex: maybe}\n",
			"allow_apex", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := config.Parse("pvectl.yaml", []byte(minimal+"dns:\n  zones:\n"+tc.zones))
			if tc.want != "" {
				require.Error(t, err)
				require.Contains(t, err.Error(), tc.want)
				return
			}
			require.NoError(t, err)
			for zone, want := range tc.allowed {
				require.Equal(t, want, c.DNS.ApexAllowed(zone), zone)
			}
		})
	}
}
