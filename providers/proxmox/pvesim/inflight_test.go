package pvesim_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
)

// The in-flight observation counts concurrent requests per node (requests
// naming none under the endpoint); the optional worker model serves at
// most w at once per node and queues the rest, answering every request
// exactly as without it.
func TestInFlightAndNodeWorkers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		workers int
		check   func(t *testing.T, inFlight, served map[string]int)
	}{
		{"no worker model: everything is served at once", 0, func(t *testing.T, inFlight, served map[string]int) {
			require.Greater(t, inFlight["pve1"], 2)
			require.Equal(t, inFlight, served)
		}},
		{"two workers per node: the rest wait", 2, func(t *testing.T, inFlight, served map[string]int) {
			require.Greater(t, inFlight["pve1"], 2, "queued requests are in flight")
			require.Equal(t, 2, served["pve1"])
			require.Equal(t, 2, served["pve2"])
			require.Equal(t, 2, served[pvesim.EndpointNode])
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.sim.SetLatency(30*time.Millisecond, 0)
			e.sim.SetNodeWorkers(tc.workers)
			require.Equal(t, tc.workers, e.sim.Faults().NodeWorkers)
			var wg sync.WaitGroup
			codes := make(chan int, 30)
			for _, path := range []string{"/nodes/pve1/status", "/nodes/pve2/status", "/version"} {
				for range 10 {
					wg.Go(func() { codes <- e.do("GET", path, nil).code })
				}
			}
			wg.Wait()
			close(codes)
			for c := range codes {
				require.Equal(t, 200, c)
			}
			tc.check(t, e.sim.InFlightPeaks(), e.sim.ServedPeaks())
			e.sim.ClearFaults()
			require.Zero(t, e.sim.NodeWorkers())
			e.sim.ResetInFlightPeaks()
			require.Zero(t, e.sim.InFlightPeaks()["pve1"])
		})
	}
}
