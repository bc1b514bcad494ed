package pvesim

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ---- status ----

func hStatusCurrent(c *call) (any, *apiError) {
	s := c.s
	m, err := s.vmOn(c)
	if err != nil {
		return nil, err
	}
	return s.vmStatus(m, true), nil
}

func (s *Sim) vmStatus(m *vm, current bool) map[string]any {
	name := m.conf["name"]
	if name == "" {
		name = fmt.Sprintf("VM %d", m.vmid)
	}
	cpus, _ := strconv.Atoi(m.conf["cores"])
	if cpus == 0 {
		cpus = 1
	}
	if so, _ := strconv.Atoi(m.conf["sockets"]); so > 0 {
		cpus *= so
	}
	var maxdisk int64
	for _, k := range diskKeys(m.conf) {
		if strings.HasPrefix(k, "unused") {
			continue
		}
		if d := parseDisk(m.conf[k]); !d.isCDROM() && d.size > maxdisk && maxdisk == 0 {
			maxdisk = d.size
		}
	}
	st := map[string]any{
		"vmid": m.vmid, "name": name, "status": "stopped", "uptime": 0, "cpus": cpus, "cpu": 0,
		"maxmem": m.memBytes(), "mem": 0, "maxdisk": maxdisk, "disk": 0,
		"netin": 0, "netout": 0, "diskread": 0, "diskwrite": 0,
	}
	if m.running {
		up := int64(s.now().Sub(m.startedAt) / time.Second)
		st["status"], st["uptime"], st["pid"], st["cpu"], st["mem"] = "running", up, 10000+m.vmid, 0.0123, m.memBytes()/2
		st["netin"], st["netout"] = int64(m.netIn*float64(up)), int64(m.netOut*float64(up))
	}
	if current {
		st["ha"] = map[string]any{"managed": 0}
		if m.running {
			st["qmpstatus"] = "running"
			st["running-machine"] = "pc-i440fx-9.2+pve1"
			st["running-qemu"] = "9.2.0"
		} else {
			st["qmpstatus"] = "stopped"
		}
		if strings.HasPrefix(m.conf["agent"], "1") || strings.Contains(m.conf["agent"], "enabled=1") {
			st["agent"] = 1
		}
	}
	if l := m.conf["lock"]; l != "" {
		st["lock"] = l
	}
	if t := m.conf["tags"]; t != "" {
		st["tags"] = t
	}
	if m.conf["template"] == "1" {
		st["template"] = 1
	}
	return st
}

func hQemuList(c *call) (any, *apiError) {
	out := []any{}
	for _, id := range sortedVMIDs(c.s) {
		m := c.s.vms[id]
		if m.node == c.vars["node"] {
			out = append(out, c.s.vmStatus(m, false))
		}
	}
	return out, nil
}

// ---- power ----

func hPower(typ string) handlerFunc {
	return func(c *call) (any, *apiError) {
		s := c.s
		m, err := s.vmOn(c)
		if err != nil {
			return nil, err
		}
		skiplock := c.bool("skiplock")
		if typ == "qmreboot" && !m.running {
			// qemu-server checks this before forking the worker.
			return nil, serverErr(fmt.Sprintf("VM %d not running", m.vmid))
		}
		o := spawnOpts{typ: typ, id: strconv.Itoa(m.vmid), vmids: []int{m.vmid}, flockVM: m}
		// qemu-server checks all of this in the worker, under the config
		// lock: two queued starts make the second fail "already running".
		o.run = func() (string, []string) {
			if s.vms[m.vmid] != m || m.node != c.vars["node"] {
				return fmt.Sprintf("unable to find configuration file for VM %d on node '%s'", m.vmid, c.vars["node"]), nil
			}
			switch {
			case m.conf["lock"] != "" && !skiplock:
				return lockedErr(m), nil
			case typ == "qmstart" && m.conf["template"] == "1":
				return "you can't start a vm if it's a template", nil
			case typ == "qmstart" && m.running:
				return fmt.Sprintf("VM %d already running", m.vmid), nil
			}
			switch typ {
			case "qmstart":
				if key, model, bridge := s.missingBridge(m); bridge != "" {
					return startFailed, append([]string{"generating cloud-init ISO"}, bridgeMissingLog(m.vmid, key, model, bridge)...)
				}
				if !m.neverRunning {
					m.setRunning(true, s.now())
				}
				return "OK", []string{"generating cloud-init ISO"}
			case "qmreboot":
				// Shut down (the guest obeys ACPI here; a TaskFault makes it
				// ignore it) and started again: a new uptime.
				if m.running && !m.neverRunning {
					m.startedAt = s.now()
				}
				return "OK", []string{"requesting reboot of VM " + strconv.Itoa(m.vmid)}
			default:
				m.setRunning(false, s.now())
				return "OK", nil
			}
		}
		t := c.spawn(o)
		return t.upid, nil
	}
}

