package engine

// Backup schedules (issue 12): `pvectl backup schedule VM --days mon,thu
// [--at 03:10]` saves when a VM is backed up; the schedule_backup task
// queues each slot that is due (the backup itself is started by
// process_vms and followed by backup_status, like a manual one).
//
// Decisions (docs/backups.md#schedules says the same to operators):
//
//   - A slot is a (local date, at) pair in backups.timezone, named by its
//     wall-clock start: "2026-12-07T03:10". The backups table keeps at most
//     one row per VM and slot name, so a re-run, a crash mid-task or a clock
//     stepping back never queues a slot twice.
//   - A slot is queued at the first schedule_backup run at or after its
//     start, never before it: with the default hourly interval a backup
//     starts up to an hour (plus process_vms' next pass) after its slot.
//   - A slot found more than backups.grace after its start (pvectl did not
//     run, the clock stepped forward) is recorded as skipped with the reason
//     and logged once, never run late. Exactly grace late still runs.
//   - DST: a slot whose local time does not exist (the spring gap, 02:30 in
//     Europe/Berlin) starts at the instant that wall time has under the
//     offset before the change, i.e. shifted forward by the gap (03:30
//     CEST); a slot whose local time exists twice (autumn) starts at the
//     first occurrence, and only once, as its slot name is the same.
//   - Look-back: slots are looked for after the time the schedule's slots
//     were last handled (checked_until), or, for a schedule never handled or
//     handled at a time later than now (a clock stepped back), after now −
//     grace − 24h; never before the schedule was last saved (a slot starting
//     the instant it was saved is included), and never more
//     than ScheduleLookback back (a pvectl stopped for a month does not
//     record every slot of the month as skipped).

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/pvectl/pvectl/config"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
)

// ScheduleBackupInterval is schedule_backup's default interval
// (tasks.intervals.schedule_backup overrides it; 0 disables it).
const ScheduleBackupInterval = time.Hour

// ScheduleLookback bounds how far back schedule_backup looks for slots it
// has not handled.
const ScheduleLookback = 7 * 24 * time.Hour

// ScheduleStepLabel is the step name of schedule_backup's lines in the live
// output and the VM's log.
const ScheduleStepLabel = "Schedule backup"

// scheduleNamed is how many slots a summary line names per kind; the rest
// are counted.
const scheduleNamed = 10

// weekdays are the day names of --days, in the order they are shown.
var weekdays = []struct {
	name string
	day  time.Weekday
}{
	{"mon", time.Monday}, {"tue", time.Tuesday}, {"wed", time.Wednesday}, {"thu", time.Thursday},
	{"fri", time.Friday}, {"sat", time.Saturday}, {"sun", time.Sunday},
}

const validDays = "mon, tue, wed, thu, fri, sat, sun (comma separated, e.g. mon,thu) or daily"

