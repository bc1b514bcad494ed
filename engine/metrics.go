package engine

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pvectl/pvectl/providers/dns"
	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
)

// WriteMetrics writes pvectl's state as a Prometheus text file for the
// node_exporter textfile collector (docs/monitoring.md#metrics): written
// to a temporary file and renamed, so the collector never reads half a
// file. The gauges come from the store, as the tick left it; the counters
// and histograms are the stored totals, to which what e.Metrics counted in
// this process is first added (one transaction).
func (e *Engine) WriteMetrics(ctx context.Context, path string) error {
	if err := e.Store.MetricsAdd(ctx, e.Metrics.take()); err != nil {
		return err
	}
	totals, err := e.Store.MetricTotals(ctx)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(totalsCollector(totals))
	gauge := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
		reg.MustRegister(g)
		return g
	}
	vec := func(name, help, label string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, []string{label})
		reg.MustRegister(g)
		return g
	}
	byState := vec("pvectl_vms", "VM records by state.", "state")
	held := gauge("pvectl_vms_held", "VMs held until an admin acts (pvectl vm retry).")
	stuck := gauge("pvectl_vms_stuck", "VMs in one state longer than health.stuck_after allows.")
	dirty := gauge("pvectl_vms_dns_dirty", "VMs whose DNS records wait for a retry.")
	backingOff := gauge("pvectl_vms_backing_off", "VMs waiting for a retry after a retryable error.")
	lastRun := vec("pvectl_task_last_run_timestamp_seconds", "When each task last started.", "task")
	lastOK := vec("pvectl_task_last_success_timestamp_seconds", "When each task's last successful run finished.", "task")
	lastDur := vec("pvectl_task_last_duration_seconds", "How long each task's last finished run took.", "task")
	lastErr := vec("pvectl_task_last_errors", "Errors (VMs or items) of each task's last run.", "task")
	lastFailed := vec("pvectl_task_last_run_failed", "1 when each task's last run failed as a whole.", "task")
	notes := vec("pvectl_notifications", "Notifications in the outbox by state (pending, parked).", "state")
	findings := vec("pvectl_reconcile_findings", "What the last reconcile run found (orphans, drift) by kind; pvectl orphans --last lists them.", "kind")
	up := gauge("pvectl_metrics_timestamp_seconds", "When this file was written.")

	now := e.Clock.Now()
	vms, err := e.Store.VMList(ctx, store.VMFilter{})
	if err != nil {
		return err
	}
	for _, s := range states.All() {
		byState.WithLabelValues(string(s)).Set(0)
	}
	for _, vm := range vms {
		byState.WithLabelValues(vm.Status).Inc()
		if vm.Held {
			held.Inc()
		} else if vm.NextAttemptAt.After(now) {
			backingOff.Inc()
		}
		if vm.DNSDirty {
			dirty.Inc()
		}
		if _, ok := e.StuckOf(vm, now); ok {
			stuck.Inc()
		}
	}
	last, err := e.Store.TaskRunLast(ctx)
	if err != nil {
		return err
	}
	oks, err := e.Store.TaskRunLastOK(ctx)
	if err != nil {
		return err
	}
	for _, t := range e.Tasks() {
		if r, ok := last[t.Name]; ok {
			lastRun.WithLabelValues(t.Name).Set(epoch(r.StartedAt))
			lastErr.WithLabelValues(t.Name).Set(float64(r.Errors))
			failed := 0.0
			if r.Result == "error" {
				failed = 1
			}
			lastFailed.WithLabelValues(t.Name).Set(failed)
			if r.Result != "running" {
				lastDur.WithLabelValues(t.Name).Set(r.Duration.Seconds())
			}
		}
		if at, ok := oks[t.Name]; ok {
			lastOK.WithLabelValues(t.Name).Set(epoch(at))
		}
	}
	pending, parked, err := e.Store.OutboxCounts(ctx)
	if err != nil {
		return err
	}
	notes.WithLabelValues("pending").Set(float64(pending))
	notes.WithLabelValues("parked").Set(float64(parked))
	stored, err := e.Store.Findings(ctx)
	if err != nil {
		return err
	}
	for _, k := range FindingKinds() {
		findings.WithLabelValues(k).Set(0)
	}
	for _, f := range stored {
		findings.WithLabelValues(f.Kind).Inc()
	}
	up.Set(epoch(now))
	return prometheus.WriteToTextfile(path, reg)
}