// ---- config ----

func hConfigGet(c *call) (any, *apiError) {
	m, err := c.s.vmOn(c)
	if err != nil {
		return nil, err
	}
	if name := c.str("snapshot"); name != "" {
		for _, sn := range m.snapshots {
			if sn.name == name {
				return maskPassword(c.s.renderConfig(sn.conf), false), nil
			}
		}
		return nil, serverErr(fmt.Sprintf("snapshot '%s' does not exist", name))
	}
	return maskPassword(c.s.renderConfig(m.conf), false), nil
}

func hPending(c *call) (any, *apiError) {
	m, err := c.s.vmOn(c)
	if err != nil {
		return nil, err
	}
	r := maskPassword(c.s.renderConfig(m.conf), true)
	delete(r, "digest")
	out := []any{}
	for _, k := range sortedKeys(r) {
		out = append(out, map[string]any{"key": k, "value": r[k]})
	}
	return out, nil
}

var configControlParams = map[string]bool{"node": true, "vmid": true, "digest": true, "skiplock": true, "delete": true,
	"revert": true, "force": true, "background_delay": true, "import-working-storage": true}

func hConfigSet(async bool) handlerFunc {
	return func(c *call) (any, *apiError) {
		s := c.s
		if c.has("force") && !c.has("delete") {
			return nil, requiresErr("force", "'delete' is required when using 'force'")
		}
		// $update_vm_api: cipassword is crypted and the SSH keys are
		// checked before the config is even read
		c.cryptPassword()
		if e := c.checkSSHKeys(); e != nil {
			return nil, e
		}
		m, err := s.vmOn(c)
		if err != nil {
			return nil, err
		}
		// $load_and_check_config->(0): early checks before forking/locking
		if msg := c.checkConfig(m); msg != "" {
			return nil, serverErr(msg)
		}
		if !async {
			// PUT: lock_config($vmid, $updatefn) in the API process
			if e := s.syncFlock(m); e != nil {
				return nil, e
			}
			if msg := s.applyConfig(m, c); msg != "" {
				return nil, serverErr(msg)
			}
			return nil, nil
		}
		// POST: the qmconfig worker takes the flock, checks again (the config
		// may have changed since the request) and only then writes the
		// change, so it lands when the task has run.
		waited := s.flockWait(m, false) > 0
		t := c.spawn(spawnOpts{typ: "qmconfig", id: strconv.Itoa(m.vmid), vmids: []int{m.vmid}, flockVM: m,
			log: []string{"update VM " + strconv.Itoa(m.vmid) + ": " + c.paramSummary()},
			run: func() (string, []string) {
				if s.vms[m.vmid] != m {
					return s.configFileErr(m.node, m.vmid).msg, nil
				}
				if msg := c.checkConfig(m); msg != "" {
					return msg, nil
				}
				if msg := s.applyConfig(m, c); msg != "" {
					return msg, nil
				}
				return "OK", nil
			}})
		if bd := c.int("background_delay"); bd > 0 && !waited && s.duration("qmconfig") <= time.Duration(bd)*time.Second {
			// the API waits up to background_delay seconds for the worker
			t.end = s.now()
			s.finish(t)
			if isSuccess(t.exit) {
				return nil, nil
			}
			return nil, serverErr(fmt.Sprintf("failed to update VM %d: %s", m.vmid, t.exit))
		}
		return t.upid, nil
	}
}

// checkConfig is qemu-server's $load_and_check_config: digest and lock.
func (c *call) checkConfig(m *vm) string {
	if d := c.str("digest"); d != "" && d != confDigest(m.conf) {
		return "checksum mismatch (file change by other user?)"
	}
	if m.conf["lock"] != "" && !c.bool("skiplock") {
		return lockedErr(m)
	}
	return ""
}

