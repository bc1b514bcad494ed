package engine_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pvectl/pvectl/config"
	"github.com/pvectl/pvectl/engine"
	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

// IntegrateRRD: bytes = rate × seconds; a row straddling an hour boundary
// is split by seconds; a row not complete at now is left out.
func TestIntegrateRRDPartialSteps(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 12, 1, 10, 50, 0, 0, time.UTC)
	pts := []proxmox.RRDPoint{
		{Time: base, NetIn: 100, NetOut: 10},                       // 10:50–11:00
		{Time: base.Add(10 * time.Minute), NetIn: 200, NetOut: 20}, // 11:00–11:10
		{Time: base.Add(20 * time.Minute), NetIn: 400, NetOut: 40}, // 11:10–11:20, not complete at 11:15
	}
	b := engine.IntegrateRRD(pts, 600, base.Add(25*time.Minute))
	require.Len(t, b, 2)
	h10, h11 := b[base.Truncate(time.Hour).Unix()], b[base.Truncate(time.Hour).Add(time.Hour).Unix()]
	require.InDelta(t, 100*600, h10.BytesIn, 0)
	require.InDelta(t, 10*600, h10.BytesOut, 0)
	require.InDelta(t, 200*600, h11.BytesIn, 0)
	require.Equal(t, 10*time.Minute, h11.Covered)

	// A 1800 s row from 10:45 splits 900/900 over 10:00 and 11:00.
	b = engine.IntegrateRRD([]proxmox.RRDPoint{{Time: base.Add(-5 * time.Minute), NetIn: 2, NetOut: 4}}, 1800, base.Add(time.Hour))
	require.InDelta(t, 2*900, b[base.Truncate(time.Hour).Unix()].BytesIn, 0)
	require.InDelta(t, 4*900, b[base.Truncate(time.Hour).Add(time.Hour).Unix()].BytesOut, 0)
	require.Equal(t, 15*time.Minute, b[base.Truncate(time.Hour).Unix()].Covered)
}

func TestBillingPeriod(t *testing.T) {
	t.Parallel()
	s, e := engine.BillingPeriod(time.Date(2026, 12, 3, 5, 0, 0, 0, time.UTC), 15)
	require.Equal(t, time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC), s)
	require.Equal(t, time.Date(2026, 12, 15, 0, 0, 0, 0, time.UTC), e)
	s, _ = engine.BillingPeriod(time.Date(2026, 12, 15, 0, 0, 0, 0, time.UTC), 15)
	require.Equal(t, time.Date(2026, 12, 15, 0, 0, 0, 0, time.UTC), s)
	s, e, err := engine.PeriodOf("2027-01", 1, time.Time{})
	require.NoError(t, err)
	require.Equal(t, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), s)
	require.Equal(t, time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC), e)
	_, _, err = engine.PeriodOf("2027-13", 1, time.Time{})
	require.Error(t, err)
}

type statsRig struct {
	*powerRig
}

func newStatsRig(t testing.TB) *statsRig {
	t.Helper()
	h := newHarness(t, "")
	sim, url, tokenID, secret := pvesim.StartTest(t, pvesim.DefaultCluster(), pvesim.WithManualClock(t0))
	t.Cleanup(func() { sim.RequireNoRejections(t) })
	pve, err := proxmox.New(proxmox.Options{URL: url, TokenID: tokenID, TokenSecret: secret})
	require.NoError(t, err)
	h.e.NewEnv = func(_ context.Context, e *engine.Engine) (*states.Env, error) {
		return &states.Env{Store: e.Store, Config: e.Config, PVE: pve, Now: e.Clock.Now}, nil
	}
	h.at(0)
	return &statsRig{&powerRig{harness: h, sim: sim, pve: pve}}
}

// advance moves the engine's and the simulator's clocks together.
func (r *statsRig) advance(d time.Duration) {
	r.clk.T = r.clk.T.Add(d)
	r.sim.Advance(d)
}

func (r *statsRig) collect() engine.StatsRun {
	r.t.Helper()
	res, err := r.e.CollectStats(r.ctx)
	require.NoError(r.t, err)
	return res
}

