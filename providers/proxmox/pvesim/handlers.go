package pvesim

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

func sortedVMIDs(s *Sim) []int {
	ids := make([]int, 0, len(s.vms))
	for id := range s.vms {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	return ids
}

func b01(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ---- cluster ----

func hVersion(c *call) (any, *apiError) {
	v := c.s.cluster.Version
	parts := strings.SplitN(v, ".", 3)
	release := v
	if len(parts) >= 2 {
		release = parts[0] + "." + parts[1]
	}
	return map[string]any{"version": v, "release": release, "repoid": "5d1cd4f1b29a4f8b"}, nil
}

func hClusterStatus(c *call) (any, *apiError) {
	s := c.s
	out := []any{map[string]any{"type": "cluster", "id": "cluster", "name": s.cluster.Name, "nodes": len(s.order), "quorate": b01(s.quorate), "version": 3}}
	for i, name := range s.order {
		n := s.nodes[name]
		out = append(out, map[string]any{"type": "node", "id": "node/" + name, "name": name, "nodeid": i + 1,
			"online": b01(!n.offline), "local": b01(i == 0), "ip": fmt.Sprintf("192.0.2.%d", 10+i), "level": ""})
	}
	return out, nil
}

func (s *Sim) vmDisk(m *vm) int64 {
	var total int64
	for _, k := range diskKeys(m.conf) {
		if strings.HasPrefix(k, "unused") {
			continue
		}
		if d := parseDisk(m.conf[k]); !d.isCDROM() {
			total += d.size
		}
	}
	return total
}

func hResources(c *call) (any, *apiError) {
	s := c.s
	typ := c.str("type")
	out := []any{}
	now := s.now()
	if typ == "" || typ == "vm" {
		for _, id := range sortedVMIDs(s) {
			m := s.vms[id]
			n := s.nodes[m.node]
			st := s.vmStatus(m, false)
			e := map[string]any{"id": fmt.Sprintf("qemu/%d", id), "type": "qemu", "vmid": id, "node": m.node,
				"name": st["name"], "status": st["status"], "template": b01(m.conf["template"] == "1"),
				"cpu": st["cpu"], "maxcpu": st["cpus"], "mem": st["mem"], "maxmem": st["maxmem"], "disk": 0, "maxdisk": s.vmDisk(m),
				"netin": st["netin"], "netout": st["netout"], "diskread": 0, "diskwrite": 0, "uptime": st["uptime"]}
			if n.offline || now.Sub(m.created) < time.Duration(s.cluster.Durations.Stats) {
				e["status"] = "unknown"
			}
			if l := m.conf["lock"]; l != "" {
				e["lock"] = l
			}
			if t := m.conf["tags"]; t != "" {
				e["tags"] = t
			}
			out = append(out, e)
		}
	}
	if typ == "" || typ == "node" {
		for _, name := range s.order {
			n := s.nodes[name]
			e := map[string]any{"id": "node/" + name, "type": "node", "node": name, "status": "online", "level": "", "cgroup-mode": 2}
			if n.offline {
				e["status"] = "offline"
			} else {
				e["cpu"], e["maxcpu"], e["mem"], e["maxmem"] = 0.05, n.cpus, s.nodeMemUsed(n), n.memTotal
				e["disk"], e["maxdisk"], e["uptime"] = int64(8<<30), int64(100<<30), int64(now.Sub(s.boot)/time.Second)
			}
			out = append(out, e)
		}
	}
	if typ == "" || typ == "storage" {
		for _, name := range s.order {
			n := s.nodes[name]
			for _, sn := range n.order {
				st := n.storages[sn]
				e := map[string]any{"id": "storage/" + name + "/" + sn, "type": "storage", "storage": sn, "node": name,
					"status": "available", "plugintype": st.typ, "content": strings.Join(sortedCopy(st.content), ","),
					"disk": st.used, "maxdisk": st.total, "shared": b01(st.shared)}
				if n.offline || st.offline || st.disabled {
					e["status"] = "unknown"
				}
				out = append(out, e)
			}
		}
	}
	return out, nil
}

func sortedCopy(in []string) []string {
	out := append([]string(nil), in...)
	sort.Strings(out)
	return out
}

func hNextID(c *call) (any, *apiError) {
	s := c.s
	if c.has("vmid") {
		id := c.int("vmid")
		if s.vms[id] != nil {
			return nil, paramErr("vmid", fmt.Sprintf("VM %d already exists", id))
		}
		return strconv.Itoa(id), nil
	}
	for id := s.cluster.NextIDLower; id < s.cluster.NextIDUpper; id++ {
		if s.vms[id] == nil {
			return strconv.Itoa(id), nil
		}
	}
	return nil, serverErr(fmt.Sprintf("unable to get any free VMID in range [%d, %d]", s.cluster.NextIDLower, s.cluster.NextIDUpper))
}

func hNodes(c *call) (any, *apiError) {
	s := c.s
	out := []any{}
	for i, name := range s.order {
		n := s.nodes[name]
		e := map[string]any{"node": name, "id": "node/" + name, "type": "node", "status": "online", "level": "",
			"ssl_fingerprint": fmt.Sprintf("AA:BB:CC:DD:%02X", i)}
		if n.offline {
			e["status"] = "offline"
		} else {
			e["cpu"], e["maxcpu"], e["mem"], e["maxmem"] = 0.05, n.cpus, s.nodeMemUsed(n), n.memTotal
			e["disk"], e["maxdisk"], e["uptime"] = int64(8<<30), int64(100<<30), int64(s.now().Sub(s.boot)/time.Second)
		}
		out = append(out, e)
	}
	return out, nil
}

func hNodeStatus(c *call) (any, *apiError) {
	s := c.s
	n := s.nodes[c.vars["node"]]
	used := s.nodeMemUsed(n)
	return map[string]any{
		"cpu": 0.05, "wait": 0.001, "idle": 0, "uptime": int64(s.now().Sub(s.boot) / time.Second),
		"loadavg":    []string{"0.15", "0.20", "0.18"},
		"memory":     map[string]any{"total": n.memTotal, "used": used, "free": n.memTotal - used},
		"swap":       map[string]any{"total": int64(8 << 30), "used": 0, "free": int64(8 << 30)},
		"rootfs":     map[string]any{"total": int64(100 << 30), "used": int64(8 << 30), "avail": int64(92 << 30), "free": int64(92 << 30)},
		"ksm":        map[string]any{"shared": 0},
		"cpuinfo":    map[string]any{"cpus": n.cpus, "cores": n.cpus / 2, "sockets": 1, "model": "pvesim virtual CPU", "mhz": "2999.999", "user_hz": 100, "hvm": "1", "flags": "fpu vme de pse"},
		"pveversion": "pve-manager/" + s.cluster.Version + "/5d1cd4f1b29a4f8b", "kversion": "Linux 6.8.12-4-pve #1 SMP PREEMPT_DYNAMIC PMX 6.8.12-4",
		"current-kernel": map[string]any{"sysname": "Linux", "release": "6.8.12-4-pve", "machine": "x86_64", "version": "#1 SMP PREEMPT_DYNAMIC PMX 6.8.12-4"},
		"boot-info":      map[string]any{"mode": "efi", "secureboot": 0},
	}, nil
}

// ---- storage ----

func storageEntry(st *storage) map[string]any {
	e := map[string]any{"storage": st.name, "type": st.typ, "content": strings.Join(sortedCopy(st.content), ","),
		"active": b01(!st.offline && !st.disabled), "enabled": b01(!st.disabled), "shared": b01(st.shared)}
	if !st.offline && !st.disabled {
		e["total"], e["used"], e["avail"] = st.total, st.used, st.free()
		e["used_fraction"] = float64(st.used) / float64(st.total)
	}
	return e
}

func hStorageList(c *call) (any, *apiError) {
	n := c.s.nodes[c.vars["node"]]
	out := []any{}
	for _, sn := range n.order {
		st := n.storages[sn]
		if ct := c.str("content"); ct != "" && !contains(st.content, ct) {
			continue
		}
		if name := c.str("storage"); name != "" && name != sn {
			continue
		}
		if c.has("enabled") && c.bool("enabled") && st.disabled {
			continue
		}
		out = append(out, storageEntry(st))
	}
	return out, nil
}

func hStorageStatus(c *call) (any, *apiError) {
	st := c.s.storageOn(c.vars["node"], c.vars["storage"])
	if st == nil {
		// pve-storage Status.pm read_status: raise_param_exc, not the 500 of
		// the other storage calls.
		return nil, paramErr("storage", "No such storage.")
	}
	e := storageEntry(st)
	delete(e, "storage")
	delete(e, "used_fraction")
	if _, ok := e["total"]; !ok {
		e["total"], e["used"], e["avail"] = 0, 0, 0
	}
	return e, nil
}

func (c *call) contentStorage() (*storage, *apiError) {
	st, msg := c.s.checkStorage(c.vars["node"], c.vars["storage"], "")
	if msg != "" {
		return nil, serverErr(msg)
	}
	return st, nil
}

func volumeEntry(v *volume) map[string]any {
	e := map[string]any{"volid": v.volid, "format": v.format, "size": v.size, "content": v.content}
	if v.ctime > 0 {
		e["ctime"] = v.ctime
	}
	if v.vmid > 0 {
		e["vmid"] = v.vmid
	}
	if v.content == "backup" {
		e["subtype"] = "qemu"
		if v.notes != "" {
			e["notes"] = v.notes
		}
		if v.protected {
			e["protected"] = 1
		}
	} else {
		e["used"] = v.size / 10
	}
	if v.parent != "" {
		e["parent"] = v.parent
	}
	return e
}

func hContentList(c *call) (any, *apiError) {
	st, err := c.contentStorage()
	if err != nil {
		return nil, err
	}
	out := []any{}
	for _, v := range st.sortedVolumes() {
		if ct := c.str("content"); ct != "" && ct != v.content {
			continue
		}
		if c.has("vmid") && c.int("vmid") != v.vmid {
			continue
		}
		out = append(out, volumeEntry(v))
	}
	return out, nil
}

func (c *call) findVolume(st *storage) (*volume, *apiError) {
	volid := c.vars["volume"]
	if !strings.Contains(volid, ":") {
		volid = st.name + ":" + volid
	}
	v := st.volumes[volid]
	if v == nil {
		return nil, serverErr(fmt.Sprintf("volume '%s' does not exist", volid))
	}
	return v, nil
}

func volumePath(st *storage, v *volume) string {
	_, name, _ := strings.Cut(v.volid, ":")
	if v.content == "backup" {
		return "/var/lib/vz/dump/" + strings.TrimPrefix(name, "backup/")
	}
	return "/dev/pve/" + name
}

func hContentGet(c *call) (any, *apiError) {
	st, err := c.contentStorage()
	if err != nil {
		return nil, err
	}
	v, err := c.findVolume(st)
	if err != nil {
		return nil, err
	}
	e := map[string]any{"path": volumePath(st, v), "size": v.size, "used": v.size, "format": v.format}
	if v.notes != "" {
		e["notes"] = v.notes
	}
	if v.protected {
		e["protected"] = 1
	}
	return e, nil
}

func hContentDelete(c *call) (any, *apiError) {
	s := c.s
	st, err := c.contentStorage()
	if err != nil {
		return nil, err
	}
	v, err := c.findVolume(st)
	if err != nil {
		return nil, err
	}
	id := st.name
	if v.vmid > 0 {
		id = fmt.Sprintf("%d@%s", v.vmid, st.name)
	}
	o := spawnOpts{typ: "imgdel", id: id}
	if v.vmid > 0 {
		o.vmids = []int{v.vmid}
	}
	o.run = func() (string, []string) {
		if v.protected {
			return fmt.Sprintf("cannot remove protected archive '%s'", volumePath(st, v)), nil
		}
		st.release(v.volid)
		return "OK", []string{"Removed volume '" + v.volid + "'"}
	}
	t := c.spawn(o)
	if d := c.int("delay"); d > 0 && s.duration("imgdel") <= time.Duration(d)*time.Second {
		t.end = s.now()
		s.finish(t)
		if t.exit == "OK" {
			return nil, nil
		}
	}
	return t.upid, nil
}

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

// ---- firewall ----

var fwBool = map[string]bool{"enable": true, "dhcp": true, "ipfilter": true, "macfilter": true, "ndp": true, "radv": true}

func fwDigest(m *vm) string {
	conf := copyMap(m.firewall)
	for _, is := range m.ipsets {
		conf["ipset "+is.name] = is.comment
		for _, e := range is.entries {
			conf["ipset "+is.name+" "+e.cidr] = e.comment + strconv.FormatBool(e.nomatch)
		}
	}
	return confDigest(conf)
}

func hFwGet(c *call) (any, *apiError) {
	m, err := c.s.vmOn(c)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"digest": fwDigest(m)}
	for k, v := range m.firewall {
		if fwBool[k] {
			n, _ := strconv.Atoi(v)
			out[k] = n
		} else {
			out[k] = v
		}
	}
	return out, nil
}

func hFwSet(c *call) (any, *apiError) {
	m, err := c.s.vmOn(c)
	if err != nil {
		return nil, err
	}
	if d := c.str("digest"); d != "" && d != fwDigest(m) {
		return nil, serverErr("detected modified configuration - file changed by other user? Try again.")
	}
	for _, k := range strings.FieldsFunc(c.str("delete"), func(r rune) bool { return r == ',' || r == ';' || r == ' ' }) {
		delete(m.firewall, k)
	}
	for k, v := range c.params {
		if k == "node" || k == "vmid" || k == "digest" || k == "delete" {
			continue
		}
		m.firewall[k], _ = scalar(v)
	}
	return nil, nil
}

func (m *vm) ipset(name string) *ipset {
	for _, is := range m.ipsets {
		if is.name == name {
			return is
		}
	}
	return nil
}

func hIPSetList(c *call) (any, *apiError) {
	m, err := c.s.vmOn(c)
	if err != nil {
		return nil, err
	}
	out := []any{}
	d := fwDigest(m)
	for _, is := range m.ipsets {
		e := map[string]any{"name": is.name, "digest": d}
		if is.comment != "" {
			e["comment"] = is.comment
		}
		out = append(out, e)
	}
	return out, nil
}

func hIPSetCreate(c *call) (any, *apiError) {
	m, err := c.s.vmOn(c)
	if err != nil {
		return nil, err
	}
	if d := c.str("digest"); d != "" && d != fwDigest(m) {
		return nil, serverErr("detected modified configuration - file changed by other user? Try again.")
	}
	name := c.str("name")
	if r := c.str("rename"); r != "" {
		is := m.ipset(r)
		if is == nil {
			return nil, serverErr(fmt.Sprintf("no such IPSet '%s'", r))
		}
		if m.ipset(name) != nil {
			return nil, paramErr("name", fmt.Sprintf("IPSet '%s' does already exist", name))
		}
		is.name = name
		if c.has("comment") {
			is.comment = c.str("comment")
		}
		return nil, nil
	}
	if m.ipset(name) != nil {
		return nil, paramErr("name", fmt.Sprintf("IPSet '%s' does already exist", name))
	}
	m.ipsets = append(m.ipsets, &ipset{name: name, comment: c.str("comment")})
	return nil, nil
}

func (c *call) ipsetOf() (*vm, *ipset, *apiError) {
	m, err := c.s.vmOn(c)
	if err != nil {
		return nil, nil, err
	}
	is := m.ipset(c.vars["name"])
	if is == nil {
		return nil, nil, serverErr(fmt.Sprintf("no such IPSet '%s'", c.vars["name"]))
	}
	return m, is, nil
}

func hIPSetEntries(c *call) (any, *apiError) {
	m, is, err := c.ipsetOf()
	if err != nil {
		return nil, err
	}
	out := []any{}
	d := fwDigest(m)
	for _, e := range is.entries {
		x := map[string]any{"cidr": e.cidr, "digest": d}
		if e.comment != "" {
			x["comment"] = e.comment
		}
		if e.nomatch {
			x["nomatch"] = 1
		}
		out = append(out, x)
	}
	return out, nil
}

func hIPSetAdd(c *call) (any, *apiError) {
	_, is, err := c.ipsetOf()
	if err != nil {
		return nil, err
	}
	cidr := c.str("cidr")
	for _, e := range is.entries {
		if e.cidr == cidr {
			return nil, paramErr("cidr", fmt.Sprintf("address '%s' already exists", cidr))
		}
	}
	is.entries = append(is.entries, &ipEntry{cidr: cidr, comment: c.str("comment"), nomatch: c.bool("nomatch")})
	return nil, nil
}

func hIPSetDelete(c *call) (any, *apiError) {
	m, is, err := c.ipsetOf()
	if err != nil {
		return nil, err
	}
	if len(is.entries) > 0 && !c.bool("force") {
		return nil, serverErr(fmt.Sprintf("IPSet '%s' is not empty", is.name))
	}
	for i, x := range m.ipsets {
		if x == is {
			m.ipsets = append(m.ipsets[:i], m.ipsets[i+1:]...)
			break
		}
	}
	return nil, nil
}

func hIPSetRemove(c *call) (any, *apiError) {
	m, is, err := c.ipsetOf()
	if err != nil {
		return nil, err
	}
	if d := c.str("digest"); d != "" && d != fwDigest(m) {
		return nil, serverErr("detected modified configuration - file changed by other user? Try again.")
	}
	cidr := c.vars["cidr"]
	for i, e := range is.entries {
		if e.cidr == cidr {
			is.entries = append(is.entries[:i], is.entries[i+1:]...)
			return nil, nil
		}
	}
	return nil, paramErr("cidr", "no such IP/Network")
}

// ---- snapshots ----

func hSnapList(c *call) (any, *apiError) {
	m, err := c.s.vmOn(c)
	if err != nil {
		return nil, err
	}
	out := []any{}
	for _, sn := range m.snapshots {
		e := map[string]any{"name": sn.name, "description": sn.description, "snaptime": sn.snaptime}
		if sn.vmstate {
			e["vmstate"] = 1
		}
		if sn.parent != "" {
			e["parent"] = sn.parent
		}
		out = append(out, e)
	}
	cur := map[string]any{"name": "current", "description": "You are here!", "running": b01(m.running), "digest": confDigest(m.conf)}
	if p := m.conf["parent"]; p != "" {
		cur["parent"] = p
	}
	return append(out, cur), nil
}

func hSnapCreate(c *call) (any, *apiError) {
	s := c.s
	m, err := s.vmOn(c)
	if err != nil {
		return nil, err
	}
	name := c.str("snapname")
	if name == "current" || strings.EqualFold(name, "pending") {
		return nil, serverErr(fmt.Sprintf("unable to use snapshot name '%s' (reserved name)", name))
	}
	for _, sn := range m.snapshots {
		if sn.name == name {
			return nil, serverErr(fmt.Sprintf("snapshot name '%s' already used", name))
		}
	}
	o := spawnOpts{typ: "qmsnapshot", id: strconv.Itoa(m.vmid), vmids: []int{m.vmid}, flockVM: m}
	if m.conf["lock"] != "" {
		o.run = errTask(lockedErr(m))
	} else {
		o.lockVM, o.lock = m, "snapshot"
		o.run = func() (string, []string) {
			conf := copyMap(m.conf)
			delete(conf, "lock")
			sn := &snapshot{name: name, description: c.str("description"), parent: m.conf["parent"], snaptime: s.now().Unix(), vmstate: c.bool("vmstate") && m.running, conf: conf}
			m.snapshots = append(m.snapshots, sn)
			m.conf["parent"] = name
			return "OK", []string{"snapshotting 'drive-scsi0' (" + m.conf["scsi0"] + ")"}
		}
	}
	return c.spawn(o).upid, nil
}

func hSnapDelete(c *call) (any, *apiError) {
	s := c.s
	m, err := s.vmOn(c)
	if err != nil {
		return nil, err
	}
	name := c.vars["snapname"]
	o := spawnOpts{typ: "qmdelsnapshot", id: strconv.Itoa(m.vmid), vmids: []int{m.vmid}, flockVM: m}
	switch {
	case m.conf["lock"] != "" && !c.bool("force"):
		o.run = errTask(lockedErr(m))
	default:
		o.lockVM, o.lock = m, "snapshot-delete"
		o.run = func() (string, []string) {
			for i, sn := range m.snapshots {
				if sn.name == name {
					m.snapshots = append(m.snapshots[:i], m.snapshots[i+1:]...)
					for _, other := range m.snapshots {
						if other.parent == name {
							other.parent = sn.parent
						}
					}
					if m.conf["parent"] == name {
						if sn.parent != "" {
							m.conf["parent"] = sn.parent
						} else {
							delete(m.conf, "parent")
						}
					}
					return "OK", nil
				}
			}
			return fmt.Sprintf("snapshot '%s' does not exist", name), nil
		}
	}
	return c.spawn(o).upid, nil
}

func hSnapRollback(c *call) (any, *apiError) {
	s := c.s
	m, err := s.vmOn(c)
	if err != nil {
		return nil, err
	}
	name := c.vars["snapname"]
	o := spawnOpts{typ: "qmrollback", id: strconv.Itoa(m.vmid), vmids: []int{m.vmid}, flockVM: m}
	if m.conf["lock"] != "" {
		o.run = errTask(lockedErr(m))
	} else {
		o.lockVM, o.lock = m, "rollback"
		o.run = func() (string, []string) {
			for _, sn := range m.snapshots {
				if sn.name == name {
					m.running = false
					conf := copyMap(sn.conf)
					conf["parent"] = name
					conf["lock"] = "rollback"
					m.conf = conf
					if c.bool("start") && s.boots(m) {
						m.running, m.startedAt = true, s.now()
					}
					return "OK", nil
				}
			}
			return fmt.Sprintf("snapshot '%s' does not exist", name), nil
		}
	}
	return c.spawn(o).upid, nil
}

// ---- rrd ----

func hRRD(c *call) (any, *apiError) {
	s := c.s
	m, err := s.vmOn(c)
	if err != nil {
		return nil, err
	}
	step := map[string]int64{"hour": 60, "day": 1800, "week": 10800, "month": 43200, "year": 604800}[c.str("timeframe")]
	now := s.now().Unix()
	last := now - now%step
	out := []any{}
	for i := int64(69); i >= 0; i-- {
		ts := last - i*step
		e := map[string]any{"time": ts}
		if ts >= m.created.Unix() {
			e["maxcpu"], e["maxmem"], e["maxdisk"] = 2, m.memBytes(), s.vmDisk(m)
			e["disk"], e["diskread"], e["diskwrite"] = 0, 0, 0
			if m.running && ts >= m.startedAt.Unix() {
				e["cpu"], e["mem"], e["netin"], e["netout"] = 0.0123, float64(m.memBytes())/2, m.netIn, m.netOut
			} else {
				e["cpu"], e["mem"], e["netin"], e["netout"] = 0, 0, 0, 0
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// ---- vzdump ----

// vzdumpAuthz is the API-side check of pve-manager API2/VZDump.pm: only the
// target storage. VM.Backup is checked by the worker (exec_backup).
func vzdumpAuthz(c *call) *apiError {
	if st := c.str("storage"); st != "" {
		return c.check("/storage/"+st, "Datastore.AllocateSpace")
	}
	return nil
}

func hVzdump(c *call) (any, *apiError) {
	s := c.s
	nodeName := c.vars["node"]
	var ids []int
	all := c.bool("all")
	if all {
		for _, id := range sortedVMIDs(s) {
			if s.vms[id].node == nodeName {
				ids = append(ids, id)
			}
		}
	} else {
		for _, f := range vmidListSplit.Split(strings.TrimSpace(c.str("vmid")), -1) {
			if id, err := strconv.Atoi(f); err == nil {
				ids = append(ids, id)
			}
		}
		sort.Ints(ids)
	}
	if len(ids) == 0 {
		return nil, serverErr("no guests specified")
	}
	if (c.has("notes-template") || c.has("protected")) && !c.has("storage") {
		field := "notes-template"
		if !c.has("notes-template") {
			field = "protected"
		}
		return nil, requiresErr(field, "'"+field+"' requires 'storage'")
	}
	stName := c.str("storage")
	if stName == "" {
		for _, sn := range s.nodes[nodeName].order {
			if contains(s.nodes[nodeName].storages[sn].content, "backup") {
				stName = sn
				break
			}
		}
	}
	st, msg := s.checkStorage(nodeName, stName, "backup")
	if msg != "" {
		return nil, serverErr(msg)
	}
	id := ""
	if len(ids) == 1 {
		id = strconv.Itoa(ids[0])
	}
	o := spawnOpts{typ: "vzdump", id: id, vmids: ids}
	o.log = []string{"INFO: starting new backup job: vzdump " + c.vzdumpCmdline()}

	// exec_backup: VM.Backup on every listed guest that exists, checked by
	// the worker before the first backup; with "all" the guests without it
	// are skipped silently.
	var permFail string
	var todo []int
	for _, vid := range ids {
		if m := s.vms[vid]; m != nil && !c.can(fmt.Sprintf("/vms/%d", vid), "VM.Backup") {
			if all {
				continue
			}
			permFail = fmt.Sprintf("Permission check failed (/vms/%d, VM.Backup)", vid)
			break
		}
		todo = append(todo, vid)
	}
	if permFail != "" {
		o.run = errTask(permFail)
		return c.spawn(o).upid, nil
	}

	ext := map[string]string{"": ".vma", "0": ".vma", "1": ".vma.lzo", "gzip": ".vma.gz", "lzo": ".vma.lzo", "zstd": ".vma.zst"}[c.str("compress")]
	dur := s.duration("vzdump")
	failed := false
	var cur *vm // the guest being backed up (holding our "backup" lock)
	var curStart time.Time
	var t *task // set by each step and by run
	logf := func(format string, a ...any) { t.log = append(t.log, fmt.Sprintf(format, a...)) }
	// startGuest is exec_backup_task reaching a guest: the guest's config
	// lock is taken with set_lock, which fails on a locked guest.
	startGuest := func(vid int) {
		logf("INFO: Starting Backup of VM %d (qemu)", vid)
		m := s.vms[vid]
		switch {
		case m == nil || m.node != nodeName:
			logf("ERROR: Backup of VM %d failed - unable to find VM %d", vid, vid)
			failed = true
		case m.conf["lock"] != "":
			logf("ERROR: Backup of VM %d failed - %s", vid, lockedErr(m))
			failed = true
		default:
			m.conf["lock"] = "backup"
			cur, curStart = m, s.now()
		}
	}
	release := func() {
		if cur != nil && cur.conf["lock"] == "backup" {
			delete(cur.conf, "lock")
		}
		cur = nil
	}
	finishGuest := func() {
		if cur == nil {
			return
		}
		m := cur
		defer release()
		name := fmt.Sprintf("vzdump-qemu-%d-%s%s", m.vmid, curStart.UTC().Format("2006_01_02-15_04_05"), ext)
		volid := st.name + ":backup/" + name
		size := s.vmDisk(m) / 8
		if size > st.free() {
			logf("ERROR: Backup of VM %d failed - vma_queue_write: write error - No space left on device", m.vmid)
			failed = true
			return
		}
		conf := copyMap(m.conf)
		delete(conf, "lock")
		notes := c.str("notes-template")
		for k, v := range map[string]string{"{{guestname}}": m.conf["name"], "{{vmid}}": strconv.Itoa(m.vmid), "{{node}}": nodeName, "{{cluster}}": s.cluster.Name} {
			notes = strings.ReplaceAll(notes, k, v)
		}
		st.volumes[volid] = &volume{volid: volid, format: strings.TrimPrefix(ext, "."), size: size, ctime: curStart.Unix(), vmid: m.vmid, content: "backup",
			notes: notes, protected: c.bool("protected"), conf: conf}
		st.used += size
		logf("INFO: creating vzdump archive '%s'", volumePath(st, st.volumes[volid]))
		logf("INFO: archive file size: %s", formatSize(size))
		logf("INFO: Finished Backup of VM %d (00:00:%02d)", m.vmid, int(s.now().Sub(curStart)/time.Second)%60)
	}
	// The guests are backed up one after another, each taking an equal
	// share of the task duration.
	for i, vid := range todo {
		o.steps = append(o.steps, spawnStep{after: dur * time.Duration(i) / time.Duration(len(todo)), fn: func(tk *task) {
			t = tk
			finishGuest()
			startGuest(vid)
		}})
	}
	o.run = func() (string, []string) {
		finishGuest()
		if failed {
			return "job errors", []string{"INFO: Backup job finished with errors"}
		}
		return "OK", []string{"INFO: Backup job finished successfully"}
	}
	// the worker died (TaskFault): drop the backup lock unless told to keep it
	o.onFail = release
	tk := c.spawn(o)
	t = tk
	return tk.upid, nil
}

// vzdumpCmdline renders the job like PVE::VZDump::Common::command_line.
func (c *call) vzdumpCmdline() string {
	var parts []string
	if v := c.str("vmid"); v != "" {
		parts = append(parts, strings.Join(vmidListSplit.Split(strings.TrimSpace(v), -1), " "))
	}
	for _, k := range sortedKeys(c.params) {
		if k == "vmid" || k == "node" {
			continue
		}
		v, _ := scalar(c.params[k])
		parts = append(parts, "--"+k+" "+v)
	}
	return strings.Join(parts, " ")
}

// ---- create / restore ----

var backupOwnerRe = regexp.MustCompile(`^backup/vzdump-qemu-(\d+)-`)

// createAuthz is qemu-server create_vm's own check. vmid is a body
// parameter, so the ACL path is /vms/<vmid from the body>. A denied
// VM.Allocate raises a bare "Permission check failed".
func createAuthz(c *call) *apiError {
	s := c.s
	vmid := c.int("vmid")
	archive := c.str("archive")
	if c.has("storage") {
		if e := c.check("/storage/"+c.str("storage"), "Datastore.AllocateSpace"); e != nil {
			return e
		}
	}
	existing := s.vms[vmid]
	switch {
	case c.can(fmt.Sprintf("/vms/%d", vmid), "VM.Allocate"):
	case c.has("pool") && c.can("/pool/"+c.str("pool"), "VM.Allocate"):
	case archive != "" && c.bool("force") && existing != nil && existing.node == c.vars["node"] &&
		c.can(fmt.Sprintf("/vms/%d", vmid), "VM.Backup"):
		// restoring over an existing VM needs only VM.Backup
	default:
		return permErr("")
	}
	if archive != "" {
		// PVE::Storage::check_volume_access($rpcenv, $user, $cfg, $vmid, $archive, 'backup')
		sid, volname, _ := strings.Cut(archive, ":")
		if c.can("/storage/"+sid, "Datastore.Allocate") {
			return nil
		}
		owner := 0
		if m := backupOwnerRe.FindStringSubmatch(volname); m != nil {
			owner, _ = strconv.Atoi(m[1])
		}
		switch {
		case owner != 0 && owner == vmid:
			// we are owner - allow access
		case owner != 0:
			if e := c.check("/storage/"+sid, "Datastore.AllocateSpace"); e != nil {
				return e
			}
			return c.check(fmt.Sprintf("/vms/%d", owner), "VM.Backup")
		default:
			return c.check("/storage/"+sid, "Datastore.Allocate")
		}
		return nil
	}
	// check_storage_access: new disks need Datastore.AllocateSpace
	for _, k := range sortedKeys(c.params) {
		if !diskKeyRe.MatchString(k) || strings.HasPrefix(k, "unused") {
			continue
		}
		v, _ := scalar(c.params[k])
		d := parseDisk(v)
		if _, err := strconv.ParseFloat(d.volname, 64); err == nil && d.storage != "" && !d.isCDROM() {
			if e := c.check("/storage/"+d.storage, "Datastore.AllocateSpace"); e != nil {
				return e
			}
		}
	}
	return nil
}

func hCreate(c *call) (any, *apiError) {
	s := c.s
	nodeName := c.vars["node"]
	vmid := c.int("vmid")
	existing := s.vms[vmid]
	archive := c.str("archive")
	if archive == "" {
		for _, k := range []string{"force", "unique", "live-restore"} {
			if c.has(k) {
				return nil, requiresErr(k, "'"+k+"' requires 'archive'")
			}
		}
	}
	// create_vm checks the keys and crypts cipassword in the API process,
	// before anything else
	if e := c.checkSSHKeys(); e != nil {
		return nil, e
	}
	c.cryptPassword()
	if archive == "" {
		if existing != nil {
			return nil, serverErr(fmt.Sprintf("unable to create VM %d - VM %d already exists on node '%s'", vmid, vmid, existing.node))
		}
		m := &vm{vmid: vmid, node: nodeName, conf: map[string]string{"lock": "create"}, created: s.now(), firewall: map[string]string{}}
		s.vms[vmid] = m
		o := spawnOpts{typ: "qmcreate", id: strconv.Itoa(vmid), vmids: []int{vmid}, lockVM: m, lock: "create"}
		o.onFail = func() {
			if s.vms[vmid] == m {
				s.freeDisks(m)
				delete(s.vms, vmid)
			}
		}
		o.run = func() (string, []string) {
			for _, k := range sortedKeys(c.params) {
				if k == "node" || k == "vmid" || k == "start" || k == "pool" || k == "storage" || k == "bwlimit" {
					continue
				}
				v, _ := scalar(c.params[k])
				if diskKeyRe.MatchString(k) {
					nv, msg := s.allocDiskValue(m, k, v)
					if msg != "" {
						return msg, nil
					}
					v = nv
				}
				m.conf[k] = v
			}
			m.conf["vmgenid"] = fakeUUID(uint64(vmid) + uint64(s.now().UnixNano()))
			m.conf["smbios1"] = "uuid=" + fakeUUID(uint64(vmid)<<8)
			m.conf["lock"] = "create"
			if c.bool("start") && s.boots(m) {
				m.running, m.startedAt = true, s.now()
			}
			return "OK", nil
		}
		return c.spawn(o).upid, nil
	}
	if existing != nil {
		if !c.bool("force") {
			return nil, serverErr(fmt.Sprintf("unable to restore VM %d - VM %d already exists on node '%s'", vmid, vmid, existing.node))
		}
		if existing.running {
			return nil, serverErr(fmt.Sprintf("unable to restore VM %d - VM %d is running", vmid, vmid))
		}
		if existing.node != nodeName {
			return nil, serverErr(fmt.Sprintf("unable to restore VM %d - VM %d already exists on node '%s'", vmid, vmid, existing.node))
		}
	}
	stName, _, _ := strings.Cut(archive, ":")
	ast := s.storageOn(nodeName, stName)
	var backup *volume
	if ast != nil {
		backup = ast.volumes[archive]
	}
	if backup == nil || backup.content != "backup" {
		return nil, serverErr(fmt.Sprintf("volume '%s' does not exist", archive))
	}
	if c.has("storage") {
		if _, msg := s.checkStorage(nodeName, c.str("storage"), "images"); msg != "" {
			return nil, serverErr(msg)
		}
	}
	m := existing
	if m == nil {
		m = &vm{vmid: vmid, node: nodeName, conf: map[string]string{}, created: s.now(), firewall: map[string]string{}}
		s.vms[vmid] = m
	}
	o := spawnOpts{typ: "qmrestore", id: strconv.Itoa(vmid), vmids: []int{vmid}, lockVM: m, lock: "create", flockVM: m}
	if existing != nil && existing.conf["lock"] != "" {
		o.run = errTask(lockedErr(existing))
		o.lockVM = nil
	} else {
		o.onFail = func() {
			if existing == nil && s.vms[vmid] == m {
				s.freeDisks(m)
				delete(s.vms, vmid)
			}
		}
		o.run = func() (string, []string) {
			if existing != nil {
				s.freeDisks(m)
			}
			conf := copyMap(backup.conf)
			lines := []string{"restore vma archive: zstd -q -d -c " + volumePath(ast, backup)}
			for _, k := range diskKeys(conf) {
				if strings.HasPrefix(k, "unused") {
					delete(conf, k)
					continue
				}
				d := parseDisk(conf[k])
				if d.storage == "" {
					continue
				}
				stName := d.storage
				if c.has("storage") {
					stName = c.str("storage")
				}
				st, msg := s.checkStorage(nodeName, stName, "images")
				if msg != "" {
					return msg, lines
				}
				d.storage = stName
				if d.isCDROM() {
					if strings.Contains(d.volname, "cloudinit") {
						d.volname = fmt.Sprintf("vm-%d-cloudinit", vmid)
						st.volumes[stName+":"+d.volname] = &volume{volid: stName + ":" + d.volname, format: "raw", size: 4 << 20, vmid: vmid, content: "images"}
						conf[k] = d.String()
					}
					continue
				}
				d.volname = nextDiskName(st, vmid)
				if msg := st.alloc(stName+":"+d.volname, d.size, vmid, s.now().Unix(), true); msg != "" {
					return msg, lines
				}
				conf[k] = d.String()
				lines = append(lines, fmt.Sprintf("new volume ID is '%s:%s'", stName, d.volname))
			}
			if c.bool("unique") {
				s.newMACs(conf, vmid)
				conf["vmgenid"] = fakeUUID(uint64(vmid) + uint64(s.now().UnixNano()))
			}
			conf["lock"] = "create"
			m.conf = conf
			m.snapshots = nil
			if c.bool("start") && s.boots(m) {
				m.running, m.startedAt = true, s.now()
			}
			return "OK", append(lines, "rescan volumes...")
		}
	}
	return c.spawn(o).upid, nil
}
