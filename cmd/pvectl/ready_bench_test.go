package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
)

// readyDurations are PVE task times of a real cluster, not pvesim's quick
// defaults: a full clone of a 32–50 GB disk, a migration with local disks,
// a boot, and the small config tasks (resize, disk creation).
var readyDurations = map[string]pvesim.Duration{
	"qmclone":  pvesim.Duration(50 * time.Second),
	"qmigrate": pvesim.Duration(45 * time.Second),
	"qmstart":  pvesim.Duration(5 * time.Second),
}

// BenchmarkTimeToReady deploys one VM of each bench product (linked clone
// on the template's node; full clone, migrated, with an additional disk;
// full clone, migrated) from `vm create` to ready, one process_vms pass per
// simulated minute as cron runs it, with readyDurations in pvesim. It
// reports the ticks (= minutes) the slowest of the three needed, and their
// mean, at steps_per_tick 1 (the default) and 10 (synchronous steps chain
// within a tick). A change that adds a step or a wait shows here.
func BenchmarkTimeToReady(b *testing.B) {
	for _, steps := range []int{1, 10} {
		b.Run(fmt.Sprintf("steps_per_tick=%d", steps), func(b *testing.B) {
			r := newReadyRig(b)
			r.eng.Config.Tasks.ProcessVMs.StepsPerTick = steps
			var worst, sum, n int
			for b.Loop() {
				first := r.next
				r.create(b, len(benchProducts))
				ticks := map[string]int{}
				for tick := 1; len(ticks) < len(benchProducts); tick++ {
					if tick > 100 {
						b.Fatalf("not ready after 100 ticks:\n%s", r.notReady(b))
					}
					r.pass(b)
					vms, err := r.eng.Store.VMList(context.Background(), store.VMFilter{Status: string(states.Ready)})
					if err != nil {
						b.Fatal(err)
					}
					for _, vm := range vms {
						var i int
						if _, err := fmt.Sscanf(vm.ServiceID, "svc-%d", &i); err == nil && i >= first {
							if _, seen := ticks[vm.ServiceID]; !seen {
								ticks[vm.ServiceID] = tick
							}
						}
					}
				}
				for _, t := range ticks {
					worst = max(worst, t)
					sum += t
					n++
				}
			}
			b.ReportMetric(float64(worst), "ticks-to-ready")
			b.ReportMetric(float64(worst), "minutes-to-ready") // one tick a minute
			b.ReportMetric(float64(sum)/float64(n), "mean-ticks")
		})
	}
}

// newReadyRig is newBenchRig (bench_test.go) with readyDurations.
func newReadyRig(b *testing.B) *benchRig {
	b.Helper()
	c := benchCluster()
	c.Durations.Task = pvesim.Duration(2 * time.Second)
	c.Durations.Tasks = map[string]pvesim.Duration{}
	for k, v := range readyDurations {
		c.Durations.Tasks[k] = v
	}
	return newRigOn(b, c, func(apiURL, tokenID, secret string) string {
		return fmt.Sprintf(benchConfig, apiURL, tokenID, secret)
	})
}
