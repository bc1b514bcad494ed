package engine

import (
	"context"
	"strings"

	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
)

// RunResult is how a run of a VM ended (runs.result), and how the runner
// sorts a step's outcome: advanced, waiting, or an error.
type RunResult string

const (
	// RunSuccess: every step of the run advanced (done, skip or partial).
	RunSuccess RunResult = "success"
	// RunWaiting: the run stopped at a step that waits (a PVE task, the guest).
	RunWaiting RunResult = "waiting"
	// RunError: the run stopped at an error, a held VM or an outcome not applied.
	RunError RunResult = "error"
)

// resultOf sorts a step's result.
func resultOf(res states.Result) RunResult {
	switch {
	case res.Kind == states.Waiting:
		return RunWaiting
	case res.Kind.Failed():
		return RunError
	}
	return RunSuccess
}

// LineEvent is the result of a run line that is a sub-line of a step (a DNS
// record, a heartbeat, an event) rather than the step's own line.
const LineEvent = "event"

// IsEvent reports whether a run line is a step's sub-line.
func IsEvent(l store.RunLine) bool { return l.Result == LineEvent }

// LineFailed reports whether a run line records a failure: a step that
// ended in an error (retry, held, failed to a state) or an outcome that was
// not applied.
func LineFailed(l store.RunLine) bool {
	return strings.HasPrefix(l.Result, "error") || strings.HasPrefix(l.Result, notApplied)
}

// notApplied starts the result of a step whose outcome was not written.
const notApplied = "not applied"

// finalStates are the states the runner never picks: those State.Final says
// the cron leaves alone.
func finalStates() []string {
	var out []string
	for _, s := range states.All() {
		if s.Final() {
			out = append(out, string(s))
		}
	}
	return out
}

// emitter returns the Emit function of a step (or of the DNS retry) running
// for vm in run runID: each sub-line is printed live and kept in the VM's
// run log as an event of that step.
func (e *Engine) emitter(ctx context.Context, vm store.VM, runID int64, step string) func(string) {
	bg := context.WithoutCancel(ctx)
	return func(detail string) {
		e.Live.Sub(vm.ServiceID, step, detail)
		_ = e.Store.RunAppendLine(bg, store.RunLine{RunID: runID, At: e.Clock.Now(),
			Step: step, From: vm.Status, Result: LineEvent, Detail: detail})
	}
}
