package pvesim

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
)

// Duration is a time.Duration written as "5s", "1m30s" in YAML and JSON.
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(strings.TrimSpace(string(b)))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText renders the duration as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Size is a byte count written as a number of bytes or with a K/M/G/T suffix
// (powers of 1024) in YAML and JSON: 34359738368, "32G", "512M".
type Size int64

// UnmarshalText parses a size.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := parseSize(strings.TrimSpace(string(b)), 1)
	if err != nil {
		return err
	}
	*s = Size(v)
	return nil
}

// MarshalText renders the size in bytes.
func (s Size) MarshalText() ([]byte, error) { return []byte(strconv.FormatInt(int64(s), 10)), nil }

// parseSize parses "\d+(\.\d+)?[KMGT]?"; a number without unit is multiplied
// by noUnit (1 for bytes, 1<<30 for PVE's "STORAGE:SIZE_IN_GiB").
func parseSize(s string, noUnit float64) (int64, error) {
	if s == "" {
		return 0, fmt.Errorf("empty size")
	}
	mult, num := noUnit, s
	if i := strings.IndexByte("KMGT", strings.ToUpper(s[len(s)-1:])[0]); i >= 0 {
		mult, num = float64(int64(1)<<(10*(i+1))), s[:len(s)-1]
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	return int64(f * mult), nil
}

// Cluster describes the simulated datacenter. It is what cluster.yaml holds.
type Cluster struct {
	// Name of the cluster (GET /cluster/status). Default "pvesim".
	Name string `yaml:"name" json:"name"`
	// Version is the PVE version reported by /version and used for
	// version-dependent behaviour: "7.x" returns null from resize, and
	// LegacyErrorBody is implied for versions before 8.3. Default "8.4.5".
	Version string `yaml:"version" json:"version"`
	// LegacyErrorBody sends error bodies as {"data":null} without
	// "message" (pve-http-server before 5.2.0).
	LegacyErrorBody bool         `yaml:"legacy_error_body" json:"legacy_error_body"`
	Nodes           []NodeSpec   `yaml:"nodes" json:"nodes"`
	Tokens          []TokenSpec  `yaml:"tokens" json:"tokens"`
	VMs             []VMSpec     `yaml:"vms" json:"vms"`
	Durations       DurationSpec `yaml:"durations" json:"durations"`
	// NextIDLower/Upper is the datacenter next-id range (default 100..1000000).
	NextIDLower int `yaml:"nextid_lower" json:"nextid_lower"`
	NextIDUpper int `yaml:"nextid_upper" json:"nextid_upper"`
	// Access seeds users, groups, tokens, roles, pools and ACL entries
	// (handlers_access.go).
	Access AccessSpec `yaml:"access" json:"access"`
	// Traffic is the rrddata traffic every VM gets when it is created
	// (clone, restore, vms above without their own): base rates in bytes/s,
	// daily to vary them by hour of day (rrd.go). Default: none.
	Traffic *TrafficSpec `yaml:"traffic" json:"traffic"`
}

// DurationSpec sets simulated times.
type DurationSpec struct {
	// Task is the default duration of every task (default 1s).
	Task Duration `yaml:"task" json:"task"`
	// Tasks overrides per task type: qmclone, qmstart, vzdump, ...
	Tasks map[string]Duration `yaml:"tasks" json:"tasks"`
	// Stats is how long a new VM shows status "unknown" in
	// /cluster/resources until pvestatd has data (real PVE: ~10s; 0 = none).
	Stats Duration `yaml:"stats" json:"stats"`
	// AuthFailure delays 401 answers (real PVE: 3s; default 0).
	AuthFailure Duration `yaml:"auth_failure" json:"auth_failure"`
}

// NodeSpec is one cluster node.
type NodeSpec struct {
	Name     string        `yaml:"name" json:"name"`
	Memory   Size          `yaml:"memory" json:"memory"` // total RAM (default 64G)
	CPUs     int           `yaml:"cpus" json:"cpus"`     // default 16
	Offline  bool          `yaml:"offline" json:"offline"`
	Storages []StorageSpec `yaml:"storages" json:"storages"`
	// Bridges are the node's network bridges (/sys/class/net/<name>). A
	// guest whose netN names another bridge fails to start as on PVE
	// ("bridge 'x' does not exist", "start failed: QEMU exited with code
	// 1"). Empty means DefaultBridges.
	Bridges []string `yaml:"bridges" json:"bridges"`
}

// DefaultBridges are the bridges of a node whose NodeSpec declares none.
func DefaultBridges() []string { return []string{"vmbr0", "vmbr1"} }

// StorageSpec is one storage as seen on a node.
type StorageSpec struct {
	Name string `yaml:"name" json:"name"`
	// Type is the plugin type: dir, lvmthin, lvm, zfspool, nfs, pbs, ...
	Type string `yaml:"type" json:"type"`
	// Content types: images, rootdir, iso, vztmpl, backup, snippets, import.
	Content  []string `yaml:"content" json:"content"`
	Total    Size     `yaml:"total" json:"total"` // capacity (default 1T)
	Used     Size     `yaml:"used" json:"used"`   // initially used
	Shared   bool     `yaml:"shared" json:"shared"`
	Disabled bool     `yaml:"disabled" json:"disabled"`
	Offline  bool     `yaml:"offline" json:"offline"` // "is not online"
	// PruneBackups is the storage's retention (storage.cfg prune-backups):
	// "" or "keep-all=1" keeps everything; "keep-last=N" makes vzdump with
	// remove=1 (PVE's default) prune a guest's older unprotected backups,
	// and vzdump with remove=0 fail once N unprotected backups exist. Other
	// keep-* options are not simulated (New rejects them).
	PruneBackups string `yaml:"prune_backups" json:"prune_backups,omitempty"`
	// MaxProtectedBackups is storage.cfg max-protected-backups: how many
	// protected backups a guest may have on this storage (-1 unlimited).
	// Unset: unlimited for tokens with Datastore.Allocate on the storage,
	// else 5 (PVE::Storage::get_max_protected_backups).
	MaxProtectedBackups *int `yaml:"max_protected_backups" json:"max_protected_backups,omitempty"`
}

// TokenSpec is an API token.
type TokenSpec struct {
	// ID is "user@realm!tokenname".
	ID     string `yaml:"id" json:"id"`
	Secret string `yaml:"secret" json:"secret"`
	// Grants limits the token (privilege separation). Empty means every
	// privilege everywhere (like root@pam!x without privsep).
	Grants []Grant `yaml:"grants" json:"grants"`
}

// Grant gives privileges on an ACL path and everything below it
// ("/", "/vms", "/vms/101", "/storage/local", "/nodes/pve1").
// Privs may contain "*" for all.
type Grant struct {
	Path  string   `yaml:"path" json:"path"`
	Privs []string `yaml:"privs" json:"privs"`
}

// VMSpec is a VM (or template) present at start.
type VMSpec struct {
	VMID int    `yaml:"vmid" json:"vmid"`
	Node string `yaml:"node" json:"node"`
	// Config holds config keys as PVE stores them (strings), e.g.
	// "scsi0": "local-lvm:base-9000-disk-0,size=32G", "template": "1".
	// Disks named here are allocated on their storage.
	Config  map[string]string `yaml:"config" json:"config"`
	Running bool              `yaml:"running" json:"running"`
	// Traffic is the VM's rrddata traffic (default: Cluster.Traffic).
	Traffic *TrafficSpec `yaml:"traffic" json:"traffic"`
}

// DefaultStart is the manual clock's default start time.
var DefaultStart = time.Date(2025, 6, 2, 10, 0, 0, 0, time.UTC)

// Default token of DefaultCluster.
const (
	DefaultTokenID = "pvectl@pve!ci"
	DefaultSecret  = "00000000-0000-4000-8000-000000000001"
)

// DefaultCluster is the cluster of testdata/pvesim/cluster.yaml: nodes pve1
// and pve2, storages local (dir: iso, vztmpl, backup, snippets) and
// local-lvm (lvmthin: images, rootdir) and bridges vmbr0 and vmbr1 on both,
// template 9000 on pve1 with scsi0 on local-lvm, token
// DefaultTokenID/DefaultSecret.
func DefaultCluster() Cluster {
	storages := func() []StorageSpec {
		return []StorageSpec{
			{Name: "local", Type: "dir", Content: []string{"iso", "vztmpl", "backup", "snippets"}, Total: 100 << 30, Used: 10 << 30},
			{Name: "local-lvm", Type: "lvmthin", Content: []string{"images", "rootdir"}, Total: 500 << 30},
		}
	}
	return Cluster{
		Name:    "pvesim",
		Version: "8.4.5",
		Nodes: []NodeSpec{
			{Name: "pve1", Memory: 64 << 30, CPUs: 16, Storages: storages(), Bridges: DefaultBridges()},
			{Name: "pve2", Memory: 64 << 30, CPUs: 16, Storages: storages(), Bridges: DefaultBridges()},
		},
		Tokens: []TokenSpec{{ID: DefaultTokenID, Secret: DefaultSecret}},
		VMs: []VMSpec{{
			VMID: 9000, Node: "pve1",
			Config: map[string]string{
				"name":     "debian-12-template",
				"template": "1",
				"cores":    "2",
				"memory":   "2048",
				"ostype":   "l26",
				"scsihw":   "virtio-scsi-single",
				"scsi0":    "local-lvm:base-9000-disk-0,size=32G",
				"ide2":     "local-lvm:vm-9000-cloudinit,media=cdrom",
				"net0":     "virtio=BC:24:11:00:90:00,bridge=vmbr0",
				"boot":     "order=scsi0",
				"agent":    "1",
				"serial0":  "socket",
				"vga":      "serial0",
			},
		}},
		Durations: DurationSpec{
			Task:  Duration(time.Second),
			Tasks: map[string]Duration{"qmclone": Duration(5 * time.Second), "qmstart": Duration(3 * time.Second), "vzdump": Duration(10 * time.Second), "qmigrate": Duration(10 * time.Second), "qmrestore": Duration(10 * time.Second)},
			Stats: Duration(10 * time.Second),
		},
	}
}

// ParseCluster reads a cluster description in YAML.
func ParseCluster(b []byte) (Cluster, error) {
	var c Cluster
	if err := yaml.UnmarshalWithOptions(b, &c, yaml.Strict()); err != nil {
		return Cluster{}, fmt.Errorf("cluster yaml: %w", err)
	}
	return c, nil
}

// LoadCluster reads a cluster description from a YAML file.
func LoadCluster(path string) (Cluster, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Cluster{}, err
	}
	return ParseCluster(b)
}
