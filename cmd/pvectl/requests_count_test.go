package main

import (
	"context"
	"fmt"
	"testing"
)

// TestRequestsPerStep counts the PVE API requests a batch of VMs makes
// through deploy, change-package and terminate (pvesim's request log, zero
// latency): the steps use what they already know instead of asking again,
// and a deploy pass reads /cluster/resources at most once, however many
// VMs allocate or clone in it. The bounds are the counts measured when the
// lookups were cut down (docs/performance.md), with a little room: deploy
// 1.91–1.93, change-package 3.06, terminate 4.82. The deploy count varies
// by a few requests from run to run, and only there: heavy steps (clone,
// migrate) take their node's slot before they look, so a worker that
// finds none asks PVE nothing, but which of the clones and migrations
// waiting on the template's node get its two slots in a pass depends on
// the order the workers reach them, and each pass that submits a clone
// reads /cluster/resources once.
func TestRequestsPerStep(t *testing.T) {
	t.Parallel()
	const batch = 9
	r := newBenchRig(t)
	var deploy, change, terminate reqTally
	for n := 0; ; n++ {
		if n == 0 {
			r.create(t, batch)
		}
		before := len(r.sim.Requests())
		s := r.pass(t)
		var one reqTally
		one.add(r.sim.Requests()[before:])
		if got := one.endpoints["GET /cluster/resources"]; got > 1 {
			t.Fatalf("deploy pass %d read /cluster/resources %d times, want at most once per pass\n%s", n, got, one.breakdown())
		}
		deploy.add(r.sim.Requests()[before:])
		deploy.steps += s.Advanced
		if s.Processed == 0 {
			break
		}
		if n > 100 {
			t.Fatalf("deploy did not converge:\n%s", r.notReady(t))
		}
	}
	for i := range batch {
		if _, err := r.eng.ChangePackage(context.Background(), fmt.Sprintf("svc-%05d", i), benchProducts[(i+1)%len(benchProducts)]); err != nil {
			t.Fatal(err)
		}
	}
	r.untilIdle(t, &change)
	for i := range batch {
		if _, err := r.eng.Terminate(context.Background(), fmt.Sprintf("svc-%05d", i)); err != nil {
			t.Fatal(err)
		}
	}
	r.untilIdle(t, &terminate)
	for _, c := range []struct {
		name string
		t    *reqTally
		max  float64
	}{{"deploy", &deploy, 2.0}, {"change-package", &change, 3.2}, {"terminate", &terminate, 4.9}} {
		t.Logf("%s: %d requests, %d steps, %.2f requests/step", c.name, c.t.requests, c.t.steps, c.t.perStep())
		if c.t.steps == 0 || c.t.perStep() > c.max {
			t.Errorf("%s: %.2f requests per completed step (%d requests, %d steps), want at most %.1f\n%s",
				c.name, c.t.perStep(), c.t.requests, c.t.steps, c.max, c.t.breakdown())
		}
	}
}
