package engine

import "time"

// HumanTime is how pvectl prints a time for people: RFC 3339 in the display
// zone, so the zone is always shown — 2026-11-25T12:00:00Z in UTC (the
// default), 2026-11-25T13:00:00+01:00 in Europe/Berlin. JSON output does
// not use it: it stays RFC 3339 in UTC.
func HumanTime(t time.Time, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	return t.In(loc).Format(time.RFC3339)
}

// ClockTime is the time of day of t in loc (15:04:05), for lines under a
// header that shows the full time and its zone.
func ClockTime(t time.Time, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	return t.In(loc).Format("15:04:05")
}

// Zone is the zone the engine prints times in for people (UTC unless set).
func (e *Engine) Zone() *time.Location {
	if e.Loc != nil {
		return e.Loc
	}
	return time.UTC
}

// HumanTime is the package HumanTime in the engine's zone.
func (e *Engine) HumanTime(t time.Time) string { return HumanTime(t, e.Zone()) }
