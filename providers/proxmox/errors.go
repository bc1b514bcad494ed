package proxmox

// This file is the one place that knows how Proxmox VE reports errors. Every
// PVE message pvectl reacts to is matched here, exactly and case-sensitively,
// against the format strings of the PVE sources (quoted in
// shared/pve-api/notes.md and shared/reliability-notes.md). See
// docs/adr/0001-pve-error-classification.md for why.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// Class is what kind of failure an error is, as far as the engine cares.
type Class int

// Error classes. Each says whether the step may simply be retried later
// (Retryable).
const (
	// ClassUnknown: not recognised. Not retryable: a person should look.
	ClassUnknown Class = iota
	// ClassLocked: a config lock (`VM is locked (clone)`), a file lock
	// timeout (`can't lock file '…' - got timeout`) or a cfs lock timeout.
	// Retryable; a clone/migrate config lock that never goes away holds the
	// VM after stale_lock_after (states.staleLock).
	ClassLocked
	// ClassNotFound: the addressed VM, task, IP set, entry, snapshot or
	// pool membership does not exist. Not retryable (for delete it means done).
	ClassNotFound
	// ClassAlreadyExists: VMID, IP set, IP set entry or cloud-init drive
	// already exists. Not retryable (observe: it may be our own earlier try).
	ClassAlreadyExists
	// ClassAlreadyRunning: start of a running VM. Not retryable (= success).
	ClassAlreadyRunning
	// ClassNotRunning: the VM is not running. Not retryable (= success for stop).
	ClassNotRunning
	// ClassPermission: 403 `Permission check failed (path, priv)`. Not retryable.
	ClassPermission
	// ClassAuth: 401, bad or expired token. Not retryable.
	ClassAuth
	// ClassTransient: 5xx without a known message, 502/503/504/429, 595/596,
	// connection refused/reset, timeouts, `got no worker upid`, QMP
	// timeouts. Retryable (a mutation may have been applied: MaybeApplied).
	ClassTransient
	// ClassQuorum: `cluster not ready - no quorum?`. Retryable.
	ClassQuorum
	// ClassStorage: storage does not exist, is disabled or not available on
	// the node. Not retryable (configuration).
	ClassStorage
	// ClassStorageOffline: `storage 'x' is not online`. Retryable.
	ClassStorageOffline
	// ClassNoSpace: `not enough free space`, `No space left on device`.
	// Not retryable until space is freed.
	ClassNoSpace
	// ClassInvalid: 400 parameter errors, 501, impossible requests (shrink,
	// missing disk, unknown node, linked clone with storage). Not retryable.
	ClassInvalid
	// ClassConflict: digest mismatch, someone else changed the config.
	// Retryable (re-read, then act).
	ClassConflict
	// ClassPrecondition: the VM is in the wrong state for the request
	// (`VM 100 is running - destroy failed`, template start, HA without
	// purge). Not retryable as is: the pipeline must change state first.
	ClassPrecondition
	// ClassInterrupted: task ended with `unexpected status` (the worker
	// died). Retryable: observe PVE before acting again.
	ClassInterrupted
)

var classInfo = map[Class]struct {
	name      string
	retryable bool
}{
	ClassUnknown:        {"unknown", false},
	ClassLocked:         {"locked", true},
	ClassNotFound:       {"not found", false},
	ClassAlreadyExists:  {"already exists", false},
	ClassAlreadyRunning: {"already running", false},
	ClassNotRunning:     {"not running", false},
	ClassPermission:     {"permission denied", false},
	ClassAuth:           {"authentication failed", false},
	ClassTransient:      {"transient", true},
	ClassQuorum:         {"no quorum", true},
	ClassStorage:        {"storage unavailable", false},
	ClassStorageOffline: {"storage offline", true},
	ClassNoSpace:        {"no space", false},
	ClassInvalid:        {"invalid request", false},
	ClassConflict:       {"conflict", true},
	ClassPrecondition:   {"precondition failed", false},
	ClassInterrupted:    {"task interrupted", true},
}

