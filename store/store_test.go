package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func open(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Create(context.Background(), filepath.Join(t.TempDir(), "pvectl.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newVM(t *testing.T, s *store.Store, svc string) store.VM {
	t.Helper()
	vm, created, err := s.VMCreate(context.Background(), store.NewVM{
		ServiceID: svc, Hostname: svc + ".example.test", Product: "small", Status: "creation", Now: t0,
	})
	require.NoError(t, err)
	require.True(t, created)
	return vm
}

func TestOpenSetsDurabilityPragmas(t *testing.T) {
	t.Parallel()
	s := open(t)
	ctx := context.Background()
	for pragma, want := range map[string]string{
		"journal_mode": "wal",
		"synchronous":  "2", // FULL
		"foreign_keys": "1",
		"busy_timeout": fmt.Sprint(store.BusyTimeout.Milliseconds()),
	} {
		got, err := s.Pragma(ctx, pragma)
		require.NoError(t, err)
		require.Equal(t, want, got, pragma)
	}
}

func TestOpenTwiceIsIdempotentAndConcurrentOpensMigrateOnce(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "pvectl.db")
	s, err := store.Create(context.Background(), path)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			s, err := store.Open(context.Background(), path)
			if err == nil {
				err = s.Close()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	// Every embedded migration was applied exactly once.
	entries, err := os.ReadDir("migrations")
	require.NoError(t, err)
	db, err := sql.Open("sqlite", "file:"+path)
	require.NoError(t, err)
	defer db.Close()
	rows, err := db.Query(`SELECT version_id, count(*) FROM goose_db_version WHERE version_id > 0 AND is_applied GROUP BY version_id`)
	require.NoError(t, err)
	defer rows.Close()
	applied := 0
	for rows.Next() {
		var version, n int64
		require.NoError(t, rows.Scan(&version, &n))
		require.EqualValues(t, 1, n, "migration %d applied %d times", version, n)
		applied++
	}
	require.NoError(t, rows.Err())
	require.Equal(t, len(entries), applied, "applied migrations")
}

func TestStatusCheckConstraintRejectsUnknownState(t *testing.T) {
	t.Parallel()
	s := open(t)
	_, _, err := s.VMCreate(context.Background(), store.NewVM{
		ServiceID: "svc-1", Hostname: "a.example.test", Product: "small", Status: "redy", Now: t0,
	})
	require.ErrorContains(t, err, "CHECK constraint failed")
}

// The CHECK constraint on vms.status, as the migrated schema holds it, lists
// exactly the states the pipelines know (states.All()): a state added to the
// tables needs a migration, and the schema allows no state nothing uses.
func TestStatusCheckListsEveryState(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "pvectl.db")
	s, err := store.Create(context.Background(), path)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	require.NoError(t, err)
	defer db.Close()
	var schema string
	require.NoError(t, db.QueryRow(`SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'vms'`).Scan(&schema))

	m := regexp.MustCompile(`(?s)\bstatus\b[^,]*?CHECK\s*\(\s*status\s+IN\s*\(([^)]*)\)\s*\)`).FindStringSubmatch(schema)
	require.NotNil(t, m, "no CHECK (status IN (...)) on vms.status in:\n%s", schema)
	var inSchema []string
	for _, v := range strings.Split(m[1], ",") {
		v = strings.TrimSpace(v)
		require.True(t, len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'', "not a quoted state: %q", v)
		inSchema = append(inSchema, v[1:len(v)-1])
	}
	var known []string
	for _, st := range states.All() {
		known = append(known, string(st))
	}
	slices.Sort(inSchema)
	slices.Sort(known)
	require.Equal(t, known, inSchema, "vms.status CHECK list vs states.All()")
}

func TestVMCreateIdempotencyKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t)
	req := store.NewVM{ServiceID: "svc-1", Hostname: "a.example.test", Product: "small", Status: "creation",
		IdempotencyKey: "order-7", RequestDigest: "d1", Now: t0}
	first, created, err := s.VMCreate(ctx, req)
	require.NoError(t, err)
	require.True(t, created)

	again, created, err := s.VMCreate(ctx, req)
	require.NoError(t, err)
	require.False(t, created, "same key and arguments return the existing VM")
	require.Equal(t, first.ID, again.ID)

	req.RequestDigest = "d2"
	req.ServiceID = "svc-2"
	_, _, err = s.VMCreate(ctx, req)
	require.ErrorIs(t, err, store.ErrIdempotencyMismatch)
	all, err := s.VMList(ctx, store.VMFilter{})
	require.NoError(t, err)
	require.Len(t, all, 1, "a mismatched key changes nothing")

	_, _, err = s.VMCreate(ctx, store.NewVM{ServiceID: "svc-1", Hostname: "b", Product: "p", Status: "creation", Now: t0})
	require.ErrorIs(t, err, store.ErrDuplicate)
}

