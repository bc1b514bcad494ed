package engine

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
)

// Stuck classes: what a VM that stays in one state waits for.
const (
	StuckStep = "step" // its step runs without a PVE task (retries included)
	StuckTask = "task" // it follows a PVE task of its step
	StuckLock = "lock" // it waits for a PVE lock (a backup, a snapshot)
)

// Stuck is how long a VM has been in its state against the limit of what
// it waits for (config health.stuck_after).
type Stuck struct {
	Class    string        `json:"class"`               // step, task or lock
	TaskType string        `json:"task_type,omitempty"` // the PVE task type for class task (qmclone, …)
	For      time.Duration `json:"-"`
	Limit    time.Duration `json:"-"`
	// ForText and LimitText are For and Limit for people ("2h13m").
	ForText   string `json:"for"`
	LimitText string `json:"limit"`
}

// StuckOf reports whether vm is stuck at now: in a state that is not final,
// not held (held VMs are counted as held), since longer than its class's
// limit. The state's start is kept across waits and retries.
func (e *Engine) StuckOf(vm VM, now time.Time) (Stuck, bool) {
	since := vm.StepStartedAt
	if since.IsZero() {
		since = vm.CreatedAt // a record created before its state's start was kept
	}
	if states.State(vm.Status).Final() || vm.Held || since.IsZero() {
		return Stuck{}, false
	}
	sa := e.Config.Health.StuckAfter
	s := Stuck{For: max(now.Sub(since), 0)}
	switch {
	case strings.HasPrefix(vm.WaitReason, "PVE lock"):
		s.Class, s.Limit = StuckLock, time.Duration(sa.Lock)
	case vm.PendingUPID != "":
		_, typ, _, _ := proxmox.ParseUPID(vm.PendingUPID)
		s.Class, s.TaskType, s.Limit = StuckTask, typ, sa.TaskLimit(typ)
	default:
		s.Class, s.Limit = StuckStep, time.Duration(sa.Step)
	}
	s.ForText, s.LimitText = ShortDuration(s.For), ShortDuration(s.Limit)
	return s, s.For > s.Limit
}

// Text is a stuck VM's note: "stuck: task qmclone for 2h13m (limit 2h)".
func (s Stuck) Text() string {
	what := s.Class
	if s.TaskType != "" {
		what += " " + s.TaskType
	}
	return fmt.Sprintf("stuck: %s for %s (limit %s)", what, s.ForText, s.LimitText)
}

// ShortDuration renders d to the minute once it is an hour or more
// ("2h13m", "3d4h"), to the second below.
func ShortDuration(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		d = d.Round(time.Hour)
		return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
	case d >= time.Hour:
		s := strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
		if strings.HasSuffix(s, "h0m") {
			s = strings.TrimSuffix(s, "0m")
		}
		return s
	}
	return d.Round(time.Second).String()
}

// Health levels, worst last; their order is the exit code of pvectl
// health (monitoring plugins: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).
const (
	Healthy   = "healthy"
	Degraded  = "degraded"
	Unhealthy = "unhealthy"
	Unknown   = "unknown"
)

var healthRank = map[string]int{Healthy: 0, Degraded: 1, Unhealthy: 2, Unknown: 3}

// HealthExitCode is the exit code of a health level.
func HealthExitCode(level string) int { return healthRank[level] }

// HealthCheck is one check of pvectl health.
type HealthCheck struct {
	Name   string `json:"name"`
	Status string `json:"status"` // healthy, degraded or unhealthy
	Detail string `json:"detail"`
	// Millis is how long the check's call took (pve, dns).
	Millis *int64 `json:"ms,omitempty"`
}

// HealthReport is what pvectl health prints.
type HealthReport struct {
	Status    string        `json:"status"`
	CheckedAt time.Time     `json:"checked_at"`
	Summary   string        `json:"summary"`
	Checks    []HealthCheck `json:"checks"`
	// Counts for the performance data of the one-line output.
	VMs            int    `json:"vms"`
	Held           int    `json:"held"`
	ErrorTerminate int    `json:"error_terminate"`
	StuckVMs       int    `json:"stuck"`
	PVEMillis      *int64 `json:"pve_ms"`
}

