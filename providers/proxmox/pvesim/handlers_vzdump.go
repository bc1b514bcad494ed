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
//
// Sources: pve-manager PVE/API2/VZDump.pm (vzdump) and PVE/VZDump.pm (new,
// exec_backup, exec_backup_task), qemu-server PVE/VZDump/QemuServer.pm
// (prepare, assemble, archive_vma), pve-storage PVE/Storage.pm
// (update_volume_attribute, prune_backups).

// vzdumpAuthz is the API-side check of pve-manager API2/VZDump.pm: only the
// target storage. VM.Backup is checked by the worker (exec_backup).
func vzdumpAuthz(c *call) *apiError {
	if st := c.str("storage"); st != "" {
		return c.check("/storage/"+st, "Datastore.AllocateSpace")
	}
	return nil
}

// parsePrune parses a prune-backups property string as far as pvesim
// simulates it (keep-all, keep-last) and returns keep-last (0: keep all).
func parsePrune(s string) (int, error) {
	if strings.TrimSpace(s) == "" {
		return 0, nil
	}
	keepAll, last := false, 0
	for _, part := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("invalid prune-backups %q", s)
		}
		switch k {
		case "keep-all":
			keepAll = n == 1
		case "keep-last":
			last = n
		default:
			return 0, fmt.Errorf("prune-backups option %s is not simulated (only keep-all and keep-last)", k)
		}
	}
	if keepAll {
		return 0, nil
	}
	return last, nil
}

// vzdumpFormatSize is PVE::VZDump::format_size ("archive file size").
func vzdumpFormatSize(size int64) string {
	kb := float64(size) / 1024
	if kb < 1024 {
		return strconv.Itoa(int(kb)) + "KB"
	}
	mb := float64(size) / (1024 * 1024)
	if mb < 1024 {
		return strconv.Itoa(int(mb)) + "MB"
	}
	gb := mb / 1024
	if gb < 1024 {
		return fmt.Sprintf("%.2fGB", gb)
	}
	return fmt.Sprintf("%.2fTB", gb/1024)
}

// vzdumpFormatTime is PVE::VZDump::format_time.
func vzdumpFormatTime(d time.Duration) string {
	sec := int(d / time.Second)
	return fmt.Sprintf("%02d:%02d:%02d", sec/3600, sec%3600/60, sec%60)
}

// vzdumpStamp is strftime("%F %H:%M:%S", localtime()) on a node whose
// timezone is UTC.
func vzdumpStamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") }

// backupNotes is VZDump.pm's generate_notes: \n and \\ escapes, then the
// {{cluster}}, {{guestname}}, {{node}} and {{vmid}} variables.
func backupNotes(tmpl string, m *vm, nodeName, cluster string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(tmpl); i++ {
		if tmpl[i] != '\\' || i+1 >= len(tmpl) {
			b.WriteByte(tmpl[i])
			continue
		}
		i++
		switch tmpl[i] {
		case '\\':
			b.WriteByte('\\')
		case 'n':
			b.WriteByte('\n')
		default:
			return "", fmt.Errorf("unexpected escape character '%c'", tmpl[i])
		}
	}
	name := m.conf["name"]
	if name == "" {
		name = fmt.Sprintf("VM %d", m.vmid)
	}
	return strings.NewReplacer("{{cluster}}", cluster, "{{guestname}}", name, "{{node}}", nodeName,
		"{{vmid}}", strconv.Itoa(m.vmid)).Replace(b.String()), nil
}

// storageConfigured says whether storage.cfg has the storage (on any node).
func (s *Sim) storageConfigured(name string) *storage {
	for _, nn := range s.order {
		if st := s.nodes[nn].storages[name]; st != nil {
			return st
		}
	}
	return nil
}

// guestBackups lists a guest's backups on a storage, newest first.
func guestBackups(st *storage, vmid int) []*volume {
	var out []*volume
	for _, v := range st.volumes {
		if v.content == "backup" && v.vmid == vmid {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ctime != out[j].ctime {
			return out[i].ctime > out[j].ctime
		}
		return out[i].volid > out[j].volid
	})
	return out
}

