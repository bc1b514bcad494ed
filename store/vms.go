package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// VM is one VM record. Status is the last completed pipeline step.
type VM struct {
	ID             int64
	ServiceID      string
	Hostname       string
	Product        string
	Status         string
	Version        int64
	RequestedNode  string
	TargetNode     string // where the VM should end up (chosen at reservation)
	Node           string // where the VM lives now (or will be cloned)
	VMID           int    // 0 = not reserved yet
	PendingUPID    string
	PendingNode    string
	PendingStep    string
	StepWaits      int
	StepStartedAt  time.Time
	Attempts       int
	NextAttemptAt  time.Time
	Held           bool
	LastError      string
	IdempotencyKey string
	RequestDigest  string
	SSHKeys        string
	Password       string
	DNSDirty       bool
	MAC            string // net0's MAC, kept across reinstalls
	StepData       string // a step's memory across ticks; cleared on every status change
	DetachedVolume string // an additional disk's volume detached but not destroyed yet
	// PowerState is the VM's PVE status ("running", "stopped") the last
	// time a step read it, at PowerSeenAt; "" and zero when never read.
	PowerState  string
	PowerSeenAt time.Time
	// PowerForce: the pending power_shutdown was asked with --force.
	PowerForce bool
	// SuspendReason is the --reason of the last suspend; SuspendPending a
	// suspend queued until the VM is ready; SuspendSaved what the VM had
	// before its suspend (JSON), until the unsuspend restored it.
	SuspendReason  string
	SuspendPending bool
	SuspendSaved   string
	// MigrateNode is the node a pending vm migrate asked for ("auto": the
	// deploy's placement rule, the current node excluded); MigrateOnline
	// its --online.
	MigrateNode   string
	MigrateOnline bool
	// Template is the name, in the product's templates map, of the
	// template the VM is cloned from; "" = the product's default.
	Template string
	// RestoreVolid is the backup a pending pvectl backup restore restores
	// (a PVE volume id), from the request until the VM is ready again.
	RestoreVolid string
	// ThrottleMBps, while the time is before ThrottleUntil, is the NIC rate
	// (MB/s) the VM has instead of its product's: it went over its traffic
	// limit in the billing period ending at ThrottleUntil (traffic_action
	// throttle). 0 = not throttled.
	ThrottleMBps  int
	ThrottleUntil time.Time
	// WaitReason is why the step waited at its last run ("" when it did
	// not wait); StepStartedAt is when the VM entered its status.
	WaitReason string
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

const vmColumns = `id, service_id, hostname, product, status, version, requested_node, target_node, node,
	COALESCE(vmid, 0), pending_upid, pending_node, pending_step, step_waits, step_started_at,
	attempts, next_attempt_at, held, last_error, COALESCE(idempotency_key, ''), request_digest,
	ssh_keys, password, dns_dirty, mac, step_data, detached_volume, power_state, power_seen_at, power_force,
	suspend_reason, suspend_pending, suspend_saved, migrate_node, migrate_online, template, restore_volid, throttle_mbps, throttle_until, wait_reason, created_at, updated_at`

type scanner interface{ Scan(...any) error }

func scanVM(r scanner) (VM, error) {
	var v VM
	var stepStarted, next, created, updated, powerSeen, throttleUntil int64
	var held, dirty, force, suspendPending, online int
	err := r.Scan(&v.ID, &v.ServiceID, &v.Hostname, &v.Product, &v.Status, &v.Version,
		&v.RequestedNode, &v.TargetNode, &v.Node, &v.VMID, &v.PendingUPID, &v.PendingNode, &v.PendingStep,
		&v.StepWaits, &stepStarted, &v.Attempts, &next, &held, &v.LastError, &v.IdempotencyKey,
		&v.RequestDigest, &v.SSHKeys, &v.Password, &dirty, &v.MAC, &v.StepData, &v.DetachedVolume,
		&v.PowerState, &powerSeen, &force, &v.SuspendReason, &suspendPending, &v.SuspendSaved,
		&v.MigrateNode, &online, &v.Template, &v.RestoreVolid, &v.ThrottleMBps, &throttleUntil, &v.WaitReason, &created, &updated)
	if err != nil {
		return VM{}, err
	}
	v.StepStartedAt, v.NextAttemptAt = fromMS(stepStarted), fromMS(next)
	v.CreatedAt, v.UpdatedAt = fromMS(created), fromMS(updated)
	v.Held, v.DNSDirty, v.PowerForce, v.SuspendPending = held == 1, dirty == 1, force == 1, suspendPending == 1
	v.MigrateOnline = online == 1
	if powerSeen != 0 {
		v.PowerSeenAt = fromMS(powerSeen)
	}
	if throttleUntil != 0 {
		v.ThrottleUntil = fromMS(throttleUntil)
	}
	return v, nil
}

// NewVM is what a create request writes.
type NewVM struct {
	ServiceID      string
	Hostname       string
	Product        string
	Status         string
	RequestedNode  string
	IdempotencyKey string // optional
	RequestDigest  string // digest of the request, to detect a reused key
	SSHKeys        string
	Password       string
	Template       string // "" = the product's default
	Now            time.Time
}

// ErrIdempotencyMismatch means the idempotency key was used with other arguments.
var ErrIdempotencyMismatch = errors.New("idempotency key already used with different arguments")

// ErrDuplicate means a unique field (service id, hostname) is taken.
var ErrDuplicate = errors.New("already exists")

// VMCreate inserts a VM record. With an idempotency key that already exists
// and the same request digest it returns the existing VM and created=false;
// with a different digest it returns ErrIdempotencyMismatch and changes nothing.
func (s *Store) VMCreate(ctx context.Context, n NewVM) (vm VM, created bool, err error) {
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if n.IdempotencyKey != "" {
			existing, err := scanVM(tx.QueryRowContext(ctx,
				`SELECT `+vmColumns+` FROM vms WHERE idempotency_key = ?`, n.IdempotencyKey))
			switch {
			case err == nil:
				if existing.RequestDigest != n.RequestDigest {
					return fmt.Errorf("%w (key %q belongs to service %s)", ErrIdempotencyMismatch, n.IdempotencyKey, existing.ServiceID)
				}
				vm = existing
				return nil
			case !errors.Is(err, sql.ErrNoRows):
				return err
			}
		}
		// A hostname belongs to one live VM (DNS records are per name).
		var other, otherStatus string
		err := tx.QueryRowContext(ctx, `SELECT service_id, status FROM vms WHERE hostname = ? AND status <> 'remove' LIMIT 1`,
			n.Hostname).Scan(&other, &otherStatus)
		switch {
		case err == nil:
			return fmt.Errorf("hostname %s is used by service %s (status %s): %w", n.Hostname, other, otherStatus, ErrDuplicate)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		var key any
		if n.IdempotencyKey != "" {
			key = n.IdempotencyKey
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO vms (service_id, hostname, product, status,
			requested_node, idempotency_key, request_digest, ssh_keys, password, template, step_started_at, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			n.ServiceID, n.Hostname, n.Product, n.Status, n.RequestedNode, key, n.RequestDigest,
			n.SSHKeys, n.Password, n.Template, ms(n.Now), ms(n.Now), ms(n.Now))
		if err != nil {
			if strings.Contains(err.Error(), "UNIQUE constraint failed: vms.service_id") {
				return fmt.Errorf("service id %q: %w", n.ServiceID, ErrDuplicate)
			}
			return err
		}
		id, err := res.LastInsertId()
		if err != nil {
			return err
		}
		vm, err = scanVM(tx.QueryRowContext(ctx, `SELECT `+vmColumns+` FROM vms WHERE id = ?`, id))
		created = true
		return err
	})
	return vm, created, err
}

// VMGet returns the VM with this row id.
func (s *Store) VMGet(ctx context.Context, id int64) (VM, error) {
	v, err := scanVM(s.queryRow(ctx, `SELECT `+vmColumns+` FROM vms WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return VM{}, fmt.Errorf("vm #%d: %w", id, ErrNotFound)
	}
	return v, err
}

// vmFindQuery: the OR is served by two indexes (service_id's and
// vms_hostname), not a scan.
const vmFindQuery = `SELECT ` + vmColumns + ` FROM vms
		WHERE service_id = ? OR hostname = ? ORDER BY service_id = ? DESC, status = 'remove', id DESC LIMIT 1`

// VMFind returns the VM whose service id or hostname is ref. A service id
// wins over a hostname, and a live VM over a removed one with that name.
func (s *Store) VMFind(ctx context.Context, ref string) (VM, error) {
	v, err := scanVM(s.db.QueryRowContext(ctx, vmFindQuery, ref, ref, ref))
	if errors.Is(err, sql.ErrNoRows) {
		return VM{}, fmt.Errorf("no VM with service id or hostname %q: %w", ref, ErrNotFound)
	}
	return v, err
}

// VMFilter narrows VMList.
type VMFilter struct {
	Status string // "" = any
	Power  string // PVE power state as last seen ("running", "stopped"); "" = any
	// SuspendPending: only VMs with a queued suspend.
	SuspendPending bool
	Node           string // where the VM lives now; "" = any
	Product        string // "" = any
	Held           bool   // only held VMs
}

// VMList returns VMs ordered by row id.
func (s *Store) VMList(ctx context.Context, f VMFilter) ([]VM, error) {
	q, args := vmListQuery(f)
	return s.queryVMs(ctx, q, args...)
}

// VMListed is a VM as vm list shows it: the fields it prints and the VM's
// addresses (not those being released), IPv4 first.
type VMListed struct {
	VM  // only the fields of listColumns; the others are zero
	IPs []string
}

// listColumns are the columns of VMListed: what vm list prints, and what
// it needs to tell a stuck or throttled VM; no SSH keys, password or step
// memory. The last one is the VM's addresses in one string, each after its
// family's digit ("410.0.0.5,62001:db8::5"), in id order: the order
// ip_allocations_vm yields them in, so SQLite sorts nothing per VM (an
// ORDER BY family, id did, a third of vm list's query time at 10,000 VMs);
// VMListEach puts IPv4 first.
const listColumns = `id, service_id, hostname, product, status, target_node, node, COALESCE(vmid, 0),
	pending_upid, pending_node, step_started_at, attempts, next_attempt_at, held, last_error, dns_dirty,
	power_state, power_seen_at, suspend_reason, suspend_pending, template, throttle_mbps, throttle_until,
	wait_reason, created_at, updated_at,
	(SELECT COALESCE(group_concat(a, ','), '') FROM (SELECT family || address AS a FROM ip_allocations
		WHERE vm_id = vms.id AND releasing = 0 ORDER BY id))`

// VMListEach is VMList for display: one query reads the VMs matching f,
// ordered by row id, with their addresses (10,000 VMs: a single pass, not a
// query per VM), and fn sees each VM as it is read; no list of every VM is
// built. l is reused for the next VM: fn must copy what it keeps. An error
// from fn ends the query and is returned.
func (s *Store) VMListEach(ctx context.Context, f VMFilter, fn func(l *VMListed) error) error {
	q, args := vmListQuery(f)
	q = strings.Replace(q, vmColumns, listColumns, 1)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	// One set of destinations for every row: Scan's arguments are built
	// once, not 27 boxed pointers per VM.
	var v VM
	var stepStarted, next, created, updated, powerSeen, throttleUntil int64
	var held, dirty, suspendPending int
	var ips string
	dest := []any{&v.ID, &v.ServiceID, &v.Hostname, &v.Product, &v.Status, &v.TargetNode, &v.Node, &v.VMID,
		&v.PendingUPID, &v.PendingNode, &stepStarted, &v.Attempts, &next, &held, &v.LastError, &dirty,
		&v.PowerState, &powerSeen, &v.SuspendReason, &suspendPending, &v.Template, &v.ThrottleMBps, &throttleUntil,
		&v.WaitReason, &created, &updated, &ips}
	var l VMListed
	for rows.Next() {
		v = VM{}
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		v.StepStartedAt, v.NextAttemptAt = fromMS(stepStarted), fromMS(next)
		v.CreatedAt, v.UpdatedAt = fromMS(created), fromMS(updated)
		v.Held, v.DNSDirty, v.SuspendPending = held == 1, dirty == 1, suspendPending == 1
		if powerSeen != 0 {
			v.PowerSeenAt = fromMS(powerSeen)
		}
		if throttleUntil != 0 {
			v.ThrottleUntil = fromMS(throttleUntil)
		}
		l = VMListed{VM: v}
		if ips != "" {
			l.IPs = listedIPs(ips)
		}
		if err := fn(&l); err != nil {
			return err
		}
	}
	return rows.Err()
}

// listedIPs splits listColumns' addresses and orders them IPv4 first, then
// by id (the order they come in), without their family digits.
func listedIPs(s string) []string {
	ips := strings.Split(s, ",")
	v4 := 0
	for i, a := range ips {
		if a[0] == '4' {
			// Shift the IPv6 addresses before it one place up.
			copy(ips[v4+1:i+1], ips[v4:i])
			ips[v4] = a
			v4++
		}
	}
	for i, a := range ips {
		ips[i] = a[1:]
	}
	return ips
}

// vmListQuery is VMList's query (a test checks the indexes it uses).
func vmListQuery(f VMFilter) (string, []any) {
	q := `SELECT ` + vmColumns + ` FROM vms`
	var args []any
	var where []string
	if f.Status != "" {
		if f.SuspendPending || f.Held {
			// The partial index (a handful of VMs) beats a state's rows in
			// vms_due (every ready VM); SQLite, without statistics, would
			// take the equality on status. "+status" cannot use an index.
			where = append(where, `+status = ?`)
		} else {
			where = append(where, `status = ?`)
		}
		args = append(args, f.Status)
	}
	if f.Power != "" {
		where = append(where, `power_state = ?`)
		args = append(args, f.Power)
	}
	if f.SuspendPending {
		where = append(where, `suspend_pending = 1`) // index vms_suspend_pending: a literal 1
	}
	if f.Node != "" {
		where = append(where, `node = ?`)
		args = append(args, f.Node)
	}
	if f.Product != "" {
		where = append(where, `product = ?`)
		args = append(args, f.Product)
	}
	if f.Held {
		where = append(where, `held = 1`) // index vms_held: a literal 1
	}
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	return q + ` ORDER BY id`, args
}

// MaxRetryDelay is the longest a VM or a DNS retry is ever put off. Retry
// times are clamped to it on write and on read, so one run with a clock far
// ahead cannot pin a VM for years.
const MaxRetryDelay = 30 * time.Minute

// RetryAt is when the VM's next attempt is due as seen at now. A stored
// time further ahead than MaxRetryDelay was written by a clock that ran
// ahead and counts as due now, as it does when VMsDue picks VMs.
func (v VM) RetryAt(now time.Time) time.Time { return DueAt(v.NextAttemptAt, now) }

// DueAt is a stored retry time (a VM's or a DNS retry's) as seen at now:
// itself, or now when it lies further ahead than MaxRetryDelay.
func DueAt(next, now time.Time) time.Time {
	if !now.IsZero() && next.After(now.Add(MaxRetryDelay)) {
		return now
	}
	return next
}

// clampRetry keeps next within MaxRetryDelay of now.
func clampRetry(next, now time.Time) time.Time {
	if now.IsZero() || next.IsZero() {
		return next
	}
	if limit := now.Add(MaxRetryDelay); next.After(limit) {
		return limit
	}
	return next
}

// VMsDue returns the VMs the step runner should advance now: not in a final
// state, not held and not backing off.
func (s *Store) VMsDue(ctx context.Context, now time.Time, final []string) ([]VM, error) {
	q, args := vmsDueQuery(now, final)
	return s.queryVMs(ctx, q, args...)
}

// Due reports whether VMsDue(now) would return vm, a VM it returned for a
// later time (the step runner reads the VMs under way once per pass).
func Due(vm VM, now time.Time) bool {
	next := ms(vm.NextAttemptAt)
	return !vm.Held && (next <= ms(now) || next > ms(now.Add(MaxRetryDelay)))
}

// vmsDueQuery is VMsDue's query (a test checks the index it uses).
func vmsDueQuery(now time.Time, final []string) (string, []any) {
	// A retry time further ahead than the longest backoff was written by a
	// clock that ran ahead: it counts as due rather than pinning the VM.
	q := `SELECT ` + vmColumns + ` FROM vms WHERE held = 0 AND (next_attempt_at <= ? OR next_attempt_at > ?)`
	args := []any{ms(now), ms(now.Add(MaxRetryDelay))}
	if ActiveIndexCovers(final) {
		// Word for word the WHERE of the partial index vms_active, so that
		// an idle pass reads only the VMs under way, not every ready one.
		q += ` AND ` + activeWhere
	} else if len(final) > 0 {
		q += ` AND status NOT IN (?` + strings.Repeat(`, ?`, len(final)-1) + `)`
		for _, f := range final {
			args = append(args, f)
		}
	}
	return q + ` ORDER BY id`, args
}

// activeWhere is the WHERE of the partial index vms_active (migration
// 00022): the VMs not in one of activeFinal, the final states.
const activeWhere = `status NOT IN ('ready', 'remove', 'error_terminate', 'suspended')`

var activeFinal = []string{"ready", "remove", "error_terminate", "suspended"}

// ActiveIndexCovers reports whether final, the step runner's final states,
// are those of the index vms_active, so that VMsDue can use it.
func ActiveIndexCovers(final []string) bool { return sameSet(final, activeFinal) }

// sameSet reports whether a and b hold the same strings, in any order.
func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			return false
		}
	}
	return true
}

func (s *Store) queryVMs(ctx context.Context, q string, args ...any) ([]VM, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []VM
	for rows.Next() {
		v, err := scanVM(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// Outcome is what the step runner writes after a step: a compare-and-set on
// (status, version). Zero rows changed means someone else moved the VM.
type Outcome struct {
	ID          int64
	FromStatus  string
	FromVersion int64
	ToStatus    string // == FromStatus when the VM stays at its step
	Attempts    int
	NextAttempt time.Time
	Held        bool
	LastError   string
	StepWaits   int
	// WaitReason is why the step waits (a Waiting outcome); "" otherwise.
	WaitReason string
	// ClearPending drops the stored task reference (the step finished).
	ClearPending bool
	Now          time.Time
	// Events are notifications written to the outbox in the same
	// transaction as the outcome.
	Events []OutboxEvent
	// Line, if set, is appended to its run in the same transaction, and
	// FinishRun, if set, closes that run with this result: one commit (one
	// fsync) per step instead of three.
	Line      *RunLine
	FinishRun string
	// StartRun, when Line.RunID is 0, opens the line's run (this task,
	// started at RunStartedAt) in the same transaction, as RunStart does:
	// a step that said nothing on the way costs one write, not two.
	// VMApplyStepRun returns the run's id.
	StartRun     string
	RunStartedAt time.Time
}

// VMApplyOutcome applies o if the VM is still at o.FromStatus/o.FromVersion.
// It returns ErrConflict when the row moved. A status change bumps version
// and resets the step's wait counter and start time.
func (s *Store) VMApplyOutcome(ctx context.Context, o Outcome) error {
	_, err := s.applyStep(ctx, o)
	return err
}

// VMApplyStep is VMApplyOutcome that also writes o.Line / o.FinishRun and
// returns the VM as it is after the change (read back). It goes through the
// group commit (group.go): it returns once the batch holding it is
// durable, and a compare-and-set that fails rolls back only this outcome
// (its events and line included).
func (s *Store) VMApplyStep(ctx context.Context, o Outcome) (VM, error) {
	if _, err := s.applyStep(ctx, o); err != nil {
		return VM{}, err
	}
	return s.VMGet(ctx, o.ID)
}

// VMApplyStepRun is the step runner's VMApplyStep: cur is the VM as the
// caller read it at o.FromStatus/o.FromVersion, and the VM returned is
// o.Apply(cur), the row as the compare-and-set wrote it, without reading
// it back (a full VM row costs the single writer as much as the rest of
// the outcome). It also returns the id of the run the line went to
// (opened here when o.StartRun asks for it).
func (s *Store) VMApplyStepRun(ctx context.Context, cur VM, o Outcome) (VM, int64, error) {
	runID, err := s.applyStep(ctx, o)
	if err != nil {
		return VM{}, 0, err
	}
	return o.Apply(cur), runID, nil
}

// Apply returns vm as applying o to it writes it (the columns of the
// compare-and-set in applyStep, times at the store's millisecond
// precision); every other column is as in vm. A test holds the two in
// agreement.
func (o Outcome) Apply(vm VM) VM {
	moved := o.ToStatus != o.FromStatus
	vm.Status, vm.Attempts, vm.NextAttemptAt = o.ToStatus, o.Attempts, fromMS(ms(clampRetry(o.NextAttempt, o.Now)))
	vm.Held, vm.LastError, vm.WaitReason, vm.StepWaits = o.Held, o.LastError, o.WaitReason, o.StepWaits
	vm.UpdatedAt = fromMS(ms(o.Now))
	if moved {
		vm.StepStartedAt = vm.UpdatedAt
		vm.Version++
	}
	if o.ClearPending {
		vm.PendingUPID, vm.PendingNode, vm.PendingStep = "", "", ""
	}
	if moved {
		vm.StepData = ""
	}
	if o.ToStatus == "ready" {
		vm.RestoreVolid = ""
	}
	return vm
}

// applyStep writes o (compare-and-set, events, line, run) in the group
// commit and returns the run the line went to.
func (s *Store) applyStep(ctx context.Context, o Outcome) (int64, error) {
	var runID int64
	err := s.group(ctx, func(ctx context.Context, tx *gtx) error {
		stepStarted := `step_started_at`
		args := []any{o.ToStatus, o.Attempts, ms(clampRetry(o.NextAttempt, o.Now)), b2i(o.Held), o.LastError, o.WaitReason, o.StepWaits}
		if o.ToStatus != o.FromStatus {
			stepStarted = `?`
			args = append(args, ms(o.Now))
		}
		moved := b2i(o.ToStatus != o.FromStatus)
		args = append(args, ms(o.Now), b2i(o.ClearPending), b2i(o.ClearPending), b2i(o.ClearPending), moved, o.ToStatus, moved)
		args = append(args, o.ID, o.FromStatus, o.FromVersion)
		res, err := tx.exec(ctx, `UPDATE vms SET status = ?, attempts = ?, next_attempt_at = ?,
			held = ?, last_error = ?, wait_reason = ?, step_waits = ?, step_started_at = `+stepStarted+`, updated_at = ?,
			pending_upid = CASE WHEN ? THEN '' ELSE pending_upid END,
			pending_node = CASE WHEN ? THEN '' ELSE pending_node END,
			pending_step = CASE WHEN ? THEN '' ELSE pending_step END,
			step_data = CASE WHEN ? THEN '' ELSE step_data END,
			restore_volid = CASE WHEN ? = 'ready' THEN '' ELSE restore_volid END,
			version = version + ?
			WHERE id = ? AND status = ? AND version = ?`, args...)
		if err != nil {
			return err
		}
		if err := oneRow(res, o.ID); err != nil {
			return err
		}
		if err := insertOutbox(ctx, tx.Tx, o.Events, o.Now); err != nil {
			return err
		}
		l := o.Line
		if l == nil {
			return nil
		}
		runID = l.RunID
		if runID == 0 && o.StartRun != "" {
			// A run opened by this outcome holds only this line. A wait at
			// the step the VM's previous run also waited at is folded into
			// that run (its repeats, last_at, last_result): a wait of many
			// ticks keeps the run that started it in the log instead of
			// pushing it out with RunsKeptPerVM copies of "still waiting".
			if o.FinishRun == "waiting" {
				prev, folded, err := foldWait(ctx, tx, o.ID, o.StartRun, *l, o.Now)
				if err != nil || folded {
					runID = prev
					return err
				}
			}
			if runID, err = startRun(ctx, tx, o.ID, o.StartRun, o.RunStartedAt, o.FinishRun, o.Now); err != nil {
				return err
			}
		} else if o.FinishRun != "" {
			if _, err := tx.exec(ctx, `UPDATE runs SET finished_at = ?, result = ? WHERE id = ?`, ms(o.Now), o.FinishRun, runID); err != nil {
				return err
			}
		}
		_, err = tx.exec(ctx, `INSERT INTO run_lines (run_id, at, step, from_state, to_state, result, detail, duration_ms)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, runID, ms(l.At), l.Step, l.From, l.To, l.Result, l.Detail, l.Duration.Milliseconds())
		return err
	})
	return runID, err
}