func epoch(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

// Metrics counted inside a process: step runs and failures, PVE requests.
// A short-lived cron process cannot keep a counter, so each tick that
// writes metrics adds what it counted to totals in the store
// (WriteMetrics) and exposes those: they only ever grow, as Prometheus
// counters must. A tick killed before it writes its metrics loses its
// increments (docs/monitoring.md#metrics).
const (
	mStepRuns     = "pvectl_step_runs_total"
	mStepFailures = "pvectl_step_failures_total"
	mPVEDuration  = "pvectl_pve_request_duration_seconds"
	mPVEErrors    = "pvectl_pve_request_errors_total"
	bucketSuffix  = "_bucket"
	sumSuffix     = "_sum"
	countSuffix   = "_count"
	classDNS      = "dns"   // a DNS update or lookup failed (providers/dns)
	classStore    = "store" // the step's outcome could not be written
	classOther    = "other" // anything else: a panic, a cancelled tick, a local check
	resNotApplied = "not_applied"
	labelStep     = "step"
	labelResult   = "result"
	labelClass    = "class"
	labelEndpoint = "endpoint"
	labelLE       = "le"
	stepRunsHelp  = "Pipeline steps run, by step and result (success, skip, partial, waiting, retry, failed, not_applied)."
	stepFailsHelp = "Pipeline steps that failed (retry, failed, not_applied), by step and error class."
	pveDurHelp    = "Duration of PVE API requests (each try of a retried read), by endpoint (method and path template)."
	pveErrorsHelp = "PVE API requests that failed, by endpoint and error class."
)

// PVEBuckets are the upper bounds of the PVE request duration histogram,
// in seconds (the adapter's default timeout is 60 s). The stored totals
// are per bound: changing them starts the new bounds at zero.
var PVEBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// Metrics collects a process's increments. A nil *Metrics counts nothing,
// so a tick without a metrics file does no extra work. Safe for
// concurrent use (the step runner advances VMs in parallel).
type Metrics struct {
	mu   sync.Mutex
	adds map[string]*store.MetricSeries
}

// NewMetrics returns an empty collector.
func NewMetrics() *Metrics { return &Metrics{adds: map[string]*store.MetricSeries{}} }

// add adds v to the series name{labels...} (label name, value pairs).
// The caller holds m.mu.
func (m *Metrics) add(name string, v float64, labels ...string) {
	key := name + "\x00" + strings.Join(labels, "\x00")
	s, ok := m.adds[key]
	if !ok {
		l := make(map[string]string, len(labels)/2)
		for i := 0; i+1 < len(labels); i += 2 {
			l[labels[i]] = labels[i+1]
		}
		s = &store.MetricSeries{Name: name, Labels: l}
		m.adds[key] = s
	}
	s.Value += v
}

// Step counts one step run: res is what the step returned (before the
// circuit breaker turns an outage into a wait: the step did fail), and
// applyErr the error writing its outcome, if any.
func (m *Metrics) Step(step string, res states.Result, applyErr error) {
	if m == nil {
		return
	}
	result, class := stepResult(res, applyErr)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.add(mStepRuns, 1, labelStep, step, labelResult, result)
	if class != "" {
		m.add(mStepFailures, 1, labelStep, step, labelClass, class)
	}
}

// stepResult is a step run's result label and, for a failure, its class.
func stepResult(res states.Result, applyErr error) (result, class string) {
	if applyErr != nil {
		return resNotApplied, classStore
	}
	switch res.Kind {
	case states.Done:
		return "success", ""
	case states.Skipped:
		return "skip", ""
	case states.PartlyDone:
		return "partial", ""
	case states.Waiting:
		return "waiting", ""
	case states.Retry:
		return "retry", errorClass(res.Err)
	default:
		return "failed", errorClass(res.Err)
	}
}

// errorClass names an error's class for metrics: a PVE error's class
// (proxmox.ClassNames: "transient", "permission denied", …), "dns" for a
// DNS error, "other" for anything else.
func errorClass(err error) string {
	var pe *proxmox.Error
	var de *dns.Error
	switch {
	case errors.As(err, &pe):
		return pe.Class.String()
	case errors.As(err, &de):
		return classDNS
	}
	return classOther
}

// ObservePVE counts one PVE request (proxmox.Options.Observe): its
// duration under its endpoint template, and its failure by class.
func (m *Metrics) ObservePVE(method, template string, d time.Duration, err error) {
	if m == nil {
		return
	}
	ep := method + " " + template
	secs := d.Seconds()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, b := range PVEBuckets {
		if secs <= b {
			m.add(mPVEDuration+bucketSuffix, 1, labelEndpoint, ep, labelLE, formatLE(b))
		}
	}
	m.add(mPVEDuration+sumSuffix, secs, labelEndpoint, ep)
	m.add(mPVEDuration+countSuffix, 1, labelEndpoint, ep)
	if err != nil {
		m.add(mPVEErrors, 1, labelEndpoint, ep, labelClass, proxmox.Classify(err).String())
	}
}

// take returns the increments counted so far and forgets them, so they
// are added to the totals once.
func (m *Metrics) take() []store.MetricSeries {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]store.MetricSeries, 0, len(m.adds))
	for _, s := range m.adds {
		out = append(out, *s)
	}
	m.adds = map[string]*store.MetricSeries{}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func formatLE(b float64) string { return strconv.FormatFloat(b, 'g', -1, 64) }

