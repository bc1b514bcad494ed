package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
)

// RefreshPowerInterval is refresh_power's default interval
// (tasks.intervals.refresh_power overrides it; 0 disables it).
const RefreshPowerInterval = 5 * time.Minute

// refreshPowerNamed is how many VMs a refresh line names per kind; the
// rest are counted.
const refreshPowerNamed = 10

// RefreshPowerTask records the PVE power state of every VM record that has
// a VMID, so vm list / vm show are not left with what the last step saw (a
// ready VM the customer shut down from inside the guest would show running
// forever). It only looks: it never starts or stops anything.
func RefreshPowerTask() Task {
	return Task{
		Name:            "refresh_power",
		Description:     "record the PVE power state of every VM with a VMID (one /cluster/resources read); starts and stops nothing",
		DefaultInterval: RefreshPowerInterval,
		Run: func(ctx context.Context, e *Engine) (TaskCounts, error) {
			r, err := e.RefreshPower(ctx)
			return TaskCounts{Processed: r.Processed, Message: r.Message}, err
		},
	}
}

// PowerRefresh is what one refresh_power run found.
type PowerRefresh struct {
	// Processed is the number of VM records with a VMID.
	Processed int
	// Refreshed: records whose power state was recorded from the listing.
	Refreshed int
	// Changed: records whose power state differs from the one last seen.
	Changed []store.PowerObservation
	// SuspendedRunning: suspended VMs the listing shows running.
	SuspendedRunning []store.PowerObservation
	// Missing: records whose VMID the listing lacks; Unknown: listed with
	// no usable state ("unknown": no data yet, node offline). Both keep
	// their power state and its time.
	Missing, Unknown []store.PowerObservation
	// Message is the run's summary line.
	Message string
}

// RefreshPower reads /cluster/resources once and records, in one store
// transaction, the power state of every VM record that has a VMID (see
// store.VMsObservePower: neither status nor version change). It prints its
// summary line when something changed or a suspended VM runs; otherwise
// only with --verbose, so a quiet fleet mails nothing from cron.
func (e *Engine) RefreshPower(ctx context.Context) (PowerRefresh, error) {
	var r PowerRefresh
	n, err := e.Store.VMsWithVMID(ctx)
	if err != nil {
		return r, err
	}
	if n == 0 {
		r.Message = "no VM has a VMID; nothing to refresh"
		e.Live.Logger().Debug().Str("task", "refresh_power").Msg("refresh_power: " + r.Message)
		return r, nil // an idle install connects to nothing
	}
	env, err := e.Env(ctx)
	if err != nil {
		return r, fmt.Errorf("prepare step environment: %w", err)
	}
	if env.PVE == nil {
		return r, errors.New("no PVE client configured")
	}
	listedAt := e.Clock.Now()
	res, err := env.PVE.ClusterResources(ctx, proxmox.ResourceVM)
	if err != nil {
		return r, fmt.Errorf("read the cluster's VMs (GET /cluster/resources): %w; power states left as last seen", err)
	}
	listed, unknown := map[int]string{}, map[int]bool{}
	for _, v := range res {
		if !v.IsVM() || v.Template {
			continue
		}
		switch v.Status {
		case "running", "stopped":
			listed[v.VMID] = v.Status
		default: // "unknown" until pvestatd has data, or on an offline node
			unknown[v.VMID] = true
		}
	}
	obs, err := e.Store.VMsObservePower(ctx, listed, listedAt, e.Clock.Now())
	if err != nil {
		return r, err
	}
	r.Processed = len(obs)
	for _, o := range obs {
		switch {
		case o.Recorded:
			r.Refreshed++
		case o.Listed == "" && unknown[o.VMID]:
			r.Unknown = append(r.Unknown, o)
		case o.Listed == "":
			r.Missing = append(r.Missing, o)
		}
		if o.Changed() {
			r.Changed = append(r.Changed, o)
		}
		if o.Status == string(states.Suspended) && o.Listed == "running" {
			r.SuspendedRunning = append(r.SuspendedRunning, o)
		}
	}
	r.Message = r.message()
	ev := e.Live.Logger().Debug()
	if len(r.Changed) > 0 || len(r.SuspendedRunning) > 0 {
		ev = e.Live.Logger().Info()
	}
	ev.Str("task", "refresh_power").Int("processed", r.Processed).Msg("refresh_power: " + r.Message)
	return r, nil
}

// message renders the summary line, e.g. "refreshed power state of 3
// VM(s); 1 changed: web1 running→stopped".
func (r PowerRefresh) message() string {
	var b strings.Builder
	fmt.Fprintf(&b, "refreshed power state of %d VM(s); %d changed", r.Refreshed, len(r.Changed))
	if len(r.Changed) > 0 {
		b.WriteString(": " + powerNames(r.Changed, func(o store.PowerObservation) string {
			before := o.Before
			if before == "" {
				before = "(never seen)"
			}
			s := fmt.Sprintf("%s %s→%s", o.ServiceID, before, o.Listed)
			if o.Status == string(states.Suspended) {
				s += " (suspended)"
			}
			return s
		}))
	}
	if len(r.SuspendedRunning) > 0 {
		fmt.Fprintf(&b, "; %d suspended VM(s) running: %s (process_vms stops them again at its next pass)",
			len(r.SuspendedRunning), powerNames(r.SuspendedRunning, obsService))
	}
	if len(r.Missing) > 0 {
		fmt.Fprintf(&b, "; %d not in the cluster, power state left as last seen: %s", len(r.Missing), powerNames(r.Missing, obsService))
	}
	if len(r.Unknown) > 0 {
		fmt.Fprintf(&b, "; %d with status unknown (no data yet, or node offline), left as last seen: %s", len(r.Unknown), powerNames(r.Unknown, obsService))
	}
	return b.String()
}

func obsService(o store.PowerObservation) string { return o.ServiceID }

// powerNames lists the first refreshPowerNamed observations and counts the rest.
func powerNames(obs []store.PowerObservation, f func(store.PowerObservation) string) string {
	var parts []string
	for i, o := range obs {
		if i == refreshPowerNamed {
			parts = append(parts, fmt.Sprintf("and %d more", len(obs)-i))
			break
		}
		parts = append(parts, f(o))
	}
	return strings.Join(parts, ", ")
}
