package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/pvectl/pvectl/store"
)

// PurgeInterval is the purge task's default interval.
const PurgeInterval = 24 * time.Hour

// PurgeTask deletes old housekeeping rows (config purge).
func PurgeTask() Task {
	return Task{
		Name:            "purge",
		Description:     "delete task runs older than purge.task_runs_days (each task's newest kept), notifications delivered more than purge.notifications_days ago, and records in remove for more than purge.removed_days (their VMID and addresses kept in the audit)",
		DefaultInterval: PurgeInterval,
		Run: func(ctx context.Context, e *Engine) (TaskCounts, error) {
			c, err := e.Purge(ctx, false)
			return TaskCounts{Processed: int(c.TaskRuns + c.Notifications + c.RemovedVMs), Message: PurgeMessage(c, false)}, err
		},
	}
}

// Purge deletes (or, dry, counts) what the purge settings let go.
func (e *Engine) Purge(ctx context.Context, dry bool) (store.PurgeCounts, error) {
	now := e.Clock.Now()
	before := func(keep time.Duration) time.Time {
		if keep == 0 {
			return time.Time{}
		}
		return now.Add(-keep)
	}
	p := e.Config.Purge
	return e.Store.Purge(ctx, store.PurgeBefore{
		TaskRuns:      before(p.TaskRunsKept()),
		Notifications: before(p.NotificationsKept()),
		Removed:       before(p.RemovedKept()),
		Now:           now,
	}, dry)
}

// PurgeMessage says what a purge deleted or would delete.
func PurgeMessage(c store.PurgeCounts, dry bool) string {
	verb := "deleted"
	if dry {
		verb = "would delete"
	}
	return fmt.Sprintf("%s %d task run(s), %d delivered notification(s) and %d removed VM record(s)", verb, c.TaskRuns, c.Notifications, c.RemovedVMs)
}
