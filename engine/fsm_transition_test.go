package engine_test

import (
	"context"
	"errors"
	"testing"

	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

// The table's FSM takes every outcome as an event at the VM's stored
// state. An outcome the table does not allow (a step sending the VM to a
// state it has no edge to) is reported and never written: status, version,
// attempts and hold stay as they were.
func TestIllegalOutcomeIsRefusedBeforeTheStoreIsTouched(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		exit states.State // the step's declared failure exit
		res  states.Result
		want string // the live line's result
	}{
		{"fail to a state without an edge", "", states.FailTo(states.ErrorTerminate, errors.New("gone wrong")),
			`not applied: illegal transition: "Reserve VMID and IPs failed" from creation in the test table`},
		{"fail to another state than the declared exit", states.Remove, states.FailTo(states.ErrorTerminate, errors.New("gone wrong")),
			"not applied: illegal transition: step \"Reserve VMID and IPs\" may fail only to remove, not to error_terminate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := tc.res
			h := newHarness(t, "", states.MustPipeline("test", states.Creation, []states.Step{
				{From: states.Creation, To: states.SetIP, Label: "Reserve VMID and IPs", Exit: tc.exit,
					Run: func(context.Context, *states.Env, store.VM) states.Result { return res }},
			}))
			vm := h.vm("svc-1", "creation")
			s, out := h.pass()
			require.Equal(t, 1, s.Errors)
			require.Contains(t, out, "svc-1  Reserve VMID and IPs  creation → error_terminate  "+tc.want)
			got := h.get(vm.ID)
			require.Equal(t, "creation", got.Status)
			require.Equal(t, vm.Version, got.Version)
			require.Zero(t, got.Attempts)
			require.False(t, got.Held)
			require.Empty(t, got.LastError)
		})
	}
}

// Every step of every production table is an FSM edge: its Done outcome
// moves the VM to the step's To, its declared failure exit to Exit.
func TestEveryStepOutcomeIsAnFSMEdge(t *testing.T) {
	t.Parallel()
	for _, p := range states.Pipelines() {
		for _, st := range p.Steps() {
			to, err := p.Transition(context.Background(), st.From, st, states.Success())
			require.NoError(t, err, "%s: %s", p.Name, st.Label)
			require.Equal(t, st.To, to, "%s: %s", p.Name, st.Label)
			if st.Exit != "" {
				to, err = p.Transition(context.Background(), st.From, st, states.FailTo(st.Exit, errors.New("x")))
				require.NoError(t, err, "%s: %s failed", p.Name, st.Label)
				require.Equal(t, st.Exit, to)
			}
			// A step never fires from another state.
			for _, other := range p.Steps() {
				if other.From != st.From {
					_, err := p.Transition(context.Background(), other.From, st, states.Success())
					require.ErrorIs(t, err, states.ErrIllegalTransition, "%s: %s from %s", p.Name, st.Label, other.From)
					break
				}
			}
		}
	}
}
