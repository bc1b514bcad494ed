package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pvectl/pvectl/config"
	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
)

// stopTimeout bounds the stop a terminate request sends.
const stopTimeout = 15 * time.Second

// ChangePackage switches a ready VM to another product: state
// change_package, returned at once. While a change is under way the same
// product again changes nothing (Changed false); another product, or any
// state outside states.ChangePackageFrom, is an *ErrWrongState.
func (e *Engine) ChangePackage(ctx context.Context, ref, product string) (Result, error) {
	if _, ok := e.Config.Products[product]; !ok {
		return Result{}, &ErrInvalid{Field: "--product", Rule: fmt.Sprintf("--product %q: valid: %s", product, strings.Join(e.Config.ProductNames(), ", "))}
	}
	vm, err := e.FindVM(ctx, ref)
	if err != nil {
		return Result{}, err
	}
	res := Result{VM: vm, From: states.State(vm.Status)}
	if states.ChangingPackage(res.From) {
		// Past its first step: the same request again is a no-op (a
		// billing system retrying), another product waits for ready.
		if vm.Product != product {
			held := ""
			if vm.Held {
				held = fmt.Sprintf("; HELD: %s (fix it, then pvectl vm retry %s)", vm.LastError, vm.ServiceID)
			}
			return res, &ErrWrongState{VM: vm.ServiceID, State: res.From, Allowed: states.ChangePackageFrom(),
				Msg: fmt.Sprintf("VM %s is already changing to product %s (status %s%s); wait for it to reach ready", vm.ServiceID, vm.Product, vm.Status, held)}
		}
		return res, nil
	}
	audit := e.audit(vm.ServiceID, "vm change-package", vm.Status, states.ChangePackage, "product "+product, "was "+vm.Product)
	got, err := e.request(ctx, vm, states.ChangePackageFrom(), states.ChangePackage, product, audit)
	if err != nil {
		return res, err
	}
	res.VM = got
	if res.From == states.ChangePackage {
		return res, nil // requested before, same product: nothing written
	}
	res.Changed, res.Audit = true, audit
	return res, nil
}

// Terminate sets a VM to terminate and, if it has a VMID and node, sends
// PVE a forced stop without waiting (Result.Notes say how that went; a stop
// that could not be sent is not an error: the first terminate step stops the
// VM anyway). A terminate under way changes nothing; error_terminate and
// remove are *ErrWrongState.
func (e *Engine) Terminate(ctx context.Context, ref string) (Result, error) {
	vm, err := e.FindVM(ctx, ref)
	if err != nil {
		return Result{}, err
	}
	res := Result{VM: vm, From: states.State(vm.Status)}
	switch {
	case states.Terminating(res.From):
		return res, nil
	case res.From == states.ErrorTerminate:
		return res, &ErrWrongState{VM: vm.ServiceID, State: res.From, Allowed: states.TerminateFrom(),
			Msg: fmt.Sprintf("VM %s is in error_terminate: fix the cause, then pvectl reset-status %s terminate", vm.ServiceID, vm.ServiceID)}
	}
	audit := e.audit(vm.ServiceID, "vm terminate", vm.Status, states.Terminate)
	got, err := e.request(ctx, vm, states.TerminateFrom(), states.Terminate, "", audit)
	if err != nil {
		return res, err
	}
	res.VM, res.Changed, res.Audit = got, true, audit
	if got.VMID != 0 && got.Node != "" {
		res.Notes = append(res.Notes, e.sendStop(ctx, got)...)
	}
	return res, nil
}

