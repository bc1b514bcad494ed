package proxmox_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pvectl/pvectl/providers/proxmox"
)

// One row per PVE message, with the exact strings of
// shared/pve-api/notes.md §2 and shared/reliability-notes.md §2.
// status 0 = the message is a task exit status (classified without HTTP).
var messageTable = []struct {
	name    string
	status  int
	msg     string
	fields  map[string]string
	class   proxmox.Class
	applied bool
}{
	// Locks (reliability #1-#4, notes §2).
	{"flock timeout sync", 500, "can't lock file '/var/lock/qemu-server/lock-104.conf' - got timeout", nil, proxmox.ClassLocked, false},
	{"flock timeout task", 0, "can't lock file '/var/lock/qemu-server/lock-129.conf' - got timeout", nil, proxmox.ClassLocked, false},
	{"flock timeout notes", 0, "can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout", nil, proxmox.ClassLocked, false},
	{"storage flock in clone", 0, "clone failed: can't lock file '/var/lock/pve-manager/pve-storage-local-lvm' - got timeout", nil, proxmox.ClassLocked, false},
	{"cfs lock", 500, "cfs-lock 'file-replication_cfg' error: got lock request timeout", nil, proxmox.ClassLocked, false},
	{"cfs locked command", 0, "'storage-local-lvm'-locked command timed out - aborting", nil, proxmox.ClassLocked, false},
	{"locked clone", 500, "VM is locked (clone)", nil, proxmox.ClassLocked, false},
	{"locked backup", 0, "VM is locked (backup)", nil, proxmox.ClassLocked, false},
	{"locked migrate", 0, "VM is locked (migrate)", nil, proxmox.ClassLocked, false},
	{"locked snapshot", 0, "VM is locked (snapshot)", nil, proxmox.ClassLocked, false},
	{"locked snapshot-delete", 0, "VM is locked (snapshot-delete)", nil, proxmox.ClassLocked, false},
	{"locked create", 0, "VM is locked (create)", nil, proxmox.ClassLocked, false},
	{"locked rollback", 0, "VM is locked (rollback)", nil, proxmox.ClassLocked, false},
	{"locked suspending", 0, "VM is locked (suspending)", nil, proxmox.ClassLocked, false},
	{"locked suspended", 0, "VM is locked (suspended)", nil, proxmox.ClassLocked, false},
	{"locked destroyed", 0, "VM is locked (destroyed)", nil, proxmox.ClassLocked, false},
	{"locked with destroy prefix", 500, "unable to destroy VM 106: VM is locked (clone)", nil, proxmox.ClassLocked, false},
	{"CT locked", 500, "CT is locked (disk)", nil, proxmox.ClassLocked, false},

	// Not found (reliability #7, notes §2).
	{"config missing", 500, "Configuration file 'nodes/pve/qemu-server/100.conf' does not exist", nil, proxmox.ClassNotFound, false},
	{"config missing capmox", 500, "Configuration file 'nodes/pve-mp/qemu-server/117.conf' does not exist", nil, proxmox.ClassNotFound, false},
	{"config not on node", 500, "unable to find configuration file for VM 100 on node 'pve'", nil, proxmox.ClassNotFound, false},
	{"no such task", 400, "Parameter verification failed.", map[string]string{"upid": "no such task"}, proxmox.ClassNotFound, false},
	{"no such ipset", 500, "no such IPSet 'ipfilter-net0'", nil, proxmox.ClassNotFound, false},
	{"snapshot missing", 0, "snapshot 'before_upgrade' does not exist", nil, proxmox.ClassNotFound, false},
	{"volume missing", 500, "volume 'local:backup/vzdump-qemu-101-2025_06_02-10_00_05.vma.zst' does not exist", nil, proxmox.ClassNotFound, false},
	{"no such ip", 400, "Parameter verification failed.", map[string]string{"cidr": "no such IP/Network"}, proxmox.ClassNotFound, false},

	// Already exists (reliability #8, notes §2).
	{"restore vmid exists", 500, "unable to restore VM 100 - VM 100 already exists on node 'pve'", nil, proxmox.ClassAlreadyExists, false},
	{"create vmid exists", 0, "unable to create VM 108 - VM 108 already exists on node 'pve1'", nil, proxmox.ClassAlreadyExists, false},
	{"clone config exists", 0, "unable to create VM 101: config file already exists", nil, proxmox.ClassAlreadyExists, false},
	{"nextid taken", 400, "Parameter verification failed.", map[string]string{"vmid": "VM 218 already exists"}, proxmox.ClassAlreadyExists, false},
	{"ssh key rejected", 500, "SSH public key validation error", nil, proxmox.ClassInvalid, false},
	{"ipset exists", 400, "Parameter verification failed.", map[string]string{"name": "IPSet 'ipfilter-net0' does already exist"}, proxmox.ClassAlreadyExists, false},
	{"ipset address exists", 400, "Parameter verification failed.", map[string]string{"cidr": "address '10.0.0.1' already exists"}, proxmox.ClassAlreadyExists, false},
	{"snapshot name used", 500, "snapshot name 'before_upgrade' already used", nil, proxmox.ClassAlreadyExists, false},
	{"cloud-init drive attached", 500, "local-lvm:cloudinit - cloud-init drive is already attached at 'ide2'", nil, proxmox.ClassAlreadyExists, false},

	// Run state (reliability #5, #6, #16, #17; notes §2).
	{"already running", 0, "VM 100 already running", nil, proxmox.ClassAlreadyRunning, false},
	{"not running", 500, "VM 100 not running", nil, proxmox.ClassNotRunning, false},
	{"is not running", 0, "VM 100 is not running", nil, proxmox.ClassNotRunning, false},
	{"running destroy", 500, "VM 100 is running - destroy failed", nil, proxmox.ClassPrecondition, false},
	{"HA without purge", 500, "unable to remove VM 100 - used in HA resources and purge parameter not set.", nil, proxmox.ClassPrecondition, false},
	{"migrate running", 500, "can't migrate running VM without --online", nil, proxmox.ClassPrecondition, false},
	{"start template", 0, "you can't start a vm if it's a template", nil, proxmox.ClassPrecondition, false},
	{"paused shutdown", 0, "VM is paused - cannot shutdown", nil, proxmox.ClassPrecondition, false},
	{"restore over running VM", 0, "unable to restore VM 100 - vm is running", nil, proxmox.ClassPrecondition, false},
	{"restore over protected VM", 0, "unable to restore VM 100 - - protection mode enabled", nil, proxmox.ClassPrecondition, false},
	{"restore over locked VM", 500, "unable to restore VM 100 - VM is locked (backup)", nil, proxmox.ClassLocked, false},
	{"restore flock timeout", 500, "unable to restore VM 100 - can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout", nil, proxmox.ClassLocked, false},
	{"restore archive gone", 500, "can't find file 'local:backup/vzdump-qemu-100-2025_01_01-00_00_00.vma.zst'", nil, proxmox.ClassNotFound, false},
	{"protected volume", 0, "cannot remove protected volume 'backup/vzdump-qemu-100-2025_01_01-00_00_00.vma.zst' on 'local'", nil, proxmox.ClassPrecondition, false},
	{"vzdump backup limit", 0, "There is a max backup limit of 3 enforced by the target storage or the vzdump parameters. Either increase the limit or delete old backups.", nil, proxmox.ClassPrecondition, false},
	{"vzdump protected limit", 0, "The number of protected backups per guest is limited to 5 on storage 'local'", nil, proxmox.ClassPrecondition, false},
	{"protect over limit", 500, "The number of protected backups per guest is limited to 5 on storage 'local'", nil, proxmox.ClassPrecondition, false},
	{"vzdump locked guest", 0, "Backup of VM 100 failed - VM is locked (snapshot)", nil, proxmox.ClassLocked, false},
	{"vzdump no such guest", 0, "Backup of VM 999 failed - unable to find VM '999'", nil, proxmox.ClassNotFound, false},
	{"vzdump storage full", 0, "Backup of VM 100 failed - vma_queue_write: write error - No space left on device", nil, proxmox.ClassNoSpace, false},
	{"vzdump wrong content", 0, "could not get storage information for 'local-lvm': can't use storage 'local-lvm' for backups - wrong content type", nil, proxmox.ClassStorage, false},
	{"vzdump unknown storage", 0, "could not activate storage 'nosuch': storage 'nosuch' does not exist could not get storage information for 'nosuch': storage 'nosuch' does not exist", nil, proxmox.ClassStorage, false},
	{"vzdump storage offline", 0, "could not activate storage 'nfs': storage 'nfs' is not online", nil, proxmox.ClassStorageOffline, false},
	{"vzdump storage elsewhere", 0, "could not activate storage 'nfs': storage 'nfs' is not available on node 'pve2'", nil, proxmox.ClassStorage, false},
	{"attribute of an image", 500, "only backups support attribute 'protected'", nil, proxmox.ClassInvalid, false},
	{"volume storage mismatch", 400, "Parameter verification failed.", map[string]string{"volume": "storage ID mismatch (local != nfs)"}, proxmox.ClassInvalid, false},
	{"template of running VM", 500, "you can't convert a VM to template if VM is running", nil, proxmox.ClassPrecondition, false},
	{"ipset not empty", 500, "IPSet 'ipfilter-net0' is not empty", nil, proxmox.ClassPrecondition, false},
	{"protected archive", 0, "cannot remove protected archive '/var/lib/vz/dump/vzdump-qemu-100-2025_01_01-00_00_00.vma.zst'", nil, proxmox.ClassPrecondition, false},

	// Permission and authentication (reliability #20-#22, notes §1).
	{"permission powermgmt", 403, "Permission check failed (/vms/100, VM.PowerMgmt)", nil, proxmox.ClassPermission, false},
	{"permission storage", 403, "Permission check failed (/storage/cephfs, Datastore.AllocateSpace)", nil, proxmox.ClassPermission, false},
	{"permission bare", 403, "Permission check failed", nil, proxmox.ClassPermission, false},
	{"permission message only", 0, "Permission check failed (/vms/100, VM.Allocate)", nil, proxmox.ClassPermission, false},
	{"token not allowed", 403, "URI '/nodes/pve/qemu/100/vncwebsocket' not available with API token, need proper ticket.", nil, proxmox.ClassPermission, false},
	{"auth failed", 401, "Authentication failed!", nil, proxmox.ClassAuth, false},
	{"no ticket", 401, "No ticket", nil, proxmox.ClassAuth, false},
	{"invalid ticket", 401, "permission denied - invalid PVE ticket", nil, proxmox.ClassAuth, false},
	{"invalid token", 401, "invalid token value!", nil, proxmox.ClassAuth, false},
	{"token expired", 401, "token 'pvectl' access expired", nil, proxmox.ClassAuth, false},
	{"no such token", 401, "no such token 'pvectl' for user 'pvectl@pve'", nil, proxmox.ClassAuth, false},
	{"user disabled", 401, "user 'pvectl@pve' is disabled", nil, proxmox.ClassAuth, false},
	{"user expired", 401, "user 'pvectl@pve' access expired", nil, proxmox.ClassAuth, false},
	{"ticket authentication failure", 401, "authentication failure", nil, proxmox.ClassAuth, false},

	// Transient (reliability #12, #14, #18; notes §2).
	{"no worker upid", 500, "got no worker upid - start worker failed", nil, proxmox.ClassTransient, false},
	{"qmp timeout", 500, "VM 100 qmp command 'query-status' failed - got timeout", nil, proxmox.ClassTransient, false},
	{"qmp guest-ping timeout", 0, "VM 2000 qmp command 'guest-ping' failed - got timeout", nil, proxmox.ClassTransient, false},
	{"qmp socket", 0, "unable to connect to VM 100 qmp socket - timeout after 31 retries", nil, proxmox.ClassTransient, false},
	{"monitor socket", 0, "unable to open monitor socket", nil, proxmox.ClassTransient, false},
	{"powerdown timeout", 0, "VM quit/powerdown failed - got timeout", nil, proxmox.ClassTransient, false},
	{"agent not running", 500, "QEMU guest agent is not running", nil, proxmox.ClassTransient, false},
	{"595 refused", 595, "Errors during connection establishment, proxy handshake: Connection refused", nil, proxmox.ClassTransient, false},
	{"595 timed out", 595, "Errors during connection establishment, proxy handshake: Connection timed out", nil, proxmox.ClassTransient, false},
	{"596 timed out", 596, "Connection timed out", nil, proxmox.ClassTransient, true},
	{"migration target unreachable (task log)", 0, "Can't connect to destination address using public key", nil, proxmox.ClassTransient, false},
	{"500 unknown", 500, "something PVE never said", nil, proxmox.ClassTransient, false},
	{"synthetic command socket", 500, "failed to read from command socket", nil, proxmox.ClassTransient, false},
	{"502", 502, "Bad Gateway", nil, proxmox.ClassTransient, false},
	{"503", 503, "Service Unavailable", nil, proxmox.ClassTransient, false},
	{"504", 504, "Gateway Timeout", nil, proxmox.ClassTransient, true},

	// Quorum (reliability #15).
	{"no quorum", 500, "cluster not ready - no quorum?", nil, proxmox.ClassQuorum, false},
	{"no quorum!", 0, "no quorum!", nil, proxmox.ClassQuorum, false},
	{"pmxcfs offline", 500, "pve cluster filesystem not online.", nil, proxmox.ClassQuorum, false},

	// Storage (reliability #10, #11).
	{"storage missing", 500, "storage 'local-lvm' does not exist", nil, proxmox.ClassStorage, false},
	{"storage disabled", 500, "storage 'nfs-backup' is disabled", nil, proxmox.ClassStorage, false},
	{"storage not on node", 500, "storage 'local-zfs' is not available on node 'pve2'", nil, proxmox.ClassStorage, false},
	{"storage status unknown storage", 400, "Parameter verification failed.", map[string]string{"storage": "No such storage."}, proxmox.ClassStorage, false},
	{"storage offline", 500, "storage 'nfs-backup' is not online", nil, proxmox.ClassStorageOffline, false},
	{"lvm free space", 0, "not enough free space (1073741824 < 34359738368)", nil, proxmox.ClassNoSpace, false},
	{"enospc", 0, "clone failed: write error: No space left on device", nil, proxmox.ClassNoSpace, false},

	// Concurrent modification (notes §2).
	{"config digest", 500, "checksum mismatch (file change by other user?)", nil, proxmox.ClassConflict, false},
	{"firewall digest", 500, "detected modified configuration - file changed by other user? Try again.", nil, proxmox.ClassConflict, false},

	// Worker died (reliability #13).
	{"unexpected status", 0, "unexpected status", nil, proxmox.ClassInterrupted, false},
	{"no last line", 0, "unable to get last line from task log - No such file or directory", nil, proxmox.ClassInterrupted, false},

	// Invalid requests (notes §1-§2, reliability #9, #24).
	{"shrink", 0, "shrinking disks is not supported", nil, proxmox.ClassInvalid, false},
	{"missing disk", 0, "disk 'scsi1' does not exist", nil, proxmox.ClassInvalid, false},
	{"cdrom resize", 0, "you can't resize a cdrom", nil, proxmox.ClassInvalid, false},
	{"target local", 400, "Parameter verification failed.", map[string]string{"target": "target is local node."}, proxmox.ClassInvalid, false},
	{"clone local storage", 500, "can't clone VM to node 'pve2' (VM uses local storage)", nil, proxmox.ClassInvalid, false},
	{"linked clone storage", 500, "parameter 'storage' not allowed for linked clones", nil, proxmox.ClassInvalid, false},
	{"linked clone format", 500, "parameter 'format' not allowed for linked clones", nil, proxmox.ClassInvalid, false},
	{"linked clone feature", 500, "Linked clone feature is not supported for drive 'scsi0'", nil, proxmox.ClassInvalid, false},
	{"reserved snapshot name", 500, "unable to use snapshot name 'current' (reserved name)", nil, proxmox.ClassInvalid, false},
	{"vzdump no guests", 500, "no guests specified", nil, proxmox.ClassInvalid, false},
	{"param requires storage", 400, "Parameter verification failed.", map[string]string{"protected": "missing property - 'protected' requires 'storage'"}, proxmox.ClassInvalid, false},
	{"vmid range exhausted", 500, "unable to get any free VMID in range [100, 1000000]", nil, proxmox.ClassInvalid, false},
	{"no agent configured", 500, "No QEMU guest agent configured", nil, proxmox.ClassInvalid, false},
	{"unknown node clone", 500, "no such cluster node 'pve9'", nil, proxmox.ClassInvalid, false},
	{"unknown node lookup", 500, "hostname lookup 'pve9' failed - failed to get address info for: pve9: Name or service not known", nil, proxmox.ClassInvalid, false},
	{"bad upid", 400, "Parameter verification failed.", map[string]string{"upid": "unable to parse worker upid"}, proxmox.ClassInvalid, false},
	{"param regex", 400, "Parameter verification failed.", map[string]string{"size": "value does not match the regex pattern"}, proxmox.ClassInvalid, false},
	{"param unknown", 400, "Parameter verification failed.", map[string]string{"foo": "property is not defined in schema and the schema does not allow additional properties"}, proxmox.ClassInvalid, false},
	{"param boolean", 400, "Parameter verification failed.", map[string]string{"full": "type check ('boolean') failed - got 'true'"}, proxmox.ClassInvalid, false},
	{"param sshkeys", 400, "Parameter verification failed.", map[string]string{"sshkeys": "invalid format - invalid urlencoded string: ssh-ed25519+AAAA"}, proxmox.ClassInvalid, false},
	{"unknown path", 501, "Method 'GET /nodes/pve/foo' not implemented", nil, proxmox.ClassInvalid, false},
	{"body on delete", 501, "Unexpected content for method 'DELETE'", nil, proxmox.ClassInvalid, false},

	// Access control (pve-access-control PVE::API2::ACL update_acl,
	// pve-manager PVE::API2::Pool update_pool, both inside lock_user_config).
	{"acl user gone", 500, "ACL update failed: user 'customer@pve' does not exist", nil, proxmox.ClassInvalid, false},
	{"acl group gone", 500, "ACL update failed: group 'customers' does not exist", nil, proxmox.ClassInvalid, false},
	{"acl token user gone", 500, "ACL update failed: no such user ('customer@pve')", nil, proxmox.ClassInvalid, false},
	{"acl token gone", 500, "ACL update failed: no such token 'cli' for user 'customer@pve'", nil, proxmox.ClassInvalid, false},
	{"acl role gone", 500, "ACL update failed: role 'CustomerRole' does not exist", nil, proxmox.ClassInvalid, false},
	{"pool gone", 500, "update pools failed: pool 'customers' does not exist", nil, proxmox.ClassInvalid, false},
	{"not a pool member", 500, "update pools failed: VM 1000 is not a pool member", nil, proxmox.ClassNotFound, false},
	{"already a pool member", 500, "update pools failed: VM 1000 is already a pool member", nil, proxmox.ClassAlreadyExists, false},
	{"in another pool", 500, "update pools failed: VM 1000 belongs already to pool 'other' and 'allow-move' is not set", nil, proxmox.ClassPrecondition, false},
	{"in another pool (before 8.1)", 500, "update pools failed: VM 1000 belongs already to pool 'other'", nil, proxmox.ClassPrecondition, false},

	// Unrecognised task exit statuses need a person.
	{"unknown task error", 0, "clone failed: something new", nil, proxmox.ClassUnknown, false},
}

