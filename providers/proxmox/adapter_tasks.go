package proxmox

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Task status and log.

func taskCall(t TaskRef, suffix string) (callInfo, error) {
	if t.UPID == "" || t.Node == "" {
		return callInfo{}, errorf(ClassInvalid, "task", "task reference needs node and UPID")
	}
	if _, _, _, err := ParseUPID(t.UPID); err != nil {
		return callInfo{}, err
	}
	// The UPID goes into the path as is (':', '@', '!' are valid there),
	// as PVE's own clients send it.
	return callInfo{method: http.MethodGet, path: "/nodes/" + url.PathEscape(t.Node) + "/tasks/" + t.UPID + suffix, tmpl: "/nodes/{node}/tasks/{upid}" + suffix, node: t.Node}, nil
}

// TaskStatus implements Client. It decodes the status itself: go-proxmox's
// Task panics on a string starttime and counts WARNINGS as failure.
func (a *Adapter) TaskStatus(ctx context.Context, t TaskRef) (TaskStatus, error) {
	ci, err := taskCall(t, "/status")
	if err != nil {
		return TaskStatus{}, err
	}
	var raw struct {
		Type       string  `json:"type"`
		ID         flexStr `json:"id"`
		User       string  `json:"user"`
		TokenID    string  `json:"tokenid"`
		Status     string  `json:"status"`
		ExitStatus string  `json:"exitstatus"`
		StartTime  flexNum `json:"starttime"`
	}
	if err := a.call(ctx, ci, nil, &raw); err != nil {
		return TaskStatus{}, err
	}
	user := raw.User
	if raw.TokenID != "" {
		user += "!" + raw.TokenID
	}
	st := TaskStatus{Task: t, Type: raw.Type, ID: string(raw.ID), User: user,
		ExitStatus: raw.ExitStatus, StartTime: unixTime(raw.StartTime)}
	switch raw.Status {
	case "running":
		st.Running = true
	case "stopped":
	default:
		return TaskStatus{}, &Error{Class: ClassUnknown, Op: ci.method + " " + ci.path, Node: t.Node,
			Message: fmt.Sprintf("unexpected task status %q", raw.Status)}
	}
	return st, nil
}

// TaskLog implements Client.
func (a *Adapter) TaskLog(ctx context.Context, t TaskRef, start, limit int) ([]TaskLogLine, error) {
	ci, err := taskCall(t, "/log")
	if err != nil {
		return nil, err
	}
	p := map[string]any{}
	if start > 0 {
		p["start"] = start
	}
	if limit > 0 {
		p["limit"] = limit
	}
	var raw []struct {
		N flexNum `json:"n"`
		T string  `json:"t"`
	}
	if err := a.call(ctx, ci, p, &raw); err != nil {
		return nil, err
	}
	out := make([]TaskLogLine, 0, len(raw))
	for _, l := range raw {
		out = append(out, TaskLogLine{N: int(l.N), Text: l.T})
	}
	return out, nil
}

// TaskFilter selects tasks of one node for Tasks (GET /nodes/{node}/tasks;
// the parameters exist on PVE 8.4 and 9.2). Zero fields do not filter.
type TaskFilter struct {
	// VMID: only tasks whose id is this VMID (vmid).
	VMID int
	// Type: only tasks of this type, e.g. "qmreboot" (typefilter).
	Type string
	// Since: only tasks started at or after this time of PVE's clock (since,
	// whole seconds).
	Since time.Time
	// Limit: at most this many tasks (0 = PVE's default of 50).
	Limit int
}

// TaskEntry is one task of a node's task list.
type TaskEntry struct {
	Task      TaskRef
	Type      string
	ID        string
	User      string
	StartTime time.Time // PVE's clock, from the UPID
	EndTime   time.Time // zero while it runs
	// Status is PVE's list status: "RUNNING", or the exit status of a
	// finished task ("OK", "WARNINGS: n" or the error text).
	Status string
}

// Running reports whether the task had not ended when it was listed.
func (e TaskEntry) Running() bool { return e.Status == "RUNNING" }

// Tasks implements Client.
func (a *Adapter) Tasks(ctx context.Context, node string, f TaskFilter) ([]TaskEntry, error) {
	if node == "" {
		return nil, errorf(ClassInvalid, "tasks", "task list needs a node")
	}
	ci := callInfo{method: http.MethodGet, path: "/nodes/" + url.PathEscape(node) + "/tasks", tmpl: "/nodes/{node}/tasks", node: node}
	p := map[string]any{"source": "all"}
	if f.VMID != 0 {
		p["vmid"] = f.VMID
	}
	if f.Type != "" {
		p["typefilter"] = f.Type
	}
	if !f.Since.IsZero() {
		p["since"] = f.Since.Unix()
	}
	if f.Limit > 0 {
		p["limit"] = f.Limit
	}
	var raw []struct {
		UPID      string  `json:"upid"`
		Node      string  `json:"node"`
		Type      string  `json:"type"`
		ID        flexStr `json:"id"`
		User      string  `json:"user"`
		TokenID   string  `json:"tokenid"`
		StartTime flexNum `json:"starttime"`
		EndTime   flexNum `json:"endtime"`
		Status    string  `json:"status"`
	}
	if err := a.call(ctx, ci, p, &raw); err != nil {
		return nil, err
	}
	out := make([]TaskEntry, 0, len(raw))
	for _, r := range raw {
		user := r.User
		if r.TokenID != "" {
			user += "!" + r.TokenID
		}
		n := r.Node
		if n == "" {
			n = node
		}
		out = append(out, TaskEntry{Task: TaskRef{Node: n, UPID: r.UPID}, Type: r.Type, ID: string(r.ID), User: user,
			StartTime: unixTime(r.StartTime), EndTime: unixTime(r.EndTime), Status: r.Status})
	}
	return out, nil
}
