package states

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/pvectl/pvectl/providers/proxmox"
)

// Stray is a PVE VM in the configured VMID range that carries pvectl's
// marker (or tag) but that no record knows: what is left in PVE after the
// database was lost, restored from an old backup or replaced. Its addresses
// may be in use, so they are never handed out again.
type Stray struct {
	VMID      int
	Node      string
	ServiceID string // from the marker line; "" when only the tag is there
	Addresses []netip.Addr
}

func (s Stray) String() string {
	svc := s.ServiceID
	if svc == "" {
		svc = "?"
	}
	addrs := make([]string, 0, len(s.Addresses))
	for _, a := range s.Addresses {
		addrs = append(addrs, a.String())
	}
	return fmt.Sprintf("VMID %d on %s (service=%s, addresses: %s)", s.VMID, s.Node, svc, dashIfEmpty(strings.Join(addrs, ", ")))
}

// Strays is the startup safety net of a process_vms pass. The first step
// of the pass that hands out addresses looks for the stray VMs (once; steps
// running at the same time wait for that look) and the allocator skips
// every address they use. When PVE could not be asked, Err is set and no
// address is handed out in that pass. The warning is said once per pass.
type Strays struct {
	once sync.Once
	warn func(string)
	VMs  []Stray
	Err  error
	by   map[netip.Addr]Stray
}

// NewStrays returns a safety net that has not looked yet; warn receives
// its one warning line.
func NewStrays(warn func(string)) *Strays { return &Strays{warn: warn} }

// Look finds the stray VMs the first time it is called and returns the
// error of that look (the same error to every later caller).
func (s *Strays) Look(ctx context.Context, env *Env) error {
	if s == nil {
		return nil
	}
	s.once.Do(func() {
		s.VMs, s.Err = FindStrays(ctx, env)
		s.by = map[netip.Addr]Stray{}
		for _, v := range s.VMs {
			for _, a := range v.Addresses {
				s.by[a] = v
			}
		}
		if w := s.Warning(); w != "" && s.warn != nil {
			s.warn(w)
		}
	})
	return s.Err
}

// Holds reports whether a stray VM uses address a (false before Look).
func (s *Strays) Holds(a netip.Addr) bool {
	if s == nil {
		return false
	}
	_, ok := s.by[a]
	return ok
}

// Warning is the pass's one warning line, or "" when there is nothing to say.
func (s *Strays) Warning() string {
	switch {
	case s == nil:
		return ""
	case s.Err != nil:
		return "cannot look for PVE VMs pvectl created that no record knows (" + s.Err.Error() + "); no address is handed out in this pass"
	case len(s.VMs) == 0:
		return ""
	}
	list := make([]string, 0, len(s.VMs))
	for _, v := range s.VMs {
		list = append(list, v.String())
	}
	return fmt.Sprintf("%d PVE VM(s) carry pvectl's marker but no record knows them: %s; their addresses are kept out of allocation. "+
		"Was the database lost or restored from an old copy? See docs/troubleshooting.md (unknown pvectl VMs)",
		len(s.VMs), strings.Join(list, "; "))
}

// FindStrays lists the VMs in the configured VMID range that carry pvectl's
// marker line or tag and whose VMID no record holds (or holds for another
// service), with the addresses their cloud-init config and IP sets name.
// Templates are left out: they run nothing.
func FindStrays(ctx context.Context, env *Env) ([]Stray, error) {
	owners, err := env.Store.VMIDOwners(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the store's VMIDs: %w", err)
	}
	all, err := fleetResources(ctx, env, proxmox.ResourceVM)
	if err != nil {
		return nil, fmt.Errorf("list cluster VMs: %w", err)
	}
	rg := env.Config.VMIDRange
	var out []Stray
	for _, r := range all {
		if !r.IsVM() || r.Template || r.VMID < rg.Min || r.VMID > rg.Max {
			continue
		}
		owner, known := owners[r.VMID]
		ref, cfg, svc, marked, err := markedConfig(ctx, env, r)
		if err != nil {
			return nil, err
		}
		if !marked || (known && (owner == svc || svc == "")) {
			continue
		}
		addrs, err := vmAddresses(ctx, env, ref, cfg)
		if err != nil {
			return nil, err
		}
		out = append(out, Stray{VMID: r.VMID, Node: r.Node, ServiceID: svc, Addresses: addrs})
	}
	slices.SortFunc(out, func(a, b Stray) int { return a.VMID - b.VMID })
	return out, nil
}