// applyConfig writes a config update ($updatefn); it returns an error text.
func (s *Sim) applyConfig(m *vm, c *call) string {
	for _, k := range strings.FieldsFunc(c.str("delete"), func(r rune) bool { return r == ',' || r == ';' || r == ' ' }) {
		if diskKeyRe.MatchString(k) && !strings.HasPrefix(k, "unused") && !c.bool("force") {
			if d := parseDisk(m.conf[k]); m.conf[k] != "" && !d.isCDROM() {
				for i := 0; ; i++ {
					u := fmt.Sprintf("unused%d", i)
					if _, ok := m.conf[u]; !ok {
						m.conf[u] = d.storage + ":" + d.volname
						break
					}
				}
			} else if d.isCDROM() && strings.Contains(d.volname, "cloudinit") {
				if st := s.storageOn(m.node, d.storage); st != nil {
					st.release(d.storage + ":" + d.volname)
				}
			}
		} else if strings.HasPrefix(k, "unused") || (diskKeyRe.MatchString(k) && c.bool("force")) {
			d := parseDisk(m.conf[k])
			if st := s.storageOn(m.node, d.storage); st != nil {
				st.release(d.storage + ":" + d.volname)
			}
		}
		delete(m.conf, k)
	}
	for _, k := range sortedKeys(c.params) {
		if configControlParams[k] {
			continue
		}
		v, _ := scalar(c.params[k])
		if diskKeyRe.MatchString(k) {
			nv, msg := s.allocDiskValue(m, k, v)
			if msg != "" {
				return msg
			}
			v = nv
		}
		m.conf[k] = v
	}
	dropReaddedUnused(m.conf)
	m.noteNICRate(s.now())
	return ""
}

func (c *call) paramSummary() string {
	var parts []string
	for _, k := range sortedKeys(c.params) {
		if k == "node" || k == "vmid" {
			continue
		}
		v, _ := scalar(c.params[k])
		if k == "cipassword" {
			v = "<hidden>"
		}
		parts = append(parts, "-"+k+" "+v)
	}
	return strings.Join(parts, " ")
}

// allocDiskValue turns "STORAGE:SIZE_GiB" into an allocated volume and
// "STORAGE:cloudinit" into a cloud-init drive.
func (s *Sim) allocDiskValue(m *vm, key, v string) (string, string) {
	d := parseDisk(v)
	if d.storage == "" {
		return v, ""
	}
	if d.volname == "cloudinit" {
		st, msg := s.checkStorage(m.node, d.storage, "images")
		if msg != "" {
			return "", msg
		}
		vol := fmt.Sprintf("vm-%d-cloudinit", m.vmid)
		st.volumes[d.storage+":"+vol] = &volume{volid: d.storage + ":" + vol, format: "raw", size: 4 << 20, vmid: m.vmid, content: "images", ctime: s.now().Unix()}
		d.volname = vol
		d.media = "cdrom"
		if !contains(d.opts, "media=cdrom") {
			d.opts = append(d.opts, "media=cdrom")
		}
		return d.String(), ""
	}
	if gib, err := strconv.ParseFloat(d.volname, 64); err == nil && !d.isCDROM() {
		st, msg := s.checkStorage(m.node, d.storage, "images")
		if msg != "" {
			return "", msg
		}
		size := int64(gib * (1 << 30))
		d.volname = nextDiskName(st, m.vmid)
		if msg := st.alloc(d.storage+":"+d.volname, size, m.vmid, s.now().Unix(), true); msg != "" {
			return "", msg
		}
		d.size = size
		return d.String(), ""
	}
	// An existing volume (create_disks): one new to this key must exist,
	// and PVE writes its size into the drive.
	if !d.isCDROM() {
		if old := parseDisk(m.conf[key]); old.storage != d.storage || old.volname != d.volname {
			if st := s.storageOn(m.node, d.storage); st != nil {
				vol := st.volumes[d.storage+":"+d.volname]
				if vol == nil {
					return "", fmt.Sprintf("volume %s:%s does not exist", d.storage, d.volname)
				}
				d.size = vol.size
				return d.String(), ""
			}
		}
	}
	return v, ""
}

// dropReaddedUnused is write_vm_config's cleanup: an unusedN entry whose
// volume a drive key uses again is removed ("remove 'unusedX' settings if
// we re-add a volume").
func dropReaddedUnused(conf map[string]string) {
	used := map[string]bool{}
	for k, v := range conf {
		if diskKeyRe.MatchString(k) && !strings.HasPrefix(k, "unused") {
			if d := parseDisk(v); d.storage != "" {
				used[d.storage+":"+d.volname] = true
			}
		}
	}
	for k, v := range conf {
		if strings.HasPrefix(k, "unused") && used[v] {
			delete(conf, k)
		}
	}
}

// ---- resize ----

