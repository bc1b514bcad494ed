package dns

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in            string
		wantName, wantAlg   string
		wantSecret, wantErr string
	}{
		{"bind tsig-keygen", "key \"pvectl-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"" + testSecret + "\";\n};\n",
			"pvectl-key", "hmac-sha256", testSecret, ""},
		{"bind one line with comment", "# made by tsig-keygen\nkey pvectl.key { algorithm HMAC-SHA512; secret \"" + testSecret + "\"; }; // end\n",
			"pvectl.key", "hmac-sha512", testSecret, ""},
		{"knot keymgr", "# hmac-sha256:pvectl-key:" + testSecret + "\nkey:\n  - id: pvectl-key\n    algorithm: hmac-sha256\n    secret: " + testSecret + "\n",
			"pvectl-key", "hmac-sha256", testSecret, ""},
		{"secret with //", "key \"k\" { algorithm hmac-sha256; secret \"ab//cd+/Zm9vYmFy\"; }; // end", "k", "hmac-sha256", "ab//cd+/Zm9vYmFy", ""},
		{"bare secret", "  " + testSecret + "\n", "", "", testSecret, ""},
		{"not base64", "key \"k\" { algorithm hmac-sha256; secret \"" + testSecret + "*\"; };", "", "", "", "not valid base64"},
		{"md5", "key \"k\" { algorithm hmac-md5; secret \"" + testSecret + "\"; };", "", "", "", "unsupported TSIG algorithm"},
		{"garbage", "hello world " + testSecret, "", "", "", "expected a BIND key statement"},
	}
	for _, tt := range tests {
		name, alg, secret, err := ParseKey(tt.in)
		if tt.wantErr != "" {
			require.ErrorContains(t, err, tt.wantErr, tt.name)
			require.NotContains(t, err.Error(), testSecret[:12], tt.name)
			continue
		}
		require.NoError(t, err, tt.name)
		require.Equal(t, []string{tt.wantName, tt.wantAlg, tt.wantSecret}, []string{name, alg, secret}, tt.name)
	}
}
