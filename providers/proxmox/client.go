// Package proxmox is pvectl's view of the Proxmox VE API: a small Client
// interface written from what the pipelines need, an adapter on
// github.com/luthermonson/go-proxmox (adapter.go), and the one place that
// turns PVE's errors into typed errors the engine understands (errors.go).
//
// Contract shared by every method:
//
//   - Nothing blocks on a PVE task. An operation PVE runs as a worker task
//     returns its TaskRef as soon as PVE has accepted it; the caller stores
//     the TaskRef and reads TaskStatus on a later tick.
//   - Every error returned is, or wraps, an *Error whose Class says what
//     happened (Classify, IsRetryable, IsNotFound, …). A failed task is not
//     an error of the call that started it: it is reported by
//     TaskStatus(…).Err().
//   - No go-proxmox type crosses this interface; values are plain structs.
//   - Reads are side-effect free. Methods documented as idempotent may be
//     repeated with the same arguments without changing the outcome.
//   - A read (GET) that fails with a ClassTransient error is sent again
//     inside the call, at most ReadAttempts times in all, with a short
//     backoff that never waits past ctx's deadline. Nothing else is ever
//     retried inside a call: mutations and every other class come back at
//     once.
//   - "Not found" (IsNotFound) always means the addressed object (VM, task,
//     IP set, IP set entry, snapshot) does not exist. An unknown node,
//     storage or template is never reported as not found: those are
//     ClassInvalid or ClassStorage, so that "the VM is gone" can be trusted.
package proxmox

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client is everything pvectl asks of a Proxmox VE cluster.
type Client interface {
	// ClusterResources lists cluster-wide resources (GET /cluster/resources).
	// kind filters by type; ResourceAll lists everything. VM entries carry
	// VMID, Name, Node, Status, Lock, Tags, Pool and Template; node entries
	// carry Node, Status (online/offline), Mem/MaxMem; storage entries carry
	// Node, Storage, Status, Disk/MaxDisk and Content. A VM that was just
	// created may show Status "unknown" for a few seconds.
	ClusterResources(ctx context.Context, kind ResourceType) ([]Resource, error)

	// NodeStatus reads one node's status (GET /nodes/{node}/status). An
	// unreachable node gives a Transient error (595).
	NodeStatus(ctx context.Context, node string) (NodeStatus, error)

	// StorageStatus reads one storage as seen from a node
	// (GET /nodes/{node}/storage/{storage}/status): free space,
	// enabled/active, content types.
	StorageStatus(ctx context.Context, node, storage string) (StorageStatus, error)

	// VMStatus reads the run state of a VM (GET …/status/current). A missing
	// VM gives IsNotFound.
	VMStatus(ctx context.Context, vm VMRef) (VMStatus, error)

	// VMConfig reads a VM's configuration with pending changes applied
	// (GET …/config), including its digest. A missing VM gives IsNotFound.
	VMConfig(ctx context.Context, vm VMRef) (VMConfig, error)

	// SetConfig changes configuration asynchronously (POST …/config) and
	// returns the qmconfig task. PVE checks the VM lock synchronously, so a
	// locked VM fails here with ClassLocked. Idempotent when Set holds
	// absolute values.
	SetConfig(ctx context.Context, vm VMRef, change ConfigChange) (TaskRef, error)

	// SetConfigSync changes configuration synchronously (PUT …/config). Use
	// it only for keys that need neither hotplug nor storage allocation.
	// Idempotent when Set holds absolute values.
	SetConfigSync(ctx context.Context, vm VMRef, change ConfigChange) error

	// Clone clones req.Source to req.NewID (POST …/clone) and returns the
	// qmclone task, whose UPID names the *source* VMID. PVE's clone cannot
	// set tags: set them with SetConfig afterwards. Not idempotent: a second
	// call for the same NewID fails (in the task) with ClassAlreadyExists,
	// so look for the target VM before cloning.
	Clone(ctx context.Context, req CloneRequest) (TaskRef, error)

	// ResizeDisk grows a disk (PUT …/resize). size is PVE's syntax: "40G"
	// sets the absolute size, "+10G" grows by that much; use absolute sizes
	// to stay idempotent (same size = no-op). PVE 8+ returns a resize task;
	// PVE 7 resizes synchronously and the returned TaskRef is zero
	// (TaskRef.IsZero). Shrinking fails in the task with ClassInvalid.
	ResizeDisk(ctx context.Context, vm VMRef, disk, size string) (TaskRef, error)

	// Migrate moves a stopped VM to another node (POST …/migrate, offline)
	// and returns the qmigrate task. A running VM fails with
	// ClassPrecondition.
	Migrate(ctx context.Context, req MigrateRequest) (TaskRef, error)

	// Start starts a VM (POST …/status/start) and returns the qmstart task.
	// Starting a running VM is accepted by PVE and the task then fails with
	// ClassAlreadyRunning, which callers treat as success.
	Start(ctx context.Context, vm VMRef, opts StartOptions) (TaskRef, error)

	// Shutdown asks the guest to power off (POST …/status/shutdown) and
	// returns the qmshutdown task. Without ForceStop a guest that does not
	// stop within Timeout fails the task (Transient). Idempotent: a stopped
	// VM ends the task OK.
	Shutdown(ctx context.Context, vm VMRef, opts ShutdownOptions) (TaskRef, error)

	// Stop pulls the plug (POST …/status/stop) and returns the qmstop task.
	// Idempotent: a stopped VM ends the task OK.
	Stop(ctx context.Context, vm VMRef, opts StopOptions) (TaskRef, error)

	// Delete destroys a VM (DELETE /nodes/{node}/qemu/{vmid}) and returns
	// the qmdestroy task. A VM that does not exist gives IsNotFound, which
	// callers treat as already deleted. A running VM fails with
	// ClassPrecondition.
	Delete(ctx context.Context, vm VMRef, opts DeleteOptions) (TaskRef, error)

	// TaskStatus reads a task from its stored reference
	// (GET /nodes/{node}/tasks/{upid}/status). The returned error is about
	// reading the status (an unknown UPID gives IsNotFound); whether the
	// task itself failed is TaskStatus.Err.
	TaskStatus(ctx context.Context, task TaskRef) (TaskStatus, error)

	// TaskLog reads task log lines (GET …/tasks/{upid}/log) starting at the
	// 0-based line start, at most limit lines (0 = PVE's default of 50).
	TaskLog(ctx context.Context, task TaskRef, start, limit int) ([]TaskLogLine, error)

	// FirewallOptions reads the VM's firewall options. Keys PVE does not
	// report are nil (PVE's default applies).
	FirewallOptions(ctx context.Context, vm VMRef) (FirewallOptions, error)

	// SetFirewallOptions sets the non-nil options (PUT …/firewall/options);
	// false is sent as 0. Synchronous and idempotent.
	SetFirewallOptions(ctx context.Context, vm VMRef, opts FirewallOptions) error

	// IPSets lists the VM's IP sets.
	IPSets(ctx context.Context, vm VMRef) ([]IPSet, error)

	// CreateIPSet creates an empty IP set. An existing one gives
	// ClassAlreadyExists.
	CreateIPSet(ctx context.Context, vm VMRef, name, comment string) error

	// DeleteIPSet deletes an IP set; force also deletes a non-empty one
	// (without force that fails with ClassPrecondition). A missing set gives
	// IsNotFound.
	DeleteIPSet(ctx context.Context, vm VMRef, name string, force bool) error

	// IPSetEntries lists an IP set's entries. A missing set gives IsNotFound.
	IPSetEntries(ctx context.Context, vm VMRef, name string) ([]IPSetEntry, error)

	// AddIPSetEntry adds an address or network. An existing one gives
	// ClassAlreadyExists.
	AddIPSetEntry(ctx context.Context, vm VMRef, name string, entry IPSetEntry) error

	// RemoveIPSetEntry removes an address or network. A missing one gives
	// IsNotFound.
	RemoveIPSetEntry(ctx context.Context, vm VMRef, name, cidr string) error

	// SetCloudInit writes the non-empty cloud-init keys synchronously
	// (PUT …/config). SSH keys are sent in PVE's encoding (EncodeSSHKeys).
	// PVE regenerates the cloud-init drive at the next start. Idempotent.
	SetCloudInit(ctx context.Context, vm VMRef, ci CloudInit) error

	// Backup starts a vzdump of one VM on its node and returns the vzdump
	// task. The archive appears in the storage content when the task ends.
	Backup(ctx context.Context, req BackupRequest) (TaskRef, error)

	// StorageContent lists volumes of a storage as seen from a node,
	// optionally filtered by content type and VMID.
	StorageContent(ctx context.Context, node, storage string, filter ContentFilter) ([]Volume, error)

	// DeleteVolume deletes a volume (e.g. a backup archive) and returns the
	// imgdel task; the TaskRef is zero if PVE finished synchronously.
	DeleteVolume(ctx context.Context, node, storage, volid string) (TaskRef, error)

	// Restore creates VM req.VMID from a backup archive (POST /nodes/{node}/qemu
	// with archive) and returns the qmrestore task. An existing VMID without
	// Force gives ClassAlreadyExists.
	Restore(ctx context.Context, req RestoreRequest) (TaskRef, error)

	// Snapshots lists a VM's snapshots, without PVE's "current" pseudo entry.
	Snapshots(ctx context.Context, vm VMRef) ([]Snapshot, error)

	// CreateSnapshot starts a qmsnapshot task.
	CreateSnapshot(ctx context.Context, vm VMRef, req SnapshotRequest) (TaskRef, error)

	// DeleteSnapshot starts a qmdelsnapshot task; force removes the snapshot
	// from the config even if its disks cannot be removed.
	DeleteSnapshot(ctx context.Context, vm VMRef, name string, force bool) (TaskRef, error)

	// RRDData reads a VM's RRD statistics (GET …/rrddata).
	RRDData(ctx context.Context, vm VMRef, timeframe Timeframe, cf ConsolidationFunction) ([]RRDPoint, error)
}

