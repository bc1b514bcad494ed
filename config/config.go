// Package config loads pvectl's YAML configuration. Loading is strict: an
// unknown key, a wrong type or a missing or invalid value is an error that
// names the file, the line and the key.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// DefaultPath is where pvectl looks for its config without --config / PVECTL_CONFIG.
const DefaultPath = "/etc/pvectl/pvectl.yaml"

// Config is the whole configuration file. The `valid` tag of an integer
// field describes its valid values; an error for a value that is not a plain
// whole number, or does not fit, quotes it.
type Config struct {
	Proxmox   Proxmox            `yaml:"proxmox"`
	VMIDRange VMIDRange          `yaml:"vmid_range"`
	Products  map[string]Product `yaml:"products"`
	IPPools   []IPPool           `yaml:"ip_pools"`
	DNS       DNS                `yaml:"dns"`
	Tasks     Tasks              `yaml:"tasks"`
	Suspend   Suspend            `yaml:"suspend"`
	Backups   Backups            `yaml:"backups"`
	Stats     Stats              `yaml:"stats"`
	Health    Health             `yaml:"health"`
	// Notifications: where events are delivered (notifications.go).
	Notifications Notifications `yaml:"notifications"`
	// Purge: how long housekeeping rows are kept (purge.go).
	Purge Purge `yaml:"purge"`
	// MetricsFile: after every tick, pvectl's state as a Prometheus text
	// file here (node_exporter's textfile collector); "" = none.
	MetricsFile string `yaml:"metrics_file"`
	// Timezone is the zone every time pvectl prints for people is shown
	// in (live lines, vm list/show, log, …): UTC when unset, Local, or an
	// IANA name. JSON output stays RFC 3339 UTC. --tz overrides it.
	Timezone string `yaml:"timezone"`
	// IPQuarantine keeps a freed address out of the pools this long, so no
	// new VM gets it while resolvers still cache its old records. Unset:
	// dns.ttl when DNS zones are configured, else 0. 0 turns it off.
	IPQuarantine *Duration `yaml:"ip_quarantine"`

	path string
	file *ast.File
}

// AddressQuarantine is how long a freed address stays out of the pools:
// ip_quarantine if set, else the records' TTL (dns.ttl, the largest TTL any
// of its records was published with) when DNS zones are configured.
func (c *Config) AddressQuarantine() time.Duration {
	if c.IPQuarantine != nil {
		return c.IPQuarantine.D()
	}
	if len(c.DNS.Zones) > 0 {
		return time.Duration(c.DNS.TTL) * time.Second
	}
	return 0
}

// Proxmox is the PVE API endpoint and its credentials.
type Proxmox struct {
	URL     string `yaml:"url"`
	TokenID string `yaml:"token_id"` // USER@REALM!TOKENID
	// TokenSecret may be inline, read from TokenSecretFile, or taken from
	// PVECTL_PROXMOX_TOKEN_SECRET (which wins). It is never printed.
	TokenSecret        Secret   `yaml:"token_secret"`
	TokenSecretFile    string   `yaml:"token_secret_file"`
	CAFile             string   `yaml:"ca_file"`
	InsecureSkipVerify bool     `yaml:"insecure_skip_verify"`
	Timeout            Duration `yaml:"timeout"`
	// MaxRequestsPerNode: how many PVE API requests pvectl keeps in flight
	// at once to any one node (requests outside /nodes/{node} count
	// against the endpoint); default 4.
	MaxRequestsPerNode int `yaml:"max_requests_per_node" valid:"1 or more"`
}

// VMIDRange bounds the VMIDs pvectl may use.
type VMIDRange struct {
	Min int `yaml:"min" valid:"100..999999999"`
	Max int `yaml:"max" valid:"100..999999999"`
}

