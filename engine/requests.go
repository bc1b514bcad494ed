package engine

// The request API: every request a person or a billing system makes (vm
// create, change-package, terminate, reinstall, retry, reset-status,
// delete-record, dns sync, start, stop, shutdown, reboot) goes through one
// method here, which validates its input, checks the VM's state against
// the source set in states (states/requests.go), writes through the
// store, records the request in the VM's log (who, when, what, from which
// state, which options; never a secret) and returns typed errors the CLI
// maps to exit codes. Requests never wait on Proxmox; only terminate sends
// one stop without waiting.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strings"

	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
)

// VM, Run, RunLine and DNSRecord are the store's records as the request API
// and its callers see them.
type (
	VM        = store.VM
	Run       = store.Run
	RunLine   = store.RunLine
	DNSRecord = store.DNSRecord
	IP        = store.IPAllocation
)

// RequestTask is the task name of a run that records a request.
const RequestTask = store.RequestTask

// ErrNotFound: no VM has the service id or hostname a request names.
var ErrNotFound = errors.New("not found")

// ErrConflict: the request collides with what is stored: another process
// moved the VM while the request looked at it, the idempotency key belongs
// to another request, the service id or hostname is taken.
var ErrConflict = errors.New("conflict")

// conflictError carries ErrConflict with its own message and cause.
type conflictError struct {
	msg   string
	cause error
}

func (e *conflictError) Error() string        { return e.msg }
func (e *conflictError) Unwrap() error        { return e.cause }
func (e *conflictError) Is(target error) bool { return target == ErrConflict }

// movedError is the conflict of a compare-and-set that found the VM moved.
func movedError(vm VM, err error) error {
	if errors.Is(err, store.ErrConflict) {
		return &conflictError{msg: fmt.Sprintf("VM %s changed since it was read (it was %s); nothing changed — look again and re-run",
			vm.ServiceID, vm.Status), cause: err}
	}
	return err
}

// ErrWrongState: the request is not allowed from the VM's state.
type ErrWrongState struct {
	VM      string // service id
	State   states.State
	Allowed []states.State
	// Msg, when set, is the whole message (it says what to do instead).
	Msg string
}

func (e *ErrWrongState) Error() string {
	if e.Msg != "" {
		return e.Msg
	}
	var names []string
	for _, a := range e.Allowed {
		names = append(names, string(a))
	}
	return fmt.Sprintf("VM %s is in state %s (allowed: %s): not allowed in the VM's current state", e.VM, e.State, strings.Join(names, ", "))
}

// ErrInvalid: an input of the request breaks a rule.
type ErrInvalid struct {
	Field string // the input, named as the CLI flag or argument: "--product", "STATUS"
	Rule  string // the whole message; it names the field and quotes the value (shortened)
}

func (e *ErrInvalid) Error() string { return e.Rule }

// InvalidRequest gathers every ErrInvalid of a create, reported together.
type InvalidRequest struct{ Problems []*ErrInvalid }

func (e *InvalidRequest) Error() string {
	var b strings.Builder
	b.WriteString("invalid request, nothing created:")
	for _, p := range e.Problems {
		b.WriteString("\n  " + p.Rule)
	}
	return b.String()
}

// Unwrap lets errors.As find each ErrInvalid.
func (e *InvalidRequest) Unwrap() []error {
	out := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		out[i] = p
	}
	return out
}

// Ask is how an admin request talks to the person behind it before it
// writes: warnings, then a yes/no question.
type Ask struct {
	Warn func(msg string) // nil: warnings are dropped
	// Confirm asks; an error refuses the request and is returned as is
	// (nothing is changed). nil: confirmed.
	Confirm func(question string) error
}

func (a Ask) warn(msg string) {
	if a.Warn != nil {
		a.Warn(msg)
	}
}

func (a Ask) confirm(question string) error {
	if a.Confirm == nil {
		return nil
	}
	return a.Confirm(question)
}

// Result is what a request did.
type Result struct {
	VM   VM           // the VM after the request
	From states.State // its state before
	// Changed is false for a request that changed nothing: an idempotent
	// repeat (create with the same key, terminate or change-package under
	// way, dns sync queued) or a retry of a VM that was neither held nor
	// backing off.
	Changed bool
	// Notes are what the request did besides the write, in order, for the
	// person who asked (terminate: the stop it sent).
	Notes []string
	// Warnings are problems that did not stop the request (create: the DNS
	// servers could not be asked).
	Warnings []string
	// Audit is the request as recorded in the VM's log (delete-record: as
	// it would have been; the log is deleted with the record).
	Audit store.Request
}

// Actor names who makes a request for the audit line: Engine.Actor if set,
// else the OS user (os/user.Current), else $USER, else the uid.
func (e *Engine) actor() string {
	if e.Actor != "" {
		return e.Actor
	}
	return CurrentUser()
}

// CurrentUser is the OS user running pvectl.
func CurrentUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return fmt.Sprintf("uid %d", os.Getuid())
}

// audit builds a request's audit event for the VM with serviceID. opts are
// the request's options, never a secret. The request writes through
// e.Store.Audited(audit), so the event commits with the request's own write,
// and only if that write changed something.
func (e *Engine) audit(serviceID, what, from string, to states.State, opts ...string) store.Request {
	detail := "by " + e.actor()
	if len(opts) > 0 {
		detail += "; " + strings.Join(opts, "; ")
	}
	return store.Request{ServiceID: serviceID, At: e.Clock.Now(), What: what, From: from, To: string(to), Detail: detail}
}

// FindVM returns the VM whose service id or hostname is ref.
func (e *Engine) FindVM(ctx context.Context, ref string) (VM, error) {
	vm, err := e.Store.VMFind(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		return vm, fmt.Errorf("no VM with service id or hostname %q: %w", ref, ErrNotFound)
	}
	return vm, err
}

// allowed checks a VM's state against a request's source set.
func allowed(vm VM, set []states.State) error {
	for _, s := range set {
		if string(s) == vm.Status {
			return nil
		}
	}
	return &ErrWrongState{VM: vm.ServiceID, State: states.State(vm.Status), Allowed: set}
}

// request moves a VM into a pipeline's entry state through the store's
// guarded write, which checks the source set again inside its transaction
// and records the audit event with it.
func (e *Engine) request(ctx context.Context, vm VM, set []states.State, to states.State, product string, audit store.Request) (VM, error) {
	return e.requestWith(ctx, vm, set, to, product, store.RequestOpts{}, audit)
}

// requestWith is request that also records the request's options.
func (e *Engine) requestWith(ctx context.Context, vm VM, set []states.State, to states.State, product string, o store.RequestOpts, audit store.Request) (VM, error) {
	if err := allowed(vm, set); err != nil {
		return vm, err
	}
	names := make([]string, len(set))
	for i, s := range set {
		names[i] = string(s)
	}
	got, err := e.Store.Audited(audit).VMRequestWith(ctx, vm.ID, names, string(to), product, o, e.Clock.Now())
	if errors.Is(err, store.ErrWrongState) {
		return got, &ErrWrongState{VM: vm.ServiceID, State: states.State(vm.Status), Allowed: set, Msg: err.Error()}
	}
	return got, err
}