// ParseDays reads --days ("mon,thu", "daily") as a weekday mask: bit n is
// time.Weekday n. Repeats are allowed; an empty list or an unknown name is
// an error naming the valid ones.
func ParseDays(s string) (int, error) {
	if strings.TrimSpace(s) == "" {
		return 0, fmt.Errorf("--days: no day given; valid: %s", validDays)
	}
	if strings.EqualFold(strings.TrimSpace(s), "daily") {
		return 127, nil
	}
	mask := 0
	for _, part := range strings.Split(s, ",") {
		name := strings.ToLower(strings.TrimSpace(part))
		found := false
		for _, w := range weekdays {
			if name == w.name {
				mask |= 1 << w.day
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("--days: unknown day %q in %q; valid: %s", shorten(part), shorten(s), validDays)
		}
	}
	return mask, nil
}

func shorten(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// DayNames lists a weekday mask's days, Monday first.
func DayNames(mask int) []string {
	var out []string
	for _, w := range weekdays {
		if mask&(1<<w.day) != 0 {
			out = append(out, w.name)
		}
	}
	return out
}

// FormatClock renders minutes after midnight as HH:MM.
func FormatClock(minute int) string { return fmt.Sprintf("%02d:%02d", minute/60, minute%60) }

// Schedule is a VM's backup schedule as requests and listings show it.
type Schedule struct {
	Days []string // mon … sun, Monday first
	At   int      // minutes after midnight in Timezone
	// Randomised: pvectl picked At in Window (no --at was given).
	Randomised bool
	Timezone   string // backups.timezone: an IANA name or Local
	Window     string // backups.window (what a randomised At was picked in)
	CreatedAt  time.Time
	UpdatedAt  time.Time
	// Next is the next slot after now (when the schedule was read).
	Next Slot
}

// scheduleOf renders a stored schedule with the config's zone and window.
func (e *Engine) scheduleOf(b store.BackupSchedule) Schedule {
	s := Schedule{Days: DayNames(b.Days), At: b.AtMinute, Randomised: b.Randomised,
		Timezone: e.Config.Backups.Timezone, Window: e.Config.Backups.Window, CreatedAt: b.CreatedAt, UpdatedAt: b.UpdatedAt}
	now := e.Clock.Now()
	if next := ScheduleSlots(b.Days, b.AtMinute, e.Config.Backups.Location(), now, now.Add(8*24*time.Hour)); len(next) > 0 {
		s.Next = next[0]
	}
	return s
}

// String is the schedule as one phrase: "mon, thu at 03:10 (Europe/Berlin;
// time chosen by pvectl in 01:00-05:00)".
func (s Schedule) String() string {
	zone := s.Timezone
	if zone == "" || zone == "Local" {
		zone = "local time"
	}
	how := ""
	if s.Randomised {
		how = "; time chosen by pvectl"
		if inWindow(s.Window, s.At) {
			how += " in " + s.Window
		} else {
			how += " in an earlier backups.window"
		}
	}
	return fmt.Sprintf("%s at %s (%s%s)", strings.Join(s.Days, ", "), FormatClock(s.At), zone, how)
}

// ScheduleJSON is a schedule in --json output (backup list): stable keys.
type ScheduleJSON struct {
	Days       []string `json:"days"`       // "mon" … "sun", Monday first
	At         string   `json:"at"`         // "03:10"
	Randomised bool     `json:"randomised"` // the time was picked by pvectl in backups.window
	Timezone   string   `json:"timezone"`   // backups.timezone
	NextSlot   string   `json:"next_slot"`  // the next slot's name, "2026-12-10T03:10" (local to timezone)
}

// JSON is the schedule's --json shape.
func (s Schedule) JSON() ScheduleJSON {
	return ScheduleJSON{Days: s.Days, At: FormatClock(s.At), Randomised: s.Randomised, Timezone: s.Timezone, NextSlot: s.Next.Name}
}

// Line is the schedule line of backup list: "schedule: mon, thu at 03:10
// (UTC; time chosen by pvectl in 01:00-05:00); next slot 2026-12-10T03:10
// (thu)", or, for a VM without one, "schedule: none".
func (s Schedule) Line(ok bool) string {
	if !ok {
		return "schedule: none"
	}
	line := "schedule: " + s.String()
	if s.Next.Name != "" {
		line += "; next slot " + s.Next.Name + " (" + weekdayOf(s.Next.Name) + ")"
	}
	return line
}

func inWindow(window string, minute int) bool {
	c := config.Backups{Window: window}
	start, end := c.WindowMinutes()
	if start == end {
		return false
	}
	if start < end {
		return minute >= start && minute < end
	}
	return minute >= start || minute < end
}

// pickInWindow picks a minute in backups.window [start, end), which may wrap
// past midnight, with pick(n) in [0, n).
func pickInWindow(b config.Backups, pick func(int) int) int {
	start, end := b.WindowMinutes()
	width := (end - start + 24*60) % (24 * 60)
	if width == 0 {
		width = 24 * 60
	}
	return (start + pick(width)) % (24 * 60)
}

// BackupScheduleOf returns a VM's schedule; ok is false when it has none.
func (e *Engine) BackupScheduleOf(ctx context.Context, vm VM) (Schedule, bool, error) {
	b, err := e.Store.BackupScheduleGet(ctx, vm.ID)
	if errors.Is(err, store.ErrNotFound) {
		return Schedule{}, false, nil
	}
	if err != nil {
		return Schedule{}, false, err
	}
	return e.scheduleOf(b), true, nil
}

// ScheduleRequest is a backup schedule request.
type ScheduleRequest struct {
	VM string // service id or hostname
	// Days is --days ("mon,thu", "daily"); "" keeps the saved days (only
	// with At, on a VM that has a schedule).
	Days string
	// At is --at ("03:10"); "" keeps the saved time, or, for a new
	// schedule, picks a random minute in backups.window.
	At string
	// Off clears the schedule; it takes neither Days nor At.
	Off bool
	// Pick returns a random int in [0, n) for the window; nil =
	// math/rand/v2's IntN. Tests make it deterministic.
	Pick func(n int) int
}

// BackupSchedule saves (or with off clears) a VM's backup schedule; see
// BackupScheduleWith.
func (e *Engine) BackupSchedule(ctx context.Context, ref, days, at string, off bool) (Result, error) {
	return e.BackupScheduleWith(ctx, ScheduleRequest{VM: ref, Days: days, At: at, Off: off})
}

// BackupScheduleWith saves or clears a VM's backup schedule, audited in the
// VM's log. Bad input is an *ErrInvalid naming what is valid; a product
// with backup_quota 0 (backups off) is refused (*ErrInvalid), as is a VM
// being terminated or removed (*ErrWrongState); clearing is always allowed.
// Saving the schedule already saved, or clearing none, changes nothing
// (Result.Changed false). A time not given is kept from the saved schedule,
// or picked at random in backups.window for a new one, once, here.
func (e *Engine) BackupScheduleWith(ctx context.Context, r ScheduleRequest) (Result, error) {
	if r.Off && (r.Days != "" || r.At != "") {
		return Result{}, &ErrInvalid{Field: "--off", Rule: "--off clears the schedule: give it without --days and --at"}
	}
	var mask, minute int
	var err error
	if r.Days != "" {
		if mask, err = ParseDays(r.Days); err != nil {
			return Result{}, &ErrInvalid{Field: "--days", Rule: err.Error()}
		}
	}
	if r.At != "" {
		if minute, err = config.ParseClock(r.At); err != nil {
			return Result{}, &ErrInvalid{Field: "--at", Rule: "--at: " + err.Error() + ", e.g. 03:10"}
		}
	}
	if !r.Off && r.Days == "" && r.At == "" {
		return Result{}, &ErrInvalid{Field: "--days", Rule: "give --days (" + validDays + ") and optionally --at HH:MM, or --off to clear the schedule"}
	}
	vm, err := e.FindVM(ctx, r.VM)
	if err != nil {
		return Result{}, err
	}
	res := Result{VM: vm, From: states.State(vm.Status)}
	if r.Off {
		audit := e.audit(vm.ServiceID, "backup schedule", vm.Status, res.From, "off")
		existed, err := e.Store.Audited(audit).BackupScheduleClear(ctx, vm.ID)
		if err != nil {
			return res, err
		}
		if existed {
			res.Changed, res.Audit = true, audit
		}
		return res, nil
	}
	st := states.State(vm.Status)
	if states.Terminating(st) || st == states.Remove || st == states.ErrorTerminate {
		return res, &ErrWrongState{VM: vm.ServiceID, State: st,
			Msg: fmt.Sprintf("VM %s is in state %s: it is being or has been removed; nothing to schedule (backup schedule --off is allowed)", vm.ServiceID, vm.Status)}
	}
	p, ok := e.Config.Products[vm.Product]
	if !ok {
		return res, fmt.Errorf("VM %s: product %q is not in the config; add it back, or change the VM's product", vm.ServiceID, vm.Product)
	}
	if p.BackupQuota == 0 {
		return res, &ErrInvalid{Field: "VM", Rule: fmt.Sprintf("VM %s: product %s has backup_quota 0: backups are off for it; raise products.%s.backup_quota to schedule backups. Nothing saved",
			vm.ServiceID, vm.Product, vm.Product)}
	}
	saved, err := e.Store.BackupScheduleGet(ctx, vm.ID)
	has := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return res, err
	}
	want := store.BackupSchedule{VMID: vm.ID, Days: mask, AtMinute: minute}
	if r.Days == "" {
		if !has {
			return res, &ErrInvalid{Field: "--days", Rule: fmt.Sprintf("VM %s has no backup schedule: give --days (%s) with --at", vm.ServiceID, validDays)}
		}
		want.Days = saved.Days
	}
	switch {
	case r.At != "":
	case has:
		want.AtMinute, want.Randomised = saved.AtMinute, saved.Randomised
	default:
		pick := r.Pick
		if pick == nil {
			pick = rand.IntN
		}
		want.AtMinute, want.Randomised = pickInWindow(e.Config.Backups, pick), true
	}
	sched := e.scheduleOf(want)
	opts := []string{"days " + strings.Join(sched.Days, ","), "at " + FormatClock(want.AtMinute)}
	if want.Randomised {
		opts[1] += " (picked in " + e.Config.Backups.Window + ")"
	}
	opts = append(opts, "timezone "+e.Config.Backups.Timezone)
	audit := e.audit(vm.ServiceID, "backup schedule", vm.Status, res.From, opts...)
	_, changed, err := e.Store.Audited(audit).BackupScheduleSet(ctx, want, e.Clock.Now())
	if errors.Is(err, store.ErrNotFound) {
		return res, fmt.Errorf("VM %s was deleted meanwhile: %w", vm.ServiceID, ErrNotFound)
	}
	if err != nil {
		return res, err
	}
	if changed {
		res.Changed, res.Audit = true, audit
	}
	return res, nil
}

// Slot is one scheduled start of a VM's backup.
type Slot struct {
	// Name is the slot's wall-clock start in the schedule zone,
	// "2006-01-02T15:04": the (date, --at) pair, also when a DST gap moved
	// the start. At most one backup row per VM and Name.
	Name  string
	Start time.Time // the instant it starts
}

// SlotNameLayout is the layout of Slot.Name.
const SlotNameLayout = "2006-01-02T15:04"

// ScheduleSlots lists the slots of a schedule (weekday mask days, minute
// at, zone loc) that start in (from, to], oldest first.
func ScheduleSlots(days, at int, loc *time.Location, from, to time.Time) []Slot {
	if !to.After(from) {
		return nil
	}
	// Civil dates are walked in UTC (no DST there); a slot starts at most
	// a day away from its date's midnight in any zone.
	f, t := from.In(loc), to.In(loc)
	d := time.Date(f.Year(), f.Month(), f.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, -1)
	last := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, 1)
	var out []Slot
	for ; !d.After(last); d = d.AddDate(0, 0, 1) {
		if days&(1<<d.Weekday()) == 0 {
			continue
		}
		start := slotStart(d.Year(), d.Month(), d.Day(), at, loc)
		if start.After(from) && !start.After(to) {
			name := time.Date(d.Year(), d.Month(), d.Day(), at/60, at%60, 0, 0, time.UTC).Format(SlotNameLayout)
			out = append(out, Slot{Name: name, Start: start})
		}
	}
	return out
}

