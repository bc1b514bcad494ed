package pvesim

import (
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/pvectl/pvectl/providers/proxmox/pvesim/internal/schemagen"
)

// Endpoints lists the endpoints pvesim serves, as "METHOD /schema/path".
func Endpoints() []string { return append([]string(nil), schemagen.Endpoints...) }

type validator struct {
	subsets []*schemagen.Subset // 8.4.5 then 9.2.3
	regex   sync.Map            // pattern → *regexp.Regexp
}

var (
	validatorOnce sync.Once
	validatorVal  *validator
	validatorErr  error
)

func loadValidator() (*validator, error) {
	validatorOnce.Do(func() {
		v := &validator{}
		for _, src := range []string{schema84JSON, schema92JSON} {
			var sub schemagen.Subset
			if err := json.Unmarshal([]byte(src), &sub); err != nil {
				validatorErr = fmt.Errorf("pvesim: embedded schema: %w", err)
				return
			}
			v.subsets = append(v.subsets, &sub)
			for ep, m := range sub.Endpoints {
				if err := v.compilePatterns(m.Params); err != nil {
					validatorErr = fmt.Errorf("pvesim: schema %s %s: %w", sub.Version, ep, err)
					return
				}
			}
		}
		validatorVal = v
	})
	return validatorVal, validatorErr
}

// compilePatterns compiles every pattern of params (property-string parts
// included) once, so a pattern Go cannot read stops pvesim at start instead
// of accepting any value.
func (v *validator) compilePatterns(params map[string]*schemagen.Param) error {
	for name, p := range params {
		if p.Pattern != "" {
			if _, ok := v.regex.Load(p.Pattern); !ok {
				re, err := compilePattern(p.Pattern)
				if err != nil {
					return fmt.Errorf("parameter %s: %w", name, err)
				}
				v.regex.Store(p.Pattern, re)
			}
		}
		if err := v.compilePatterns(p.Props); err != nil {
			return err
		}
	}
	return nil
}

// compilePattern compiles a schema pattern as PVE applies it: the whole
// value must match. Perl's qr// stringifies as (?^:…) ("default flags"),
// which is (?:…) in Go's syntax.
func compilePattern(pattern string) (*regexp.Regexp, error) {
	return regexp.Compile(`^(?:` + strings.ReplaceAll(pattern, "(?^:", "(?:") + `)$`)
}

// lookup finds the schema of a parameter name ("scsi3" → "scsi[n]").
func lookup(params map[string]*schemagen.Param, name string) *schemagen.Param {
	if p, ok := params[name]; ok {
		return p
	}
	i := len(name)
	for i > 0 && name[i-1] >= '0' && name[i-1] <= '9' {
		i--
	}
	if i == len(name) || i == 0 {
		return nil
	}
	if len(name)-i > 1 && name[i] == '0' {
		return nil
	}
	p, ok := params[name[:i]+"[n]"]
	if !ok || p.IndexMax == nil {
		return nil
	}
	n, err := strconv.Atoi(name[i:])
	if err != nil || n > *p.IndexMax {
		return nil
	}
	return p
}

// validate checks params (path parameters included) against the endpoint's
// schema in every version; it returns PVE's per-field errors.
func (v *validator) validate(ep string, params map[string]any) map[string]string {
	errs := map[string]string{}
	for _, sub := range v.subsets {
		m := sub.Endpoints[ep]
		if m == nil {
			continue
		}
		e := map[string]string{}
		v.checkObject(m.Params, m.AdditionalProperties, params, "", e)
		for k, msg := range e {
			if _, ok := errs[k]; !ok {
				errs[k] = msg
			}
		}
	}
	return errs
}

func (v *validator) checkObject(schema map[string]*schemagen.Param, additional bool, params map[string]any, prefix string, errs map[string]string) {
	path := func(k string) string {
		if prefix == "" {
			return k
		}
		return prefix + "." + k
	}
	for name, p := range schema {
		if strings.HasSuffix(name, "[n]") || p.Alias != "" {
			continue
		}
		if _, ok := params[name]; !ok && !p.Optional {
			errs[path(name)] = "property is missing and it is not optional"
		}
	}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p := lookup(schema, k)
		if p == nil {
			if !additional {
				errs[path(k)] = "property is not defined in schema and the schema does not allow additional properties"
			}
			continue
		}
		v.checkProp(p, params[k], path(k), errs)
	}
}