func oneRow(res sql.Result, id int64) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n != 1 {
		return fmt.Errorf("vm #%d: %w", id, ErrConflict)
	}
	return nil
}

// VMSetPendingTask records the PVE task a step submitted, guarded by the
// VM still being at status/version. Call it right after the API call returns.
func (s *Store) VMSetPendingTask(ctx context.Context, id int64, status string, version int64, step, node, upid string, now time.Time) error {
	res, err := s.exec(ctx, `UPDATE vms SET pending_upid = ?, pending_node = ?, pending_step = ?,
		updated_at = ? WHERE id = ? AND status = ? AND version = ?`, upid, node, step, ms(now), id, status, version)
	if err != nil {
		return err
	}
	return oneRow(res, id)
}

// VMSetNode records the node the VM lives on (or will be cloned/migrated to).
func (s *Store) VMSetNode(ctx context.Context, id int64, status string, version int64, node string, now time.Time) error {
	res, err := s.exec(ctx, `UPDATE vms SET node = ?, updated_at = ?
		WHERE id = ? AND status = ? AND version = ?`, node, ms(now), id, status, version)
	if err != nil {
		return err
	}
	return oneRow(res, id)
}

// VMSetDNSDirty marks or clears the VM's pending DNS resync. A VM on its
// way out (past the terminate's DNS phase, remove, error_terminate) is never
// cleared here: only the DNS retry, having deleted its records, clears it.
func (s *Store) VMSetDNSDirty(ctx context.Context, id int64, dirty bool, now time.Time) error {
	_, err := s.exec(ctx, `UPDATE vms SET dns_dirty = ?, updated_at = ? WHERE id = ?
		AND (? = 1 OR status NOT IN ('terminate_dns_removed', 'terminate_deleted', 'remove', 'error_terminate'))`,
		b2i(dirty), ms(now), id, b2i(dirty))
	return err
}

