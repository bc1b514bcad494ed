// Package engine runs pvectl's scheduled tasks: the tick, task locks, the
// step runner that advances VMs through the pipeline tables, retry and
// backoff, and the live output.
package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pvectl/pvectl/config"
	"github.com/pvectl/pvectl/providers/dns"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
)

// Engine ties the config, the store and the pipelines together for one
// process run.
type Engine struct {
	Config    *config.Config
	Store     *store.Store
	StateDir  string
	Clock     Clock
	Live      *Live
	Pipelines states.Registry
	// TaskList is the scheduled tasks; nil = StandardTasks.
	TaskList []Task
	// NewEnv builds the step environment (API clients) on first use, so an
	// idle tick connects to nothing.
	NewEnv func(ctx context.Context, e *Engine) (*states.Env, error)
	// Actor names who makes requests in their audit lines; "" = the OS
	// user (CurrentUser).
	Actor string
	// Metrics counts step runs and PVE requests for WriteMetrics; nil (a
	// tick that writes no metrics) counts nothing.
	Metrics *Metrics
	// Loc is the zone human output prints times in (--tz, timezone);
	// nil = UTC.
	Loc *time.Location

	envOnce sync.Once
	env     *states.Env
	envErr  error
}

// ErrLockHeld means a task did not run because another process holds its lock.
var ErrLockHeld = errors.New("lock held")

// lockHeldError says who holds the lock; it matches ErrLockHeld.
type lockHeldError struct {
	holder LockHolder
	loc    *time.Location
}

func (e lockHeldError) Error() string        { return e.holder.DescribeIn(e.loc) }
func (e lockHeldError) Is(target error) bool { return target == ErrLockHeld }

// ValidateConfig checks the parts of the config that name engine things
// (tasks: the scheduled tasks the binary runs).
func ValidateConfig(c *config.Config, tasks []Task) error {
	var errs []error
	names := taskNames(tasks)
	keys := make([]string, 0, len(c.Tasks.Intervals))
	for k := range c.Tasks.Intervals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, ok := lookupTask(tasks, k); !ok {
			errs = append(errs, c.Errorf("tasks.intervals."+k, "unknown task %q; valid: %s", k, strings.Join(names, ", ")))
		}
	}
	// TSIG secrets: a secret_file may hold a BIND or Knot key statement or a
	// bare base64 secret; whatever the form, the secret must be usable, so
	// `config check` fails now rather than every DNS update later.
	for i := range c.DNS.Zones {
		z := &c.DNS.Zones[i]
		key := fmt.Sprintf("dns.zones[%d].secret", i)
		if z.SecretFile != "" {
			key += "_file"
		}
		name, alg, secret, err := dns.ParseKey(z.Secret.Reveal())
		if err != nil {
			if z.SecretFile == "" {
				err = errors.New("not a valid base64 TSIG secret (as tsig-keygen prints it)")
			}
			errs = append(errs, c.Errorf(key, "%v", err))
			continue
		}
		if name != "" && dns.Normalize(name) != dns.Normalize(z.KeyName) {
			errs = append(errs, c.Errorf(key, "the key file names key %q but key_name is %q", name, z.KeyName))
		}
		if alg != "" && alg != z.Algorithm {
			errs = append(errs, c.Errorf(key, "the key file says algorithm %s but the zone uses %s; set algorithm: %s", alg, z.Algorithm, alg))
		}
		z.Secret = config.Secret(secret)
	}
	return errors.Join(errs...)
}

// Interval is a task's configured interval (0 = disabled).
func (e *Engine) Interval(t Task) time.Duration {
	if e.Config != nil {
		if d, ok := e.Config.Tasks.Intervals[t.Name]; ok {
			return d.D()
		}
	}
	return t.DefaultInterval
}

// due reports whether a task that last started at last is due at now (a
// last start later than now counts as due). A
// little slack absorbs cron's start-time jitter, so a 1-minute task started by
// a 1-minute cron runs every tick.
func due(last time.Time, interval time.Duration, now time.Time) bool {
	if last.IsZero() || last.After(now) {
		// A last start in the future was recorded by a clock that ran
		// ahead; waiting for it would stall the task until then.
		return true
	}
	slack := min(interval/10, 10*time.Second)
	return !now.Before(last.Add(interval - slack))
}

