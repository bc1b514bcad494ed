package pvesim

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ---- clone ----

func hClone(c *call) (any, *apiError) {
	s := c.s
	src, err := s.vmOn(c)
	if err != nil {
		return nil, err
	}
	newid := c.int("newid")
	nodeName := c.vars["node"]
	if src.conf["lock"] != "" {
		return nil, serverErr(lockedErr(src))
	}
	srcConf := src.conf
	if sn := c.str("snapname"); sn != "" {
		found := false
		for _, x := range src.snapshots {
			if x.name == sn {
				srcConf, found = x.conf, true
			}
		}
		if !found {
			return nil, serverErr(fmt.Sprintf("snapshot '%s' does not exist", sn))
		}
	}
	isTemplate := src.conf["template"] == "1"
	full := !isTemplate
	if c.has("full") {
		full = c.bool("full")
	}
	if c.has("storage") && !full {
		return nil, serverErr("parameter 'storage' not allowed for linked clones")
	}
	if c.has("format") && !full {
		return nil, serverErr("parameter 'format' not allowed for linked clones")
	}
	if !full && !isTemplate {
		return nil, serverErr("Linked clone feature is not supported for drive 'scsi0'")
	}
	target := nodeName
	if t := c.str("target"); t != "" {
		if s.nodes[t] == nil {
			return nil, serverErr(fmt.Sprintf("no such cluster node '%s'", t))
		}
		target = t
	}
	// storage checks (before forking, in $load_and_check)
	disks := map[string]disk{}
	for _, k := range diskKeys(srcConf) {
		if strings.HasPrefix(k, "unused") {
			continue
		}
		d := parseDisk(srcConf[k])
		if d.storage == "" {
			continue
		}
		disks[k] = d
		stName := d.storage
		if full && c.has("storage") {
			stName = c.str("storage")
		}
		if _, msg := s.checkStorage(nodeName, stName, "images"); msg != "" {
			return nil, serverErr(msg)
		}
		if target != nodeName {
			if st := s.storageOn(nodeName, stName); st != nil && !st.shared {
				return nil, serverErr(fmt.Sprintf("can't clone VM to node '%s' (VM uses local storage)", target))
			}
		}
	}
	if existing := s.vms[newid]; existing != nil && existing.node == nodeName {
		return nil, serverErr(fmt.Sprintf("unable to create VM %d: config file already exists", newid))
	}
	var newVM *vm
	o := spawnOpts{typ: "qmclone", id: strconv.Itoa(src.vmid), vmids: []int{src.vmid, newid}, flockVM: src, flockShared: !src.running, flockTimeout: time.Second,
		log: []string{fmt.Sprintf("create %s clone of drive scsi0 (%s)", map[bool]string{true: "full", false: "linked"}[full], srcConf["scsi0"])}}
	if full {
		// A full clone copies the disk and logs its progress as PVE's
		// qemu-img/drive-mirror does: "transferred X of Y (NN.NN%)".
		size := int64(0)
		for _, part := range strings.Split(srcConf["scsi0"], ",") {
			if v, ok := strings.CutPrefix(part, "size="); ok {
				size, _ = parseSize(v, 1)
			}
		}
		dur := s.duration("qmclone")
		for _, pct := range []int{25, 50, 75, 100} {
			done := size * int64(pct) / 100
			o.steps = append(o.steps, spawnStep{after: dur * time.Duration(pct) / 100, fn: func(t *task) {
				t.log = append(t.log, fmt.Sprintf("transferred %s of %s (%d.00%%)", formatSize(done), formatSize(size), pct))
			}})
		}
	}
	if existing := s.vms[newid]; existing != nil {
		o.run = errTask(fmt.Sprintf("unable to create VM %d: config file already exists", newid))
	} else {
		newVM = &vm{vmid: newid, node: target, conf: map[string]string{"lock": "clone"}, created: s.now(), firewall: map[string]string{}}
		s.applyTraffic(newVM, nil)
		s.vms[newid] = newVM
		o.lockVM, o.lock = newVM, "clone"
		o.onFail = func() {
			if s.vms[newid] == newVM {
				s.freeDisks(newVM)
				delete(s.vms, newid)
			}
		}
		o.run = func() (string, []string) {
			conf := copyMap(srcConf)
			for _, k := range []string{"template", "lock", "parent", "snaptime", "vmstate", "snapstate"} {
				delete(conf, k)
			}
			for k := range conf {
				if strings.HasPrefix(k, "unused") {
					delete(conf, k)
				}
			}
			if n := c.str("name"); n != "" {
				conf["name"] = n
			} else if conf["name"] != "" {
				conf["name"] = "Copy-of-VM-" + conf["name"]
			}
			if c.has("description") {
				conf["description"] = c.str("description")
			}
			conf["vmgenid"] = fakeUUID(uint64(newid) + uint64(s.now().UnixNano()))
			conf["smbios1"] = "uuid=" + fakeUUID(uint64(newid)<<8+uint64(s.now().UnixNano()))
			s.newMACs(conf, newid)
			var lines []string
			var allocated []func()
			for _, k := range sortedKeys(disks) {
				d := disks[k]
				stName := d.storage
				if full && c.has("storage") {
					stName = c.str("storage")
				}
				st, msg := s.checkStorage(target, stName, "images")
				if msg != "" {
					return "clone failed: " + msg, lines
				}
				nd := d
				nd.storage = stName
				if d.isCDROM() {
					if strings.Contains(d.volname, "cloudinit") {
						nd.volname = fmt.Sprintf("vm-%d-cloudinit", newid)
						st.volumes[stName+":"+nd.volname] = &volume{volid: stName + ":" + nd.volname, format: "raw", size: 4 << 20, vmid: newid, content: "images", ctime: s.now().Unix()}
						conf[k] = nd.String()
					}
					continue
				}
				if full {
					nd.volname = nextDiskName(st, newid)
				} else {
					base := d.volname
					if i := strings.Index(base, "/"); i >= 0 {
						base = base[:i]
					}
					nd.volname = base + "/" + nextDiskName(st, newid)
				}
				if msg := st.alloc(stName+":"+nd.volname, d.size, newid, s.now().Unix(), full); msg != "" {
					for _, undo := range allocated {
						undo()
					}
					return "clone failed: " + msg, lines
				}
				volid := stName + ":" + nd.volname
				allocated = append(allocated, func() { st.release(volid) })
				conf[k] = nd.String()
				lines = append(lines, fmt.Sprintf("%s: %s", k, conf[k]))
			}
			conf["lock"] = "clone" // removed by finish
			newVM.conf = conf
			newVM.noteNICRate(s.now())
			return "OK", lines
		}
	}
	return c.spawn(o).upid, nil
}