func (r *statsRig) stored(svc string) (in, out int64) {
	rows, err := r.st.TrafficHours(r.ctx, svc, time.Unix(0, 0), r.clk.T.Add(time.Hour))
	require.NoError(r.t, err)
	for _, h := range rows {
		in += h.BytesIn
		out += h.BytesOut
	}
	return in, out
}

// collect_stats over several runs: a re-run doesn't double count, a missed
// run is filled from the day frame, a migration mid-hour loses and doubles
// nothing; one rrddata read per VM per run when nothing was missed.
func TestCollectStatsRerunMissedHourMigration(t *testing.T) {
	t.Parallel()
	r := newStatsRig(t)
	r.pveVM(1001, true) // created and started an hour before t0
	r.sim.SetTrafficProfile(1001, 1000, 250)
	r.record("web1", string(states.Ready), 1001, "running")
	origin := t0.Add(-time.Hour)

	check := func(what string) {
		t.Helper()
		in, out := r.stored("web1")
		gin, gout := r.sim.TrafficGenerated(1001, origin, r.clk.T)
		require.InDelta(t, gin, float64(in), 1, what)
		require.InDelta(t, gout, float64(out), 1, what)
		require.Positive(t, in, what)
	}
	rrd := func() int {
		n := 0
		for _, q := range r.sim.Requests() {
			if strings.HasSuffix(q.Endpoint, "/rrddata") {
				n++
			}
		}
		return n
	}

	r.advance(time.Hour)
	res := r.collect()
	require.Equal(t, 1, res.DayReads, "never read: the day frame brings its history")
	check("first run")
	require.Equal(t, 2, rrd())

	r.collect() // a re-run
	check("re-run")
	require.Equal(t, 3, rrd(), "a re-run with nothing missed reads the hour frame only")

	r.advance(time.Hour)
	require.Zero(t, r.collect().DayReads)
	check("an hour later")
	require.Equal(t, 4, rrd())

	r.advance(2 * time.Hour) // a run missed
	require.Equal(t, 1, r.collect().DayReads, "the missed hour comes from the day frame")
	check("after a missed run")

	r.advance(30 * time.Minute) // mid-hour run, then a migration
	r.collect()
	check("mid-hour")
	ref, err := r.pve.Migrate(r.ctx, proxmox.MigrateRequest{VM: proxmox.VMRef{Node: "pve1", VMID: 1001}, Target: "pve2", Online: true, WithLocalDisks: true})
	require.NoError(t, err)
	r.advance(time.Minute)
	st, err := r.pve.TaskStatus(r.ctx, ref)
	require.NoError(t, err)
	require.True(t, st.Done(), "the migration ended")
	require.NoError(t, st.Err())
	r.advance(29 * time.Minute)
	res = r.collect()
	require.Zero(t, res.DayReads)
	require.Zero(t, res.Errors)
	check("after a migration")
}

// Buckets of a VM whose record is gone stay until retention; the
// over-limit event is logged once per period.
func TestCollectStatsRetentionAndLimit(t *testing.T) {
	t.Parallel()
	r := newStatsRig(t)
	ctx := r.ctx
	old := store.TrafficHour{ServiceID: "gone", Hour: t0.Add(-500 * 24 * time.Hour), VMID: 999, Product: "p", BytesIn: 5, Covered: 3600}
	recent := store.TrafficHour{ServiceID: "gone", Hour: t0.Add(-48 * time.Hour), VMID: 999, Product: "p", BytesIn: 7, Covered: 3600}
	require.NoError(t, r.st.TrafficReplace(ctx, []store.TrafficHour{old, recent}, t0))
	recent.BytesIn = 9 // replaced, not added
	require.NoError(t, r.st.TrafficReplace(ctx, []store.TrafficHour{recent}, t0))
	res := r.collect()
	require.EqualValues(t, 1, res.Purged)
	in, _ := r.stored("gone")
	require.EqualValues(t, 9, in)

	reps, err := r.e.TrafficReports(ctx, "2026-11")
	require.NoError(t, err)
	require.Len(t, reps, 1)
	require.True(t, reps[0].Terminated)
	require.EqualValues(t, 9, reps[0].BytesIn)

	first, err := r.st.TrafficLimitMark(ctx, "web1", t0, t0)
	require.NoError(t, err)
	require.True(t, first)
	first, err = r.st.TrafficLimitMark(ctx, "web1", t0, t0)
	require.NoError(t, err)
	require.False(t, first)
}

