package pvesim

import (
	"fmt"
	"strconv"
	"strings"
)

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
	o := spawnOpts{typ: "qmsnapshot", id: strconv.Itoa(m.vmid), vmids: []int{m.vmid}, flockVM: m}
	if m.conf["lock"] != "" {
		o.run = errTask(lockedErr(m))
	} else {
		o.lockVM, o.lock = m, "snapshot"
		o.run = func() (string, []string) {
			// PVE checks these in snapshot_prepare, inside the worker: the
			// task fails, the POST itself succeeds.
			for _, sn := range m.snapshots {
				if sn.name == name {
					return fmt.Sprintf("snapshot name '%s' already used", name), nil
				}
			}
			if rawDisk(m.conf) {
				return "snapshot feature is not available", nil
			}
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
					m.setRunning(false, s.now())
					conf := copyMap(sn.conf)
					conf["parent"] = name
					conf["lock"] = "rollback"
					m.conf = conf
					m.noteNICRate(s.now())
					// PVE starts the VM when the snapshot holds RAM, whatever start says.
					if (c.bool("start") || sn.vmstate) && s.boots(m) {
						m.setRunning(true, s.now())
					}
					return "OK", nil
				}
			}
			return fmt.Sprintf("snapshot '%s' does not exist", name), nil
		}
	}
	return c.spawn(o).upid, nil
}

// rawDisk reports whether one of the VM's disks is a raw file (format=raw or
// a .raw volume on a directory storage): PVE cannot snapshot those.
func rawDisk(conf map[string]string) bool {
	for _, k := range diskKeys(conf) {
		v := conf[k]
		if strings.HasPrefix(k, "unused") || strings.Contains(v, "media=cdrom") {
			continue
		}
		if strings.Contains(v, "format=raw") || strings.Contains(strings.SplitN(v, ",", 2)[0], ".raw") {
			return true
		}
	}
	return false
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
				e["cpu"], e["mem"] = 0.0123, float64(m.memBytes())/2
			} else {
				e["cpu"], e["mem"] = 0, 0
			}
			e["netin"], e["netout"] = m.rrdNet(ts, step, now) // rrd.go
		}
		out = append(out, e)
	}
	return out, nil
}
