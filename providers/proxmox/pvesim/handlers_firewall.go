package pvesim

import (
	"fmt"
	"strconv"
	"strings"
)

// ---- firewall ----

var fwBool = map[string]bool{"enable": true, "dhcp": true, "ipfilter": true, "macfilter": true, "ndp": true, "radv": true}

func fwDigest(m *vm) string {
	conf := copyMap(m.firewall)
	for _, is := range m.ipsets {
		conf["ipset "+is.name] = is.comment
		for _, e := range is.entries {
			conf["ipset "+is.name+" "+e.cidr] = e.comment + strconv.FormatBool(e.nomatch)
		}
	}
	return confDigest(conf)
}

func hFwGet(c *call) (any, *apiError) {
	m, err := c.s.vmOn(c)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"digest": fwDigest(m)}
	for k, v := range m.firewall {
		if fwBool[k] {
			n, _ := strconv.Atoi(v)
			out[k] = n
		} else {
			out[k] = v
		}
	}
	return out, nil
}

func hFwSet(c *call) (any, *apiError) {
	m, err := c.s.vmOn(c)
	if err != nil {
		return nil, err
	}
	if d := c.str("digest"); d != "" && d != fwDigest(m) {
		return nil, serverErr("detected modified configuration - file changed by other user? Try again.")
	}
	for _, k := range strings.FieldsFunc(c.str("delete"), func(r rune) bool { return r == ',' || r == ';' || r == ' ' }) {
		delete(m.firewall, k)
	}
	for k, v := range c.params {
		if k == "node" || k == "vmid" || k == "digest" || k == "delete" {
			continue
		}
		m.firewall[k], _ = scalar(v)
	}
	return nil, nil
}

func (m *vm) ipset(name string) *ipset {
	for _, is := range m.ipsets {
		if is.name == name {
			return is
		}
	}
	return nil
}

func hIPSetList(c *call) (any, *apiError) {
	m, err := c.s.vmOn(c)
	if err != nil {
		return nil, err
	}
	out := []any{}
	d := fwDigest(m)
	for _, is := range m.ipsets {
		e := map[string]any{"name": is.name, "digest": d}
		if is.comment != "" {
			e["comment"] = is.comment
		}
		out = append(out, e)
	}
	return out, nil
}

func hIPSetCreate(c *call) (any, *apiError) {
	m, err := c.s.vmOn(c)
	if err != nil {
		return nil, err
	}
	if d := c.str("digest"); d != "" && d != fwDigest(m) {
		return nil, serverErr("detected modified configuration - file changed by other user? Try again.")
	}
	name := c.str("name")
	if r := c.str("rename"); r != "" {
		is := m.ipset(r)
		if is == nil {
			return nil, serverErr(fmt.Sprintf("no such IPSet '%s'", r))
		}
		if m.ipset(name) != nil {
			return nil, paramErr("name", fmt.Sprintf("IPSet '%s' does already exist", name))
		}
		is.name = name
		if c.has("comment") {
			is.comment = c.str("comment")
		}
		return nil, nil
	}
	if m.ipset(name) != nil {
		return nil, paramErr("name", fmt.Sprintf("IPSet '%s' does already exist", name))
	}
	m.ipsets = append(m.ipsets, &ipset{name: name, comment: c.str("comment")})
	return nil, nil
}

func (c *call) ipsetOf() (*vm, *ipset, *apiError) {
	m, err := c.s.vmOn(c)
	if err != nil {
		return nil, nil, err
	}
	is := m.ipset(c.vars["name"])
	if is == nil {
		return nil, nil, serverErr(fmt.Sprintf("no such IPSet '%s'", c.vars["name"]))
	}
	return m, is, nil
}

func hIPSetEntries(c *call) (any, *apiError) {
	m, is, err := c.ipsetOf()
	if err != nil {
		return nil, err
	}
	out := []any{}
	d := fwDigest(m)
	for _, e := range is.entries {
		x := map[string]any{"cidr": e.cidr, "digest": d}
		if e.comment != "" {
			x["comment"] = e.comment
		}
		if e.nomatch {
			x["nomatch"] = 1
		}
		out = append(out, x)
	}
	return out, nil
}

func hIPSetAdd(c *call) (any, *apiError) {
	_, is, err := c.ipsetOf()
	if err != nil {
		return nil, err
	}
	cidr := c.str("cidr")
	for _, e := range is.entries {
		if e.cidr == cidr {
			return nil, paramErr("cidr", fmt.Sprintf("address '%s' already exists", cidr))
		}
	}
	is.entries = append(is.entries, &ipEntry{cidr: cidr, comment: c.str("comment"), nomatch: c.bool("nomatch")})
	return nil, nil
}

func hIPSetDelete(c *call) (any, *apiError) {
	m, is, err := c.ipsetOf()
	if err != nil {
		return nil, err
	}
	if len(is.entries) > 0 && !c.bool("force") {
		return nil, serverErr(fmt.Sprintf("IPSet '%s' is not empty", is.name))
	}
	for i, x := range m.ipsets {
		if x == is {
			m.ipsets = append(m.ipsets[:i], m.ipsets[i+1:]...)
			break
		}
	}
	return nil, nil
}

func hIPSetRemove(c *call) (any, *apiError) {
	m, is, err := c.ipsetOf()
	if err != nil {
		return nil, err
	}
	if d := c.str("digest"); d != "" && d != fwDigest(m) {
		return nil, serverErr("detected modified configuration - file changed by other user? Try again.")
	}
	cidr := c.vars["cidr"]
	for i, e := range is.entries {
		if e.cidr == cidr {
			is.entries = append(is.entries[:i], is.entries[i+1:]...)
			return nil, nil
		}
	}
	return nil, paramErr("cidr", "no such IP/Network")
}
