package states

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/looplab/fsm"
	"github.com/pvectl/pvectl/store"
)

// Kind is how a step ended. See the step contract in DESIGN.md §2.
type Kind int

const (
	// Done: the step's effect is in place; the VM advances.
	Done Kind = iota
	// Skipped: nothing to do (unchanged, not configured); the VM advances.
	Skipped
	// Waiting: a PVE task or the guest is still busy; the VM stays.
	Waiting
	// Retry: a transient failure; the VM stays and backs off.
	Retry
	// Fail: needs a person; the VM stays and is held until an admin acts.
	Fail
	// PartlyDone: the step did what it could and some of it failed (best
	// effort: DNS records, backups, a VM still running after a forced stop);
	// the failures are logged and the VM advances.
	PartlyDone
)

func (k Kind) String() string {
	return [...]string{"success", "skip", "waiting", "error", "error", "partial"}[k]
}

// Advances reports whether the VM moves on to the step's target: done,
// skipped or partly done.
func (k Kind) Advances() bool { return k == Done || k == Skipped || k == PartlyDone }

// Failed reports whether the step ended in an error (retryable or held).
func (k Kind) Failed() bool { return k == Retry || k == Fail }

// Result is what a step function returns.
type Result struct {
	Kind   Kind
	Reason string // skip, partial or wait reason
	Err    error  // Retry and Fail
	// ClearTask drops the stored PVE task reference (e.g. the task failed and
	// the next attempt must look again and resubmit).
	ClearTask bool
	// Goto, with Kind Fail, moves the VM to a state outside the table (the
	// terminate table's error_terminate) instead of holding it.
	Goto State
	// Outage, with Kind Waiting: the step could not reach PVE (the runner's
	// circuit breaker turned its error into a wait): no attempt and no
	// wait of the step are counted.
	Outage bool
}

// FailTo moves the VM to state s with err as its last error.
func FailTo(s State, err error) Result { return Result{Kind: Fail, Err: err, Goto: s} }

// Success is the Done result.
func Success() Result { return Result{Kind: Done} }

// Skip advances with a reason, logged as `skip (reason)`.
func Skip(reason string) Result { return Result{Kind: Skipped, Reason: reason} }

// Partial advances although part of the step failed (best effort), logged
// as `skip (reason)` like Skip; the reason says what failed.
func Partial(reason string) Result { return Result{Kind: PartlyDone, Reason: reason} }

// Wait keeps the VM at its step, logged as `waiting (reason)`.
func Wait(reason string) Result { return Result{Kind: Waiting, Reason: reason} }

// Retryable keeps the VM at its step with backoff.
func Retryable(err error) Result { return Result{Kind: Retry, Err: err} }

// Permanent holds the VM until an admin releases it.
func Permanent(err error) Result { return Result{Kind: Fail, Err: err} }

// Label renders the result as the log shows it.
func (r Result) Label() string {
	switch r.Kind {
	case Skipped, PartlyDone:
		return "skip (" + r.Reason + ")"
	case Waiting:
		return "waiting (" + r.Reason + ")"
	case Retry:
		return "error: " + ErrText(r.Err)
	case Fail:
		if r.Goto != "" {
			return "error → " + string(r.Goto) + ": " + ErrText(r.Err)
		}
		return "error (held): " + ErrText(r.Err)
	}
	return "success"
}

// ErrText is an error's text for the log and last_error ("unknown error" for nil).
func ErrText(err error) string {
	if err == nil {
		return "unknown error"
	}
	return err.Error()
}

// StepFunc performs one step for a VM. It must keep the step contract: look
// before acting, commit intent before side effects, submit at most one PVE
// task and never wait for it. The runner calls it through Step.Call, with
// what the step declared resolved in env and vm.
type StepFunc func(ctx context.Context, env *Env, vm store.VM) Result

