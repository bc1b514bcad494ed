package pvesim

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

type handlerDef struct {
	fn   handlerFunc
	perm func(c *call) (string, string)
	// authz is for endpoints whose schema says "user => 'all'" and whose
	// code checks permissions itself; it runs after parameter verification.
	authz func(c *call) *apiError
}

func vmPerm(priv string) func(c *call) (string, string) {
	return func(c *call) (string, string) { return "/vms/" + c.vars["vmid"], priv }
}

func nodePerm(priv string) func(c *call) (string, string) {
	return func(c *call) (string, string) { return "/nodes/" + c.vars["node"], priv }
}

func storagePerm(priv string) func(c *call) (string, string) {
	return func(c *call) (string, string) { return "/storage/" + c.vars["storage"], priv }
}

var handlers map[string]handlerDef

func init() {
	handlers = map[string]handlerDef{
		"GET /version":                                                  {fn: hVersion},
		"GET /cluster/status":                                           {fn: hClusterStatus},
		"GET /cluster/resources":                                        {fn: hResources},
		"GET /cluster/nextid":                                           {fn: hNextID},
		"GET /nodes":                                                    {fn: hNodes},
		"GET /nodes/{node}/status":                                      {fn: hNodeStatus, perm: nodePerm("Sys.Audit")},
		"GET /nodes/{node}/qemu":                                        {fn: hQemuList},
		"POST /nodes/{node}/qemu":                                       {fn: hCreate, authz: createAuthz},
		"DELETE /nodes/{node}/qemu/{vmid}":                              {fn: hDelete, perm: vmPerm("VM.Allocate")},
		"GET /nodes/{node}/qemu/{vmid}/status/current":                  {fn: hStatusCurrent, perm: vmPerm("VM.Audit")},
		"POST /nodes/{node}/qemu/{vmid}/status/start":                   {fn: hPower("qmstart"), perm: vmPerm("VM.PowerMgmt")},
		"POST /nodes/{node}/qemu/{vmid}/status/stop":                    {fn: hPower("qmstop"), perm: vmPerm("VM.PowerMgmt")},
		"POST /nodes/{node}/qemu/{vmid}/status/shutdown":                {fn: hPower("qmshutdown"), perm: vmPerm("VM.PowerMgmt")},
		"GET /nodes/{node}/qemu/{vmid}/config":                          {fn: hConfigGet, perm: vmPerm("VM.Audit")},
		"POST /nodes/{node}/qemu/{vmid}/config":                         {fn: hConfigSet(true), perm: vmPerm("VM.Config.Options")},
		"PUT /nodes/{node}/qemu/{vmid}/config":                          {fn: hConfigSet(false), perm: vmPerm("VM.Config.Options")},
		"GET /nodes/{node}/qemu/{vmid}/pending":                         {fn: hPending, perm: vmPerm("VM.Audit")},
		"POST /nodes/{node}/qemu/{vmid}/clone":                          {fn: hClone, perm: vmPerm("VM.Clone")},
		"PUT /nodes/{node}/qemu/{vmid}/resize":                          {fn: hResize, perm: vmPerm("VM.Config.Disk")},
		"POST /nodes/{node}/qemu/{vmid}/migrate":                        {fn: hMigrate, perm: vmPerm("VM.Migrate")},
		"POST /nodes/{node}/qemu/{vmid}/template":                       {fn: hTemplate, perm: vmPerm("VM.Allocate")},
		"PUT /nodes/{node}/qemu/{vmid}/cloudinit":                       {fn: hCloudinit, perm: vmPerm("VM.Config.Cloudinit")},
		"GET /nodes/{node}/qemu/{vmid}/firewall/options":                {fn: hFwGet, perm: vmPerm("VM.Audit")},
		"PUT /nodes/{node}/qemu/{vmid}/firewall/options":                {fn: hFwSet, perm: vmPerm("VM.Config.Network")},
		"GET /nodes/{node}/qemu/{vmid}/firewall/ipset":                  {fn: hIPSetList, perm: vmPerm("VM.Audit")},
		"POST /nodes/{node}/qemu/{vmid}/firewall/ipset":                 {fn: hIPSetCreate, perm: vmPerm("VM.Config.Network")},
		"GET /nodes/{node}/qemu/{vmid}/firewall/ipset/{name}":           {fn: hIPSetEntries, perm: vmPerm("VM.Audit")},
		"POST /nodes/{node}/qemu/{vmid}/firewall/ipset/{name}":          {fn: hIPSetAdd, perm: vmPerm("VM.Config.Network")},
		"DELETE /nodes/{node}/qemu/{vmid}/firewall/ipset/{name}":        {fn: hIPSetDelete, perm: vmPerm("VM.Config.Network")},
		"DELETE /nodes/{node}/qemu/{vmid}/firewall/ipset/{name}/{cidr}": {fn: hIPSetRemove, perm: vmPerm("VM.Config.Network")},
		"GET /nodes/{node}/qemu/{vmid}/snapshot":                        {fn: hSnapList, perm: vmPerm("VM.Audit")},
		"POST /nodes/{node}/qemu/{vmid}/snapshot":                       {fn: hSnapCreate, perm: vmPerm("VM.Snapshot")},
		"DELETE /nodes/{node}/qemu/{vmid}/snapshot/{snapname}":          {fn: hSnapDelete, perm: vmPerm("VM.Snapshot")},
		"POST /nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback":   {fn: hSnapRollback, perm: vmPerm("VM.Snapshot.Rollback")},
		"GET /nodes/{node}/qemu/{vmid}/rrddata":                         {fn: hRRD, perm: vmPerm("VM.Audit")},
		"POST /nodes/{node}/vzdump":                                     {fn: hVzdump, authz: vzdumpAuthz},
		"GET /nodes/{node}/storage":                                     {fn: hStorageList},
		"GET /nodes/{node}/storage/{storage}/status":                    {fn: hStorageStatus, perm: storagePerm("Datastore.Audit")},
		"GET /nodes/{node}/storage/{storage}/content":                   {fn: hContentList, perm: storagePerm("Datastore.Audit")},
		"GET /nodes/{node}/storage/{storage}/content/{volume}":          {fn: hContentGet, perm: storagePerm("Datastore.Audit")},
		"DELETE /nodes/{node}/storage/{storage}/content/{volume}":       {fn: hContentDelete, perm: storagePerm("Datastore.Allocate")},
		"GET /nodes/{node}/tasks":                                       {fn: hTaskList},
		"GET /nodes/{node}/tasks/{upid}/status":                         {fn: hTaskStatus},
		"GET /nodes/{node}/tasks/{upid}/log":                            {fn: hTaskLog},
	}
}

func (c *call) spawn(o spawnOpts) *task {
	o.node = c.vars["node"]
	o.user = c.user
	return c.s.spawn(o)
}

func errTask(msg string) func() (string, []string) {
	return func() (string, []string) { return msg, nil }
}

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
					m.running, m.startedAt = true, s.now()
				}
				return "OK", []string{"generating cloud-init ISO"}
			default:
				m.running = false
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
	return v, ""
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
		return "OK", []string{"Removing image: 100% complete...done."}
	}
	return c.spawn(o).upid, nil
}

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
