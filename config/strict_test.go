package config_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pvectl/pvectl/config"
	"github.com/stretchr/testify/require"
)

// withProductLine adds one line to the product "small" of minimal (line 10).
func withProductLine(line string) string {
	return strings.Replace(minimal, "    network: {ipv4: 0}\n", "    network: {ipv4: 0}\n    "+line+"\n", 1)
}

// Integer keys take plain decimal digits: the decoder would truncate 1024.5,
// read 1e3 as 1000, 010 as 8 and "2" as 2, and report an overflow in its own
// words.
func TestIntegerKeysMustBePlainWholeNumbers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
		want string // "" = loads
	}{
		{"fraction", withProductLine("memory_mb: 1024.5"),
			"pvectl.yaml:10: products.small.memory_mb: want a whole number in plain decimal digits, got 1024.5; valid: 16 or more (MB)"},
		{"whole fraction", withProductLine("memory_mb: 2048.0"),
			"pvectl.yaml:10: products.small.memory_mb: want a whole number in plain decimal digits, got 2048.0; valid: 16 or more (MB)"},
		{"exponent", withProductLine("memory_mb: 1e3"),
			"pvectl.yaml:10: products.small.memory_mb: want a whole number in plain decimal digits, got 1e3; valid: 16 or more (MB)"},
		{"exponent overflow", withProductLine("cores: 1e23"),
			"pvectl.yaml:10: products.small.cores: want a whole number in plain decimal digits, got 1e23; valid: 1..512"},
		{"huge literal", withProductLine("cores: 99999999999999999999"),
			"pvectl.yaml:10: products.small.cores: 99999999999999999999 is out of range; valid: 1..512"},
		{"huge negative literal", withProductLine("backup_quota: -99999999999999999999"),
			"pvectl.yaml:10: products.small.backup_quota: -99999999999999999999 is out of range; valid: 0 (no backups) or more"},
		{"hex", withProductLine("cores: 0x10"), "products.small.cores: want a whole number in plain decimal digits, got 0x10; valid: 1..512"},
		{"octal by leading zero", withProductLine("cores: 010"), "products.small.cores: want a whole number in plain decimal digits, got 010; valid: 1..512"},
		{"underscore", withProductLine("memory_mb: 1_024"), "products.small.memory_mb: want a whole number in plain decimal digits, got 1_024"},
		{"infinity", withProductLine("cores: .inf"), "products.small.cores: want a whole number in plain decimal digits, got .inf"},
		{"quoted fraction", withProductLine("memory_mb: '1024.5'"),
			`pvectl.yaml:10: products.small.memory_mb: wrong type: want a whole number, got the string "1024.5" (remove the quotes); valid: 16 or more (MB)`},
		{"quoted digits", withProductLine(`cores: "2"`), `products.small.cores: wrong type: want a whole number, got the string "2" (remove the quotes)`},
		{"flow mapping", strings.Replace(minimal, "max: 1999", "max: 1.999e3", 1),
			"pvectl.yaml:5: vmid_range.max: want a whole number in plain decimal digits, got 1.999e3; valid: 100..999999999"},
		{"list item", minimal + "ip_pools:\n  - name: v4\n    family: 4.0\n",
			"pvectl.yaml:12: ip_pools[0].family: want a whole number in plain decimal digits, got 4.0; valid: 4 or 6"},
		{"dns ttl", minimal + "dns:\n  ttl: 3600.5\n", "pvectl.yaml:11: dns.ttl: want a whole number in plain decimal digits, got 3600.5"},
		{"tasks", minimal + "tasks:\n  process_vms:\n    concurrency: 1e1\n",
			"pvectl.yaml:12: tasks.process_vms.concurrency: want a whole number in plain decimal digits, got 1e1; valid: 1 or more"},
		{"merged from an anchor", "x-defaults: &d {cores: 2.5}\n" + withProductLine("<<: *d"),
			"pvectl.yaml:1: products.small.cores: want a whole number in plain decimal digits, got 2.5"},
		{"not a number stays a type error", withProductLine("cores: two"), "pvectl.yaml:10: products.small.cores: wrong type: want a whole number"},
		{"plain digits", withProductLine("memory_mb: 2048"), ""},
		{"signed", withProductLine("cores: +2"), ""},
		{"largest int", withProductLine("backup_quota: 9223372036854775807"), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := config.Parse("pvectl.yaml", []byte(tc.yaml))
			if tc.want == "" {
				require.NoError(t, err)
				require.NotNil(t, c)
				return
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			require.NotContains(t, err.Error(), "cannot unmarshal", "the decoder's words do not reach the operator")
			var ce *config.Error
			require.ErrorAs(t, err, &ce)
		})
	}
}

