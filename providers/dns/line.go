package dns

import "strings"

// Action is what was done to a record, for Line.
type Action int

const (
	// ActionPublish is Publish: the line says "fwd" or "rev".
	ActionPublish Action = iota
	// ActionDelete is Delete: the line says "fwd-del" or "rev-del".
	ActionDelete
)

// Tag is the line's tag for the action and record: "fwd", "rev", "fwd-del" or "rev-del".
func Tag(a Action, rec Record) string {
	tag := "fwd"
	if rec.IsReverse() {
		tag = "rev"
	}
	if a == ActionDelete {
		tag += "-del"
	}
	return tag
}

// Line formats the live log line of one outcome, without a trailing newline:
//
//	· fwd OK www.example.com A 192.0.2.10 (zone example.com)
//	· rev OK 10.2.0.192.in-addr.arpa PTR www.example.com (zone 2.0.192.in-addr.arpa)
//	· fwd ERR www.example.com A 192.0.2.10 (zone example.com): NOTAUTH (BADSIG)
//	· fwd-del OK www.example.com A 192.0.2.10 (zone example.com)
//	· rev-del ERR 10.2.0.192.in-addr.arpa PTR www.example.com (zone 2.0.192.in-addr.arpa): timeout
//
// err is the error Publish or Delete returned; its short form (ShortError) follows the colon.
func Line(a Action, rec Record, err error) string {
	var b strings.Builder
	b.WriteString("· ")
	b.WriteString(Tag(a, rec))
	if err == nil {
		b.WriteString(" OK ")
	} else {
		b.WriteString(" ERR ")
	}
	b.WriteString(rec.String())
	b.WriteString(" (zone ")
	b.WriteString(Normalize(rec.Zone))
	b.WriteString(")")
	if err != nil {
		b.WriteString(": ")
		b.WriteString(ShortError(err))
	}
	return b.String()
}
