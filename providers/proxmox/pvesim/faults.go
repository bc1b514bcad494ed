package pvesim

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// ErrorRate makes a fraction of the calls of an endpoint fail.
type ErrorRate struct {
	// Endpoint is "METHOD /schema/path" (see Endpoints) or "*".
	Endpoint string  `json:"endpoint"`
	Rate     float64 `json:"rate"`    // 0..1
	Status   int     `json:"status"`  // default 500
	Message  string  `json:"message"` // default per status, see DefaultFaultMessage
	// Errors are the per-parameter errors of a 400 (see FailNext.Errors).
	Errors map[string]string `json:"errors,omitempty"`
}

// FailNext makes the next Count calls of an endpoint fail.
type FailNext struct {
	Endpoint string `json:"endpoint"`
	Count    int    `json:"count"` // default 1
	Status   int    `json:"status"`
	Message  string `json:"message"`
	// Errors are the per-parameter errors of a 400, which PVE answers as
	// "400 Parameter verification failed." with body
	// {"errors":{…},"data":null}. Without Errors a 400 names one parameter
	// with Message (default "value does not match the regex pattern"): the
	// first (sorted) one the call sent, else the endpoint's last path
	// variable.
	Errors map[string]string `json:"errors,omitempty"`
	// VMID / Node restrict the fault to calls on that VM / node.
	VMID int    `json:"vmid,omitempty"`
	Node string `json:"node,omitempty"`
	// AfterApply performs the call and then answers with the error (the
	// ambiguous "596 Connection timed out" case: the change happened).
	AfterApply bool `json:"after_apply,omitempty"`
}

// TaskFault makes matching tasks end with ExitStatus.
type TaskFault struct {
	Type string `json:"type,omitempty"` // task type (qmclone, qmstart, …); "" = any
	VMID int    `json:"vmid,omitempty"` // VM the task concerns (clone: source or new); 0 = any
	// ExitStatus: an error text, "WARNINGS: n" (work is done) or
	// "unexpected status" (worker died: no final log line).
	ExitStatus string `json:"exitstatus"`
	Count      int    `json:"count,omitempty"` // 0 = every matching task
	// KeepLock leaves the task's config lock (and a failed clone's config)
	// behind, like a worker killed mid-task.
	KeepLock bool `json:"keep_lock,omitempty"`
	// Hang: the task never finishes.
	Hang bool `json:"hang,omitempty"`
	// Log is what the failing worker logs before its final line, e.g. a
	// vzdump ending "job errors" with "ERROR: Backup of VM 101 failed -
	// vma_queue_write: write error - No space left on device" (the cause
	// callers read from the log).
	Log []string `json:"log,omitempty"`
}

// FaultState is the set of active faults.
type FaultState struct {
	Latency      Duration    `json:"latency"`
	Jitter       Duration    `json:"jitter"`
	ErrorRates   []ErrorRate `json:"error_rates"`
	FailNext     []FailNext  `json:"fail_next"`
	TaskFaults   []TaskFault `json:"task_faults"`
	OfflineNodes []string    `json:"offline_nodes"`
	NeverRunning []int       `json:"never_running"`
	Quorate      bool        `json:"quorate"`
	// NodeWorkers is SetNodeWorkers' w (0: the worker model is off).
	NodeWorkers int `json:"node_workers,omitempty"`
}

type faults struct {
	latency, jitter time.Duration
	rates           []ErrorRate
	next            []FailNext
	tasks           []TaskFault
}

// DefaultFaultMessage is the message used when a fault gives none (for a
// 400: the text of the parameter's error).
func DefaultFaultMessage(status int) string {
	switch status {
	case 400:
		return "value does not match the regex pattern"
	case 595:
		return "Errors during connection establishment, proxy handshake: Connection refused"
	case 596:
		return "Connection timed out"
	case 500:
		return "got no worker upid - start worker failed"
	case 503:
		return "Service Unavailable"
	case 401:
		return "Authentication failed!"
	case 403:
		return "Permission check failed"
	}
	return fmt.Sprintf("simulated error %d", status)
}

// SetLatency delays every API answer by fixed plus a uniform random jitter.
func (s *Sim) SetLatency(fixed, jitter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.latency, s.faults.jitter = fixed, jitter
}

func checkEndpoint(ep string) error {
	if ep == "*" {
		return nil
	}
	for _, e := range Endpoints() {
		if e == ep {
			return nil
		}
	}
	return fmt.Errorf("pvesim: unknown endpoint %q (want e.g. %q)", ep, "POST /nodes/{node}/qemu/{vmid}/clone")
}

// SetErrorRate sets (or with Rate 0 removes) an error rate for an endpoint.
func (s *Sim) SetErrorRate(f ErrorRate) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.faults.rates[:0]
	for _, r := range s.faults.rates {
		if r.Endpoint != f.Endpoint {
			kept = append(kept, r)
		}
	}
	s.faults.rates = kept
	if f.Rate > 0 {
		if f.Status == 0 {
			f.Status = 500
		}
		s.faults.rates = append(s.faults.rates, f)
	}
}

// FailNext queues failures for the next calls of an endpoint.
func (s *Sim) FailNext(f FailNext) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Count <= 0 {
		f.Count = 1
	}
	if f.Status == 0 {
		f.Status = 500
	}
	s.faults.next = append(s.faults.next, f)
}

// FailTask makes matching tasks (started from now on) fail.
func (s *Sim) FailTask(f TaskFault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.ExitStatus == "" && !f.Hang {
		f.ExitStatus = "unexpected status"
	}
	s.faults.tasks = append(s.faults.tasks, f)
}