// slotStart is the instant the wall clock (y-m-d, minute at) starts in loc:
// a time that exists once is that; one that exists twice (the autumn
// change) is the first; one that does not exist (the spring gap) is that
// wall time read with the offset in force before the change, which lands
// the gap's length later (02:30 → 03:30 in Europe/Berlin).
func slotStart(y int, m time.Month, d, at int, loc *time.Location) time.Time {
	wall := time.Date(y, m, d, at/60, at%60, 0, 0, time.UTC)
	// Offsets well before and after any change on this date (zone changes
	// are months apart).
	_, before := wall.Add(-48 * time.Hour).In(loc).Zone()
	_, after := wall.Add(48 * time.Hour).In(loc).Zone()
	c1 := wall.Add(-time.Duration(before) * time.Second)
	c2 := wall.Add(-time.Duration(after) * time.Second)
	is := func(c time.Time) bool {
		l := c.In(loc)
		return l.Year() == y && l.Month() == m && l.Day() == d && l.Hour()*60+l.Minute() == at
	}
	switch ok1, ok2 := is(c1), is(c2); {
	case ok1 && ok2:
		if c2.Before(c1) {
			return c2
		}
		return c1
	case ok2:
		return c2
	}
	return c1 // exists once under the old offset, or does not exist
}

