package pvesim

import (
	"fmt"
	"strings"
	"time"
)

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
		// list_volumes: the first line of the .notes file; protected
		// only when the .protected file exists
		if notes, _, _ := strings.Cut(v.notes, "\n"); notes != "" {
			e["notes"] = notes
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
	// Content.pm real_volume_id
	if sid, _, ok := strings.Cut(volid, ":"); !ok {
		volid = st.name + ":" + volid
	} else if sid != st.name {
		return nil, paramErr("volume", fmt.Sprintf("storage ID mismatch (%s != %s)", sid, st.name))
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
			// vdisk_free -> Plugin::free_image
			_, volname, _ := strings.Cut(v.volid, ":")
			return fmt.Sprintf("cannot remove protected volume '%s' on '%s'", volname, st.name), nil
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

// volumeAccess is PVE::Storage::check_volume_access for a volume of a
// storage: Datastore.Allocate on the storage, or for a backup
// Datastore.AllocateSpace on the storage and VM.Backup on its guest.
func (c *call) volumeAccess(st *storage, v *volume) *apiError {
	if c.can("/storage/"+st.name, "Datastore.Allocate") {
		return nil
	}
	if v.content == "backup" && v.vmid > 0 {
		if e := c.check("/storage/"+st.name, "Datastore.AllocateSpace"); e != nil {
			return e
		}
		return c.check(fmt.Sprintf("/vms/%d", v.vmid), "VM.Backup")
	}
	return c.check("/storage/"+st.name, "Datastore.Allocate")
}

// hContentUpdate is PUT …/content/{volume} (Content.pm updateattributes):
// synchronous; notes and protected are files beside a backup archive
// (Plugin::update_volume_attribute), the protected count is limited per
// guest (PVE::Storage::update_volume_attribute).
func hContentUpdate(c *call) (any, *apiError) {
	st, err := c.contentStorage()
	if err != nil {
		return nil, err
	}
	v, err := c.findVolume(st)
	if err != nil {
		return nil, err
	}
	if e := c.volumeAccess(st, v); e != nil {
		return nil, e
	}
	for _, attr := range []string{"notes", "protected"} {
		if c.has(attr) && v.content != "backup" {
			return nil, serverErr(fmt.Sprintf("only backups support attribute '%s'", attr))
		}
	}
	if c.has("notes") {
		v.notes = c.str("notes")
	}
	if c.has("protected") {
		on := c.bool("protected")
		if on && !v.protected && v.vmid > 0 {
			if msg := c.protectedLimitErr(st, v.vmid); msg != "" {
				return nil, serverErr(msg)
			}
		}
		v.protected = on
	}
	return nil, nil
}

// hNodeNetwork is GET /nodes/{node}/network (permission: any user): the
// node's interfaces: a physical NIC (eno1) and its bridges, each bridge
// with that NIC as its port; "type" filters (bridge, any_bridge and
// any_local_bridge list the bridges, eth the NIC, the others nothing).
func hNodeNetwork(c *call) (any, *apiError) {
	n := c.s.nodes[c.vars["node"]]
	typ := c.str("type")
	out := []any{}
	if typ == "" || typ == "eth" {
		out = append(out, map[string]any{"iface": "eno1", "type": "eth", "active": 1, "exists": 1,
			"method": "manual", "method6": "manual", "families": []string{"inet"}, "priority": 1})
	}
	switch typ {
	case "", "bridge", "any_bridge", "any_local_bridge":
		for i, b := range n.bridges {
			out = append(out, map[string]any{"iface": b, "type": "bridge", "active": 1, "autostart": 1,
				"bridge_ports": "eno1", "bridge_stp": "off", "bridge_fd": "0", "method": "manual", "method6": "manual",
				"families": []string{"inet"}, "priority": 2 + i})
		}
	}
	return out, nil
}