func TestClassifyMessages(t *testing.T) {
	t.Parallel()
	for _, tc := range messageTable {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got proxmox.Class
			if tc.status == 0 {
				got = proxmox.ClassifyMessage(tc.msg)
				// The same text as a task exit status.
				st := proxmox.TaskStatus{Task: proxmox.TaskRef{Node: "pve", UPID: "UPID:pve:00001234:00ABCDEF:65A0B1C2:qmclone:100:root@pam:"}, Type: "qmclone", ID: "100", ExitStatus: tc.msg}
				require.False(t, st.Succeeded())
				err := st.Err()
				require.Error(t, err)
				require.Equal(t, tc.class, proxmox.Classify(err))
				require.Contains(t, err.Error(), tc.msg)
			} else {
				got = proxmox.ClassifyHTTP(tc.status, tc.msg, tc.fields)
				if tc.status == 401 { // recognised from the text alone too (wrapped errors)
					require.Equal(t, proxmox.ClassAuth, proxmox.ClassifyMessage(tc.msg), "message %q", tc.msg)
				}
			}
			require.Equal(t, tc.class, got, "message %q", tc.msg)
			// A task that ran, or a response PVE sent, says whether the mutation
			// may have happened anyway (596/504: the proxy gave up waiting).
			require.Equal(t, tc.applied, proxmox.HTTPMaybeApplied(tc.status, tc.msg), "may have been applied: %q", tc.msg)
		})
	}
}