// Classes lists every class, for tests and documentation.
func Classes() []Class {
	cs := make([]Class, 0, len(classInfo))
	for c := range classInfo {
		cs = append(cs, c)
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i] < cs[j] })
	return cs
}

func (c Class) String() string {
	if i, ok := classInfo[c]; ok {
		return i.name
	}
	return "Class(" + strconv.Itoa(int(c)) + ")"
}

// Retryable reports whether an error of this class may be retried as is
// (with backoff). Non-retryable classes hold the VM or are handled by the
// step (already running, not found on delete, …).
func (c Class) Retryable() bool { return classInfo[c].retryable }

// Classify returns the class of any error: the Class of an *Error in its
// chain, else what the message or transport error says.
func Classify(err error) Class {
	if err == nil {
		return ClassUnknown
	}
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Class
	}
	if c, ok := classifyTransport(err); ok {
		return c
	}
	return ClassifyMessage(err.Error())
}

// first match wins, so more specific patterns come first.
type pattern struct {
	re    *regexp.Regexp
	class Class
}

// The regular expressions follow PVE's format strings exactly (case
// included). They are not anchored at the start because PVE wrappers
// prefix context ("clone failed: ", "unable to destroy VM 106: ",
// "unable to create VM 108 - "); they are anchored at the end where the
// format string ends the message.
var patterns = []pattern{
	// Locks. `can't lock file` comes before anything about timeouts.
	{regexp.MustCompile(`can't lock file '[^']*' - got timeout`), ClassLocked},
	{regexp.MustCompile(`(?:VM|CT) is locked \([a-z-]+\)`), ClassLocked},
	{regexp.MustCompile(`cfs-lock '[^']*' error: got lock request timeout`), ClassLocked},
	{regexp.MustCompile(`'[^']*'-locked command timed out - aborting`), ClassLocked},

	// Quorum and cluster filesystem.
	{regexp.MustCompile(`cluster not ready - no quorum\?`), ClassQuorum},
	{regexp.MustCompile(`\bno quorum!`), ClassQuorum},
	{regexp.MustCompile(`pve cluster filesystem not online\.`), ClassQuorum},

	// Access control: PUT /access/acl and PUT /pools die inside
	// lock_user_config, which prefixes "ACL update failed: " and "update
	// pools failed: " (before the Auth patterns: "no such token" here is
	// about a token named in the ACL request, not pvectl's own).
	{rePrincipalGone, ClassInvalid},
	{reRoleGone, ClassInvalid},
	{rePoolGone, ClassInvalid},
	{regexp.MustCompile(`update pools failed: VM \d+ is not a pool member$`), ClassNotFound},
	{regexp.MustCompile(`update pools failed: VM \d+ is already a pool member$`), ClassAlreadyExists},
	{regexp.MustCompile(`update pools failed: VM \d+ belongs already to pool '[^']*'`), ClassPrecondition},

	// Already exists (before "does not exist"/"not running" style matches).
	{regexp.MustCompile(`VM \d+ already exists on node '[^']*'`), ClassAlreadyExists},
	{regexp.MustCompile(`unable to create VM \d+: config file already exists`), ClassAlreadyExists},
	{regexp.MustCompile(`^VM \d+ already exists$`), ClassAlreadyExists}, // nextid 400 errors.vmid
	{regexp.MustCompile(`IPSet '[^']*' does already exist`), ClassAlreadyExists},
	{regexp.MustCompile(`address '[^']*' already exists`), ClassAlreadyExists},
	{regexp.MustCompile(`cloud-init drive is already attached at '[^']*'`), ClassAlreadyExists},
	{regexp.MustCompile(`snapshot name '[^']*' already used`), ClassAlreadyExists},

	// Run state.
	{regexp.MustCompile(`VM \d+ already running`), ClassAlreadyRunning},
	{regexp.MustCompile(`VM \d+ is running - destroy failed`), ClassPrecondition},
	{regexp.MustCompile(`can't migrate running VM without --online`), ClassPrecondition},
	{regexp.MustCompile(`VM \d+ (?:is )?not running$`), ClassNotRunning},
	{regexp.MustCompile(`you can't start a vm if it's a template`), ClassPrecondition},
	{regexp.MustCompile(`VM is paused - cannot shutdown`), ClassPrecondition},
	{regexp.MustCompile(`unable to remove VM \d+ - used in HA resources and purge parameter not set\.`), ClassPrecondition},
	{regexp.MustCompile(`IPSet '[^']*' is not empty`), ClassPrecondition},
	// Backups: a protected archive (imgdel: Plugin::free_image; vzdump's
	// own prune: archive_remove), a restore over a running or protected VM
	// (qemu-server create_vm; check_protection adds its own " - "), the
	// storage's retention limits (VZDump.pm exec_backup_task).
	{regexp.MustCompile(`cannot remove protected volume '[^']*' on '[^']*'`), ClassPrecondition},
	{regexp.MustCompile(`cannot remove protected archive '[^']*'`), ClassPrecondition},
	{regexp.MustCompile(`unable to restore VM \d+ - vm is running$`), ClassPrecondition},
	{regexp.MustCompile(`unable to restore VM \d+ - - protection mode enabled$`), ClassPrecondition},
	{regexp.MustCompile(`There is a max backup limit of \d+ enforced by the target storage or the vzdump parameters\. Either increase the limit or delete old backups\.`), ClassPrecondition},
	{regexp.MustCompile(`The number of protected backups per guest is limited to \d+ on storage '[^']*'`), ClassPrecondition},
	{regexp.MustCompile(`you can't convert a VM to template if VM is running`), ClassPrecondition},

	// Not found: only the addressed object. Storage/node/disk come later or
	// elsewhere so that they never read as "the VM is gone".
	{regexp.MustCompile(`Configuration file '[^']*' does not exist`), ClassNotFound},
	{regexp.MustCompile(`unable to find configuration file for VM \d+ on node '[^']*'`), ClassNotFound},
	{regexp.MustCompile(`^no such task$`), ClassNotFound}, // task status 400 errors.upid
	{regexp.MustCompile(`no such IPSet '[^']*'`), ClassNotFound},
	{regexp.MustCompile(`^no such IP/Network$`), ClassNotFound},
	{regexp.MustCompile(`snapshot '[^']*' does not exist`), ClassNotFound},
	{regexp.MustCompile(`volume '[^']*' does not exist`), ClassNotFound},
	// restore: the archive is gone (abs_filesystem_path); vzdump: no such
	// guest (exec_backup_task)
	{regexp.MustCompile(`can't find file '[^']*'`), ClassNotFound},
	{regexp.MustCompile(`unable to find VM '\d+'`), ClassNotFound},

	// Storage.
	{regexp.MustCompile(`storage '[^']*' is not online`), ClassStorageOffline},
	{regexp.MustCompile(`storage '[^']*' does not exist`), ClassStorage},
	{regexp.MustCompile(`storage '[^']*' is disabled`), ClassStorage},
	{regexp.MustCompile(`storage '[^']*' is not available on node '[^']*'`), ClassStorage},
	{regexp.MustCompile(`^No such storage\.$`), ClassStorage}, // storage status: 400 errors.storage
	// vzdump to a storage without content "backup" (VZDump::storage_info)
	{regexp.MustCompile(`can't use storage '[^']*' for backups - wrong content type`), ClassStorage},
	{regexp.MustCompile(`not enough free space \(`), ClassNoSpace},
	{regexp.MustCompile(`No space left on device`), ClassNoSpace},

	// Concurrent modification.
	{regexp.MustCompile(`checksum mismatch \(file change by other user\?\)`), ClassConflict},
	{regexp.MustCompile(`detected modified configuration - file changed by other user\? Try again\.`), ClassConflict},

	// Transient.
	{regexp.MustCompile(`got no worker upid - start worker failed`), ClassTransient},
	{regexp.MustCompile(`VM \d+ qmp command '[^']*' failed - got timeout`), ClassTransient},
	{regexp.MustCompile(`unable to connect to VM \d+ qmp socket - timeout after \d+ retries`), ClassTransient},
	{regexp.MustCompile(`unable to open monitor socket`), ClassTransient},
	{regexp.MustCompile(`VM quit/powerdown failed - got timeout`), ClassTransient},
	{regexp.MustCompile(`QEMU guest agent is not running`), ClassTransient},
	{regexp.MustCompile(`Errors during connection establishment, proxy handshake`), ClassTransient},
	// Migration: the target node does not answer over SSH (down, network).
	{regexp.MustCompile(`Can't connect to destination address using public key`), ClassTransient},

	// Task ended without a final status line: the worker died.
	{regexp.MustCompile(`^unexpected status$`), ClassInterrupted},
	{regexp.MustCompile(`^unable to get last line from task log`), ClassInterrupted},

	// Auth and permission, for messages seen without their status code.
	{regexp.MustCompile(`Permission check failed`), ClassPermission},
	{regexp.MustCompile(`not available with API token, need proper ticket\.`), ClassPermission},
	{regexp.MustCompile(`permission denied - invalid PVE ticket`), ClassAuth},
	{regexp.MustCompile(`^Authentication failed!$`), ClassAuth},
	{regexp.MustCompile(`^No ticket$`), ClassAuth},
	{regexp.MustCompile(`invalid token value!`), ClassAuth},
	{regexp.MustCompile(`token '[^']*' access expired`), ClassAuth},
	{regexp.MustCompile(`no such token '[^']*' for user '[^']*'`), ClassAuth},
	{regexp.MustCompile(`user '[^']*' is disabled`), ClassAuth},
	{regexp.MustCompile(`user '[^']*' access expired`), ClassAuth},
	{regexp.MustCompile(`^authentication failure$`), ClassAuth},

	// Requests PVE cannot carry out as asked.
	{regexp.MustCompile(`shrinking disks is not supported`), ClassInvalid},
	{regexp.MustCompile(`disk '[^']*' does not exist`), ClassInvalid},
	{regexp.MustCompile(`you can't resize a cdrom`), ClassInvalid},
	{regexp.MustCompile(`^target is local node\.$`), ClassInvalid},
	{regexp.MustCompile(`can't clone VM to node '[^']*' \(VM uses local storage\)`), ClassInvalid},
	{regexp.MustCompile(`parameter '(?:storage|format)' not allowed for linked clones`), ClassInvalid},
	{regexp.MustCompile(`(?:Linked|Full) clone feature is not supported for drive '[^']*'`), ClassInvalid},
	{regexp.MustCompile(`unable to use snapshot name '[^']*' \(reserved name\)`), ClassInvalid},
	{regexp.MustCompile(`^no guests specified$`), ClassInvalid},
	{regexp.MustCompile(`unable to get any free VMID in range`), ClassInvalid},
	{regexp.MustCompile(`No QEMU guest agent configured`), ClassInvalid},
	{regexp.MustCompile(`no such cluster node '[^']*'`), ClassInvalid},
	{regexp.MustCompile(`hostname lookup '[^']*' failed`), ClassInvalid},
	{regexp.MustCompile(`unable to parse worker upid`), ClassInvalid},
	{regexp.MustCompile(`^Parameter verification failed\.$`), ClassInvalid},
	{regexp.MustCompile(`^Method '[A-Z]+ [^']*' not implemented$`), ClassInvalid},
	{regexp.MustCompile(`^Unexpected content for method '[A-Z]+'$`), ClassInvalid},
	{regexp.MustCompile(`^SSH public key validation error$`), ClassInvalid},
	{regexp.MustCompile(`only backups support attribute '[^']*'`), ClassInvalid},
	{regexp.MustCompile(`storage ID mismatch \([^)]*\)`), ClassInvalid},
}

