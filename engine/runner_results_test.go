package engine_test

import (
	"testing"

	"github.com/pvectl/pvectl/engine"
	"github.com/pvectl/pvectl/states"
	"github.com/stretchr/testify/require"
)

// A step that did its work with failures (best effort) advances like a
// done step: the VM moves on, its counters reset, the pass counts it as
// advanced and the run ends in success; the line reads `skip (reason)`.
func TestPartialAdvances(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", chain(script(states.Partial("2 DNS record(s) failed; will retry in the background"))))
	vm := h.vm("svc-1", "creation")

	s, out := h.pass()
	require.Equal(t, []int{1, 1, 0, 0}, []int{s.Processed, s.Advanced, s.Waiting, s.Errors})
	require.Contains(t, out, "INF svc-1  Reserve VMID and IPs  creation → set_ip  skip (2 DNS record(s) failed; will retry in the background)")
	require.Contains(t, out, summary(1, 1, 0, 0))

	got := h.get(vm.ID)
	require.Equal(t, "set_ip", got.Status)
	require.Zero(t, got.Attempts)
	require.False(t, got.Held)
	run := h.lastRun(vm.ID)
	require.Equal(t, string(engine.RunSuccess), run.Result)
}

// The kinds sort as the runner needs them.
func TestResultKinds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		res              states.Result
		advances, failed bool
		label            string
	}{
		{res: states.Success(), advances: true, label: "success"},
		{res: states.Skip("no change"), advances: true, label: "skip (no change)"},
		{res: states.Partial("1 backup(s) removed, 1 failed (best effort)"), advances: true, label: "skip (1 backup(s) removed, 1 failed (best effort))"},
		{res: states.Wait("busy"), label: "waiting (busy)"},
		{res: states.Retryable(errString("595")), failed: true, label: "error: 595"},
		{res: states.Permanent(errString("403")), failed: true, label: "error (held): 403"},
	} {
		require.Equal(t, tc.advances, tc.res.Kind.Advances(), tc.label)
		require.Equal(t, tc.failed, tc.res.Kind.Failed(), tc.label)
		require.Equal(t, tc.label, tc.res.Label())
	}
}

type errString string

func (e errString) Error() string { return string(e) }