// LeaveLock sets a config lock on a VM that no task will remove (a stale
// lock: "VM is locked (<lock>)"); lock "" removes it.
func (s *Sim) LeaveLock(vmid int, lock string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runTasks()
	m := s.vms[vmid]
	if m == nil {
		return fmt.Errorf("pvesim: no VM %d", vmid)
	}
	if lock == "" {
		delete(m.conf, "lock")
	} else {
		m.conf["lock"] = lock
	}
	return nil
}

// SetNodeOffline takes a node offline: its API paths answer 595 and its
// VMs show status "unknown" in /cluster/resources.
func (s *Sim) SetNodeOffline(name string, offline bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nodes[name]
	if n == nil {
		return fmt.Errorf("pvesim: no node %q", name)
	}
	n.offline = offline
	return nil
}

// SetNeverRunning makes a guest never reach "running": its start task ends
// OK but the VM stays stopped (QEMU exits during boot).
func (s *Sim) SetNeverRunning(vmid int, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.vms[vmid]; m != nil {
		m.neverRunning = on
	}
}

// StartOutOfBand starts a VM the way someone with PVE access would (the
// GUI, qm start), without a task: a suspended VM's customer, say.
func (s *Sim) StartOutOfBand(vmid int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.vms[vmid]
	if m == nil {
		return fmt.Errorf("pvesim: no VM %d", vmid)
	}
	if !m.running {
		m.setRunning(true, s.now())
	}
	return nil
}

// SetQuorum switches cluster quorum; without it every mutating call fails
// with 500 "cluster not ready - no quorum?".
func (s *Sim) SetQuorum(quorate bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.quorate = quorate
}

// ClearFaults removes every fault (latency, error rates, fail-next, task
// faults, offline nodes, never-running guests, lost quorum). Locks already
// left behind stay.
func (s *Sim) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = faults{}
	s.SetNodeWorkers(0)
	s.quorate = true
	for _, n := range s.nodes {
		n.offline = false
	}
	for _, m := range s.vms {
		m.neverRunning = false
	}
}

// Faults returns the active faults.
func (s *Sim) Faults() FaultState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faultState()
}

func (s *Sim) faultState() FaultState {
	fs := FaultState{Latency: Duration(s.faults.latency), Jitter: Duration(s.faults.jitter), Quorate: s.quorate, NodeWorkers: s.NodeWorkers(),
		ErrorRates: append([]ErrorRate{}, s.faults.rates...), FailNext: append([]FailNext{}, s.faults.next...),
		TaskFaults: append([]TaskFault{}, s.faults.tasks...), OfflineNodes: []string{}, NeverRunning: []int{}}
	for _, name := range s.order {
		if s.nodes[name].offline {
			fs.OfflineNodes = append(fs.OfflineNodes, name)
		}
	}
	for id, m := range s.vms {
		if m.neverRunning {
			fs.NeverRunning = append(fs.NeverRunning, id)
		}
	}
	sort.Ints(fs.NeverRunning)
	return fs
}

func (s *Sim) matchTaskFault(t *task) *TaskFault {
	for i := range s.faults.tasks {
		f := &s.faults.tasks[i]
		if f.Type != "" && f.Type != t.typ {
			continue
		}
		if f.VMID != 0 {
			hit := false
			for _, id := range t.vmids {
				hit = hit || id == f.VMID
			}
			if !hit {
				continue
			}
		}
		out := *f
		if f.Count > 0 {
			f.Count--
			if f.Count == 0 {
				s.faults.tasks = append(s.faults.tasks[:i], s.faults.tasks[i+1:]...)
			}
		}
		return &out
	}
	return nil
}

// matchCallFault returns an injected error for this call, if any.
func (s *Sim) matchCallFault(ep, nodeName string, vmid int) *FailNext {
	for i := range s.faults.next {
		f := &s.faults.next[i]
		if f.Endpoint != "*" && f.Endpoint != ep {
			continue
		}
		if f.VMID != 0 && f.VMID != vmid {
			continue
		}
		if f.Node != "" && f.Node != nodeName {
			continue
		}
		out := *f
		f.Count--
		if f.Count <= 0 {
			s.faults.next = append(s.faults.next[:i], s.faults.next[i+1:]...)
		}
		return &out
	}
	for _, r := range s.faults.rates {
		if r.Endpoint != "*" && r.Endpoint != ep {
			continue
		}
		if s.rng.Float64() < r.Rate {
			return &FailNext{Endpoint: ep, Status: r.Status, Message: r.Message, Errors: r.Errors}
		}
	}
	return nil
}

// faultErr is the answer of an injected fault. A 400 has PVE's parameter
// error shape: status line "Parameter verification failed.", the errors
// per parameter in the body.
func (c *call) faultErr(f *FailNext) *apiError {
	msg := f.Message
	if msg == "" {
		msg = DefaultFaultMessage(f.Status)
	}
	if f.Status != 400 {
		return &apiError{code: f.Status, msg: msg}
	}
	errs := map[string]string{}
	for k, v := range f.Errors {
		errs[k] = v
	}
	if len(errs) == 0 {
		errs[c.faultParam()] = msg
	}
	return &apiError{code: 400, msg: "Parameter verification failed.", errors: errs}
}

// faultParam picks the parameter a 400 fault without Errors blames.
func (c *call) faultParam() string {
	for _, k := range sortedKeys(c.params) {
		if _, isVar := c.vars[k]; !isVar {
			return k
		}
	}
	segs := strings.Split(c.ep, "/")
	for i := len(segs) - 1; i >= 0; i-- {
		if strings.HasPrefix(segs[i], "{") {
			return strings.Trim(segs[i], "{}")
		}
	}
	return "param"
}
