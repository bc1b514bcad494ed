package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
)

// DNSRetryLabel is the step name under which background DNS retries are
// printed and kept in the VM's run log.
const DNSRetryLabel = "Retry DNS records"

// dnsRetrySkip are the states whose VMs the DNS retry leaves alone: a DNS
// resync or hostname change that rewrites the records itself (the new name
// is checked for foreign records first), and a terminate before its DNS
// phase (which deletes them).
// VMs past the terminate's DNS phase (and in remove or error_terminate) are
// retried delete-only: see states.RetryDNS.
var dnsRetrySkip = []string{
	string(states.SetDNSRecords), string(states.SetHostname), string(states.HostnameRenamed),
	string(states.Terminate), string(states.TerminateStopped), string(states.TerminateBackupsRemoved),
}

// RetryDNS is process_vms' background DNS pass: for every DNS-dirty VM whose
// DNS backoff has passed, whatever its pipeline state (ready included), it
// publishes the records that are not in place and deletes the recorded ones
// its plan no longer has. Every record prints its `· fwd OK|ERR …` line, live
// and into the VM's run log, and each VM ends with a step line. A VM whose
// records are all in place is no longer dirty; otherwise its next retry
// backs off like a step (1, 2, 4 … 30 minutes, jittered).
//
// It never fails process_vms (DNS never blocks a pipeline): store and setup
// errors are logged. Nothing is printed when no VM is due.
func (e *Engine) RetryDNS(ctx context.Context) {
	if e.Config == nil || len(e.Config.DNS.Zones) == 0 {
		return
	}
	log := e.Live.Logger()
	due, err := e.Store.DNSDirtyDue(ctx, e.Clock.Now(), dnsRetrySkip)
	if err != nil {
		log.Error().Err(err).Msgf("DNS retry: cannot list DNS-dirty VMs: %v", err)
		return
	}
	if len(due) == 0 {
		return
	}
	env, err := e.Env(ctx)
	if err != nil {
		log.Error().Err(err).Msgf("DNS retry: prepare environment: %v", err)
		return
	}
	work := make(chan store.DNSRetry)
	var wg sync.WaitGroup
	for range max(1, min(e.Config.Tasks.ProcessVMs.Concurrency, len(due))) {
		wg.Go(func() {
			for d := range work {
				e.retryDNS(ctx, env, d)
			}
		})
	}
	for _, d := range due {
		if ctx.Err() != nil {
			break
		}
		work <- d
	}
	close(work)
	wg.Wait()
}

// retryDNS runs one VM's DNS retry as a run of its log.
func (e *Engine) retryDNS(ctx context.Context, base *states.Env, d store.DNSRetry) {
	vm := d.VM
	bg := context.WithoutCancel(ctx)
	runID, err := e.Store.RunStart(ctx, vm.ID, "process_vms", e.Clock.Now())
	if err != nil {
		e.Live.Logger().Error().Str("vm", vm.ServiceID).Err(err).Msgf("%s  DNS retry: store error: %v", vm.ServiceID, err)
		return
	}
	env := *base
	env.Emit = e.emitter(ctx, vm, runID, DNSRetryLabel)

	began := time.Now()
	failed, tried, err := states.RetryDNS(ctx, &env, vm)
	now := e.Clock.Now()
	var result string
	ok := false
	switch {
	case err != nil:
		// A store error: nothing was sent; the next pass tries again.
		result = "error: " + err.Error()
	case failed == 0:
		if err = e.Store.DNSSetClean(ctx, vm.ID, vm.Version, now); err != nil {
			result = "error: record DNS state: " + err.Error()
			break
		}
		ok, result = true, fmt.Sprintf("success (%d record operation(s); DNS in sync)", tried)
	default:
		attempts := d.Attempts + 1
		wait := Backoff(attempts, rand.Float64())
		result = fmt.Sprintf("error: %d of %d DNS record operation(s) failed; retry %d, next in %s",
			failed, tried, attempts, wait.Round(time.Second))
		if err = e.Store.DNSSetDirty(ctx, vm.ID, attempts, now.Add(wait), now); err != nil {
			result += "; record DNS state: " + err.Error()
		}
	}
	took := time.Since(began)
	line := StepLine{VM: vm.ServiceID, Hostname: vm.Hostname, Step: DNSRetryLabel, From: vm.Status, To: vm.Status,
		Result: result, Failed: !ok, Duration: took}
	e.Live.Step(line)
	_ = e.Store.RunAppendLine(bg, store.RunLine{RunID: runID, At: now, Step: DNSRetryLabel, From: vm.Status,
		To: vm.Status, Result: result, Duration: took})
	runResult := RunSuccess
	if !ok {
		runResult = RunError
	}
	_ = e.Store.RunFinish(bg, runID, string(runResult), e.Clock.Now())
}
