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
