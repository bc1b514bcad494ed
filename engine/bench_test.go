package engine_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/pvectl/pvectl/internal/commitfloor"
	"github.com/pvectl/pvectl/states"
)

// floorProbe is how long BenchmarkProcessVMs measures the commit floor
// before and after its timed loop.
const floorProbe = 300 * time.Millisecond

// BenchmarkProcessVMs measures VM-steps per second through the runner: 200
// VMs, a step that is always done, on the durable store (WAL,
// synchronous=FULL) in a temp dir. The table is a cycle, so every pass moves
// every VM one step and writes its run, line and outcome.
//
// The naive commit floor (one UPDATE + one INSERT per transaction, as
// store's BenchmarkCommitFloor) is measured on the same disk just before and
// just after the timed loop; x-floor is steps/s over their mean, the figure
// issue 15 asks to be ≥ 2.0.
func BenchmarkProcessVMs(b *testing.B) {
	const vms = 200
	p := states.MustPipeline("bench", states.SetIP, []states.Step{
		{From: states.SetIP, To: states.Clone, Label: "A", Run: done},
		{From: states.Clone, To: states.SetIP, Label: "B", Run: done},
	})
	h := newHarness(b, "", p)
	for i := range vms {
		h.vm(fmt.Sprintf("svc-%03d", i), "set_ip")
	}
	floor, err := commitfloor.Open(h.ctx, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = floor.Close() }()
	before, err := floor.Measure(h.ctx, floorProbe)
	if err != nil {
		b.Fatal(err)
	}
	commits0, writes0 := h.st.GroupCommits()
	steps := 0
	for b.Loop() {
		h.out.Reset()
		s, err := h.e.ProcessVMs(h.ctx)
		if err != nil {
			b.Fatal(err)
		}
		if s.Advanced != vms {
			b.Fatalf("advanced %d of %d VMs", s.Advanced, vms)
		}
		steps += s.Advanced
	}
	rate := float64(steps) / b.Elapsed().Seconds()
	after, err := floor.Measure(h.ctx, floorProbe)
	if err != nil {
		b.Fatal(err)
	}
	commits, writes := h.st.GroupCommits()
	if commits > commits0 {
		b.ReportMetric(float64(writes-writes0)/float64(commits-commits0), "writes/commit")
	}
	b.ReportMetric(rate, "steps/s")
	b.ReportMetric((before+after)/2, "floor-commits/s")
	b.ReportMetric(rate/((before+after)/2), "x-floor")
}