func TestApplyOutcomeIsCompareAndSet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t)
	vm := newVM(t, s, "svc-1")

	tests := []struct {
		name    string
		status  string
		version int64
		wantErr error
	}{
		{"stale version", "creation", vm.Version + 5, store.ErrConflict},
		{"stale status", "set_ip", vm.Version, store.ErrConflict},
		{"current", "creation", vm.Version, nil},
		{"same transition replayed", "creation", vm.Version, store.ErrConflict},
	}
	for _, tc := range tests {
		err := s.VMApplyOutcome(ctx, store.Outcome{ID: vm.ID, FromStatus: tc.status, FromVersion: tc.version,
			ToStatus: "set_ip", ClearPending: true, Now: t0})
		if tc.wantErr != nil {
			require.ErrorIs(t, err, tc.wantErr, tc.name)
		} else {
			require.NoError(t, err, tc.name)
		}
	}
	got, err := s.VMGet(ctx, vm.ID)
	require.NoError(t, err)
	require.Equal(t, "set_ip", got.Status)
	require.Equal(t, vm.Version+1, got.Version)
}

func TestOutcomeKeepsPendingTaskUntilCleared(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t)
	vm := newVM(t, s, "svc-1")
	upid := "UPID:pve1:0000A1B2:00C3D4E5:6744F0A0:qmclone:9000:root@pam!pvectl:"
	require.NoError(t, s.VMSetPendingTask(ctx, vm.ID, vm.Status, vm.Version, "clone", "pve1", upid, t0))
	require.NoError(t, s.VMApplyOutcome(ctx, store.Outcome{ID: vm.ID, FromStatus: vm.Status, FromVersion: vm.Version,
		ToStatus: vm.Status, StepWaits: 1, Now: t0}))
	got, err := s.VMGet(ctx, vm.ID)
	require.NoError(t, err)
	require.Equal(t, upid, got.PendingUPID)
	require.Equal(t, "pve1", got.PendingNode)
	require.Equal(t, 1, got.StepWaits)
	require.Equal(t, vm.Version, got.Version, "a wait does not bump the version")

	require.NoError(t, s.VMApplyOutcome(ctx, store.Outcome{ID: vm.ID, FromStatus: vm.Status, FromVersion: vm.Version,
		ToStatus: "set_ip", ClearPending: true, Now: t0}))
	got, err = s.VMGet(ctx, vm.ID)
	require.NoError(t, err)
	require.Empty(t, got.PendingUPID)
	require.Equal(t, 0, got.StepWaits)
}

func TestVMsDueSkipsFinalHeldAndBackingOff(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t)
	due := newVM(t, s, "due")
	held := newVM(t, s, "held")
	backoff := newVM(t, s, "backoff")
	ready := newVM(t, s, "ready")
	require.NoError(t, s.VMApplyOutcome(ctx, store.Outcome{ID: held.ID, FromStatus: "creation", FromVersion: held.Version,
		ToStatus: "creation", Held: true, Attempts: 1, LastError: "403", Now: t0}))
	require.NoError(t, s.VMApplyOutcome(ctx, store.Outcome{ID: backoff.ID, FromStatus: "creation", FromVersion: backoff.Version,
		ToStatus: "creation", Attempts: 1, NextAttempt: t0.Add(2 * time.Minute), Now: t0}))
	require.NoError(t, s.VMSetStatus(ctx, ready.ID, "ready", t0))

	got, err := s.VMsDue(ctx, t0, []string{"ready", "remove", "error_terminate"})
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, due.ID, got[0].ID)

	got, err = s.VMsDue(ctx, t0.Add(3*time.Minute), []string{"ready", "remove", "error_terminate"})
	require.NoError(t, err)
	require.Len(t, got, 2, "backoff expired")

	cur, err := s.VMGet(ctx, held.ID)
	require.NoError(t, err)
	require.ErrorIs(t, s.VMRelease(ctx, held.ID, cur.Status, cur.Version-1, t0), store.ErrConflict, "a stale read releases nothing")
	require.NoError(t, s.VMRelease(ctx, held.ID, cur.Status, cur.Version, t0))
	got, err = s.VMsDue(ctx, t0, []string{"ready"})
	require.NoError(t, err)
	require.Len(t, got, 2, "released VM is due again")
}

