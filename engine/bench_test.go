package engine_test

import (
	"fmt"
	"testing"

	"github.com/pvectl/pvectl/states"
)

// BenchmarkProcessVMs measures VM-steps per second through the runner: 200
// VMs, a step that is always done, on the durable store (WAL,
// synchronous=FULL) in a temp dir. The table is a cycle, so every pass moves
// every VM one step and writes its run, line and outcome.
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
	b.ReportMetric(float64(steps)/b.Elapsed().Seconds(), "steps/s")
}
