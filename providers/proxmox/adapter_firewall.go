package proxmox

import (
	"context"
	"net/http"
)

// VM firewall options and IP sets.

type fwOptionsJSON struct {
	Enable      *flexBool `json:"enable"`
	DHCP        *flexBool `json:"dhcp"`
	IPFilter    *flexBool `json:"ipfilter"`
	MACFilter   *flexBool `json:"macfilter"`
	NDP         *flexBool `json:"ndp"`
	RAdv        *flexBool `json:"radv"`
	PolicyIn    string    `json:"policy_in"`
	PolicyOut   string    `json:"policy_out"`
	LogLevelIn  string    `json:"log_level_in"`
	LogLevelOut string    `json:"log_level_out"`
	Digest      string    `json:"digest"`
}

func fb(p *flexBool) *bool {
	if p == nil {
		return nil
	}
	b := bool(*p)
	return &b
}

// FirewallOptions implements Client (raw GET: go-proxmox's
// FirewallOptionGet always returns nil).
func (a *Adapter) FirewallOptions(ctx context.Context, vm VMRef) (FirewallOptions, error) {
	if err := checkVM("firewall options", vm); err != nil {
		return FirewallOptions{}, err
	}
	var raw fwOptionsJSON
	if err := a.call(ctx, vmCall(http.MethodGet, vm, "/firewall/options"), nil, &raw); err != nil {
		return FirewallOptions{}, err
	}
	return FirewallOptions{
		Enable: fb(raw.Enable), DHCP: fb(raw.DHCP), IPFilter: fb(raw.IPFilter), MACFilter: fb(raw.MACFilter),
		NDP: fb(raw.NDP), RAdv: fb(raw.RAdv), PolicyIn: raw.PolicyIn, PolicyOut: raw.PolicyOut,
		LogLevelIn: raw.LogLevelIn, LogLevelOut: raw.LogLevelOut, Digest: raw.Digest,
	}, nil
}

// SetFirewallOptions implements Client (raw PUT: go-proxmox cannot send 0).
func (a *Adapter) SetFirewallOptions(ctx context.Context, vm VMRef, o FirewallOptions) error {
	if err := checkVM("set firewall options", vm); err != nil {
		return err
	}
	p := map[string]any{}
	for k, v := range map[string]*bool{"enable": o.Enable, "dhcp": o.DHCP, "ipfilter": o.IPFilter,
		"macfilter": o.MACFilter, "ndp": o.NDP, "radv": o.RAdv} {
		if v != nil {
			p[k] = boolInt(*v)
		}
	}
	for k, v := range map[string]string{"policy_in": o.PolicyIn, "policy_out": o.PolicyOut,
		"log_level_in": o.LogLevelIn, "log_level_out": o.LogLevelOut, "digest": o.Digest} {
		if v != "" {
			p[k] = v
		}
	}
	if len(p) == 0 {
		return nil
	}
	return a.call(ctx, vmCall(http.MethodPut, vm, "/firewall/options"), p, nil)
}

// IPSets implements Client.
func (a *Adapter) IPSets(ctx context.Context, vm VMRef) ([]IPSet, error) {
	if err := checkVM("ipsets", vm); err != nil {
		return nil, err
	}
	var raw []struct {
		Name    string `json:"name"`
		Comment string `json:"comment"`
		Digest  string `json:"digest"`
	}
	if err := a.call(ctx, vmCall(http.MethodGet, vm, "/firewall/ipset"), nil, &raw); err != nil {
		return nil, err
	}
	out := make([]IPSet, 0, len(raw))
	for _, s := range raw {
		out = append(out, IPSet(s))
	}
	return out, nil
}

// CreateIPSet implements Client.
func (a *Adapter) CreateIPSet(ctx context.Context, vm VMRef, name, comment string) error {
	if err := checkVM("create ipset", vm); err != nil {
		return err
	}
	p := map[string]any{"name": name}
	if comment != "" {
		p["comment"] = comment
	}
	return a.call(ctx, vmCall(http.MethodPost, vm, "/firewall/ipset"), p, nil)
}

// DeleteIPSet implements Client (raw DELETE: go-proxmox never sends force).
func (a *Adapter) DeleteIPSet(ctx context.Context, vm VMRef, name string, force bool) error {
	if err := checkVM("delete ipset", vm); err != nil {
		return err
	}
	var p map[string]any
	if force {
		p = map[string]any{"force": 1}
	}
	return a.call(ctx, vmCall(http.MethodDelete, vm, "/firewall/ipset/{name}", name), p, nil)
}

// IPSetEntries implements Client.
func (a *Adapter) IPSetEntries(ctx context.Context, vm VMRef, name string) ([]IPSetEntry, error) {
	if err := checkVM("ipset entries", vm); err != nil {
		return nil, err
	}
	var raw []struct {
		CIDR    string   `json:"cidr"`
		Comment string   `json:"comment"`
		NoMatch flexBool `json:"nomatch"`
		Digest  string   `json:"digest"`
	}
	if err := a.call(ctx, vmCall(http.MethodGet, vm, "/firewall/ipset/{name}", name), nil, &raw); err != nil {
		return nil, err
	}
	out := make([]IPSetEntry, 0, len(raw))
	for _, e := range raw {
		out = append(out, IPSetEntry{CIDR: e.CIDR, Comment: e.Comment, NoMatch: bool(e.NoMatch), Digest: e.Digest})
	}
	return out, nil
}

// AddIPSetEntry implements Client.
func (a *Adapter) AddIPSetEntry(ctx context.Context, vm VMRef, name string, e IPSetEntry) error {
	if err := checkVM("add ipset entry", vm); err != nil {
		return err
	}
	p := map[string]any{"cidr": e.CIDR}
	if e.Comment != "" {
		p["comment"] = e.Comment
	}
	if e.NoMatch {
		p["nomatch"] = 1
	}
	return a.call(ctx, vmCall(http.MethodPost, vm, "/firewall/ipset/{name}", name), p, nil)
}

// RemoveIPSetEntry implements Client. The CIDR's '/' is sent as %2F, as
// PVE's web UI does (encodeURIComponent).
func (a *Adapter) RemoveIPSetEntry(ctx context.Context, vm VMRef, name, cidr string) error {
	if err := checkVM("remove ipset entry", vm); err != nil {
		return err
	}
	return a.call(ctx, vmCall(http.MethodDelete, vm, "/firewall/ipset/{name}/{cidr}", name, cidr), nil, nil)
}
