package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/pvectl/pvectl/providers/dns"
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
// backs off like a step (1, 2, 4 … 30 minutes, jittered) — unless every
// failure said its DNS server was down (unreachable, timeout, SERVFAIL):
// then no retry is counted and the next pass tries again. The DNS servers
// are behind a circuit breaker (dnsBreaker) for the pass.
//
// It never fails process_vms (DNS never blocks a pipeline): store and setup
// errors are logged. Nothing is printed when no VM is due.
func (e *Engine) RetryDNS(ctx context.Context) {
	b := e.newDNSBreaker()
	e.retryDNS(ctx, b)
	e.warnDNSBreaker(b, "process_vms")
}

// newDNSBreaker is a fresh DNS circuit breaker for one pass (nil without
// DNS zones).
func (e *Engine) newDNSBreaker() *dnsBreaker {
	if e.Config == nil || len(e.Config.DNS.Zones) == 0 {
		return nil
	}
	zones := make([]dns.Zone, 0, len(e.Config.DNS.Zones))
	for _, z := range e.Config.DNS.Zones {
		zones = append(zones, dns.Zone{Name: z.Name, Server: z.Server})
	}
	return newDNSBreaker(zones)
}

// warnDNSBreaker prints the pass's one line per DNS server it stopped
// sending to.
func (e *Engine) warnDNSBreaker(b *dnsBreaker, task string) {
	if b == nil {
		return
	}
	for _, l := range b.lines(task) {
		e.Live.Logger().Warn().Str("task", task).Msg(l)
	}
}

func (e *Engine) retryDNS(ctx context.Context, b *dnsBreaker) {
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
	if b != nil && env.DNS != nil {
		pass := *env
		pass.DNS = b.wrap(env.DNS)
		env = &pass
	}
	work := make(chan store.DNSRetry)
	var wg sync.WaitGroup
	for range max(1, min(e.Config.Tasks.ProcessVMs.Concurrency, len(due))) {
		wg.Go(func() {
			for d := range work {
				e.retryVMDNS(ctx, env, d)
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

// retryVMDNS runs one VM's DNS retry as a run of its log. The run starts
// with the first thing the retry has to say: a VM none of whose operations
// were sent (its servers' breakers are open) is not touched at all.
func (e *Engine) retryVMDNS(ctx context.Context, base *states.Env, d store.DNSRetry) {
	vm := d.VM
	bg := context.WithoutCancel(ctx)
	var runID int64
	var runErr error
	startRun := func() int64 {
		if runID == 0 && runErr == nil {
			runID, runErr = e.Store.RunStart(ctx, vm.ID, "process_vms", e.Clock.Now())
			if runErr != nil {
				e.Live.Logger().Error().Str("vm", vm.ServiceID).Err(runErr).Msgf("%s  DNS retry: store error: %v", vm.ServiceID, runErr)
			}
		}
		return runID
	}
	env := *base
	env.Emit = func(detail string) {
		if id := startRun(); id != 0 {
			e.emitter(ctx, vm, id, DNSRetryLabel)(detail)
		} else {
			e.Live.Sub(vm.ServiceID, DNSRetryLabel, detail)
		}
	}

	began := time.Now()
	res, err := states.RetryDNSDetail(ctx, &env, vm)
	now := e.Clock.Now()
	var result string
	ok, failed := false, true
	switch {
	case err != nil:
		// A store error: nothing was sent; the next pass tries again.
		result = "error: " + err.Error()
	case res.Failed == 0:
		if err = e.Store.DNSSetClean(ctx, vm.ID, vm.Version, now); err != nil {
			result = "error: record DNS state: " + err.Error()
			break
		}
		ok, failed, result = true, false, fmt.Sprintf("success (%d record operation(s); DNS in sync)", res.Tried)
	case res.NotSent == res.Tried:
		// Nothing sent: its servers are down this pass. Not touched, no
		// line (the pass's breaker line says so), no retry counted.
		return
	case res.Outage == res.Failed:
		// The server was down, not the VM's fault: no retry counted, the
		// next pass tries again.
		failed = false
		result = fmt.Sprintf("waiting (%d of %d DNS record operation(s) not done: DNS server down; retry count unchanged at %d)",
			res.Failed, res.Tried, d.Attempts)
		if err = e.Store.DNSSetDirty(ctx, vm.ID, d.Attempts, time.Time{}, now); err != nil {
			result += "; record DNS state: " + err.Error()
		}
	default:
		attempts := d.Attempts + 1
		wait := Backoff(attempts, rand.Float64())
		result = fmt.Sprintf("error: %d of %d DNS record operation(s) failed; retry %d, next in %s",
			res.Failed, res.Tried, attempts, wait.Round(time.Second))
		if err = e.Store.DNSSetDirty(ctx, vm.ID, attempts, now.Add(wait), now); err != nil {
			result += "; record DNS state: " + err.Error()
		}
	}
	took := time.Since(began)
	line := StepLine{VM: vm.ServiceID, Hostname: vm.Hostname, Step: DNSRetryLabel, From: vm.Status, To: vm.Status,
		Result: result, Failed: failed, Duration: took}
	e.Live.Step(line)
	if startRun() == 0 {
		return
	}
	_ = e.Store.RunAppendLine(bg, store.RunLine{RunID: runID, At: now, Step: DNSRetryLabel, From: vm.Status,
		To: vm.Status, Result: result, Duration: took})
	runResult := RunSuccess
	switch {
	case failed:
		runResult = RunError
	case !ok:
		runResult = RunWaiting
	}
	_ = e.Store.RunFinish(bg, runID, string(runResult), e.Clock.Now())
}
