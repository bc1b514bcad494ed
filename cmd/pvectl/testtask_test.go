package main

import (
	"context"
	"os"
	"time"

	"github.com/pvectl/pvectl/engine"
)

// testSleepTask holds its lock for PVECTL_TEST_SLEEP (default 2s) so process
// tests can race real pvectl processes for it. It exists only in the test
// binary run with PVECTL_AS_MAIN=1 PVECTL_TEST_TASKS=1, never in pvectl.
func testSleepTask() engine.Task {
	return engine.Task{
		Name:            "test_sleep",
		Description:     "test only: sleeps for PVECTL_TEST_SLEEP while holding its lock",
		DefaultInterval: time.Minute,
		Run: func(ctx context.Context, e *engine.Engine) (engine.TaskCounts, error) {
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
				return engine.TaskCounts{}, ctx.Err()
			}
			return engine.TaskCounts{Processed: 1}, nil
		},
	}
}
