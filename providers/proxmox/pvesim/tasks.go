package pvesim

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

type task struct {
	upid, node, typ, id, user string
	pid                       uint32
	pstart                    uint64
	start, end                time.Time
	done                      bool
	exit                      string
	log                       []string
	vmids                     []int
	// run does the work at the end of the task and returns the exit status
	// ("OK", "WARNINGS: n" or an error text) and extra log lines.
	run func() (string, []string)
	// onFail cleans up after a failed task (e.g. clone removes the new config).
	onFail   func()
	lockVM   *vm
	lock     string // config lock set while the task runs
	keepLock bool
	forced   string // exit status forced by a TaskFault
	seq      int
}

// upidRe is PVE's UPID decoder (pve-common UPID.pm).
var upidRe = regexp.MustCompile(`^UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):([^:\s/]+):([^:\s/]*):([^:\s/]+):$`)

type spawnOpts struct {
	node, typ, id string
	user          string
	vmids         []int
	flockVM       *vm
	flockShared   bool
	flockTimeout  time.Duration
	lockVM        *vm
	lock          string
	log           []string
	run           func() (string, []string)
	onFail        func()
}

func (s *Sim) duration(typ string) time.Duration {
	if d, ok := s.cluster.Durations.Tasks[typ]; ok {
		return time.Duration(d)
	}
	return time.Duration(s.cluster.Durations.Task)
}

func lockFile(vmid int) string { return fmt.Sprintf("/var/lock/qemu-server/lock-%d.conf", vmid) }

// flockWait says how long an acquisition of vm's flock would wait.
func (s *Sim) flockWait(m *vm, shared bool) time.Duration {
	now := s.now()
	var wait time.Duration
	for _, f := range m.flocks {
		if shared && f.shared {
			continue
		}
		if t, ok := s.tasks[f.upid]; ok && t.done {
			continue
		}
		if d := f.until.Sub(now); d > wait {
			wait = d
		}
	}
	return wait
}

// syncFlock is the flock taken by a synchronous API call (10 s timeout).
func (s *Sim) syncFlock(m *vm) *apiError {
	if s.flockWait(m, false) > 10*time.Second {
		return serverErr(fmt.Sprintf("can't lock file '%s' - got timeout", lockFile(m.vmid)))
	}
	return nil
}

func (s *Sim) spawn(o spawnOpts) *task {
	now := s.now()
	s.pid++
	t := &task{node: o.node, typ: o.typ, id: o.id, user: o.user, pid: s.pid,
		pstart: uint64(now.Sub(s.boot) / (10 * time.Millisecond)), start: now, vmids: o.vmids,
		run: o.run, onFail: o.onFail, lockVM: o.lockVM, lock: o.lock, seq: len(s.taskSeq)}
	t.upid = fmt.Sprintf("UPID:%s:%08X:%08X:%08X:%s:%s:%s:", t.node, t.pid, t.pstart, now.Unix(), t.typ, t.id, t.user)
	t.log = append(t.log, o.log...)
	dur := s.duration(o.typ)
	if o.flockVM != nil {
		timeout := o.flockTimeout
		if timeout == 0 {
			timeout = 10 * time.Second
		}
		wait := s.flockWait(o.flockVM, o.flockShared)
		if wait > timeout {
			vmid := o.flockVM.vmid
			t.log = append(t.log, "trying to acquire lock...")
			t.run = func() (string, []string) {
				return fmt.Sprintf("can't lock file '%s' - got timeout", lockFile(vmid)), nil
			}
			t.onFail = nil
			dur = timeout
			o.lockVM = nil
			t.lockVM, t.lock = nil, ""
		} else {
			if wait > 0 {
				t.log = append(t.log, "trying to acquire lock...", " OK")
			}
			dur += wait
			o.flockVM.flocks = append(o.flockVM.flocks, flock{upid: t.upid, shared: o.flockShared, until: now.Add(dur)})
		}
	}
	t.end = now.Add(dur)
	if f := s.matchTaskFault(t); f != nil {
		t.forced = f.ExitStatus
		t.keepLock = f.KeepLock
		if f.Hang {
			t.end = now.Add(100 * 365 * 24 * time.Hour)
		}
	}
	if t.lockVM != nil && t.lock != "" {
		t.lockVM.conf["lock"] = t.lock
	}
	s.tasks[t.upid] = t
	s.taskSeq = append(s.taskSeq, t)
	return t
}

func isSuccess(exit string) bool { return exit == "OK" || strings.HasPrefix(exit, "WARNINGS: ") }

// runTasks completes every task whose end time has passed, in end order.
func (s *Sim) runTasks() {
	now := s.now()
	for {
		var next *task
		for _, t := range s.taskSeq {
			if t.done || t.end.After(now) {
				continue
			}
			if next == nil || t.end.Before(next.end) || (t.end.Equal(next.end) && t.seq < next.seq) {
				next = t
			}
		}
		if next == nil {
			return
		}
		s.finish(next)
	}
}

func (s *Sim) finish(t *task) {
	t.done = true
	var exit string
	var lines []string
	switch {
	case t.forced != "" && !isSuccess(t.forced):
		exit = t.forced
	default:
		if t.run != nil {
			exit, lines = t.run()
		} else {
			exit = "OK"
		}
		if t.forced != "" && isSuccess(exit) {
			exit = t.forced
		}
	}
	t.log = append(t.log, lines...)
	if !isSuccess(exit) && t.onFail != nil && !t.keepLock {
		t.onFail()
	}
	if t.lockVM != nil && t.lock != "" && !t.keepLock && t.lockVM.conf["lock"] == t.lock {
		delete(t.lockVM.conf, "lock")
	}
	for _, m := range s.vms {
		kept := m.flocks[:0]
		for _, f := range m.flocks {
			if f.upid != t.upid {
				kept = append(kept, f)
			}
		}
		m.flocks = kept
	}
	t.exit = exit
	switch {
	case exit == "OK":
		t.log = append(t.log, "TASK OK")
	case strings.HasPrefix(exit, "WARNINGS: "):
		t.log = append(t.log, "TASK "+exit)
	case exit == "unexpected status":
		// the worker died: no final line
	default:
		t.log = append(t.log, "TASK ERROR: "+exit)
	}
}

// taskUser splits "user@realm!token" into user and tokenid.
func splitTokenUser(u string) (string, string) {
	user, tok, ok := strings.Cut(u, "!")
	if !ok {
		return u, ""
	}
	return user, tok
}
