package proxmox_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
)

// limitedAdapter is an adapter with MaxRequestsPerNode n whose read retries
// do not sleep.
func limitedAdapter(t *testing.T, url, id, secret string, n int, observe func(string, string, time.Duration, error)) *proxmox.Adapter {
	t.Helper()
	a, err := proxmox.New(proxmox.Options{URL: url, TokenID: id, TokenSecret: secret, MaxRequestsPerNode: n, Observe: observe})
	require.NoError(t, err)
	proxmox.SetReadRetrySleep(a, func(context.Context, time.Duration) error { return nil })
	return a
}

// Many concurrent requests to one node, some retried after a 503: the
// simulator never has more than MaxRequestsPerNode of them in flight at
// once, and (with enough waiting) has exactly that many; requests that
// name no node count against the endpoint the same way.
func TestMaxRequestsPerNodeInFlightAtSimulator(t *testing.T) {
	t.Parallel()
	c := pvesim.DefaultCluster()
	sim, apiURL, tokenID, secret := pvesim.StartTest(t, c)
	sim.SetLatency(30*time.Millisecond, 0)
	const limit = 3
	a := limitedAdapter(t, apiURL, tokenID, secret, limit, nil)
	ctx := context.Background()
	// A few reads of pve1 fail once and are sent again: each try takes a slot.
	sim.FailNext(pvesim.FailNext{Endpoint: "GET /nodes/{node}/status", Node: "pve1", Status: 503, Count: 5})

	var wg sync.WaitGroup
	errs := make(chan error, 60)
	for range 40 {
		wg.Go(func() {
			_, err := a.NodeStatus(ctx, "pve1")
			errs <- err
		})
	}
	for range 20 {
		wg.Go(func() {
			_, err := a.Version(ctx)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	peaks := sim.InFlightPeaks()
	require.Equal(t, limit, peaks["pve1"], "requests in flight to pve1 at the simulator: %v", peaks)
	require.Equal(t, limit, peaks[pvesim.EndpointNode], "cluster-wide requests in flight at the simulator: %v", peaks)
	require.Zero(t, peaks["pve2"])

	// Without a limit the same load reaches the simulator all at once.
	sim.ResetInFlightPeaks()
	free := limitedAdapter(t, apiURL, tokenID, secret, 0, nil)
	for range 20 {
		wg.Go(func() { _, _ = free.NodeStatus(ctx, "pve1") })
	}
	wg.Wait()
	require.Greater(t, sim.InFlightPeaks()["pve1"], limit)
}

// gate holds every API request for one node at the door of the simulator
// until opened, counting the held ones.
type gate struct {
	prefix string
	held   atomic.Int32
	open   chan struct{}
}

func (g *gate) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, g.prefix) {
			g.held.Add(1)
			select {
			case <-g.open:
			case <-r.Context().Done():
			}
			g.held.Add(-1)
		}
		next.ServeHTTP(w, r)
	})
}

// While pve1 has all its slots taken (its requests are stuck in PVE),
// requests to pve2 and cluster-wide ones still go out and complete; a
// request for pve1 waits in pvectl, not at the node, and its context ends
// the wait with a transient error, nothing sent. An Observe hook that
// itself calls the same node does not deadlock: the slot is given back
// before Observe runs.
func TestMaxRequestsPerNodeIndependentNodes(t *testing.T) {
	t.Parallel()
	sim, err := pvesim.New(pvesim.DefaultCluster(), pvesim.WithManualClock(pvesim.DefaultStart))
	require.NoError(t, err)
	g := &gate{prefix: "/api2/json/nodes/pve1/", open: make(chan struct{})}
	srv := httptest.NewServer(g.wrap(sim.Handler()))
	t.Cleanup(srv.Close)
	const limit = 2
	a := limitedAdapter(t, srv.URL, pvesim.DefaultTokenID, pvesim.DefaultSecret, limit, nil)
	ctx := context.Background()

	var wg sync.WaitGroup
	for range limit + 3 {
		wg.Go(func() { _, _ = a.NodeStatus(ctx, "pve1") })
	}
	require.Eventually(t, func() bool { return g.held.Load() == limit }, 10*time.Second, time.Millisecond)

	// pve2 and the endpoint are served while pve1 is saturated.
	for range 2 * limit {
		_, err := a.NodeStatus(ctx, "pve2")
		require.NoError(t, err)
	}
	_, err = a.ClusterResources(ctx, "")
	require.NoError(t, err)

	// A request for pve1 waits in pvectl until its context ends: never sent.
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = a.Start(cctx, proxmox.VMRef{Node: "pve1", VMID: 9000}, proxmox.StartOptions{})
	var pe *proxmox.Error
	require.True(t, errors.As(err, &pe), "%v", err)
	require.Equal(t, proxmox.ClassTransient, pe.Class)
	require.False(t, pe.Applied, "a request that never left pvectl cannot have been applied")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.EqualValues(t, limit, g.held.Load(), "only %d requests reached pve1", limit)

	close(g.open)
	wg.Wait()
	for _, r := range sim.Requests() {
		require.NotEqual(t, "POST", r.Method, "the cancelled start was sent: %+v", r)
	}
	peaks := sim.InFlightPeaks()
	require.LessOrEqual(t, peaks["pve1"], limit, "%v", peaks)

	// Observe runs after the slot is given back: a hook that calls the same
	// node with a limit of 1 completes.
	var nested atomic.Int32
	var b *proxmox.Adapter
	b = limitedAdapter(t, srv.URL, pvesim.DefaultTokenID, pvesim.DefaultSecret, 1, func(_, tmpl string, _ time.Duration, _ error) {
		if tmpl == "/nodes/{node}/status" && nested.Add(1) == 1 {
			_, err := b.NodeBridges(ctx, "pve1")
			require.NoError(t, err)
		}
	})
	done := make(chan error, 1)
	go func() { _, err := b.NodeStatus(ctx, "pve1"); done <- err }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("a request made from Observe waited for its own node's slot")
	}
}
