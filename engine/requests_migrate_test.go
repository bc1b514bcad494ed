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

// vm migrate: from ready only (typed errors naming the allowed states);
// --node is required and validated (auto allowed); a VM last seen running
// needs --online; the same request again is idempotent, a different one is
// refused naming the pending one; an accepted request is an audit event
// and clears the target node the first step fills in.
func TestMigrateRequests(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newRequestEngine(t, "")

	for _, s := range []states.State{states.Creation, states.SetIP, states.ChangePackage, states.Terminate, states.Suspended, states.PowerStart} {
		vm := vmAt(t, e, "w-"+strings.ReplaceAll(string(s), "_", "-"), s)
		_, err := e.Migrate(ctx, vm.ServiceID, "pve2", false)
		var ws *engine.ErrWrongState
		require.ErrorAs(t, err, &ws, s)
		require.Equal(t, []states.State{states.Ready}, ws.Allowed)
		require.Contains(t, err.Error(), "(allowed: ready)")
		got, err := e.FindVM(ctx, vm.ServiceID)
		require.NoError(t, err)
		require.Equal(t, string(s), got.Status, "nothing changed")
	}

	vm := vmAt(t, e, "m1", states.Ready)
	var bad *engine.ErrInvalid
	_, err := e.Migrate(ctx, "m1", "", false)
	require.ErrorAs(t, err, &bad)
	require.Equal(t, "--node", bad.Field)
	_, err = e.Migrate(ctx, "m1", "no such node!", false)
	require.ErrorAs(t, err, &bad)
	require.Equal(t, "--node", bad.Field)
	_, err = e.Migrate(ctx, "nope", "pve2", false)
	require.True(t, errors.Is(err, engine.ErrNotFound))

	// Last seen running: --online is needed.
	require.NoError(t, e.Store.VMSetPowerSeen(ctx, vm.ID, "running", requestsT0))
	_, err = e.Migrate(ctx, "m1", "pve2", false)
	require.ErrorAs(t, err, &bad)
	require.Equal(t, "--online", bad.Field)
	require.Contains(t, err.Error(), "VM m1 is running (as last seen): migrate it live with --online")

	res, err := e.Migrate(ctx, "m1", engine.MigrateAuto, true)
	require.NoError(t, err)
	require.True(t, res.Changed)
	require.Equal(t, string(states.Migrate), res.VM.Status)
	require.Equal(t, "auto", res.VM.MigrateNode)
	require.True(t, res.VM.MigrateOnline)
	require.Empty(t, res.VM.TargetNode)
	require.Equal(t, "vm migrate", res.Audit.What)

	// The same request again changes nothing, also past the first step.
	res, err = e.Migrate(ctx, "m1", "auto", true)
	require.NoError(t, err)
	require.False(t, res.Changed)
	// A different one is refused, naming the pending one.
	_, err = e.Migrate(ctx, "m1", "pve2", true)
	var ws *engine.ErrWrongState
	require.ErrorAs(t, err, &ws)
	require.Contains(t, err.Error(), "VM m1 has a pending migration (--node auto --online, status migrate)")
	// Other requests are refused while it runs; terminate is not.
	_, err = e.Power(ctx, "m1", states.ActionStop, false)
	require.ErrorAs(t, err, &ws)
	require.Contains(t, states.TerminateFrom(), states.Migrate)
	require.Contains(t, states.TerminateFrom(), states.MigrateMoved)

	require.Equal(t, []string{
		"vm create →creation by tester; product small; hostname m1.example.com",
		"vm migrate ready→migrate by tester; node auto; online",
	}, requestLines(t, e, vm))

	// A later request clears the migration's options.
	require.NoError(t, e.Store.VMSetStatus(ctx, vm.ID, string(states.Ready), requestsT0))
	res, err = e.Power(ctx, "m1", states.ActionStart, false)
	require.NoError(t, err)
	require.Empty(t, res.VM.MigrateNode)
	require.False(t, res.VM.MigrateOnline)
}