// StrayOf reads a PVE VM's config and tells whether it carries pvectl's
// marker line or tag, as a Stray with the addresses it uses. A VM destroyed
// since it was listed is not marked.
func StrayOf(ctx context.Context, env *Env, r proxmox.Resource) (Stray, bool, error) {
	return strayOf(ctx, env, r)
}

func strayOf(ctx context.Context, env *Env, r proxmox.Resource) (Stray, bool, error) {
	ref, cfg, svc, marked, err := markedConfig(ctx, env, r)
	if err != nil || !marked {
		return Stray{}, false, err
	}
	addrs, err := vmAddresses(ctx, env, ref, cfg)
	if err != nil {
		return Stray{}, false, err
	}
	return Stray{VMID: r.VMID, Node: r.Node, ServiceID: svc, Addresses: addrs}, true, nil
}

// markedConfig reads a listed VM's config and tells whether it carries
// pvectl's marker line (svc is its service id) or only its tag. A VM
// destroyed since it was listed is not marked.
func markedConfig(ctx context.Context, env *Env, r proxmox.Resource) (ref proxmox.VMRef, cfg proxmox.VMConfig, svc string, marked bool, err error) {
	ref = proxmox.VMRef{Node: r.Node, VMID: r.VMID}
	cfg, err = env.PVE.VMConfig(ctx, ref)
	if proxmox.IsNotFound(err) {
		return ref, cfg, "", false, nil // destroyed since the list was made
	}
	if err != nil {
		return ref, cfg, "", false, fmt.Errorf("read config of VM %d: %w", r.VMID, err)
	}
	svc, marked = markerService(cfg)
	return ref, cfg, svc, marked || cfg.HasTag(MarkerTag), nil
}

// MarkerService returns the service id of the VM's `pvectl service=ID` line.
func MarkerService(cfg proxmox.VMConfig) (string, bool) { return markerService(cfg) }

// markerService returns the service id of the VM's `pvectl service=ID` line.
func markerService(cfg proxmox.VMConfig) (string, bool) {
	for _, line := range strings.Split(cfg.Description(), "\n") {
		if svc, ok := strings.CutPrefix(strings.TrimSpace(line), "pvectl service="); ok && svc != "" {
			return svc, true
		}
	}
	return "", false
}

// vmAddresses collects the static addresses in the VM's ipconfigN keys and
// the entries of its firewall IP sets.
func vmAddresses(ctx context.Context, env *Env, ref proxmox.VMRef, cfg proxmox.VMConfig) ([]netip.Addr, error) {
	seen := map[netip.Addr]bool{}
	add := func(s string) {
		if p, err := netip.ParsePrefix(s); err == nil {
			seen[p.Addr()] = true
		} else if a, err := netip.ParseAddr(s); err == nil {
			seen[a] = true
		}
	}
	for key, val := range cfg.Values {
		n, ok := strings.CutPrefix(key, "ipconfig")
		if _, err := strconv.Atoi(n); !ok || err != nil {
			continue
		}
		for _, kv := range strings.Split(val, ",") {
			k, v, _ := strings.Cut(kv, "=")
			if k == "ip" || k == "ip6" {
				add(v) // dhcp, auto and manual do not parse
			}
		}
	}
	sets, err := env.PVE.IPSets(ctx, ref)
	if err != nil && !proxmox.IsNotFound(err) {
		return nil, fmt.Errorf("read IP sets of VM %d: %w", ref.VMID, err)
	}
	for _, set := range sets {
		entries, err := env.PVE.IPSetEntries(ctx, ref, set.Name)
		if proxmox.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read IP set %s of VM %d: %w", set.Name, ref.VMID, err)
		}
		for _, e := range entries {
			if !e.NoMatch {
				add(e.CIDR)
			}
		}
	}
	out := make([]netip.Addr, 0, len(seen))
	for a := range seen {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return out, nil
}