func TestClassifyIsCaseSensitive(t *testing.T) {
	t.Parallel()
	for _, msg := range []string{
		"vm is locked (clone)",
		"CAN'T LOCK FILE '/var/lock/qemu-server/lock-100.conf' - GOT TIMEOUT",
		"configuration file 'nodes/pve/qemu-server/100.conf' does not exist",
		"Cluster not ready - no quorum?",
	} {
		require.Equal(t, proxmox.ClassUnknown, proxmox.ClassifyMessage(msg), msg)
	}
}

func TestClassRetryable(t *testing.T) {
	t.Parallel()
	want := map[proxmox.Class]bool{
		proxmox.ClassUnknown:        false,
		proxmox.ClassLocked:         true,
		proxmox.ClassNotFound:       false,
		proxmox.ClassAlreadyExists:  false,
		proxmox.ClassAlreadyRunning: false,
		proxmox.ClassNotRunning:     false,
		proxmox.ClassPermission:     false,
		proxmox.ClassAuth:           false,
		proxmox.ClassTransient:      true,
		proxmox.ClassQuorum:         true,
		proxmox.ClassStorage:        false,
		proxmox.ClassStorageOffline: true,
		proxmox.ClassNoSpace:        false,
		proxmox.ClassInvalid:        false,
		proxmox.ClassConflict:       true,
		proxmox.ClassPrecondition:   false,
		proxmox.ClassInterrupted:    true,
	}
	require.Len(t, proxmox.Classes(), len(want))
	for _, c := range proxmox.Classes() {
		r, ok := want[c]
		require.True(t, ok, "class %v has no expectation", c)
		require.Equal(t, r, c.Retryable(), "class %v", c)
		require.NotContains(t, c.String(), "Class(")
	}
}

