package proxmox_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
)

// A pass sends up to concurrency requests at once to one pveproxy, over
// TLS. Each connection the adapter does not keep is a new TCP and TLS
// handshake for pveproxy: Go's default keeps only 2 idle connections per
// host, so at 8 requests at a time most were closed after use and dialled
// again (28–37 connections for these 200 requests). The adapter keeps
// them: 8 workers sending 25 requests each open about 8 connections.
func TestConcurrentRequestsReuseConnections(t *testing.T) {
	t.Parallel()
	c := pvesim.DefaultCluster()
	sim, err := pvesim.New(c, pvesim.WithManualClock(pvesim.DefaultStart))
	require.NoError(t, err)
	sim.SetLatency(3*time.Millisecond, 2*time.Millisecond) // the requests overlap
	srv := httptest.NewUnstartedServer(sim.Handler())
	var opened atomic.Int64
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	a, err := proxmox.New(proxmox.Options{URL: srv.URL + "/api2/json", TokenID: c.Tokens[0].ID,
		TokenSecret: c.Tokens[0].Secret, InsecureSkipVerify: true})
	require.NoError(t, err)

	const workers, each = 8, 25
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for range workers {
		wg.Go(func() {
			for range each {
				_, err := a.Version(ctx)
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	// A connection dialled while another one was being handed back may
	// be one more than the workers.
	t.Logf("%d connections for %d requests", opened.Load(), workers*each)
	require.LessOrEqual(t, opened.Load(), int64(2*workers), "connections opened for %d requests from %d workers", workers*each, workers)
	sim.RequireNoRejections(t)
}
