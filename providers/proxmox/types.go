package proxmox

import (
	"fmt"
	"strings"
	"time"
)

// The plain values that cross the Client interface: references, task and
// VM states, and the requests and options of its methods. No go-proxmox
// type appears here.

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

// ACL entry types (ACLEntry.Type).
const (
	ACLUser  = "user"
	ACLGroup = "group"
	ACLToken = "token"
)

// ACLEntry is one entry of GET /access/acl: role RoleID for a principal
// on Path. UGID is "user@realm" for a user, the group name (without '@')
// for a group and "user@realm!token" for a token.
type ACLEntry struct {
	Path      string `json:"path"`
	RoleID    string `json:"roleid"`
	Type      string `json:"type"` // ACLUser, ACLGroup or ACLToken
	UGID      string `json:"ugid"`
	Propagate bool   `json:"propagate"`
}

// Principal is the entry's principal as PVE writes it in user.cfg and
// pvectl's config: user@realm, @group or user@realm!token.
func (e ACLEntry) Principal() string {
	if e.Type == ACLGroup {
		return "@" + e.UGID
	}
	return e.UGID
}

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

// MigrateRequest is a POST …/migrate: offline, or live (Online) for a
// running VM.
type MigrateRequest struct {
	VM     VMRef
	Target string
	// Online migrates a running VM live (online=1); PVE refuses a running
	// VM without it ("can't migrate running VM without --online").
	Online bool
	// WithLocalDisks lets a live migration copy disks on local (not
	// shared) storage (with-local-disks=1); PVE's migration fails without
	// it when the running VM has one.
	WithLocalDisks bool
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

// RebootOptions are optional parameters of status/reboot.
type RebootOptions struct {
	Timeout time.Duration // how long PVE waits for the guest's shutdown; 0 = PVE's default
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

type BackupRequest struct {
	VM       VMRef
	Storage  string
	Mode     string // snapshot (default) | suspend | stop
	Compress string // 0|1|gzip|lzo|zstd; "" = PVE's default
	// NotesTemplate and Protected require Storage.
	NotesTemplate string
	Protected     bool
	// Remove is vzdump's remove: prune the guest's older backups by the
	// storage's retention (prune-backups) after this one. nil sends
	// remove=0, unlike PVE's default of 1: pvectl rotates backups itself,
	// and PVE's prune would delete unprotected archives pvectl still
	// records. On a storage with a retention limit remove=0 makes the
	// vzdump fail instead once the guest has that many unprotected backups
	// ("There is a max backup limit of N …", ClassPrecondition): loud, not
	// silent. Only Bool(true) lets PVE prune.
	Remove *bool
}

// VolumeUpdate is PUT …/content/{volume}: a backup's notes and protection.
// nil fields are not sent (left as they are).
type VolumeUpdate struct {
	// Notes replaces the notes; "" removes them.
	Notes *string
	// Protected protects (true) or unprotects (false) the backup. PVE
	// limits protected backups per guest and storage (max-protected-backups,
	// default 5 without Datastore.Allocate on the storage):
	// ClassPrecondition past it.
	Protected *bool
}

// ContentFilter narrows StorageContent. Zero values do not filter.
type ContentFilter struct {
	Content string // images|rootdir|vztmpl|iso|backup|snippets|import
	VMID    int
}

// Volume is one entry of a storage's content. For backups, Notes is only
// the first line of the notes (PVE lists no more), Protected is false when
// PVE leaves the key out, and CTime is the time in the archive's name.
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