// reConfigLock is AbstractConfig::check_lock's message.
var reConfigLock = regexp.MustCompile(`(?:VM|CT) is locked \(([a-z-]+)\)`)

// ConfigLock returns the config lock named by a "VM is locked (<lock>)"
// error ("backup", "clone", "create", "migrate", "snapshot", …), in its
// message or (for a task such as vzdump that ends "job errors") in the
// task log's ERROR line kept as Detail; "" for any other error, including
// file-lock timeouts. A lock means "wait and try again": "backup" and
// "snapshot" locks go away when the task holding them ends, while one left
// by a dead worker stays until someone runs qm unlock.
func ConfigLock(err error) string {
	if err == nil {
		return ""
	}
	texts := []string{err.Error()}
	var pe *Error
	if errors.As(err, &pe) {
		texts = []string{pe.Message, pe.Detail}
	}
	for _, t := range texts {
		if m := reConfigLock.FindStringSubmatch(t); m != nil {
			return m[1]
		}
	}
	return ""
}

// reNoSpace finds a full storage anywhere in a task log: vzdump writes
// through a compressor, which reports "No space left on device" on its
// own line, while the job's ERROR line says only "Broken pipe".
var reNoSpace = regexp.MustCompile(`No space left on device`)

// Access-control messages the suspend steps tell apart (IsUnknownPrincipal,
// IsUnknownRole, IsUnknownPool): what an ACL or pool request names is gone.
var (
	rePrincipalGone = regexp.MustCompile(`ACL update failed: (?:(?:user|group) '[^']*' does not exist|no such user \('[^']*'\)|no such token '[^']*' for user '[^']*')$`)
	reRoleGone      = regexp.MustCompile(`ACL update failed: role '[^']*' does not exist$`)
	rePoolGone      = regexp.MustCompile(`update pools failed: pool '[^']*' does not exist$`)
)

