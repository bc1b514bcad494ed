package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pvectl/pvectl/config"
	"github.com/stretchr/testify/require"
)

const minimal = `proxmox:
  url: https://pve.example.com:8006
  token_id: pvectl@pve!t
  token_secret: s3cr3t-value
vmid_range: {min: 1000, max: 1999}
products:
  small:
    template: {vmid: 9000, node: pve1}
    network: {ipv4: 0}
`

func TestExampleConfigLoads(t *testing.T) {
	t.Parallel()
	c, err := config.Load("../docs/pvectl.example.yaml")
	require.NoError(t, err)
	require.Equal(t, []string{"large", "small"}, c.ProductNames())
	require.Len(t, c.IPPools, 2)
	require.Len(t, c.DNS.Zones, 2)
	require.Equal(t, time.Minute, c.Tasks.Intervals["process_vms"].D())
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := config.Parse("pvectl.yaml", []byte(minimal))
	require.NoError(t, err)
	p := c.Products["small"]
	require.Equal(t, 1, p.Cores)
	require.Equal(t, 1024, p.MemoryMB)
	require.Equal(t, "linked", p.Clone)
	require.Equal(t, "auto", p.TargetNode)
	require.True(t, *p.Firewall.Enable)
	require.True(t, *p.Firewall.MACFilter)
	require.False(t, p.Firewall.IPFilter)
	require.Equal(t, 1, c.Tasks.ProcessVMs.StepsPerTick)
	require.Equal(t, config.DefaultConcurrency, c.Tasks.ProcessVMs.Concurrency)
	require.Equal(t, 10*time.Second, c.Proxmox.Timeout.D())
	require.Equal(t, 90*24*time.Hour, c.Purge.RemovedKept())
}

func TestErrorsNameFileLineAndKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"unknown top-level key", minimal + "colour: blue\n", `pvectl.yaml:10: colour: unknown field "colour"`},
		{"unknown nested key", strings.Replace(minimal, "    network: {ipv4: 0}\n", "    network: {ipv4: 0}\n    cpus: 2\n", 1),
			`pvectl.yaml:10: products.small.cpus: unknown field "cpus"`},
		{"wrong type", strings.Replace(minimal, "min: 1000", "min: lots", 1), `pvectl.yaml:5: vmid_range.min: wrong type: want a whole number`},
		{"missing required", strings.Replace(minimal, "  token_id: pvectl@pve!t\n", "", 1), `pvectl.yaml:2: proxmox.token_id: required`},
		{"bad enum", strings.Replace(minimal, "    network: {ipv4: 0}\n", "    network: {ipv4: 0}\n    clone: deep\n", 1),
			`pvectl.yaml:10: products.small.clone: unknown "deep"; valid: linked, full`},
		{"bad duration", minimal + "tasks:\n  intervals:\n    process_vms: often\n", `pvectl.yaml:12: tasks.intervals.process_vms: invalid duration "often"`},
		// The bad value also appears earlier in the file: the error still names its own line and key.
		{"bad duration equal to an earlier value", strings.Replace(minimal, "small:", "fast:", 1) + "tasks:\n  intervals:\n    process_vms: fast\n",
			`pvectl.yaml:12: tasks.intervals.process_vms: invalid duration "fast"`},
		{"bare number duration", minimal + "dns:\n  timeout: 1000\n", `pvectl.yaml:11: dns.timeout: invalid duration "1000"`},
		{"pool missing for product", strings.Replace(minimal, "{ipv4: 0}", "{ipv4: 1}", 1),
			`products.small.network.ipv4: no IPv4 pool in ip_pools for bridge vmbr0 VLAN 0`},
		{"bad vmid range", strings.Replace(minimal, "{min: 1000, max: 1999}", "{min: 2000, max: 1999}", 1),
			`pvectl.yaml:5: vmid_range: invalid range 2000..1999`},
		{"pool without network", minimal + "ip_pools:\n  - {name: v4, nodes: [pve1], family: 4, bridge: vmbr0, gateway: 192.0.2.1}\n",
			`pvectl.yaml:11: ip_pools[0].network: required, a CIDR like 192.0.2.0/24`},
		{"gateway inside the range", minimal + "ip_pools:\n  - {name: v4, nodes: [pve1], family: 4, bridge: vmbr0, network: 192.0.2.0/24, gateway: 192.0.2.15, first: 192.0.2.10, last: 192.0.2.20}\n",
			`pvectl.yaml:11: ip_pools[0].gateway: gateway 192.0.2.15 lies inside first..last (192.0.2.10..192.0.2.20), so a VM could be given it`},
		{"gateway at the range's end", minimal + "ip_pools:\n  - {name: v6, nodes: [pve1], family: 6, bridge: vmbr0, network: \"2001:db8::/64\", gateway: \"2001:db8::1ff\", first: \"2001:db8::100\", last: \"2001:db8::1ff\"}\n",
			`ip_pools[0].gateway: gateway 2001:db8::1ff lies inside first..last`},
		{"dns zone without secret", minimal + "dns:\n  zones:\n    - {name: example.com, server: 127.0.0.1:53, key_name: k}\n",
			`pvectl.yaml:12: dns.zones[0].secret: required`},
		{"negative purge.removed_days", minimal + "purge:\n  removed_days: -1\n",
			`purge.removed_days: must be 0 (keep) or more, got -1`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Parse("pvectl.yaml", []byte(tc.yaml))
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	t.Parallel()
	c, err := config.Parse("pvectl.yaml", []byte(minimal))
	require.NoError(t, err)
	for _, s := range []string{fmt.Sprint(c.Proxmox), fmt.Sprintf("%+v", c.Proxmox), fmt.Sprintf("%#v", c.Proxmox), fmt.Sprintf("%v", c)} {
		require.NotContains(t, s, "s3cr3t-value")
	}
	require.Equal(t, "s3cr3t-value", c.Proxmox.TokenSecret.Reveal())
}

func TestTokenSecretFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := filepath.Join(dir, "secret")
	require.NoError(t, os.WriteFile(f, []byte("from-file\n"), 0o600))
	y := strings.Replace(minimal, "token_secret: s3cr3t-value", "token_secret_file: "+f, 1)
	c, err := config.Parse("pvectl.yaml", []byte(y))
	require.NoError(t, err)
	require.Equal(t, "from-file", c.Proxmox.TokenSecret.Reveal())

	y = strings.Replace(minimal, "token_secret: s3cr3t-value", "token_secret_file: "+filepath.Join(dir, "nope"), 1)
	_, err = config.Parse("pvectl.yaml", []byte(y))
	require.ErrorContains(t, err, "proxmox.token_secret_file: cannot read")
}

// PVECTL_PROXMOX_TOKEN_SECRET wins over the file's secret (and satisfies a
// config that has none); TLS verification stays on unless configured off;
// an unreadable ca_file is an error naming the key.
func TestTokenSecretFromEnvAndTLSOptions(t *testing.T) {
	c, err := config.Parse("pvectl.yaml", []byte(minimal))
	require.NoError(t, err)
	require.False(t, c.Proxmox.InsecureSkipVerify, "TLS verification is on by default")
	require.Empty(t, c.Proxmox.CAFile)

	t.Setenv("PVECTL_PROXMOX_TOKEN_SECRET", "from-env")
	c, err = config.Parse("pvectl.yaml", []byte(minimal))
	require.NoError(t, err)
	require.Equal(t, "from-env", c.Proxmox.TokenSecret.Reveal())
	c, err = config.Parse("pvectl.yaml", []byte(strings.Replace(minimal, "  token_secret: s3cr3t-value\n", "", 1)))
	require.NoError(t, err)
	require.Equal(t, "from-env", c.Proxmox.TokenSecret.Reveal())

	y := strings.Replace(minimal, "  token_secret: s3cr3t-value\n", "  token_secret: s3cr3t-value\n  ca_file: /nonexistent/ca.pem\n  insecure_skip_verify: true\n", 1)
	_, err = config.Parse("pvectl.yaml", []byte(y))
	require.ErrorContains(t, err, "proxmox.ca_file: cannot read /nonexistent/ca.pem")
	ca := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n"), 0o600))
	c, err = config.Parse("pvectl.yaml", []byte(strings.Replace(y, "/nonexistent/ca.pem", ca, 1)))
	require.NoError(t, err)
	require.Equal(t, ca, c.Proxmox.CAFile)
	require.True(t, c.Proxmox.InsecureSkipVerify)
}
