package config_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pvectl/pvectl/config"
)

// proxmox.max_requests_per_node: absent or 0 is the default (4); any whole
// number from 1 is kept; anything else is an error naming the file, line,
// key and the valid values.
func TestMaxRequestsPerNode(t *testing.T) {
	t.Parallel()
	withLimit := func(v string) string {
		return strings.Replace(minimal, "  token_secret: s3cr3t-value\n", "  token_secret: s3cr3t-value\n  max_requests_per_node: "+v+"\n", 1)
	}
	tests := []struct {
		name    string
		yaml    string
		want    int
		wantErr string
	}{
		{"absent is the default", minimal, config.DefaultMaxRequestsPerNode, ""},
		{"zero is the default", withLimit("0"), config.DefaultMaxRequestsPerNode, ""},
		{"one", withLimit("1"), 1, ""},
		{"large", withLimit("1000"), 1000, ""},
		{"negative", withLimit("-1"), 0,
			"pvectl.yaml:5: proxmox.max_requests_per_node: must be at least 1 (requests in flight to one node at a time), got -1"},
		{"fraction", withLimit("2.5"), 0,
			"pvectl.yaml:5: proxmox.max_requests_per_node: want a whole number in plain decimal digits, got 2.5; valid: 1 or more"},
		{"word", withLimit("many"), 0,
			`pvectl.yaml:5: proxmox.max_requests_per_node: wrong type: want a whole number, got "many"; valid: 1 or more`},
		{"quoted", withLimit(`"4"`), 0,
			`pvectl.yaml:5: proxmox.max_requests_per_node: wrong type: want a whole number, got the string "4" (remove the quotes); valid: 1 or more`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := config.Parse("pvectl.yaml", []byte(tc.yaml))
			if tc.wantErr != "" {
				require.Error(t, err)
				require.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, c.Proxmox.MaxRequestsPerNode)
		})
	}
}
