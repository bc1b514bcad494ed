package config

import (
	"regexp"
	"sort"
	"time"
)

// Health is the `health` section: when a VM counts as stuck (vm list
// --stuck, pvectl health) and when the state directory's free space is a
// problem.
type Health struct {
	StuckAfter StuckAfter `yaml:"stuck_after"`
	// MinFreeDiskMB: below this much free space in the state directory
	// pvectl health is degraded, below a tenth of it unhealthy; default 1024.
	MinFreeDiskMB int `yaml:"min_free_disk_mb" valid:"1 or more (MB)"`
}

// StuckAfter is how long a VM may stay in one state, not held and not in a
// final state, before it counts as stuck, by what it is waiting for.
type StuckAfter struct {
	// Step: its step runs without a PVE task (including retries with
	// backoff); default 1h.
	Step Duration `yaml:"step"`
	// Task: it follows a PVE task of its step; default 2h. Tasks overrides
	// it per PVE task type (qmclone, qmigrate, qmrestore, …).
	Task  Duration            `yaml:"task"`
	Tasks map[string]Duration `yaml:"tasks"`
	// Lock: it waits for a PVE lock (a backup, a snapshot); default 6h.
	Lock Duration `yaml:"lock"`
}

// Health defaults.
const (
	DefaultStuckStep     = time.Hour
	DefaultStuckTask     = 2 * time.Hour
	DefaultStuckLock     = 6 * time.Hour
	DefaultMinFreeDiskMB = 1024
)

// TaskLimit is how long a VM may follow a PVE task of type typ ("" when
// unknown) before it counts as stuck.
func (s StuckAfter) TaskLimit(typ string) time.Duration {
	if d, ok := s.Tasks[typ]; ok && typ != "" {
		return time.Duration(d)
	}
	return time.Duration(s.Task)
}

func (c *Config) defaultHealth() {
	h := &c.Health
	if h.StuckAfter.Step == 0 {
		h.StuckAfter.Step = Duration(DefaultStuckStep)
	}
	if h.StuckAfter.Task == 0 {
		h.StuckAfter.Task = Duration(DefaultStuckTask)
	}
	if h.StuckAfter.Lock == 0 {
		h.StuckAfter.Lock = Duration(DefaultStuckLock)
	}
	if h.MinFreeDiskMB == 0 {
		h.MinFreeDiskMB = DefaultMinFreeDiskMB
	}
}

var taskTypeRE = regexp.MustCompile(`^[a-z][a-z0-9]*$`)

func (c *Config) validateHealth() []error {
	var errs []error
	if c.Health.MinFreeDiskMB < 0 {
		errs = append(errs, c.Errorf("health.min_free_disk_mb", "must be 1 or more (MB), got %d", c.Health.MinFreeDiskMB))
	}
	types := make([]string, 0, len(c.Health.StuckAfter.Tasks))
	for t := range c.Health.StuckAfter.Tasks {
		types = append(types, t)
	}
	sort.Strings(types)
	for _, t := range types {
		if !taskTypeRE.MatchString(t) {
			errs = append(errs, c.Errorf("health.stuck_after.tasks", "%q is not a PVE task type (lower-case letters and digits: qmclone, qmigrate, qmrestore, vzdump, …)", t))
		} else if c.Health.StuckAfter.Tasks[t] == 0 {
			errs = append(errs, c.Errorf("health.stuck_after.tasks."+t, "must be more than 0"))
		}
	}
	return errs
}