// healthNames lists at most three service ids, then how many more.
func healthNames(ids []string) string {
	if len(ids) > 3 {
		return strings.Join(ids[:3], ", ") + fmt.Sprintf(" and %d more", len(ids)-3)
	}
	return strings.Join(ids, ", ")
}

// Health runs every check (VMs, tasks, PVE, DNS, the store, the state
// directory's disk) and rates pvectl: healthy, degraded (something needs
// an admin soon: held, error_terminate or stuck VMs, a task that failed or
// has not run, DNS, low disk) or unhealthy (nothing can progress: PVE
// unreachable or refusing the token, process_vms not running, a damaged
// store, a nearly full disk).
func (e *Engine) Health(ctx context.Context) HealthReport {
	now := e.Clock.Now()
	r := HealthReport{CheckedAt: now.UTC()}
	add := func(c HealthCheck) { r.Checks = append(r.Checks, c) }

	add(e.healthVMs(ctx, now, &r))
	add(e.healthTasks(ctx, now))
	add(e.healthPVE(ctx, &r))
	if c, ok := e.healthDNS(ctx); ok {
		add(c)
	}
	if c, ok := e.healthNotifications(ctx); ok {
		add(c)
	}
	if c, ok := e.healthFindings(ctx); ok {
		add(c)
	}
	add(e.healthStore(ctx))
	add(e.healthDisk())

	r.Status = Healthy
	var bad []string
	for _, c := range r.Checks {
		if healthRank[c.Status] > healthRank[r.Status] {
			r.Status = c.Status
		}
		if c.Status != Healthy {
			bad = append(bad, c.Name+": "+c.Detail)
		}
	}
	if len(bad) == 0 {
		parts := []string{fmt.Sprintf("%d VM(s), none held, stuck or in error_terminate", r.VMs)}
		for _, c := range r.Checks {
			if c.Name == "pve" || c.Name == "dns" {
				parts = append(parts, c.Name+" "+c.Detail)
			}
		}
		r.Summary = strings.Join(parts, "; ")
	} else {
		r.Summary = strings.Join(bad, "; ")
	}
	return r
}

// healthFindings: what the last reconcile run found (orphans, drift)
// needs an admin: degraded. Reported only when the reconcile task is on.
func (e *Engine) healthFindings(ctx context.Context) (HealthCheck, bool) {
	t, ok := e.LookupTask("reconcile")
	if !ok || e.Interval(t) == 0 {
		return HealthCheck{}, false
	}
	c := HealthCheck{Name: "orphans", Status: Healthy}
	fs, err := e.Store.Findings(ctx)
	if err != nil {
		return HealthCheck{Name: "orphans", Status: Degraded, Detail: "cannot read reconcile findings: " + err.Error()}, true
	}
	if len(fs) == 0 {
		c.Detail = "the last reconcile run found nothing"
		return c, true
	}
	r := Reconciliation{}
	for _, f := range fs {
		r.Findings = append(r.Findings, findingOf(f))
	}
	c.Status = Degraded
	c.Detail = fmt.Sprintf("%d finding(s) from reconcile: %s (pvectl orphans --last)", len(fs), r.kindCounts())
	return c, true
}