// Product is a plan: everything the deploy table applies.
type Product struct {
	Cores    int `yaml:"cores" valid:"1..512"`
	Sockets  int `yaml:"sockets" valid:"1..4"`
	MemoryMB int `yaml:"memory_mb" valid:"16 or more (MB)"`
	// Template is the default template. A product that offers several
	// operating systems lists them in Templates instead and names the
	// default in DefaultTemplate; loading then sets Template to it, so
	// Template is always the default.
	Template        Template            `yaml:"template"`
	Templates       map[string]Template `yaml:"templates"`
	DefaultTemplate string              `yaml:"default_template"`
	bothTemplates   bool                // template and templates were both given
	Clone           string              `yaml:"clone"`       // linked | full
	TargetNode      string              `yaml:"target_node"` // node name or "auto"
	SystemDisk      Disk                `yaml:"system_disk"`
	AdditionalDisk  Disk                `yaml:"additional_disk"`
	Network         Network             `yaml:"network"`
	Firewall        Firewall            `yaml:"firewall"`
	CloudInit       CloudInit           `yaml:"cloudinit"`
	// SnapshotLifetimeDays: snapshots older than this are removed; 0 keeps them.
	SnapshotLifetimeDays int `yaml:"snapshot_lifetime_days" valid:"0 (keep) or more"`
	// SnapshotQuota: how many snapshots a VM may have; 0 = snapshots off.
	SnapshotQuota int `yaml:"snapshot_quota" valid:"0 (no snapshots) or more"`
	// TrafficLimitGB: the traffic (in + out, decimal GB) included per billing
	// period; 0 = unlimited.
	TrafficLimitGB int `yaml:"traffic_limit_gb" valid:"0 (unlimited) or more"`
	// TrafficResetDay is the day of the month a billing period starts
	// (1..28); default 1.
	TrafficResetDay int `yaml:"traffic_reset_day" valid:"1..28"`
	// TrafficAction over the limit: "" or "log" (an event line once per
	// period), or "throttle" (also TrafficThrottleMBps as the NIC's rate
	// until the period ends).
	TrafficAction       string `yaml:"traffic_action" valid:"log or throttle"`
	TrafficThrottleMBps int    `yaml:"traffic_throttle_mbps" valid:"1 or more (MB/s)"`
	// BackupQuota: how many backups a VM may keep; 0 disables backups.
	BackupQuota int `yaml:"backup_quota" valid:"0 (no backups) or more"`
	// BackupStorage is where the product's backups go; "" = backups.storage.
	BackupStorage string `yaml:"backup_storage"`
}

// Template is the VM a product is cloned from.
type Template struct {
	VMID int    `yaml:"vmid" valid:"100..999999999"`
	Node string `yaml:"node"`
}

// Disk is a system or additional disk. SizeGB 0 on the system disk keeps the
// template's size; on the additional disk it means no additional disk.
type Disk struct {
	SizeGB  int    `yaml:"size_gb" valid:"0 or more (GB)"`
	Storage string `yaml:"storage"` // "" = the template's storage (system) / same as system (additional)
	// Bus of a disk pvectl creates (the additional disk; the system disk's
	// value is its default). The system disk itself is found in the
	// template's boot order. scsi | virtio | sata; default scsi.
	Bus    string `yaml:"bus"`
	IopsRd int    `yaml:"iops_rd" valid:"0 (unlimited) or more"` // 0 = unlimited
	IopsWr int    `yaml:"iops_wr" valid:"0 (unlimited) or more"`
	MbpsRd int    `yaml:"mbps_rd" valid:"0 (unlimited) or more"`
	MbpsWr int    `yaml:"mbps_wr" valid:"0 (unlimited) or more"`
}

// Network is the VM's first NIC and its addressing.
type Network struct {
	Bridge   string `yaml:"bridge"`
	VLAN     int    `yaml:"vlan" valid:"0 (untagged) to 4094"`       // 0 = untagged
	RateMBps int    `yaml:"rate_mbps" valid:"0 (unlimited) or more"` // 0 = unlimited
	Model    string `yaml:"model"`                                   // virtio | e1000 | e1000e | rtl8139 | vmxnet3; "" = as in template
	IPv4     int    `yaml:"ipv4" valid:"0 or more"`                  // addresses to allocate
	IPv6     int    `yaml:"ipv6" valid:"0 or more"`
	DHCPv4   bool   `yaml:"dhcp_v4"`
	DHCPv6   bool   `yaml:"dhcp_v6"`
}

// Firewall is the per-VM firewall setup.
type Firewall struct {
	Enable       *bool  `yaml:"enable"`     // default true
	PolicyIn     string `yaml:"policy_in"`  // ACCEPT | DROP | REJECT
	PolicyOut    string `yaml:"policy_out"` // ACCEPT | DROP | REJECT
	LogLevelIn   string `yaml:"log_level_in"`
	LogLevelOut  string `yaml:"log_level_out"`
	DHCP         *bool  `yaml:"dhcp"`      // default true
	NDP          *bool  `yaml:"ndp"`       // default true
	RADV         bool   `yaml:"radv"`      // default false
	MACFilter    *bool  `yaml:"macfilter"` // default true
	IPFilter     bool   `yaml:"ipfilter"`  // default false
	AntiSpoofing *bool  `yaml:"anti_spoofing"`
}

// CloudInit is what the cloud-init drive receives besides IPs and keys.
type CloudInit struct {
	User       string   `yaml:"user"`
	DNSServers []string `yaml:"dns_servers"`
	// SearchDomain is optional.
	SearchDomain string `yaml:"search_domain"`
}