// SlotPlan is what schedule_backup does with one slot.
type SlotPlan struct {
	Slot
	Late time.Duration // now − start
	// Skip: found more than grace late; recorded as skipped, not run.
	Skip bool
}

// PlanSlots lists the slots of a schedule to handle at now: those after
// the look-back start (see the package comment on look-back) up to now,
// each queued or, if more than grace late, skipped.
func PlanSlots(b store.BackupSchedule, loc *time.Location, grace time.Duration, now time.Time) []SlotPlan {
	from := now.Add(-grace - 24*time.Hour)
	if !b.CheckedUntil.IsZero() && !b.CheckedUntil.After(now) {
		from = b.CheckedUntil
	}
	if floor := now.Add(-ScheduleLookback); from.Before(floor) {
		from = floor
	}
	// A slot that starts the instant the schedule was saved is the
	// schedule's (the interval is open at from).
	if saved := b.UpdatedAt.Add(-time.Nanosecond); !b.UpdatedAt.After(now) && saved.After(from) {
		from = saved
	}
	var out []SlotPlan
	for _, s := range ScheduleSlots(b.Days, b.AtMinute, loc, from, now) {
		late := now.Sub(s.Start)
		out = append(out, SlotPlan{Slot: s, Late: late, Skip: late > grace})
	}
	return out
}