func isInteger(s string) bool {
	_, err := strconv.ParseInt(strings.TrimPrefix(s, "+"), 10, 64)
	return err == nil
}

var numberRe = regexp.MustCompile(`^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$`)

func fmtNum(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// scalar renders a decoded value as the string Perl would see.
func scalar(val any) (string, string) {
	switch x := val.(type) {
	case string:
		return x, ""
	case json.Number:
		return x.String(), ""
	case float64:
		return fmtNum(x), ""
	case bool:
		if x {
			return "1", "bool"
		}
		return "0", "bool"
	case []any:
		return "", "ARRAY"
	case map[string]any:
		return "", "HASH"
	case nil:
		return "", "null"
	}
	return fmt.Sprint(val), ""
}

func (v *validator) checkProp(p *schemagen.Param, val any, path string, errs map[string]string) {
	s, kind := scalar(val)
	switch kind {
	case "ARRAY", "HASH":
		if p.Type != "array" && p.Type != "object" {
			errs[path] = fmt.Sprintf("type check ('%s') failed - got %s", p.Type, kind)
		}
		return
	case "bool":
		if p.Type != "boolean" {
			errs[path] = fmt.Sprintf("type check ('%s') failed - got '%s'", p.Type, map[string]string{"1": "true", "0": "false"}[s])
			return
		}
	}
	switch p.Type {
	case "boolean":
		if s != "0" && s != "1" {
			errs[path] = fmt.Sprintf("type check ('boolean') failed - got '%s'", s)
			return
		}
	case "integer":
		if !isInteger(s) {
			errs[path] = fmt.Sprintf("type check ('integer') failed - got '%s'", s)
			return
		}
	case "number":
		if !numberRe.MatchString(s) {
			errs[path] = fmt.Sprintf("type check ('number') failed - got '%s'", s)
			return
		}
	case "object":
		errs[path] = "type check ('object') failed - got scalar"
		return
	}
	if p.Props != nil {
		if msg := v.checkPropertyString(p.Props, s, path); msg != "" {
			errs[path] = "invalid format - " + msg
			return
		}
	} else if p.Format != "" {
		if msg := checkNamedFormat(p.Format, s); msg != "" {
			errs[path] = "invalid format - " + msg
			return
		}
	}
	if p.Pattern != "" {
		re, ok := v.regex.Load(p.Pattern) // all compiled at load
		if !ok || !re.(*regexp.Regexp).MatchString(s) {
			errs[path] = "value does not match the regex pattern"
			return
		}
	}
	if p.MaxLength != nil && len(s) > *p.MaxLength {
		errs[path] = fmt.Sprintf("value may only be %d characters long", *p.MaxLength)
		return
	}
	if p.MinLength != nil && len(s) < *p.MinLength {
		errs[path] = fmt.Sprintf("value must be at least %d characters long", *p.MinLength)
		return
	}
	if numberRe.MatchString(s) {
		f, _ := strconv.ParseFloat(s, 64)
		if p.Maximum != nil && f > *p.Maximum {
			errs[path] = "value must have a maximum value of " + fmtNum(*p.Maximum)
			return
		}
		if p.Minimum != nil && f < *p.Minimum {
			errs[path] = "value must have a minimum value of " + fmtNum(*p.Minimum)
			return
		}
	}
	if len(p.Enum) > 0 {
		for _, e := range p.Enum {
			if e == s {
				return
			}
		}
		errs[path] = fmt.Sprintf("value '%s' does not have a value in the enumeration '%s'", s, strings.Join(p.Enum, "', '"))
	}
}

// parsePropertyString splits "a,k=v,k2=v2" like PVE's parse_property_string.
func parsePropertyString(format map[string]*schemagen.Param, data string) (map[string]any, string) {
	res := map[string]any{}
	defaultKey := ""
	for _, part := range strings.Split(data, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		if k, val, ok := strings.Cut(part, "="); ok {
			if k == "" || val == "" {
				return nil, "missing key in comma-separated list property\n"
			}
			if _, dup := res[k]; dup {
				return nil, "duplicate key in comma-separated list property: " + k + "\n"
			}
			sch := format[k]
			if sch != nil && sch.Alias != "" {
				if sch.KeyAlias != "" {
					if _, dup := res[sch.KeyAlias]; dup {
						return nil, "key alias '" + sch.KeyAlias + "' is already defined\n"
					}
					res[sch.KeyAlias] = k
				}
				k = sch.Alias
				sch = format[k]
			}
			if sch == nil {
				return nil, "invalid key in comma-separated list property: " + k + "\n"
			}
			if sch.Type == "boolean" {
				switch strings.ToLower(val) {
				case "1", "on", "yes", "true":
					val = "1"
				case "0", "off", "no", "false":
					val = "0"
				}
			}
			res[k] = val
			continue
		}
		if defaultKey != "" {
			return nil, "duplicate key in comma-separated list property: " + defaultKey + "\n"
		}
		for name, sch := range format {
			if sch.DefaultKey {
				defaultKey = name
			}
		}
		if defaultKey == "" {
			return nil, "value without key, but schema does not define a default key\n"
		}
		if _, dup := res[defaultKey]; dup {
			return nil, "duplicate key in comma-separated list property: " + defaultKey + "\n"
		}
		res[defaultKey] = part
	}
	return res, ""
}

func (v *validator) checkPropertyString(format map[string]*schemagen.Param, data, path string) string {
	res, msg := parsePropertyString(format, data)
	if msg != "" {
		return msg
	}
	errs := map[string]string{}
	v.checkObject(format, false, res, path, errs)
	if len(errs) == 0 {
		return ""
	}
	keys := make([]string, 0, len(errs))
	for k := range errs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("format error\n")
	for _, k := range keys {
		b.WriteString(k + ": " + errs[k] + "\n")
	}
	return b.String()
}

var (
	nodeNameRe    = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?$`)
	storageIDRe   = regexp.MustCompile(`^[a-z][a-z0-9\-_.]*[a-z0-9]$`)
	configIDRe    = regexp.MustCompile(`^[a-z][a-z0-9_-]+$`)
	dnsLabel      = `(?:[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?)`
	dnsNameRe     = regexp.MustCompile(`^(?:` + dnsLabel + `\.)*` + dnsLabel + `$`)
	volumeIDRe    = regexp.MustCompile(`^[a-z][a-z0-9\-_.]*[a-z0-9]:.+$`)
	macRe         = regexp.MustCompile(`^[a-fA-F0-9]{2}(?::[a-fA-F0-9]{2}){5}$`)
	bridgeRe      = regexp.MustCompile(`^[-_.\w\d]+$`)
	tagRe         = regexp.MustCompile(`^(?i)[a-z0-9_][a-z0-9_\-+.]*$`)
	urlencodedRe  = regexp.MustCompile(`^[-%a-zA-Z0-9_.!~*'()]*$`)
	aliasRe       = regexp.MustCompile(`^(?:(?:dc|guest)/)?[A-Za-z][A-Za-z0-9\-_]+$`)
	poolIDRe      = regexp.MustCompile(`^[A-Za-z0-9\-_]+(?:/[A-Za-z0-9\-_]+){0,2}$`)
	diskSizeRe    = regexp.MustCompile(`^(\d+(?:\.\d+)?)([KMGT])?$`)
	vmidListSplit = regexp.MustCompile(`[,; ]+`)
)

func validIP(s string) bool { _, err := netip.ParseAddr(s); return err == nil }

func validCIDR(s string) bool {
	if !strings.Contains(s, "/") {
		return false
	}
	_, err := netip.ParsePrefix(s)
	return err == nil
}

// checkNamedFormat implements the PVE format verifiers pvectl's requests
// exercise. Formats not listed here are accepted unchecked (docs/simulator.md).
func checkNamedFormat(format, s string) string {
	if msg, ok := checkAccessFormat(format, s); ok {
		return msg
	}
	switch format {
	case "pve-node":
		if !nodeNameRe.MatchString(s) {
			return "value does not look like a valid node name\n"
		}
	case "pve-vmid":
		if !regexp.MustCompile(`^\d+$`).MatchString(s) {
			return "value does not look like a valid VM ID\n"
		}
	case "pve-storage-id":
		if !storageIDRe.MatchString(s) {
			return "storage ID '" + s + "' contains illegal characters\n"
		}
	case "pve-configid":
		if !configIDRe.MatchString(s) {
			return "invalid configuration ID '" + s + "'\n"
		}
	case "pve-configid-list":
		for _, id := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' || r == ' ' || r == '\x00' }) {
			if !regexp.MustCompile(`^[a-z][a-z0-9_-]*$`).MatchString(id) {
				return "invalid configuration ID '" + id + "'\n"
			}
		}
	case "dns-name":
		if !dnsNameRe.MatchString(s) {
			return "value does not look like a valid DNS name\n"
		}
	case "pve-volume-id":
		if !volumeIDRe.MatchString(s) {
			return "unable to parse volume ID '" + s + "'\n"
		}
	case "pve-volume-id-or-qm-path":
		if s != "none" && s != "cdrom" && !strings.HasPrefix(s, "/") && !volumeIDRe.MatchString(s) {
			return "unable to parse volume ID '" + s + "'\n"
		}
	case "pve-volume-id-or-absolute-path":
		if !strings.HasPrefix(s, "/") && !volumeIDRe.MatchString(s) {
			return "unable to parse volume ID '" + s + "'\n"
		}
	case "mac-addr":
		if !macRe.MatchString(s) {
			return "value does not look like a valid MAC address\n"
		}
	case "pve-bridge-id":
		if !bridgeRe.MatchString(s) {
			return "value does not look like a valid bridge name\n"
		}
	case "pve-tag-list":
		tags := strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == ',' || r == ' ' })
		if len(tags) == 0 {
			return "no tags given\n"
		}
		for _, t := range tags {
			if !tagRe.MatchString(t) {
				return "invalid tag: '" + t + "'\n"
			}
		}
	case "urlencoded":
		if !urlencodedRe.MatchString(s) {
			return "invalid urlencoded string: " + s + "\n"
		}
	case "pve-vmid-list":
		for _, id := range vmidListSplit.Split(strings.TrimSpace(s), -1) {
			n, err := strconv.Atoi(id)
			if err != nil || n < 100 {
				return "value does not look like a valid VM ID\n"
			}
		}
	case "CIDR":
		if !validCIDR(s) {
			return "value does not look like a valid CIDR network\n"
		}
	case "IPorCIDR":
		if !validIP(s) && !validCIDR(s) {
			return "value does not look like a valid IP address or CIDR network\n"
		}
	case "IPorCIDRorAlias":
		if !validIP(s) && !validCIDR(s) && !aliasRe.MatchString(s) {
			return "value does not look like a valid IP address, CIDR network or alias\n"
		}
	case "address-list":
		for _, a := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' || r == ' ' }) {
			if !validIP(a) {
				return "unable to parse IP address '" + a + "'\n"
			}
		}
	case "pve-poolid":
		if !poolIDRe.MatchString(s) {
			return "invalid pool ID '" + s + "'\n"
		}
	case "disk-size":
		if !diskSizeRe.MatchString(s) {
			return "unable to parse size '" + s + "'\n"
		}
	case "pve-qm-ipconfig":
		return checkIPConfig(s)
	}
	return ""
}