func TestTaskExitStatus(t *testing.T) {
	t.Parallel()
	ref := proxmox.TaskRef{Node: "pve", UPID: "UPID:pve:00001234:00ABCDEF:65A0B1C2:qmstart:100:root@pam:"}
	for _, tc := range []struct {
		exit      string
		running   bool
		succeeded bool
		class     proxmox.Class
	}{
		{"", true, false, 0},
		{"OK", false, true, 0},
		{"WARNINGS: 1", false, true, 0},
		{"WARNINGS: 12", false, true, 0},
		{"WARNINGS: x", false, false, proxmox.ClassUnknown},
		{"VM 100 already running", false, false, proxmox.ClassAlreadyRunning},
		{"unexpected status", false, false, proxmox.ClassInterrupted},
		{"can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout", false, false, proxmox.ClassLocked},
	} {
		t.Run(tc.exit, func(t *testing.T) {
			t.Parallel()
			st := proxmox.TaskStatus{Task: ref, Type: "qmstart", ID: "100", Running: tc.running, ExitStatus: tc.exit}
			require.Equal(t, !tc.running, st.Done())
			require.Equal(t, tc.succeeded, st.Succeeded())
			err := st.Err()
			if tc.running || tc.succeeded {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			var pe *proxmox.Error
			require.ErrorAs(t, err, &pe)
			require.Equal(t, tc.class, pe.Class)
			require.Equal(t, tc.exit, pe.Message)
			require.Equal(t, ref, pe.Task)
			require.Equal(t, 100, pe.VMID)
		})
	}
}

func TestClassifyPlainErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		err   error
		class proxmox.Class
	}{
		{"nil", nil, proxmox.ClassUnknown},
		{"refused", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, proxmox.ClassTransient},
		{"reset", fmt.Errorf("read: %w", syscall.ECONNRESET), proxmox.ClassTransient},
		{"deadline", context.DeadlineExceeded, proxmox.ClassTransient},
		{"go-proxmox 500 text", errors.New("500 VM is locked (clone)"), proxmox.ClassLocked},
		{"wrapped Error", fmt.Errorf("step: %w", &proxmox.Error{Class: proxmox.ClassQuorum}), proxmox.ClassQuorum},
		{"other", errors.New("boom"), proxmox.ClassUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.class, proxmox.Classify(tc.err))
			require.Equal(t, tc.class.Retryable() && tc.err != nil, proxmox.IsRetryable(tc.err))
		})
	}
	require.True(t, proxmox.IsNotFound(&proxmox.Error{Class: proxmox.ClassNotFound}))
	require.False(t, proxmox.IsNotFound(nil))
	require.True(t, proxmox.IsLocked(errors.New("500 can't lock file '/var/lock/qemu-server/lock-1.conf' - got timeout")))
	require.True(t, proxmox.IsAlreadyRunning(errors.New("VM 100 already running")))
	require.True(t, proxmox.IsNotRunning(errors.New("VM 100 not running")))
	require.True(t, proxmox.IsAlreadyExists(errors.New("unable to create VM 101: config file already exists")))
	require.True(t, proxmox.IsPermission(&proxmox.Error{Class: proxmox.ClassPermission}))
	require.True(t, proxmox.IsAuth(&proxmox.Error{Class: proxmox.ClassAuth}))
	require.True(t, proxmox.MaybeApplied(&proxmox.Error{Class: proxmox.ClassTransient, Applied: true}))
	require.False(t, proxmox.MaybeApplied(errors.New("x")))
}

