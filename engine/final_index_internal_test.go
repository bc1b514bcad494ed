package engine

import (
	"testing"

	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

// The step runner's final states are those of the store's partial index
// vms_active: otherwise every idle tick reads every ready VM (issue 15). A
// new final state needs a migration that rebuilds the index.
func TestFinalStatesMatchActiveIndex(t *testing.T) {
	t.Parallel()
	require.True(t, store.ActiveIndexCovers(finalStates()), "final states %v", finalStates())
}
