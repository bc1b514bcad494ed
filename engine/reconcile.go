package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pvectl/pvectl/providers/dns"
	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
)

// ReconcileInterval is the reconcile task's default interval
// (tasks.intervals.reconcile overrides it; 0 disables it).
const ReconcileInterval = time.Hour

// Finding kinds, in the order pvectl orphans lists them.
const (
	// FindingUnknownVM: a PVE VM in the VMID range, or carrying pvectl's
	// tag, that no record holds.
	FindingUnknownVM = "unknown_vm"
	// FindingVMIDConflict: a record's VMID is a PVE VM that carries another
	// service's marker, or none.
	FindingVMIDConflict = "vmid_conflict"
	// FindingVMMissing: a ready, suspended or error_terminate record whose
	// VM is not in PVE.
	FindingVMMissing = "vm_missing"
	// FindingDrift: a ready VM's config differs from its product or record.
	FindingDrift = "drift"
	// FindingIPConflict: an address in a VM's IP set that another record holds.
	FindingIPConflict = "ip_conflict"
	// FindingIPUnowned: an address in a VM's IP set that no record holds.
	FindingIPUnowned = "ip_unowned"
	// FindingDNS: a record pvectl published that the zone's server no
	// longer answers as published.
	FindingDNS = "dns_drift"
)

var findingOrder = []string{FindingUnknownVM, FindingVMIDConflict, FindingVMMissing, FindingDrift, FindingIPConflict, FindingIPUnowned, FindingDNS}

// FindingKinds lists the kinds of finding, in report order.
func FindingKinds() []string { return slices.Clone(findingOrder) }

// Finding is one row of pvectl orphans (stable JSON shape, docs/monitoring.md).
type Finding struct {
	Kind      string     `json:"kind"`
	ServiceID string     `json:"service_id,omitempty"`
	VMID      int        `json:"vmid,omitempty"`
	Node      string     `json:"node,omitempty"`
	Detail    string     `json:"detail"`
	Fix       string     `json:"fix"`
	FirstSeen *time.Time `json:"first_seen,omitempty"` // when a reconcile run first saw it; null when none did yet
	key       string
}

// Reconciliation is what one look at PVE and DNS found.
type Reconciliation struct {
	CheckedAt time.Time `json:"checked_at"`
	Records   int       `json:"records"` // VM records looked at
	PVEVMs    int       `json:"pve_vms"` // PVE VMs (templates left out)
	Findings  []Finding `json:"findings"`
	// Errors are the parts that could not be checked (a config read failed,
	// a DNS server did not answer); what they would have found is unknown.
	Errors []string `json:"errors"`
	// Message is the reconcile task's summary (LastReconciliation only).
	Message string `json:"message,omitempty"`
}

// LastReconciliation is what the last reconcile run found, from the store:
// no PVE or DNS is contacted. CheckedAt is zero when the task never ran.
func (e *Engine) LastReconciliation(ctx context.Context) (Reconciliation, error) {
	r := Reconciliation{Findings: []Finding{}, Errors: []string{}}
	last, err := e.Store.TaskRunLast(ctx)
	if err != nil {
		return r, err
	}
	if run, ok := last["reconcile"]; ok {
		r.CheckedAt, r.Records, r.Message = run.StartedAt.UTC(), run.Processed, run.Message
	}
	rows, err := e.Store.Findings(ctx)
	if err != nil {
		return r, err
	}
	for _, row := range rows {
		f := findingOf(row)
		t := row.FirstSeen.UTC()
		f.FirstSeen = &t
		r.Findings = append(r.Findings, f)
	}
	sortFindings(r.Findings)
	return r, nil
}

// ReconcileTask compares PVE and DNS with the store and reports what does
// not match. It never changes anything: every finding names the command
// that would fix it, for an admin to decide.
func ReconcileTask() Task {
	return Task{
		Name:            "reconcile",
		Description:     "report orphans and drift (PVE VMs no record knows, records whose VM is gone, ready VMs that differ from their product, stray IP set addresses, DNS records that changed); changes nothing",
		DefaultInterval: ReconcileInterval,
		Run: func(ctx context.Context, e *Engine) (TaskCounts, error) {
			return e.reconcileRun(ctx)
		},
	}
}