// checkIPConfig verifies "ip=CIDR|dhcp,gw=IP,ip6=CIDR|dhcp|auto,gw6=IP".
func checkIPConfig(s string) string {
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		if part == "" {
			continue
		}
		k, val, ok := strings.Cut(part, "=")
		if !ok {
			return "value without key, but schema does not define a default key\n"
		}
		if seen[k] {
			return "duplicate key in comma-separated list property: " + k + "\n"
		}
		seen[k] = true
		switch k {
		case "ip":
			if val != "dhcp" {
				p, err := netip.ParsePrefix(val)
				if err != nil || !p.Addr().Is4() {
					return "format error\nip: invalid format - invalid IPv4 network: '" + val + "'\n"
				}
			}
		case "gw":
			a, err := netip.ParseAddr(val)
			if err != nil || !a.Is4() {
				return "format error\ngw: invalid format - value does not look like a valid IPv4 address\n"
			}
		case "ip6":
			if val != "dhcp" && val != "auto" {
				p, err := netip.ParsePrefix(val)
				if err != nil || !p.Addr().Is6() {
					return "format error\nip6: invalid format - invalid IPv6 network: '" + val + "'\n"
				}
			}
		case "gw6":
			a, err := netip.ParseAddr(val)
			if err != nil || !a.Is6() {
				return "format error\ngw6: invalid format - value does not look like a valid IPv6 address\n"
			}
		default:
			return "invalid key in comma-separated list property: " + k + "\n"
		}
	}
	if seen["gw"] && !seen["ip"] {
		return "gateway specified without specifying an IP address\n"
	}
	return ""
}
