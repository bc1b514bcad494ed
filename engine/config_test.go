package engine_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/pvectl/pvectl/config"
	"github.com/pvectl/pvectl/engine"
	"github.com/pvectl/pvectl/providers/dns"
	"github.com/stretchr/testify/require"
)

// A zone's secret_file may hold the BIND `key "…" { … };` statement
// tsig-keygen writes (or a Knot key, or a bare secret), as docs/dns.md says.
// Loading (config + engine.ValidateConfig, what every command does) turns it
// into a secret the DNS updater can use.
func TestZoneSecretFileMayHoldABINDKeyStatement(t *testing.T) {
	t.Parallel()
	key := filepath.Join(t.TempDir(), "pvectl-key.conf")
	require.NoError(t, os.WriteFile(key, []byte(`key "pvectl-key" {
	algorithm hmac-sha256;
	secret "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=";
};
`), 0o600))
	c, err := config.Parse("pvectl.yaml", []byte(minimalConfig(t)+`dns:
  zones:
    - name: example.com
      server: 192.0.2.53:53
      key_name: pvectl-key
      secret_file: `+key+"\n"))
	require.NoError(t, err)
	require.NoError(t, engine.ValidateConfig(c, engine.StandardTasks()))
	z := c.DNS.Zones[0]
	dz := dns.Zone{Name: z.Name, Server: z.Server, KeyName: z.KeyName, Algorithm: z.Algorithm, Secret: z.Secret.Reveal()}
	require.NoError(t, dz.Validate(), "config check accepted a secret_file the DNS updater cannot use")
	require.Equal(t, "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=", z.Secret.Reveal())
}

// A secret that is not base64, or a key file naming another key, fails the
// config check with the file, line and key, never with the secret itself.
func TestZoneSecretProblemsFailConfigCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, zone, want string
	}{
		{"not base64", `secret: "not base64!"`, `pvectl.yaml:15: dns.zones[0].secret: not a valid base64 TSIG secret`},
		{"key file names another key", `secret_file: KEYFILE`, `dns.zones[0].secret_file: the key file names key "other" but key_name is "pvectl-key"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			key := filepath.Join(t.TempDir(), "k.conf")
			require.NoError(t, os.WriteFile(key, []byte(`key "other" { algorithm hmac-sha256; secret "c2VjcmV0"; };`), 0o600))
			zone := tc.zone
			if zone == `secret_file: KEYFILE` {
				zone = "secret_file: " + key
			}
			c, err := config.Parse("pvectl.yaml", []byte(minimalConfig(t)+"dns:\n  zones:\n    - name: example.com\n      server: 192.0.2.53:53\n      key_name: pvectl-key\n      "+zone+"\n"))
			require.NoError(t, err)
			err = engine.ValidateConfig(c, engine.StandardTasks())
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			require.NotContains(t, err.Error(), "c2VjcmV0", "the secret never appears in an error")
		})
	}
}
