package proxmox_test

// Reads (GET) that fail with a transient error are retried inside the
// adapter, a few times with a short backoff; mutations and every other
// error class are not. The waits are recorded, never slept.

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
)

// sleeps records the adapter's waits between read retries.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) waits() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

func retrySetup(t *testing.T) (*testBundle, *sleeps) {
	t.Helper()
	b := setup(t)
	s := &sleeps{}
	proxmox.SetReadRetrySleep(b.c, s.sleep)
	proxmox.SetReadRetrySleep(b.limited, s.sleep)
	return b, s
}

// calls counts the requests pvesim recorded for an endpoint.
func calls(sim *pvesim.Sim, endpoint string) int {
	n := 0
	for _, r := range sim.Requests() {
		if r.Endpoint == endpoint {
			n++
		}
	}
	return n
}

func TestReadRetryTransientThenSuccess(t *testing.T) {
	t.Parallel()
	for _, status := range []int{500, 503, 595, 596} {
		b, s := retrySetup(t)
		const ep = "GET /nodes/{node}/qemu/{vmid}/config"
		b.sim.FailNext(pvesim.FailNext{Endpoint: ep, Count: 2, Status: status})
		cfg, err := b.c.VMConfig(b.ctx, template)
		require.NoError(t, err, "status %d", status)
		require.True(t, cfg.Template())
		require.NotEmpty(t, cfg.Digest)
		require.Equal(t, 3, calls(b.sim, ep), "status %d: two failures and the success", status)
		w := s.waits()
		require.Len(t, w, 2, "status %d", status)
		for _, d := range w {
			require.Positive(t, d)
			require.LessOrEqual(t, d, proxmox.ReadBackoffMax)
		}
	}
}

func TestReadRetryGivesUpAfterAttempts(t *testing.T) {
	t.Parallel()
	b, s := retrySetup(t)
	const ep = "GET /cluster/resources"
	b.sim.FailNext(pvesim.FailNext{Endpoint: ep, Count: 10, Status: 503})
	_, err := b.c.ClusterResources(b.ctx, proxmox.ResourceVM)
	requireClass(t, proxmox.ClassTransient, err)
	var pe *proxmox.Error
	require.ErrorAs(t, err, &pe)
	require.Equal(t, 503, pe.HTTPStatus)
	require.False(t, pe.Applied, "a read never applies anything")
	require.Equal(t, proxmox.ReadAttempts, calls(b.sim, ep))
	require.Len(t, s.waits(), proxmox.ReadAttempts-1)
}

func TestReadRetryNotForOtherClasses(t *testing.T) {
	t.Parallel()
	b, s := retrySetup(t)

	// 403 from PVE's permission check.
	const cfgEP = "GET /nodes/{node}/qemu/{vmid}/config"
	b.sim.FailNext(pvesim.FailNext{Endpoint: cfgEP, Status: 403, Message: "Permission check failed (/vms/9000, VM.Audit)"})
	_, err := b.c.VMConfig(b.ctx, template)
	requireClass(t, proxmox.ClassPermission, err)
	require.Equal(t, 1, calls(b.sim, cfgEP))

	// A real 403: the token lacks the privilege.
	const ipsetEP = "POST /nodes/{node}/qemu/{vmid}/firewall/ipset"
	require.Error(t, b.limited.CreateIPSet(b.ctx, template, "x", ""))
	require.Equal(t, 1, calls(b.sim, ipsetEP))

	// Not found.
	const stEP = "GET /nodes/{node}/qemu/{vmid}/status/current"
	_, err = b.c.VMStatus(b.ctx, proxmox.VMRef{Node: "pve1", VMID: 4242})
	requireClass(t, proxmox.ClassNotFound, err)
	require.Equal(t, 1, calls(b.sim, stEP))

	// A config lock is waited for across ticks, not retried here.
	const snapEP = "GET /nodes/{node}/qemu/{vmid}/snapshot"
	b.sim.FailNext(pvesim.FailNext{Endpoint: snapEP, Status: 500, Message: "VM is locked (clone)"})
	_, err = b.c.Snapshots(b.ctx, template)
	requireClass(t, proxmox.ClassLocked, err)
	require.Equal(t, 1, calls(b.sim, snapEP))

	// 400 parameter error.
	const rrdEP = "GET /nodes/{node}/qemu/{vmid}/rrddata"
	b.sim.FailNext(pvesim.FailNext{Endpoint: rrdEP, Status: 400})
	_, err = b.c.RRDData(b.ctx, template, proxmox.TimeframeHour, proxmox.CFAverage)
	requireClass(t, proxmox.ClassInvalid, err)
	require.Equal(t, 1, calls(b.sim, rrdEP))

	require.Empty(t, s.waits())
}