// VMRelease clears the held flag, the backoff and the attempt counter, so
// the next tick runs the VM's step again, if the VM is still at
// status/version (else ErrConflict). Status is unchanged; the step's memory
// is cleared, so it starts over (a stop begins with a graceful shutdown).
func (s *Store) VMRelease(ctx context.Context, id int64, status string, version int64, now time.Time) error {
	res, err := s.exec(ctx, `UPDATE vms SET held = 0, next_attempt_at = 0, attempts = 0, step_data = '',
		version = version + 1, updated_at = ? WHERE id = ? AND status = ? AND version = ?`, ms(now), id, status, version)
	if err != nil {
		return err
	}
	return oneRow(res, id)
}

// VMSetStatus is the admin override (reset-status): it moves the VM to status
// whatever it was, clears held, backoff, attempts and any pending task.
func (s *Store) VMSetStatus(ctx context.Context, id int64, status string, now time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error { return setStatus(ctx, tx, id, status, now) })
}

func setStatus(ctx context.Context, tx *sql.Tx, id int64, status string, now time.Time) error {
	res, err := tx.ExecContext(ctx, `UPDATE vms SET status = ?, held = 0, next_attempt_at = 0,
		attempts = 0, last_error = '', pending_upid = '', pending_node = '', pending_step = '', step_data = '',
		step_waits = 0, step_started_at = ?, restore_volid = '', wait_reason = '', version = version + 1, updated_at = ? WHERE id = ?`,
		status, ms(now), ms(now), id)
	if err != nil {
		return err
	}
	return oneRow(res, id)
}