// reconcileRun is one run of the task: look, store the findings (first
// seen kept), and print a line per finding that is new or resolved.
func (e *Engine) reconcileRun(ctx context.Context) (TaskCounts, error) {
	log := e.Live.Logger()
	n, err := e.Store.VMsWithVMID(ctx)
	if err != nil {
		return TaskCounts{}, err
	}
	if n == 0 {
		// An idle install connects to nothing; pvectl orphans still looks.
		msg := "no VM record has a VMID; nothing to reconcile (pvectl orphans looks anyway)"
		log.Debug().Str("task", "reconcile").Msg("reconcile: " + msg)
		if _, _, err := e.Store.FindingsReplace(ctx, nil, e.Clock.Now()); err != nil {
			return TaskCounts{}, err
		}
		return TaskCounts{Message: msg}, nil
	}
	r, err := e.Reconcile(ctx)
	if err != nil {
		return TaskCounts{}, err
	}
	rows := make([]store.Finding, 0, len(r.Findings))
	for _, f := range r.Findings {
		rows = append(rows, store.Finding{Key: f.key, Kind: f.Kind, ServiceID: f.ServiceID, VMID: f.VMID, Node: f.Node, Detail: f.Detail, Fix: f.Fix})
	}
	added, resolved, err := e.Store.FindingsReplace(ctx, rows, e.Clock.Now())
	if err != nil {
		return TaskCounts{}, err
	}
	for _, f := range added {
		log.Warn().Str("task", "reconcile").Msg("reconcile: new: " + findingOf(f).Line() + " — fix: " + f.Fix)
	}
	for _, f := range resolved {
		log.Info().Str("task", "reconcile").Msg("reconcile: resolved: " + findingOf(f).Line())
	}
	for _, msg := range r.Errors {
		log.Warn().Str("task", "reconcile").Msg("reconcile: not checked: " + msg)
	}
	msg := r.Summary()
	ev := log.Debug()
	if len(added)+len(resolved) > 0 {
		ev = log.Info()
	}
	ev.Str("task", "reconcile").Msg("reconcile: " + msg)
	return TaskCounts{Processed: r.Records, Errors: len(r.Errors), Message: msg}, nil
}

func findingOf(f store.Finding) Finding {
	return Finding{Kind: f.Kind, ServiceID: f.ServiceID, VMID: f.VMID, Node: f.Node, Detail: f.Detail, Fix: f.Fix, key: f.Key}
}

// Line is the finding as one line of text: kind, whom it is about, what.
func (f Finding) Line() string {
	var who []string
	if f.ServiceID != "" {
		who = append(who, f.ServiceID)
	}
	if f.VMID != 0 {
		v := fmt.Sprintf("VMID %d", f.VMID)
		if f.Node != "" {
			v += " on " + f.Node
		}
		who = append(who, v)
	}
	return fmt.Sprintf("%s  %s: %s", f.Kind, strings.Join(who, ", "), f.Detail)
}

// kindCounts counts the findings by kind: "1 unknown_vm, 2 drift".
func (r Reconciliation) kindCounts() string {
	counts := map[string]int{}
	for _, f := range r.Findings {
		counts[f.Kind]++
	}
	var parts []string
	for _, k := range findingOrder {
		if counts[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
		}
	}
	return strings.Join(parts, ", ")
}

// Summary says what was checked and counts the findings by kind.
func (r Reconciliation) Summary() string {
	s := fmt.Sprintf("checked %d record(s) and %d PVE VM(s): ", r.Records, r.PVEVMs)
	if len(r.Findings) == 0 {
		s += "no findings"
	} else {
		s += fmt.Sprintf("%d finding(s): %s (pvectl orphans)", len(r.Findings), r.kindCounts())
	}
	if len(r.Errors) > 0 {
		s += fmt.Sprintf("; %d part(s) not checked", len(r.Errors))
	}
	return s
}

// settled are the states in which a record's VM must exist in PVE and no
// pipeline is working on it; records in any other state are left to their
// pipeline and to stuck detection.
var settled = []states.State{states.Ready, states.Suspended, states.ErrorTerminate}