// Step is one transition of a pipeline: the action that moves a VM from the
// state From (last completed) to To.
type Step struct {
	From  State
	To    State
	Label string // what the action does, e.g. "Clone VM"
	// Heavy steps (clone, migrate, backup) count against the per-node limit.
	Heavy bool
	// Exit is the state the step may send a VM to instead of To when it
	// fails for good (FailTo); "" when it only holds the VM.
	Exit State
	Run  StepFunc

	// What the runner resolves before Run (see Call): the product, the
	// VM's location and config.
	Needs Needs
	// SkipIf, once the product is known and before PVE is asked anything,
	// returns a reason to skip the step ("no additional disk in product").
	SkipIf func(env *Env, vm store.VM) string
	// Task names the PVE task the step submits and follows, as its lines
	// say it ("clone", "resize scsi0"); "" when it follows none for this VM.
	// The runner resolves a pending task of the step before Run.
	Task func(env *Env, vm store.VM) string
	// OnTaskError, for the few steps that need one, gets the error of a
	// pending task that failed, was lost or could not be read, and returns
	// the step's result (say, go on and look: a clone that failed because
	// the VMID exists was made by an earlier attempt).
	OnTaskError func(ctx context.Context, env *Env, vm store.VM, failed Result) Result
	// Stopped steps run while the VM is stopped (the change-package's
	// hardware steps): the runner stops it first, and starts it again when
	// the step holds the VM.
	Stopped bool
}

// Pipeline is an ordered table of steps, validated by a looplab/fsm FSM.
type Pipeline struct {
	Name  string
	Entry State // the state a request writes to start the pipeline
	steps map[State]Step
	order []Step
}

// NewPipeline builds a pipeline. Each state may have only one outgoing step,
// so a state's name leads to its step in one hop.
func NewPipeline(name string, entry State, steps []Step) (*Pipeline, error) {
	p := &Pipeline{Name: name, Entry: entry, steps: map[State]Step{}}
	for _, s := range steps {
		if !s.From.Valid() || !s.To.Valid() {
			return nil, fmt.Errorf("pipeline %s: step %q uses unknown state %s → %s", name, s.Label, s.From, s.To)
		}
		if _, dup := p.steps[s.From]; dup {
			return nil, fmt.Errorf("pipeline %s: state %s has two steps", name, s.From)
		}
		if s.Run == nil {
			return nil, fmt.Errorf("pipeline %s: step %s → %s has no function", name, s.From, s.To)
		}
		if s.OnTaskError != nil && s.Task == nil {
			return nil, fmt.Errorf("pipeline %s: step %s → %s has a task-error hook but follows no task", name, s.From, s.To)
		}
		p.steps[s.From] = s
		p.order = append(p.order, s)
	}
	return p, nil
}

// MustPipeline is NewPipeline for tables defined in code.
func MustPipeline(name string, entry State, steps []Step) *Pipeline {
	p, err := NewPipeline(name, entry, steps)
	if err != nil {
		panic(err)
	}
	return p
}

// StepFrom returns the step to run for a VM whose last completed state is s.
func (p *Pipeline) StepFrom(s State) (Step, bool) {
	st, ok := p.steps[s]
	return st, ok
}

// ErrIllegalTransition is returned by Transition for an outcome the table
// does not allow; the runner reports it and writes nothing.
var ErrIllegalTransition = errors.New("illegal transition")

// Transition applies a step's outcome to the VM's FSM, built at the VM's
// stored state from: Done, Skipped and PartlyDone fire the step's event
// (its label), a FailTo fires the step's "failed" event, which must lead to the state the
// step asked for. Waiting, Retry and a held Fail stay at from. The state to
// write is the FSM's state after the event; an outcome the table does not
// allow is ErrIllegalTransition and nothing may be written.
func (p *Pipeline) Transition(ctx context.Context, from State, step Step, res Result) (State, error) {
	var event string
	switch {
	case res.Kind.Advances():
		event = step.Label
	case res.Kind == Fail && res.Goto != "":
		event = step.Label + " failed"
	default:
		return from, nil
	}
	f := fsm.NewFSM(string(from), p.events(), nil)
	if err := f.Event(ctx, event); err != nil {
		return from, fmt.Errorf("%w: %q from %s in the %s table: %v", ErrIllegalTransition, event, from, p.Name, err)
	}
	to := State(f.Current())
	if res.Goto != "" && to != res.Goto {
		return from, fmt.Errorf("%w: step %q may fail only to %s, not to %s", ErrIllegalTransition, step.Label, to, res.Goto)
	}
	return to, nil
}

// Steps returns the table in order.
func (p *Pipeline) Steps() []Step { return append([]Step(nil), p.order...) }