// ScheduleBackupTask queues the scheduled backups that are due.
func ScheduleBackupTask() Task {
	return Task{
		Name: "schedule_backup",
		Description: "queue the due slots of backup schedules, at most once per VM and slot (a slot found " +
			"more than backups.grace late is recorded as skipped); process_vms starts them",
		DefaultInterval: ScheduleBackupInterval,
		Run: func(ctx context.Context, e *Engine) (TaskCounts, error) {
			r, err := e.ScheduleBackups(ctx)
			return TaskCounts{Processed: r.Processed, Errors: r.Errors, Message: r.Message}, err
		},
	}
}

// SlotDone is a slot schedule_backup queued or recorded as skipped.
type SlotDone struct {
	ServiceID string
	SlotPlan
	Reason string // why it was skipped
}

// ScheduleRun is what one schedule_backup run did.
type ScheduleRun struct {
	Processed int // schedules looked at
	Errors    int
	Queued    []SlotDone
	Skipped   []SlotDone
	Message   string
}

// ScheduleBackups is schedule_backup: for every schedule whose VM is not
// being or has been removed and whose product has backup_quota > 0, it
// queues the due slots (store.BackupQueue, kind scheduled) and records the
// slots found more than backups.grace late as skipped. Each slot newly
// queued or skipped is written once in the VM's log and named in the
// summary; nothing is printed (but with --verbose) when nothing was due.
// A store error on one VM is counted and the others go on.
func (e *Engine) ScheduleBackups(ctx context.Context) (ScheduleRun, error) {
	var r ScheduleRun
	list, err := e.Store.BackupSchedules(ctx)
	if err != nil {
		return r, err
	}
	loc, grace := e.Config.Backups.Location(), e.Config.Backups.Grace.D()
	var problems []string
	for _, sv := range list {
		if ctx.Err() != nil {
			break
		}
		r.Processed++
		now := e.Clock.Now()
		st := states.State(sv.Status)
		p, ok := e.Config.Products[sv.Product]
		switch {
		case states.Terminating(st) || st == states.Remove || st == states.ErrorTerminate:
			// Nothing to back up; its slots are not "missed" either.
		case !ok:
			r.Errors++
			problems = append(problems, fmt.Sprintf("%s: product %q is not in the config", sv.ServiceID, sv.Product))
			continue
		case p.BackupQuota == 0:
			// Backups off for the product: its slots are not queued, and
			// not recorded as missed should the quota be raised later.
		default:
			if err := e.scheduleVM(ctx, sv, loc, grace, now, &r); err != nil {
				r.Errors++
				problems = append(problems, fmt.Sprintf("%s: %v", sv.ServiceID, err))
				continue // checked_until stays: the next run tries these slots again
			}
		}
		if err := e.Store.BackupScheduleChecked(ctx, sv.VMID, now); err != nil {
			r.Errors++
			problems = append(problems, fmt.Sprintf("%s: %v", sv.ServiceID, err))
		}
	}
	r.Message = r.message(problems)
	ev := e.Live.Logger().Debug()
	switch {
	case r.Errors > 0:
		ev = e.Live.Logger().Warn()
	case len(r.Queued) > 0 || len(r.Skipped) > 0:
		ev = e.Live.Logger().Info()
	}
	ev.Str("task", "schedule_backup").Int("processed", r.Processed).Int("errors", r.Errors).Msg("schedule_backup: " + r.Message)
	return r, ctx.Err()
}