// Every integer field says which values are valid, for the messages above.
func TestIntegerFieldsHaveValidTag(t *testing.T) {
	t.Parallel()
	var check func(t *testing.T, typ reflect.Type, path string)
	check = func(t *testing.T, typ reflect.Type, path string) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Map {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || typ == reflect.TypeFor[config.Duration]() {
			return
		}
		for i := range typ.NumField() {
			f := typ.Field(i)
			if !f.IsExported() {
				continue
			}
			key := path + "." + f.Tag.Get("yaml")
			if f.Type.Kind() == reflect.Int {
				require.NotEmpty(t, f.Tag.Get("valid"), "%s has no valid tag", key)
			}
			check(t, f.Type, key)
		}
	}
	check(t, reflect.TypeFor[config.Config](), "")
}

// Every unknown key is reported, not only the first, in file order, the
// same on every run.
func TestUnknownKeysAllReportedInFileOrder(t *testing.T) {
	t.Parallel()
	y := strings.Replace(minimal, "  token_secret: s3cr3t-value\n", "  token_secret: s3cr3t-value\n  tokn: x\n", 1)
	y = strings.Replace(y, "    network: {ipv4: 0}\n", "    network: {ipv4: 0, brige: vmbr1}\n    cpus: 2\n", 1)
	y = "zzz: 1\n" + y + "aaa: 1\n"
	want := strings.Join([]string{
		`pvectl.yaml:1: zzz: unknown field "zzz" (see docs/pvectl.example.yaml for valid keys)`,
		`pvectl.yaml:6: proxmox.tokn: unknown field "tokn" (see docs/pvectl.example.yaml for valid keys)`,
		`pvectl.yaml:11: products.small.network.brige: unknown field "brige" (see docs/pvectl.example.yaml for valid keys)`,
		`pvectl.yaml:12: products.small.cpus: unknown field "cpus" (see docs/pvectl.example.yaml for valid keys)`,
		`pvectl.yaml:13: aaa: unknown field "aaa" (see docs/pvectl.example.yaml for valid keys)`,
	}, "\n")
	for range 20 {
		_, err := config.Parse("pvectl.yaml", []byte(y))
		require.Error(t, err)
		require.Equal(t, want, err.Error())
	}
}

// An empty file is an error naming the file, not a list of missing keys.
func TestEmptyConfigFile(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, content string }{
		{"zero bytes", ""},
		{"whitespace", "  \n\n\t\n"},
		{"comments", "# pvectl config\n\n# TODO\n"},
		{"document marker", "---\n# nothing yet\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "pvectl.yaml")
			require.NoError(t, os.WriteFile(path, []byte(tc.content), 0o600))
			_, err := config.Load(path)
			require.Error(t, err)
			require.Equal(t, path+": the file is empty (no settings); docs/pvectl.example.yaml is an annotated example", err.Error())
			var ce *config.Error
			require.ErrorAs(t, err, &ce)
		})
	}
}

