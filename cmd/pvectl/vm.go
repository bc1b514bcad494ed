package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pvectl/pvectl/engine"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
	"github.com/spf13/cobra"
)

func newVMCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vm",
		Short: "Create, list, show, change, power, terminate, reinstall and retry VMs",
	}
	cmd.AddCommand(newVMCreateCmd(g), newVMListCmd(g), newVMShowCmd(g), newVMRetryCmd(g),
		newVMChangePackageCmd(g), newVMTerminateCmd(g), newVMReinstallCmd(g), newVMDeleteRecordCmd(g))
	cmd.AddCommand(newVMPowerCmds(g)...)
	cmd.AddCommand(newVMSuspendCmd(g), newVMUnsuspendCmd(g), newVMMigrateCmd(g), newVMSetHostnameCmd(g))
	return cmd
}

type createOpts struct {
	serviceID, product, hostname, node, sshKeyFile, passwordFile, idemKey, template string
	asJSON                                                                          bool
}

func newVMCreateCmd(g *globals) *cobra.Command {
	var o createOpts
	cmd := &cobra.Command{
		Use:   "create --service-id ID --product NAME --hostname FQDN",
		Short: "Write a new VM record in state creation and return at once",
		Long: `Write a new VM record in state "creation" and return at once; the next ticks deploy it
step by step (see "pvectl pipeline show deploy"). Nothing is sent to Proxmox here.

With --idempotency-key, repeating the same request returns the existing VM; the same
key with different arguments fails with exit 2 and changes nothing. The password file's
content goes to cloud-init and is never printed or logged.`,
		Args: exactArgs(0, "no positional arguments (use the flags)"),
		RunE: func(cmd *cobra.Command, _ []string) error { return runVMCreate(cmd, g, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.serviceID, "service-id", "", "billing system's service id (unique; letters, digits, . _ -)")
	f.StringVar(&o.product, "product", "", "product (plan) name from the config")
	f.StringVar(&o.hostname, "hostname", "", "the VM's fully qualified domain name")
	f.StringVar(&o.node, "node", "", "target node (default: the product's target_node)")
	f.StringVar(&o.sshKeyFile, "ssh-key-file", "", "file with SSH public keys for cloud-init, one per line")
	f.StringVar(&o.passwordFile, "password-file", "", "file whose first line is the cloud-init password")
	f.StringVar(&o.template, "template", "", "template (operating system) from the product's templates map (default: the product's default_template)")
	f.StringVar(&o.idemKey, "idempotency-key", "", "make the request safe to repeat")
	f.BoolVar(&o.asJSON, "json", false, "print the VM as JSON")
	return cmd
}

func runVMCreate(cmd *cobra.Command, g *globals, o createOpts) error {
	req := engine.CreateVM{ServiceID: o.serviceID, Product: o.product, Hostname: o.hostname,
		Node: o.node, IdempotencyKey: o.idemKey, SSHKeyFile: o.sshKeyFile, PasswordFile: o.passwordFile, Template: o.template}
	// Bad input is refused (exit 2) before the database is opened.
	c, err := g.loadConfig()
	if err != nil {
		return err
	}
	if err := engine.CheckCreateVM(c, req); err != nil {
		return err
	}
	e, closeFn, err := g.openWritable(cmd.Context())
	if err != nil {
		return err
	}
	defer closeFn()
	ctx := cmd.Context()
	res, err := e.CreateVM(ctx, req)
	for _, w := range res.Warnings {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w)
	}
	if err != nil {
		return err
	}
	vm := res.VM
	if o.asJSON {
		return printVMJSON(ctx, cmd.OutOrStdout(), e, vm)
	}
	verb := "created"
	if !res.Changed {
		verb = "exists (same idempotency key)"
	}
	fmt.Fprintf(cmd.OutOrStdout(), "VM %s (%s) %s: product %s, status %s\n", vm.ServiceID, vm.Hostname, verb, vm.Product, vm.Status)
	return nil
}

// vmJSON is the stable JSON shape of a VM (docs/cli.md).
type vmJSON struct {
	ServiceID   string     `json:"service_id"`
	Hostname    string     `json:"hostname"`
	Product     string     `json:"product"`
	Status      string     `json:"status"`
	VMID        *int       `json:"vmid"`
	Node        string     `json:"node"`
	TargetNode  string     `json:"target_node"`
	IPs         []string   `json:"ips"`
	Attempts    int        `json:"attempts"`
	Held        bool       `json:"held"`
	NextAttempt *time.Time `json:"next_attempt_at"`
	LastError   string     `json:"last_error"`
	PendingTask *taskJSON  `json:"pending_task"`
	DNSDirty    bool       `json:"dns_dirty"`
	Power       *powerJSON `json:"power"`
	// Template is the name of the template the VM is deployed from (its
	// product's templates map); "" for a product with a single template.
	Template string `json:"template"`
	// Suspend is set while the VM is suspended or being suspended, or a
	// suspend is queued until it is ready; null otherwise.
	Suspend *suspendJSON `json:"suspend"`
	// Throttle is set while the VM's NIC is throttled for going over its
	// traffic limit (traffic_action throttle); null otherwise.
	Throttle *throttleJSON `json:"throttle"`
	// StateSince is when the VM entered its status (kept across waits and
	// retries); WaitReason why its step waited at its last run ("" when
	// it did not); Stuck is set when it has been in a non-final state for
	// longer than health.stuck_after allows (null otherwise).
	StateSince time.Time     `json:"state_since"`
	WaitReason string        `json:"wait_reason"`
	Stuck      *engine.Stuck `json:"stuck"`
	CreatedAt  time.Time     `json:"created_at"`
	UpdatedAt  time.Time     `json:"updated_at"`
}

// throttleJSON is a traffic throttle: the NIC's rate (MB/s) until the
// billing period ends.
type throttleJSON struct {
	RateMBps int       `json:"rate_mbps"`
	Until    time.Time `json:"until"`
}

// powerJSON is the VM's PVE power state as a step last read it; null when
// no step has read it yet.
type powerJSON struct {
	State  string    `json:"state"`
	SeenAt time.Time `json:"seen_at"`
}

// suspendJSON is a suspend's reason (--reason, "" when none was given)
// and whether it is queued until the VM is ready (pending) rather than
// carried out or under way.
type suspendJSON struct {
	Reason  string `json:"reason"`
	Pending bool   `json:"pending"`
}

type taskJSON struct {
	UPID string `json:"upid"`
	Node string `json:"node"`
}

func toVMJSON(ctx context.Context, e *engine.Engine, vm engine.VM) (vmJSON, error) {
	ips, err := e.IPs(ctx, vm)
	if err != nil {
		return vmJSON{}, err
	}
	addrs := make([]string, len(ips))
	for i, ip := range ips {
		addrs[i] = ip.Address
	}
	return vmJSONWith(e, vm, addrs), nil
}

// vmJSONWith is toVMJSON with the VM's addresses already read.
func vmJSONWith(e *engine.Engine, vm engine.VM, ips []string) vmJSON {
	j := vmJSON{ServiceID: vm.ServiceID, Hostname: vm.Hostname, Product: vm.Product, Status: vm.Status,
		Node: vm.Node, TargetNode: vm.TargetNode, IPs: []string{}, Attempts: vm.Attempts, Held: vm.Held,
		LastError: vm.LastError, DNSDirty: vm.DNSDirty, CreatedAt: vm.CreatedAt, UpdatedAt: vm.UpdatedAt}
	if vm.VMID != 0 {
		id := vm.VMID
		j.VMID = &id
	}
	if !vm.NextAttemptAt.IsZero() {
		t := vm.RetryAt(e.Clock.Now())
		j.NextAttempt = &t
	}
	if vm.PendingUPID != "" {
		j.PendingTask = &taskJSON{UPID: vm.PendingUPID, Node: vm.PendingNode}
	}
	if vm.PowerState != "" {
		j.Power = &powerJSON{State: vm.PowerState, SeenAt: vm.PowerSeenAt}
	}
	j.Template = vm.Template
	if p, ok := e.Config.Products[vm.Product]; ok && j.Template == "" {
		j.Template = p.DefaultTemplateName()
	}
	if vm.SuspendPending || states.Suspending(states.State(vm.Status)) {
		j.Suspend = &suspendJSON{Reason: vm.SuspendReason, Pending: vm.SuspendPending}
	}
	j.StateSince, j.WaitReason = vm.StepStartedAt, vm.WaitReason
	if j.StateSince.IsZero() {
		j.StateSince = vm.CreatedAt
	}
	if st, ok := e.StuckOf(vm, e.Clock.Now()); ok {
		j.Stuck = &st
	}
	if r := vm.Throttled(e.Clock.Now()); r > 0 {
		j.Throttle = &throttleJSON{RateMBps: r, Until: vm.ThrottleUntil}
	}
	j.IPs = append(j.IPs, ips...)
	return j
}

func printVMJSON(ctx context.Context, w io.Writer, e *engine.Engine, vm engine.VM) error {
	j, err := toVMJSON(ctx, e, vm)
	if err != nil {
		return err
	}
	return writeVMJSON(w, j)
}

// writeVMJSON writes j as writeJSON would.
func writeVMJSON(w io.Writer, j vmJSON) error {
	b, err := appendVMJSON(nil, &j, "")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func validStatus(s string) error {
	if states.State(s).Valid() {
		return nil
	}
	var names []string
	for _, st := range states.All() {
		names = append(names, string(st))
	}
	return usagef("unknown status %q; valid: %s", s, strings.Join(names, ", "))
}

// powerText is the power state as last seen, and how long ago: "running
// (3m ago)"; "-" when never seen.
func powerText(p *powerJSON, now time.Time) string {
	if p == nil {
		return "-"
	}
	ago := now.Sub(p.SeenAt).Round(time.Second)
	if ago < 0 {
		ago = 0
	}
	return p.State + " (" + ago.String() + " ago)"
}

func newVMListCmd(g *globals) *cobra.Command {
	var status, power string
	var f store.VMFilter
	var asJSON, stuck bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List VM records with status, VMID, node, IPs and last error",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if status != "" {
				if err := validStatus(status); err != nil {
					return err
				}
			}
			if power != "" && power != "running" && power != "stopped" {
				return usagef("unknown power state %q; valid: running, stopped", power)
			}
			e, closeFn, err := g.openEngine(cmd.Context())
			if err != nil {
				return err
			}
			defer closeFn()
			f.Status, f.Power = status, power
			now := e.Clock.Now()
			out := cmd.OutOrStdout()
			if asJSON {
				// Each VM is encoded as it is read, into 64 KB chunks (no
				// buffer of megabytes copied as it grows); the output is
				// written once the query is over, so a slow reader of
				// stdout does not hold the read transaction open.
				const chunk = 64 << 10
				var full [][]byte
				buf := make([]byte, 0, chunk)
				n := 0
				err := e.Store.VMListEach(cmd.Context(), f, func(l *store.VMListed) error {
					if stuck {
						if _, ok := e.StuckOf(l.VM, now); !ok {
							return nil
						}
					}
					j := vmJSONWith(e, l.VM, l.IPs)
					if n == 0 {
						buf = append(buf, "[\n  "...)
					} else {
						buf = append(buf, ",\n  "...)
					}
					n++
					var err error
					if buf, err = appendVMJSON(buf, &j, "  "); err != nil {
						return err
					}
					if len(buf) > chunk-4<<10 {
						full = append(full, buf)
						buf = make([]byte, 0, chunk)
					}
					return nil
				})
				if err != nil {
					return err
				}
				if n == 0 {
					buf = append(buf, "[]\n"...)
				} else {
					buf = append(buf, "\n]\n"...)
				}
				for _, b := range append(full, buf) {
					if _, err := out.Write(b); err != nil {
						return err
					}
				}
				return nil
			}
			// One write per few KB, not one per table cell.
			bw := bufio.NewWriter(out)
			tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "SERVICE\tHOSTNAME\tPRODUCT\tSTATUS\tVMID\tNODE\tIPS\tATTEMPTS\tPOWER\tNOTE")
			var line []byte
			err = e.Store.VMListEach(cmd.Context(), f, func(l *store.VMListed) error {
				if stuck {
					if _, ok := e.StuckOf(l.VM, now); !ok {
						return nil
					}
				}
				j := vmJSONWith(e, l.VM, l.IPs)
				vmid := "-"
				if j.VMID != nil {
					vmid = strconv.Itoa(*j.VMID)
				}
				line = line[:0]
				for _, cell := range [...]string{j.ServiceID, j.Hostname, j.Product, j.Status, vmid,
					dash(j.Node), dash(strings.Join(j.IPs, ",")), strconv.Itoa(j.Attempts), powerText(j.Power, now)} {
					line = append(append(line, cell...), '\t')
				}
				line = append(append(line, vmNote(j, now)...), '\n')
				_, err := tw.Write(line)
				return err
			})
			if err != nil {
				return err
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			return bw.Flush()
		},
	}
	cmd.Flags().StringVar(&status, "status", "", "only VMs in this state")
	cmd.Flags().StringVar(&status, "state", "", "the same as --status")
	cmd.Flags().StringVar(&f.Node, "node", "", "only VMs on this node (as the record has it)")
	cmd.Flags().StringVar(&f.Product, "product", "", "only VMs of this product")
	cmd.Flags().BoolVar(&f.Held, "held", false, "only held VMs (they wait for vm retry or reset-status)")
	cmd.Flags().StringVar(&power, "power", "", "only VMs whose PVE power state, as last seen, is this (running, stopped)")
	cmd.Flags().BoolVar(&stuck, "stuck", false, "only VMs in one state longer than health.stuck_after allows (not held, not in a final state)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (stable shape, see docs/cli.md)")
	return cmd
}

