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
//     IP set, IP set entry, snapshot, a VM's membership of a pool) does not
//     exist. An unknown node,
//     storage or template is never reported as not found: those are
//     ClassInvalid or ClassStorage, so that "the VM is gone" can be trusted.
package proxmox

import (
	"context"
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

	// NodeBridges lists a node's bridges (GET /nodes/{node}/network with
	// type=any_bridge): the names a netN may use as its bridge.
	NodeBridges(ctx context.Context, node string) ([]string, error)

	// Version reads PVE's version (GET /version): the cheapest
	// authenticated call, for reachability checks (pvectl health).
	Version(ctx context.Context) (string, error)

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

	// Migrate moves a VM to another node (POST …/migrate) and returns the
	// qmigrate task: offline, or live with req.Online. A running VM
	// without Online fails with ClassPrecondition.
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

	// Reboot asks the guest to shut down and starts the VM again (POST
	// …/status/reboot) and returns the qmreboot task. A guest that does not
	// shut down within Timeout fails the task ("got timeout"); a VM that is
	// not running fails with ClassNotRunning.
	Reboot(ctx context.Context, vm VMRef, opts RebootOptions) (TaskRef, error)

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

	// Tasks lists the node's tasks that match f (GET /nodes/{node}/tasks),
	// newest first as PVE lists them, running ones and recently finished
	// ones included (source=all: PVE's default, the archive, leaves out
	// running tasks and may not yet hold one that just ended). A token
	// without Sys.Audit on the node sees only its own tasks.
	Tasks(ctx context.Context, node string, f TaskFilter) ([]TaskEntry, error)

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
	// Storage errors (unknown storage, no "backup" content), a locked VM
	// (ConfigLock), a full storage and the storage's retention limits fail
	// the task, not the call. A VM that is not on req.VM.Node gives
	// ClassPrecondition (PVE answers "OK" and backs up nothing).
	Backup(ctx context.Context, req BackupRequest) (TaskRef, error)

	// StorageContent lists volumes of a storage as seen from a node,
	// optionally filtered by content type and VMID.
	StorageContent(ctx context.Context, node, storage string, filter ContentFilter) ([]Volume, error)

	// DeleteVolume deletes a volume (e.g. a backup archive) and returns the
	// imgdel task; the TaskRef is zero if PVE finished synchronously.
	DeleteVolume(ctx context.Context, node, storage, volid string) (TaskRef, error)

	// UpdateVolume sets a backup's notes and/or protection (PUT
	// /nodes/{node}/storage/{storage}/content/{volume}), synchronously.
	// Idempotent. A volume that is not a backup gives ClassInvalid; one
	// protection too many for the guest ClassPrecondition.
	UpdateVolume(ctx context.Context, node, storage, volid string, u VolumeUpdate) error

	// Restore creates VM req.VMID from a backup archive (POST /nodes/{node}/qemu
	// with archive) and returns the qmrestore task. An existing VMID without
	// Force gives ClassAlreadyExists, a locked one ClassLocked, a missing
	// archive ClassNotFound; a running (or protection=1) VM fails the task
	// with ClassPrecondition. With Force the VM's config, disks, firewall
	// and IP sets become the archive's; its snapshots are gone and disks
	// the archive does not hold stay as unusedN.
	Restore(ctx context.Context, req RestoreRequest) (TaskRef, error)

	// Snapshots lists a VM's snapshots, without PVE's "current" pseudo entry.
	Snapshots(ctx context.Context, vm VMRef) ([]Snapshot, error)

	// CreateSnapshot starts a qmsnapshot task.
	CreateSnapshot(ctx context.Context, vm VMRef, req SnapshotRequest) (TaskRef, error)

	// DeleteSnapshot starts a qmdelsnapshot task; force removes the snapshot
	// from the config even if its disks cannot be removed.
	DeleteSnapshot(ctx context.Context, vm VMRef, name string, force bool) (TaskRef, error)

	// RollbackSnapshot starts a qmrollback task: the VM's config and disks
	// become the snapshot's (PVE stops a running VM first). With start the
	// VM is started after a successful rollback; PVE starts it anyway when
	// the snapshot holds RAM (vmstate). A missing snapshot fails the task.
	RollbackSnapshot(ctx context.Context, vm VMRef, name string, start bool) (TaskRef, error)

	// RRDData reads a VM's RRD statistics (GET …/rrddata).
	RRDData(ctx context.Context, vm VMRef, timeframe Timeframe, cf ConsolidationFunction) ([]RRDPoint, error)

	// ACL lists the cluster's ACL entries (GET /access/acl): those on paths
	// where the token may modify permissions, or all with Sys.Audit on
	// /access.
	ACL(ctx context.Context) ([]ACLEntry, error)

	// Permissions returns the token's effective privileges on path (GET
	// /access/permissions?path=…): the privileges it holds there, whether
	// granted on path itself or inherited from above. Any token may ask
	// about itself.
	Permissions(ctx context.Context, path string) (map[string]bool, error)

	// GrantACL adds one entry (PUT /access/acl: path, roles, users|groups|
	// tokens, propagate). Idempotent. A principal or role that does not
	// exist gives ClassInvalid with IsUnknownPrincipal / IsUnknownRole.
	GrantACL(ctx context.Context, e ACLEntry) error

	// RevokeACL removes one entry (PUT /access/acl with delete=1).
	// Idempotent: removing an entry that is not there succeeds. A principal
	// or role that no longer exists fails as for GrantACL (PVE dropped its
	// entries when it was deleted).
	RevokeACL(ctx context.Context, e ACLEntry) error

	// AddToPool makes the VM a member of pool (PUT /pools with poolid and
	// vms; PVE before 8.1: PUT /pools/{poolid}). A VM already in that pool
	// gives ClassAlreadyExists, one in another pool ClassPrecondition, a
	// pool that does not exist ClassInvalid with IsUnknownPool.
	AddToPool(ctx context.Context, pool string, vmid int) error

	// RemoveFromPool removes the VM from pool (as AddToPool, with
	// delete=1). A VM that is not a member gives IsNotFound; a pool that
	// does not exist IsUnknownPool.
	RemoveFromPool(ctx context.Context, pool string, vmid int) error
}