func TestErrorText(t *testing.T) {
	t.Parallel()
	e := &proxmox.Error{Class: proxmox.ClassInvalid, Op: "POST /nodes/pve/qemu/100/clone", Node: "pve", VMID: 100, HTTPStatus: 400,
		Message: "Parameter verification failed.", Fields: map[string]string{"b": "y", "a": "x"}}
	require.Equal(t, "proxmox: POST /nodes/pve/qemu/100/clone (node pve, vmid 100): 400 Parameter verification failed. (a: x; b: y) [invalid request]", e.Error())
}

func TestParseUPID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		upid, node, typ, id string
		ok                  bool
	}{
		{"UPID:x:000039C6:1FE23176:619510B1:qmconfig:113:terraform-prov@pve:", "x", "qmconfig", "113", true},
		{"UPID:pve-mp:00000ACD:00006AE8:679A423B:qmclone:112:capmox@pve!capi:", "pve-mp", "qmclone", "112", true},
		{"UPID:pve:00000ACD:00006AE8:679A423B:vzdump::root@pam:", "pve", "vzdump", "", true},
		{"UPID:pve:00000ACD:00006AE8:679A423B:qmclone:112:", "", "", "", false},
		{"UPID:pve:00000ACD:00006AE8:679A423B:qmclone:112:root@pam", "", "", "", false},
		{"nonsense", "", "", "", false},
	} {
		t.Run(tc.upid, func(t *testing.T) {
			t.Parallel()
			ref, typ, id, err := proxmox.ParseUPID(tc.upid)
			if !tc.ok {
				require.Error(t, err)
				require.Equal(t, proxmox.ClassInvalid, proxmox.Classify(err))
				return
			}
			require.NoError(t, err)
			require.Equal(t, proxmox.TaskRef{Node: tc.node, UPID: tc.upid}, ref)
			require.Equal(t, tc.typ, typ)
			require.Equal(t, tc.id, id)
		})
	}
}

