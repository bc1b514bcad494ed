package dns

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	mdns "github.com/miekg/dns"
)

// Kind classifies a failed DNS operation.
type Kind string

// The kinds of failure. Server answers are named after their RCODE (and TSIG error).
const (
	KindUnreachable Kind = "unreachable" // connection refused, no route, unresolvable server name
	KindTimeout     Kind = "timeout"     // no answer before the timeout or the context deadline
	KindCanceled    Kind = "canceled"    // the context was canceled
	KindBadSig      Kind = "BADSIG"      // NOTAUTH, TSIG error BADSIG: wrong secret (or algorithm)
	KindBadKey      Kind = "BADKEY"      // NOTAUTH, TSIG error BADKEY: the server does not know the key name
	KindBadTime     Kind = "BADTIME"     // NOTAUTH, TSIG error BADTIME: clocks differ by more than the fudge
	KindNotAuth     Kind = "NOTAUTH"     // NOTAUTH without TSIG error: the server is not authoritative for the zone
	KindRefused     Kind = "REFUSED"     // REFUSED: update not allowed (ACL, unsigned, policy) or zone not served
	KindNotZone     Kind = "NOTZONE"     // NOTZONE: a record is outside the zone
	KindServFail    Kind = "SERVFAIL"    // SERVFAIL: the server failed (journal, storage, zone not loaded)
	KindRcode       Kind = "rcode"       // any other RCODE (FORMERR, NOTIMP, YXDOMAIN, …); see Error.Rcode
	KindBadReply    Kind = "bad-reply"   // a reply that does not verify or cannot be parsed
	KindConfig      Kind = "config"      // invalid zone configuration or record; nothing was sent
	// KindNotSent: nothing was sent because the server failed too often in a row in this
	// process_vms pass (its circuit breaker is open); the caller prints and records nothing.
	KindNotSent Kind = "not-sent"
)

// Error is the error of every Updater method.
type Error struct {
	Op        string // "update", "query" or "check"
	Zone      string // zone name
	Server    string // host:port
	Kind      Kind
	Rcode     int    // the reply's RCODE, or -1 when there was no usable reply
	TSIGError uint16 // the TSIG error of the reply (mdns.RcodeBadSig, …), 0 if none
	Msg       string // detail for KindConfig / KindBadReply / KindRcode
	Err       error  // underlying network or library error, if any
}

// Error is "dns update example.com via 192.0.2.53:53: NOTAUTH (BADSIG)".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("dns ")
	b.WriteString(e.Op)
	if e.Zone != "" {
		b.WriteString(" " + e.Zone)
	}
	if e.Server != "" {
		b.WriteString(" via " + e.Server)
	}
	b.WriteString(": ")
	b.WriteString(e.Short())
	if e.Err != nil && e.Kind != KindUnreachable {
		// Unreachable already carries the cause in Short.
		b.WriteString(" (" + e.Err.Error() + ")")
	}
	return b.String()
}