func messageMatches(err error, re *regexp.Regexp) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	var pe *Error
	if errors.As(err, &pe) {
		msg = pe.Message
	}
	return re.MatchString(strings.TrimRight(msg, "\n"))
}

// IsUnknownPrincipal reports an ACL request refused because the user,
// group or token it names does not exist.
func IsUnknownPrincipal(err error) bool { return messageMatches(err, rePrincipalGone) }

// IsUnknownRole reports an ACL request refused because its role does not
// exist.
func IsUnknownRole(err error) bool { return messageMatches(err, reRoleGone) }

// IsUnknownPool reports a pool request refused because the pool does not
// exist.
func IsUnknownPool(err error) bool { return messageMatches(err, rePoolGone) }

// ClassifyMessage classifies a PVE message (reason phrase, body message,
// per-field error or task exit status) without an HTTP status. Messages
// that match no known pattern are ClassUnknown.
func ClassifyMessage(msg string) Class {
	msg = strings.TrimRight(msg, "\n")
	for _, p := range patterns {
		if p.re.MatchString(msg) {
			return p.class
		}
	}
	return ClassUnknown
}

// ClassifyHTTP classifies a PVE response by status code, reason phrase and
// the per-field errors of a 400.
func ClassifyHTTP(status int, msg string, fields map[string]string) Class {
	switch {
	case status == 401:
		return ClassAuth
	case status == 403:
		return ClassPermission
	case status == 400:
		// A known per-field message (already exists, no such task, …) wins.
		keys := make([]string, 0, len(fields))
		for k := range fields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if c := ClassifyMessage(fields[k]); c != ClassUnknown && c != ClassInvalid {
				return c
			}
		}
		if c := ClassifyMessage(msg); c != ClassUnknown {
			return c
		}
		return ClassInvalid
	case status == 429 || status == 502 || status == 503 || status == 504:
		return ClassTransient
	case status >= 590 && status <= 599: // AnyEvent::HTTP pseudo codes from pveproxy
		return ClassTransient
	case status == 501:
		return ClassInvalid
	case status >= 500:
		if c := ClassifyMessage(msg); c != ClassUnknown {
			return c
		}
		return ClassTransient
	case status >= 400:
		if c := ClassifyMessage(msg); c != ClassUnknown {
			return c
		}
		return ClassInvalid
	}
	return ClassifyMessage(msg)
}

