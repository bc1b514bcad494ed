package proxmox

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
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
	return callInfo{method: http.MethodGet, path: "/nodes/" + url.PathEscape(t.Node) + "/tasks/" + t.UPID + suffix, node: t.Node}, nil
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
