package proxmox

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Error, the classified failure every call returns, and the predicates on
// it. Which class an error has is decided in errors.go, the one file that
// matches PVE's messages.

// Error is a classified failure of a PVE request or task.
type Error struct {
	Class Class
	// Op is what was attempted ("clone", "GET /nodes/pve/qemu/100/config",
	// "task qmclone", …).
	Op   string
	Node string
	VMID int
	// HTTPStatus is the response status; 0 for task failures and transport
	// errors.
	HTTPStatus int
	// Message is PVE's own text: the reason phrase (= error message), the
	// task exit status, or the transport error.
	Message string
	// Fields are the per-parameter errors of a 400.
	Fields map[string]string
	// Detail is the cause a failed task's log gives when its exit status is
	// generic ("migration aborted"): the last "ERROR: …" line.
	Detail string
	// Task is set when the error is a task's exit status.
	Task TaskRef
	// Err is the underlying error (transport), if any.
	Err error
	// Applied is true when the request may have taken effect although it
	// failed (596, timeouts, connection reset after sending).
	Applied bool
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("proxmox")
	if e.Op != "" {
		b.WriteString(": " + e.Op)
	}
	if e.Node != "" || e.VMID != 0 {
		b.WriteString(" (")
		if e.Node != "" {
			b.WriteString("node " + e.Node)
		}
		if e.VMID != 0 {
			if e.Node != "" {
				b.WriteString(", ")
			}
			b.WriteString("vmid " + strconv.Itoa(e.VMID))
		}
		b.WriteString(")")
	}
	b.WriteString(": ")
	if e.HTTPStatus != 0 {
		b.WriteString(strconv.Itoa(e.HTTPStatus) + " ")
	}
	b.WriteString(e.Message)
	if e.Detail != "" {
		b.WriteString(" (" + e.Detail + ")")
	}
	if len(e.Fields) > 0 {
		keys := make([]string, 0, len(e.Fields))
		for k := range e.Fields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString(" (")
		for i, k := range keys {
			if i > 0 {
				b.WriteString("; ")
			}
			b.WriteString(k + ": " + e.Fields[k])
		}
		b.WriteString(")")
	}
	b.WriteString(" [" + e.Class.String() + "]")
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether the error's class is retryable.
func (e *Error) Retryable() bool { return e.Class.Retryable() }

// IsRetryable reports whether err may be retried as is.
func IsRetryable(err error) bool { return err != nil && Classify(err).Retryable() }

// IsNotFound reports whether the addressed object does not exist.
func IsNotFound(err error) bool { return err != nil && Classify(err) == ClassNotFound }

// IsLocked reports a VM/config/file lock.
func IsLocked(err error) bool { return err != nil && Classify(err) == ClassLocked }

// IsAlreadyExists reports that the object to create already exists.
func IsAlreadyExists(err error) bool { return err != nil && Classify(err) == ClassAlreadyExists }

// IsAlreadyRunning reports a start of a running VM.
func IsAlreadyRunning(err error) bool { return err != nil && Classify(err) == ClassAlreadyRunning }

// IsNotRunning reports that the VM is not running.
func IsNotRunning(err error) bool { return err != nil && Classify(err) == ClassNotRunning }

// IsPermission reports a 403.
func IsPermission(err error) bool { return err != nil && Classify(err) == ClassPermission }

// IsAuth reports a 401.
func IsAuth(err error) bool { return err != nil && Classify(err) == ClassAuth }

// MaybeApplied reports whether a failed mutation may nevertheless have taken
// effect (596 proxy timeout, client timeout, connection lost after sending):
// observe PVE before sending it again.
func MaybeApplied(err error) bool {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Applied
	}
	return false
}

// pattern is one known PVE message. Patterns are matched in order; the

// errorf builds an *Error with a message of our own (not PVE's).
func errorf(class Class, op string, format string, args ...any) *Error {
	return &Error{Class: class, Op: op, Message: fmt.Sprintf(format, args...)}
}
