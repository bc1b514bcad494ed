package engine

import (
	"context"

	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
)

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
			Step: step, From: vm.Status, Result: "event", Detail: detail})
	}
}
