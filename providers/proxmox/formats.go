package proxmox

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// PVE's text formats: cloud-init values (ipconfigN, sshkeys), property
// strings, disk sizes and tag lists.

// IPConfig is one cloud-init ipconfigN value. IPv4/IPv6 are CIDRs, "dhcp"
// (IPv6 also "auto"), or empty.
type IPConfig struct {
	IPv4, GW4 string
	IPv6, GW6 string
}

// String renders PVE's ipconfigN property string ("ip=…,gw=…,ip6=…,gw6=…").
func (c IPConfig) String() string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("ip", c.IPv4)
	add("gw", c.GW4)
	add("ip6", c.IPv6)
	add("gw6", c.GW6)
	return strings.Join(parts, ",")
}

// CloudInit holds the cloud-init keys pvectl sets. Empty fields are not sent.
type CloudInit struct {
	User     string
	Password string // never logged; String() redacts it
	SSHKeys  []string
	// IPConfigs maps N of ipconfigN to its value.
	IPConfigs    map[int]IPConfig
	Nameservers  []string
	SearchDomain string
}

// Values returns the config keys and PVE-encoded values for c.
func (c CloudInit) Values() map[string]string {
	v := map[string]string{}
	if c.User != "" {
		v["ciuser"] = c.User
	}
	if c.Password != "" {
		v["cipassword"] = c.Password
	}
	if len(c.SSHKeys) > 0 {
		v["sshkeys"] = EncodeSSHKeys(c.SSHKeys...)
	}
	for n, ip := range c.IPConfigs {
		v["ipconfig"+strconv.Itoa(n)] = ip.String()
	}
	if len(c.Nameservers) > 0 {
		v["nameserver"] = strings.Join(c.Nameservers, " ")
	}
	if c.SearchDomain != "" {
		v["searchdomain"] = c.SearchDomain
	}
	return v
}

// String describes c without the password.
func (c CloudInit) String() string {
	pw := ""
	if c.Password != "" {
		pw = "[REDACTED]"
	}
	return fmt.Sprintf("CloudInit{User:%q Password:%q SSHKeys:%d IPConfigs:%v Nameservers:%v SearchDomain:%q}",
		c.User, pw, len(c.SSHKeys), c.IPConfigs, c.Nameservers, c.SearchDomain)
}

// GoString is String, so %#v does not print the password either.
func (c CloudInit) GoString() string { return c.String() }

// EncodeSSHKeys encodes SSH public keys the way PVE's sshkeys key requires:
// keys joined by newlines, then percent-encoded with %20 for spaces (PVE
// rejects '+' for a space: "invalid format - invalid urlencoded string").
// The result is the parameter's value; PVE decodes it once when storing.
func EncodeSSHKeys(keys ...string) string {
	return strings.ReplaceAll(url.QueryEscape(strings.Join(keys, "\n")), "+", "%20")
}

// DecodeSSHKeys reverses EncodeSSHKeys on a config's sshkeys value.
func DecodeSSHKeys(v string) []string {
	if v == "" {
		return nil
	}
	s, err := url.PathUnescape(v)
	if err != nil {
		s = v
	}
	var keys []string
	for _, k := range strings.Split(s, "\n") {
		if k = strings.TrimSpace(k); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// BackupRequest is POST /nodes/{node}/vzdump for one VM.

// ParsePropertyString splits a PVE property string such as
// "local-lvm:vm-100-disk-0,size=32G,iops_rd=100" into its default (first,
// key-less) value and key=value pairs.
func ParsePropertyString(s string) (def string, props map[string]string) {
	props = map[string]string{}
	for i, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			if i == 0 {
				def = part
			}
			continue
		}
		props[k] = v
	}
	return def, props
}

// ParseSize parses PVE's disk size syntax ("32G", "512M", "1.5T", "1024" bytes).
func ParseSize(s string) (int64, error) {
	if s == "" {
		return 0, fmt.Errorf("empty size")
	}
	mult := int64(1)
	switch s[len(s)-1] {
	case 'K', 'k':
		mult = 1 << 10
	case 'M', 'm':
		mult = 1 << 20
	case 'G', 'g':
		mult = 1 << 30
	case 'T', 't':
		mult = 1 << 40
	}
	num := s
	if mult != 1 {
		num = s[:len(s)-1]
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	return int64(f * float64(mult)), nil
}

func splitTags(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == ',' || r == ' ' })
}

func hasTag(tags []string, t string) bool {
	for _, x := range tags {
		if x == t {
			return true
		}
	}
	return false
}