// Reconcile looks at PVE (one cluster listing, then each settled VM's
// config, firewall and IP set) and at DNS (each published record of a
// ready or suspended VM) and returns what does not match the store. It
// changes nothing, in PVE, DNS or the store.
func (e *Engine) Reconcile(ctx context.Context) (Reconciliation, error) {
	r := Reconciliation{CheckedAt: e.Clock.Now().UTC(), Findings: []Finding{}, Errors: []string{}}
	env, err := e.Env(ctx)
	if err != nil {
		return r, fmt.Errorf("prepare step environment: %w", err)
	}
	if env.PVE == nil {
		return r, errors.New("no PVE client configured")
	}
	vms, err := e.Store.VMList(ctx, store.VMFilter{})
	if err != nil {
		return r, err
	}
	owners, err := e.Store.VMIDOwners(ctx)
	if err != nil {
		return r, err
	}
	ipOwners, err := e.Store.IPOwners(ctx)
	if err != nil {
		return r, err
	}
	res, err := env.PVE.ClusterResources(ctx, proxmox.ResourceVM)
	if err != nil {
		return r, fmt.Errorf("read the cluster's VMs (GET /cluster/resources): %w", err)
	}
	listed := map[int]proxmox.Resource{}
	for _, v := range res {
		if v.IsVM() && !v.Template {
			listed[v.VMID] = v
		}
	}
	r.PVEVMs = len(listed)

	var mu sync.Mutex
	add := func(f Finding) {
		mu.Lock()
		defer mu.Unlock()
		r.Findings = append(r.Findings, f)
	}
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		r.Errors = append(r.Errors, fmt.Sprintf(format, args...))
	}

	// Each check reads PVE or DNS for one VM; they run with process_vms'
	// concurrency.
	var jobs []func()
	rg := e.Config.VMIDRange
	for vmid, v := range listed {
		if _, known := owners[vmid]; known {
			continue
		}
		inRange := vmid >= rg.Min && vmid <= rg.Max
		if !inRange && !slices.Contains(v.Tags, states.MarkerTag) {
			continue // another tenant's VM: not ours to judge
		}
		jobs = append(jobs, func() { e.checkUnknown(ctx, env, v, inRange, add, fail) })
	}
	for _, vm := range vms {
		if vm.VMID == 0 || !slices.Contains(settled, states.State(vm.Status)) {
			continue
		}
		r.Records++
		v, ok := listed[vm.VMID]
		if !ok {
			add(missingFinding(vm))
			continue
		}
		jobs = append(jobs, func() { e.checkRecord(ctx, env, vm, v, ipOwners, add, fail) })
	}
	runJobs(jobs, e.Config.Tasks.ProcessVMs.Concurrency)

	sortFindings(r.Findings)
	r.Findings = slices.CompactFunc(r.Findings, func(a, b Finding) bool { return a.key == b.key })
	slices.Sort(r.Errors)
	if prev, err := e.Store.Findings(ctx); err == nil {
		first := map[string]time.Time{}
		for _, p := range prev {
			first[p.Key] = p.FirstSeen
		}
		for i, f := range r.Findings {
			if t, ok := first[f.key]; ok {
				t = t.UTC()
				r.Findings[i].FirstSeen = &t
			}
		}
	}
	return r, nil
}

// sortFindings orders findings by kind (report order), service, VMID.
func sortFindings(fs []Finding) {
	slices.SortFunc(fs, func(a, b Finding) int {
		if c := slices.Index(findingOrder, a.Kind) - slices.Index(findingOrder, b.Kind); c != 0 {
			return c
		}
		if c := strings.Compare(a.ServiceID, b.ServiceID); c != 0 {
			return c
		}
		if c := a.VMID - b.VMID; c != 0 {
			return c
		}
		return strings.Compare(a.key, b.key)
	})
}

// runJobs runs fns with at most n at a time.
func runJobs(fns []func(), n int) {
	sem := make(chan struct{}, max(1, n))
	var wg sync.WaitGroup
	for _, fn := range fns {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			fn()
		})
	}
	wg.Wait()
}

// checkUnknown reports a PVE VM no record holds, with what its config
// says of its origin (pvectl's marker, its name) and the addresses it uses.
func (e *Engine) checkUnknown(ctx context.Context, env *states.Env, v proxmox.Resource, inRange bool, add func(Finding), fail func(string, ...any)) {
	f := Finding{Kind: FindingUnknownVM, VMID: v.VMID, Node: v.Node, key: fmt.Sprintf("%s|%d", FindingUnknownVM, v.VMID)}
	where := "in pvectl's VMID range"
	if !inRange {
		where = "tagged " + states.MarkerTag + ", outside pvectl's VMID range"
	}
	name := v.Name
	if name == "" {
		name = "(no name)"
	}
	f.Detail = fmt.Sprintf("PVE VM %q (%s), %s, that no record holds", name, v.Status, where)
	f.Fix = fmt.Sprintf("inspect it (ssh %s qm config %d); if nobody needs it: ssh %s qm destroy %d --purge", v.Node, v.VMID, v.Node, v.VMID)
	if s, ok, err := states.StrayOf(ctx, env, v); err != nil {
		fail("VM %d on %s: %v", v.VMID, v.Node, err)
	} else if ok {
		f.Detail = fmt.Sprintf("PVE VM %q (%s), %s, carries pvectl's marker (%s) but no record holds it", name, v.Status, where, s)
		f.Fix = "the database lost this record (restored from an old copy?): restore the database, or if the service is gone: " + f.Fix +
			"; until then its addresses are kept out of allocation"
	}
	add(f)
}