func hResize(c *call) (any, *apiError) {
	s := c.s
	m, err := s.vmOn(c)
	if err != nil {
		return nil, err
	}
	key, sizeArg := c.str("disk"), c.str("size")
	// qemu-server resize_vm: everything happens in the worker under the
	// config lock, against the config as it is then.
	run := func() (string, []string) {
		if s.vms[m.vmid] != m {
			return s.configFileErr(m.node, m.vmid).msg, nil
		}
		d := parseDisk(m.conf[key])
		switch {
		case c.str("digest") != "" && c.str("digest") != confDigest(m.conf):
			return "checksum mismatch (file change by other user?)", nil
		case m.conf["lock"] != "" && !c.bool("skiplock"):
			return lockedErr(m), nil
		case m.conf[key] == "":
			return fmt.Sprintf("disk '%s' does not exist", key), nil
		case d.isCDROM():
			return "you can't resize a cdrom", nil
		}
		newSize, _ := parseSize(strings.TrimPrefix(sizeArg, "+"), 1)
		if strings.HasPrefix(sizeArg, "+") {
			newSize += d.size
		}
		if newSize < d.size {
			return "shrinking disks is not supported", nil
		}
		if newSize == d.size {
			return "OK", nil
		}
		st := s.storageOn(m.node, d.storage)
		if st != nil {
			if grow := newSize - d.size; grow > st.free() && !strings.Contains(d.volname, "/") {
				return fmt.Sprintf("not enough free space (%d < %d)", st.free(), grow), nil
			}
			if v := st.volumes[d.storage+":"+d.volname]; v != nil {
				if !strings.Contains(d.volname, "/") {
					st.used += newSize - v.size
				}
				v.size = newSize
			}
		}
		nd := d
		nd.size = newSize
		m.conf[key] = nd.String()
		return "OK", []string{fmt.Sprintf("  Size of logical volume pve/%s changed from %s to %s.", d.volname, formatSize(d.size), formatSize(newSize))}
	}
	if strings.HasPrefix(s.cluster.Version, "6.") || strings.HasPrefix(s.cluster.Version, "7.") {
		if e := s.syncFlock(m); e != nil {
			return nil, e
		}
		if exit, _ := run(); exit != "OK" {
			return nil, serverErr(exit)
		}
		return nil, nil
	}
	t := c.spawn(spawnOpts{typ: "resize", id: strconv.Itoa(m.vmid), vmids: []int{m.vmid}, flockVM: m, run: run})
	return t.upid, nil
}

// ---- delete ----

func hDelete(c *call) (any, *apiError) {
	s := c.s
	m, err := s.vmOn(c)
	if err != nil {
		return nil, err
	}
	if m.running {
		return nil, serverErr(fmt.Sprintf("VM %d is running - destroy failed", m.vmid))
	}
	o := spawnOpts{typ: "qmdestroy", id: strconv.Itoa(m.vmid), vmids: []int{m.vmid}, flockVM: m}
	// the worker repeats the early checks under the config lock
	o.run = func() (string, []string) {
		if s.vms[m.vmid] != m {
			return s.configFileErr(m.node, m.vmid).msg, nil
		}
		if m.running {
			return fmt.Sprintf("VM %d is running - destroy failed", m.vmid), nil
		}
		if m.conf["lock"] != "" && !c.bool("skiplock") {
			return lockedErr(m), nil
		}
		s.freeDisks(m)
		delete(s.vms, m.vmid)
		s.removeVMAccess(m.vmid) // remove_vm_access, with or without purge
		return "OK", []string{"Removing image: 100% complete...done."}
	}
	return c.spawn(o).upid, nil
}

// ---- template ----

func hTemplate(c *call) (any, *apiError) {
	s := c.s
	m, err := s.vmOn(c)
	if err != nil {
		return nil, err
	}
	if m.running {
		return nil, serverErr("you can't convert a VM to template if VM is running")
	}
	o := spawnOpts{typ: "qmtemplate", id: strconv.Itoa(m.vmid), vmids: []int{m.vmid}, flockVM: m}
	if m.conf["lock"] != "" {
		o.run = errTask(lockedErr(m))
	} else {
		o.run = func() (string, []string) {
			for _, k := range diskKeys(m.conf) {
				d := parseDisk(m.conf[k])
				if d.isCDROM() || d.storage == "" || strings.HasPrefix(k, "unused") {
					continue
				}
				st := s.storageOn(m.node, d.storage)
				if st == nil || !strings.HasPrefix(d.volname, "vm-") {
					continue
				}
				nv := "base-" + strings.TrimPrefix(d.volname, "vm-")
				if v := st.volumes[d.storage+":"+d.volname]; v != nil {
					delete(st.volumes, d.storage+":"+d.volname)
					v.volid = d.storage + ":" + nv
					st.volumes[v.volid] = v
				}
				d.volname = nv
				m.conf[k] = d.String()
			}
			m.conf["template"] = "1"
			return "OK", nil
		}
	}
	return c.spawn(o).upid, nil
}

func hCloudinit(c *call) (any, *apiError) {
	m, err := c.s.vmOn(c)
	if err != nil {
		return nil, err
	}
	if e := c.s.syncFlock(m); e != nil {
		return nil, e
	}
	return nil, nil
}