// VMRef addresses a VM: the node it lives on and its VMID.
type VMRef struct {
	Node string
	VMID int
}

func (r VMRef) String() string { return fmt.Sprintf("%s/%d", r.Node, r.VMID) }

// TaskRef is what pvectl persists to follow a PVE task across ticks: the
// node that runs it and its UPID. A zero TaskRef means PVE did the work
// synchronously and there is nothing to wait for.
type TaskRef struct {
	Node string
	UPID string
}

// IsZero reports whether there is no task to follow.
func (t TaskRef) IsZero() bool { return t.UPID == "" }

func (t TaskRef) String() string { return t.UPID }

// ParseUPID checks a UPID's format (UPID:node:pid:pstart:starttime:type:id:user:)
// and returns the TaskRef for it (Node taken from the UPID) plus the task
// type and id.
func ParseUPID(upid string) (ref TaskRef, taskType, id string, err error) {
	f := strings.Split(upid, ":")
	if len(f) != 9 || f[0] != "UPID" || f[8] != "" || f[1] == "" || f[5] == "" || f[7] == "" {
		return TaskRef{}, "", "", &Error{Class: ClassInvalid, Op: "parse upid", Message: fmt.Sprintf("unable to parse worker upid '%s'", upid)}
	}
	return TaskRef{Node: f[1], UPID: upid}, f[5], f[6], nil
}