// missingFinding is a settled record whose VM is not in PVE.
func missingFinding(vm store.VM) Finding {
	f := Finding{Kind: FindingVMMissing, ServiceID: vm.ServiceID, VMID: vm.VMID, Node: vm.Node,
		key: fmt.Sprintf("%s|%s", FindingVMMissing, vm.ServiceID)}
	f.Detail = fmt.Sprintf("the record is %s but PVE has no VM %d", vm.Status, vm.VMID)
	if vm.Status == string(states.ErrorTerminate) {
		f.Fix = fmt.Sprintf("the VM is already gone: pvectl reset-status %s remove (releases its addresses and VMID without contacting PVE)", vm.ServiceID)
	} else {
		f.Fix = fmt.Sprintf("if the service is still paid for, deploy it again: pvectl reset-status %s creation; if not: pvectl reset-status %s remove", vm.ServiceID, vm.ServiceID)
	}
	return f
}

// checkRecord checks a settled record whose VMID PVE lists: the VM is the
// record's (its marker), and for a ready VM, its config, firewall and IP
// set match the product and the record, and its DNS records answer as
// published. A record that changed while it was read is left for the
// next run.
func (e *Engine) checkRecord(ctx context.Context, env *states.Env, vm store.VM, v proxmox.Resource, ipOwners map[string]string, add func(Finding), fail func(string, ...any)) {
	who := fmt.Sprintf("%s (VM %d on %s)", vm.ServiceID, vm.VMID, v.Node)
	ref := proxmox.VMRef{Node: v.Node, VMID: vm.VMID}
	cfg, err := env.PVE.VMConfig(ctx, ref)
	if err != nil {
		if !proxmox.IsNotFound(err) {
			fail("%s: read config: %v", who, err)
		}
		return // destroyed since the listing: the next run sees it missing
	}
	if !states.Ours(cfg, vm) {
		svc, _ := states.MarkerService(cfg)
		f := Finding{Kind: FindingVMIDConflict, ServiceID: vm.ServiceID, VMID: vm.VMID, Node: v.Node,
			key: fmt.Sprintf("%s|%s", FindingVMIDConflict, vm.ServiceID)}
		if svc != "" {
			f.Detail = fmt.Sprintf("the record's VM %d carries the marker of service %s, not %s", vm.VMID, svc, vm.ServiceID)
		} else {
			f.Detail = fmt.Sprintf("the record's VM %d (%q) carries no pvectl marker: it was replaced or re-created outside pvectl", vm.VMID, v.Name)
		}
		f.Fix = fmt.Sprintf("find out whose VM %d is (ssh %s qm config %d) before any pvectl action on %s; pvectl leaves it alone meanwhile", vm.VMID, v.Node, vm.VMID, vm.ServiceID)
		add(f)
		return
	}
	if vm.Status != string(states.Ready) {
		if vm.Status == string(states.Suspended) {
			e.checkDNS(ctx, vm, add, fail)
		}
		return
	}
	p, ok := e.Config.Products[vm.Product]
	if !ok {
		fail("%s: product %q is not in the config", who, vm.Product)
		return
	}
	ips, err := e.Store.IPsForVM(ctx, vm.ID)
	if err != nil {
		fail("%s: read its addresses: %v", who, err)
		return
	}
	drift := states.ConfigDrift(p, vm, cfg, ips, e.Clock.Now())
	fw, extra, err := states.FirewallDrift(ctx, env.PVE, p, vm, ips)
	if err != nil && !proxmox.IsNotFound(err) {
		fail("%s: %v", who, err)
	}
	drift = append(drift, fw...)
	// A record that moved on while PVE was read (a change-package, a
	// suspend) is judged at the next run, not against its old product.
	if now, err := e.Store.VMGet(ctx, vm.ID); err != nil || now.Version != vm.Version {
		return
	}
	for _, d := range drift {
		add(Finding{Kind: FindingDrift, ServiceID: vm.ServiceID, VMID: vm.VMID, Node: v.Node,
			Detail: d.Aspect + ": " + d.Detail,
			Fix: fmt.Sprintf("apply product %s again: pvectl reset-status %s change_package (runs the whole change-package: the VM is stopped and started)",
				vm.Product, vm.ServiceID),
			key: fmt.Sprintf("%s|%s|%s", FindingDrift, vm.ServiceID, d.Aspect)})
	}
	for _, a := range extra {
		f := Finding{ServiceID: vm.ServiceID, VMID: vm.VMID, Node: v.Node, key: fmt.Sprintf("ip|%s|%s", vm.ServiceID, a)}
		del := fmt.Sprintf("pvesh delete /nodes/%s/qemu/%d/firewall/ipset/%s/%s", v.Node, vm.VMID, states.IPSetName, a)
		if other, held := ipOwners[a]; held {
			f.Kind = FindingIPConflict
			f.Detail = fmt.Sprintf("IP set %s allows %s, which belongs to %s", states.IPSetName, a, other)
			f.Fix = fmt.Sprintf("the VM may use %s's address: %s (or pvectl reset-status %s change_package)", other, del, vm.ServiceID)
		} else {
			f.Kind = FindingIPUnowned
			f.Detail = fmt.Sprintf("IP set %s allows %s, which no record holds", states.IPSetName, a)
			f.Fix = fmt.Sprintf("%s (or pvectl reset-status %s change_package)", del, vm.ServiceID)
		}
		add(f)
	}
	e.checkDNS(ctx, vm, add, fail)
}

