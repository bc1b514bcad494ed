package config_test

import (
	"testing"

	"github.com/pvectl/pvectl/config"
	"github.com/stretchr/testify/require"
)

func TestSnapshotAndTrafficKeys(t *testing.T) {
	t.Parallel()
	c, err := config.Parse("pvectl.yaml", []byte(minimal))
	require.NoError(t, err)
	p := c.Products["small"]
	require.Equal(t, 0, p.SnapshotQuota)
	require.Equal(t, 0, p.TrafficLimitGB)
	require.Equal(t, 1, p.TrafficResetDay)
	require.Equal(t, 400, c.Stats.RetentionDays)

	c, err = config.Parse("pvectl.yaml", []byte(withProductLine("snapshot_quota: 3")+"stats: {retention_days: 90}\n"))
	require.NoError(t, err)
	require.Equal(t, 3, c.Products["small"].SnapshotQuota)
	require.Equal(t, 90, c.Stats.RetentionDays)

	for _, tc := range []struct{ line, want string }{
		{"traffic_reset_day: 31", "products.small.traffic_reset_day: must be 1..28 (every month has it), got 31"},
		{"traffic_action: slow", `products.small.traffic_action: "slow" is not one of: log (the default`},
		{"traffic_throttle_mbps: 5", "products.small.traffic_throttle_mbps: is only used with traffic_action: throttle"},
		{"traffic_action: throttle\n    traffic_throttle_mbps: 5", "products.small.traffic_action: throttle needs a traffic_limit_gb"},
		{"traffic_action: throttle\n    traffic_limit_gb: 100", "products.small.traffic_throttle_mbps: must be 1 or more (MB/s, the NIC rate over the limit) with traffic_action: throttle, got 0"},
		{"snapshot_quota: -1", "products.small.snapshot_quota: must be 0 (no snapshots) or more, got -1"},
	} {
		_, err := config.Parse("pvectl.yaml", []byte(withProductLine(tc.line)))
		require.ErrorContains(t, err, tc.want, tc.line)
	}
	c, err = config.Parse("pvectl.yaml", []byte(withProductLine("traffic_action: throttle\n    traffic_limit_gb: 100\n    traffic_throttle_mbps: 2")))
	require.NoError(t, err)
	require.Equal(t, config.TrafficActionThrottle, c.Products["small"].TrafficAction)
	require.Equal(t, 2, c.Products["small"].TrafficThrottleMBps)
	_, err = config.Parse("pvectl.yaml", []byte(withProductLine("traffic_action: log")))
	require.NoError(t, err)
	_, err = config.Parse("pvectl.yaml", []byte(minimal+"stats: {retention_days: 0}\n"))
	require.NoError(t, err, "0 means the default")
}