func TestRunLogKeepsNewest50Runs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t)
	vm := newVM(t, s, "svc-1")
	other := newVM(t, s, "svc-2")
	otherRun, err := s.RunStart(ctx, other.ID, "process_vms", t0)
	require.NoError(t, err)
	for i := range 60 {
		id, err := s.RunStart(ctx, vm.ID, "process_vms", t0.Add(time.Duration(i)*time.Minute))
		require.NoError(t, err)
		require.NoError(t, s.RunAppendLine(ctx, store.RunLine{RunID: id, At: t0, Step: "Clone VM",
			From: "set_ip", To: "clone", Result: "success", Detail: fmt.Sprint(i), Duration: 1500 * time.Millisecond}))
		require.NoError(t, s.RunFinish(ctx, id, "success", t0))
	}
	runs, err := s.RunsForVM(ctx, vm.ID, 1000)
	require.NoError(t, err)
	require.Len(t, runs, store.RunsKeptPerVM)
	require.Equal(t, "59", runs[0].Lines[0].Detail, "newest first")
	require.Equal(t, "10", runs[len(runs)-1].Lines[0].Detail)
	require.Equal(t, 1500*time.Millisecond, runs[0].Lines[0].Duration)

	otherRuns, err := s.RunsForVM(ctx, other.ID, 10)
	require.NoError(t, err)
	require.Len(t, otherRuns, 1, "pruning is per VM")
	require.Equal(t, otherRun, otherRuns[0].ID)
}

func TestVMReserveIsAllOrNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t)
	a := newVM(t, s, "a")
	b := newVM(t, s, "b")
	require.NoError(t, s.VMReserve(ctx, store.Reservation{ID: a.ID, Status: a.Status, Version: a.Version, VMID: 100,
		Node: "pve1", IPs: []store.IPAllocation{{Address: "192.0.2.10", Family: 4, Pool: "v4"}}, Now: t0}))

	tests := []struct {
		name string
		r    store.Reservation
	}{
		{"vmid taken", store.Reservation{VMID: 100, IPs: []store.IPAllocation{{Address: "192.0.2.11", Family: 4, Pool: "v4"}}}},
		{"address taken", store.Reservation{VMID: 101, IPs: []store.IPAllocation{{Address: "192.0.2.11", Family: 4, Pool: "v4"}, {Address: "192.0.2.10", Family: 4, Pool: "v4"}}}},
	}
	for _, tc := range tests {
		r := tc.r
		r.ID, r.Status, r.Version, r.Node, r.Now = b.ID, b.Status, b.Version, "pve1", t0
		require.ErrorIs(t, s.VMReserve(ctx, r), store.ErrDuplicate, tc.name)
		got, err := s.VMGet(ctx, b.ID)
		require.NoError(t, err)
		require.Zero(t, got.VMID, tc.name)
		ips, err := s.IPsForVM(ctx, b.ID)
		require.NoError(t, err)
		require.Empty(t, ips, tc.name)
	}
	used, err := s.UsedVMIDs(ctx)
	require.NoError(t, err)
	require.Equal(t, map[int]bool{100: true}, used)
}

func TestTaskRunLast(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t)
	for i, task := range []string{"process_vms", "process_vms", "collect_stats"} {
		id, err := s.TaskRunStart(ctx, task, 42, t0.Add(time.Duration(i)*time.Minute))
		require.NoError(t, err)
		require.NoError(t, s.TaskRunFinish(ctx, store.TaskRun{ID: id, FinishedAt: t0.Add(time.Duration(i)*time.Minute + time.Second),
			Duration: time.Second, Result: "ok", Processed: i}))
	}
	last, err := s.TaskRunLast(ctx)
	require.NoError(t, err)
	require.Len(t, last, 2)
	require.Equal(t, 1, last["process_vms"].Processed)
	require.Equal(t, t0.Add(time.Minute), last["process_vms"].StartedAt)
	require.Equal(t, "ok", last["collect_stats"].Result)
}

func TestHostnameBelongsToOneLiveVM(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t)
	a := newVM(t, s, "a")
	_, _, err := s.VMCreate(ctx, store.NewVM{ServiceID: "b", Hostname: a.Hostname, Product: "small", Status: "creation",
		IdempotencyKey: "k-b", RequestDigest: "x", Now: t0})
	require.ErrorIs(t, err, store.ErrDuplicate, "an idempotency key does not bypass the hostname check")
	require.NoError(t, s.VMSetStatus(ctx, a.ID, "remove", t0))
	b, _, err := s.VMCreate(ctx, store.NewVM{ServiceID: "b", Hostname: a.Hostname, Product: "small", Status: "creation", Now: t0})
	require.NoError(t, err, "a removed VM's hostname can be reused")
	got, err := s.VMFind(ctx, a.Hostname)
	require.NoError(t, err)
	require.Equal(t, b.ID, got.ID, "the live VM wins over the removed one")
}

