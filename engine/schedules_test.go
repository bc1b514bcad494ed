package engine_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pvectl/pvectl/engine"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

// mon07 is Monday 2026-12-07 00:00 UTC.
var mon07 = time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)

func utcAt(day int, hh, mm int) time.Time { return time.Date(2026, 12, day, hh, mm, 0, 0, time.UTC) }

func TestParseDays(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		want []string
		err  string
	}{
		{in: "mon,thu", want: []string{"mon", "thu"}},
		{in: "Thu, MON ,mon", want: []string{"mon", "thu"}},
		{in: "sun,sat,fri,thu,wed,tue,mon", want: []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}},
		{in: "daily", want: []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}},
		{in: "", err: "--days: no day given; valid: mon, tue, wed, thu, fri, sat, sun (comma separated, e.g. mon,thu) or daily"},
		{in: "monday", err: `--days: unknown day "monday" in "monday"; valid: mon, tue`},
		{in: "mon,,thu", err: `--days: unknown day "" in "mon,,thu"`},
		{in: "mon thu", err: `unknown day "mon thu"`},
	} {
		mask, err := engine.ParseDays(c.in)
		if c.err != "" {
			require.ErrorContains(t, err, c.err, c.in)
			continue
		}
		require.NoError(t, err, c.in)
		require.Equal(t, c.want, engine.DayNames(mask), c.in)
	}
}

// Slots in Europe/Berlin across both DST changes: the spring gap's 02:30
// does not exist and starts at 03:30 CEST (shifted by the gap); the autumn
// 02:30 exists twice and starts once, at the first (CEST) one. Slot names
// are the wall clock asked for.
func TestScheduleSlotsDST(t *testing.T) {
	t.Parallel()
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	daily := 127
	for _, c := range []struct {
		name     string
		at       int
		from, to time.Time
		want     []engine.Slot
	}{
		{"winter 03:10 is 02:10Z", 190, time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC),
			[]engine.Slot{{Name: "2026-12-07T03:10", Start: time.Date(2026, 12, 7, 2, 10, 0, 0, time.UTC)}}},
		{"spring gap 02:30 runs at 03:30 CEST", 150, time.Date(2027, 3, 27, 12, 0, 0, 0, time.UTC), time.Date(2027, 3, 29, 12, 0, 0, 0, time.UTC),
			[]engine.Slot{
				{Name: "2027-03-28T02:30", Start: time.Date(2027, 3, 28, 1, 30, 0, 0, time.UTC)}, // 03:30 CEST
				{Name: "2027-03-29T02:30", Start: time.Date(2027, 3, 29, 0, 30, 0, 0, time.UTC)}, // 02:30 CEST
			}},
		{"spring: 03:10 after the gap is CEST", 190, time.Date(2027, 3, 27, 12, 0, 0, 0, time.UTC), time.Date(2027, 3, 28, 12, 0, 0, 0, time.UTC),
			[]engine.Slot{{Name: "2027-03-28T03:10", Start: time.Date(2027, 3, 28, 1, 10, 0, 0, time.UTC)}}},
		{"autumn 02:30 twice: first (CEST), once", 150, time.Date(2026, 10, 24, 12, 0, 0, 0, time.UTC), time.Date(2026, 10, 25, 12, 0, 0, 0, time.UTC),
			[]engine.Slot{{Name: "2026-10-25T02:30", Start: time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC)}}},
		{"autumn 03:10 is CET", 190, time.Date(2026, 10, 24, 12, 0, 0, 0, time.UTC), time.Date(2026, 10, 25, 12, 0, 0, 0, time.UTC),
			[]engine.Slot{{Name: "2026-10-25T03:10", Start: time.Date(2026, 10, 25, 2, 10, 0, 0, time.UTC)}}},
		{"local midnight and the day before in UTC", 0, time.Date(2026, 12, 6, 22, 0, 0, 0, time.UTC), time.Date(2026, 12, 6, 23, 30, 0, 0, time.UTC),
			[]engine.Slot{{Name: "2026-12-07T00:00", Start: time.Date(2026, 12, 6, 23, 0, 0, 0, time.UTC)}}},
	} {
		got := engine.ScheduleSlots(daily, c.at, berlin, c.from, c.to)
		require.Len(t, got, len(c.want), c.name)
		for i := range got {
			require.Equal(t, c.want[i].Name, got[i].Name, c.name)
			require.True(t, c.want[i].Start.Equal(got[i].Start), "%s: start %s, want %s", c.name, got[i].Start, c.want[i].Start)
		}
	}
	// Weekdays are the schedule zone's: Monday 00:30 in Berlin is Sunday in UTC.
	got := engine.ScheduleSlots(1<<time.Monday, 30, berlin, time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC))
	require.Len(t, got, 1)
	require.Equal(t, "2026-12-07T00:30", got[0].Name)
	require.True(t, got[0].Start.Equal(time.Date(2026, 12, 6, 23, 30, 0, 0, time.UTC)))
}

