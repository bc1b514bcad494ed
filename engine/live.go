package engine

import (
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Live writes the lines an operator reads in cron mail or a terminal: one
// per step as it completes, sub-lines (DNS records, heartbeats) and a summary
// per task. Every line is written when it happens. Human console lines by
// default, stamped in the display zone (RFC 3339: 2026-11-25T12:00:00Z in
// UTC); JSON lines with format "json" (time in RFC 3339 UTC).
//
// A quiet Live (pvectl tick without -v) leaves out what needs no reader:
// the lines of steps that only wait, and a task's summary when the task
// advanced nothing, had no error and printed no warning. A tick where every
// VM waits prints nothing, so cron mails nothing.
type Live struct {
	log       zerolog.Logger
	quiet     bool
	zone      *time.Location // of times in messages (console timestamps use it too)
	attention *atomic.Int64  // lines written at warn level or above
}

// LiveOptions configure NewLiveWith.
type LiveOptions struct {
	Format  string // "console" (default) or "json"
	Verbose bool   // debug lines too
	Clock   Clock
	Zone    *time.Location // console timestamps; nil = UTC
}

// NewLive returns a Live writer on w with console timestamps in UTC. format
// is "console" or "json".
func NewLive(w io.Writer, format string, verbose bool, clock Clock) (*Live, error) {
	return NewLiveWith(w, LiveOptions{Format: format, Verbose: verbose, Clock: clock})
}

// NewLiveWith returns a Live writer on w.
func NewLiveWith(w io.Writer, o LiveOptions) (*Live, error) {
	w = zerolog.SyncWriter(w)
	zone := o.Zone
	if zone == nil {
		zone = time.UTC
	}
	switch o.Format {
	case "", "console":
		w = zerolog.ConsoleWriter{
			Out: w, NoColor: true, TimeFormat: time.RFC3339, TimeLocation: zone,
			FieldsExclude: []string{"vm", "step", "from", "to", "result", "duration_ms", "detail", "task",
				"processed", "advanced", "waiting", "errors", "pid", "since", "hostname"},
		}
	case "json":
	default:
		return nil, fmt.Errorf("unknown log format %q; valid: console, json", o.Format)
	}
	level := zerolog.InfoLevel
	if o.Verbose {
		level = zerolog.DebugLevel
	}
	attention := &atomic.Int64{}
	l := zerolog.New(w).Level(level).Hook(clockHook{o.Clock}).Hook(attentionHook{attention})
	return &Live{log: l, zone: zone, attention: attention}, nil
}

// SetQuiet makes the Live leave out waiting step lines and summaries of
// tasks that did nothing worth reading (see Live). Set before any line.
func (l *Live) SetQuiet(quiet bool) { l.quiet = quiet }

// Mark returns a count to give TaskSummary: the warnings written so far.
func (l *Live) Mark() int64 { return l.attention.Load() }

// clockHook stamps lines with the engine's clock (fixed under tests), in UTC.
type clockHook struct{ c Clock }

func (h clockHook) Run(e *zerolog.Event, _ zerolog.Level, _ string) {
	e.Time(zerolog.TimestampFieldName, h.c.Now().UTC())
}

// attentionHook counts the lines written at warn level or above.
type attentionHook struct{ n *atomic.Int64 }

func (h attentionHook) Run(_ *zerolog.Event, level zerolog.Level, _ string) {
	if level >= zerolog.WarnLevel && level < zerolog.NoLevel {
		h.n.Add(1)
	}
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
	Waiting  bool // the step only waits (a PVE task, a lock, the guest): left out when quiet
	Duration time.Duration
}

// Step writes a step line: VM, step, from → to, result, duration.
func (l *Live) Step(s StepLine) {
	if l.quiet && s.Waiting && !s.Failed {
		return
	}
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

// Sub writes a sub-line of a step (a DNS record, a heartbeat). A sub-line
// that reports a failed operation ("· fwd ERR …", "· backup-del ERR …") is a
// warning: its step goes on or retries it, and the step line says how the
// step ended.
func (l *Live) Sub(vm, step, detail string) {
	ev := l.log.Info()
	if subFailed(detail) {
		ev = l.log.Warn()
	}
	ev.Str("vm", vm).Str("step", step).Str("detail", detail).Msgf("%s    %s", vm, detail)
}

// Summary is what one run of process_vms did.
type Summary struct {
	Processed, Advanced, Waiting, Errors int
	Duration                             time.Duration
}

// subFailed reports whether a sub-line reports a failed operation: "· TAG
// ERR …".
func subFailed(detail string) bool {
	rest, ok := strings.CutPrefix(detail, "· ")
	if !ok {
		return false
	}
	_, after, ok := strings.Cut(rest, " ")
	return ok && strings.HasPrefix(after, "ERR ")
}

// TaskSummary writes a task's summary line. mark is Mark() taken when the
// task began: a quiet Live writes the line only when the task advanced a
// VM, had an error or wrote a warning since.
func (l *Live) TaskSummary(task string, s Summary, mark int64) {
	if l.quiet && s.Advanced == 0 && s.Errors == 0 && l.Mark() == mark {
		return
	}
	l.log.Info().Str("task", task).Int("processed", s.Processed).Int("advanced", s.Advanced).
		Int("waiting", s.Waiting).Int("errors", s.Errors).Int64("duration_ms", s.Duration.Milliseconds()).
		Msgf("%s: processed %d, advanced %d, waiting %d, errors %d (%s)", task, s.Processed, s.Advanced, s.Waiting, s.Errors, roundDur(s.Duration))
}

// Skipped says a task did not run because another process holds its lock.
func (l *Live) Skipped(task string, h LockHolder) {
	l.log.Warn().Str("task", task).Int("pid", h.PID).Time("since", h.Since).
		Msgf("task %s skipped: %s", task, h.DescribeIn(l.zone))
}

func roundDur(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	default:
		return d.Round(100 * time.Millisecond).String()
	}
}