func TestDatabaseFileIsOwnerOnly(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "pvectl.db")
	s, err := store.Create(context.Background(), path)
	require.NoError(t, err)
	defer s.Close()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}

// One run with the clock far ahead does not pin a VM (or its DNS retry) for
// years: retry times are clamped to MaxRetryDelay ahead of now on write, and
// a stored time further ahead than that counts as due on read.
func TestRetryTimesAreClampedToTheMaximumBackoff(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t)
	final := []string{"ready", "remove", "error_terminate"}
	future := t0.AddDate(10, 0, 0)

	// Write clamp: a backoff of a year is stored as 30 minutes.
	a := newVM(t, s, "a")
	require.NoError(t, s.VMApplyOutcome(ctx, store.Outcome{ID: a.ID, FromStatus: "creation", FromVersion: a.Version,
		ToStatus: "creation", Attempts: 1, NextAttempt: t0.AddDate(1, 0, 0), Now: t0}))
	got, err := s.VMGet(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, t0.Add(store.MaxRetryDelay), got.NextAttemptAt)

	// Read clamp: written by a run whose clock said 2036; at t0 it is due.
	b := newVM(t, s, "b")
	require.NoError(t, s.VMApplyOutcome(ctx, store.Outcome{ID: b.ID, FromStatus: "creation", FromVersion: b.Version,
		ToStatus: "creation", Attempts: 1, NextAttempt: future.Add(2 * time.Minute), Now: future}))
	due, err := s.VMsDue(ctx, t0, final)
	require.NoError(t, err)
	require.Len(t, due, 1)
	require.Equal(t, b.ID, due[0].ID)
	due, err = s.VMsDue(ctx, t0.Add(store.MaxRetryDelay), final)
	require.NoError(t, err)
	require.Len(t, due, 2, "the clamped backoff expires after MaxRetryDelay")

	// DNS retries: the same on write and on read.
	require.NoError(t, s.DNSSetDirty(ctx, a.ID, 3, t0.AddDate(1, 0, 0), t0))
	d, err := s.DNSRetryGet(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, t0.Add(store.MaxRetryDelay), d.NextAt)
	require.NoError(t, s.DNSSetDirty(ctx, b.ID, 3, future.Add(time.Hour), future))
	dd, err := s.DNSDirtyDue(ctx, t0, nil)
	require.NoError(t, err)
	require.Len(t, dd, 1)
	require.Equal(t, b.ID, dd[0].VM.ID)
}

// IPReplace is a compare-and-set on the VM's status and version like every
// step write: a change-package step that read the VM before an admin's
// `reset-status VM remove` (which releases the VMID and addresses) cannot add
// an address to the removed record, where nothing would ever release it.
func TestIPReplaceIsRefusedAfterRemove(t *testing.T) {
	t.Parallel()
	s := open(t)
	ctx := context.Background()
	vm := newVM(t, s, "svc-cp")
	require.NoError(t, s.VMReserve(ctx, store.Reservation{ID: vm.ID, Status: vm.Status, Version: vm.Version, VMID: 1000,
		Node: "pve1", TargetNode: "pve1", IPs: []store.IPAllocation{{Address: "192.0.2.10", Family: 4, Pool: "v4"}}, Now: t0}))
	require.NoError(t, s.VMSetStatus(ctx, vm.ID, "change_package", t0))
	// The tick's change_package step has read the VM ...
	read, err := s.VMGet(ctx, vm.ID)
	require.NoError(t, err)
	// ... the admin removes it ...
	require.NoError(t, s.VMSetRemoved(ctx, vm.ID, read.Status, read.Version, t0))
	// ... and the step allocates the product's extra address.
	err = s.IPReplace(ctx, vm.ID, read.Status, read.Version, []store.IPAllocation{{Address: "192.0.2.11", Family: 4, Pool: "v4"}}, nil, t0)
	require.ErrorIs(t, err, store.ErrConflict)

	got, gerr := s.VMGet(ctx, vm.ID)
	require.NoError(t, gerr)
	require.Equal(t, "remove", got.Status)
	used, uerr := s.IPsInPool(ctx, "v4")
	require.NoError(t, uerr)
	require.Error(t, err, "a step that read an older status/version adds no addresses to a removed VM")
	require.Empty(t, used, "a removed VM holds no addresses")
}