// CanTransition reports whether from → to is a transition of this table,
// as the FSM sees it.
func (p *Pipeline) CanTransition(from, to State) bool {
	f := fsm.NewFSM(string(from), p.events(), nil)
	for _, ev := range f.AvailableTransitions() {
		if st, ok := p.steps[from]; ok && st.Label == ev && st.To == to {
			return true
		}
	}
	return false
}

// events are the FSM's transitions, one per step, named by the step's action.
func (p *Pipeline) events() []fsm.EventDesc {
	var ev []fsm.EventDesc
	for _, s := range p.order {
		ev = append(ev, fsm.EventDesc{Name: s.Label, Src: []string{string(s.From)}, Dst: string(s.To)})
		if s.Exit != "" {
			ev = append(ev, fsm.EventDesc{Name: s.Label + " failed", Src: []string{string(s.From)}, Dst: string(s.Exit)})
		}
	}
	return ev
}

// States returns every state the pipeline touches, as its FSM walked from
// the entry passes through them (flow order).
func (p *Pipeline) States() []State {
	var out []State
	p.walk(func(s State) { out = append(out, s) }, func(State, State, string) {})
	return out
}

// Mermaid renders the table as a Mermaid state diagram, generated by
// walking the FSM from the entry state: edges appear in flow order (each
// state's step, then its failure exit), and final states lead to [*].
func (p *Pipeline) Mermaid() string {
	var b strings.Builder
	b.WriteString("stateDiagram-v2\n")
	fmt.Fprintf(&b, "    [*] --> %s\n", p.Entry)
	var finals []State
	p.walk(func(s State) {
		if s.Final() {
			finals = append(finals, s)
		}
	}, func(from, to State, event string) {
		fmt.Fprintf(&b, "    %s --> %s: %s\n", from, to, event)
	})
	for _, s := range finals {
		fmt.Fprintf(&b, "    %s --> [*]\n", s)
	}
	return b.String()
}

// walk visits the FSM from the entry state, breadth first: every state once
// (state) and every edge in flow order (edge): a state's step, then its
// failure exit, each found by firing the event on an FSM built at the state.
func (p *Pipeline) walk(state func(State), edge func(from, to State, event string)) {
	seen := map[State]bool{}
	queue := []State{p.Entry}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		if seen[s] {
			continue
		}
		seen[s] = true
		state(s)
		st, ok := p.steps[s]
		if !ok {
			continue
		}
		for _, ev := range []string{st.Label, st.Label + " failed"} {
			f := fsm.NewFSM(string(s), p.events(), nil)
			if !f.Can(ev) {
				continue
			}
			if err := f.Event(context.Background(), ev); err != nil {
				continue
			}
			to := State(f.Current())
			edge(s, to, ev)
			queue = append(queue, to)
		}
	}
}

// Reaches reports whether a VM entering the pipeline can be in state s.
func (p *Pipeline) Reaches(s State) bool { return slices.Contains(p.States(), s) }

// Text renders the table as aligned text: state (done) → next action → next state.
func (p *Pipeline) Text() string {
	var b strings.Builder
	w := 0
	for _, s := range p.order {
		w = max(w, len(s.From))
	}
	fmt.Fprintf(&b, "%-*s  %s\n", w, "STATE (DONE)", "NEXT ACTION → STATE")
	for _, s := range p.order {
		fmt.Fprintf(&b, "%-*s  %s → %s\n", w, s.From, s.Label, s.To)
	}
	return b.String()
}

// Registry is a set of pipelines; a VM's status selects the step to run.
type Registry []*Pipeline

// StepFor finds the step for a state across the registry's pipelines.
func (r Registry) StepFor(s State) (Step, *Pipeline, bool) {
	for _, p := range r {
		if st, ok := p.StepFrom(s); ok {
			return st, p, true
		}
	}
	return Step{}, nil, false
}

// Names returns the pipelines' names, sorted.
func (r Registry) Names() []string {
	var out []string
	for _, p := range r {
		out = append(out, p.Name)
	}
	sort.Strings(out)
	return out
}

// Get returns the pipeline with this name.
func (r Registry) Get(name string) (*Pipeline, bool) {
	for _, p := range r {
		if p.Name == name {
			return p, true
		}
	}
	return nil, false
}
