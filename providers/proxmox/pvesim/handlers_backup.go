package pvesim

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

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