// httpMaybeApplied reports whether a response status leaves a mutation's
// outcome unknown.
func httpMaybeApplied(status int, msg string) bool {
	switch {
	case status == 596 || status == 504:
		return true
	case status == 595:
		// Could not even connect through the proxy: nothing was applied.
		return !strings.Contains(msg, "Errors during connection establishment")
	case status >= 590 && status <= 599:
		return true
	}
	return false
}

// classifyTransport recognises errors that never reached PVE or lost the
// response: refused/reset connections, timeouts, cancelled contexts. A TLS
// verification failure is a configuration problem (ClassInvalid).
func classifyTransport(err error) (Class, bool) {
	var (
		certErr      *tls.CertificateVerificationError
		unknownAuth  x509.UnknownAuthorityError
		hostnameErr  x509.HostnameError
		certInvalid  x509.CertificateInvalidError
		recordHeader tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &certErr), errors.As(err, &unknownAuth), errors.As(err, &hostnameErr),
		errors.As(err, &certInvalid), errors.As(err, &recordHeader):
		return ClassInvalid, true
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return ClassTransient, true
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.ECONNABORTED):
		return ClassTransient, true
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return ClassTransient, true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ClassTransient, true
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return ClassTransient, true
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return ClassTransient, true
	}
	return ClassUnknown, false
}

