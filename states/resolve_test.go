package states_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/pvectl/pvectl/config"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

// A task-error hook belongs to a step that follows a task.
func TestStepTaskErrorHookNeedsTask(t *testing.T) {
	t.Parallel()
	run := func(context.Context, *states.Env, store.VM) states.Result { return states.Success() }
	hook := func(_ context.Context, _ *states.Env, _ store.VM, failed states.Result) states.Result { return failed }
	_, err := states.NewPipeline("t", states.SetIP, []states.Step{{From: states.SetIP, To: states.Clone, Label: "Clone VM", Run: run, OnTaskError: hook}})
	require.ErrorContains(t, err, "has a task-error hook but follows no task")
}

// SkipIf sees the resolved product and skips before PVE is asked anything
// (the Env has no PVE client here: a call would panic).
func TestStepSkipsBeforeLookingAtPVE(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "config", "minimal.yaml"))
	require.NoError(t, err)
	cfg, err := config.Parse("pvectl.yaml", b)
	require.NoError(t, err)
	env := &states.Env{Config: cfg}
	step := states.Step{From: states.SetSystemDiskBandwidth, To: states.SetCreatedAdditionalDisk, Label: "Create additional disk",
		Needs: states.NeedProduct | states.NeedLocation,
		SkipIf: func(env *states.Env, _ store.VM) string {
			if env.Product.AdditionalDisk.SizeGB == 0 {
				return "no additional disk in product"
			}
			return ""
		},
		Run: func(context.Context, *states.Env, store.VM) states.Result {
			t.Error("the step ran")
			return states.Success()
		}}
	res := step.Call(context.Background(), env, store.VM{ServiceID: "s1", Product: "small", VMID: 1000, Node: "pve1"})
	require.Equal(t, "skip (no additional disk in product)", res.Label())
	require.Zero(t, env.Product.Cores, "the caller's env is not changed")
}