// VMSetStatusIf is VMSetStatus guarded by the status and version the admin
// saw: if a tick moved the VM meanwhile, ErrConflict and nothing changes.
func (s *Store) VMSetStatusIf(ctx context.Context, id int64, fromStatus string, fromVersion int64, status string, now time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := guard(ctx, tx, id, fromStatus, fromVersion); err != nil {
			return err
		}
		return setStatus(ctx, tx, id, status, now)
	})
}

// VMSetRemoved is reset-status remove: in one transaction, guarded by the
// status and version the admin saw, the VM goes to remove, its addresses and
// VMID are released, and its published DNS records are marked for deletion
// by the DNS retry (nothing is sent to PVE).
func (s *Store) VMSetRemoved(ctx context.Context, id int64, fromStatus string, fromVersion int64, now time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := guard(ctx, tx, id, fromStatus, fromVersion); err != nil {
			return err
		}
		if err := setStatus(ctx, tx, id, "remove", now); err != nil {
			return err
		}
		if err := releaseResources(ctx, tx, id, now); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE vms SET dns_dirty = 1 WHERE id = ? AND EXISTS (SELECT 1 FROM dns_records WHERE vm_id = ?)`, id, id)
		return err
	})
}

// VMSetStepData stores what the current step must remember across ticks,
// guarded by the VM still being at status/version.
func (s *Store) VMSetStepData(ctx context.Context, id int64, status string, version int64, data string, now time.Time) error {
	res, err := s.exec(ctx, `UPDATE vms SET step_data = ?, updated_at = ? WHERE id = ? AND status = ? AND version = ?`,
		data, ms(now), id, status, version)
	if err != nil {
		return err
	}
	return oneRow(res, id)
}

// VMSetVMID reserves a VMID for the VM. A VMID already used by another
// record fails with ErrDuplicate.
func (s *Store) VMSetVMID(ctx context.Context, id int64, vmid int, now time.Time) error {
	res, err := s.exec(ctx, `UPDATE vms SET vmid = ?, updated_at = ? WHERE id = ?`, vmid, ms(now), id)
	if err != nil {
		if strings.Contains(err.Error(), "UNIQUE constraint failed: vms.vmid") {
			return fmt.Errorf("vmid %d: %w", vmid, ErrDuplicate)
		}
		return err
	}
	return oneRow(res, id)
}

// VMClearPassword forgets the cloud-init password once it is in PVE.
func (s *Store) VMClearPassword(ctx context.Context, id int64, now time.Time) error {
	_, err := s.exec(ctx, `UPDATE vms SET password = '', updated_at = ? WHERE id = ?`, ms(now), id)
	return err
}

// VMSetMAC records net0's MAC address so a reinstall can keep it.
func (s *Store) VMSetMAC(ctx context.Context, id int64, mac string, now time.Time) error {
	_, err := s.exec(ctx, `UPDATE vms SET mac = ?, updated_at = ? WHERE id = ?`, mac, ms(now), id)
	return err
}

// VMSetThrottle records the VM's traffic throttle: rate mbps until the
// billing period ends (until), or, with 0, none. It is the throttle's
// intent and outcome at once: collect_stats writes it before it changes
// the NIC, and clears it once the NIC is back at the product's rate.
func (s *Store) VMSetThrottle(ctx context.Context, id int64, mbps int, until, now time.Time) error {
	u := int64(0)
	if mbps > 0 {
		u = ms(until)
	}
	_, err := s.exec(ctx, `UPDATE vms SET throttle_mbps = ?, throttle_until = ?, updated_at = ? WHERE id = ?`, mbps, u, ms(now), id)
	return err
}

// Throttled reports the NIC rate the throttle sets at now (0: none).
func (v VM) Throttled(now time.Time) int {
	if v.ThrottleMBps > 0 && now.Before(v.ThrottleUntil) {
		return v.ThrottleMBps
	}
	return 0
}

// ErrWrongState means a request does not fit the VM's current status.
var ErrWrongState = errors.New("not allowed in the VM's current state")

// VMRequest moves a VM to a pipeline's entry state on a user's request
// (change package, terminate, reinstall, DNS sync), only from one of the
// allowed states. product, if not empty, replaces the VM's product. A VM
// already at the entry state with the same product is returned unchanged.
func (s *Store) VMRequest(ctx context.Context, id int64, allowed []string, to, product string, now time.Time) (VM, error) {
	return s.VMRequestWith(ctx, id, allowed, to, product, RequestOpts{}, now)
}

// RequestOpts are a request's options kept in the record.
type RequestOpts struct {
	Force  bool   // power_force: a shutdown's --force
	Reason string // suspend_reason: a suspend's --reason (kept when "")
	// MigrateNode and MigrateOnline are a vm migrate's --node and
	// --online (migrate_node, migrate_online); a request with MigrateNode
	// set also clears target_node, which its first step fills in.
	MigrateNode   string
	MigrateOnline bool
	// Template, when not nil, replaces the record's template (a
	// reinstall's --template; "" = the product's default).
	Template *string
	// Hostname, when not "", replaces the record's hostname (vm
	// set-hostname); a hostname another live VM uses is ErrDuplicate. A
	// new hostname for a VM already at the entry state restarts it there.
	Hostname string
	// KeepQueuedSuspend: the request does not cancel a queued suspend
	// (a rename is no reason to forget a billing suspend).
	KeepQueuedSuspend bool
	// RestoreVolid is a backup restore's volume (restore_volid); every
	// other request clears it.
	RestoreVolid string
}

// VMRequestWith is VMRequest that also records the request's options in
// the same transaction. A request for the state the VM is already in sets
// power_force when Force is given (a shutdown repeated with --force
// replaces the pending one) and never clears it. Any request clears a
// queued suspend (suspend_pending): a suspend is carried out, an
// unsuspend cancels it, another request replaces it — unless the request
// keeps it (KeepQueuedSuspend).
func (s *Store) VMRequestWith(ctx context.Context, id int64, allowed []string, to, product string, o RequestOpts, now time.Time) (VM, error) {
	force := o.Force
	var vm VM
	err := s.tx(ctx, func(tx *sql.Tx) error {
		cur, err := scanVM(tx.QueryRowContext(ctx, `SELECT `+vmColumns+` FROM vms WHERE id = ?`, id))
		if err != nil {
			return err
		}
		ok := false
		for _, a := range allowed {
			ok = ok || cur.Status == a
		}
		if !ok {
			return fmt.Errorf("VM %s is in state %s (allowed: %s): %w", cur.ServiceID, cur.Status, strings.Join(allowed, ", "), ErrWrongState)
		}
		renamed := o.Hostname != "" && o.Hostname != cur.Hostname
		if renamed {
			var other, otherStatus string
			err := tx.QueryRowContext(ctx, `SELECT service_id, status FROM vms WHERE hostname = ? AND status <> 'remove' AND id <> ? LIMIT 1`,
				o.Hostname, id).Scan(&other, &otherStatus)
			switch {
			case err == nil:
				return fmt.Errorf("hostname %s is used by service %s (status %s): %w", o.Hostname, other, otherStatus, ErrDuplicate)
			case !errors.Is(err, sql.ErrNoRows):
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE vms SET hostname = ? WHERE id = ?`, o.Hostname, id); err != nil {
				return err
			}
		}
		if o.Template != nil {
			if _, err := tx.ExecContext(ctx, `UPDATE vms SET template = ? WHERE id = ?`, *o.Template, id); err != nil {
				return err
			}
		}
		if cur.Status == to && !renamed {
			// Already requested: the same request again changes nothing (a
			// billing system retrying must not reset a step in progress);
			// a different product is refused until the first one is done.
			if product != "" && product != cur.Product {
				return fmt.Errorf("VM %s is already changing to product %s; wait for it to reach ready: %w", cur.ServiceID, cur.Product, ErrWrongState)
			}
			if force && !cur.PowerForce {
				if _, err := tx.ExecContext(ctx, `UPDATE vms SET power_force = 1, updated_at = ? WHERE id = ?`, ms(now), id); err != nil {
					return err
				}
				cur.PowerForce = true
			}
			vm = cur
			return nil
		}
		if product == "" {
			product = cur.Product
		}
		if _, err := tx.ExecContext(ctx, `UPDATE vms SET status = ?, product = ?, held = 0, next_attempt_at = 0,
			attempts = 0, last_error = '', pending_upid = '', pending_node = '', pending_step = '', step_data = '', step_waits = 0,
			wait_reason = '', step_started_at = ?, power_force = ?, suspend_pending = CASE WHEN ? THEN suspend_pending ELSE 0 END,
			suspend_reason = CASE WHEN ? <> '' THEN ? ELSE suspend_reason END,
			migrate_node = ?, migrate_online = ?, target_node = CASE WHEN ? <> '' THEN '' ELSE target_node END,
			restore_volid = ?, version = version + 1, updated_at = ? WHERE id = ?`,
			to, product, ms(now), b2i(force), b2i(o.KeepQueuedSuspend), o.Reason, o.Reason, o.MigrateNode, b2i(o.MigrateOnline), o.MigrateNode,
			o.RestoreVolid, ms(now), id); err != nil {
			return err
		}
		vm, err = scanVM(tx.QueryRowContext(ctx, `SELECT `+vmColumns+` FROM vms WHERE id = ?`, id))
		return err
	})
	return vm, err
}

