package config_test

import (
	"testing"

	"github.com/pvectl/pvectl/config"
	"github.com/stretchr/testify/require"
)

// An IPv4 pool whose range includes the network or broadcast address passes
// validation; the allocator (states/allocate.go pickAddresses) only skips the
// gateway, so a VM is given 192.0.2.0 or 192.0.2.255.
func TestPoolRangeIncludesNetworkAndBroadcast_regression(t *testing.T) {
	t.Parallel()
	yaml := minimal + `ip_pools:
  - name: v4
    nodes: [pve1]
    family: 4
    bridge: vmbr0
    network: 192.0.2.0/24
    gateway: 192.0.2.1
    first: 192.0.2.0
    last: 192.0.2.255
`
	_, err := config.Parse("pvectl.yaml", []byte(yaml))
	require.Error(t, err, "first/last must exclude the network and broadcast addresses")
	require.Contains(t, err.Error(), "ip_pools[0].first: 192.0.2.0 is the network or broadcast address of 192.0.2.0/24")
	require.Contains(t, err.Error(), "ip_pools[0].last: 192.0.2.255 is the network or broadcast address")
}