// IPPool is a range of addresses for VMs on given nodes, bridge and VLAN.
type IPPool struct {
	Name       string   `yaml:"name"`
	Nodes      []string `yaml:"nodes"`
	Family     int      `yaml:"family" valid:"4 or 6"` // 4 | 6
	Bridge     string   `yaml:"bridge"`
	VLAN       int      `yaml:"vlan" valid:"0 (untagged) to 4094"`
	Network    string   `yaml:"network"` // CIDR
	Gateway    string   `yaml:"gateway"`
	DNSServers []string `yaml:"dns_servers"`
	First      string   `yaml:"first"`
	Last       string   `yaml:"last"`
}

// Prefix is the pool's network (valid after Load).
func (p IPPool) Prefix() netip.Prefix { return netip.MustParsePrefix(p.Network) }

// DNS holds the zones pvectl updates by RFC 2136.
type DNS struct {
	Zones   []Zone   `yaml:"zones"`
	Timeout Duration `yaml:"timeout"`
	TTL     int      `yaml:"ttl" valid:"1..2147483647 (seconds)"`
}

// Zone is one dynamically updated DNS zone.
type Zone struct {
	Name       string `yaml:"name"`
	Server     string `yaml:"server"` // host:port
	KeyName    string `yaml:"key_name"`
	Algorithm  string `yaml:"algorithm"` // hmac-sha256 (default) | hmac-sha512 | hmac-sha1
	Secret     Secret `yaml:"secret"`
	SecretFile string `yaml:"secret_file"`
	// AllowApex lets a VM's hostname be the zone's own name (its apex, where
	// the zone's SOA and NS live). Default false: vm create refuses it and the
	// DNS step holds such a VM. Forward zones only.
	AllowApex bool `yaml:"allow_apex"`
}

// Tasks configures the scheduled tasks.
type Tasks struct {
	// Intervals per task name; 0 disables a task. Missing = the task's default.
	Intervals  map[string]Duration `yaml:"intervals"`
	ProcessVMs ProcessVMs          `yaml:"process_vms"`
}

// ProcessVMs tunes the step runner.
type ProcessVMs struct {
	StepsPerTick int `yaml:"steps_per_tick" valid:"1 or more"` // default 1
	Concurrency  int `yaml:"concurrency" valid:"1 or more"`    // default 8
	// HeavyPerNode caps in-flight heavy tasks (clone, migrate, backup) per node; default 2.
	HeavyPerNode int `yaml:"heavy_per_node" valid:"1 or more"`
	// StopTimeout is how long a graceful shutdown may take before a forced stop.
	StopTimeout Duration `yaml:"stop_timeout"`
	// StartWaitTicks is how many ticks to wait for a started guest to run.
	StartWaitTicks int `yaml:"start_wait_ticks" valid:"1 or more"`
	// TerminateDeleteAttempts: transient DELETE failures before error_terminate.
	TerminateDeleteAttempts int `yaml:"terminate_delete_attempts" valid:"1 or more"`
	// StaleLockAfter: how long a VM's config lock (clone, migrate) may block
	// its step with no pvectl task behind it before the VM is held.
	StaleLockAfter Duration `yaml:"stale_lock_after"`
	// RebootFallback: when a `vm reboot` fails because the guest ignored
	// the ACPI request, force a stop and start the VM again (default true).
	RebootFallback *bool `yaml:"reboot_fallback"`
}

// RebootFallbackOn reports whether a failed reboot falls back to a forced
// stop and a start (reboot_fallback, default true).
func (p ProcessVMs) RebootFallbackOn() bool { return p.RebootFallback == nil || *p.RebootFallback }

// Path is the file the config was loaded from.
func (c *Config) Path() string { return c.path }

// Load reads, decodes and validates the config file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates config bytes; path is used in messages.
func Parse(path string, data []byte) (*Config, error) {
	c := &Config{path: path}
	file, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, c.yamlError(err, nil)
	}
	c.file = file
	if err := c.checkFile(file); err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data), yaml.DisallowUnknownField())
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, c.yamlError(err, file)
	}
	c.applyDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Error is a config problem at a place in the file.
type Error struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, ": %s", e.Key)
	}
	fmt.Fprintf(&b, ": %s", e.Msg)
	return b.String()
}

func (c *Config) yamlError(err error, file *ast.File) error {
	var de *durationError
	if errors.As(err, &de) && file != nil {
		key := ""
		if de.line > 0 {
			key = keyAt(file, de.line, de.col)
		}
		return &Error{File: c.path, Line: de.line, Key: key, Msg: de.Error()}
	}
	var ye yaml.Error
	if !errors.As(err, &ye) {
		return &Error{File: c.path, Msg: err.Error()}
	}
	tk := ye.GetToken()
	e := &Error{File: c.path, Msg: ye.GetMessage()}
	if tk != nil && tk.Position != nil {
		e.Line = tk.Position.Line
		if file != nil {
			e.Key = keyAt(file, tk.Position.Line, tk.Position.Column)
		}
	}
	var ue *yaml.UnknownFieldError
	if errors.As(err, &ue) {
		e.Msg = ue.Message + " (see docs/pvectl.example.yaml for valid keys)"
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		e.Msg = fmt.Sprintf("wrong type: want %s", friendlyType(te.DstType.String()))
	}
	return e
}

