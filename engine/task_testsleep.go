package engine

import (
	"context"
	"os"
	"testing"
	"time"
)

// test_sleep exists only inside test binaries with PVECTL_TEST_TASKS=1: it
// holds its lock for PVECTL_TEST_SLEEP so tests can race real processes for it.
func init() {
	register(Task{
		Name:            "test_sleep",
		Description:     "test only: sleeps for PVECTL_TEST_SLEEP while holding its lock",
		DefaultInterval: time.Minute,
		testOnly:        true,
		Run: func(ctx context.Context, e *Engine) (TaskCounts, error) {
			d, err := time.ParseDuration(os.Getenv("PVECTL_TEST_SLEEP"))
			if err != nil {
				d = 2 * time.Second
			}
			if f := os.Getenv("PVECTL_TEST_STARTED"); f != "" {
				_ = os.WriteFile(f, []byte("started\n"), 0o644)
			}
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return TaskCounts{}, ctx.Err()
			}
			return TaskCounts{Processed: 1}, nil
		},
	})
}

func testTasksEnabled() bool {
	return testing.Testing() && os.Getenv("PVECTL_TEST_TASKS") == "1"
}
