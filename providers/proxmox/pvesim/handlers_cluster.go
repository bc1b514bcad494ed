package pvesim

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

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
			if p := s.poolOf(id); p != "" {
				e["pool"] = p
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
