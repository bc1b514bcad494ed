package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gofrs/flock"
)

// Task locks are flock(2) on files in <state-dir>/locks/. The kernel drops a
// lock when its process dies, so a lock is never stale and a lock file must
// never be deleted to "clear" it. The holder writes "PID UNIXMILLI" into the
// file so others can say who holds it.

// LockHolder describes who holds a task lock.
type LockHolder struct {
	PID   int
	Since time.Time
}

// Describe renders the holder for messages.
func (h LockHolder) Describe() string {
	if h.PID == 0 {
		return "lock held by another process"
	}
	return fmt.Sprintf("lock held by pid %d since %s", h.PID, h.Since.UTC().Format(time.RFC3339))
}

// TaskLock is a held task lock.
type TaskLock struct {
	f *flock.Flock
}

func lockPath(stateDir, task string) string {
	return filepath.Join(stateDir, "locks", task+".lock")
}

// TryLockTask takes a task's lock without waiting. If another process holds
// it, ok is false and holder says who.
func TryLockTask(stateDir, task string, now time.Time) (l *TaskLock, holder LockHolder, ok bool, err error) {
	path := lockPath(stateDir, task)
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, LockHolder{}, false, fmt.Errorf("create lock directory: %w", err)
	}
	f := flock.New(path)
	locked, err := f.TryLock()
	if err != nil {
		return nil, LockHolder{}, false, fmt.Errorf("lock %s: %w", path, err)
	}
	if !locked {
		return nil, readHolder(path), false, nil
	}
	if err := os.WriteFile(path, fmt.Appendf(nil, "%d %d\n", os.Getpid(), now.UnixMilli()), 0o640); err != nil {
		_ = f.Unlock()
		return nil, LockHolder{}, false, fmt.Errorf("write lock holder: %w", err)
	}
	return &TaskLock{f: f}, LockHolder{}, true, nil
}

// Unlock releases the lock. The file stays.
func (l *TaskLock) Unlock() error { return l.f.Unlock() }

// LockStatus says whether a task's lock is held now, and by whom.
func LockStatus(stateDir, task string) (LockHolder, bool) {
	path := lockPath(stateDir, task)
	if _, err := os.Stat(path); err != nil {
		return LockHolder{}, false
	}
	f := flock.New(path)
	locked, err := f.TryRLock()
	if err != nil {
		return LockHolder{}, false
	}
	if locked {
		_ = f.Unlock()
		return LockHolder{}, false
	}
	return readHolder(path), true
}

func readHolder(path string) LockHolder {
	b, err := os.ReadFile(path)
	if err != nil {
		return LockHolder{}
	}
	fields := strings.Fields(string(b))
	if len(fields) != 2 {
		return LockHolder{}
	}
	pid, err1 := strconv.Atoi(fields[0])
	ms, err2 := strconv.ParseInt(fields[1], 10, 64)
	if err1 != nil || err2 != nil {
		return LockHolder{}
	}
	return LockHolder{PID: pid, Since: time.UnixMilli(ms).UTC()}
}