// TaskStatus is a task's state as PVE reports it.
type TaskStatus struct {
	Task TaskRef
	// Type is the worker type (qmclone, qmstart, vzdump, …); ID is the
	// guest id in the UPID (for qmclone the *source* VMID); User is the
	// user (and token) that started it.
	Type, ID, User string
	// Running is true while PVE reports "running".
	Running bool
	// ExitStatus is empty while running, then "OK", "WARNINGS: n" or the
	// error text.
	ExitStatus string
	StartTime  time.Time
}

// Done reports whether the task has stopped.
func (s TaskStatus) Done() bool { return !s.Running }

// Succeeded reports whether the task stopped with OK or WARNINGS: n.
func (s TaskStatus) Succeeded() bool { return !s.Running && taskExitOK(s.ExitStatus) }

// Err is nil while the task runs or when it succeeded; otherwise an *Error
// carrying the exit status as Message, classified like any PVE error.
func (s TaskStatus) Err() error {
	if s.Running || taskExitOK(s.ExitStatus) {
		return nil
	}
	return taskError(s)
}

// TaskLogLine is one line of a task log; N is 1-based as PVE numbers it.
type TaskLogLine struct {
	N    int
	Text string
}

// ResourceType filters ClusterResources.
type ResourceType string

// Resource types accepted by ClusterResources.
const (
	ResourceAll     ResourceType = ""
	ResourceVM      ResourceType = "vm"
	ResourceNode    ResourceType = "node"
	ResourceStorage ResourceType = "storage"
)

// Resource is one entry of /cluster/resources.
type Resource struct {
	ID       string // "qemu/100", "node/pve", "storage/pve/local"
	Type     string // "qemu", "lxc", "node", "storage", "pool", "sdn"
	VMID     int
	Name     string
	Node     string
	Status   string
	Lock     string
	Tags     []string
	Pool     string
	Template bool
	HAState  string
	Storage  string
	Content  []string
	Shared   bool
	CPU      float64
	MaxCPU   float64
	Mem      int64
	MaxMem   int64
	Disk     int64
	MaxDisk  int64
	Uptime   time.Duration
}

// IsVM reports whether the resource is a QEMU guest.
func (r Resource) IsVM() bool { return r.Type == "qemu" }

