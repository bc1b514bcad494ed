package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gofrs/flock"
	"golang.org/x/sys/unix"
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

// Describe renders the holder for messages, its time in UTC.
func (h LockHolder) Describe() string { return h.DescribeIn(time.UTC) }

// DescribeIn renders the holder for messages, its time in loc.
func (h LockHolder) DescribeIn(loc *time.Location) string {
	if h.PID == 0 {
		return "lock held by another process"
	}
	if h.Since.IsZero() { // a holder that did not write the file (flock(1), or just starting)
		return fmt.Sprintf("lock held by pid %d", h.PID)
	}
	return fmt.Sprintf("lock held by pid %d since %s", h.PID, HumanTime(h.Since, loc))
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
		h, _ := LockStatus(stateDir, task)
		return nil, h, false, nil
	}
	if err := os.WriteFile(path, fmt.Appendf(nil, "%d %d\n", os.Getpid(), now.UnixMilli()), 0o640); err != nil {
		_ = f.Unlock()
		return nil, LockHolder{}, false, fmt.Errorf("write lock holder: %w", err)
	}
	return &TaskLock{f: f}, LockHolder{}, true, nil
}

// Unlock releases the lock. The file stays.
func (l *TaskLock) Unlock() error { return l.f.Unlock() }

// LockStatus says whether a task's lock is held now, and by whom. It only
// looks: it reads /proc/locks instead of taking the lock, so `pvectl tasks`
// can never make a starting tick find the lock busy. (Where /proc/locks is
// unreadable it falls back to a brief shared-lock probe.)
func LockStatus(stateDir, task string) (LockHolder, bool) {
	path := lockPath(stateDir, task)
	fi, err := os.Stat(path)
	if err != nil {
		return LockHolder{}, false
	}
	if pid, held, ok := procLocksHolder(fi); ok {
		h := readHolder(path)
		if !held {
			// /proc/locks is read a page at a time and can skip a line while
			// other locks come and go (SQLite's many fcntl locks do). The
			// process the file names is asked directly before saying "free".
			if h.PID != 0 && fdinfoHolds(h.PID, fi) {
				return h, true
			}
			return LockHolder{}, false
		}
		if h.PID != pid {
			h = LockHolder{PID: pid} // the file names an earlier holder
		}
		return h, true
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

// procLocksHolder finds an exclusive flock on the file in /proc/locks
// ("1: FLOCK ADVISORY WRITE <pid> <maj>:<min>:<inode> 0 EOF"). ok is false
// when /proc/locks cannot be used.
func procLocksHolder(fi os.FileInfo) (pid int, held, ok bool) {
	want, isUnix := lockID(fi)
	if !isUnix {
		return 0, false, false
	}
	data, err := os.ReadFile("/proc/locks")
	if err != nil {
		return 0, false, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if pid, ok := isExclusiveFlock(line, want); ok {
			return pid, true, true
		}
	}
	return 0, false, true
}

// lockID is the file's "maj:min:inode" as /proc/locks and fdinfo print it.
func lockID(fi os.FileInfo) (string, bool) {
	st, isUnix := fi.Sys().(*syscall.Stat_t)
	if !isUnix {
		return "", false
	}
	return fmt.Sprintf("%02x:%02x:%d", unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev)), st.Ino), true
}

// isExclusiveFlock says whether a /proc/locks (or fdinfo "lock:") line is an
// exclusive flock on the file with the given id, and by which pid.
func isExclusiveFlock(line, want string) (int, bool) {
	f := strings.Fields(line)
	if len(f) > 0 && f[0] == "lock:" {
		f = f[1:]
	}
	if len(f) < 6 || f[1] != "FLOCK" || f[3] != "WRITE" || f[5] != want {
		return 0, false
	}
	pid, _ := strconv.Atoi(f[4])
	return pid, true
}

// fdinfoHolds says whether process pid holds an exclusive flock on the file,
// from its /proc/PID/fdinfo (each small file is read whole in one call).
func fdinfoHolds(pid int, fi os.FileInfo) bool {
	want, ok := lockID(fi)
	if !ok {
		return false
	}
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if _, ok := isExclusiveFlock(line, want); ok {
				return true
			}
		}
	}
	return false
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
