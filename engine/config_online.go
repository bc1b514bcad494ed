package engine

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pvectl/pvectl/config"
	"github.com/pvectl/pvectl/providers/proxmox"
)

// OnlineCheck is one line of pvectl config check --online.
type OnlineCheck struct {
	What   string `json:"what"`   // pve, node, template, storage, bridge, dns, privileges
	Status string `json:"status"` // ok, fail, skip
	Detail string `json:"detail"`
}

// Online check statuses.
const (
	CheckOK   = "ok"
	CheckFail = "fail"
	CheckSkip = "skip"
)

// productNodes are the nodes a product's VMs may be created on: its
// target_node, or with auto (or none) the nodes of the IP pools.
func productNodes(c *config.Config, p config.Product) []string {
	if p.TargetNode != "" && p.TargetNode != "auto" {
		return []string{p.TargetNode}
	}
	seen := map[string]bool{}
	for _, pool := range c.IPPools {
		for _, n := range pool.Nodes {
			seen[n] = true
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// CheckOnline asks PVE (and the DNS servers) whether what the config names
// exists: the token is accepted and holds the privileges pvectl needs
// (NeededPrivileges), every node named is online, every
// template is a template, every storage a product uses is on its nodes and
// holds its content, every bridge is on its nodes, every DNS zone answers.
// One line each; it changes nothing.
func (e *Engine) CheckOnline(ctx context.Context) []OnlineCheck {
	c := e.Config
	var out []OnlineCheck
	add := func(what, status, format string, args ...any) {
		out = append(out, OnlineCheck{What: what, Status: status, Detail: fmt.Sprintf(format, args...)})
	}
	env, err := e.Env(ctx)
	if err != nil || env.PVE == nil {
		add("pve", CheckFail, "no PVE client: %v", err)
		return out
	}
	pve := env.PVE
	start := time.Now()
	v, err := pve.Version(ctx)
	if err != nil {
		if proxmox.IsAuth(err) {
			add("pve", CheckFail, "%s refuses token %s (check proxmox.token_id and token_secret): %v", c.Proxmox.URL, c.Proxmox.TokenID, err)
		} else {
			add("pve", CheckFail, "%s unreachable: %v", c.Proxmox.URL, err)
		}
		return out // nothing else can be asked
	}
	add("pve", CheckOK, "%s answers as PVE %s with token %s (%dms)", c.Proxmox.URL, v, c.Proxmox.TokenID, time.Since(start).Milliseconds())
	e.checkPrivileges(ctx, pve, add)

	res, err := pve.ClusterResources(ctx, proxmox.ResourceAll)
	if err != nil {
		add("cluster", CheckFail, "GET /cluster/resources: %v", err)
		return out
	}
	online := map[string]string{}             // node → status
	storages := map[string]proxmox.Resource{} // node/storage
	for _, r := range res {
		switch r.Type {
		case "node":
			online[r.Node] = r.Status
		case "storage":
			storages[r.Node+"/"+r.Storage] = r
		}
	}

	// Nodes.
	nodes := map[string][]string{} // node → who names it
	name := func(n, who string) {
		if n != "" && n != "auto" {
			nodes[n] = append(nodes[n], who)
		}
	}
	for _, pn := range c.ProductNames() {
		p := c.Products[pn]
		name(p.TargetNode, "product "+pn+" target_node")
		name(p.Template.Node, "product "+pn+" template")
		for _, tn := range p.TemplateNames() {
			name(p.Templates[tn].Node, "product "+pn+" template "+tn)
		}
	}
	for _, pool := range c.IPPools {
		for _, n := range pool.Nodes {
			name(n, "ip pool "+pool.Name)
		}
	}
	nodeNames := make([]string, 0, len(nodes))
	for n := range nodes {
		nodeNames = append(nodeNames, n)
	}
	sort.Strings(nodeNames)
	for _, n := range nodeNames {
		who := strings.Join(slices.Compact(nodes[n]), ", ")
		switch st, ok := online[n]; {
		case !ok:
			add("node", CheckFail, "%s (named by %s) is not in the cluster", n, who)
		case st != "online":
			add("node", CheckFail, "%s (named by %s) is %s", n, who, st)
		default:
			add("node", CheckOK, "%s online", n)
		}
	}

	// Templates.
	for _, pn := range c.ProductNames() {
		p := c.Products[pn]
		tpls := map[string]config.Template{"": p.Template}
		if names := p.TemplateNames(); len(names) > 0 {
			tpls = map[string]config.Template{}
			for _, tn := range names {
				tpls[tn] = p.Templates[tn]
			}
		}
		keys := make([]string, 0, len(tpls))
		for k := range tpls {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, tn := range keys {
			t := tpls[tn]
			label := "product " + pn
			if tn != "" {
				label += " template " + tn
			}
			cfg, err := pve.VMConfig(ctx, proxmox.VMRef{Node: t.Node, VMID: t.VMID})
			switch {
			case proxmox.IsNotFound(err):
				add("template", CheckFail, "%s: VM %d on %s does not exist", label, t.VMID, t.Node)
			case err != nil:
				add("template", CheckFail, "%s: VM %d on %s: %v", label, t.VMID, t.Node, err)
			case cfg.Values["template"] != "1":
				add("template", CheckFail, "%s: VM %d on %s is not a template (convert it in PVE, or fix the VMID)", label, t.VMID, t.Node)
			default:
				add("template", CheckOK, "%s: VM %d on %s (%s)", label, t.VMID, t.Node, cfg.Values["name"])
			}
		}
	}

	// Storages and bridges on the nodes each product deploys to.
	type need struct{ node, storage, content, who string }
	var needs []need
	bridges := map[string]map[string][]string{} // node → bridge → who
	wantBridge := func(node, bridge, who string) {
		if bridges[node] == nil {
			bridges[node] = map[string][]string{}
		}
		bridges[node][bridge] = append(bridges[node][bridge], who)
	}
	for _, pn := range c.ProductNames() {
		p := c.Products[pn]
		for _, n := range productNodes(c, p) {
			needs = append(needs, need{n, p.SystemDisk.Storage, "images", "product " + pn + " system_disk"})
			if p.AdditionalDisk.SizeGB > 0 {
				needs = append(needs, need{n, p.AdditionalDisk.Storage, "images", "product " + pn + " additional_disk"})
			}
			if p.BackupQuota > 0 {
				needs = append(needs, need{n, c.BackupStorageOf(p), "backup", "product " + pn + " backups"})
			}
			wantBridge(n, p.Network.Bridge, "product "+pn)
		}
	}
	for _, pool := range c.IPPools {
		for _, n := range pool.Nodes {
			wantBridge(n, pool.Bridge, "ip pool "+pool.Name)
		}
	}
	seenNeed := map[string]bool{}
	for _, nd := range needs {
		if nd.storage == "" {
			continue
		}
		key := nd.node + "/" + nd.storage + "/" + nd.content
		if seenNeed[key] {
			continue
		}
		seenNeed[key] = true
		st, ok := storages[nd.node+"/"+nd.storage]
		switch {
		case !ok:
			add("storage", CheckFail, "%s on %s (for %s) does not exist", nd.storage, nd.node, nd.who)
		case st.Status != "available":
			add("storage", CheckFail, "%s on %s (for %s) is %s", nd.storage, nd.node, nd.who, st.Status)
		case !slices.Contains(st.Content, nd.content):
			add("storage", CheckFail, "%s on %s (for %s) does not hold %s (content: %s)", nd.storage, nd.node, nd.who, nd.content, strings.Join(st.Content, ","))
		default:
			add("storage", CheckOK, "%s on %s holds %s", nd.storage, nd.node, nd.content)
		}
	}
	bnodes := make([]string, 0, len(bridges))
	for n := range bridges {
		bnodes = append(bnodes, n)
	}
	sort.Strings(bnodes)
	for _, n := range bnodes {
		if _, ok := online[n]; !ok {
			continue // reported above
		}
		have, err := pve.NodeBridges(ctx, n)
		if err != nil {
			add("bridge", CheckFail, "cannot list the bridges of %s: %v", n, err)
			continue
		}
		names := make([]string, 0, len(bridges[n]))
		for b := range bridges[n] {
			names = append(names, b)
		}
		sort.Strings(names)
		for _, b := range names {
			who := strings.Join(slices.Compact(bridges[n][b]), ", ")
			if slices.Contains(have, b) {
				add("bridge", CheckOK, "%s on %s", b, n)
			} else {
				add("bridge", CheckFail, "%s on %s (for %s) does not exist; %s has: %s", b, n, who, n, strings.Join(have, ", "))
			}
		}
	}

	// DNS zones.
	for _, z := range e.CheckDNSZones(ctx) {
		if z.OK {
			add("dns", CheckOK, "%s at %s accepts signed updates with key %s", z.Zone, z.Server, z.KeyName)
		} else {
			add("dns", CheckFail, "%s at %s: %s", z.Zone, z.Server, z.Error)
		}
	}
	return out
}

// PrivilegeNeed is a privilege pvectl's token needs on an ACL path, and what
// for.
type PrivilegeNeed struct {
	Path string
	Priv string
	Why  string
}

// NeededPrivileges lists the privileges pvectl's token needs for this
// config, by the PVE calls the engine makes: deploy (clone the templates,
// configure and resize, cloud-init, firewall IP set, start), migrate,
// power actions, terminate; snapshots and backups when a product has a
// quota; suspend's access revocation when it is on; each disk and backup
// storage; each node's status; each bridge (PVE 8 checks SDN.Use on the
// bridge's local zone when a NIC is set).
func NeededPrivileges(c *config.Config) []PrivilegeNeed {
	var out []PrivilegeNeed
	seen := map[string]bool{}
	need := func(path, why string, privs ...string) {
		for _, p := range privs {
			if k := path + " " + p; !seen[k] {
				seen[k] = true
				out = append(out, PrivilegeNeed{Path: path, Priv: p, Why: why})
			}
		}
	}
	need("/vms", "deploy, change, terminate", "VM.Allocate", "VM.Audit", "VM.Clone", "VM.Config.CPU", "VM.Config.Memory",
		"VM.Config.Disk", "VM.Config.Network", "VM.Config.Options", "VM.Config.Cloudinit", "VM.PowerMgmt", "VM.Migrate")
	snapshots, backups := false, false
	var storages, nodes, bridges []string
	for _, pn := range c.ProductNames() {
		p := c.Products[pn]
		tpls := []config.Template{p.Template}
		for _, tn := range p.TemplateNames() {
			tpls = append(tpls, p.Templates[tn])
		}
		for _, t := range tpls {
			if t.VMID > 0 {
				need(fmt.Sprintf("/vms/%d", t.VMID), "product "+pn+" template", "VM.Audit", "VM.Clone")
			}
		}
		snapshots = snapshots || p.SnapshotQuota > 0
		if p.BackupQuota > 0 {
			backups = true
			need("/storage/"+c.BackupStorageOf(p), "product "+pn+" backups", "Datastore.AllocateSpace", "Datastore.Allocate", "Datastore.Audit")
		}
		storages = append(storages, p.SystemDisk.Storage)
		if p.AdditionalDisk.SizeGB > 0 {
			storages = append(storages, p.AdditionalDisk.Storage)
		}
		nodes = append(nodes, productNodes(c, p)...)
		bridges = append(bridges, p.Network.Bridge)
	}
	if snapshots {
		need("/vms", "snapshots", "VM.Snapshot", "VM.Snapshot.Rollback")
	}
	if backups {
		need("/vms", "backups", "VM.Backup")
	}
	if c.Suspend.RevokeAccessOn() {
		need("/vms", "suspend's access revocation (suspend.revoke_access)", "Permissions.Modify")
		need("/pool", "suspend's access revocation (suspend.revoke_access)", "Pool.Allocate")
	}
	for _, pool := range c.IPPools {
		nodes = append(nodes, pool.Nodes...)
		bridges = append(bridges, pool.Bridge)
	}
	sort.Strings(storages)
	for _, st := range slices.Compact(storages) {
		if st != "" {
			need("/storage/"+st, "VM disks", "Datastore.AllocateSpace", "Datastore.Audit")
		}
	}
	sort.Strings(nodes)
	for _, n := range slices.Compact(nodes) {
		if n != "" && n != "auto" {
			need("/nodes/"+n, "node status", "Sys.Audit")
		}
	}
	sort.Strings(bridges)
	for _, b := range slices.Compact(bridges) {
		if b != "" {
			need("/sdn/zones/localnetwork/"+b, "VM network on bridge "+b, "SDN.Use")
		}
	}
	return out
}

// checkPrivileges asks PVE for the token's privileges on every path
// NeededPrivileges names: one FAIL line per missing privilege, one OK line
// when none is missing.
func (e *Engine) checkPrivileges(ctx context.Context, pve proxmox.Client, add func(what, status, format string, args ...any)) {
	needs := NeededPrivileges(e.Config)
	have := map[string]map[string]bool{}
	missing := 0
	paths := 0
	for _, n := range needs {
		privs, ok := have[n.Path]
		if !ok {
			var err error
			privs, err = pve.Permissions(ctx, n.Path)
			if err != nil {
				add("privileges", CheckFail, "cannot read the token's privileges on %s (GET /access/permissions): %v", n.Path, err)
				return
			}
			have[n.Path] = privs
			paths++
		}
		if !privs[n.Priv] {
			missing++
			add("privileges", CheckFail, "%s on %s missing (needed for %s)", n.Priv, n.Path, n.Why)
		}
	}
	if missing == 0 {
		add("privileges", CheckOK, "token %s holds all %d privilege(s) pvectl needs on %d path(s)", e.Config.Proxmox.TokenID, len(needs), paths)
	}
}
