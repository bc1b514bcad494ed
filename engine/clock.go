package engine

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// Clock tells the time. Tests inject a fixed time through PVECTL_NOW, which is
// honoured only inside a test binary (testing.Testing()).
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now().UTC() }

// FixedClock always returns T.
type FixedClock struct{ T time.Time }

// Now returns the fixed time.
func (c FixedClock) Now() time.Time { return c.T }

// ClockFromEnv returns the real clock, or, under `go test` only, the time in
// PVECTL_NOW (RFC 3339).
func ClockFromEnv() (Clock, error) {
	v := os.Getenv("PVECTL_NOW")
	if v == "" || !testing.Testing() {
		return realClock{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return nil, fmt.Errorf("PVECTL_NOW=%q: want RFC 3339 like 2026-11-25T12:00:00Z", v)
	}
	return FixedClock{T: t.UTC()}, nil
}
