package config

import "time"

// Purge is the `purge` section: how long the purge task (daily) keeps
// housekeeping rows; 0 keeps them forever, unset is the default.
type Purge struct {
	// TaskRunsDays: task runs (pvectl tasks' history) older than this are
	// deleted; each task's newest run is always kept. Default 30.
	TaskRunsDays *int `yaml:"task_runs_days" valid:"0 (keep) or more"`
	// NotificationsDays: delivered notifications older than this are
	// deleted; pending and parked ones are kept. Default 30.
	NotificationsDays *int `yaml:"notifications_days" valid:"0 (keep) or more"`
	// RemovedDays: records in remove for longer than this are deleted with
	// their logs; who held their VMID and addresses stays in the audit
	// (pvectl audit). Default 90.
	RemovedDays *int `yaml:"removed_days" valid:"0 (keep) or more"`
}

// Purge defaults.
const (
	DefaultPurgeTaskRunsDays      = 30
	DefaultPurgeNotificationsDays = 30
	DefaultPurgeRemovedDays       = 90
)

func daysOr(p *int, def int) time.Duration {
	d := def
	if p != nil {
		d = *p
	}
	return time.Duration(d) * 24 * time.Hour
}

// TaskRunsKept is how long task runs are kept (0: forever).
func (p Purge) TaskRunsKept() time.Duration { return daysOr(p.TaskRunsDays, DefaultPurgeTaskRunsDays) }

// NotificationsKept is how long delivered notifications are kept (0: forever).
func (p Purge) NotificationsKept() time.Duration {
	return daysOr(p.NotificationsDays, DefaultPurgeNotificationsDays)
}

// RemovedKept is how long records in remove are kept (0: forever).
func (p Purge) RemovedKept() time.Duration { return daysOr(p.RemovedDays, DefaultPurgeRemovedDays) }

func (c *Config) validatePurge() []error {
	var errs []error
	if p := c.Purge.TaskRunsDays; p != nil && *p < 0 {
		errs = append(errs, c.Errorf("purge.task_runs_days", "must be 0 (keep) or more, got %d", *p))
	}
	if p := c.Purge.NotificationsDays; p != nil && *p < 0 {
		errs = append(errs, c.Errorf("purge.notifications_days", "must be 0 (keep) or more, got %d", *p))
	}
	if p := c.Purge.RemovedDays; p != nil && *p < 0 {
		errs = append(errs, c.Errorf("purge.removed_days", "must be 0 (keep) or more, got %d", *p))
	}
	return errs
}
