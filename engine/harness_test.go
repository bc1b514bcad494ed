package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pvectl/pvectl/config"
	"github.com/pvectl/pvectl/engine"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// minimalConfig is testdata/config/minimal.yaml, the smallest valid config
// (one product, no addresses); tests append a tasks or dns section.
func minimalConfig(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "config", "minimal.yaml"))
	require.NoError(t, err)
	return string(b)
}

// harness is an engine on a real SQLite store in a temp dir, a fixed clock
// the test moves, and live output captured in a buffer.
type harness struct {
	t   testing.TB
	ctx context.Context
	e   *engine.Engine
	st  *store.Store
	clk *engine.FixedClock
	out *bytes.Buffer
}

// newHarness builds an engine. tasks is the body of the config's tasks
// section (indented two spaces), or "".
func newHarness(t testing.TB, tasks string, pipes ...*states.Pipeline) *harness {
	t.Helper()
	yaml := minimalConfig(t)
	if tasks != "" {
		yaml += "tasks:\n" + tasks
	}
	cfg, err := config.Parse("pvectl.yaml", []byte(yaml))
	require.NoError(t, err)
	dir := t.TempDir()
	st, err := store.Create(context.Background(), filepath.Join(dir, "pvectl.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	clk := &engine.FixedClock{T: t0}
	out := &bytes.Buffer{}
	live, err := engine.NewLive(out, "console", false, clk)
	require.NoError(t, err)
	e := &engine.Engine{
		Config: cfg, Store: st, StateDir: dir, Clock: clk, Live: live, Pipelines: states.Registry(pipes),
		NewEnv: func(_ context.Context, e *engine.Engine) (*states.Env, error) {
			return &states.Env{Store: e.Store, Config: e.Config, Now: func() time.Time { return e.Clock.Now() }}, nil
		},
	}
	return &harness{t: t, ctx: context.Background(), e: e, st: st, clk: clk, out: out}
}

// at moves the clock to t0+d.
func (h *harness) at(d time.Duration) { h.clk.T = t0.Add(d) }

// vm creates a VM at status.
func (h *harness) vm(svc, status string) store.VM {
	h.t.Helper()
	vm, created, err := h.st.VMCreate(h.ctx, store.NewVM{ServiceID: svc, Hostname: svc + ".example.test",
		Product: "small", Status: status, Now: h.clk.T})
	require.NoError(h.t, err)
	require.True(h.t, created)
	return vm
}

// vmOn creates a VM at status living on node.
func (h *harness) vmOn(svc, status, node string) store.VM {
	h.t.Helper()
	vm := h.vm(svc, status)
	require.NoError(h.t, h.st.VMSetNode(h.ctx, vm.ID, vm.Status, vm.Version, node, h.clk.T))
	return h.get(vm.ID)
}

func (h *harness) get(id int64) store.VM {
	h.t.Helper()
	vm, err := h.st.VMGet(h.ctx, id)
	require.NoError(h.t, err)
	return vm
}

// pass runs one step-runner pass and returns its summary and what it printed.
func (h *harness) pass() (engine.Summary, string) {
	h.t.Helper()
	h.out.Reset()
	s, err := h.e.ProcessVMs(h.ctx)
	require.NoError(h.t, err)
	return s, h.out.String()
}

// lastRun returns the VM's newest run.
func (h *harness) lastRun(id int64) store.Run {
	h.t.Helper()
	runs, err := h.st.RunsForVM(h.ctx, id, 1)
	require.NoError(h.t, err)
	require.Len(h.t, runs, 1)
	return runs[0]
}

// summary renders the counts as the summary line does.
func summary(processed, advanced, waiting, errs int) string {
	return fmt.Sprintf("process_vms: processed %d, advanced %d, waiting %d, errors %d (", processed, advanced, waiting, errs)
}

// chainStates is the start of the deploy table; tests build pipelines over it.
var chainStates = []states.State{states.Creation, states.SetIP, states.Clone, states.SetDNS, states.Migrated, states.Ready}

var chainLabels = []string{"Reserve VMID and IPs", "Clone VM", "Publish DNS", "Migrate to target node", "Finish"}

// chain builds creation → set_ip → clone → set_dns → migrated → ready with
// the given step functions (fewer functions = a shorter table).
func chain(fns ...states.StepFunc) *states.Pipeline {
	var steps []states.Step
	for i, fn := range fns {
		steps = append(steps, states.Step{From: chainStates[i], To: chainStates[i+1], Label: chainLabels[i], Run: fn})
	}
	return states.MustPipeline("test", states.Creation, steps)
}

// calls counts step calls per VM and state.
type calls struct {
	mu sync.Mutex
	n  map[string]int
}

func newCalls() *calls { return &calls{n: map[string]int{}} }

func (c *calls) wrap(f states.StepFunc) states.StepFunc {
	return func(ctx context.Context, env *states.Env, vm store.VM) states.Result {
		c.mu.Lock()
		c.n[vm.ServiceID]++
		c.n[vm.ServiceID+"@"+vm.Status]++
		c.n[""]++
		c.mu.Unlock()
		return f(ctx, env, vm)
	}
}

// of returns how often key ("svc", "svc@status" or "" for all) was called.
func (c *calls) of(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

func done(context.Context, *states.Env, store.VM) states.Result { return states.Success() }

func skip(reason string) states.StepFunc {
	return func(context.Context, *states.Env, store.VM) states.Result { return states.Skip(reason) }
}

func wait(reason string) states.StepFunc {
	return func(context.Context, *states.Env, store.VM) states.Result { return states.Wait(reason) }
}

// script returns results[i] on the i-th call, then the last one forever.
func script(results ...states.Result) states.StepFunc {
	var mu sync.Mutex
	i := 0
	return func(context.Context, *states.Env, store.VM) states.Result {
		mu.Lock()
		defer mu.Unlock()
		r := results[min(i, len(results)-1)]
		i++
		return r
	}
}

// mustNotRun fails the test if the step is ever called.
func mustNotRun(t testing.TB) states.StepFunc {
	return func(_ context.Context, _ *states.Env, vm store.VM) states.Result {
		t.Errorf("step ran for %s at %s, which must never be picked", vm.ServiceID, vm.Status)
		return states.Success()
	}
}