// PlanSlots: what one schedule_backup run does with a schedule, over
// missed ticks, the grace boundary and clock steps.
func TestPlanSlots(t *testing.T) {
	t.Parallel()
	grace := 2 * time.Hour
	daily := 127
	sched := func(checked, updated time.Time) store.BackupSchedule {
		return store.BackupSchedule{Days: daily, AtMinute: 190, CheckedUntil: checked, UpdatedAt: updated}
	}
	type plan struct {
		name string
		late string
		skip bool
	}
	saved := utcAt(1, 12, 0) // Tuesday 2026-12-01
	for _, c := range []struct {
		name string
		b    store.BackupSchedule
		now  time.Time
		want []plan
	}{
		{"due now, checked an hour ago", sched(utcAt(7, 3, 0), saved), utcAt(7, 4, 0),
			[]plan{{"2026-12-07T03:10", "50m", false}}},
		{"not due yet", sched(utcAt(7, 2, 0), saved), utcAt(7, 3, 0), nil},
		{"at its start exactly", sched(utcAt(7, 3, 0), saved), utcAt(7, 3, 10), []plan{{"2026-12-07T03:10", "0m", false}}},
		{"already handled", sched(utcAt(7, 4, 0), saved), utcAt(7, 5, 0), nil},
		{"grace boundary: exactly grace late runs", sched(utcAt(7, 3, 0), saved), utcAt(7, 5, 10),
			[]plan{{"2026-12-07T03:10", "2h", false}}},
		{"grace boundary: a minute more is skipped", sched(utcAt(7, 3, 0), saved), utcAt(7, 5, 11),
			[]plan{{"2026-12-07T03:10", "2h1m", true}}},
		{"missed ticks over 3 days", sched(utcAt(4, 12, 0), saved), utcAt(7, 4, 0),
			[]plan{{"2026-12-05T03:10", "2d0h50m", true}, {"2026-12-06T03:10", "1d0h50m", true}, {"2026-12-07T03:10", "50m", false}}},
		{"clock step forward far past grace", sched(utcAt(7, 1, 0), saved), utcAt(8, 12, 0),
			[]plan{{"2026-12-07T03:10", "1d8h50m", true}, {"2026-12-08T03:10", "8h50m", true}}},
		{"clock step back: checked_until ahead, look back grace+24h", sched(utcAt(9, 12, 0), saved), utcAt(7, 4, 0),
			[]plan{{"2026-12-06T03:10", "1d0h50m", true}, {"2026-12-07T03:10", "50m", false}}},
		{"never handled: grace+24h", sched(time.Time{}, saved), utcAt(7, 4, 0),
			[]plan{{"2026-12-06T03:10", "1d0h50m", true}, {"2026-12-07T03:10", "50m", false}}},
		{"never before the schedule was saved", sched(time.Time{}, utcAt(7, 3, 30)), utcAt(7, 4, 0), nil},
		{"saved before the slot", sched(time.Time{}, utcAt(7, 3, 0)), utcAt(7, 4, 0), []plan{{"2026-12-07T03:10", "50m", false}}},
		{"saved at the slot's start exactly: it runs", sched(time.Time{}, utcAt(7, 3, 10)), utcAt(7, 4, 0), []plan{{"2026-12-07T03:10", "50m", false}}},
		{"saved at the slot's start, handled by a run at that instant", sched(utcAt(7, 3, 10), utcAt(7, 3, 10)), utcAt(7, 4, 0), nil},
		{"saved a second after the slot's start", sched(time.Time{}, utcAt(7, 3, 10).Add(time.Second)), utcAt(7, 4, 0), nil},
		{"saved in the future (clock stepped back): look back grace+24h", sched(time.Time{}, utcAt(20, 0, 0)), utcAt(7, 4, 0),
			[]plan{{"2026-12-06T03:10", "1d0h50m", true}, {"2026-12-07T03:10", "50m", false}}},
		{"look-back is capped at a week", sched(utcAt(7, 4, 0).AddDate(0, -1, 0), time.Time{}), utcAt(7, 4, 0),
			[]plan{{"2026-12-01T03:10", "6d0h50m", true}, {"2026-12-02T03:10", "5d0h50m", true}, {"2026-12-03T03:10", "4d0h50m", true},
				{"2026-12-04T03:10", "3d0h50m", true}, {"2026-12-05T03:10", "2d0h50m", true}, {"2026-12-06T03:10", "1d0h50m", true},
				{"2026-12-07T03:10", "50m", false}}},
	} {
		var got []plan
		for _, p := range engine.PlanSlots(c.b, time.UTC, grace, c.now) {
			got = append(got, plan{p.Name, engine.FormatLate(p.Late), p.Skip})
		}
		require.Equal(t, c.want, got, c.name)
	}
	// Only the schedule's weekdays.
	b := store.BackupSchedule{Days: 1<<time.Monday | 1<<time.Thursday, AtMinute: 190, CheckedUntil: mon07.AddDate(0, 0, -1)}
	var names []string
	for _, p := range engine.PlanSlots(b, time.UTC, 30*24*time.Hour, mon07.AddDate(0, 0, 6)) {
		names = append(names, p.Name)
	}
	require.Equal(t, []string{"2026-12-07T03:10", "2026-12-10T03:10"}, names)
}

