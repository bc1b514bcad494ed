package proxmox

import (
	"context"
	"math/rand/v2"
	"reflect"
	"time"
)

// Read retries: a GET that fails with a ClassTransient error is sent again
// (Adapter.call), with a short jittered backoff.

// ReadAttempts is how many times in all the adapter sends a GET that keeps
// failing with a ClassTransient error. A fault injected into a read must
// fail that many calls to reach the caller.
const ReadAttempts = 3

// Backoff between read attempts: readBackoffBase, doubled after each try and
// capped at readBackoffMax, jittered to between half of that and all of it.
const (
	readBackoffBase = 100 * time.Millisecond
	readBackoffMax  = 500 * time.Millisecond
)

// readRetry retries idempotent reads (GET only) that failed with a
// ClassTransient error (5xx without a known message, 502/503/504/429,
// 595/596, refused/reset connections, timeouts), so that a single glitch
// does not cost a pipeline step its backoff (minutes). Every other class is
// returned at once: permission, auth, not found, invalid, and ClassLocked (a
// config lock is something to wait for across ticks, not a read glitch).
// It never waits past the context: a cancelled context, or a deadline
// closer than the next backoff, returns the last error.
type readRetry struct {
	attempts  int
	base, max time.Duration
	// sleep waits d or until ctx is done (then it returns ctx.Err()).
	sleep func(ctx context.Context, d time.Duration) error
	// jitter picks the actual wait for a backoff of d.
	jitter func(d time.Duration) time.Duration
}

func defaultReadRetry() readRetry {
	return readRetry{attempts: ReadAttempts, base: readBackoffBase, max: readBackoffMax, sleep: sleepCtx, jitter: halfJitter}
}

// delay is the wait after the attempt-th failed try (1-based).
func (r readRetry) delay(attempt int) time.Duration {
	d := r.base
	for i := 1; i < attempt && d < r.max; i++ {
		d *= 2
	}
	d = min(d, r.max)
	if r.jitter != nil {
		d = r.jitter(d)
	}
	return d
}

// halfJitter returns a random duration in [d/2, d].
func halfJitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// resetOut zeroes what a failed try may have decoded into out.
func resetOut(out any) {
	if v := reflect.ValueOf(out); v.Kind() == reflect.Pointer && !v.IsNil() {
		v.Elem().SetZero()
	}
}
