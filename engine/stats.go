package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/pvectl/pvectl/config"
	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
)

// CollectStatsInterval is collect_stats' default interval.
const CollectStatsInterval = time.Hour

// collectStatsWorkers is how many VMs' rrddata collect_stats reads at once.
const collectStatsWorkers = 16

// CollectStatsTask reads every VM's network RRD data and stores it as
// per-hour traffic buckets (docs/stats.md).
func CollectStatsTask() Task {
	return Task{
		Name:            "collect_stats",
		Description:     "read each VM's rrddata (netin/netout) into hourly traffic buckets, replacing buckets read again; purge old ones; log over-limit events; set and lift traffic throttles",
		DefaultInterval: CollectStatsInterval,
		Run: func(ctx context.Context, e *Engine) (TaskCounts, error) {
			r, err := e.CollectStats(ctx)
			return TaskCounts{Processed: r.Processed, Errors: r.Errors, Message: r.Message}, err
		},
	}
}

// StatsRun is what one collect_stats run did.
type StatsRun struct {
	Processed int // VMs with a VMID
	Errors    int // VMs whose rrddata could not be read
	Buckets   int // hourly buckets written (replaced)
	DayReads  int // VMs whose day frame was read to fill a gap
	Purged    int64
	OverLimit int // over-limit events logged this run
	// NICChanges: net0 rates set or lifted by the traffic throttle.
	NICChanges int
	Message    string
}

// HourBucket is one VM's traffic in one UTC hour as integrated from RRD
// rows.
type HourBucket struct {
	Hour     time.Time
	BytesIn  float64
	BytesOut float64
	Covered  time.Duration // how much of the hour the rows cover
	Step     int64
	start    int64 // the first second covered
}

// IntegrateRRD turns RRD rows (each an average rate in bytes per second
// over [Time, Time+step)) into per-hour UTC buckets. Rows ending after
// now are not complete yet and are left out. A row that straddles an hour
// boundary is split in proportion to the seconds on each side. step <= 0
// takes it from the rows' spacing.
func IntegrateRRD(pts []proxmox.RRDPoint, step int64, now time.Time) map[int64]*HourBucket {
	if step <= 0 && len(pts) > 1 {
		step = pts[1].Time.Unix() - pts[0].Time.Unix()
	}
	out := map[int64]*HourBucket{}
	if step <= 0 {
		return out
	}
	for _, p := range pts {
		start, end := p.Time.Unix(), p.Time.Unix()+step
		if end > now.Unix() {
			continue
		}
		for t := start; t < end; {
			h := t - t%3600
			seg := min(end, h+3600) - t
			b := out[h]
			if b == nil {
				b = &HourBucket{Hour: time.Unix(h, 0).UTC(), Step: step, start: t}
				out[h] = b
			}
			b.BytesIn += p.NetIn * float64(seg)
			b.BytesOut += p.NetOut * float64(seg)
			b.Covered += time.Duration(seg) * time.Second
			t += seg
		}
	}
	return out
}

// completeBuckets keeps the buckets the rows cover from the hour's start:
// whole hours, and the current hour up to the last complete row (replaced
// again by the next run). An hour the rows reach only part of (the oldest
// one of a frame) is left out so it never overwrites a fuller bucket.
func completeBuckets(b map[int64]*HourBucket) map[int64]*HourBucket {
	out := map[int64]*HourBucket{}
	for h, v := range b {
		if v.start == h {
			out[h] = v
		}
	}
	return out
}

// CollectStats is one collect_stats run.
func (e *Engine) CollectStats(ctx context.Context) (StatsRun, error) {
	var r StatsRun
	now := e.Clock.Now().UTC()
	if n, err := e.Store.TrafficPurge(ctx, now.Add(-e.Config.Stats.Retention())); err != nil {
		return r, fmt.Errorf("purge old traffic: %w", err)
	} else {
		r.Purged = n
	}
	vms, err := e.Store.VMList(ctx, store.VMFilter{})
	if err != nil {
		return r, err
	}
	var todo []store.VM
	for _, v := range vms {
		if v.VMID != 0 {
			todo = append(todo, v)
		}
	}
	r.Processed = len(todo)
	if len(todo) == 0 {
		r.Message = "no VM has a VMID; nothing to collect"
		return r, nil
	}
	env, err := e.Env(ctx)
	if err != nil {
		return r, fmt.Errorf("prepare step environment: %w", err)
	}
	if env.PVE == nil {
		return r, errors.New("no PVE client configured")
	}
	res, err := env.PVE.ClusterResources(ctx, proxmox.ResourceVM)
	if err != nil {
		return r, fmt.Errorf("read the cluster's VMs (GET /cluster/resources): %w", err)
	}
	nodeOf := map[int]string{}
	for _, v := range res {
		if v.IsVM() && !v.Template {
			nodeOf[v.VMID] = v.Node
		}
	}
	last, err := e.Store.TrafficLastComplete(ctx)
	if err != nil {
		return r, err
	}
	type result struct {
		rows    []store.TrafficHour
		dayRead bool
		err     error
	}
	results := make([]result, len(todo))
	var wg sync.WaitGroup
	sem := make(chan struct{}, collectStatsWorkers)
	for i, vm := range todo {
		node, ok := nodeOf[vm.VMID]
		if !ok {
			continue // not in PVE (yet or any more): nothing to read
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(i int, vm store.VM, node string) {
			defer func() { <-sem; wg.Done() }()
			lastHour, seen := last[vm.ServiceID]
			rows, day, err := collectVM(ctx, env.PVE, proxmox.VMRef{Node: node, VMID: vm.VMID}, vm, lastHour, seen, now)
			results[i] = result{rows, day, err}
		}(i, vm, node)
	}
	wg.Wait()
	var all []store.TrafficHour
	for i, res := range results {
		if res.err != nil {
			r.Errors++
			e.Live.Logger().Warn().Str("vm", todo[i].ServiceID).Err(res.err).Msgf("%s  collect_stats: %v", todo[i].ServiceID, res.err)
			continue
		}
		if res.dayRead {
			r.DayReads++
		}
		all = append(all, res.rows...)
	}
	if err := e.Store.TrafficReplace(ctx, all, now); err != nil {
		return r, fmt.Errorf("store traffic: %w", err)
	}
	r.Buckets = len(all)
	for _, vm := range todo {
		if _, inPVE := nodeOf[vm.VMID]; inPVE {
			vm.Node = nodeOf[vm.VMID] // where it is now (a migration the record has not seen yet)
		}
		o, err := e.checkTraffic(ctx, env.PVE, vm, now)
		if err != nil {
			return r, err
		}
		if o.problem != nil {
			r.Errors++
			e.Live.Logger().Warn().Str("vm", vm.ServiceID).Err(o.problem).Msgf("%s  collect_stats: %v", vm.ServiceID, o.problem)
		}
		r.OverLimit += o.events
		r.NICChanges += o.nics
	}
	r.Message = fmt.Sprintf("%d VM(s), %d hourly bucket(s) written, %d gap fill(s) from the day frame, %d error(s), %d old bucket(s) purged",
		r.Processed, r.Buckets, r.DayReads, r.Errors, r.Purged)
	if r.NICChanges > 0 {
		r.Message += fmt.Sprintf(", %d NIC rate change(s) (traffic throttle)", r.NICChanges)
	}
	e.Live.Logger().Debug().Str("task", "collect_stats").Msg("collect_stats: " + r.Message)
	return r, nil
}

// collectVM reads one VM's hour frame and, when the last stored bucket is
// older than the hour frame reaches (a missed run, or a VM never read),
// its day frame too, and returns the buckets to replace.
func collectVM(ctx context.Context, pve proxmox.Client, ref proxmox.VMRef, vm store.VM, lastHour time.Time, seen bool, now time.Time) ([]store.TrafficHour, bool, error) {
	pts, err := pve.RRDData(ctx, ref, proxmox.TimeframeHour, proxmox.CFAverage)
	if err != nil {
		return nil, false, fmt.Errorf("rrddata hour: %w", err)
	}
	buckets := completeBuckets(IntegrateRRD(pts, 60, now))
	first := now.Unix() - now.Unix()%3600
	for h := range buckets {
		first = min(first, h)
	}
	dayRead := false
	if !seen || lastHour.Unix() < first-3600 {
		dpts, err := pve.RRDData(ctx, ref, proxmox.TimeframeDay, proxmox.CFAverage)
		if err != nil {
			return nil, false, fmt.Errorf("rrddata day: %w", err)
		}
		dayRead = true
		for h, b := range completeBuckets(IntegrateRRD(dpts, 1800, now)) {
			if _, ok := buckets[h]; !ok && h < first {
				buckets[h] = b
			}
		}
	}
	out := make([]store.TrafficHour, 0, len(buckets))
	for _, b := range buckets {
		out = append(out, store.TrafficHour{ServiceID: vm.ServiceID, Hour: b.Hour, VMRecord: vm.ID, VMID: vm.VMID,
			Product: vm.Product, BytesIn: int64(b.BytesIn + 0.5), BytesOut: int64(b.BytesOut + 0.5), Step: int(b.Step),
			Covered: int(b.Covered / time.Second)})
	}
	return out, dayRead, nil
}

// BillingPeriod returns the UTC billing period containing t for a reset
// day (1..28): [start, end).
func BillingPeriod(t time.Time, resetDay int) (time.Time, time.Time) {
	if resetDay < 1 {
		resetDay = 1
	}
	t = t.UTC()
	start := time.Date(t.Year(), t.Month(), resetDay, 0, 0, 0, 0, time.UTC)
	if t.Before(start) {
		start = start.AddDate(0, -1, 0)
	}
	return start, start.AddDate(0, 1, 0)
}

// trafficOutcome is what checkTraffic did for one VM.
type trafficOutcome struct {
	events int // over-limit events logged
	nics   int // net0 rates changed by the throttle
	// problem: PVE could not be asked or refused (the VM counts as an
	// error; the run goes on).
	problem error
}

// checkTraffic logs the over-limit event once per billing period and, for
// a product with traffic_action throttle, keeps the VM's throttle as the
// period's traffic says (throttle). A store error is returned as err.
func (e *Engine) checkTraffic(ctx context.Context, pve proxmox.Client, vm store.VM, now time.Time) (trafficOutcome, error) {
	var out trafficOutcome
	p, ok := e.Config.Products[vm.Product]
	if !ok {
		return out, nil
	}
	want, until := 0, time.Time{}
	if p.TrafficLimitGB > 0 {
		start, end := BillingPeriod(now, p.TrafficResetDay)
		rows, err := e.Store.TrafficHours(ctx, vm.ServiceID, start, end)
		if err != nil {
			return out, err
		}
		var total int64
		for _, r := range rows {
			total += r.BytesIn + r.BytesOut
		}
		if total > int64(p.TrafficLimitGB)*1_000_000_000 {
			first, err := e.Store.TrafficLimitMark(ctx, vm.ServiceID, start, now)
			if err != nil {
				return out, err
			}
			if first {
				out.events++
				e.Live.Logger().Info().Str("vm", vm.ServiceID).Msgf("%s  event: traffic limit reached — %.1f GB of %d GB this period (since %s)",
					vm.ServiceID, float64(total)/1e9, p.TrafficLimitGB, start.Format("2006-01-02"))
			}
			if p.TrafficAction == config.TrafficActionThrottle {
				want, until = p.TrafficThrottleMBps, end
			}
		}
	}
	if want == 0 && vm.ThrottleMBps == 0 {
		return out, nil
	}
	err := e.throttle(ctx, pve, vm, p, want, until, now, &out)
	return out, err
}

// throttle brings the VM's throttle to want MB/s until `until` (want 0:
// none), intent first: the record is written before net0 is changed, and
// cleared only after net0 is back at the product's rate, so a crash at any
// instant is finished by the next run (SyncNICRate looks before it
// changes anything). net0 is only touched while the VM is ready or
// suspended with no PVE task of a step in flight; a VM in a pipeline gets
// the rate from the change-package's network step (states.NICRate), or at
// a later run.
func (e *Engine) throttle(ctx context.Context, pve proxmox.Client, vm store.VM, p config.Product, want int, until, now time.Time, out *trafficOutcome) error {
	log := e.Live.Logger()
	settled := (vm.Status == string(states.Ready) || vm.Status == string(states.Suspended)) && vm.PendingUPID == ""
	if want > 0 {
		if vm.ThrottleMBps != want || !vm.ThrottleUntil.Equal(until) {
			if err := e.Store.VMSetThrottle(ctx, vm.ID, want, until, now); err != nil {
				return err
			}
			vm.ThrottleMBps, vm.ThrottleUntil = want, until
		}
		if !settled {
			return nil
		}
		rate := states.NICRate(p, vm, now)
		changed, err := states.SyncNICRate(ctx, pve, vm, rate)
		if err != nil {
			out.problem = fmt.Errorf("throttle net0 to %d MB/s: %w", rate, err)
			return nil
		}
		if !changed {
			return nil
		}
		log.Info().Str("vm", vm.ServiceID).Msgf("%s  event: traffic throttled — net0 rate %d MB/s until %s (the period's end; traffic_limit_gb %d)",
			vm.ServiceID, rate, until.UTC().Format("2006-01-02 15:04 UTC"), p.TrafficLimitGB)
		out.nics++
		return nil
	}
	// Lifted: the period ended, or the VM is no longer over its product's
	// limit (a change-package, a raised limit). The throttle is ended in
	// the record first, so a change-package from now on applies the
	// product's rate.
	if vm.Throttled(now) > 0 {
		if err := e.Store.VMSetThrottle(ctx, vm.ID, vm.ThrottleMBps, now, now); err != nil {
			return err
		}
		vm.ThrottleUntil = now
	}
	if !settled {
		return nil
	}
	rate := states.NICRate(p, vm, now)
	changed, err := states.SyncNICRate(ctx, pve, vm, rate)
	if err != nil {
		out.problem = fmt.Errorf("lift the throttle (net0 back to %s): %w", rateText(rate), err)
		return nil
	}
	if err := e.Store.VMSetThrottle(ctx, vm.ID, 0, time.Time{}, now); err != nil {
		return err
	}
	log.Info().Str("vm", vm.ServiceID).Msgf("%s  event: traffic throttle lifted — net0 back at the product's rate (%s)", vm.ServiceID, rateText(rate))
	if changed {
		out.nics++
	}
	return nil
}

// rateText renders a NIC rate for a log line.
func rateText(mbps int) string {
	if mbps == 0 {
		return "unlimited"
	}
	return fmt.Sprintf("%d MB/s", mbps)
}

// GB is a decimal gigabyte, as providers bill.
const GB = 1e9

// TrafficDay is one UTC day of a VM's traffic.
type TrafficDay struct {
	Date     string `json:"date"` // YYYY-MM-DD (UTC)
	BytesIn  int64  `json:"bytes_in"`
	BytesOut int64  `json:"bytes_out"`
}

// TrafficReport is a VM's traffic over one billing period.
type TrafficReport struct {
	ServiceID   string       `json:"service_id"`
	VMID        int          `json:"vmid"`
	Product     string       `json:"product"`
	Terminated  bool         `json:"terminated"` // the record is gone; statistics kept until retention
	PeriodStart time.Time    `json:"period_start"`
	PeriodEnd   time.Time    `json:"period_end"`
	Days        []TrafficDay `json:"days"`
	BytesIn     int64        `json:"bytes_in"`
	BytesOut    int64        `json:"bytes_out"`
}

// ResetDay is a product's traffic_reset_day (1 when the product is unknown).
func (e *Engine) ResetDay(product string) int {
	if p, ok := e.Config.Products[product]; ok && p.TrafficResetDay > 0 {
		return p.TrafficResetDay
	}
	return 1
}

// PeriodOf returns the billing period for a reset day: the one starting in
// month (YYYY-MM) or, with month "", the one containing now.
func PeriodOf(month string, resetDay int, now time.Time) (time.Time, time.Time, error) {
	if month == "" {
		s, e := BillingPeriod(now, resetDay)
		return s, e, nil
	}
	m, err := time.Parse("2006-01", month)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("month %q: want YYYY-MM", month)
	}
	start := time.Date(m.Year(), m.Month(), max(resetDay, 1), 0, 0, 0, 0, time.UTC)
	return start, start.AddDate(0, 1, 0), nil
}

// TrafficReportOf builds serviceID's report for the period; the product
// decides the reset day (product "" reads it from the stored buckets).
func (e *Engine) TrafficReportOf(ctx context.Context, serviceID string, vmid int, product, month string, terminated bool) (TrafficReport, error) {
	now := e.Clock.Now()
	if product == "" {
		rows, err := e.Store.TrafficHours(ctx, serviceID, time.Unix(0, 0), now.Add(time.Hour))
		if err != nil {
			return TrafficReport{}, err
		}
		if len(rows) > 0 {
			product, vmid = rows[len(rows)-1].Product, rows[len(rows)-1].VMID
		}
	}
	start, end, err := PeriodOf(month, e.ResetDay(product), now)
	if err != nil {
		return TrafficReport{}, err
	}
	rows, err := e.Store.TrafficHours(ctx, serviceID, start, end)
	if err != nil {
		return TrafficReport{}, err
	}
	r := TrafficReport{ServiceID: serviceID, VMID: vmid, Product: product, Terminated: terminated, PeriodStart: start, PeriodEnd: end, Days: []TrafficDay{}}
	for _, h := range rows {
		d := h.Hour.Format("2006-01-02")
		if len(r.Days) == 0 || r.Days[len(r.Days)-1].Date != d {
			r.Days = append(r.Days, TrafficDay{Date: d})
		}
		day := &r.Days[len(r.Days)-1]
		day.BytesIn += h.BytesIn
		day.BytesOut += h.BytesOut
		r.BytesIn += h.BytesIn
		r.BytesOut += h.BytesOut
	}
	return r, nil
}

// TrafficReports is every VM's report for month (terminated VMs whose
// statistics are still retained included), ordered by service_id.
func (e *Engine) TrafficReports(ctx context.Context, month string) ([]TrafficReport, error) {
	vms, err := e.Store.VMList(ctx, store.VMFilter{})
	if err != nil {
		return nil, err
	}
	live := map[string]store.VM{}
	for _, v := range vms {
		live[v.ServiceID] = v
	}
	rows, err := e.Store.TrafficHours(ctx, "", time.Unix(0, 0), e.Clock.Now().Add(time.Hour))
	if err != nil {
		return nil, err
	}
	ids := map[string]bool{}
	for _, r := range rows {
		ids[r.ServiceID] = true
	}
	for _, v := range vms {
		if v.VMID != 0 {
			ids[v.ServiceID] = true
		}
	}
	names := make([]string, 0, len(ids))
	for id := range ids {
		names = append(names, id)
	}
	slices.Sort(names)
	out := make([]TrafficReport, 0, len(names))
	for _, id := range names {
		v, ok := live[id]
		r, err := e.TrafficReportOf(ctx, id, v.VMID, v.Product, month, !ok)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}