// Tick runs every task whose interval has passed. A task whose lock is held
// is reported and skipped; that is not an error.
func (e *Engine) Tick(ctx context.Context) error {
	last, err := e.Store.TaskRunLast(ctx)
	if err != nil {
		return err
	}
	now := e.Clock.Now()
	var errs []error
	for _, t := range e.Tasks() {
		iv := e.Interval(t)
		if iv == 0 || !due(last[t.Name].StartedAt, iv, now) {
			e.Live.Logger().Debug().Str("task", t.Name).Msgf("task %s not due (interval %s, last start %s)",
				t.Name, iv, e.HumanTime(last[t.Name].StartedAt))
			continue
		}
		if err := e.RunTask(ctx, t); err != nil && !errors.Is(err, ErrLockHeld) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// RunTask runs one task now under its lock, and records the run.
func (e *Engine) RunTask(ctx context.Context, t Task) error {
	lock, holder, ok, err := TryLockTask(e.StateDir, t.Name, e.Clock.Now())
	if err != nil {
		return err
	}
	if !ok {
		e.Live.Skipped(t.Name, holder)
		return fmt.Errorf("task %s: %w", t.Name, lockHeldError{holder, e.Zone()})
	}
	defer func() { _ = lock.Unlock() }()

	startedAt := e.Clock.Now()
	start := time.Now()
	id, err := e.Store.TaskRunStart(ctx, t.Name, os.Getpid(), startedAt)
	if err != nil {
		return err
	}
	counts, runErr := t.Run(ctx, e)
	rec := store.TaskRun{ID: id, FinishedAt: startedAt.Add(time.Since(start)), Duration: time.Since(start),
		Result: "ok", Processed: counts.Processed, Errors: counts.Errors, Message: counts.Message}
	if runErr != nil {
		rec.Result, rec.Message = "error", runErr.Error()
	}
	// Record the end even if the task's context was cancelled.
	if err := e.Store.TaskRunFinish(context.WithoutCancel(ctx), rec); err != nil {
		return errors.Join(runErr, err)
	}
	// Every write checks the file first; this catches a database removed or
	// replaced during a run that wrote nothing afterwards, so cron still
	// reports it (exit 1) instead of a quiet success.
	if err := e.Store.Verify(); err != nil {
		return errors.Join(runErr, err)
	}
	if runErr != nil {
		return fmt.Errorf("task %s: %w", t.Name, runErr)
	}
	return nil
}

// Env returns the step environment, built once.
func (e *Engine) Env(ctx context.Context) (*states.Env, error) {
	e.envOnce.Do(func() {
		if e.NewEnv == nil {
			e.env = &states.Env{Store: e.Store, Config: e.Config, Now: e.Clock.Now}
			return
		}
		e.env, e.envErr = e.NewEnv(ctx, e)
	})
	return e.env, e.envErr
}

// TaskStatus is one row of `pvectl tasks`.
type TaskStatus struct {
	Name         string     `json:"name"`
	Description  string     `json:"description"`
	Interval     string     `json:"interval"`
	Enabled      bool       `json:"enabled"`
	LastStart    *time.Time `json:"last_start"`
	LastDuration string     `json:"last_duration"`
	LastResult   string     `json:"last_result"`
	LastMessage  string     `json:"last_message"`
	Processed    int        `json:"last_processed"`
	Errors       int        `json:"last_errors"`
	LockHeld     bool       `json:"lock_held"`
	LockPID      int        `json:"lock_pid,omitempty"`
	LockSince    *time.Time `json:"lock_since,omitempty"`
}

// TaskStatuses lists every task with its last run and current lock holder.
func (e *Engine) TaskStatuses(ctx context.Context) ([]TaskStatus, error) {
	last, err := e.Store.TaskRunLast(ctx)
	if err != nil {
		return nil, err
	}
	var out []TaskStatus
	for _, t := range e.Tasks() {
		iv := e.Interval(t)
		s := TaskStatus{Name: t.Name, Description: t.Description, Interval: iv.String(), Enabled: iv > 0}
		if r, ok := last[t.Name]; ok {
			st := r.StartedAt
			s.LastStart, s.LastResult, s.LastMessage = &st, r.Result, r.Message
			s.Processed, s.Errors = r.Processed, r.Errors
			if r.Result != "running" {
				s.LastDuration = r.Duration.String()
			}
		}
		h, held := LockStatus(e.StateDir, t.Name)
		if s.LastResult == "running" && !held {
			// Its process died without recording an end (kill -9, power loss).
			s.LastResult = "interrupted"
		}
		if held {
			s.LockHeld, s.LockPID = true, h.PID
			if !h.Since.IsZero() {
				since := h.Since
				s.LockSince = &since
			}
		}
		out = append(out, s)
	}
	return out, nil
}
