package engine

import (
	"context"
	"sort"
	"time"
)

// Task is a scheduled task. Adding one is one file: define it and register
// it from that file's init.
type Task struct {
	Name            string
	Description     string
	DefaultInterval time.Duration
	// Run does the work. It returns how many items it processed and how many
	// of them failed; an error means the task itself failed.
	Run func(ctx context.Context, e *Engine) (TaskCounts, error)
	// testOnly tasks exist only inside test binaries with PVECTL_TEST_TASKS=1.
	testOnly bool
}

// TaskCounts is what a task reports for task_runs.
type TaskCounts struct {
	Processed int
	Errors    int
	Message   string
}

var registry = map[string]Task{}

func register(t Task) {
	if _, dup := registry[t.Name]; dup {
		panic("engine: task registered twice: " + t.Name)
	}
	registry[t.Name] = t
}

// Tasks returns the registered tasks, sorted by name.
func Tasks() []Task {
	var out []Task
	for _, t := range registry {
		if t.testOnly && !testTasksEnabled() {
			continue
		}
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// TaskNames returns the registered task names, sorted.
func TaskNames() []string {
	var out []string
	for _, t := range Tasks() {
		out = append(out, t.Name)
	}
	return out
}

// LookupTask finds a task by name.
func LookupTask(name string) (Task, bool) {
	for _, t := range Tasks() {
		if t.Name == name {
			return t, true
		}
	}
	return Task{}, false
}