func dnsKey(zone, name, typ, value string) string {
	return dns.Record{Zone: zone, Name: name, Type: typ, Value: value}.Key()
}

// checkDNS reports each record pvectl published for vm that the zone's
// server does not answer as published.
func (e *Engine) checkDNS(ctx context.Context, vm store.VM, add func(Finding), fail func(string, ...any)) {
	if len(DNSZones(e.Config)) == 0 || vm.DNSDirty {
		return // a dirty VM's records are being retried by process_vms
	}
	view, err := e.DNSShow(ctx, vm)
	if err != nil {
		fail("%s: DNS records: %v", vm.ServiceID, err)
		return
	}
	// One finding per name and type: every value pvectl published there is
	// expected (a VM with two IPv4 addresses has two A records at its name).
	type group struct {
		zone, name, typ string
		published       []string
		answers         []string
		missing         bool
	}
	var groups []*group
	byKey := map[string]*group{}
	for _, rec := range view.Records {
		if rec.State != "published" {
			continue
		}
		k := dnsKey(rec.Zone, rec.Name, rec.Type, "")
		g, ok := byKey[k]
		if !ok {
			if rec.Query != "" {
				fail("%s: query %s %s: %s", vm.ServiceID, rec.Name, rec.Type, rec.Query)
				continue
			}
			g = &group{zone: rec.Zone, name: rec.Name, typ: rec.Type, answers: rec.Answers}
			byKey[k] = g
			groups = append(groups, g)
		}
		g.published = append(g.published, rec.Value)
		g.missing = g.missing || rec.Present == nil || !*rec.Present
	}
	for _, g := range groups {
		ours := map[string]bool{}
		for _, v := range g.published {
			ours[dnsKey(g.zone, g.name, g.typ, v)] = true
		}
		foreign := slices.ContainsFunc(g.answers, func(v string) bool { return !ours[dnsKey(g.zone, g.name, g.typ, v)] })
		if !g.missing && !foreign {
			continue
		}
		answers := "nothing"
		if len(g.answers) > 0 {
			answers = strings.Join(g.answers, ", ")
		}
		slices.Sort(g.published)
		add(Finding{Kind: FindingDNS, ServiceID: vm.ServiceID, VMID: vm.VMID, Node: vm.Node,
			Detail: fmt.Sprintf("%s %s answers %s; pvectl published %s", g.name, g.typ, answers, strings.Join(g.published, ", ")),
			Fix:    fmt.Sprintf("publish the VM's records again: pvectl reset-status %s set_dns_records", vm.ServiceID),
			key:    fmt.Sprintf("%s|%s|%s|%s", FindingDNS, vm.ServiceID, dns.Normalize(g.name), strings.ToUpper(g.typ))})
	}
}