// A secret file holds the secret on one line: one trailing newline is
// trimmed; any other whitespace or non-printable character is an error that
// names the file and the rule and never shows the secret.
func TestTokenSecretFileRules(t *testing.T) {
	t.Parallel()
	const rule = `a secret file holds the secret on one line of printable characters, without spaces; only a trailing newline (\n or \r\n) is allowed`
	tests := []struct {
		name, content string
		want          string // error after "file PATH "; "" = loads
	}{
		{"newline", "Sup3rS3cret\n", ""},
		{"crlf", "Sup3rS3cret\r\n", ""},
		{"no newline", "Sup3rS3cret", ""},
		{"trailing space", "Sup3rS3cret \n", "has a space at character 12: " + rule},
		{"inner space", "Sup3r S3cret\n", "has a space at character 6: " + rule},
		{"leading tab", "\tSup3rS3cret\n", "has a tab at character 1: " + rule},
		{"two newlines", "Sup3rS3cret\n\n", "has a line break at character 12: " + rule},
		{"lone carriage return", "Sup3rS3cret\r", "has a carriage return at character 12: " + rule},
		{"byte order mark", "\uFEFFSup3rS3cret\n", "has a byte order mark (U+FEFF) at character 1: " + rule},
		{"control character", "Sup3r\x07S3cret\n", "has a non-printable character (U+0007) at character 6: " + rule},
		{"no-break space", "Sup3r\u00a0S3cret\n", "has whitespace (U+00A0) at character 6: " + rule},
		{"invalid utf-8", "Sup3r\xffS3cret\n", "has a byte that is not valid UTF-8 at character 6: " + rule},
		{"only a newline", "\n", "is empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := filepath.Join(t.TempDir(), "token")
			require.NoError(t, os.WriteFile(f, []byte(tc.content), 0o600))
			c, err := config.Parse("pvectl.yaml", []byte(strings.Replace(minimal, "token_secret: s3cr3t-value", "token_secret_file: "+f, 1)))
			if tc.want == "" {
				require.NoError(t, err)
				require.Equal(t, "Sup3rS3cret", c.Proxmox.TokenSecret.Reveal())
				return
			}
			require.Error(t, err)
			require.Equal(t, "pvectl.yaml:4: proxmox.token_secret_file: file "+f+" "+tc.want, err.Error())
			require.NotContains(t, err.Error(), "Sup3r")
			require.NotContains(t, err.Error(), "S3cret")
		})
	}
}

// A zone's secret_file holding a bare secret follows the same rules; a BIND
// or Knot key file may span lines but holds printable text only.
func TestZoneSecretFileRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, content string
		want          string // "" = loads
	}{
		{"bare", "c2VjcmV0LXNlY3JldA==\n", ""},
		{"bare with trailing space", "c2VjcmV0LXNlY3JldA== \n", "has a space at character 21: a secret file holds the secret on one line"},
		{"bare on two lines", "c2VjcmV0\nLXNlY3JldA==\n", "has a line break at character 9"},
		{"bind", "key \"k\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2VjcmV0LXNlY3JldA==\";\r\n};\n", ""},
		{"bind with control character", "key \"k\" {\n\talgorithm hmac-sha256;\x1b\n\tsecret \"c2VjcmV0LXNlY3JldA==\";\n};\n",
			"has a non-printable character (U+001B) on line 2: a key file holds printable text only"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := filepath.Join(t.TempDir(), "k.key")
			require.NoError(t, os.WriteFile(f, []byte(tc.content), 0o600))
			y := minimal + "dns:\n  zones:\n    - {name: example.com, server: 192.0.2.53:53, key_name: k, secret_file: " + f + "}\n"
			c, err := config.Parse("pvectl.yaml", []byte(y))
			if tc.want == "" {
				require.NoError(t, err)
				require.Contains(t, c.DNS.Zones[0].Secret.Reveal(), "c2VjcmV0LXNlY3JldA==")
				return
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), "pvectl.yaml:12: dns.zones[0].secret_file: file "+f+" "+tc.want)
			require.NotContains(t, err.Error(), "c2VjcmV0")
		})
	}
}