// TaskFailure reads a failed task's cause from its log when the exit status
// is generic; a known exit status keeps its class.
func TestTaskFailureReadsTheLog(t *testing.T) {
	t.Parallel()
	ref := proxmox.TaskRef{Node: "pve1", UPID: "UPID:pve1:00001234:00ABCDEF:65A0B1C2:qmigrate:101:pvectl@pve!ci:"}
	lines := func(texts ...string) []proxmox.TaskLogLine {
		var out []proxmox.TaskLogLine
		for i, s := range texts {
			out = append(out, proxmox.TaskLogLine{N: i + 1, Text: s})
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		exit   string
		log    []proxmox.TaskLogLine
		class  proxmox.Class
		detail string
	}{
		{"ok", "OK", lines("ERROR: ignored"), 0, ""},
		{"target unreachable", "migration aborted", lines(
			"2026-12-05 02:00:00 starting migration of VM 101 to node 'pve2' (10.0.0.2)",
			"2026-12-05 02:00:03 ERROR: migration aborted (duration 00:00:03): Can't connect to destination address using public key",
			"TASK ERROR: migration aborted"), proxmox.ClassTransient, "Can't connect to destination address using public key"},
		{"line without a time stamp", "migration aborted", lines(
			"ERROR: migration aborted (duration 00:00:03): Can't connect to destination address using public key"),
			proxmox.ClassTransient, "Can't connect to destination address using public key"},
		{"cause not known", "migration aborted", lines("ERROR: migration aborted (duration 00:00:01): something new"),
			proxmox.ClassUnknown, "something new"},
		{"storage cause", "migration aborted", lines("ERROR: storage 'fast' is not available on node 'pve2'"),
			proxmox.ClassStorage, "storage 'fast' is not available on node 'pve2'"},
		{"vzdump locked guest", "job errors", lines(
			"INFO: status = running",
			"ERROR: Backup of VM 101 failed - VM is locked (snapshot)",
			"INFO: Failed at 2026-12-05 02:00:00",
			"INFO: Backup job finished with errors",
			"TASK ERROR: job errors"), proxmox.ClassLocked, "Backup of VM 101 failed - VM is locked (snapshot)"},
		{"vzdump full storage through zstd", "job errors", lines(
			"zstd: error 70 : Write error : cannot write block : No space left on device ",
			"ERROR: vma_queue_write: write error - Broken pipe",
			"INFO: aborting backup job",
			"ERROR: Backup of VM 101 failed - vma_queue_write: write error - Broken pipe",
			"INFO: Backup job finished with errors"), proxmox.ClassNoSpace, "Backup of VM 101 failed - vma_queue_write: write error - Broken pipe"},
		{"known exit status keeps its class", "can't lock file '/var/lock/qemu-server/lock-101.conf' - got timeout",
			lines("ERROR: VM 101 qmp command 'query-status' failed - got timeout"), proxmox.ClassLocked, "VM 101 qmp command 'query-status' failed - got timeout"},
		{"no log", "migration aborted", nil, proxmox.ClassUnknown, ""},
		{"error line is the exit status", "VM 101 already running", lines("ERROR: VM 101 already running"), proxmox.ClassAlreadyRunning, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := proxmox.TaskFailure(proxmox.TaskStatus{Task: ref, Type: "qmigrate", ID: "101", ExitStatus: tc.exit}, tc.log)
			if tc.exit == "OK" {
				require.NoError(t, err)
				return
			}
			var pe *proxmox.Error
			require.ErrorAs(t, err, &pe)
			require.Equal(t, tc.class.String(), pe.Class.String())
			require.Equal(t, tc.exit, pe.Message)
			require.Equal(t, tc.detail, pe.Detail)
		})
	}
}