// ---- migrate ----

func hMigrate(c *call) (any, *apiError) {
	s := c.s
	m, err := s.vmOn(c)
	if err != nil {
		return nil, err
	}
	target := c.str("target")
	if target == m.node {
		return nil, paramErr("target", "target is local node.")
	}
	tn := s.nodes[target]
	if tn == nil {
		return nil, serverErr(fmt.Sprintf("no such cluster node '%s'", target))
	}
	if m.running && !c.bool("online") {
		return nil, serverErr("can't migrate running VM without --online")
	}
	if m.conf["lock"] != "" {
		return nil, serverErr(lockedErr(m))
	}
	o := spawnOpts{typ: "qmigrate", id: strconv.Itoa(m.vmid), vmids: []int{m.vmid}, flockVM: m, lockVM: m, lock: "migrate",
		log: []string{fmt.Sprintf("%s starting migration of VM %d to node '%s'", s.now().Format("2006-01-02 15:04:05"), m.vmid, target)}}
	o.run = func() (string, []string) {
		if tn.offline {
			// AbstractMigrate tests the SSH connection first; PVE has no
			// online check before forking the worker.
			return "migration aborted", []string{s.now().Format("2006-01-02 15:04:05") + " ERROR: migration aborted (duration 00:00:03): Can't connect to destination address using public key"}
		}
		type move struct {
			key   string
			d     disk
			newSt *storage
		}
		var moves []move
		for _, k := range diskKeys(m.conf) {
			d := parseDisk(m.conf[k])
			if d.storage == "" {
				continue
			}
			stName := d.storage
			if ts := c.str("targetstorage"); ts != "" {
				stName = ts
				if from, to, ok := strings.Cut(ts, ":"); ok {
					stName = to
					if from != d.storage {
						stName = d.storage
					}
				}
			}
			if m.running && !c.bool("with-local-disks") {
				if cur := s.storageOn(m.node, d.storage); cur != nil && !cur.shared {
					// QemuMigrate's scan of local volumes, for a live migration.
					return "can't live migrate attached local disks without with-local-disks option", []string{s.now().Format("2006-01-02 15:04:05") +
						" ERROR: migration aborted (duration 00:00:01): can't live migrate attached local disks without with-local-disks option"}
				}
			}
			st, msg := s.checkStorage(target, stName, "images")
			if msg != "" {
				return "migration aborted", []string{s.now().Format("2006-01-02 15:04:05") + " ERROR: migration aborted (duration 00:00:01): " + msg}
			}
			moves = append(moves, move{k, d, st})
		}
		src := s.nodes[m.node]
		for _, mv := range moves {
			old := src.storages[mv.d.storage]
			var size int64
			var content = "images"
			if old != nil {
				if v := old.volumes[mv.d.storage+":"+mv.d.volname]; v != nil {
					size, content = v.size, v.content
				}
				if !old.shared {
					old.release(mv.d.storage + ":" + mv.d.volname)
				}
			}
			nd := mv.d
			nd.storage = mv.newSt.name
			nd.volname = mv.d.volname
			if i := strings.Index(nd.volname, "/"); i >= 0 { // linked clones become full copies
				nd.volname = nd.volname[i+1:]
			}
			mv.newSt.volumes[nd.storage+":"+nd.volname] = &volume{volid: nd.storage + ":" + nd.volname, format: "raw", size: size, vmid: m.vmid, content: content, ctime: s.now().Unix()}
			if !mv.newSt.shared || old == nil || !old.shared {
				mv.newSt.used += size
			}
			m.conf[mv.key] = nd.String()
		}
		m.node = target
		return "OK", []string{"migration finished successfully"}
	}
	return c.spawn(o).upid, nil
}