func vmNote(j vmJSON, now time.Time) string {
	var parts []string
	if j.Held {
		parts = append(parts, "HELD")
	} else if j.NextAttempt != nil && j.NextAttempt.After(now) {
		parts = append(parts, "retry in "+j.NextAttempt.Sub(now).Round(time.Second).String())
	}
	if j.Stuck != nil {
		parts = append(parts, "STUCK: "+strings.TrimPrefix(j.Stuck.Text(), "stuck: "))
	} else if !j.Held && !states.State(j.Status).Final() && !j.StateSince.IsZero() && now.Sub(j.StateSince) >= time.Minute {
		parts = append(parts, "in "+j.Status+" for "+engine.ShortDuration(now.Sub(j.StateSince)))
	}
	if j.DNSDirty {
		parts = append(parts, "DNS pending")
	}
	if j.LastError != "" {
		parts = append(parts, truncate(j.LastError, 200))
	}
	return strings.Join(parts, "; ")
}

// truncate shortens s to n characters (not bytes).
func truncate(s string, n int) string {
	r := []rune(strings.ReplaceAll(s, "\n", " "))
	if len(r) <= n {
		return string(r)
	}
	return string(r[:n-1]) + "…"
}

func newVMShowCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show VM",
		Short: "Show one VM record (VM = service id or hostname)",
		Args:  exactArgs(1, "a VM (service id or hostname)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withVM(cmd.Context(), args[0], func(e *engine.Engine, vm engine.VM) error {
				j, err := toVMJSON(cmd.Context(), e, vm)
				if err != nil {
					return err
				}
				if asJSON {
					return writeVMJSON(cmd.OutOrStdout(), j)
				}
				w := cmd.OutOrStdout()
				vmid := "-"
				if j.VMID != nil {
					vmid = fmt.Sprint(*j.VMID)
				}
				fmt.Fprintf(w, "service:     %s\nhostname:    %s\nproduct:     %s\nstatus:      %s\nvmid:        %s\nnode:        %s (target %s)\nips:         %s\nattempts:    %d\n",
					j.ServiceID, j.Hostname, j.Product, j.Status, vmid, dash(j.Node), dash(j.TargetNode), dash(strings.Join(j.IPs, ", ")), j.Attempts)
				fmt.Fprintf(w, "power:       %s\n", powerText(j.Power, e.Clock.Now()))
				if j.Template != "" {
					fmt.Fprintf(w, "template:    %s\n", j.Template)
				}
				if vm.SuspendPending {
					fmt.Fprintf(w, "suspend:     queued until ready (%s)\n", dash(vm.SuspendReason))
				} else if states.Suspending(states.State(vm.Status)) {
					fmt.Fprintf(w, "suspend:     %s\n", dash(vm.SuspendReason))
				}
				if j.Throttle != nil {
					fmt.Fprintf(w, "throttle:    net0 at %d MB/s until %s (over its traffic limit)\n", j.Throttle.RateMBps, e.HumanTime(j.Throttle.Until))
				}
				now := e.Clock.Now()
				fmt.Fprintf(w, "in state:    %s for %s (since %s)\n", j.Status, engine.ShortDuration(max(now.Sub(j.StateSince), 0)), e.HumanTime(j.StateSince))
				if j.WaitReason != "" && !states.State(j.Status).Final() {
					fmt.Fprintf(w, "waiting:     %s\n", j.WaitReason)
				}
				if j.Stuck != nil {
					fmt.Fprintf(w, "STUCK:       %s\n", strings.TrimPrefix(j.Stuck.Text(), "stuck: "))
				}
				if note := vmNote(vmJSON{Status: j.Status, Held: j.Held, NextAttempt: j.NextAttempt}, e.Clock.Now()); note != "" {
					fmt.Fprintf(w, "state:       %s\n", note)
				}
				if j.LastError != "" {
					fmt.Fprintf(w, "last error:  %s\n", j.LastError)
				}
				if j.PendingTask != nil {
					fmt.Fprintf(w, "pending:     %s (node %s)\n", j.PendingTask.UPID, j.PendingTask.Node)
				}
				recs, err := e.DNSRecords(cmd.Context(), vm)
				if err != nil {
					return err
				}
				dnsState := "in sync"
				if j.DNSDirty {
					dnsState = "DIRTY: some records failed; process_vms retries them"
				}
				fmt.Fprintf(w, "dns:         %d record(s), %s\n", len(recs), dnsState)
				for _, r := range recs {
					extra := ""
					if r.Error != "" {
						extra = " — " + r.Error
					}
					fmt.Fprintf(w, "  %-9s %s %s %s (zone %s)%s\n", r.State, r.Name, r.Type, r.Value, r.Zone, extra)
				}
				fmt.Fprintf(w, "updated:     %s\n", e.HumanTime(j.UpdatedAt))
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (stable shape, see docs/cli.md)")
	return cmd
}

