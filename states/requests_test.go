package states_test

import (
	"testing"

	"github.com/pvectl/pvectl/states"
	"github.com/stretchr/testify/require"
)

func TestRequestSetsAreStatesOfThePipelineFSMs(t *testing.T) {
	t.Parallel()
	require.NoError(t, states.CheckRequestSets())
}

func TestRequestSourceSets(t *testing.T) {
	t.Parallel()
	terminatable := map[states.State]bool{}
	for _, s := range states.TerminateFrom() {
		terminatable[s] = true
	}
	for _, tc := range []struct {
		state                               states.State
		terminate, terminating, changingPkg bool
	}{
		{states.Creation, true, false, false},
		{states.SetCloudinit, true, false, false},
		{states.Ready, true, false, false},
		{states.ChangePackage, true, false, false},
		{states.CPStop, true, false, true},
		{states.CPStart, true, false, true},
		{states.SetDNSRecords, true, false, false},
		{states.Reinstall, true, false, false},
		{states.Terminate, false, true, false},
		{states.TerminateDeleted, false, true, false},
		{states.ErrorTerminate, false, false, false},
		{states.Remove, false, false, false},
	} {
		t.Run(string(tc.state), func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.terminate, terminatable[tc.state], "terminate allowed")
			require.Equal(t, tc.terminating, states.Terminating(tc.state), "terminating")
			require.Equal(t, tc.changingPkg, states.ChangingPackage(tc.state), "changing package")
		})
	}
	require.Equal(t, []states.State{states.Ready, states.ChangePackage}, states.ChangePackageFrom())
	require.Equal(t, []states.State{states.Ready}, states.ReinstallFrom())
	require.Equal(t, []states.State{states.Ready}, states.SyncDNSFrom())
	require.Equal(t, []states.State{states.ErrorTerminate, states.Remove}, states.DeleteRecordFrom())
}
