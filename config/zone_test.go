package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLoadZone(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, want, err string
	}{
		{"", "UTC", ""},
		{"UTC", "UTC", ""},
		{"Local", "Local", ""},
		{"Europe/Berlin", "Europe/Berlin", ""},
		{"europe/berlin", "", `unknown time zone "europe/berlin"; valid: UTC, Local or an IANA name like Europe/Berlin`},
		{"CET+1", "", `unknown time zone "CET+1"`},
	}
	for _, tc := range tests {
		loc, err := LoadZone(tc.name)
		if tc.err != "" {
			require.ErrorContains(t, err, tc.err, tc.name)
			continue
		}
		require.NoError(t, err, tc.name)
		require.Equal(t, tc.want, loc.String())
	}
}