// sendStop asks PVE to stop the VM and does not wait for the task. It never
// stops a VM pvectl did not create: the VMID may hold someone else's VM if
// our clone never happened.
func (e *Engine) sendStop(ctx context.Context, vm VM) []string {
	env, err := e.Env(ctx)
	if err != nil {
		return []string{fmt.Sprintf("warning: stop request not sent (%v); the next tick stops the VM", err)}
	}
	if env.PVE == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, stopTimeout)
	defer cancel()
	ref := proxmox.VMRef{Node: vm.Node, VMID: vm.VMID}
	cfg, err := env.PVE.VMConfig(ctx, ref)
	if err != nil {
		if !proxmox.IsNotFound(err) {
			return []string{fmt.Sprintf("warning: stop request not sent (%v); the next tick stops the VM", err)}
		}
		return nil
	}
	if cfg.Lock() == "clone" {
		// The clone's temporary config has no marker yet: not foreign.
		return []string{fmt.Sprintf("VMID %d is still being cloned; the next ticks wait for the clone to finish, then stop the VM", vm.VMID)}
	}
	if !states.Ours(cfg, vm) {
		return []string{fmt.Sprintf("warning: VMID %d holds a VM pvectl did not create; not stopping it", vm.VMID)}
	}
	task, err := env.PVE.Stop(ctx, ref, proxmox.StopOptions{OverruleShutdown: true})
	switch {
	case err == nil:
		return []string{fmt.Sprintf("stop requested (task %s)", task.UPID)}
	case proxmox.IsNotRunning(err) || proxmox.IsNotFound(err):
		return nil
	default:
		return []string{fmt.Sprintf("warning: stop request failed (%v); the next tick stops the VM", err)}
	}
}

// Reinstall is a request to destroy a ready VM in Proxmox and deploy it
// again, keeping VMID, IPs and MAC.
type Reinstall struct {
	// PasswordFile holds the new cloud-init password (first line);
	// Password gives it directly. Without either the VM gets none.
	PasswordFile, Password string
	// Template is the name, in the product's templates map, of the
	// template to reinstall from; "" keeps the VM's current one.
	Template string
	Ask      Ask
}

// Reinstall sets a ready VM to reinstall, after the confirmation.
func (e *Engine) Reinstall(ctx context.Context, ref string, r Reinstall) (Result, error) {
	vm, err := e.FindVM(ctx, ref)
	if err != nil {
		return Result{}, err
	}
	res := Result{VM: vm, From: states.State(vm.Status)}
	if err := allowed(vm, states.ReinstallFrom()); err != nil {
		return res, &ErrWrongState{VM: vm.ServiceID, State: res.From, Allowed: states.ReinstallFrom(),
			Msg: fmt.Sprintf("VM %s is in state %s; reinstall needs ready", vm.ServiceID, vm.Status)}
	}
	password := r.Password
	if r.PasswordFile != "" {
		if password, err = ReadPasswordFile(r.PasswordFile); err != nil {
			return res, &ErrInvalid{Field: "--password-file", Rule: fmt.Sprintf("--password-file: %v; nothing changed", err)}
		}
	} else if password != "" {
		if err := checkPassword(password); err != nil {
			return res, &ErrInvalid{Field: "--password-file", Rule: fmt.Sprintf("--password-file: %v; nothing changed", err)}
		}
	}
	cur, tpl, err := reinstallTemplate(e.Config, vm, r.Template)
	if err != nil {
		return res, err
	}
	from := ""
	if tpl != "" {
		from = " from template " + tpl
	}
	if err := r.Ask.confirm(fmt.Sprintf("Destroy all disks and snapshots of %s (VMID %d) and deploy it again%s?", vm.Hostname, vm.VMID, from)); err != nil {
		return res, err
	}
	var opts []string
	if tpl != cur {
		opts = append(opts, fmt.Sprintf("template %s → %s", cur, tpl))
	}
	if password != "" {
		opts = append(opts, "new password set")
	}
	audit := e.audit(vm.ServiceID, "vm reinstall", vm.Status, states.Reinstall, opts...)
	got, err := e.requestWith(ctx, vm, states.ReinstallFrom(), states.Reinstall, "", store.RequestOpts{Template: &tpl}, audit)
	if err != nil {
		return res, err
	}
	res.VM, res.Changed, res.Audit = got, true, audit
	if password != "" {
		if err := e.Store.VMSetPassword(ctx, vm.ID, password, e.Clock.Now()); err != nil {
			return res, err
		}
	}
	return res, nil
}