// Short is the outcome as the live line prints it: "NOTAUTH (BADSIG)", "REFUSED", "timeout",
// "unreachable (connection refused)", "config: …".
func (e *Error) Short() string {
	switch e.Kind {
	case KindBadSig, KindBadKey, KindBadTime:
		return "NOTAUTH (" + string(e.Kind) + ")"
	case KindNotAuth, KindRefused, KindNotZone, KindServFail:
		if e.Msg != "" {
			return string(e.Kind) + " (" + e.Msg + ")"
		}
		return string(e.Kind)
	case KindRcode:
		s := rcodeName(e.Rcode)
		if e.Msg != "" {
			s += " (" + e.Msg + ")"
		}
		return s
	case KindUnreachable:
		if c := netCause(e.Err); c != "" {
			return "unreachable (" + c + ")"
		}
		return "unreachable"
	case KindTimeout, KindCanceled:
		return string(e.Kind)
	case KindNotSent:
		return "not sent (" + e.Msg + ")"
	default:
		if e.Msg != "" {
			return string(e.Kind) + ": " + e.Msg
		}
		return string(e.Kind)
	}
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Temporary reports whether retrying later may succeed without anyone changing a configuration:
// unreachable, timeout, SERVFAIL, a bad reply. BADSIG, BADKEY, REFUSED, NOTAUTH, NOTZONE and
// configuration errors need a person (although retrying them is harmless).
func (e *Error) Temporary() bool {
	switch e.Kind {
	case KindUnreachable, KindTimeout, KindCanceled, KindServFail, KindBadReply, KindBadTime, KindNotSent:
		return true
	}
	return false
}

// IsOutage reports whether err says the zone's server is down rather than refusing pvectl
// anything: unreachable, timeout, SERVFAIL, or not sent because of that (KindNotSent). A VM's
// DNS retry that failed only for these does not back off: the server, not the VM, is the
// problem.
func IsOutage(err error) bool {
	switch KindOf(err) {
	case KindUnreachable, KindTimeout, KindServFail, KindNotSent:
		return true
	}
	return false
}

// IsNotSent reports whether err is KindNotSent: the operation was never sent.
func IsNotSent(err error) bool { return KindOf(err) == KindNotSent }

// KindOf returns the Kind of err if it is (or wraps) an *Error, and "" otherwise.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return ""
}

// ShortError is err's Short form for an *Error, and err.Error() otherwise ("" for nil).
func ShortError(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Short()
	}
	return err.Error()
}

func rcodeName(rc int) string {
	if s, ok := mdns.RcodeToString[rc]; ok {
		return s
	}
	return "RCODE" + strconv.Itoa(rc)
}

// netCause is the short cause of a network error: "connection refused", "no route to host", …
func netCause(err error) string {
	if err == nil {
		return ""
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return "cannot resolve " + dnsErr.Name + ": " + dnsErr.Err
	}
	var addrErr *net.AddrError
	if errors.As(err, &addrErr) {
		return addrErr.Error()
	}
	return err.Error()
}

// classifyNetErr turns an exchange error without a usable reply into a Kind.
func classifyNetErr(ctx context.Context, err error) Kind {
	switch {
	case errors.Is(err, context.Canceled) || (ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled)):
		return KindCanceled
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return KindTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return KindTimeout
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EHOSTUNREACH, syscall.ENETUNREACH,
			syscall.EHOSTDOWN, syscall.ENETDOWN, syscall.EADDRNOTAVAIL, syscall.EPIPE, syscall.ECONNABORTED:
			return KindUnreachable
		}
	}
	var dnsErr *net.DNSError
	var addrErr *net.AddrError
	var opErr *net.OpError
	if errors.As(err, &dnsErr) || errors.As(err, &addrErr) || errors.As(err, &opErr) {
		return KindUnreachable
	}
	return KindBadReply
}

// classifyReply turns a reply's RCODE and TSIG error into a Kind ("" for NOERROR).
func classifyReply(r *mdns.Msg) (Kind, uint16) {
	var tsigErr uint16
	if t := r.IsTsig(); t != nil {
		tsigErr = t.Error
	}
	switch tsigErr {
	case mdns.RcodeBadSig:
		return KindBadSig, tsigErr
	case mdns.RcodeBadKey:
		return KindBadKey, tsigErr
	case mdns.RcodeBadTime:
		return KindBadTime, tsigErr
	}
	switch r.Rcode {
	case mdns.RcodeSuccess:
		if tsigErr != 0 {
			return KindRcode, tsigErr
		}
		return "", 0
	case mdns.RcodeNotAuth:
		return KindNotAuth, tsigErr
	case mdns.RcodeRefused:
		return KindRefused, tsigErr
	case mdns.RcodeNotZone:
		return KindNotZone, tsigErr
	case mdns.RcodeServerFailure:
		return KindServFail, tsigErr
	}
	return KindRcode, tsigErr
}