func newVMRetryCmd(g *globals) *cobra.Command {
	var all, yes bool
	var f engine.RetryFilter
	cmd := &cobra.Command{
		Use:   "retry (VM | --all [--held] [--state S] [--error-class C] [--yes])",
		Short: "Release a held VM (or end its backoff) so the next tick retries its step",
		Long: `Release a VM that a permanent error held (403, missing storage or template, …) after
you fixed the cause, or end a retry backoff early. The VM stays at its step; the next
tick runs that step again. Nothing is sent to Proxmox here.

--all releases every VM that is held or backing off (after an outage, a fixed token or
storage), narrowed by --held (only held ones), --state S and --error-class C (the class at
the end of the last error: permission denied, storage unavailable, …). Without --yes it
only lists what it would release (a dry run).`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case all && len(args) > 0:
				return usagef("give a VM or --all, not both")
			case !all && len(args) != 1:
				return usagef("retry takes a VM (service id or hostname), or --all")
			case !all && (yes || f.HeldOnly || f.Status != "" || f.ErrorClass != ""):
				return usagef("--held, --state, --error-class and --yes go with --all")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			w := cmd.OutOrStdout()
			if all {
				return retryAll(cmd, g, f, yes)
			}
			res, err := g.request(cmd, func(ctx context.Context, e *engine.Engine) (engine.Result, error) {
				return e.Retry(ctx, args[0])
			})
			if err != nil {
				return err
			}
			if !res.Changed {
				fmt.Fprintf(w, "VM %s is not held or backing off (status %s); nothing to do\n", res.VM.ServiceID, res.VM.Status)
				return nil
			}
			fmt.Fprintf(w, "VM %s released at %s; the next tick retries it\n", res.VM.ServiceID, res.VM.Status)
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "every VM held or backing off (a dry run without --yes)")
	cmd.Flags().BoolVar(&f.HeldOnly, "held", false, "with --all: only held VMs")
	cmd.Flags().StringVar(&f.Status, "state", "", "with --all: only VMs in this state")
	cmd.Flags().StringVar(&f.ErrorClass, "error-class", "", "with --all: only VMs whose last error has this class (permission denied, storage unavailable, …)")
	cmd.Flags().BoolVar(&yes, "yes", false, "with --all: release them (without it, only list them)")
	return cmd
}

