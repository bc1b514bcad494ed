package engine

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// /proc/locks can skip a line while other locks churn (it is read a page at
// a time), so LockStatus asks the holder's own fdinfo before it says a lock
// is free. This proves that second look sees a held lock and its release.
func TestFdinfoSeesHeldLock(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, _, ok, err := TryLockTask(dir, "process_vms", time.Now())
	require.NoError(t, err)
	require.True(t, ok)
	fi, err := os.Stat(lockPath(dir, "process_vms"))
	require.NoError(t, err)
	require.True(t, fdinfoHolds(os.Getpid(), fi), "fdinfo shows our exclusive flock")
	require.NoError(t, l.Unlock())
	require.False(t, fdinfoHolds(os.Getpid(), fi), "released: fdinfo no longer shows it")
	require.False(t, fdinfoHolds(os.Getpid()+1_000_000, fi), "a process that does not exist holds nothing")
}

func TestLockHolderDescribe(t *testing.T) {
	t.Parallel()
	tests := []struct {
		h    LockHolder
		want string
	}{
		{LockHolder{}, "lock held by another process"},
		{LockHolder{PID: 42}, "lock held by pid 42"}, // no start time known: none invented
		{LockHolder{PID: 42, Since: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}, "lock held by pid 42 since 2026-11-25T12:00:00Z"},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, tc.h.Describe())
	}
}