func TestValidNodeName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ok   bool
	}{
		{"pve1", true},
		{"p", true},
		{"PVE-node-01", true},
		{"1", true},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false},
		{"", false},
		{"-pve1", false},
		{"pve1-", false},
		{"pve_1", false},
		{"pve1.example.com", false},
		{"pve 1", false},
		{"auto", true}, // the form is fine; "auto" is the config's keyword, not ValidNodeName's
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := config.ValidNodeName(tc.name)
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, config.ErrInvalidNodeName)
			require.Contains(t, err.Error(), "a PVE node name is 1 to 63 letters, digits and hyphens, starting and ending with a letter or digit")
		})
	}
}

// Node names in the config (target_node, template.node, ip_pools[].nodes)
// are checked against PVE's node-name format at load.
func TestConfigNodeNames(t *testing.T) {
	t.Parallel()
	const rule = "a PVE node name is 1 to 63 letters, digits and hyphens, starting and ending with a letter or digit, like pve1"
	tests := []struct {
		name, yaml, want string
	}{
		{"target node", withProductLine("target_node: pve_2"),
			`pvectl.yaml:10: products.small.target_node: invalid node name "pve_2": ` + rule + "; or auto (pvectl picks a node)"},
		{"target node fqdn", withProductLine("target_node: pve2.example.com"), `products.small.target_node: invalid node name "pve2.example.com"`},
		{"template node", strings.Replace(minimal, "node: pve1}", "node: -pve1}", 1),
			`pvectl.yaml:8: products.small.template.node: invalid node name "-pve1": ` + rule},
		{"pool node", minimal + "ip_pools:\n  - {name: v4, nodes: [pve1, 'pve 2'], family: 4, bridge: vmbr0, network: 192.0.2.0/24, gateway: 192.0.2.1, first: 192.0.2.10, last: 192.0.2.20}\n",
			`pvectl.yaml:11: ip_pools[0].nodes[1]: invalid node name "pve 2": ` + rule},
		{"target node auto", withProductLine("target_node: auto"), ""},
		{"target node name", withProductLine("target_node: pve-2"), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Parse("pvectl.yaml", []byte(tc.yaml))
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

// Unknown keys, bad integers and bad durations are all reported together,
// in file order, not one per run.
func TestShapeErrorsAllReportedTogether(t *testing.T) {
	t.Parallel()
	y := strings.Replace(minimal, "{min: 1000, max: 1999}", "{min: many, max: 1999}", 1) +
		"dns:\n  timeout: soon\n  ttl: 1.5\ntasks:\n  intervals:\n    process_vms: often\n  process_vms:\n    stop_timeout: 60\n    concurency: 2\n"
	want := strings.Join([]string{
		`pvectl.yaml:5: vmid_range.min: wrong type: want a whole number, got "many"; valid: 100..999999999`,
		`pvectl.yaml:11: dns.timeout: invalid duration "soon": use a number with a unit, like 90s, 5m or 1h (0 disables)`,
		`pvectl.yaml:12: dns.ttl: want a whole number in plain decimal digits, got 1.5; valid: 1..2147483647 (seconds)`,
		`pvectl.yaml:15: tasks.intervals.process_vms: invalid duration "often": use a number with a unit, like 90s, 5m or 1h (0 disables)`,
		`pvectl.yaml:17: tasks.process_vms.stop_timeout: invalid duration "60": use a number with a unit, like 90s, 5m or 1h (0 disables)`,
		`pvectl.yaml:18: tasks.process_vms.concurency: unknown field "concurency" (see docs/pvectl.example.yaml for valid keys)`,
	}, "\n")
	_, err := config.Parse("pvectl.yaml", []byte(y))
	require.Error(t, err)
	require.Equal(t, want, err.Error())
}
