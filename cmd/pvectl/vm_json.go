package main

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/pvectl/pvectl/engine"
)

// appendVMJSON appends j as json.MarshalIndent(j, prefix, "  ") writes it,
// byte for byte, without reflection and without indenting a compact
// encoding a second time: vm list --json writes 10,000 of them. vm show and
// vm create print through it too, so the golden files of both shapes check
// it; TestAppendVMJSON compares it with encoding/json field by field.
func appendVMJSON(b []byte, j *vmJSON, prefix string) ([]byte, error) {
	in := prefix + "  "
	var err error
	key := func(first bool, name string) {
		if !first {
			b = append(b, ',')
		}
		b = append(b, '\n')
		b = append(b, in...)
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, `": `...)
	}
	str := func(name, v string) {
		key(false, name)
		b = appendJSONString(b, v)
	}
	tim := func(name string, t time.Time) {
		key(false, name)
		if err == nil {
			b, err = appendJSONTime(b, t)
		}
	}
	b = append(b, '{')
	key(true, "service_id")
	b = appendJSONString(b, j.ServiceID)
	str("hostname", j.Hostname)
	str("product", j.Product)
	str("status", j.Status)
	key(false, "vmid")
	if j.VMID == nil {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendInt(b, int64(*j.VMID), 10)
	}
	str("node", j.Node)
	str("target_node", j.TargetNode)
	key(false, "ips")
	switch {
	case j.IPs == nil:
		b = append(b, "null"...)
	case len(j.IPs) == 0:
		b = append(b, "[]"...)
	default:
		b = append(b, '[')
		for i, ip := range j.IPs {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '\n')
			b = append(b, in...)
			b = append(b, "  "...)
			b = appendJSONString(b, ip)
		}
		b = append(b, '\n')
		b = append(b, in...)
		b = append(b, ']')
	}
	key(false, "attempts")
	b = strconv.AppendInt(b, int64(j.Attempts), 10)
	key(false, "held")
	b = strconv.AppendBool(b, j.Held)
	key(false, "next_attempt_at")
	if j.NextAttempt == nil {
		b = append(b, "null"...)
	} else if err == nil {
		b, err = appendJSONTime(b, *j.NextAttempt)
	}
	str("last_error", j.LastError)
	key(false, "pending_task")
	if j.PendingTask == nil {
		b = append(b, "null"...)
	} else {
		b = appendJSONObject(b, in, "upid", j.PendingTask.UPID, "node", j.PendingTask.Node)
	}
	key(false, "dns_dirty")
	b = strconv.AppendBool(b, j.DNSDirty)
	key(false, "power")
	if j.Power == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, "{\n"...)
		b = append(b, in...)
		b = append(b, `  "state": `...)
		b = appendJSONString(b, j.Power.State)
		b = append(b, ",\n"...)
		b = append(b, in...)
		b = append(b, `  "seen_at": `...)
		if err == nil {
			b, err = appendJSONTime(b, j.Power.SeenAt)
		}
		b = append(b, '\n')
		b = append(b, in...)
		b = append(b, '}')
	}
	str("template", j.Template)
	key(false, "suspend")
	if j.Suspend == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, "{\n"...)
		b = append(b, in...)
		b = append(b, `  "reason": `...)
		b = appendJSONString(b, j.Suspend.Reason)
		b = append(b, ",\n"...)
		b = append(b, in...)
		b = append(b, `  "pending": `...)
		b = strconv.AppendBool(b, j.Suspend.Pending)
		b = append(b, '\n')
		b = append(b, in...)
		b = append(b, '}')
	}
	key(false, "throttle")
	if j.Throttle == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, "{\n"...)
		b = append(b, in...)
		b = append(b, `  "rate_mbps": `...)
		b = strconv.AppendInt(b, int64(j.Throttle.RateMBps), 10)
		b = append(b, ",\n"...)
		b = append(b, in...)
		b = append(b, `  "until": `...)
		if err == nil {
			b, err = appendJSONTime(b, j.Throttle.Until)
		}
		b = append(b, '\n')
		b = append(b, in...)
		b = append(b, '}')
	}
	tim("state_since", j.StateSince)
	str("wait_reason", j.WaitReason)
	key(false, "stuck")
	if j.Stuck == nil {
		b = append(b, "null"...)
	} else {
		b = appendStuckJSON(b, in, j.Stuck)
	}
	tim("created_at", j.CreatedAt)
	tim("updated_at", j.UpdatedAt)
	b = append(b, '\n')
	b = append(b, prefix...)
	b = append(b, '}')
	return b, err
}

// appendJSONObject appends an object of string fields, indented one level
// below in.
func appendJSONObject(b []byte, in string, kv ...string) []byte {
	b = append(b, '{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '\n')
		b = append(b, in...)
		b = append(b, `  "`...)
		b = append(b, kv[i]...)
		b = append(b, `": `...)
		b = appendJSONString(b, kv[i+1])
	}
	b = append(b, '\n')
	b = append(b, in...)
	return append(b, '}')
}

// appendStuckJSON appends an engine.Stuck as its struct tags have it
// (task_type omitted when empty).
func appendStuckJSON(b []byte, in string, s *engine.Stuck) []byte {
	if s.TaskType == "" {
		return appendJSONObject(b, in, "class", s.Class, "for", s.ForText, "limit", s.LimitText)
	}
	return appendJSONObject(b, in, "class", s.Class, "task_type", s.TaskType, "for", s.ForText, "limit", s.LimitText)
}

// appendJSONString appends s quoted as encoding/json quotes it (HTML
// characters escaped). Text that needs no escaping, all of it in practice,
// is copied; anything else goes through encoding/json itself.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, err := json.Marshal(s)
			if err != nil { // a string always encodes
				panic(err)
			}
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendJSONTime appends t as time.Time's MarshalJSON does (RFC 3339 with
// nanoseconds, trailing zeros trimmed, quoted), and fails where it fails (a
// year outside 0–9999, a zone offset of a day or more). It writes the digits
// itself: time.AppendFormat parses its layout on every call.
func appendJSONTime(b []byte, t time.Time) ([]byte, error) {
	_, off := t.Zone()
	year, month, day := t.Date()
	if year < 0 || year > 9999 || off <= -24*3600 || off >= 24*3600 {
		q, err := t.MarshalJSON()
		return append(b, q...), err
	}
	hour, minute, sec := t.Clock()
	b = append(b, '"')
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, int(month), 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, minute, 2)
	b = append(b, ':')
	b = appendDigits(b, sec, 2)
	if ns := t.Nanosecond(); ns != 0 {
		digits := 9
		for ns%10 == 0 {
			ns /= 10
			digits--
		}
		b = append(b, '.')
		b = appendDigits(b, ns, digits)
	}
	if off == 0 {
		b = append(b, 'Z')
	} else {
		// As time's "Z07:00": whole minutes, seconds dropped.
		zone, sign := off/60, byte('+')
		if zone < 0 {
			zone, sign = -zone, '-'
		}
		b = append(b, sign)
		b = appendDigits(b, zone/60, 2)
		b = append(b, ':')
		b = appendDigits(b, zone%60, 2)
	}
	return append(b, '"'), nil
}

// appendDigits appends v (not negative) zero-padded to width digits.
func appendDigits(b []byte, v, width int) []byte {
	var d [9]byte
	for i := width - 1; i >= 0; i-- {
		d[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, d[:width]...)
}