func (e *Engine) healthVMs(ctx context.Context, now time.Time, r *HealthReport) HealthCheck {
	c := HealthCheck{Name: "vms", Status: Healthy}
	vms, err := e.Store.VMList(ctx, store.VMFilter{})
	if err != nil {
		return HealthCheck{Name: "vms", Status: Unhealthy, Detail: "cannot read the VM records: " + err.Error()}
	}
	var held, errTerm, stuck []string
	for _, vm := range vms {
		switch {
		case vm.Status == string(states.ErrorTerminate):
			errTerm = append(errTerm, vm.ServiceID)
		case vm.Held:
			held = append(held, vm.ServiceID)
		default:
			if s, ok := e.StuckOf(vm, now); ok {
				stuck = append(stuck, fmt.Sprintf("%s (%s: %s)", vm.ServiceID, vm.Status, strings.TrimPrefix(s.Text(), "stuck: ")))
			}
		}
	}
	r.VMs, r.Held, r.ErrorTerminate, r.StuckVMs = len(vms), len(held), len(errTerm), len(stuck)
	var parts []string
	if len(held) > 0 {
		parts = append(parts, fmt.Sprintf("%d held: %s (pvectl vm list; fix, then pvectl vm retry)", len(held), healthNames(held)))
	}
	if len(errTerm) > 0 {
		parts = append(parts, fmt.Sprintf("%d in error_terminate: %s (see docs/reset-status.md)", len(errTerm), healthNames(errTerm)))
	}
	if len(stuck) > 0 {
		parts = append(parts, fmt.Sprintf("%d stuck: %s (pvectl vm list --stuck)", len(stuck), healthNames(stuck)))
	}
	if len(parts) == 0 {
		c.Detail = fmt.Sprintf("%d VM(s), none held, stuck or in error_terminate", len(vms))
		return c
	}
	c.Status, c.Detail = Degraded, strings.Join(parts, "; ")
	return c
}

// healthTasks: a task whose last run failed, or that has not run for three
// of its intervals, is degraded; process_vms not running for three
// intervals (the crontab or timer is gone) is unhealthy, and so is
// process_vms never having run while there are VMs to deploy.
func (e *Engine) healthTasks(ctx context.Context, now time.Time) HealthCheck {
	c := HealthCheck{Name: "tasks", Status: Healthy}
	ts, err := e.TaskStatuses(ctx)
	if err != nil {
		return HealthCheck{Name: "tasks", Status: Unhealthy, Detail: "cannot read task runs: " + err.Error()}
	}
	var problems []string
	worst := Healthy
	note := func(level, msg string) {
		problems = append(problems, msg)
		if healthRank[level] > healthRank[worst] {
			worst = level
		}
	}
	interval := map[string]time.Duration{}
	for _, t := range e.Tasks() {
		interval[t.Name] = e.Interval(t)
	}
	for _, t := range ts {
		if !t.Enabled {
			continue
		}
		iv := interval[t.Name]
		level := Degraded
		if t.Name == "process_vms" {
			level = Unhealthy
		}
		switch {
		case t.LastStart == nil:
			if t.Name == "process_vms" {
				note(Degraded, "process_vms has never run (is the crontab or systemd timer installed? docs/install.md)")
			}
		case now.Sub(*t.LastStart) > 3*iv:
			note(level, fmt.Sprintf("%s last ran %s ago (interval %s)", t.Name, ShortDuration(now.Sub(*t.LastStart)), iv))
		case t.LastResult == "error" || t.LastResult == "interrupted":
			note(Degraded, fmt.Sprintf("%s last run %s: %s", t.Name, t.LastResult, truncate(t.LastMessage, 160)))
		}
	}
	if len(problems) == 0 {
		c.Detail = "every enabled task ran within three of its intervals, none failed"
		return c
	}
	c.Status, c.Detail = worst, strings.Join(problems, "; ")
	return c
}