// HasTag reports whether the resource carries tag t.
func (r Resource) HasTag(t string) bool { return hasTag(r.Tags, t) }

// NodeStatus is the part of /nodes/{node}/status pvectl uses.
type NodeStatus struct {
	Node        string
	MemoryTotal int64
	MemoryUsed  int64
	MemoryFree  int64
	CPU         float64
	CPUs        int
	Uptime      time.Duration
	PVEVersion  string
}

// StorageStatus is /nodes/{node}/storage/{storage}/status.
type StorageStatus struct {
	Node    string
	Storage string
	Type    string
	Content []string
	Total   int64
	Used    int64
	Avail   int64
	Enabled bool
	Active  bool
	Shared  bool
}

// HasContent reports whether the storage holds content type c (images, backup, …).
func (s StorageStatus) HasContent(c string) bool { return hasTag(s.Content, c) }

// VMStatus is /nodes/{node}/qemu/{vmid}/status/current.
type VMStatus struct {
	VM        VMRef
	Name      string
	Status    string // "running" or "stopped"
	QMPStatus string // "running", "paused", "prelaunch", … (only when running)
	Lock      string
	Tags      []string
	Template  bool
	CPUs      int
	MaxMem    int64
	Mem       int64
	MaxDisk   int64
	Uptime    time.Duration
	HAManaged bool
}

// Running reports whether the guest runs (and is not paused).
func (s VMStatus) Running() bool {
	return s.Status == "running" && (s.QMPStatus == "" || s.QMPStatus == "running")
}

// Stopped reports whether QEMU is not running.
func (s VMStatus) Stopped() bool { return s.Status == "stopped" }

// VMConfig is a VM's configuration: every key PVE returned, as PVE's text
// (numbers in decimal), and the digest for optimistic concurrency.
type VMConfig struct {
	VM     VMRef
	Digest string
	Values map[string]string
}

// Get returns a key's value and whether it is set.
func (c VMConfig) Get(key string) (string, bool) { v, ok := c.Values[key]; return v, ok }

// Name is the VM's name (empty if unset).
func (c VMConfig) Name() string { return c.Values["name"] }

// Description is the VM's description (notes).
func (c VMConfig) Description() string { return c.Values["description"] }

// Lock is the config lock (clone, backup, migrate, …) or "".
func (c VMConfig) Lock() string { return c.Values["lock"] }

// Template reports whether the VM is a template.
func (c VMConfig) Template() bool { return c.Values["template"] == "1" }

// Tags are the VM's tags (PVE separates them with ';', ',' or spaces).
func (c VMConfig) Tags() []string { return splitTags(c.Values["tags"]) }

// HasTag reports whether the VM carries tag t.
func (c VMConfig) HasTag(t string) bool { return hasTag(c.Tags(), t) }

// SSHKeys decodes the sshkeys key (PVE stores it URL-encoded).
func (c VMConfig) SSHKeys() []string { return DecodeSSHKeys(c.Values["sshkeys"]) }

// DiskSize returns the size= of a disk key such as "scsi0", in bytes.
func (c VMConfig) DiskSize(key string) (int64, bool) {
	v, ok := c.Values[key]
	if !ok {
		return 0, false
	}
	_, props := ParsePropertyString(v)
	s, ok := props["size"]
	if !ok {
		return 0, false
	}
	n, err := ParseSize(s)
	return n, err == nil
}

// ConfigChange is one config update. Set holds PVE's text form of each
// value ("4", "1", "virtio=…,bridge=vmbr0"); the adapter sends integers and
// booleans of the PVE schema as JSON numbers. Delete lists keys to remove.
// Digest, when set, makes PVE refuse the change if the config changed since
// it was read (ClassConflict).
type ConfigChange struct {
	Set      map[string]string
	Delete   []string
	Digest   string
	SkipLock bool
}

// CloneMode chooses a linked or full clone.
type CloneMode int

// Clone modes. CloneDefault lets PVE choose (linked for templates, full otherwise).
const (
	CloneDefault CloneMode = iota
	CloneLinked
	CloneFull
)

// CloneRequest is POST /nodes/{node}/qemu/{vmid}/clone.
type CloneRequest struct {
	Source      VMRef
	NewID       int
	Name        string // DNS name
	Description string
	Pool        string
	Mode        CloneMode
	// Target is the node for the new VM (shared storage only); "" = same node.
	Target string
	// Storage for the new disks; full clones only.
	Storage string
	// Format raw|qcow2|vmdk; full clones only.
	Format string
}