func TestReadRetryNeverForMutations(t *testing.T) {
	t.Parallel()
	b, s := retrySetup(t)
	vm := b.clone(t, 321, "retry-mut")

	const putEP = "PUT /nodes/{node}/qemu/{vmid}/config"
	b.sim.FailNext(pvesim.FailNext{Endpoint: putEP, Count: 2, Status: 503})
	err := b.c.SetConfigSync(b.ctx, vm, proxmox.ConfigChange{Set: map[string]string{"description": "x"}})
	requireClass(t, proxmox.ClassTransient, err)
	require.Equal(t, 1, calls(b.sim, putEP))

	const postEP = "POST /nodes/{node}/qemu/{vmid}/status/start"
	b.sim.FailNext(pvesim.FailNext{Endpoint: postEP, Count: 2, Status: 596})
	_, err = b.c.Start(b.ctx, vm, proxmox.StartOptions{})
	requireClass(t, proxmox.ClassTransient, err)
	require.Equal(t, 1, calls(b.sim, postEP))

	const delEP = "DELETE /nodes/{node}/qemu/{vmid}"
	b.sim.FailNext(pvesim.FailNext{Endpoint: delEP, Count: 2, Status: 500})
	_, err = b.c.Delete(b.ctx, vm, proxmox.DeleteOptions{})
	requireClass(t, proxmox.ClassTransient, err)
	require.Equal(t, 1, calls(b.sim, delEP))

	require.Empty(t, s.waits())
}

func TestReadRetryRespectsContext(t *testing.T) {
	t.Parallel()
	b, s := retrySetup(t)
	const ep = "GET /nodes/{node}/qemu/{vmid}/status/current"

	// The deadline is closer than the shortest backoff (half of 100ms): the
	// 503 comes back at once (or, on a very slow machine, the deadline
	// passes during the request), never a wait past the deadline.
	short, cancelShort := context.WithTimeout(b.ctx, 40*time.Millisecond)
	defer cancelShort()
	b.sim.FailNext(pvesim.FailNext{Endpoint: ep, Count: 2, Status: 503})
	_, err := b.c.VMStatus(short, template)
	requireClass(t, proxmox.ClassTransient, err)
	require.LessOrEqual(t, calls(b.sim, ep), 1)
	if calls(b.sim, ep) == 1 && short.Err() == nil {
		var pe *proxmox.Error
		require.ErrorAs(t, err, &pe)
		require.Equal(t, 503, pe.HTTPStatus)
	}
	require.Empty(t, s.waits())
	b.sim.ClearFaults()

	// Cancelled during the backoff: no further try.
	before := calls(b.sim, ep)
	cctx, cancelC := context.WithCancel(b.ctx)
	proxmox.SetReadRetrySleep(b.c, func(ctx context.Context, d time.Duration) error {
		cancelC()
		return s.sleep(ctx, d)
	})
	b.sim.FailNext(pvesim.FailNext{Endpoint: ep, Count: 2, Status: 503})
	_, err = b.c.VMStatus(cctx, template)
	requireClass(t, proxmox.ClassTransient, err)
	require.Equal(t, before+1, calls(b.sim, ep))
	require.Len(t, s.waits(), 1)
}

// WithRequestCount counts every request the adapter sends under the
// context, each try of a retried read included, and nothing else.
func TestRequestCountCountsEachTry(t *testing.T) {
	t.Parallel()
	b, _ := retrySetup(t)
	const ep = "GET /cluster/resources"
	b.sim.FailNext(pvesim.FailNext{Endpoint: ep, Count: 1, Status: 503})
	var n atomic.Int64
	ctx := proxmox.WithRequestCount(b.ctx, &n)
	_, err := b.c.ClusterResources(ctx, proxmox.ResourceVM)
	require.NoError(t, err)
	require.EqualValues(t, 2, n.Load(), "one failed try and the retry")
	_, err = b.c.Version(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 3, n.Load())
	_, err = b.c.Version(b.ctx) // not under the counting context
	require.NoError(t, err)
	require.EqualValues(t, 3, n.Load())
}
