package states_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pvectl/pvectl/states"
	"github.com/stretchr/testify/require"
)

// PipelineDoc renders docs/pipelines/NAME.md from the FSM, so the diagram
// in the docs is the code's.
func pipelineDoc(p *states.Pipeline) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# The %s pipeline\n\n", p.Name)
	fmt.Fprintf(&b, "Generated from the code by `PVECTL_UPDATE_DOCS=1 go test ./states -run TestPipelineDocsAreCurrent` (a test fails when this file is stale).\n")
	fmt.Fprintf(&b, "A state names the last completed step; each tick runs the action on its row.\n\n")
	fmt.Fprintf(&b, "| state (done) | next action | next state |\n|---|---|---|\n")
	for _, s := range p.Steps() {
		heavy := ""
		if s.Heavy {
			heavy = " (heavy: counts against `heavy_per_node`)"
		}
		to := "`" + string(s.To) + "`"
		if s.Exit != "" {
			to += " (fails for good: `" + string(s.Exit) + "`)"
		}
		fmt.Fprintf(&b, "| `%s` | %s%s | %s |\n", s.From, s.Label, heavy, to)
	}
	fmt.Fprintf(&b, "\n```mermaid\n%s```\n", p.Mermaid())
	return b.String()
}

func TestPipelineDocsAreCurrent(t *testing.T) {
	t.Parallel()
	update := os.Getenv("PVECTL_UPDATE_DOCS") == "1"
	for _, p := range states.Pipelines() {
		path := filepath.Join("..", "docs", "pipelines", p.Name+".md")
		want := pipelineDoc(p)
		if update {
			require.NoError(t, os.WriteFile(path, []byte(want), 0o644))
			continue
		}
		got, err := os.ReadFile(path)
		require.NoError(t, err, "run: PVECTL_UPDATE_DOCS=1 go test ./states -run TestPipelineDocsAreCurrent")
		require.Equal(t, want, string(got), "%s is stale; run: PVECTL_UPDATE_DOCS=1 go test ./states -run TestPipelineDocsAreCurrent", path)
	}
}

func TestResetTargetsAreFSMStates(t *testing.T) {
	t.Parallel()
	// Exactly the targets issue 6 names, each a state the FSM knows, and
	// only remove is flagged as not contacting Proxmox.
	var names []string
	for _, tgt := range states.ResetTargets() {
		names = append(names, string(tgt.State))
		got, err := states.LookupResetTarget(string(tgt.State))
		require.NoError(t, err, tgt.State)
		require.Equal(t, tgt.State, got.State)
		require.Contains(t, states.All(), tgt.State)
		require.NotEmpty(t, tgt.Help, tgt.State)
		require.Equal(t, tgt.State == states.Remove, tgt.NoProxmox, tgt.State)
	}
	require.Equal(t, []string{"ready", "creation", "set_ip", "change_package", "set_dns_records", "terminate", "remove"}, names)
	for _, bad := range []string{"cp_stop", "starting", "error_terminate", "redy", ""} {
		_, err := states.LookupResetTarget(bad)
		require.Error(t, err, bad)
	}
}

func TestEveryStateHasAStepOrIsFinal(t *testing.T) {
	t.Parallel()
	reg := states.Pipelines()
	for _, s := range states.All() {
		if s.Final() {
			continue
		}
		_, _, ok := reg.StepFor(s)
		require.True(t, ok, "state %s has no step: a VM there would be stuck", s)
	}
}

func TestCanTransitionFollowsTable(t *testing.T) {
	t.Parallel()
	d := states.Deploy()
	require.True(t, d.CanTransition(states.SetIP, states.Clone))
	require.False(t, d.CanTransition(states.SetIP, states.SetDNS))
	require.False(t, d.CanTransition(states.Ready, states.Creation))
}

// The diagram walks the FSM from the entry: every step (and its failure
// exit) is an edge, edges come in the table's flow order, and final states
// lead to [*].
func TestMermaidDrawsEveryEdgeInFlowOrder(t *testing.T) {
	t.Parallel()
	for _, p := range states.Pipelines() {
		m := p.Mermaid()
		require.True(t, strings.HasPrefix(m, "stateDiagram-v2\n    [*] --> "+string(p.Entry)+"\n"), p.Name)
		last := 0
		for _, s := range p.Steps() {
			edge := fmt.Sprintf("    %s --> %s: %s\n", s.From, s.To, s.Label)
			at := strings.Index(m, edge)
			require.GreaterOrEqual(t, at, last, "%s: %q missing or out of flow order in\n%s", p.Name, edge, m)
			last = at
			if s.Exit != "" {
				require.Contains(t, m, fmt.Sprintf("    %s --> %s: %s failed\n", s.From, s.Exit, s.Label))
			}
			for _, st := range []states.State{s.To, s.Exit} {
				if st != "" && st.Final() {
					require.Contains(t, m, "    "+string(st)+" --> [*]\n", p.Name)
				}
			}
		}
	}
}

// Reset-status targets and request source sets are checked against the
// FSMs: a state counts as a table's when the FSM walked from the entry
// passes through it.
func TestPipelineReachesOnlyItsOwnStates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		p     *states.Pipeline
		s     states.State
		reach bool
	}{
		{states.Deploy(), states.Creation, true},
		{states.Deploy(), states.Ready, true},
		{states.Deploy(), states.TerminateStopped, false},
		{states.TerminateTable(), states.ErrorTerminate, true},
		{states.TerminateTable(), states.Remove, true},
		{states.TerminateTable(), states.SetIP, false},
		{states.ChangePackageTable(), states.CPUpdateIP, true},
		{states.ChangePackageTable(), states.Creation, false},
	} {
		require.Equal(t, tc.reach, tc.p.Reaches(tc.s), "%s reaches %s", tc.p.Name, tc.s)
	}
	require.NoError(t, states.CheckRequestSets())
}
