package engine_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pvectl/pvectl/engine"
	"github.com/pvectl/pvectl/providers/dns"
	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
)

// writeMetrics writes the metrics file and returns its lines.
func writeMetrics(t *testing.T, h *harness) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pvectl.prom")
	require.NoError(t, h.e.WriteMetrics(h.ctx, path))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// seriesOf returns the lines of the series called name.
func seriesOf(lines []string, name string) []string {
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l, name+"{") || strings.HasPrefix(l, name+" ") {
			out = append(out, l)
		}
	}
	return out
}

// Each step run is counted by step and result; a failed one also by its
// error class: a PVE error's class, "dns", or "other". A PVE outage that
// the circuit breaker turns into a wait is still a failed step (class
// transient): the VM is not charged, the metric shows what happened.
func TestStepMetrics(t *testing.T) {
	t.Parallel()
	const step = "Reserve VMID and IPs"
	outage := &proxmox.Error{Class: proxmox.ClassTransient, Op: "GET /cluster/resources", Message: "connection refused"}
	locked := &proxmox.Error{Class: proxmox.ClassLocked, Op: "POST /nodes/pve1/qemu/100/config", HTTPStatus: 500, Message: "VM is locked (clone)"}
	timeout := &dns.Error{Op: "update", Zone: "example.test", Kind: dns.KindTimeout, Rcode: -1}
	result := func(r states.Result) states.StepFunc {
		return func(context.Context, *states.Env, store.VM) states.Result { return r }
	}
	tests := []struct {
		name     string
		fn       states.StepFunc
		result   string
		class    string // "" = no failure counted
		vmStatus string
	}{
		{"success", done, "success", "", "set_ip"},
		{"skip", skip("nothing to do"), "skip", "", "set_ip"},
		{"partial", result(states.Partial("one record failed")), "partial", "", "set_ip"},
		{"waiting", wait("clone running"), "waiting", "", "creation"},
		{"retry, PVE class", result(states.Retryable(locked)), "retry", "locked", "creation"},
		{"PVE outage: the VM waits, the step failed", result(states.Retryable(outage)), "retry", "transient", "creation"},
		{"retry, DNS", result(states.Retryable(fmt.Errorf("publish: %w", timeout))), "retry", "dns", "creation"},
		{"held, not a PVE error", result(states.Permanent(errors.New("no product small"))), "failed", "other", "creation"},
		{"held, PVE class", result(states.Permanent(&proxmox.Error{Class: proxmox.ClassPermission, HTTPStatus: 403,
			Message: "Permission check failed (/vms/9000, VM.Clone)"})), "failed", "permission denied", "creation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, "", chain(tt.fn))
			a, b := h.vm("a", "creation"), h.vm("b", "creation")
			h.e.Metrics = engine.NewMetrics()
			h.pass()
			require.Equal(t, tt.vmStatus, h.get(a.ID).Status)
			require.Equal(t, tt.vmStatus, h.get(b.ID).Status)

			lines := writeMetrics(t, h)
			require.Equal(t, []string{fmt.Sprintf(`pvectl_step_runs_total{result=%q,step=%q} 2`, tt.result, step)},
				seriesOf(lines, "pvectl_step_runs_total"))
			var fails []string
			if tt.class != "" {
				fails = []string{fmt.Sprintf(`pvectl_step_failures_total{class=%q,step=%q} 2`, tt.class, step)}
			}
			require.Equal(t, fails, seriesOf(lines, "pvectl_step_failures_total"))
		})
	}
}

// The counts are totals kept in the store: each process adds what it
// counted once (writing the file twice adds nothing more), a process that
// counts nothing (no metrics file) leaves them as they were, and the
// next process adds to them.
func TestStepMetricsAcrossProcesses(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", chain(done, done))
	runs := func(lines []string) []string { return seriesOf(lines, "pvectl_step_runs_total") }

	h.vm("a", "creation")
	h.e.Metrics = engine.NewMetrics()
	h.pass()
	want := []string{`pvectl_step_runs_total{result="success",step="Reserve VMID and IPs"} 1`}
	require.Equal(t, want, runs(writeMetrics(t, h)))
	require.Equal(t, want, runs(writeMetrics(t, h)), "written twice, counted once")

	h.e.Metrics = nil // a tick without a metrics file
	h.at(time.Minute)
	_, out := h.pass()
	require.Contains(t, out, "Clone VM")
	require.Equal(t, want, runs(writeMetrics(t, h)))

	h.vm("b", "creation")
	h.e.Metrics = engine.NewMetrics()
	h.at(2 * time.Minute)
	h.pass()
	require.Equal(t, []string{`pvectl_step_runs_total{result="success",step="Reserve VMID and IPs"} 2`}, runs(writeMetrics(t, h)))
}

// PVE request durations are a histogram per endpoint template whose
// buckets, sum and count keep growing across processes; failed requests
// are counted by class.
func TestPVERequestMetrics(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	refused := &proxmox.Error{Class: proxmox.ClassTransient, HTTPStatus: 503, Message: "Service Unavailable"}

	h.e.Metrics = engine.NewMetrics()
	h.e.Metrics.ObservePVE("GET", "/version", 30*time.Millisecond, nil)
	h.e.Metrics.ObservePVE("GET", "/version", 2*time.Second, refused)
	h.e.Metrics.ObservePVE("GET", "/cluster/resources", 5*time.Millisecond, nil)
	lines := writeMetrics(t, h)
	bucket := func(ep, le string, n int) string {
		return fmt.Sprintf(`pvectl_pve_request_duration_seconds_bucket{endpoint=%q,le=%q} %d`, ep, le, n)
	}
	require.Subset(t, lines, []string{
		"# TYPE pvectl_pve_request_duration_seconds histogram",
		bucket("GET /version", "0.025", 0),
		bucket("GET /version", "0.05", 1),
		bucket("GET /version", "1", 1),
		bucket("GET /version", "2.5", 2),
		bucket("GET /version", "+Inf", 2),
		`pvectl_pve_request_duration_seconds_sum{endpoint="GET /version"} 2.03`,
		`pvectl_pve_request_duration_seconds_count{endpoint="GET /version"} 2`,
		bucket("GET /cluster/resources", "0.01", 1),
		`pvectl_pve_request_duration_seconds_count{endpoint="GET /cluster/resources"} 1`,
		"# TYPE pvectl_pve_request_errors_total counter",
		`pvectl_pve_request_errors_total{class="transient",endpoint="GET /version"} 1`,
	})
	require.Len(t, seriesOf(lines, "pvectl_pve_request_errors_total"), 1)

	h.e.Metrics = engine.NewMetrics() // the next tick
	h.e.Metrics.ObservePVE("GET", "/version", 40*time.Millisecond, nil)
	require.Subset(t, writeMetrics(t, h), []string{
		bucket("GET /version", "0.025", 0),
		bucket("GET /version", "0.05", 2),
		bucket("GET /version", "+Inf", 3),
		`pvectl_pve_request_duration_seconds_sum{endpoint="GET /version"} 2.07`,
		`pvectl_pve_request_duration_seconds_count{endpoint="GET /version"} 3`,
		`pvectl_pve_request_errors_total{class="transient",endpoint="GET /version"} 1`,
	})
}