// reinstallTemplate checks a reinstall's --template against the VM's
// product and returns the VM's current template and the one to record: the
// one asked for, or without --template the current one, which its product
// must still list (a VM moved by change-package to a product without it must
// name one: pvectl does not pick another operating system on its own). A
// record from before templates maps has "": its product's default.
func reinstallTemplate(c *config.Config, vm VM, asked string) (cur, next string, err error) {
	p, ok := c.Products[vm.Product]
	if !ok {
		return "", "", &ErrInvalid{Field: "product", Rule: fmt.Sprintf("VM %s has product %s, which the config does not define; nothing changed", vm.ServiceID, vm.Product)}
	}
	cur = vm.Template
	if cur == "" {
		cur = p.DefaultTemplateName()
	}
	next = cur
	if asked != "" {
		next = asked
	}
	if _, err := p.TemplateFor(next); err != nil {
		if asked == "" {
			return "", "", &ErrInvalid{Field: "--template", Rule: fmt.Sprintf("VM %s was installed from template %s, which product %s no longer lists; pass --template (valid: %s); nothing changed",
				vm.ServiceID, next, vm.Product, strings.Join(templateChoices(p), ", "))}
		}
		return "", "", &ErrInvalid{Field: "--template", Rule: fmt.Sprintf("--template %s: product %s %s; nothing changed", quoteInput(asked), vm.Product, templateRule(p))}
	}
	return cur, next, nil
}

// templateChoices are the --template values a product accepts.
func templateChoices(p config.Product) []string {
	if names := p.TemplateNames(); len(names) > 0 {
		return names
	}
	return []string{"(none: the product has a single template)"}
}

// templateRule says what --template may be for a product.
func templateRule(p config.Product) string {
	if names := p.TemplateNames(); len(names) > 0 {
		return "offers templates " + strings.Join(names, ", ")
	}
	return "has a single template (no templates map); omit --template"
}

// Retry releases a held VM or ends its backoff: the status stays, the next
// tick runs the same step again. A VM neither held nor backing off changes
// nothing.
func (e *Engine) Retry(ctx context.Context, ref string) (Result, error) {
	vm, err := e.FindVM(ctx, ref)
	if err != nil {
		return Result{}, err
	}
	res := Result{VM: vm, From: states.State(vm.Status)}
	now := e.Clock.Now()
	if !vm.Held && !vm.NextAttemptAt.After(now) {
		return res, nil
	}
	why := "was backing off"
	if vm.Held {
		why = "was held"
	}
	audit := e.audit(vm.ServiceID, "vm retry", vm.Status, res.From, why, fmt.Sprintf("attempts %d", vm.Attempts))
	if err := e.Store.Audited(audit).VMRelease(ctx, vm.ID, vm.Status, vm.Version, now); err != nil {
		return res, movedError(vm, err)
	}
	res.Changed, res.Audit = true, audit
	return res, nil
}

// ResetTarget looks up a reset-status target (checked against the pipeline
// FSMs); an unknown one is an *ErrInvalid listing the valid ones.
func ResetTarget(status string) (states.ResetTarget, error) {
	t, err := states.LookupResetTarget(status)
	if err != nil {
		var names []string
		for _, t := range states.ResetTargets() {
			names = append(names, string(t.State))
		}
		return t, &ErrInvalid{Field: "STATUS", Rule: fmt.Sprintf("unknown status %q; valid targets: %s", status, strings.Join(names, ", "))}
	}
	return t, nil
}

// ResetStatus puts a VM in another state (an admin override), after the
// warnings and the confirmation: clears held, backoff, attempts and any
// pending task. remove also releases the VM's IPs and VMID in the same
// transaction, without contacting Proxmox.
func (e *Engine) ResetStatus(ctx context.Context, ref, status string, ask Ask) (Result, error) {
	t, err := ResetTarget(status)
	if err != nil {
		return Result{}, err
	}
	vm, err := e.FindVM(ctx, ref)
	if err != nil {
		return Result{}, err
	}
	res := Result{VM: vm, From: states.State(vm.Status)}
	if t.NeedsVMID && vm.VMID == 0 {
		return res, &ErrWrongState{VM: vm.ServiceID, State: res.From,
			Msg: fmt.Sprintf("VM %s has no VMID (it is %s): %s carries on with an existing VM; to deploy it again use: pvectl reset-status %s creation; nothing changed",
				vm.ServiceID, vm.Status, t.State, vm.ServiceID)}
	}
	if t.NoProxmox {
		what := "the VM's IPs"
		if vm.VMID != 0 {
			what = fmt.Sprintf("VMID %d and the VM's IPs", vm.VMID)
		}
		ask.warn(fmt.Sprintf("warning: %s does not contact Proxmox; it releases %s. Use it only if the VM is already gone.", t.State, what))
	}
	if err := ask.confirm(fmt.Sprintf("Set %s from %s to %s?", vm.ServiceID, vm.Status, t.State)); err != nil {
		return res, err
	}
	var opts []string
	if vm.Held {
		opts = append(opts, "was held")
	}
	if vm.VMID != 0 && t.State == states.Remove {
		opts = append(opts, fmt.Sprintf("released VMID %d", vm.VMID))
	}
	audit := e.audit(vm.ServiceID, "reset-status", vm.Status, t.State, opts...)
	st, now := e.Store.Audited(audit), e.Clock.Now()
	if t.State == states.Remove {
		// Status, IPs and VMID in one transaction; published DNS records
		// are deleted by the DNS retry.
		err = st.VMSetRemoved(ctx, vm.ID, vm.Status, vm.Version, now)
	} else {
		err = st.VMSetStatusIf(ctx, vm.ID, vm.Status, vm.Version, string(t.State), now)
	}
	if err != nil {
		return res, movedError(vm, err)
	}
	res.Changed, res.Audit = true, audit
	res.VM.Status = string(t.State)
	return res, nil
}

// DeleteRecord deletes the record of a VM in error_terminate or remove with
// its run log, DNS bookkeeping and IP allocations, after the warnings and
// the confirmation. It never contacts Proxmox. While DNS records wait to be
// deleted it refuses unless force. Its audit event is not stored (the log
// goes with the record): Result.Audit carries it for the caller to print.
func (e *Engine) DeleteRecord(ctx context.Context, ref string, force bool, ask Ask) (Result, error) {
	vm, err := e.FindVM(ctx, ref)
	if err != nil {
		return Result{}, err
	}
	res := Result{VM: vm, From: states.State(vm.Status)}
	if err := allowed(vm, states.DeleteRecordFrom()); err != nil {
		return res, &ErrWrongState{VM: vm.ServiceID, State: res.From, Allowed: states.DeleteRecordFrom(),
			Msg: fmt.Sprintf("VM %s is in state %s; delete-record is only for error_terminate or remove", vm.ServiceID, vm.Status)}
	}
	if res.From == states.ErrorTerminate {
		ask.warn(fmt.Sprintf("warning: %s is in error_terminate; its IPs are released with the record. Proxmox is not contacted; "+
			"while its VM is still there, new VMs do not get the addresses it uses.", vm.ServiceID))
	}
	if vm.DNSDirty && !force {
		if recs, err := e.Store.DNSRecords(ctx, vm.ID); err == nil && len(recs) > 0 {
			return res, &ErrWrongState{VM: vm.ServiceID, State: res.From, Allowed: states.DeleteRecordFrom(),
				Msg: fmt.Sprintf("%d DNS record(s) of %s are still being deleted by the DNS retry; wait for it (pvectl dns show %s), or use --force to forget them",
					len(recs), vm.ServiceID, vm.ServiceID)}
		}
	}
	if err := ask.confirm(fmt.Sprintf("Delete the record of %s?", vm.ServiceID)); err != nil {
		return res, err
	}
	if err := e.Store.VMDelete(ctx, vm.ID, vm.Status, vm.Version, e.Clock.Now()); err != nil {
		return res, movedError(vm, err)
	}
	res.Changed = true
	var opts []string
	if force {
		opts = append(opts, "force")
	}
	res.Audit = e.audit(vm.ServiceID, "vm delete-record", vm.Status, "", opts...)
	return res, nil
}

// SyncDNS queues a full DNS resync of a ready VM (state set_dns_records).
// A resync already queued changes nothing. A VM that moved meanwhile is
// ErrConflict.
func (e *Engine) SyncDNS(ctx context.Context, ref string) (Result, error) {
	if len(e.Config.DNS.Zones) == 0 {
		return Result{}, &ErrInvalid{Field: "dns.zones", Rule: "no DNS zones configured (dns.zones in the config); nothing to sync"}
	}
	vm, err := e.FindVM(ctx, ref)
	if err != nil {
		return Result{}, err
	}
	res := Result{VM: vm, From: states.State(vm.Status)}
	if res.From == states.SetDNSRecords {
		return res, nil
	}
	if err := allowed(vm, states.SyncDNSFrom()); err != nil {
		return res, &ErrWrongState{VM: vm.ServiceID, State: res.From, Allowed: states.SyncDNSFrom(),
			Msg: fmt.Sprintf("VM %s is in state %s, not ready; dns sync only queues a resync of a ready VM — "+
				"let its pipeline finish (it publishes DNS itself, and failed records are retried in the background), "+
				"or use pvectl reset-status %s set_dns_records", vm.ServiceID, vm.Status, vm.ServiceID)}
	}
	audit := e.audit(vm.ServiceID, "dns sync", vm.Status, states.SetDNSRecords)
	err = e.Store.Audited(audit).VMApplyOutcome(ctx, store.Outcome{ID: vm.ID, FromStatus: vm.Status, FromVersion: vm.Version,
		ToStatus: string(states.SetDNSRecords), ClearPending: true, Now: e.Clock.Now()})
	if err != nil {
		if errors.Is(err, store.ErrConflict) {
			return res, &conflictError{msg: fmt.Sprintf("VM %s changed while queuing the resync (someone else moved it); nothing done — run pvectl vm show %s and try again",
				vm.ServiceID, vm.ServiceID), cause: err}
		}
		return res, err
	}
	res.Changed, res.Audit = true, audit
	res.VM.Status = string(states.SetDNSRecords)
	return res, nil
}

// Power asks for a power action on a ready VM (vm start, stop, shutdown,
// reboot): the VM goes to the action's entry state and the request returns
// at once; the ticks carry it out and bring the VM back to ready. force
// (shutdown only) forces a stop once stop_timeout has passed. While an
// action is pending, the same action again changes nothing (a shutdown
// repeated with --force makes the pending one forced); another action is
// an *ErrWrongState naming the pending one. Any other state is an
// *ErrWrongState listing states.PowerFrom.
func (e *Engine) Power(ctx context.Context, ref string, action states.PowerAction, force bool) (Result, error) {
	to := action.Entry()
	if to == "" {
		return Result{}, &ErrInvalid{Field: "ACTION", Rule: fmt.Sprintf("unknown power action %q; valid: start, stop, shutdown, reboot", action)}
	}
	if force && action != states.ActionShutdown {
		return Result{}, &ErrInvalid{Field: "--force", Rule: "--force is only for vm shutdown"}
	}
	vm, err := e.FindVM(ctx, ref)
	if err != nil {
		return Result{}, err
	}
	res := Result{VM: vm, From: states.State(vm.Status)}
	what := "vm " + string(action)
	if pending, ok := states.PendingPower(res.From); ok {
		if pending != action {
			return res, &ErrWrongState{VM: vm.ServiceID, State: res.From, Allowed: states.PowerFrom(),
				Msg: fmt.Sprintf("VM %s has a pending %s (status %s); a different power action is refused until it is done — wait for ready (pvectl vm show %s), then ask again",
					vm.ServiceID, pending, vm.Status, vm.ServiceID)}
		}
		if res.From != to || !force || vm.PowerForce {
			return res, nil // the same action again: nothing to change
		}
		// The pending shutdown becomes forced: falls through to the write.
	}
	var opts []string
	if force {
		opts = append(opts, "force")
	}
	audit := e.audit(vm.ServiceID, what, vm.Status, to, opts...)
	set := states.PowerFrom()
	if res.From == to {
		set = []states.State{to}
	}
	if err := allowed(vm, set); err != nil {
		return res, &ErrWrongState{VM: vm.ServiceID, State: res.From, Allowed: states.PowerFrom(),
			Msg: fmt.Sprintf("VM %s is in state %s (allowed: %s): vm %s is only for a ready VM", vm.ServiceID, vm.Status,
				joinStates(states.PowerFrom()), action)}
	}
	names := make([]string, len(set))
	for i, s := range set {
		names[i] = string(s)
	}
	got, err := e.Store.Audited(audit).VMRequestWith(ctx, vm.ID, names, string(to), "", store.RequestOpts{Force: force}, e.Clock.Now())
	if errors.Is(err, store.ErrWrongState) {
		return res, &ErrWrongState{VM: vm.ServiceID, State: res.From, Allowed: states.PowerFrom(), Msg: err.Error()}
	}
	if err != nil {
		return res, err
	}
	res.VM, res.Changed, res.Audit = got, true, audit
	return res, nil
}

func joinStates(set []states.State) string {
	names := make([]string, len(set))
	for i, s := range set {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// Suspend suspends a VM for billing: from ready, the VM goes to suspend
// and the ticks stop it, set onboot=0 and tag it. A VM in a pipeline that
// ends in ready (a deploy, a change-package, …) gets the suspend queued
// (suspend_pending; Result.Notes say so): the first process_vms pass that
// finds it ready carries it out. A suspend under way or done, or already
// queued, changes nothing. A VM terminating, removed or in error_terminate
// is an *ErrWrongState.
func (e *Engine) Suspend(ctx context.Context, ref, reason string) (Result, error) {
	if len(reason) > 200 || strings.ContainsAny(reason, "\n\r") {
		return Result{}, &ErrInvalid{Field: "--reason", Rule: "--reason: one line of at most 200 characters"}
	}
	vm, err := e.FindVM(ctx, ref)
	if err != nil {
		return Result{}, err
	}
	res := Result{VM: vm, From: states.State(vm.Status)}
	var opts []string
	if reason != "" {
		opts = append(opts, "reason "+reason)
	}
	switch {
	case states.Suspending(res.From):
		return res, nil
	case states.SuspendQueues(res.From):
		if vm.SuspendPending {
			return res, nil
		}
		audit := e.audit(vm.ServiceID, "vm suspend", vm.Status, res.From, append(opts, "queued until ready")...)
		if err := e.Store.Audited(audit).VMQueueSuspend(ctx, vm.ID, vm.Status, vm.Version, true, reason, e.Clock.Now()); err != nil {
			return res, movedError(vm, err)
		}
		res.VM.SuspendPending = true
		res.Changed, res.Audit = true, audit
		res.Notes = append(res.Notes, fmt.Sprintf("VM %s is in state %s: the suspend is queued and carried out once it is ready", vm.ServiceID, vm.Status))
		return res, nil
	case res.From != states.Ready:
		return res, &ErrWrongState{VM: vm.ServiceID, State: res.From, Allowed: states.SuspendFrom(),
			Msg: fmt.Sprintf("VM %s is in state %s: nothing to suspend (allowed: ready, or a deploy or other pipeline in progress, which queues it)", vm.ServiceID, vm.Status)}
	}
	audit := e.audit(vm.ServiceID, "vm suspend", vm.Status, states.Suspend, opts...)
	got, err := e.Store.Audited(audit).VMRequestWith(ctx, vm.ID, []string{string(states.Ready)}, string(states.Suspend), "",
		store.RequestOpts{Reason: reason}, e.Clock.Now())
	if errors.Is(err, store.ErrWrongState) {
		return res, &ErrWrongState{VM: vm.ServiceID, State: res.From, Allowed: states.SuspendFrom(), Msg: err.Error()}
	}
	if err != nil {
		return res, err
	}
	res.VM, res.Changed, res.Audit = got, true, audit
	return res, nil
}

// Unsuspend undoes a suspend: from any suspend state the VM goes to
// unsuspend and the ticks restore access, onboot and tags and start it. A queued
// suspend is cancelled instead. An unsuspend under way, or a VM that is
// not suspended, changes nothing.
func (e *Engine) Unsuspend(ctx context.Context, ref string) (Result, error) {
	vm, err := e.FindVM(ctx, ref)
	if err != nil {
		return Result{}, err
	}
	res := Result{VM: vm, From: states.State(vm.Status)}
	switch {
	case vm.SuspendPending && !states.Suspending(res.From):
		audit := e.audit(vm.ServiceID, "vm unsuspend", vm.Status, res.From, "queued suspend cancelled")
		if err := e.Store.Audited(audit).VMQueueSuspend(ctx, vm.ID, vm.Status, vm.Version, false, "", e.Clock.Now()); err != nil {
			return res, movedError(vm, err)
		}
		res.VM.SuspendPending = false
		res.Changed, res.Audit = true, audit
		res.Notes = append(res.Notes, fmt.Sprintf("VM %s: the queued suspend is cancelled", vm.ServiceID))
		return res, nil
	case !states.Suspending(res.From):
		return res, nil // not suspended (an unsuspend under way, or done)
	}
	audit := e.audit(vm.ServiceID, "vm unsuspend", vm.Status, states.Unsuspend)
	got, err := e.request(ctx, vm, states.UnsuspendFrom(), states.Unsuspend, "", audit)
	if err != nil {
		return res, err
	}
	res.VM, res.Changed, res.Audit = got, true, audit
	return res, nil
}

// startQueuedSuspends carries out the suspends queued while their VMs were
// in a pipeline, for the VMs that are ready now (one write each, audited).
func (e *Engine) startQueuedSuspends(ctx context.Context) {
	vms, err := e.Store.VMList(ctx, store.VMFilter{Status: string(states.Ready), SuspendPending: true})
	if err != nil {
		e.Live.Logger().Error().Err(err).Msgf("process_vms: queued suspends: %v", err)
		return
	}
	for _, vm := range vms {
		audit := e.audit(vm.ServiceID, "vm suspend", vm.Status, states.Suspend, "queued suspend carried out now that the VM is ready")
		if _, err := e.Store.Audited(audit).VMRequestWith(ctx, vm.ID, []string{string(states.Ready)}, string(states.Suspend), "",
			store.RequestOpts{}, e.Clock.Now()); err != nil {
			e.Live.Logger().Error().Str("vm", vm.ServiceID).Err(err).Msgf("%s  queued suspend: %v", vm.ServiceID, err)
			continue
		}
		e.Live.Sub(vm.ServiceID, "Suspend", "queued suspend carried out now that the VM is ready")
	}
}

// keepSuspended looks at every suspended VM once per pass (through the
// pass's fleet view, read here first when some VM is suspended) and stops
// again those found running, with a line in their log.
func (e *Engine) keepSuspended(ctx context.Context, fleet *states.Fleet) {
	vms, err := e.Store.VMList(ctx, store.VMFilter{Status: string(states.Suspended)})
	if err != nil || len(vms) == 0 {
		return
	}
	env, err := e.Env(ctx)
	if err != nil || env.PVE == nil {
		return
	}
	res, err := fleet.Resources(ctx, env.PVE, proxmox.ResourceVM)
	if err != nil {
		e.Live.Logger().Warn().Err(err).Msgf("process_vms: could not look at suspended VMs: %v", err)
		return
	}
	running := map[int]proxmox.Resource{}
	for _, r := range res {
		if r.IsVM() && r.Status == "running" {
			running[r.VMID] = r
		}
	}
	for _, vm := range vms {
		r, ok := running[vm.VMID]
		if !ok || vm.VMID == 0 {
			continue
		}
		vm.Node = r.Node
		runID, err := e.Store.RunStart(ctx, vm.ID, "process_vms", e.Clock.Now())
		if err != nil {
			continue
		}
		began := time.Now()
		msg := states.KeepSuspended(ctx, env, vm)
		if msg == "" {
			msg = "suspended VM found running; it stopped meanwhile"
		}
		took := time.Since(began)
		e.Live.Step(StepLine{VM: vm.ServiceID, Hostname: vm.Hostname, Step: KeepSuspendedLabel, From: vm.Status, To: vm.Status,
			Result: msg, Duration: took})
		bg := context.WithoutCancel(ctx)
		_ = e.Store.RunAppendLine(bg, store.RunLine{RunID: runID, At: e.Clock.Now(), Step: KeepSuspendedLabel, From: vm.Status,
			To: vm.Status, Result: msg, Duration: took})
		_ = e.Store.RunFinish(bg, runID, string(RunSuccess), e.Clock.Now())
	}
}

// KeepSuspendedLabel is the step name of the look at suspended VMs.
const KeepSuspendedLabel = "Keep suspended"