// maxProtected is PVE::Storage::get_max_protected_backups.
func (c *call) maxProtected(st *storage) int {
	if st.maxProtected != nil {
		return *st.maxProtected
	}
	if c.can("/storage/"+st.name, "Datastore.Allocate") {
		return -1
	}
	return 5
}

// protectedLimitErr is update_volume_attribute's (and exec_backup_task's)
// per-guest limit of protected backups, "" when another may be protected.
func (c *call) protectedLimitErr(st *storage, vmid int) string {
	max := c.maxProtected(st)
	if max < 0 {
		return ""
	}
	n := 0
	for _, v := range guestBackups(st, vmid) {
		if v.protected {
			n++
		}
	}
	if n >= max {
		return fmt.Sprintf("The number of protected backups per guest is limited to %d on storage '%s'", max, st.name)
	}
	return ""
}

var shellUnsafe = regexp.MustCompile(`[^\w!%+,\-./:=@^]`)

// shellQuote is String::ShellQuote::shell_quote for one word, as
// PVE::VZDump::Common::command_line uses it.
func shellQuote(v string) string {
	if v != "" && !shellUnsafe.MatchString(v) {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

// vzdumpCmdline renders the job like PVE::VZDump::Common::command_line
// (its hash order is random; pvesim sorts the options).
func (c *call) vzdumpCmdline() string {
	parts := []string{"vzdump"}
	if v := c.str("vmid"); v != "" {
		parts = append(parts, strings.Join(vmidListSplit.Split(strings.TrimSpace(v), -1), " "))
	}
	params := map[string]string{"node": c.vars["node"]}
	for k, v := range c.params {
		params[k], _ = scalar(v)
	}
	for _, k := range sortedKeys(params) {
		if k == "vmid" || k == "stdout" || params[k] == "" {
			continue
		}
		parts = append(parts, "--"+k+" "+shellQuote(params[k]))
	}
	return strings.Join(parts, " ")
}

// backupDisks is qemu-server VZDump prepare: the drives that go into the
// archive, with its log lines.
func backupDisks(m *vm) (keys []string, size int64, lines []string) {
	for _, k := range diskKeys(m.conf) {
		if strings.HasPrefix(k, "unused") {
			continue
		}
		d := parseDisk(m.conf[k])
		if d.isCDROM() {
			continue
		}
		vol := d.storage + ":" + d.volname
		switch {
		case contains(d.opts, "backup=0"):
			lines = append(lines, fmt.Sprintf("INFO: exclude disk '%s' '%s' (backup=no)", k, vol))
			continue
		case strings.HasPrefix(k, "efidisk") && m.conf["bios"] != "ovmf":
			lines = append(lines, fmt.Sprintf("INFO: excluding '%s' (efidisks can only be backed up when BIOS is set to 'ovmf')", k))
			continue
		}
		l := fmt.Sprintf("INFO: include disk '%s' '%s'", k, vol)
		if d.size > 0 {
			l += " " + formatSize(d.size)
		}
		lines = append(lines, l)
		keys = append(keys, k)
		size += d.size
	}
	return keys, size, lines
}

// archiveSize is the simulated size of a guest's archive: deterministic,
// an eighth of its included disks (sparse, compressed) plus the config.
func archiveSize(m *vm, disks int64, compress string) int64 {
	size := disks/8 + int64(m.vmid%97+1)<<16 + 4096
	if compress == "" || compress == "0" {
		size = disks/2 + 4096
	}
	return size
}

func hVzdump(c *call) (any, *apiError) {
	s := c.s
	nodeName := c.vars["node"]
	all := c.bool("all")
	if all && c.has("vmid") {
		return nil, paramErr("all", "option conflicts with option 'vmid'")
	}
	if !all && !c.has("vmid") {
		return nil, paramErr("vmid", "property is missing")
	}
	// get_included_guests: local guests, plus IDs of no guest at all
	// (they "visibly fail later"); guests on other nodes are skipped.
	var ids, skipped []int
	if all {
		for _, id := range sortedVMIDs(s) {
			if s.vms[id].node == nodeName {
				ids = append(ids, id)
			}
		}
	} else {
		seen := map[int]bool{}
		for _, f := range vmidListSplit.Split(strings.TrimSpace(c.str("vmid")), -1) {
			id, err := strconv.Atoi(f)
			if err != nil || id == 0 || seen[id] {
				continue
			}
			seen[id] = true
			if m := s.vms[id]; m != nil && m.node != nodeName {
				skipped = append(skipped, id)
				continue
			}
			ids = append(ids, id)
		}
		sort.Ints(ids)
		sort.Ints(skipped)
		if len(ids) == 0 {
			// "silent exit if specified VMs run on other nodes"
			return "OK", nil
		}
	}
	if (c.has("notes-template") || c.has("protected")) && !c.has("storage") {
		field := "notes-template"
		if !c.has("notes-template") {
			field = "protected"
		}
		return nil, requiresErr(field, "'"+field+"' requires 'storage'")
	}
	if strings.Contains(c.str("notes-template"), "\n") {
		return nil, paramErr("notes-template", "contains a line feed")
	}
	keepLast := -1 // -1: the storage's retention
	if c.has("prune-backups") {
		k, err := parsePrune(c.str("prune-backups"))
		if err != nil {
			return nil, &apiError{code: 501, msg: "pvesim: " + err.Error()}
		}
		keepLast = k
	}
	id := ""
	if len(ids) == 1 {
		id = strconv.Itoa(ids[0])
	}
	o := spawnOpts{typ: "vzdump", id: id, vmids: ids}

	// PVE::VZDump->new, in the worker: the storage is activated and must
	// be configured for backups; both errors are reported together.
	stName := c.str("storage")
	if stName == "" {
		stName = "local" // no storage in /etc/vzdump.conf
	}
	var newErrs []string
	if _, msg := s.checkStorage(nodeName, stName, ""); msg != "" {
		newErrs = append(newErrs, fmt.Sprintf("could not activate storage '%s': %s", stName, msg))
	}
	if cfg := s.storageConfigured(stName); cfg == nil {
		newErrs = append(newErrs, fmt.Sprintf("could not get storage information for '%s': storage '%s' does not exist", stName, stName))
	} else if !contains(cfg.content, "backup") {
		newErrs = append(newErrs, fmt.Sprintf("could not get storage information for '%s': can't use storage '%s' for backups - wrong content type", stName, stName))
	}
	if len(newErrs) > 0 {
		o.run = errTask(strings.Join(newErrs, " "))
		return c.spawn(o).upid, nil
	}
	st := s.storageOn(nodeName, stName)
	if keepLast < 0 {
		keepLast = st.keepLast
	}
	remove := !c.has("remove") || c.bool("remove")
	if keepLast == 0 {
		remove = false // keep-all: "avoid triggering any remove code path"
	}
	protected := c.bool("protected")
	compress := c.str("compress")
	mode := c.str("mode")
	if mode == "" {
		mode = "snapshot"
	}

	o.log = []string{"INFO: starting new backup job: " + c.vzdumpCmdline()}
	if len(skipped) > 0 {
		var ss []string
		for _, id := range skipped {
			ss = append(ss, strconv.Itoa(id))
		}
		o.log = append(o.log, "INFO: skip external VMs: "+strings.Join(ss, ", "))
	}

	// exec_backup: VM.Backup on every listed guest that exists, checked
	// before the first backup; with "all" the guests without it are
	// skipped silently, else the job dies.
	var todo []int
	for _, vid := range ids {
		if m := s.vms[vid]; m != nil && !c.can(fmt.Sprintf("/vms/%d", vid), "VM.Backup") {
			if all {
				continue
			}
			o.run = errTask(fmt.Sprintf("Permission check failed (/vms/%d, VM.Backup)", vid))
			return c.spawn(o).upid, nil
		}
		todo = append(todo, vid)
	}

	ext := map[string]string{"": ".vma", "0": ".vma", "1": ".vma.lzo", "gzip": ".vma.gz", "lzo": ".vma.lzo", "zstd": ".vma.zst"}[compress]
	dur := s.duration("vzdump")
	failed := false
	// the guest being backed up (holding our "backup" lock)
	var (
		cur                      *vm
		curStart                 time.Time
		curDisks                 int64
		curMode                  string
		wasRunning, stoppedForBk bool
	)
	var t *task      // set by each step and by run
	var at time.Time // when the worker does the current step
	logf := func(format string, a ...any) { t.log = append(t.log, fmt.Sprintf(format, a...)) }
	fail := func(vid int, msg string) {
		logf("ERROR: Backup of VM %d failed - %s", vid, msg)
		logf("INFO: Failed at %s", vzdumpStamp(at))
		failed = true
	}
	// startGuest is exec_backup_task reaching a guest, up to the start of
	// the archive; finishGuest is the end of its archive.
	startGuest := func(vid int) {
		m := s.vms[vid]
		if m == nil || m.node != nodeName {
			fail(vid, fmt.Sprintf("unable to find VM '%d'", vid))
			return
		}
		if (keepLast > 0 && !remove) || protected {
			var msg string
			unprotected := 0
			for _, v := range guestBackups(st, vid) {
				if !v.protected {
					unprotected++
				}
			}
			switch {
			case protected:
				msg = c.protectedLimitErr(st, vid)
			case unprotected >= keepLast:
				msg = fmt.Sprintf("There is a max backup limit of %d enforced by the target storage or the vzdump parameters. Either increase the limit or delete old backups.", keepLast)
			}
			if msg != "" {
				fail(vid, msg)
				return
			}
		}
		now := at
		logf("INFO: Starting Backup of VM %d (qemu)", vid)
		logf("INFO: Backup started at %s", vzdumpStamp(now))
		wasRunning = m.running
		logf("INFO: status = %s", map[bool]string{true: "running", false: "stopped"}[m.running])
		if m.conf["lock"] != "" {
			// lock_vm: PVE::QemuConfig->set_lock dies on a locked guest
			fail(vid, lockedErr(m))
			return
		}
		m.conf["lock"] = "backup"
		cur, curStart, stoppedForBk = m, now, false
		// exec_backup_task: "my $mode = $running ? $task->{mode} : 'stop';"
		// a stopped guest is always backed up in stop mode (logged as
		// such); qemu-server then starts it paused just for the backup
		// ("starting kvm to execute backup task") and stops it after.
		curMode = mode
		if !m.running {
			curMode = "stop"
		}
		_, size, prep := backupDisks(m)
		curDisks = size
		if name := m.conf["name"]; curMode == "snapshot" && name != "" {
			logf("INFO: VM Name: %s", name)
		}
		if curMode == "snapshot" {
			t.log = append(t.log, prep...)
		}
		logf("INFO: backup mode: %s", curMode)
		logf("INFO: ionice priority: 7")
		if curMode != "snapshot" {
			if name := m.conf["name"]; name != "" {
				logf("INFO: VM Name: %s", name)
			}
			t.log = append(t.log, prep...)
		}
		switch {
		case curMode == "stop" && m.running:
			logf("INFO: stopping virtual guest")
			m.setRunning(false, s.now())
			stoppedForBk = true
		case curMode == "suspend":
			logf("INFO: suspending guest")
		}
		// assemble
		for _, k := range diskKeys(m.conf) {
			if d := parseDisk(m.conf[k]); strings.HasPrefix(k, "unused") {
				logf("INFO: skip unused drive '%s:%s' (not included into backup)", d.storage, d.volname)
			}
		}
		if len(m.snapshots) > 0 {
			logf("INFO: snapshots found (not included into backup)")
		}
		name := fmt.Sprintf("vzdump-qemu-%d-%s%s", m.vmid, now.UTC().Format("2006_01_02-15_04_05"), ext)
		logf("INFO: creating vzdump archive '%s'", volumePath(st, &volume{volid: st.name + ":backup/" + name, content: "backup"}))
		if !m.running && curMode != "suspend" {
			logf("INFO: starting kvm to execute backup task")
		}
		if stoppedForBk {
			logf("INFO: resuming VM again")
		}
	}
	release := func() {
		if cur != nil && cur.conf["lock"] == "backup" {
			delete(cur.conf, "lock")
		}
		if cur != nil && stoppedForBk {
			cur.setRunning(true, s.now()) // restarted after the backup
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
		size := archiveSize(m, curDisks, compress)
		stopAfter := func() {
			if !wasRunning {
				logf("INFO: stopping kvm after backup task")
			}
		}
		if size > st.free() {
			// the archive is written through the compressor: it reports
			// the full disk, vma sees its pipe break
			werr := "No space left on device"
			if ext != ".vma" {
				logf("zstd: error 70 : Write error : cannot write block : No space left on device ")
				werr = "Broken pipe"
			}
			logf("ERROR: vma_queue_write: write error - %s", werr)
			logf("INFO: aborting backup job")
			stopAfter()
			fail(m.vmid, "vma_queue_write: write error - "+werr)
			return
		}
		stopAfter()
		if curMode == "suspend" {
			logf("INFO: resume vm")
		}
		conf := copyMap(m.conf)
		delete(conf, "lock")
		delete(conf, "parent")
		for k := range conf {
			if strings.HasPrefix(k, "unused") {
				delete(conf, k)
			}
		}
		v := &volume{volid: volid, format: strings.TrimPrefix(ext, "."), size: size, ctime: curStart.Unix(), vmid: m.vmid, content: "backup", conf: conf}
		if len(m.firewall) > 0 || len(m.ipsets) > 0 {
			v.hasFW, v.firewall, v.ipsets = true, copyMap(m.firewall), copyIPSets(m.ipsets)
		}
		st.volumes[volid] = v
		st.used += size
		logf("INFO: archive file size: %s", vzdumpFormatSize(size))
		if tmpl := c.str("notes-template"); tmpl != "" {
			logf("INFO: adding notes to backup")
			if notes, err := backupNotes(tmpl, m, nodeName, s.cluster.Name); err != nil {
				logf("WARN: unable to add notes - %s", err)
			} else {
				v.notes = notes
			}
		}
		if protected {
			logf("INFO: marking backup as protected")
			v.protected = true
		}
		if remove {
			logf("INFO: prune older backups with retention: keep-last=%d", keepLast)
			pruned, kept := 0, 0
			for _, b := range guestBackups(st, m.vmid) {
				if b.protected {
					continue
				}
				if kept < keepLast {
					kept++
					continue
				}
				logf("INFO: removing backup '%s'", b.volid)
				st.release(b.volid)
				pruned++
			}
			extra := ""
			if pruned > 0 {
				extra = " not covered by keep-retention policy"
			}
			logf("INFO: pruned %d backup(s)%s", pruned, extra)
		}
		logf("INFO: Finished Backup of VM %d (%s)", m.vmid, vzdumpFormatTime(at.Sub(curStart)))
		logf("INFO: Backup finished at %s", vzdumpStamp(at))
	}
	// The guests are backed up one after another, each taking an equal
	// share of the task duration.
	for i, vid := range todo {
		after := dur * time.Duration(i) / time.Duration(len(todo))
		o.steps = append(o.steps, spawnStep{after: after, fn: func(tk *task) {
			t, at = tk, tk.start.Add(after)
			finishGuest()
			startGuest(vid)
		}})
	}
	o.run = func() (string, []string) {
		at = t.end
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

func copyIPSets(in []*ipset) []*ipset {
	out := make([]*ipset, 0, len(in))
	for _, is := range in {
		n := &ipset{name: is.name, comment: is.comment}
		for _, e := range is.entries {
			ce := *e
			n.entries = append(n.entries, &ce)
		}
		out = append(out, n)
	}
	return out
}