// totalsCollector exposes the stored totals as counters and histograms.
// It describes nothing up front (an unchecked collector): its series are
// whatever the store holds.
type totalsCollector []store.MetricSeries

var (
	descStepRuns     = prometheus.NewDesc(mStepRuns, stepRunsHelp, []string{labelStep, labelResult}, nil)
	descStepFailures = prometheus.NewDesc(mStepFailures, stepFailsHelp, []string{labelStep, labelClass}, nil)
	descPVEDuration  = prometheus.NewDesc(mPVEDuration, pveDurHelp, []string{labelEndpoint}, nil)
	descPVEErrors    = prometheus.NewDesc(mPVEErrors, pveErrorsHelp, []string{labelEndpoint, labelClass}, nil)
)

func (totalsCollector) Describe(chan<- *prometheus.Desc) {}

func (c totalsCollector) Collect(ch chan<- prometheus.Metric) {
	type hist struct {
		count   uint64
		sum     float64
		buckets map[float64]uint64
	}
	hists := map[string]*hist{}
	histOf := func(ep string) *hist {
		h, ok := hists[ep]
		if !ok {
			h = &hist{buckets: map[float64]uint64{}}
			for _, b := range PVEBuckets {
				h.buckets[b] = 0
			}
			hists[ep] = h
		}
		return h
	}
	for _, s := range c {
		l := s.Labels
		switch s.Name {
		case mStepRuns:
			ch <- prometheus.MustNewConstMetric(descStepRuns, prometheus.CounterValue, s.Value, l[labelStep], l[labelResult])
		case mStepFailures:
			ch <- prometheus.MustNewConstMetric(descStepFailures, prometheus.CounterValue, s.Value, l[labelStep], l[labelClass])
		case mPVEErrors:
			ch <- prometheus.MustNewConstMetric(descPVEErrors, prometheus.CounterValue, s.Value, l[labelEndpoint], l[labelClass])
		case mPVEDuration + bucketSuffix:
			if b, err := strconv.ParseFloat(l[labelLE], 64); err == nil {
				histOf(l[labelEndpoint]).buckets[b] = uint64(s.Value)
			}
		case mPVEDuration + sumSuffix:
			histOf(l[labelEndpoint]).sum = s.Value
		case mPVEDuration + countSuffix:
			histOf(l[labelEndpoint]).count = uint64(s.Value)
		}
	}
	for ep, h := range hists {
		ch <- prometheus.MustNewConstHistogram(descPVEDuration, h.count, h.sum, h.buckets, ep)
	}
}