// MigrateRequest is an offline POST …/migrate.
type MigrateRequest struct {
	VM     VMRef
	Target string
	// TargetStorage maps disks to a storage on the target ("local-lvm",
	// or "src:dst,…"); "" keeps the same storage names.
	TargetStorage string
	// BWLimitKiB limits bandwidth in KiB/s; 0 = PVE's default.
	BWLimitKiB int
}

// StartOptions are optional parameters of status/start.
type StartOptions struct {
	Timeout  time.Duration // 0 = PVE's default
	SkipLock bool          // root@pam only
}

// ShutdownOptions are optional parameters of status/shutdown.
type ShutdownOptions struct {
	Timeout   time.Duration // 0 = PVE's default (60 s)
	ForceStop bool          // stop the VM if the guest did not shut down in time
	SkipLock  bool          // root@pam only
}

// StopOptions are optional parameters of status/stop.
type StopOptions struct {
	Timeout          time.Duration
	SkipLock         bool // root@pam only
	OverruleShutdown bool // abort running qmshutdown tasks first
}

// DeleteOptions are optional parameters of DELETE /nodes/{node}/qemu/{vmid}.
type DeleteOptions struct {
	Purge                    bool // also remove from backup jobs, HA, replication
	DestroyUnreferencedDisks bool
	SkipLock                 bool // root@pam only
}

// FirewallOptions are a VM's firewall options. nil = not set / unchanged.
type FirewallOptions struct {
	Enable    *bool
	DHCP      *bool
	IPFilter  *bool
	MACFilter *bool
	NDP       *bool
	RAdv      *bool
	PolicyIn  string // ACCEPT|REJECT|DROP
	PolicyOut string
	LogLevelIn,
	LogLevelOut string
	// Digest: read from PVE; when set on a write, PVE refuses the change if
	// the firewall config changed since (ClassConflict).
	Digest string
}

// Bool returns a pointer to b, for FirewallOptions fields.
func Bool(b bool) *bool { return &b }

// IPSet is one IP set of a VM.
type IPSet struct {
	Name    string
	Comment string
	Digest  string
}

// IPSetEntry is one address or network in an IP set.
type IPSetEntry struct {
	CIDR    string
	Comment string
	NoMatch bool
	Digest  string // read only
}

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
type BackupRequest struct {
	VM       VMRef
	Storage  string
	Mode     string // snapshot (default) | suspend | stop
	Compress string // 0|1|gzip|lzo|zstd; "" = PVE's default
	// NotesTemplate and Protected require Storage.
	NotesTemplate string
	Protected     bool
	// Remove, when non-nil, overrides PVE's prune-after-backup default (1).
	Remove *bool
}

// ContentFilter narrows StorageContent. Zero values do not filter.
type ContentFilter struct {
	Content string // images|rootdir|vztmpl|iso|backup|snippets|import
	VMID    int
}

// Volume is one entry of a storage's content.
type Volume struct {
	VolID     string
	Content   string
	Format    string
	Subtype   string
	VMID      int
	Size      int64
	Used      int64
	CTime     time.Time
	Notes     string
	Protected bool
}

// RestoreRequest is POST /nodes/{node}/qemu with an archive.
type RestoreRequest struct {
	VM      VMRef // node to restore on and the VMID to create
	Archive string
	Storage string
	Pool    string
	Force   bool // overwrite an existing VM
	Unique  bool // new MAC addresses
}

// Snapshot is one VM snapshot.
type Snapshot struct {
	Name        string
	Description string
	Parent      string
	SnapTime    time.Time
	VMState     bool
}

// SnapshotRequest is POST …/snapshot.
type SnapshotRequest struct {
	Name        string
	Description string
	VMState     bool
}

// Timeframe of RRD data.
type Timeframe string

// RRD timeframes.
const (
	TimeframeHour  Timeframe = "hour"
	TimeframeDay   Timeframe = "day"
	TimeframeWeek  Timeframe = "week"
	TimeframeMonth Timeframe = "month"
	TimeframeYear  Timeframe = "year"
)

// ConsolidationFunction of RRD data.
type ConsolidationFunction string

// RRD consolidation functions; "" lets PVE choose (AVERAGE).
const (
	CFAverage ConsolidationFunction = "AVERAGE"
	CFMax     ConsolidationFunction = "MAX"
)

// RRDPoint is one RRD sample. Rates are per second; PVE leaves fields out
// for intervals without data, which read as zero.
type RRDPoint struct {
	Time      time.Time
	CPU       float64
	MaxCPU    float64
	Mem       float64
	MaxMem    float64
	Disk      float64
	MaxDisk   float64
	NetIn     float64
	NetOut    float64
	DiskRead  float64
	DiskWrite float64
}

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