// transportMaybeApplied: the request may have been sent before the failure.
func transportMaybeApplied(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return false
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return false
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return false
	}
	return true
}

// taskExitOK reports whether a task exit status means success.
func taskExitOK(exit string) bool {
	if exit == "OK" {
		return true
	}
	rest, ok := strings.CutPrefix(exit, "WARNINGS: ")
	if !ok {
		return false
	}
	_, err := strconv.Atoi(rest)
	return err == nil
}

// taskError builds the error for a failed task's exit status.
func taskError(s TaskStatus) *Error {
	e := &Error{
		Class:   ClassifyMessage(s.ExitStatus),
		Op:      "task " + s.Type,
		Node:    s.Task.Node,
		Message: s.ExitStatus,
		Task:    s.Task,
	}
	if id, err := strconv.Atoi(s.ID); err == nil {
		e.VMID = id
	}
	if e.Message == "" {
		e.Message = "task stopped without exit status"
	}
	return e
}

// TaskFailure is the error of a finished task read together with its log
// (nil when the task succeeded). Some workers end with a generic exit status
// and write the cause only as an "ERROR: …" log line (AbstractMigrate: exit
// "migration aborted", log "2026-11-25 12:00:03 ERROR: migration aborted
// (duration 00:00:03): Can't connect to destination address using public
// key"). The newest such line becomes the error's Detail, and its class wins
// when the exit status alone says nothing known.
func TaskFailure(s TaskStatus, log []TaskLogLine) error {
	if s.Running || taskExitOK(s.ExitStatus) {
		return nil
	}
	e := taskError(s)
	for i := len(log) - 1; i >= 0; i-- {
		// Workers stamp their lines: "2026-11-25 12:00:03 ERROR: …".
		line, ok := strings.CutPrefix(logStampRE.ReplaceAllString(log[i].Text, ""), "ERROR: ")
		if !ok {
			continue
		}
		// "migration aborted (duration …): cause" → "cause"
		if m := abortedRE.FindStringSubmatch(line); m != nil {
			line = m[1]
		}
		if line == e.Message {
			break
		}
		e.Detail = line
		if e.Class == ClassUnknown {
			e.Class = ClassifyMessage(line)
		}
		break
	}
	if e.Class == ClassUnknown {
		for _, l := range log {
			if reNoSpace.MatchString(l.Text) {
				e.Class = ClassNoSpace
				break
			}
		}
	}
	return e
}

var logStampRE = regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d `)

var abortedRE = regexp.MustCompile(`^\w+ aborted \(duration [0-9:]+\): (.+)$`)

// ClassNames lists the names of the error classes, as errors print them
// at their end ("… [permission denied]"), sorted.
func ClassNames() []string {
	out := make([]string, 0, len(classInfo))
	for _, i := range classInfo {
		out = append(out, i.name)
	}
	sort.Strings(out)
	return out
}
