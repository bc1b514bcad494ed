package engine_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/pvectl/pvectl/engine"
	"github.com/stretchr/testify/require"
)

// What a quiet Live (pvectl tick without -v) and a full one (run-task,
// tick -v) print for the same lines, and in which zone.
func TestLiveQuietAndZone(t *testing.T) {
	t.Parallel()
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	wait := engine.StepLine{VM: "v1", Step: "Clone VM", From: "set_ip", Result: "waiting (clone task running for 1m0s)", Waiting: true}
	done := engine.StepLine{VM: "v1", Step: "Clone VM", From: "set_ip", To: "set_cpu", Result: "success"}
	idle := engine.Summary{Processed: 1, Waiting: 1}
	tests := []struct {
		name  string
		quiet bool
		zone  *time.Location
		lines func(l *engine.Live)
		want  string
	}{
		{"quiet: a wait and its summary print nothing", true, nil, func(l *engine.Live) {
			m := l.Mark()
			l.Step(wait)
			l.TaskSummary("process_vms", idle, m)
		}, ""},
		{"full: the wait and the summary", false, nil, func(l *engine.Live) {
			m := l.Mark()
			l.Step(wait)
			l.TaskSummary("process_vms", idle, m)
		}, "2026-11-25T12:00:00Z INF v1  Clone VM  set_ip  waiting (clone task running for 1m0s)  (0s)\n" +
			"2026-11-25T12:00:00Z INF process_vms: processed 1, advanced 0, waiting 1, errors 0 (0s)\n"},
		{"quiet: a step that advanced and the summary", true, nil, func(l *engine.Live) {
			m := l.Mark()
			l.Step(done)
			l.TaskSummary("process_vms", engine.Summary{Processed: 1, Advanced: 1}, m)
		}, "2026-11-25T12:00:00Z INF v1  Clone VM  set_ip → set_cpu  success  (0s)\n" +
			"2026-11-25T12:00:00Z INF process_vms: processed 1, advanced 1, waiting 0, errors 0 (0s)\n"},
		{"quiet: a DNS ERR sub-line is a warning and brings the summary", true, nil, func(l *engine.Live) {
			m := l.Mark()
			l.Sub("v1", "Retry DNS records", "· fwd ERR v1.example.com A 192.0.2.10 (zone example.com): timeout")
			l.TaskSummary("process_vms", idle, m)
		}, "2026-11-25T12:00:00Z WRN v1    · fwd ERR v1.example.com A 192.0.2.10 (zone example.com): timeout\n" +
			"2026-11-25T12:00:00Z INF process_vms: processed 1, advanced 0, waiting 1, errors 0 (0s)\n"},
		{"an OK sub-line and a sub-line that merely mentions ERR stay info", true, nil, func(l *engine.Live) {
			l.Sub("v1", "Configure DNS records", "· fwd OK v1.example.com A 192.0.2.10 (zone example.com)")
			l.Sub("v1", "Clone VM", "ERR is not a tag here")
		}, "2026-11-25T12:00:00Z INF v1    · fwd OK v1.example.com A 192.0.2.10 (zone example.com)\n" +
			"2026-11-25T12:00:00Z INF v1    ERR is not a tag here\n"},
		{"a warning before the mark does not bring the summary", true, nil, func(l *engine.Live) {
			l.Logger().Warn().Msg("earlier task")
			m := l.Mark()
			l.TaskSummary("process_vms", idle, m)
		}, "2026-11-25T12:00:00Z WRN earlier task\n"},
		{"console times in the zone, with its offset", false, berlin, func(l *engine.Live) {
			l.Step(done)
			l.Skipped("notify", engine.LockHolder{PID: 42, Since: time.Date(2026, 11, 25, 11, 59, 0, 0, time.UTC)})
		}, "2026-11-25T13:00:00+01:00 INF v1  Clone VM  set_ip → set_cpu  success  (0s)\n" +
			"2026-11-25T13:00:00+01:00 WRN task notify skipped: lock held by pid 42 since 2026-11-25T12:59:00+01:00\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			l, err := engine.NewLiveWith(&out, engine.LiveOptions{Clock: engine.FixedClock{T: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}, Zone: tc.zone})
			require.NoError(t, err)
			l.SetQuiet(tc.quiet)
			tc.lines(l)
			require.Equal(t, tc.want, out.String())
		})
	}
}

// JSON lines keep RFC 3339 UTC whatever the display zone.
func TestLiveJSONStaysUTC(t *testing.T) {
	t.Parallel()
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	var out bytes.Buffer
	l, err := engine.NewLiveWith(&out, engine.LiveOptions{Format: "json", Clock: engine.FixedClock{T: time.Date(2026, 11, 25, 13, 0, 0, 0, berlin)}, Zone: berlin})
	require.NoError(t, err)
	l.Step(engine.StepLine{VM: "v1", Step: "Clone VM", From: "set_ip", Result: "success"})
	require.Contains(t, out.String(), `"time":"2026-11-25T12:00:00Z"`)
}

func TestHumanTime(t *testing.T) {
	t.Parallel()
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	at := time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		loc  *time.Location
		want string
	}{
		{nil, "2026-07-01T10:00:00Z"},
		{time.UTC, "2026-07-01T10:00:00Z"},
		{berlin, "2026-07-01T12:00:00+02:00"}, // summer time
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, engine.HumanTime(at, tc.loc))
	}
}