// schedRig is a harness whose product backs up (quota 2) on schedules in
// UTC.
func schedRig(t *testing.T, tasks string) *harness {
	t.Helper()
	h := newHarness(t, tasks)
	p := h.e.Config.Products["small"]
	p.BackupQuota = 2
	h.e.Config.Products["small"] = p
	h.e.Config.Backups.Timezone = "UTC"
	h.clk.T = mon07
	return h
}

func pickLast(n int) int { return n - 1 }

func TestBackupScheduleRequest(t *testing.T) {
	t.Parallel()
	h := schedRig(t, "")
	vm := h.vm("web1", string(states.Ready))
	req := func(r engine.ScheduleRequest) (engine.Result, error) {
		r.VM = "web1"
		if r.Pick == nil {
			r.Pick = func(int) int { return 0 }
		}
		return h.e.BackupScheduleWith(h.ctx, r)
	}
	invalid := func(r engine.ScheduleRequest, field, msg string) {
		t.Helper()
		_, err := req(r)
		var inv *engine.ErrInvalid
		require.ErrorAs(t, err, &inv)
		require.Equal(t, field, inv.Field)
		require.Contains(t, inv.Rule, msg)
		_, ok, err := h.e.BackupScheduleOf(h.ctx, vm)
		require.NoError(t, err)
		require.False(t, ok, "bad input saved a schedule")
	}
	invalid(engine.ScheduleRequest{}, "--days", "give --days (mon, tue, wed, thu, fri, sat, sun (comma separated, e.g. mon,thu) or daily) and optionally --at HH:MM, or --off")
	invalid(engine.ScheduleRequest{Days: "mon,funday"}, "--days", `unknown day "funday"`)
	invalid(engine.ScheduleRequest{Days: "mon", At: "3:10"}, "--at", `--at: want HH:MM (24-hour), got "3:10", e.g. 03:10`)
	invalid(engine.ScheduleRequest{Days: "mon", At: "24:00"}, "--at", "want HH:MM (24-hour)")
	invalid(engine.ScheduleRequest{Days: "mon", Off: true}, "--off", "--off clears the schedule: give it without --days and --at")
	invalid(engine.ScheduleRequest{At: "03:10", Off: true}, "--off", "without --days and --at")
	invalid(engine.ScheduleRequest{At: "03:10"}, "--days", "VM web1 has no backup schedule: give --days")
	_, err := h.e.BackupSchedule(h.ctx, "nope", "mon", "", false)
	require.ErrorIs(t, err, engine.ErrNotFound)

	// New, without --at: a minute in the window (01:00-05:00), picked once.
	res, err := req(engine.ScheduleRequest{Days: "thu,mon", Pick: pickLast})
	require.NoError(t, err)
	require.True(t, res.Changed)
	require.Equal(t, "backup schedule", res.Audit.What)
	require.Contains(t, res.Audit.Detail, "days mon,thu; at 04:59 (picked in 01:00-05:00); timezone UTC")
	s, ok, err := h.e.BackupScheduleOf(h.ctx, vm)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "mon, thu at 04:59 (UTC; time chosen by pvectl in 01:00-05:00)", s.String())
	require.Equal(t, engine.ScheduleJSON{Days: []string{"mon", "thu"}, At: "04:59", Randomised: true, Timezone: "UTC", NextSlot: "2026-12-07T04:59"}, s.JSON())
	require.Equal(t, "schedule: mon, thu at 04:59 (UTC; time chosen by pvectl in 01:00-05:00); next slot 2026-12-07T04:59 (mon)", s.Line(true))
	require.Equal(t, "schedule: none", engine.Schedule{}.Line(false))

	// Other days without --at keep the time (not picked again).
	res, err = req(engine.ScheduleRequest{Days: "daily", Pick: func(int) int { return 7 }})
	require.NoError(t, err)
	require.True(t, res.Changed)
	s, _, _ = h.e.BackupScheduleOf(h.ctx, vm)
	require.Equal(t, "mon, tue, wed, thu, fri, sat, sun at 04:59 (UTC; time chosen by pvectl in 01:00-05:00)", s.String())
	// The same again changes nothing.
	res, err = req(engine.ScheduleRequest{Days: "daily"})
	require.NoError(t, err)
	require.False(t, res.Changed)
	// --at alone changes the time of the saved schedule.
	res, err = req(engine.ScheduleRequest{At: "03:10"})
	require.NoError(t, err)
	require.True(t, res.Changed)
	s, _, _ = h.e.BackupScheduleOf(h.ctx, vm)
	require.Equal(t, "mon, tue, wed, thu, fri, sat, sun at 03:10 (UTC)", s.String())
	// A window moved since: the picked time says so.
	h.e.Config.Backups.Window = "22:00-02:00"
	_, err = req(engine.ScheduleRequest{Days: "sun", At: ""})
	require.NoError(t, err)
	s, _, _ = h.e.BackupScheduleOf(h.ctx, vm)
	require.Equal(t, "sun at 03:10 (UTC)", s.String(), "an explicit time stays explicit")

	// --off clears, once.
	res, err = req(engine.ScheduleRequest{Off: true})
	require.NoError(t, err)
	require.True(t, res.Changed)
	_, ok, _ = h.e.BackupScheduleOf(h.ctx, vm)
	require.False(t, ok)
	res, err = req(engine.ScheduleRequest{Off: true})
	require.NoError(t, err)
	require.False(t, res.Changed)

	// A window wrapping midnight (22:00-02:00): first minute 22:00, last 01:59.
	res, err = req(engine.ScheduleRequest{Days: "mon", Pick: func(n int) int { require.Equal(t, 240, n); return 0 }})
	require.NoError(t, err)
	s, _, _ = h.e.BackupScheduleOf(h.ctx, vm)
	require.Equal(t, "mon at 22:00 (UTC; time chosen by pvectl in 22:00-02:00)", s.String())
	_, err = req(engine.ScheduleRequest{Off: true})
	require.NoError(t, err)
	_, err = req(engine.ScheduleRequest{Days: "mon", Pick: pickLast})
	require.NoError(t, err)
	s, _, _ = h.e.BackupScheduleOf(h.ctx, vm)
	require.Equal(t, "mon at 01:59 (UTC; time chosen by pvectl in 22:00-02:00)", s.String())
	h.e.Config.Backups.Window = "01:00-05:00"
	s, _, _ = h.e.BackupScheduleOf(h.ctx, vm)
	require.Equal(t, "mon at 01:59 (UTC; time chosen by pvectl in 01:00-05:00)", s.String())
	h.e.Config.Backups.Window = "02:00-05:00"
	s, _, _ = h.e.BackupScheduleOf(h.ctx, vm)
	require.Equal(t, "mon at 01:59 (UTC; time chosen by pvectl in an earlier backups.window)", s.String())

	// Every change and clear is in the VM's log; the no-op is not.
	runs, err := h.st.RunsForVM(h.ctx, vm.ID, 50)
	require.NoError(t, err)
	var details []string
	for _, r := range runs {
		if r.Task == engine.RequestTask {
			details = append(details, r.Lines[0].Step+": "+r.Lines[0].Detail[strings.Index(r.Lines[0].Detail, ";")+2:])
		}
	}
	require.Equal(t, []string{
		"backup schedule: days mon; at 01:59 (picked in 22:00-02:00); timezone UTC",
		"backup schedule: off",
		"backup schedule: days mon; at 22:00 (picked in 22:00-02:00); timezone UTC",
		"backup schedule: off",
		"backup schedule: days sun; at 03:10; timezone UTC",
		"backup schedule: days mon,tue,wed,thu,fri,sat,sun; at 03:10; timezone UTC",
		"backup schedule: days mon,tue,wed,thu,fri,sat,sun; at 04:59 (picked in 01:00-05:00); timezone UTC",
		"backup schedule: days mon,thu; at 04:59 (picked in 01:00-05:00); timezone UTC",
	}, details)
}

