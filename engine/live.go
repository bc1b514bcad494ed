package engine

import (
	"fmt"
	"io"
	"time"

	"github.com/rs/zerolog"
)

// Live writes the lines an operator reads in cron mail or a terminal: one
// per step as it completes, sub-lines (DNS records, heartbeats) and a summary
// per task. Every line is written when it happens. Human console lines by
// default; JSON lines with format "json".
type Live struct {
	log zerolog.Logger
}

// NewLive returns a Live writer on w. format is "console" or "json".
func NewLive(w io.Writer, format string, verbose bool, clock Clock) (*Live, error) {
	w = zerolog.SyncWriter(w)
	switch format {
	case "", "console":
		w = zerolog.ConsoleWriter{
			Out: w, NoColor: true, TimeFormat: "2006-01-02 15:04:05",
			FieldsExclude: []string{"vm", "step", "from", "to", "result", "duration_ms", "detail", "task",
				"processed", "advanced", "waiting", "errors", "pid", "since", "hostname"},
		}
	case "json":
	default:
		return nil, fmt.Errorf("unknown log format %q; valid: console, json", format)
	}
	level := zerolog.InfoLevel
	if verbose {
		level = zerolog.DebugLevel
	}
	l := zerolog.New(w).Level(level).Hook(clockHook{clock})
	return &Live{log: l}, nil
}

// clockHook stamps lines with the engine's clock (fixed under tests).
type clockHook struct{ c Clock }

func (h clockHook) Run(e *zerolog.Event, _ zerolog.Level, _ string) {
	e.Time(zerolog.TimestampFieldName, h.c.Now())
}

// Logger exposes the underlying logger for other messages.
func (l *Live) Logger() *zerolog.Logger { return &l.log }

// StepLine is one completed step.
type StepLine struct {
	VM       string // service id
	Hostname string
	Step     string
	From, To string
	Result   string
	Failed   bool
	Duration time.Duration
}

// Step writes a step line: VM, step, from → to, result, duration.
func (l *Live) Step(s StepLine) {
	ev := l.log.Info()
	if s.Failed {
		ev = l.log.Warn()
	}
	arrow := s.From + " → " + s.To
	if s.To == "" || s.To == s.From {
		arrow = s.From
	}
	ev.Str("vm", s.VM).Str("hostname", s.Hostname).Str("step", s.Step).Str("from", s.From).Str("to", s.To).
		Str("result", s.Result).Int64("duration_ms", s.Duration.Milliseconds()).
		Msgf("%s  %s  %s  %s  (%s)", s.VM, s.Step, arrow, s.Result, roundDur(s.Duration))
}

// Sub writes a sub-line of a step (a DNS record, a heartbeat).
func (l *Live) Sub(vm, step, detail string) {
	l.log.Info().Str("vm", vm).Str("step", step).Str("detail", detail).Msgf("%s    %s", vm, detail)
}

// Summary is what one run of process_vms did.
type Summary struct {
	Processed, Advanced, Waiting, Errors int
	Duration                             time.Duration
}

// TaskSummary writes a task's summary line.
func (l *Live) TaskSummary(task string, s Summary) {
	l.log.Info().Str("task", task).Int("processed", s.Processed).Int("advanced", s.Advanced).
		Int("waiting", s.Waiting).Int("errors", s.Errors).Int64("duration_ms", s.Duration.Milliseconds()).
		Msgf("%s: processed %d, advanced %d, waiting %d, errors %d (%s)", task, s.Processed, s.Advanced, s.Waiting, s.Errors, roundDur(s.Duration))
}

// Skipped says a task did not run because another process holds its lock.
func (l *Live) Skipped(task string, h LockHolder) {
	l.log.Warn().Str("task", task).Int("pid", h.PID).Time("since", h.Since).
		Msgf("task %s skipped: %s", task, h.Describe())
}

func roundDur(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	default:
		return d.Round(100 * time.Millisecond).String()
	}
}