// VMReleaseResources frees a VM's addresses and VMID and clears its
// identity fields, guarded by status/version. Call it only once PVE has
// confirmed the VM is gone. The VM's DNS bookkeeping stays, so records whose
// deletion failed are still deleted later by the DNS retry.
func (s *Store) VMReleaseResources(ctx context.Context, id int64, status string, version int64, now time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := guard(ctx, tx, id, status, version); err != nil {
			return err
		}
		return releaseResources(ctx, tx, id, now)
	})
}

func releaseResources(ctx context.Context, tx *sql.Tx, id int64, now time.Time) error {
	// last_vmid/last_node keep what was released for pvectl audit vmid.
	if _, err := tx.ExecContext(ctx, `UPDATE vms SET last_vmid = COALESCE(vmid, last_vmid),
		last_node = CASE WHEN vmid IS NOT NULL AND node <> '' THEN node ELSE last_node END,
		released_at = CASE WHEN vmid IS NOT NULL THEN ? ELSE released_at END,
		vmid = NULL, node = '', target_node = '', pending_upid = '',
		pending_node = '', pending_step = '', updated_at = ? WHERE id = ?`, ms(now), ms(now), id); err != nil {
		return err
	}
	// An address whose DNS records are still published (a delete failed)
	// stays reserved until the DNS retry has deleted them; then it is freed.
	var dnsLeft bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM dns_records WHERE vm_id = ?)`, id).Scan(&dnsLeft); err != nil {
		return err
	}
	if dnsLeft {
		if _, err := tx.ExecContext(ctx, `UPDATE ip_allocations SET releasing = 1 WHERE vm_id = ?`, id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE vms SET dns_dirty = 1 WHERE id = ?`, id)
		return err
	}
	return freeIPs(ctx, tx, id, "", now)
}