// Backups off (quota 0) or a VM going away: refused, exit 2; --off still works.
func TestBackupScheduleRefused(t *testing.T) {
	t.Parallel()
	h := schedRig(t, "")
	h.vm("web1", string(states.Ready))
	h.vm("gone", string(states.TerminateStopped))
	_, err := h.e.BackupSchedule(h.ctx, "gone", "mon", "", false)
	var ws *engine.ErrWrongState
	require.ErrorAs(t, err, &ws)
	require.Contains(t, err.Error(), "VM gone is in state terminate_stopped: it is being or has been removed; nothing to schedule")
	_, err = h.e.BackupSchedule(h.ctx, "gone", "", "", true)
	require.NoError(t, err)

	p := h.e.Config.Products["small"]
	p.BackupQuota = 0
	h.e.Config.Products["small"] = p
	_, err = h.e.BackupSchedule(h.ctx, "web1", "mon", "03:10", false)
	var inv *engine.ErrInvalid
	require.ErrorAs(t, err, &inv)
	require.Equal(t, "VM web1: product small has backup_quota 0: backups are off for it; raise products.small.backup_quota to schedule backups. Nothing saved", inv.Rule)
	res, err := h.e.BackupSchedule(h.ctx, "web1", "", "", true)
	require.NoError(t, err)
	require.False(t, res.Changed)
}

