package engine

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
)

// WriteMetrics writes pvectl's state as a Prometheus text file for the
// node_exporter textfile collector (docs/monitoring.md#metrics): written
// to a temporary file and renamed, so the collector never reads half a
// file. The figures come from the store, as the tick left it.
func (e *Engine) WriteMetrics(ctx context.Context, path string) error {
	reg := prometheus.NewRegistry()
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
	up.Set(epoch(now))
	return prometheus.WriteToTextfile(path, reg)
}

func epoch(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }
