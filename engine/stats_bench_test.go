package engine_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
	"github.com/pvectl/pvectl/states"
	"github.com/stretchr/testify/require"
)

// BenchmarkCollectStats: one collect_stats run over 1,000 VMs with 50 ms
// per PVE call, after a first run (which reads the day frame too), so each
// iteration is the steady state of an hourly run. Reports the API calls per
// VM (goal: one rrddata read each, plus one /cluster/resources read per run).
func BenchmarkCollectStats(b *testing.B) {
	const vms = 1000
	r := newStatsRig(b)
	for i := range vms {
		vmid := 2000 + i
		node := "pve1"
		if i%2 == 1 {
			node = "pve2"
		}
		require.NoError(b, r.sim.AddVM(pvesim.VMSpec{VMID: vmid, Node: node, Running: true, Config: map[string]string{"name": fmt.Sprintf("vm%d", vmid)}}))
		r.sim.SetTrafficProfile(vmid, float64(1000+i), 500)
		r.record(fmt.Sprintf("svc-%04d", i), string(states.Ready), vmid, "running")
	}
	r.advance(time.Hour)
	first := r.collect()
	require.Zero(b, first.Errors)
	r.sim.SetLatency(50*time.Millisecond, 0)
	start := len(r.sim.Requests())
	runs := 0
	for b.Loop() {
		r.advance(time.Hour)
		res := r.collect()
		if res.Errors != 0 || res.DayReads != 0 {
			b.Fatalf("run: %+v", res)
		}
		runs++
	}
	calls, rrd := 0, 0
	for _, q := range r.sim.Requests()[start:] {
		calls++
		if strings.HasSuffix(q.Endpoint, "/rrddata") {
			rrd++
		}
	}
	b.ReportMetric(float64(calls)/float64(runs*vms), "calls/VM")
	b.ReportMetric(float64(rrd)/float64(runs*vms), "rrddata/VM")
	b.ReportMetric(b.Elapsed().Seconds()/float64(runs), "s/run")
}
