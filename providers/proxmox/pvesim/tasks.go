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
	onFail    func()
	lockVM    *vm
	lock      string // config lock set while the task runs
	keepLock  bool
	forced    string // exit status forced by a TaskFault
	forcedLog []string
	seq       int
	// steps is work the worker does while it runs (before run), in time
	// order; runTasks performs each step when the clock reaches it.
	steps []*taskStep
}

// taskStep is one piece of work a running task does at a point in time
// (e.g. vzdump reaching the next guest).
type taskStep struct {
	at   time.Time
	fn   func(t *task)
	done bool
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
	// steps run while the task runs, at these offsets from the moment
	// the worker starts (after any flock wait).
	steps []spawnStep
}

type spawnStep struct {
	after time.Duration
	fn    func(t *task)
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
	runStart := now
	lockFailed := false
	if o.flockVM != nil {
		timeout := o.flockTimeout
		if timeout == 0 {
			timeout = 10 * time.Second
		}
		wait := s.flockWait(o.flockVM, o.flockShared)
		if wait > timeout {
			vmid := o.flockVM.vmid
			lockFailed = true
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
			runStart = now.Add(wait)
			o.flockVM.flocks = append(o.flockVM.flocks, flock{upid: t.upid, shared: o.flockShared, until: now.Add(dur)})
		}
	}
	t.end = now.Add(dur)
	if !lockFailed {
		for _, st := range o.steps {
			t.steps = append(t.steps, &taskStep{at: runStart.Add(st.after), fn: st.fn})
		}
	}
	if f := s.matchTaskFault(t); f != nil {
		t.forced = f.ExitStatus
		t.forcedLog = f.Log
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
	if len(t.steps) > 0 {
		s.runTasks() // steps due now (the worker started at once)
	}
	return t
}

func isSuccess(exit string) bool { return exit == "OK" || strings.HasPrefix(exit, "WARNINGS: ") }

// runTasks performs every task step and completes every task whose time
// has come, in time order (a task's steps before its end; ties by task
// creation order).
func (s *Sim) runTasks() {
	now := s.now()
	for {
		var next *task
		var nextStep *taskStep
		var nextAt time.Time
		consider := func(t *task, st *taskStep, at time.Time) {
			if at.After(now) {
				return
			}
			better := next == nil || at.Before(nextAt)
			if !better && at.Equal(nextAt) {
				if t == next {
					better = st != nil && nextStep == nil
				} else {
					better = t.seq < next.seq
				}
			}
			if better {
				next, nextStep, nextAt = t, st, at
			}
		}
		for _, t := range s.taskSeq {
			if t.done {
				continue
			}
			if st := t.nextStep(); st != nil {
				consider(t, st, st.at)
			}
			consider(t, nil, t.end)
		}
		if next == nil {
			return
		}
		if nextStep != nil {
			nextStep.done = true
			nextStep.fn(next)
			continue
		}
		s.finish(next)
	}
}

func (t *task) nextStep() *taskStep {
	for _, st := range t.steps {
		if !st.done {
			return st
		}
	}
	return nil
}

func (s *Sim) finish(t *task) {
	t.done = true
	if t.forced == "" || isSuccess(t.forced) {
		// a task finished early (background_delay) still did all its work
		for st := t.nextStep(); st != nil; st = t.nextStep() {
			st.done = true
			st.fn(t)
		}
	}
	var exit string
	var lines []string
	switch {
	case t.forced != "" && !isSuccess(t.forced):
		exit, lines = t.forced, t.forcedLog
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