// traffic_action throttle: over the limit, net0 gets the product's
// traffic_throttle_mbps until the period ends, intent first; a run again
// changes nothing; a rate changed in PVE is set again; a VM in a pipeline
// gets the intent only (its network step applies it); at the next period
// the throttle is lifted and net0 is back at the product's rate.
func TestTrafficThrottle(t *testing.T) {
	t.Parallel()
	r := newStatsRig(t)
	p := r.e.Config.Products["small"]
	p.TrafficLimitGB, p.TrafficAction, p.TrafficThrottleMBps = 1, config.TrafficActionThrottle, 2
	p.Network.RateMBps = 0
	r.e.Config.Products["small"] = p
	net0 := "virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1"
	for _, id := range []int{1001, 1002} {
		require.NoError(t, r.sim.AddVM(pvesim.VMSpec{VMID: id, Node: "pve1", Running: true,
			Config: map[string]string{"name": "vm" + strconv.Itoa(id), "net0": net0}}))
		r.sim.SetTrafficProfile(id, 400_000, 100_000) // 1.8 GB an hour
	}
	web1 := r.record("web1", string(states.Ready), 1001, "running")
	web2 := r.record("web2", string(states.ChangePackage), 1002, "running") // in a pipeline
	netOf := func(vmid int) string {
		t.Helper()
		st, ok := r.sim.VM(vmid)
		require.True(t, ok)
		return st.Config["net0"]
	}
	periodEnd := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

	r.advance(time.Hour)
	r.out.Reset()
	res := r.collect()
	require.Equal(t, 2, res.OverLimit)
	require.Equal(t, 1, res.NICChanges)
	require.Zero(t, res.Errors)
	require.Equal(t, net0+",rate=2", netOf(1001))
	require.Equal(t, net0, netOf(1002), "a VM in a pipeline: its network step applies the rate")
	for _, id := range []int64{web1.ID, web2.ID} {
		got := r.get(id)
		require.Equal(t, 2, got.ThrottleMBps, got.ServiceID)
		require.True(t, got.ThrottleUntil.Equal(periodEnd), "%s: %s", got.ServiceID, got.ThrottleUntil)
	}
	require.Contains(t, r.out.String(), "web1  event: traffic throttled — net0 rate 2 MB/s until 2026-12-01 00:00 UTC")
	require.Contains(t, res.Message, "1 NIC rate change(s) (traffic throttle)")

	r.advance(time.Hour)
	require.Zero(t, r.collect().NICChanges, "already throttled: nothing to change")
	require.Equal(t, net0+",rate=2", netOf(1001))

	// Someone set the rate back in PVE: the next run sets it again.
	require.NoError(t, r.pve.SetConfigSync(r.ctx, proxmox.VMRef{Node: "pve1", VMID: 1001}, proxmox.ConfigChange{Set: map[string]string{"net0": net0}}))
	r.advance(time.Hour)
	require.Equal(t, 1, r.collect().NICChanges)
	require.Equal(t, net0+",rate=2", netOf(1001))

	// The next billing period: lifted; web2, still in its pipeline, has
	// its throttle ended in the record but kept until it is ready.
	r.advance(periodEnd.Add(10 * time.Minute).Sub(r.clk.T))
	r.out.Reset()
	res = r.collect()
	require.Zero(t, res.OverLimit)
	require.Equal(t, 1, res.NICChanges)
	require.Equal(t, net0, netOf(1001))
	require.Zero(t, r.get(web1.ID).ThrottleMBps)
	require.Contains(t, r.out.String(), "web1  event: traffic throttle lifted — net0 back at the product's rate (unlimited)")
	got := r.get(web2.ID)
	require.Equal(t, 2, got.ThrottleMBps, "kept until web2 is ready")
	require.Zero(t, got.Throttled(r.clk.T), "but ended: a change-package applies the product's rate")

	require.NoError(t, r.st.VMSetStatus(r.ctx, web2.ID, string(states.Ready), r.clk.T))
	r.advance(time.Minute)
	res = r.collect()
	require.Zero(t, res.NICChanges, "web2's NIC never had the rate")
	require.Zero(t, r.get(web2.ID).ThrottleMBps)
	require.Equal(t, net0, netOf(1002))
}
