package engine_test

import (
	"os"
	"testing"
	"time"

	"github.com/pvectl/pvectl/engine"
	"github.com/stretchr/testify/require"
)

// `pvectl tasks` (engine.LockStatus) only looks at a task lock (/proc/locks,
// then the holder's fdinfo) and never takes it, not even for a moment: a tick
// taking the lock while `tasks` polls as fast as it can is never refused, and
// LockStatus sees the lock while it is held.
func TestLockStatusNeverBlocksATick(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	old := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l, _, ok, err := engine.TryLockTask(dir, "process_vms", old)
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, l.Unlock()) // the previous tick ended

	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // a monitoring job polling `pvectl tasks`
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				engine.LockStatus(dir, "process_vms")
			}
		}
	}()
	defer func() { close(stop); <-done }()

	for i := range 2000 {
		now := old.Add(time.Duration(i+1) * time.Minute)
		l2, holder, ok, err := engine.TryLockTask(dir, "process_vms", now)
		require.NoError(t, err)
		if !ok {
			t.Fatalf("tick %d skipped while `pvectl tasks` was looking at the lock; reported holder: %s (stale: pid %d's old run at %s)",
				i, holder.Describe(), os.Getpid(), old.Format(time.RFC3339))
		}
		h, held := engine.LockStatus(dir, "process_vms")
		require.True(t, held, "LockStatus sees the lock while it is held")
		require.Equal(t, os.Getpid(), h.PID)
		require.NoError(t, l2.Unlock())
	}
	_, held := engine.LockStatus(dir, "process_vms")
	require.False(t, held)
}
