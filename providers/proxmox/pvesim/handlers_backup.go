package pvesim

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

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
		s.applyTraffic(m, nil)
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
				m.setRunning(true, s.now())
			}
			return "OK", nil
		}
		return c.spawn(o).upid, nil
	}
	// $parse_restore_archive: the archive's storage must be configured and
	// active on this node (activate_volumes), the file must exist
	// (abs_filesystem_path).
	stName, _, _ := strings.Cut(archive, ":")
	if _, msg := s.checkStorage(nodeName, stName, ""); msg != "" {
		return nil, serverErr(msg)
	}
	ast := s.storageOn(nodeName, stName)
	backup := ast.volumes[archive]
	if backup == nil || backup.content != "backup" {
		return nil, serverErr(fmt.Sprintf("can't find file '%s'", archive))
	}
	// create_and_lock_config($vmid, $force) under a 5 s config flock:
	// check_vmid_unused (unless force), check_lock, then lock "create" is
	// written before the worker starts. All of it dies synchronously with
	// "unable to restore VM <vmid> - ".
	emsg := fmt.Sprintf("unable to restore VM %d - ", vmid)
	if existing != nil {
		if s.flockWait(existing, false) > 5*time.Second {
			return nil, serverErr(emsg + fmt.Sprintf("can't lock file '%s' - got timeout", lockFile(vmid)))
		}
		if !c.bool("force") || existing.node != nodeName {
			return nil, serverErr(emsg + fmt.Sprintf("VM %d already exists on node '%s'", vmid, existing.node))
		}
		if existing.conf["lock"] != "" {
			return nil, serverErr(emsg + lockedErr(existing))
		}
	}
	m := existing
	if m == nil {
		m = &vm{vmid: vmid, node: nodeName, conf: map[string]string{}, created: s.now(), firewall: map[string]string{}}
		s.applyTraffic(m, nil)
		s.vms[vmid] = m
	}
	o := spawnOpts{typ: "qmrestore", id: strconv.Itoa(vmid), vmids: []int{vmid}, lockVM: m, lock: "create", flockVM: m}
	// volumes this restore allocated: restore_destroy_volumes frees them
	// when it fails
	var allocated []string
	notCleaned := fmt.Sprintf("error before or during data restore, some or all disks were not completely restored. VM %d state is NOT cleaned up.", vmid)
	o.onFail = func() {
		for _, volid := range allocated {
			sn, _, _ := strings.Cut(volid, ":")
			if st := s.storageOn(nodeName, sn); st != nil {
				st.release(volid)
			}
		}
		// the config stays as it was (for a new VMID: the empty config
		// create_and_lock_config wrote); only the lock goes
	}
	o.run = func() (string, []string) {
		if m.conf["protection"] == "1" {
			// check_protection($conf, $emsg) adds its own " - "
			return emsg + "- protection mode enabled", []string{notCleaned}
		}
		if m.running {
			return emsg + "vm is running", []string{notCleaned}
		}
		src := copyMap(backup.conf)
		lines := []string{"restore vma archive: zstd -q -d -c " + volumePath(ast, backup) + "|vma extract -v -r /var/tmp/vzdumptmp" + strconv.Itoa(vmid) + ".fifo - /var/tmp/vzdumptmp" + strconv.Itoa(vmid)}
		conf := map[string]string{}
		inArchive := map[string]bool{}
		var commented []string
		for _, k := range sortedKeys(src) {
			v := src[k]
			if !diskKeyRe.MatchString(k) {
				conf[k] = v
				continue
			}
			d := parseDisk(v)
			switch {
			case d.storage == "" || d.isCDROM():
				if d.isCDROM() && strings.Contains(d.volname, "cloudinit") {
					stName := d.storage
					if c.has("storage") {
						stName = c.str("storage")
					}
					st, msg := s.checkStorage(nodeName, stName, "images")
					if msg != "" {
						return msg, append(lines, notCleaned)
					}
					d.storage, d.volname = stName, fmt.Sprintf("vm-%d-cloudinit", vmid)
					st.volumes[stName+":"+d.volname] = &volume{volid: stName + ":" + d.volname, format: "raw", size: 4 << 20, vmid: vmid, content: "images"}
					v = d.String()
				}
				conf[k] = v
				continue
			case contains(d.opts, "backup=0"):
				// restore_update_config_line: print $outfd "#$line" (it
				// becomes part of the description)
				commented = append(commented, k+": "+v)
				continue
			}
			stName := d.storage
			if c.has("storage") {
				stName = c.str("storage")
			}
			st, msg := s.checkStorage(nodeName, stName, "images")
			if msg != "" {
				return msg, append(lines, notCleaned)
			}
			d.storage, d.volname = stName, nextDiskName(st, vmid)
			volid := stName + ":" + d.volname
			if msg := st.alloc(volid, d.size, vmid, s.now().Unix(), true); msg != "" {
				return msg, append(lines, notCleaned)
			}
			allocated = append(allocated, volid)
			conf[k] = d.String()
			inArchive[k] = true
			lines = append(lines, fmt.Sprintf("new volume ID is '%s'", volid))
		}
		if len(commented) > 0 {
			desc := conf["description"]
			if desc != "" {
				desc += "\n"
			}
			conf["description"] = desc + strings.Join(commented, "\n")
		}
		// restore_update_config_line: a new vmgenid always (unless 0),
		// new MACs and SMBIOS UUID with unique
		if g := conf["vmgenid"]; g != "" && g != "0" {
			conf["vmgenid"] = fakeUUID(uint64(vmid) + uint64(s.now().UnixNano()))
		}
		if c.bool("unique") {
			s.newMACs(conf, vmid)
			if sm := conf["smbios1"]; sm != "" {
				conf["smbios1"] = replaceUUID(sm, fakeUUID(uint64(vmid)<<8+uint64(s.now().UnixNano())))
			}
		}
		// restore_cleanup_oldconf: the old VM's disks that the archive
		// restores are freed, the others are kept (rescan adds them as
		// unused); "after the restore we have no snapshots anymore"
		var kept []string
		if existing != nil {
			for _, k := range diskKeys(m.conf) {
				d := parseDisk(m.conf[k])
				if d.storage == "" || d.isCDROM() {
					continue
				}
				volid := d.storage + ":" + d.volname
				if inArchive[k] && !strings.HasPrefix(k, "unused") {
					if st := s.storageOn(nodeName, d.storage); st != nil {
						st.release(volid)
					}
					continue
				}
				if v := s.storageOn(nodeName, d.storage); v != nil && v.volumes[volid] != nil && v.volumes[volid].vmid == vmid {
					kept = append(kept, volid)
				}
			}
		}
		lines = append(lines, "rescan volumes...")
		for _, volid := range kept {
			key := nextUnused(conf)
			conf[key] = volid
			lines = append(lines, fmt.Sprintf("VM %d add unreferenced volume '%s' as '%s' to config", vmid, volid, key))
		}
		conf["lock"] = "create"
		m.conf = conf
		m.noteNICRate(s.now())
		m.snapshots = nil
		if backup.hasFW {
			m.firewall, m.ipsets = copyMap(backup.firewall), copyIPSets(backup.ipsets)
		}
		allocated = nil
		if c.bool("start") && s.boots(m) {
			m.setRunning(true, s.now())
		}
		return "OK", lines
	}
	return c.spawn(o).upid, nil
}

// nextUnused is the first free unusedN key.
func nextUnused(conf map[string]string) string {
	for i := 0; ; i++ {
		if _, ok := conf[fmt.Sprintf("unused%d", i)]; !ok {
			return fmt.Sprintf("unused%d", i)
		}
	}
}

// replaceUUID sets the uuid= of an smbios1 property string.
func replaceUUID(smbios, uuid string) string {
	parts := strings.Split(smbios, ",")
	for i, p := range parts {
		if strings.HasPrefix(p, "uuid=") {
			parts[i] = "uuid=" + uuid
			return strings.Join(parts, ",")
		}
	}
	return strings.Join(append(parts, "uuid="+uuid), ",")
}