// The access-control predicates the suspend steps use: each matches only
// its own PVE message.
func TestAccessPredicates(t *testing.T) {
	t.Parallel()
	mk := func(msg string) error {
		return &proxmox.Error{Class: proxmox.ClassifyHTTP(500, msg, nil), HTTPStatus: 500, Op: "PUT /access/acl", Message: msg}
	}
	for _, tc := range []struct {
		msg                   string
		principal, role, pool bool
	}{
		{"ACL update failed: user 'customer@pve' does not exist", true, false, false},
		{"ACL update failed: group 'customers' does not exist", true, false, false},
		{"ACL update failed: no such user ('customer@pve')", true, false, false},
		{"ACL update failed: no such token 'cli' for user 'customer@pve'", true, false, false},
		{"ACL update failed: role 'CustomerRole' does not exist", false, true, false},
		{"update pools failed: pool 'customers' does not exist", false, false, true},
		{"update pools failed: VM 1000 is not a pool member", false, false, false},
		{"no such token 'pvectl' for user 'pvectl@pve'", false, false, false}, // pvectl's own token: auth
		{"storage 'local' does not exist", false, false, false},
	} {
		err := mk(tc.msg)
		require.Equal(t, tc.principal, proxmox.IsUnknownPrincipal(err), tc.msg)
		require.Equal(t, tc.role, proxmox.IsUnknownRole(err), tc.msg)
		require.Equal(t, tc.pool, proxmox.IsUnknownPool(err), tc.msg)
		require.Equal(t, tc.principal, proxmox.IsUnknownPrincipal(fmt.Errorf("wrapped: %w", err)), tc.msg)
	}
	require.False(t, proxmox.IsUnknownPrincipal(nil))
}

func TestConfigLock(t *testing.T) {
	t.Parallel()
	require.Equal(t, "backup", proxmox.ConfigLock(errors.New("500 unable to restore VM 100 - VM is locked (backup)")))
	require.Equal(t, "snapshot-delete", proxmox.ConfigLock(&proxmox.Error{Class: proxmox.ClassLocked, Message: "VM is locked (snapshot-delete)"}))
	require.Equal(t, "snapshot", proxmox.ConfigLock(&proxmox.Error{Class: proxmox.ClassLocked, Message: "job errors",
		Detail: "Backup of VM 101 failed - VM is locked (snapshot)"}))
	require.Empty(t, proxmox.ConfigLock(errors.New("can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout")))
	require.Empty(t, proxmox.ConfigLock(nil))
}