// scheduleVM queues or skips one VM's slots and logs each new one in the
// VM's log and live.
func (e *Engine) scheduleVM(ctx context.Context, sv store.ScheduledVM, loc *time.Location, grace time.Duration, now time.Time, r *ScheduleRun) error {
	var runID int64
	bg := context.WithoutCancel(ctx)
	defer func() {
		if runID != 0 {
			_ = e.Store.RunFinish(bg, runID, string(RunSuccess), e.Clock.Now())
		}
	}()
	for _, sp := range PlanSlots(sv.BackupSchedule, loc, grace, now) {
		q := store.BackupQueued{VMID: sv.VMID, Kind: store.BackupScheduled, Slot: sp.Name, Now: now}
		done := SlotDone{ServiceID: sv.ServiceID, SlotPlan: sp}
		var result string
		if sp.Skip {
			done.Reason = fmt.Sprintf("missed by %s (grace %s): pvectl did not run", FormatLate(sp.Late), FormatLate(grace))
			q.Skipped = done.Reason
			result = fmt.Sprintf("skip (slot %s %s: %s)", sp.Name, weekdayOf(sp.Name), done.Reason)
		} else {
			result = fmt.Sprintf("success (slot %s %s queued, %s late; the next process_vms pass starts it)", sp.Name, weekdayOf(sp.Name), FormatLate(sp.Late))
		}
		_, created, err := e.Store.BackupQueue(ctx, q)
		if err != nil {
			return fmt.Errorf("slot %s: %w", sp.Name, err)
		}
		if !created {
			continue // queued or skipped before: a re-run, a crash, a clock stepped back
		}
		if sp.Skip {
			r.Skipped = append(r.Skipped, done)
		} else {
			r.Queued = append(r.Queued, done)
		}
		e.Live.Step(StepLine{VM: sv.ServiceID, Hostname: sv.Hostname, Step: ScheduleStepLabel, From: sv.Status, To: sv.Status,
			Result: result, Failed: sp.Skip})
		if runID == 0 {
			if runID, err = e.Store.RunStart(ctx, sv.VMID, "schedule_backup", now); err != nil {
				runID = 0
				continue // the row is written; only its log line is lost
			}
		}
		_ = e.Store.RunAppendLine(bg, store.RunLine{RunID: runID, At: now, Step: ScheduleStepLabel, From: sv.Status,
			To: sv.Status, Result: result})
	}
	return nil
}

// weekdayOf names a slot name's weekday ("mon").
func weekdayOf(name string) string {
	t, err := time.Parse(SlotNameLayout, name)
	if err != nil {
		return ""
	}
	for _, w := range weekdays {
		if w.day == t.Weekday() {
			return w.name
		}
	}
	return ""
}

// FormatLate renders a lateness to the minute: 5h12m, 2h, 3d4h0m, 0m.
func FormatLate(d time.Duration) string {
	d = d.Truncate(time.Minute)
	days, h, m := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour), int(d%time.Hour/time.Minute)
	switch {
	case days > 0:
		return fmt.Sprintf("%dd%dh%dm", days, h, m)
	case h > 0 && m == 0:
		return fmt.Sprintf("%dh", h)
	case h > 0:
		return fmt.Sprintf("%dh%dm", h, m)
	}
	return fmt.Sprintf("%dm", m)
}

// message is the summary line: "queued 2 backup(s): web1 2026-12-07T03:10,
// web2 2026-12-07T03:10; skipped 1 slot(s) past grace: web3
// 2026-12-07T03:10 (missed by 5h12m)".
func (r ScheduleRun) message(problems []string) string {
	var parts []string
	if len(r.Queued) == 0 && len(r.Skipped) == 0 {
		parts = append(parts, fmt.Sprintf("%d schedule(s), no slot due", r.Processed))
	}
	if len(r.Queued) > 0 {
		parts = append(parts, fmt.Sprintf("queued %d backup(s): %s", len(r.Queued), slotNames(r.Queued, false)))
	}
	if len(r.Skipped) > 0 {
		parts = append(parts, fmt.Sprintf("skipped %d slot(s) past grace: %s", len(r.Skipped), slotNames(r.Skipped, true)))
	}
	if len(problems) > 0 {
		parts = append(parts, fmt.Sprintf("%d error(s): %s", len(problems), strings.Join(problems, "; ")))
	}
	return strings.Join(parts, "; ")
}

func slotNames(ds []SlotDone, late bool) string {
	var out []string
	for i, d := range ds {
		if i == scheduleNamed {
			out = append(out, fmt.Sprintf("and %d more", len(ds)-i))
			break
		}
		s := d.ServiceID + " " + d.Name
		if late {
			s += " (missed by " + FormatLate(d.Late) + ")"
		}
		out = append(out, s)
	}
	return strings.Join(out, ", ")
}
