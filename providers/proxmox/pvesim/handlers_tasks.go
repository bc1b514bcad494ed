package pvesim

import "strings"

// ---- tasks ----

func (c *call) task() (*task, *apiError) {
	upid := c.vars["upid"]
	if !upidRe.MatchString(upid) {
		return nil, paramErr("upid", "unable to parse worker upid")
	}
	t := c.s.tasks[upid]
	if t == nil || t.node != c.vars["node"] {
		return nil, paramErr("upid", "no such task")
	}
	return t, nil
}

func taskFields(t *task) map[string]any {
	user, tok := splitTokenUser(t.user)
	e := map[string]any{"upid": t.upid, "node": t.node, "pid": t.pid, "pstart": t.pstart, "starttime": t.start.Unix(),
		"type": t.typ, "id": t.id, "user": user}
	if tok != "" {
		e["tokenid"] = tok
	}
	return e
}

func hTaskStatus(c *call) (any, *apiError) {
	t, err := c.task()
	if err != nil {
		return nil, err
	}
	e := taskFields(t)
	e["status"] = "running"
	if t.done {
		e["status"], e["exitstatus"] = "stopped", t.exit
	}
	return e, nil
}

func hTaskLog(c *call) (any, *apiError) {
	t, err := c.task()
	if err != nil {
		return nil, err
	}
	lines := t.log
	if len(lines) == 0 {
		lines = []string{"no content"}
	}
	start, limit := 0, 50
	if c.has("start") {
		start = c.int("start")
	}
	if c.has("limit") {
		limit = c.int("limit")
	}
	out := []any{}
	for i := start; i < len(lines) && len(out) < limit; i++ {
		out = append(out, map[string]any{"n": i + 1, "t": lines[i]})
	}
	return withTotal{data: out, total: len(lines)}, nil
}

func hTaskList(c *call) (any, *apiError) {
	s := c.s
	out := []any{}
	var sel []*task
	for i := len(s.taskSeq) - 1; i >= 0; i-- {
		t := s.taskSeq[i]
		if t.node != c.vars["node"] {
			continue
		}
		if c.has("vmid") && t.id != c.str("vmid") {
			continue
		}
		if tf := c.str("typefilter"); tf != "" && tf != t.typ {
			continue
		}
		// Tasks.pm node_tasks: "starttime < since" and "starttime > until"
		// are left out; userfilter is a case-insensitive substring.
		if c.has("since") && t.start.Unix() < int64(c.int("since")) {
			continue
		}
		if c.has("until") && t.start.Unix() > int64(c.int("until")) {
			continue
		}
		if uf := c.str("userfilter"); uf != "" && !strings.Contains(strings.ToLower(t.user), strings.ToLower(uf)) {
			continue
		}
		switch c.str("source") {
		case "active":
			if t.done {
				continue
			}
		case "", "archive":
			if !t.done {
				continue
			}
		}
		if c.bool("errors") && (!t.done || isSuccess(t.exit)) {
			continue
		}
		sel = append(sel, t)
	}
	start, limit := c.int("start"), 50
	if c.has("limit") {
		limit = c.int("limit")
	}
	for i := start; i < len(sel) && len(out) < limit; i++ {
		t := sel[i]
		e := taskFields(t)
		if t.done {
			e["status"], e["endtime"] = t.exit, t.end.Unix()
		} else {
			e["status"] = "RUNNING" // Tasks.pm node_tasks, for the active list
		}
		out = append(out, e)
	}
	return out, nil
}