// VMSetDetachedVolume remembers (or, with "", forgets) the volume of an
// additional disk that was detached and must still be destroyed.
func (s *Store) VMSetDetachedVolume(ctx context.Context, id int64, status string, version int64, volid string, now time.Time) error {
	res, err := s.exec(ctx, `UPDATE vms SET detached_volume = ?, updated_at = ? WHERE id = ? AND status = ? AND version = ?`,
		volid, ms(now), id, status, version)
	if err != nil {
		return err
	}
	return oneRow(res, id)
}

// VMDelete deletes a record, its addresses, DNS records and logs, if it is
// still at status/version. It never touches Proxmox. Its addresses go into
// quarantine from now; its VMID and addresses stay in the audit (vm_audit).
func (s *Store) VMDelete(ctx context.Context, id int64, status string, version int64, now time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := guard(ctx, tx, id, status, version); err != nil {
			return err
		}
		if err := freeIPs(ctx, tx, id, "", now); err != nil {
			return err
		}
		if err := auditRecord(ctx, tx, id, AuditDeleteRecord, now); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM vms WHERE id = ?`, id)
		if err != nil {
			return err
		}
		return oneRow(res, id)
	})
}

// VMSetPassword stores a new cloud-init password for the next cloud-init
// step (reinstall); it is cleared once PVE has it.
func (s *Store) VMSetPassword(ctx context.Context, id int64, password string, now time.Time) error {
	_, err := s.exec(ctx, `UPDATE vms SET password = ?, updated_at = ? WHERE id = ?`, password, ms(now), id)
	return err
}

// countAttentionQuery counts with the indexes vms_held and vms_due, not a
// scan of every VM (process_vms runs it on every pass).
const countAttentionQuery = `SELECT (SELECT count(*) FROM vms WHERE held = 1),
	(SELECT count(*) FROM vms WHERE status = 'error_terminate')`

// VMCountAttention counts VMs that need a person: held, and in error_terminate.
func (s *Store) VMCountAttention(ctx context.Context) (held, errorTerminate int, err error) {
	err = s.db.QueryRowContext(ctx, countAttentionQuery).Scan(&held, &errorTerminate)
	return held, errorTerminate, err
}

// VMSetPowerSeen records the VM's PVE power state as a step just read it.
// It changes neither the status nor the version (a step's compare-and-set
// stays valid), and is best effort for the caller.
func (s *Store) VMSetPowerSeen(ctx context.Context, id int64, state string, at time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE vms SET power_state = ?, power_seen_at = ? WHERE id = ?`, state, ms(at), id)
	return err
}