func friendlyType(t string) string {
	switch {
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		return "a whole number"
	case t == "bool" || t == "*bool":
		return "true or false"
	case t == "string":
		return "a string"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["), strings.HasPrefix(t, "config."):
		return "a mapping"
	}
	return t
}

// keyAt returns the dotted key path of the mapping key or value at line:col.
// An exact position match wins over a key that merely shares the line.
func keyAt(file *ast.File, line, col int) string {
	for _, exact := range []bool{true, false} {
		for _, doc := range file.Docs {
			if p, ok := findPath(doc.Body, "", line, col, exact); ok {
				return p
			}
		}
	}
	return ""
}

func findPath(n ast.Node, prefix string, line, col int, exact bool) (string, bool) {
	switch v := n.(type) {
	case *ast.MappingNode:
		for _, mv := range v.Values {
			if p, ok := findPath(mv, prefix, line, col, exact); ok {
				return p, true
			}
		}
	case *ast.MappingValueNode:
		key := prefix + v.Key.String()
		if prefix != "" && !strings.HasSuffix(prefix, ".") {
			key = prefix + "." + v.Key.String()
		}
		if p, ok := findPath(v.Value, key, line, col, exact); ok {
			return p, true
		}
		for _, tk := range []*token.Token{v.Key.GetToken(), v.Value.GetToken()} {
			if tk != nil && tk.Position.Line == line && (!exact || tk.Position.Column == col) {
				return key, true
			}
		}
	case *ast.SequenceNode:
		for i, item := range v.Values {
			if p, ok := findPath(item, fmt.Sprintf("%s[%d]", prefix, i), line, col, exact); ok {
				return p, true
			}
		}
	case *ast.TagNode:
		return findPath(v.Value, prefix, line, col, exact)
	case *ast.AnchorNode:
		return findPath(v.Value, prefix, line, col, exact)
	}
	return "", false
}

// lineOf returns the line of a dotted key, or of its nearest existing parent.
func (c *Config) lineOf(key string) int {
	if c.file == nil {
		return 0
	}
	for k := key; k != ""; {
		p, err := yaml.PathString("$." + quotePath(k))
		if err == nil {
			if n, err := p.FilterFile(c.file); err == nil && n != nil && n.GetToken() != nil {
				return n.GetToken().Position.Line
			}
		}
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return 0
}

func quotePath(k string) string {
	parts := strings.Split(k, ".")
	for i, p := range parts {
		name, idx, _ := strings.Cut(p, "[")
		if strings.ContainsAny(name, "-/ ") {
			name = "'" + name + "'"
		}
		if idx != "" {
			name += "[" + idx
		}
		parts[i] = name
	}
	return strings.Join(parts, ".")
}

// Errorf builds an Error for a dotted key, with that key's line in the file.
func (c *Config) Errorf(key, format string, args ...any) error {
	return &Error{File: c.path, Line: c.lineOf(key), Key: key, Msg: fmt.Sprintf(format, args...)}
}

// ProductNames returns the products' names, sorted.
func (c *Config) ProductNames() []string {
	out := make([]string, 0, len(c.Products))
	for n := range c.Products {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Secret is a string that never prints itself.
type Secret string

// String redacts the secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString redacts the secret in %#v.
func (s Secret) GoString() string { return `config.Secret("[redacted]")` }

// Reveal returns the secret's value, for the one call that needs it.
func (s Secret) Reveal() string { return string(s) }

// Duration is a time.Duration written as "90s", "5m", "1h30m" or 0.
type Duration time.Duration

// UnmarshalYAML accepts a Go duration string or the integer 0. It reads the
// YAML node itself, so an invalid value is reported at its own line and key.
func (d *Duration) UnmarshalYAML(node ast.Node) error {
	de := &durationError{value: node.String()}
	if tk := node.GetToken(); tk != nil && tk.Position != nil {
		de.line, de.col = tk.Position.Line, tk.Position.Column
		de.value = tk.Value
	}
	switch n := node.(type) {
	case *ast.IntegerNode:
		if fmt.Sprint(n.Value) == "0" {
			*d = 0
			return nil
		}
	case *ast.StringNode:
		p, err := time.ParseDuration(n.Value)
		if err != nil || p < 0 {
			return de
		}
		*d = Duration(p)
		return nil
	}
	return de
}

type durationError struct {
	value     string
	line, col int
}

func (e *durationError) Error() string {
	return fmt.Sprintf("invalid duration %q: use a number with a unit, like 90s, 5m or 1h (0 disables)", e.value)
}

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }
