// DNS steps: publishing a VM's records (deploy), resyncing them
// (set_dns_records), deleting them (terminate), and the background retry of
// a DNS-dirty VM's records.

package states

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/pvectl/pvectl/providers/dns"
	"github.com/pvectl/pvectl/store"
)

// publishDNS writes A/AAAA and PTR records to every matching zone. DNS
// errors never block the pipeline: the VM is marked DNS-dirty instead. The
// one exception is a hostname the VM must not take (a zone apex without
// allow_apex, or a name holding records that are not the VM's: see
// dns_guard.go): the VM is held and nothing is published. A name that could
// not be checked gets nothing either: the VM goes on DNS-dirty and the
// background retry checks and publishes.
func publishDNS(ctx context.Context, env *Env, vm store.VM) Result {
	if len(env.Zones) == 0 || env.DNS == nil {
		return Skip("no DNS zones configured")
	}
	ips, err := env.Store.IPsForVM(ctx, vm.ID)
	if err != nil {
		return Retryable(err)
	}
	if res, unchecked := guardDNS(ctx, env, vm, ips); res != nil {
		return *res
	} else if unchecked != nil {
		failed := notPublished(ctx, env, vm, DNSPlan(env, vm, ips), unchecked)
		if err := env.Store.VMSetDNSDirty(ctx, vm.ID, true, env.Now()); err != nil {
			return Retryable(fmt.Errorf("record the DNS state: %w", err))
		}
		return Partial(fmt.Sprintf("%d DNS record(s) failed; will retry in the background", failed))
	}
	failed, err := SyncDNS(ctx, env, vm, ips)
	if err != nil {
		return Retryable(err) // publishing again is idempotent
	}
	if failed > 0 {
		return Partial(fmt.Sprintf("%d DNS record(s) failed; will retry in the background", failed))
	}
	return Success()
}

// SyncDNS publishes the VM's planned records, records each outcome and
// marks the VM DNS-dirty when any failed. It returns the number of failures,
// and an error when the DNS-dirty flag could not be stored (the background
// retry would then never see the failures). It does not check the hostname
// (guardDNS): its callers do, or (change_package) run for a VM whose name
// the deploy's DNS step checked.
func SyncDNS(ctx context.Context, env *Env, vm store.VM, ips []store.IPAllocation) (int, error) {
	var addrs []netip.Addr
	for _, ip := range ips {
		if a, err := netip.ParseAddr(ip.Address); err == nil {
			addrs = append(addrs, a)
		}
	}
	ttl := uint32(env.Config.DNS.TTL)
	failed := 0
	for _, rec := range dns.Plan(env.Zones, vm.Hostname, addrs) {
		rec.TTL = ttl
		if publishRecord(ctx, env, vm, rec) != nil {
			failed++
		}
	}
	if err := env.Store.VMSetDNSDirty(ctx, vm.ID, failed > 0, env.Now()); err != nil {
		return failed, fmt.Errorf("record the DNS state: %w", err)
	}
	return failed, nil
}

// resyncDNS deletes the VM's published records (exactly those in the store,
// never an operator's) and publishes the current plan. Failures do not
// block: the VM goes to ready DNS-dirty and process_vms retries.
func resyncDNS(ctx context.Context, env *Env, vm store.VM) Result {
	if env.DNS == nil || len(env.Zones) == 0 {
		return Skip("no DNS zones configured")
	}
	// Read everything before the first side effect: a store error changes nothing.
	ips, err := env.Store.IPsForVM(ctx, vm.ID)
	if err != nil {
		return Retryable(err)
	}
	plan := plannedRecords(env, vm, ips)
	var unchecked error
	if len(plan) > 0 {
		// Checked while the VM's own records are still recorded: a name it
		// holds stays its own, whatever an operator added next to them.
		var res *Result
		if res, unchecked = guardDNS(ctx, env, vm, ips); res != nil {
			return *res
		}
	}
	DeleteDNS(ctx, env, vm)
	failed := 0
	if unchecked != nil {
		failed = notPublished(ctx, env, vm, plan, unchecked) // nothing goes to an unchecked name
	} else {
		for _, rec := range plan {
			if publishRecord(ctx, env, vm, rec) != nil {
				failed++
			}
		}
	}
	// Records whose delete failed and that the plan does not re-publish are
	// still out there: the background retry deletes them.
	rows, err := env.Store.DNSRecords(ctx, vm.ID)
	if err != nil {
		return Retryable(err)
	}
	failed += len(staleRecords(env, rows, plan))
	if failed > 0 {
		if err := env.Store.DNSSetDirty(ctx, vm.ID, 0, time.Time{}, env.Now()); err != nil {
			return Retryable(err)
		}
		return Partial(fmt.Sprintf("%d DNS record(s) not in place; process_vms retries them in the background", failed))
	}
	if err := env.Store.DNSSetClean(ctx, vm.ID, vm.Version, env.Now()); err != nil {
		return Retryable(err)
	}
	if err := freeTakenAddresses(ctx, env, vm, SetDNSRecords); err != nil {
		return Retryable(err)
	}
	return Success()
}

func deleteDNSForTerminate(ctx context.Context, env *Env, vm store.VM) Result {
	if len(env.Zones) == 0 || env.DNS == nil {
		return Skip("no DNS zones configured")
	}
	if failed := DeleteDNS(ctx, env, vm); failed > 0 {
		// The DNS retry keeps deleting them after the VM is removed.
		_ = env.Store.VMSetDNSDirty(ctx, vm.ID, true, env.Now())
		return Partial(fmt.Sprintf("%d DNS record(s) could not be deleted; the DNS retry deletes them later", failed))
	}
	return Success()
}

// DeleteDNS deletes every record pvectl published for the VM — exactly the
// RRs recorded in the store, so records an operator added at the same names
// stay — best effort: each record is tried on its own and printed as a
// `· fwd-del`/`· rev-del` line; a deleted record is forgotten, a failed one
// stays recorded. It returns how many could not be deleted. It does not
// change the VM's DNS-dirty flag.
func DeleteDNS(ctx context.Context, env *Env, vm store.VM) (failed int) {
	rows, err := env.Store.DNSRecords(ctx, vm.ID)
	if err != nil {
		env.Emit("· dns-del ERR cannot read the VM's DNS records from the store: " + err.Error())
		return 1
	}
	for _, row := range rows {
		if deleteRecord(ctx, env, vm, recordOf(row)) != nil {
			failed++
		}
	}
	return failed
}

// RetryDNS brings a DNS-dirty VM's records in line with its current plan:
// see RetryDNSDetail. It returns how many operations failed and how many
// were tried; err is a store error (then nothing was sent).
func RetryDNS(ctx context.Context, env *Env, vm store.VM) (failed, tried int, err error) {
	r, err := RetryDNSDetail(ctx, env, vm)
	return r.Failed, r.Tried, err
}

// DNSRetryResult counts a VM's DNS retry: operations tried and failed, the
// failures that say a server is down (dns.IsOutage: unreachable, timeout,
// SERVFAIL, not sent) and those never sent because the pass stopped
// sending to their server (dns.IsNotSent).
type DNSRetryResult struct {
	Tried, Failed, Outage, NotSent int
}

func (r *DNSRetryResult) count(n int, err error) {
	r.Tried += n
	if err == nil {
		return
	}
	r.Failed += n
	if dns.IsOutage(err) {
		r.Outage += n
	}
	if dns.IsNotSent(err) {
		r.NotSent += n
	}
}

// RetryDNSDetail brings a DNS-dirty VM's records in line with its current
// plan: it publishes the planned records not recorded as published and
// deletes recorded records the plan no longer has (in zones still
// configured). Each outcome is a live line, except an operation not sent
// (its server's breaker is open), which prints and records nothing. err is
// a store error (then nothing was sent). It does not change the VM's
// DNS-dirty flag: the caller does, with its backoff.
func RetryDNSDetail(ctx context.Context, env *Env, vm store.VM) (res DNSRetryResult, err error) {
	if env.DNS == nil || len(env.Zones) == 0 {
		return res, nil
	}
	ips, err := env.Store.IPsForVM(ctx, vm.ID)
	if err != nil {
		return res, err
	}
	rows, err := env.Store.DNSRecords(ctx, vm.ID)
	if err != nil {
		return res, err
	}
	plan := plannedRecords(env, vm, ips)
	published := map[string]bool{}
	for _, row := range rows {
		if row.State == "published" {
			published[recordOf(row).Key()] = true
		}
	}
	for _, rec := range staleRecords(env, rows, plan) {
		res.count(1, deleteRecord(ctx, env, vm, rec))
	}
	var pending []dns.Record
	for _, rec := range plan {
		if !published[rec.Key()] {
			pending = append(pending, rec)
		}
	}
	if len(pending) > 0 {
		// Never publish into a name the VM must not take or that could not
		// be checked: the VM stays DNS-dirty and the next retry checks again.
		// The retry never holds a VM; the line says why nothing was sent.
		var he *HostnameError
		switch err := checkVMHostname(ctx, env, vm, rows, ips); {
		case errors.As(err, &he):
			env.Emit("· fwd ERR " + he.Error() + "; nothing published")
			reason := errForeignName(he)
			res.count(notPublished(ctx, env, vm, pending, reason), reason)
			pending = nil
		case err != nil:
			if !dns.IsNotSent(err) {
				env.Emit(uncheckedLine(vm, err))
			}
			res.count(notPublished(ctx, env, vm, pending, err), err)
			pending = nil
		}
	}
	for _, rec := range pending {
		res.count(1, publishRecord(ctx, env, vm, rec))
	}
	if res.Failed == 0 {
		if err := freeTakenAddresses(ctx, env, vm, Ready, Remove); err != nil {
			return res, err
		}
	}
	return res, nil
}

// DNSPlan returns the records the VM should have now: A/AAAA and PTR of its
// addresses in the configured zones, with the configured TTL.
func DNSPlan(env *Env, vm store.VM, ips []store.IPAllocation) []dns.Record {
	var addrs []netip.Addr
	for _, ip := range ips {
		if a, err := netip.ParseAddr(ip.Address); err == nil {
			addrs = append(addrs, a)
		}
	}
	recs := dns.Plan(env.Zones, vm.Hostname, addrs)
	if env.Config != nil && env.Config.DNS.TTL > 0 {
		for i := range recs {
			recs[i].TTL = uint32(env.Config.DNS.TTL)
		}
	}
	return recs
}

// plannedRecords is DNSPlan for a VM that keeps its records: a VM on its
// way out (DNS deleted by its terminate, or gone) plans none and only gets
// its records deleted.
func plannedRecords(env *Env, vm store.VM, ips []store.IPAllocation) []dns.Record {
	switch State(vm.Status) {
	case TerminateDNSRemoved, TerminateDeleted, Remove, ErrorTerminate:
		return nil
	}
	return DNSPlan(env, vm, ips)
}

// staleRecords are recorded records the plan does not have, in zones that
// are still configured (a record in a zone removed from the config cannot be
// deleted by pvectl any more; it is left recorded and not retried).
func staleRecords(env *Env, rows []store.DNSRecord, plan []dns.Record) []dns.Record {
	configured := map[string]bool{}
	for _, z := range env.Zones {
		configured[dns.Normalize(z.Name)] = true
	}
	recorded := make([]dns.Record, 0, len(rows))
	for _, row := range rows {
		if configured[dns.Normalize(row.Zone)] {
			recorded = append(recorded, recordOf(row))
		}
	}
	stale, _ := dns.Diff(recorded, plan)
	return stale
}

func recordOf(row store.DNSRecord) dns.Record {
	return dns.Record{Zone: row.Zone, Name: row.Name, Type: row.Type, Value: row.Value, TTL: uint32(max(row.TTL, 0))}
}

// errNoDNS is the outcome of a DNS operation when no updater is configured.
var errNoDNS = &dns.Error{Op: "update", Kind: dns.KindConfig, Rcode: -1, Msg: "no DNS zones configured"}

// publishRecord publishes one record, prints its line and records the outcome.
func publishRecord(ctx context.Context, env *Env, vm store.VM, rec dns.Record) error {
	err := error(errNoDNS)
	if env.DNS != nil {
		err = env.DNS.Publish(ctx, rec)
	}
	if dns.IsNotSent(err) {
		return err // nothing sent: nothing to print or record
	}
	env.Emit(dns.Line(dns.ActionPublish, rec, err))
	row := store.DNSRecord{VMID: vm.ID, Zone: rec.Zone, Name: rec.Name, Type: rec.Type, Value: rec.Value,
		TTL: int(rec.TTL), State: "published"}
	if err != nil {
		row.State, row.Error = "failed", dns.ShortError(err)
	}
	if serr := env.Store.DNSRecordSave(ctx, row, env.Now()); serr != nil && err == nil {
		// Published but not recorded: a later delete would miss it. Report it
		// as failed so the VM stays dirty and the retry records it.
		env.Emit("· store ERR cannot record " + rec.String() + ": " + serr.Error())
		return serr
	}
	return err
}

// deleteRecord deletes one recorded record, prints its line and forgets it
// once it is gone.
func deleteRecord(ctx context.Context, env *Env, vm store.VM, rec dns.Record) error {
	err := error(errNoDNS)
	if env.DNS != nil {
		err = env.DNS.Delete(ctx, rec)
	}
	if dns.IsNotSent(err) {
		return err // nothing sent: the record stays recorded for the retry
	}
	env.Emit(dns.Line(dns.ActionDelete, rec, err))
	if err != nil {
		return err
	}
	row := store.DNSRecord{VMID: vm.ID, Zone: rec.Zone, Name: rec.Name, Type: rec.Type, Value: rec.Value}
	if serr := env.Store.DNSRecordDelete(ctx, row); serr != nil {
		env.Emit("· store ERR cannot forget " + rec.String() + ": " + serr.Error())
		return serr
	}
	return nil
}
