package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pvectl/pvectl/engine"
	"github.com/pvectl/pvectl/states"
	"github.com/stretchr/testify/require"
)

// vm start|stop|shutdown|reboot: allowed only from ready; the same action
// again is idempotent; a different action while one is pending is refused
// naming it; every accepted request is an audit event.
func TestPowerRequests(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newRequestEngine(t, "")

	// From any state but ready: ErrWrongState listing ready.
	for _, s := range []states.State{states.Creation, states.SetIP, states.ChangePackage, states.Terminate, states.ErrorTerminate} {
		vm := vmAt(t, e, "w-"+strings.ReplaceAll(string(s), "_", "-"), s)
		_, err := e.Power(ctx, vm.ServiceID, states.ActionStart, false)
		var ws *engine.ErrWrongState
		require.ErrorAs(t, err, &ws, s)
		require.Equal(t, []states.State{states.Ready}, ws.Allowed)
		require.Contains(t, err.Error(), "(allowed: ready)")
		got, err := e.FindVM(ctx, vm.ServiceID)
		require.NoError(t, err)
		require.Equal(t, string(s), got.Status, "nothing changed")
	}

	// Bad input: --force is for shutdown only; an unknown action; an unknown VM.
	vm := vmAt(t, e, "p1", states.Ready)
	_, err := e.Power(ctx, "p1", states.ActionStop, true)
	var bad *engine.ErrInvalid
	require.ErrorAs(t, err, &bad)
	require.Equal(t, "--force", bad.Field)
	_, err = e.Power(ctx, "p1", states.PowerAction("hibernate"), false)
	require.ErrorAs(t, err, &bad)
	_, err = e.Power(ctx, "nope", states.ActionStop, false)
	require.True(t, errors.Is(err, engine.ErrNotFound))

	// Accepted: the entry state, at once.
	res, err := e.Power(ctx, "p1", states.ActionReboot, false)
	require.NoError(t, err)
	require.True(t, res.Changed)
	require.Equal(t, string(states.PowerReboot), res.VM.Status)

	// The same action again changes nothing, also once past its first step.
	res, err = e.Power(ctx, "p1", states.ActionReboot, false)
	require.NoError(t, err)
	require.False(t, res.Changed)
	require.NoError(t, e.Store.VMSetStatus(ctx, vm.ID, string(states.PowerRebooted), requestsT0))
	res, err = e.Power(ctx, "p1", states.ActionReboot, false)
	require.NoError(t, err)
	require.False(t, res.Changed)
	require.Equal(t, string(states.PowerRebooted), res.VM.Status)

	// A different action is refused, naming the pending one.
	for _, a := range []states.PowerAction{states.ActionStart, states.ActionStop, states.ActionShutdown} {
		_, err = e.Power(ctx, "p1", a, false)
		var ws *engine.ErrWrongState
		require.ErrorAs(t, err, &ws, a)
		require.Contains(t, err.Error(), "VM p1 has a pending reboot (status power_rebooted)")
	}
	// Other requests are refused too; terminate is not.
	_, err = e.ChangePackage(ctx, "p1", "large")
	require.Error(t, err)
	require.Contains(t, states.TerminateFrom(), states.PowerRebooted)

	// shutdown: a repeat with --force makes the pending one forced (an
	// audit event); without --force it changes nothing and never unforces.
	vm2 := vmAt(t, e, "p2", states.Ready)
	res, err = e.Power(ctx, "p2", states.ActionShutdown, false)
	require.NoError(t, err)
	require.True(t, res.Changed)
	require.False(t, res.VM.PowerForce)
	res, err = e.Power(ctx, "p2", states.ActionShutdown, true)
	require.NoError(t, err)
	require.True(t, res.Changed)
	require.True(t, res.VM.PowerForce)
	res, err = e.Power(ctx, "p2", states.ActionShutdown, false)
	require.NoError(t, err)
	require.False(t, res.Changed)
	got, err := e.FindVM(ctx, "p2")
	require.NoError(t, err)
	require.True(t, got.PowerForce)
	require.Equal(t, []string{
		"vm create →creation by tester; product small; hostname p2.example.com",
		"vm shutdown ready→power_shutdown by tester",
		"vm shutdown power_shutdown→power_shutdown by tester; force",
	}, requestLines(t, e, vm2))

	// A new request clears an earlier --force.
	require.NoError(t, e.Store.VMSetStatus(ctx, vm2.ID, string(states.Ready), requestsT0))
	res, err = e.Power(ctx, "p2", states.ActionShutdown, false)
	require.NoError(t, err)
	require.False(t, res.VM.PowerForce)
}