// schedule_backup over days of hourly runs: each slot is queued once, at
// the first run at or after its start; a re-run, a crash before
// checked_until was written and a clock stepped back queue nothing again;
// a slot found past grace is recorded skipped and logged once; VMs going
// away and products with backups off are left alone.
func TestScheduleBackupTask(t *testing.T) {
	t.Parallel()
	h := schedRig(t, "")
	web1 := h.vm("web1", string(states.Ready))
	web2 := h.vm("web2", string(states.Ready))
	gone := h.vm("gone", string(states.Ready))
	for _, r := range []struct{ vm, days, at string }{{"web1", "mon,wed", "03:10"}, {"web2", "daily", "23:30"}, {"gone", "daily", "03:10"}} {
		_, err := h.e.BackupSchedule(h.ctx, r.vm, r.days, r.at, false)
		require.NoError(t, err)
	}
	run := func(at time.Time) engine.ScheduleRun {
		t.Helper()
		h.clk.T = at
		h.out.Reset()
		r, err := h.e.ScheduleBackups(h.ctx)
		require.NoError(t, err)
		return r
	}
	slots := func(vm store.VM) []string {
		t.Helper()
		bs, err := h.st.BackupsOf(h.ctx, vm.ID)
		require.NoError(t, err)
		var out []string
		for _, b := range bs {
			s := b.Slot + " " + b.State
			if b.Error != "" {
				s += " (" + b.Error + ")"
			}
			out = append(out, s)
		}
		return out
	}

	// Hourly from Monday 00:00 to Tuesday 00:00.
	for hr := 0; hr <= 24; hr++ {
		r := run(mon07.Add(time.Duration(hr) * time.Hour))
		require.Zero(t, r.Errors)
		require.Equal(t, 3, r.Processed)
		switch hr {
		case 4:
			require.Equal(t, "queued 2 backup(s): gone 2026-12-07T03:10, web1 2026-12-07T03:10", r.Message)
			require.Contains(t, h.out.String(), "web1  Schedule backup  ready  success (slot 2026-12-07T03:10 mon queued, 50m late; the next process_vms pass starts it)")
			require.Contains(t, h.out.String(), "schedule_backup: queued 2 backup(s)")
		case 24:
			require.Equal(t, "queued 1 backup(s): web2 2026-12-07T23:30", r.Message)
		default:
			require.Equal(t, "3 schedule(s), no slot due", r.Message, "hr %d", hr)
			require.Empty(t, h.out.String(), "hr %d: a run with nothing due prints nothing", hr)
		}
	}
	require.Equal(t, []string{"2026-12-07T03:10 queued"}, slots(web1))
	require.Equal(t, []string{"2026-12-07T23:30 queued"}, slots(web2))

	// A re-run at the same time, and a crash before checked_until was
	// written (simulated by writing it back), queue nothing again.
	require.Equal(t, "3 schedule(s), no slot due", run(mon07.Add(24*time.Hour)).Message)
	require.NoError(t, h.st.BackupScheduleChecked(h.ctx, web1.ID, mon07))
	require.Equal(t, "3 schedule(s), no slot due", run(mon07.Add(24*time.Hour)).Message)
	// The clock steps back 20 hours and runs forward again: nothing twice.
	for hr := 4; hr <= 24; hr++ {
		require.Equal(t, "3 schedule(s), no slot due", run(mon07.Add(time.Duration(hr)*time.Hour)).Message, "hr %d", hr)
	}
	require.Equal(t, []string{"2026-12-07T03:10 queued"}, slots(web1))

	// gone is terminating: nothing queued, nothing recorded missed.
	require.NoError(t, h.st.VMApplyOutcome(h.ctx, store.Outcome{ID: gone.ID, FromStatus: gone.Status, FromVersion: gone.Version,
		ToStatus: string(states.Terminate), Now: h.clk.T}))
	// pvectl does not run from Tuesday 00:00 to Wednesday 06:00 (web1's
	// Wednesday 03:10 is 2h50m late, web2's Tuesday 23:30 is 6h30m):
	// both skipped, logged once.
	r := run(utcAt(9, 6, 0))
	require.Equal(t, "skipped 2 slot(s) past grace: web1 2026-12-09T03:10 (missed by 2h50m), web2 2026-12-08T23:30 (missed by 6h30m)", r.Message)
	require.Contains(t, h.out.String(), "WRN web1  Schedule backup  ready  skip (slot 2026-12-09T03:10 wed: missed by 2h50m (grace 2h): pvectl did not run)")
	require.Equal(t, []string{"2026-12-07T03:10 queued", "2026-12-09T03:10 skipped (missed by 2h50m (grace 2h): pvectl did not run)"}, slots(web1))
	require.Equal(t, []string{"2026-12-07T23:30 queued", "2026-12-08T23:30 skipped (missed by 6h30m (grace 2h): pvectl did not run)"}, slots(web2))
	require.Equal(t, []string{"2026-12-07T03:10 queued"}, slots(gone))
	require.Equal(t, "3 schedule(s), no slot due", run(utcAt(9, 7, 0)).Message, "logged once")
	lr := h.lastRun(web1.ID)
	require.Equal(t, "schedule_backup", lr.Task)
	require.Len(t, lr.Lines, 1)
	require.Equal(t, "skip (slot 2026-12-09T03:10 wed: missed by 2h50m (grace 2h): pvectl did not run)", lr.Lines[0].Result)

	// Backups turned off for the product: nothing queued, and once back on,
	// the slots while off are not reported missed.
	p := h.e.Config.Products["small"]
	p.BackupQuota = 0
	h.e.Config.Products["small"] = p
	require.Equal(t, "3 schedule(s), no slot due", ScheduleRunMessage(t, h, utcAt(10, 0, 0)))
	p.BackupQuota = 1
	h.e.Config.Products["small"] = p
	require.Equal(t, "3 schedule(s), no slot due", ScheduleRunMessage(t, h, utcAt(10, 1, 0)))
	require.Equal(t, "queued 1 backup(s): web2 2026-12-10T23:30", ScheduleRunMessage(t, h, utcAt(10, 23, 45)))
	require.Equal(t, []string{"2026-12-07T23:30 queued", "2026-12-08T23:30 skipped (missed by 6h30m (grace 2h): pvectl did not run)", "2026-12-10T23:30 queued"}, slots(web2))

	// A product missing from the config is an error for that VM only.
	delete(h.e.Config.Products, "small")
	h.clk.T = utcAt(11, 0, 0)
	sr, err := h.e.ScheduleBackups(h.ctx)
	require.NoError(t, err)
	require.Equal(t, 2, sr.Errors)
	require.Contains(t, sr.Message, `2 error(s): web1: product "small" is not in the config; web2: product "small" is not in the config`)
}

// ScheduleRunMessage runs schedule_backup at at and returns its message.
func ScheduleRunMessage(t *testing.T, h *harness, at time.Time) string {
	t.Helper()
	h.clk.T = at
	r, err := h.e.ScheduleBackups(h.ctx)
	require.NoError(t, err)
	return r.Message
}

// The task is registered with its default interval.
func TestScheduleBackupTaskRegistered(t *testing.T) {
	t.Parallel()
	task, ok := (&engine.Engine{}).LookupTask("schedule_backup")
	require.True(t, ok)
	require.Equal(t, time.Hour, task.DefaultInterval)
}
