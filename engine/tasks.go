package engine

import (
	"context"
	"time"
)

// Task is a scheduled task. StandardTasks lists them; a new task is a
// constructor in its own file plus one line there.
type Task struct {
	Name            string
	Description     string
	DefaultInterval time.Duration
	// Run does the work. It returns how many items it processed and how many
	// of them failed; an error means the task itself failed.
	Run func(ctx context.Context, e *Engine) (TaskCounts, error)
}

// TaskCounts is what a task reports for task_runs.
type TaskCounts struct {
	Processed int
	Errors    int
	Message   string
}

// StandardTasks are the scheduled tasks pvectl runs, in the order a tick
// runs them.
func StandardTasks() []Task {
	return []Task{ProcessVMsTask(), RefreshPowerTask(), RestoreBackupTask(), BackupStatusTask(), ScheduleBackupTask(), RemoveSnapshotsTask(), CollectStatsTask(), ReconcileTask(), NotifyTask(), PurgeTask()}
}

// Tasks is the engine's task list: TaskList when set, else StandardTasks.
func (e *Engine) Tasks() []Task {
	if e.TaskList != nil {
		return e.TaskList
	}
	return StandardTasks()
}

// TaskNames returns the names of the engine's tasks, in tick order.
func (e *Engine) TaskNames() []string {
	return taskNames(e.Tasks())
}

// LookupTask finds one of the engine's tasks by name.
func (e *Engine) LookupTask(name string) (Task, bool) {
	return lookupTask(e.Tasks(), name)
}

func taskNames(tasks []Task) []string {
	out := make([]string, 0, len(tasks))
	for _, t := range tasks {
		out = append(out, t.Name)
	}
	return out
}

func lookupTask(tasks []Task, name string) (Task, bool) {
	for _, t := range tasks {
		if t.Name == name {
			return t, true
		}
	}
	return Task{}, false
}
