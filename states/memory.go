package states

import (
	"context"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pvectl/pvectl/store"
)

// StepMemory is what the step a VM is at remembers across ticks: when it
// sent a shutdown or a forced stop, since when it has seen a config lock no
// pvectl task explains, and the backup deletions it submitted. It is stored
// as versioned JSON in the VM's step_data, which every status change clears.
type StepMemory struct {
	// V is the format's version (stepMemoryVersion).
	V int `json:"v"`
	// ShutdownAt is when the graceful shutdown was sent (stop steps).
	ShutdownAt *time.Time `json:"shutdown_at,omitempty"`
	// StopAt is when the forced stop was sent, once the shutdown timed out.
	StopAt *time.Time `json:"stop_at,omitempty"`
	// RebootAt is when the reboot was requested (power_reboot), written
	// before the request is sent.
	RebootAt *time.Time `json:"reboot_at,omitempty"`
	// RebootBaseline is what PVE's task list held for the VM just before
	// the reboot was sent, written with RebootAt (nil: intent written by an
	// earlier version of pvectl).
	RebootBaseline *RebootBaseline `json:"reboot_baseline,omitempty"`
	// RestoreAt is when the restore of the archive was requested (restore
	// table), written with RestoreBaseline before the request is sent.
	RestoreAt *time.Time `json:"restore_at,omitempty"`
	// RestoreBaseline is what PVE's task list held for the VM's qmrestore
	// tasks just before the restore was sent.
	RestoreBaseline *RebootBaseline `json:"restore_baseline,omitempty"`
	// RestoreAdditional is the volume of the VM's additional disk (the one
	// pvectl created) just before the restore was sent. PVE keeps a disk
	// the archive does not hold as an unusedN entry; the restore step
	// attaches it again as the additional disk instead of leaving it to
	// leak while the change-package creates a new, empty one.
	RestoreAdditional string `json:"restore_additional,omitempty"`
	// LockSince is when the step first saw a lock no pvectl task holds (staleLock).
	LockSince *time.Time `json:"lock_since,omitempty"`
	// Backups are the terminate's backup deletions, by volume ID.
	Backups map[string]*BackupDeletion `json:"backups,omitempty"`
}

// BackupDeletion is one backup volume the terminate asked PVE to delete.
type BackupDeletion struct {
	// Node and UPID are the deletion's PVE task, remembered before the next
	// volume is touched.
	Node string `json:"node,omitempty"`
	UPID string `json:"upid,omitempty"`
	// Lost: PVE no longer knows the task (node rebooted); the next listing
	// decides (still there: delete again; gone: deleted).
	Lost bool `json:"lost,omitempty"`
	// Result is set once the outcome was reported: "ok" or "failed" (a
	// failed deletion is not tried again).
	Result string `json:"result,omitempty"`
}

// Submitted reports whether a deletion task is remembered and not lost.
func (d *BackupDeletion) Submitted() bool { return d != nil && d.UPID != "" && !d.Lost }

const (
	stepMemoryVersion = 1
	deletionOK        = "ok"
	deletionFailed    = "failed"
)

// decodeStepMemory reads a step_data value: "" (nothing remembered), the
// JSON format, or the url-encoded format of earlier versions (legacy true),
// which a VM caught mid-step by an upgrade still carries. An unreadable
// value is forgotten, as before: the step starts over.
func decodeStepMemory(data string) (m StepMemory, legacy bool) {
	data = strings.TrimSpace(data)
	if data == "" {
		return StepMemory{}, false
	}
	if strings.HasPrefix(data, "{") {
		if err := json.Unmarshal([]byte(data), &m); err != nil {
			return StepMemory{}, false
		}
		return m, false
	}
	v, err := url.ParseQuery(data)
	if err != nil {
		return StepMemory{}, true
	}
	millis := func(key string) *time.Time {
		n, err := strconv.ParseInt(v.Get(key), 10, 64)
		if err != nil {
			return nil
		}
		t := time.UnixMilli(n).UTC()
		return &t
	}
	m.ShutdownAt, m.StopAt, m.LockSince = millis("shutdown_at"), millis("stop_at"), millis("lock_since")
	deletion := func(volid string) *BackupDeletion {
		if m.Backups == nil {
			m.Backups = map[string]*BackupDeletion{}
		}
		if m.Backups[volid] == nil {
			m.Backups[volid] = &BackupDeletion{}
		}
		return m.Backups[volid]
	}
	for key := range v {
		if volid, ok := strings.CutPrefix(key, "del "); ok {
			d := deletion(volid)
			if rec := v.Get(key); rec == "lost" {
				d.Lost = true
			} else {
				d.Node, d.UPID, _ = strings.Cut(rec, " ")
			}
		}
		if volid, ok := strings.CutPrefix(key, "res "); ok && v.Get(key) != "" {
			deletion(volid).Result = v.Get(key)
		}
	}
	return m, true
}

// encode renders the memory for step_data; nothing remembered is "".
func (m StepMemory) encode() string {
	if m.ShutdownAt == nil && m.StopAt == nil && m.RebootAt == nil && m.RebootBaseline == nil &&
		m.RestoreAt == nil && m.RestoreBaseline == nil && m.RestoreAdditional == "" && m.LockSince == nil && len(m.Backups) == 0 {
		return ""
	}
	m.V = stepMemoryVersion
	b, _ := json.Marshal(m) // plain values: cannot fail
	return string(b)
}

// memory is what the VM's current step remembers.
func memory(vm store.VM) StepMemory {
	m, _ := decodeStepMemory(vm.StepData)
	return m
}

// loadMemory is memory for a step about to update it: the format of
// earlier versions is decoded once and written back as JSON at once.
func loadMemory(ctx context.Context, env *Env, vm *store.VM) StepMemory {
	m, legacy := decodeStepMemory(vm.StepData)
	if legacy {
		_ = saveMemory(ctx, env, vm, m)
	}
	return m
}

// saveMemory stores the step's memory; vm.StepData is updated too.
func saveMemory(ctx context.Context, env *Env, vm *store.VM, m StepMemory) error {
	data := m.encode()
	if err := env.Store.VMSetStepData(ctx, vm.ID, vm.Status, vm.Version, data, env.Now()); err != nil {
		return err
	}
	vm.StepData = data
	return nil
}

// stamp is a remembered time (to the millisecond, as step_data always kept it).
func stamp(t time.Time) *time.Time {
	t = time.UnixMilli(t.UnixMilli()).UTC()
	return &t
}

// since is how long ago the step remembered *at, or ok=false when it did
// not. A remembered time later than now was written while the clock ran
// ahead: it is reset to now (and saved), so the wait starts over instead of
// lasting until the clock catches up.
func since(ctx context.Context, env *Env, vm *store.VM, m *StepMemory, at **time.Time) (time.Duration, bool) {
	if *at == nil {
		return 0, false
	}
	now := env.Now()
	if (*at).After(now) {
		*at = stamp(now)
		_ = saveMemory(ctx, env, vm, *m)
		return 0, true
	}
	return now.Sub(**at), true
}