// VMSetSuspendSaved records what the VM had before its suspend ("" once
// the unsuspend restored it). Neither status nor version change.
func (s *Store) VMSetSuspendSaved(ctx context.Context, id int64, data string, now time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE vms SET suspend_saved = ?, updated_at = ? WHERE id = ?`, data, ms(now), id)
	return err
}

// VMQueueSuspend queues a suspend (suspend_pending, with its reason) for a
// VM that is in a pipeline, guarded by status/version (ErrConflict when
// the VM moved); pending false cancels a queued one.
func (s *Store) VMQueueSuspend(ctx context.Context, id int64, status string, version int64, pending bool, reason string, now time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE vms SET suspend_pending = ?, suspend_reason = CASE WHEN ? THEN ? ELSE suspend_reason END,
			updated_at = ? WHERE id = ? AND status = ? AND version = ?`, b2i(pending), pending, reason, ms(now), id, status, version)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("vm #%d moved: %w", id, ErrConflict)
		}
		return nil
	})
}

// VMSetTargetNode records the node a step chose for the VM (a migration's
// target), guarded by status/version (ErrConflict when the VM moved).
// Neither status nor version change.
func (s *Store) VMSetTargetNode(ctx context.Context, id int64, status string, version int64, node string, now time.Time) error {
	res, err := s.exec(ctx, `UPDATE vms SET target_node = ?, updated_at = ? WHERE id = ? AND status = ? AND version = ?`,
		node, ms(now), id, status, version)
	if err != nil {
		return err
	}
	return oneRow(res, id)
}