// retryAll is vm retry --all: a dry run listing the VMs, or with yes their
// release, one request each (each audited like vm retry VM).
func retryAll(cmd *cobra.Command, g *globals, f engine.RetryFilter, yes bool) error {
	if err := f.Validate(); err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	e, closeFn, err := g.openEngine(cmd.Context())
	if err != nil {
		return err
	}
	defer closeFn()
	vms, err := e.RetryCandidates(cmd.Context(), f)
	if err != nil {
		return err
	}
	if len(vms) == 0 {
		fmt.Fprintln(w, "no VM is held or backing off that matches; nothing to do")
		return nil
	}
	now := e.Clock.Now()
	for _, vm := range vms {
		why := "held"
		if !vm.Held {
			why = "retry in " + vm.NextAttemptAt.Sub(now).Round(time.Second).String()
		}
		fmt.Fprintf(w, "%s  %s  %s  %s\n", vm.ServiceID, vm.Status, why, truncate(vm.LastError, 160))
	}
	if !yes {
		fmt.Fprintf(w, "%d VM(s) would be released; run again with --yes to release them\n", len(vms))
		return nil
	}
	released, failed := 0, 0
	for _, vm := range vms {
		res, err := e.Retry(cmd.Context(), vm.ServiceID)
		switch {
		case err != nil:
			failed++
			fmt.Fprintf(w, "%s: not released: %v\n", vm.ServiceID, err)
		case res.Changed:
			released++
		}
	}
	fmt.Fprintf(w, "%d VM(s) released; the next tick retries them\n", released)
	if failed > 0 {
		return failure{fmt.Errorf("%d VM(s) could not be released (moved meanwhile?)", failed)}
	}
	return nil
}