func (e *Engine) healthPVE(ctx context.Context, r *HealthReport) HealthCheck {
	c := HealthCheck{Name: "pve"}
	env, err := e.Env(ctx)
	if err != nil || env.PVE == nil {
		why := "no PVE client configured"
		if err != nil {
			why = err.Error()
		}
		return HealthCheck{Name: "pve", Status: Unhealthy, Detail: why}
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	start := time.Now()
	v, err := env.PVE.Version(cctx)
	ms := time.Since(start).Milliseconds()
	c.Millis, r.PVEMillis = &ms, &ms
	if err != nil {
		c.Status = Unhealthy
		if proxmox.IsAuth(err) {
			c.Detail = "PVE refuses the API token (check proxmox.token_id and token_secret): " + err.Error()
		} else {
			c.Detail = "PVE unreachable: " + err.Error()
		}
		return c
	}
	c.Status, c.Detail = Healthy, fmt.Sprintf("%dms (version %s)", ms, v)
	return c
}

// healthDNS checks every configured zone; false when none is.
func (e *Engine) healthDNS(ctx context.Context) (HealthCheck, bool) {
	start := time.Now()
	rows := e.CheckDNSZones(ctx)
	ms := time.Since(start).Milliseconds()
	if rows == nil {
		return HealthCheck{}, false
	}
	c := HealthCheck{Name: "dns", Status: Healthy, Millis: &ms}
	var bad []string
	for _, z := range rows {
		if !z.OK {
			bad = append(bad, fmt.Sprintf("%s at %s: %s", z.Zone, z.Server, z.Error))
		}
	}
	if len(bad) > 0 {
		c.Status, c.Detail = Degraded, fmt.Sprintf("%d of %d zone(s) failing: %s (pvectl dns check)", len(bad), len(rows), strings.Join(bad, "; "))
		return c, true
	}
	c.Detail = fmt.Sprintf("%dms (%d zone(s))", ms, len(rows))
	return c, true
}

// healthNotifications: parked deliveries are degraded; none configured
// and none stored: no check.
func (e *Engine) healthNotifications(ctx context.Context) (HealthCheck, bool) {
	pending, parked, err := e.Store.OutboxCounts(ctx)
	switch {
	case err != nil:
		return HealthCheck{Name: "notify", Status: Degraded, Detail: "cannot read the outbox: " + err.Error()}, true
	case len(e.Config.Notifications.Channels()) == 0 && pending+parked == 0:
		return HealthCheck{}, false
	case parked > 0:
		return HealthCheck{Name: "notify", Status: Degraded, Detail: fmt.Sprintf("%d notification(s) parked after notifications.max_attempts (pvectl notifications --failed); %d pending", parked, pending)}, true
	}
	return HealthCheck{Name: "notify", Status: Healthy, Detail: fmt.Sprintf("%d pending, none parked", pending)}, true
}

func (e *Engine) healthStore(ctx context.Context) HealthCheck {
	problems, err := e.Store.QuickCheck(ctx)
	switch {
	case err != nil:
		return HealthCheck{Name: "store", Status: Unhealthy, Detail: "integrity check failed to run: " + err.Error()}
	case len(problems) > 0:
		sort.Strings(problems)
		return HealthCheck{Name: "store", Status: Unhealthy, Detail: "the database is damaged (PRAGMA quick_check): " + truncate(strings.Join(problems, "; "), 300) + "; see docs/troubleshooting.md"}
	}
	return HealthCheck{Name: "store", Status: Healthy, Detail: "quick_check ok"}
}

// healthDisk: free space in the state directory (the database, its WAL and
// the task locks) below health.min_free_disk_mb is degraded, below a tenth
// of it unhealthy.
func (e *Engine) healthDisk() HealthCheck {
	c := HealthCheck{Name: "disk", Status: Healthy}
	var st unix.Statfs_t
	if err := unix.Statfs(e.StateDir, &st); err != nil {
		return HealthCheck{Name: "disk", Status: Degraded, Detail: fmt.Sprintf("cannot read free space of %s: %v", e.StateDir, err)}
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	limit := int64(e.Config.Health.MinFreeDiskMB) << 20
	c.Detail = fmt.Sprintf("%s free in %s", FormatSize(free), e.StateDir)
	switch {
	case free < limit/10:
		c.Status = Unhealthy
	case free < limit:
		c.Status = Degraded
	}
	if c.Status != Healthy {
		c.Detail += fmt.Sprintf(" (health.min_free_disk_mb %d)", e.Config.Health.MinFreeDiskMB)
	}
	return c
}

// HealthUnknown is the report of a health check that could not run (no
// config, no store): status unknown with the reason.
func HealthUnknown(err error, now time.Time) HealthReport {
	return HealthReport{Status: Unknown, CheckedAt: now.UTC(), Summary: "cannot check: " + err.Error()}
}
