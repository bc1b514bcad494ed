package pvesim

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

var diskKeyRe = regexp.MustCompile(`^(ide|sata|scsi|virtio|efidisk|tpmstate|unused)\d+$`)

func diskKeys(conf map[string]string) []string {
	var out []string
	for k := range conf {
		if diskKeyRe.MatchString(k) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

type disk struct {
	storage, volname string
	size             int64
	opts             []string // other k=v parts, in order
	media            string
}

func (d disk) isCDROM() bool { return d.media == "cdrom" }

func parseDisk(v string) disk {
	var d disk
	for i, part := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(part, "=")
		if i == 0 && !ok {
			k, val = "file", part
		}
		switch k {
		case "file":
			if st, vol, ok := strings.Cut(val, ":"); ok {
				d.storage, d.volname = st, vol
			} else {
				d.volname = val
			}
		case "size":
			d.size, _ = parseSize(val, 1)
		case "media":
			d.media = val
			d.opts = append(d.opts, part)
		default:
			d.opts = append(d.opts, part)
		}
	}
	if d.volname == "cdrom" || d.volname == "none" {
		d.media = "cdrom"
	}
	return d
}

func (d disk) String() string {
	parts := []string{d.storage + ":" + d.volname}
	if d.storage == "" {
		parts[0] = d.volname
	}
	parts = append(parts, d.opts...)
	if d.size > 0 && !d.isCDROM() {
		parts = append(parts, "size="+formatSize(d.size))
	}
	return strings.Join(parts, ",")
}

// formatSize renders bytes like PVE's format_size (largest exact unit).
func formatSize(b int64) string {
	for _, u := range []struct {
		s string
		n int64
	}{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if b >= u.n && b%u.n == 0 {
			return strconv.FormatInt(b/u.n, 10) + u.s
		}
	}
	return strconv.FormatInt(b, 10)
}

func confDigest(conf map[string]string) string {
	h := sha1.New()
	for _, k := range sortedKeys(conf) {
		fmt.Fprintf(h, "%s: %s\n", k, conf[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// renderConfig renders config values with PVE's JSON typing: booleans and
// integers as numbers, everything else (including "number" keys) as strings.
func (s *Sim) renderConfig(conf map[string]string) map[string]any {
	out := map[string]any{}
	params := s.schema.subsets[0].Endpoints["POST /nodes/{node}/qemu/{vmid}/config"].Params
	for k, v := range conf {
		p := lookup(params, k)
		if p != nil && (p.Type == "boolean" || p.Type == "integer") {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				out[k] = n
				continue
			}
		}
		out[k] = v
	}
	out["digest"] = confDigest(conf)
	return out
}

func (s *Sim) configFileErr(nodeName string, vmid int) *apiError {
	return serverErr(fmt.Sprintf("Configuration file 'nodes/%s/qemu-server/%d.conf' does not exist", nodeName, vmid))
}

// vmOn returns the VM if its config is on that node (PVE reads
// /etc/pve/nodes/<node>/qemu-server/<vmid>.conf).
func (s *Sim) vmOn(c *call) (*vm, *apiError) {
	vmid := c.int("vmid")
	m := s.vms[vmid]
	if m == nil || m.node != c.vars["node"] {
		return nil, s.configFileErr(c.vars["node"], vmid)
	}
	return m, nil
}

func lockedErr(m *vm) string { return fmt.Sprintf("VM is locked (%s)", m.conf["lock"]) }

func (s *Sim) storageOn(nodeName, name string) *storage {
	if n := s.nodes[nodeName]; n != nil {
		return n.storages[name]
	}
	return nil
}

// checkStorage reproduces pve-storage's availability errors.
func (s *Sim) checkStorage(nodeName, name, content string) (*storage, string) {
	found := false
	for _, n := range s.nodes {
		if n.storages[name] != nil {
			found = true
		}
	}
	if !found {
		return nil, fmt.Sprintf("storage '%s' does not exist", name)
	}
	st := s.storageOn(nodeName, name)
	if st == nil {
		return nil, fmt.Sprintf("storage '%s' is not available on node '%s'", name, nodeName)
	}
	if st.disabled {
		return nil, fmt.Sprintf("storage '%s' is disabled", name)
	}
	if st.offline {
		return nil, fmt.Sprintf("storage '%s' is not online", name)
	}
	if content != "" && !contains(st.content, content) {
		switch content {
		case "images":
			return nil, fmt.Sprintf("storage '%s' does not support vm images", name)
		case "backup":
			return nil, fmt.Sprintf("storage '%s' does not support backups", name)
		}
		return nil, fmt.Sprintf("storage '%s' does not support content type '%s'", name, content)
	}
	return st, ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (st *storage) free() int64 { return st.total - st.used }

// alloc allocates a volume on a storage; it fails like LVM when full.
func (st *storage) alloc(volid string, size int64, vmid int, ctime int64, charge bool) string {
	if charge && size > st.free() {
		return fmt.Sprintf("not enough free space (%d < %d)", st.free(), size)
	}
	st.volumes[volid] = &volume{volid: volid, format: "raw", size: size, vmid: vmid, content: "images", ctime: ctime}
	if charge {
		st.used += size
	}
	return ""
}

func (st *storage) release(volid string) {
	if v, ok := st.volumes[volid]; ok {
		delete(st.volumes, volid)
		if !strings.Contains(volid, "/") || v.content == "backup" { // linked clones cost nothing
			st.used -= v.size
			if st.used < 0 {
				st.used = 0
			}
		}
	}
}

// nextDiskName picks vm-<vmid>-disk-<n> not yet used on the storage.
func nextDiskName(st *storage, vmid int) string {
	for i := 0; ; i++ {
		name := fmt.Sprintf("vm-%d-disk-%d", vmid, i)
		taken := false
		for volid := range st.volumes {
			if strings.HasSuffix(volid, ":"+name) || strings.HasSuffix(volid, "/"+name) {
				taken = true
			}
		}
		if !taken {
			return name
		}
	}
}

// freeDisks releases every volume of a VM on its node.
func (s *Sim) freeDisks(m *vm) {
	n := s.nodes[m.node]
	if n == nil {
		return
	}
	for _, st := range n.storages {
		for volid, v := range st.volumes {
			if v.vmid == m.vmid && v.content == "images" {
				st.release(volid)
			}
		}
	}
}

// macFor returns a new random MAC in Proxmox's BC:24:11 prefix, as PVE
// generates for a new or cloned NIC (a re-clone to the same VMID gets a
// different MAC, as on real PVE). Callers hold s.mu.
func (s *Sim) macFor(_, _ int) string {
	n := s.rng.IntN(1 << 24)
	return fmt.Sprintf("BC:24:11:%02X:%02X:%02X", n>>16, (n>>8)&0xff, n&0xff)
}

// newMACs replaces the MAC of every netN.
func (s *Sim) newMACs(conf map[string]string, vmid int) {
	for k, v := range conf {
		if !strings.HasPrefix(k, "net") {
			continue
		}
		idx, err := strconv.Atoi(k[3:])
		if err != nil {
			continue
		}
		parts := strings.Split(v, ",")
		for i, p := range parts {
			if model, _, ok := strings.Cut(p, "="); ok && (model == "virtio" || model == "e1000" || model == "vmxnet3" || model == "rtl8139" || model == "macaddr") {
				parts[i] = model + "=" + s.macFor(vmid, idx)
			} else if i == 0 && !ok {
				parts[i] = p + "=" + s.macFor(vmid, idx)
			}
		}
		conf[k] = strings.Join(parts, ",")
	}
}

// startFailed is the exit status of a start whose QEMU did not come up
// (qemu-server vm_start: "start failed: QEMU exited with code 1").
const startFailed = "start failed: QEMU exited with code 1"

var netKeyRe = regexp.MustCompile(`^net(\d+)$`)

// missingBridge returns the first netN (by index) whose bridge the VM's node
// does not have, with its NIC model and that bridge; bridge is "" when every
// bridge exists (a netN without bridge= is user-mode networking: no tap).
func (s *Sim) missingBridge(m *vm) (key, model, bridge string) {
	n := s.nodes[m.node]
	type nic struct {
		idx                int
		key, model, bridge string
	}
	var nics []nic
	for k, v := range m.conf {
		sm := netKeyRe.FindStringSubmatch(k)
		if sm == nil {
			continue
		}
		idx, _ := strconv.Atoi(sm[1])
		x := nic{idx: idx, key: k}
		for i, part := range strings.Split(v, ",") {
			pk, pv, _ := strings.Cut(part, "=")
			switch {
			case pk == "bridge":
				x.bridge = pv
			case pk == "model":
				x.model = pv
			case i == 0:
				x.model = pk
			}
		}
		if x.bridge != "" {
			nics = append(nics, x)
		}
	}
	sort.Slice(nics, func(i, j int) bool { return nics[i].idx < nics[j].idx })
	for _, x := range nics {
		if n == nil || !contains(n.bridges, x.bridge) {
			return x.key, x.model, x.bridge
		}
	}
	return "", "", ""
}

// bridgeMissingLog is what a start task logs when a NIC's bridge is missing:
// pve-bridge (QEMU's tap network script) dies in pve-common's tap_plug, and
// QEMU reports the script's failure.
func bridgeMissingLog(vmid int, key, model, bridge string) []string {
	vhost := ""
	if model == "virtio" {
		vhost = ",vhost=on"
	}
	return []string{
		fmt.Sprintf("bridge '%s' does not exist", bridge),
		fmt.Sprintf("kvm: -netdev type=tap,id=%s,ifname=tap%di%s,script=/usr/libexec/qemu-server/pve-bridge,downscript=/usr/libexec/qemu-server/pve-bridgedown%s: network script /usr/libexec/qemu-server/pve-bridge failed with status 512",
			key, vmid, strings.TrimPrefix(key, "net"), vhost),
	}
}

// boots says whether a start (the one create, restore and rollback with
// start=1 hand to vm_start) brings the guest up: not when it never reaches
// running, nor when a bridge of its NICs is missing.
func (s *Sim) boots(m *vm) bool {
	_, _, bridge := s.missingBridge(m)
	return !m.neverRunning && bridge == ""
}
