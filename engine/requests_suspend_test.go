package engine_test

import (
	"context"
	"testing"

	"github.com/pvectl/pvectl/engine"
	"github.com/pvectl/pvectl/states"
	"github.com/stretchr/testify/require"
)

// vm suspend: from ready at once; queued while a pipeline runs (and
// cancelled by unsuspend); idempotent; refused when terminating or gone.
// vm unsuspend: from any suspend state; a no-op otherwise. While suspended
// every request but unsuspend and terminate is refused.
func TestSuspendRequests(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newRequestEngine(t, "")

	vm := vmAt(t, e, "s1", states.Ready)
	res, err := e.Suspend(ctx, "s1", "invoice 7")
	require.NoError(t, err)
	require.True(t, res.Changed)
	require.Equal(t, string(states.Suspend), res.VM.Status)
	require.Equal(t, "invoice 7", res.VM.SuspendReason)
	res, err = e.Suspend(ctx, "s1", "")
	require.NoError(t, err)
	require.False(t, res.Changed)

	require.NoError(t, e.Store.VMSetStatus(ctx, vm.ID, string(states.Suspended), requestsT0))
	_, err = e.Power(ctx, "s1", states.ActionStart, false)
	var ws *engine.ErrWrongState
	require.ErrorAs(t, err, &ws)
	_, err = e.ChangePackage(ctx, "s1", "large")
	require.ErrorAs(t, err, &ws)
	_, err = e.Reinstall(ctx, "s1", engine.Reinstall{})
	require.ErrorAs(t, err, &ws)
	for _, s := range []states.State{states.Suspend, states.SuspendStopped, states.Suspended} {
		require.Contains(t, states.TerminateFrom(), s, "terminate works from any suspend state")
		require.Contains(t, states.UnsuspendFrom(), s)
	}

	res, err = e.Unsuspend(ctx, "s1")
	require.NoError(t, err)
	require.True(t, res.Changed)
	require.Equal(t, string(states.Unsuspend), res.VM.Status)
	res, err = e.Unsuspend(ctx, "s1")
	require.NoError(t, err)
	require.False(t, res.Changed, "an unsuspend under way changes nothing")

	// Still deploying: queued (an audit event), idempotent, cancelled by unsuspend.
	vm2 := vmAt(t, e, "s2", states.SetNetwork)
	res, err = e.Suspend(ctx, "s2", "first invoice")
	require.NoError(t, err)
	require.True(t, res.Changed)
	require.Equal(t, string(states.SetNetwork), res.VM.Status)
	require.True(t, res.VM.SuspendPending)
	require.Contains(t, res.Notes[0], "queued")
	res, err = e.Suspend(ctx, "s2", "first invoice")
	require.NoError(t, err)
	require.False(t, res.Changed)
	res, err = e.Unsuspend(ctx, "s2")
	require.NoError(t, err)
	require.True(t, res.Changed)
	got, err := e.FindVM(ctx, "s2")
	require.NoError(t, err)
	require.False(t, got.SuspendPending)
	require.Equal(t, []string{
		"vm create →creation by tester; product small; hostname s2.example.com",
		"vm suspend set_network→set_network by tester; reason first invoice; queued until ready",
		"vm unsuspend set_network→set_network by tester; queued suspend cancelled",
	}, requestLines(t, e, vm2))

	// Terminating, removed, error_terminate: refused, nothing changed.
	for _, s := range []states.State{states.Terminate, states.Remove, states.ErrorTerminate} {
		v := vmAt(t, e, "t-"+map[states.State]string{states.Terminate: "a", states.Remove: "b", states.ErrorTerminate: "c"}[s], s)
		_, err := e.Suspend(ctx, v.ServiceID, "")
		require.ErrorAs(t, err, &ws, s)
		got, err := e.FindVM(ctx, v.ServiceID)
		require.NoError(t, err)
		require.False(t, got.SuspendPending)
	}
	_, err = e.Suspend(ctx, "s1", "two\nlines")
	var bad *engine.ErrInvalid
	require.ErrorAs(t, err, &bad)
}
