package engine_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pvectl/pvectl/config"
	"github.com/pvectl/pvectl/engine"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

const requestsConfig = `proxmox: {url: "https://pve.invalid:8006", token_id: "u@pve!t", token_secret: "s"}
vmid_range: {min: 1000, max: 1099}
products:
  small:
    cores: 1
    memory_mb: 1024
    template: {vmid: 9000, node: pve1}
    target_node: pve1
    system_disk: {size_gb: 32, storage: local-lvm}
    network: {bridge: vmbr0, ipv4: 1}
  large:
    cores: 2
    memory_mb: 2048
    template: {vmid: 9000, node: pve1}
    target_node: pve1
    system_disk: {size_gb: 40, storage: local-lvm}
    network: {bridge: vmbr0, ipv4: 1}
ip_pools:
  - {name: v4, nodes: [pve1], family: 4, bridge: vmbr0, network: 192.0.2.0/24, gateway: 192.0.2.1, first: 192.0.2.10, last: 192.0.2.20}
`

var requestsT0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// newRequestEngine is an engine on a real store in a temp dir, with no PVE
// client (terminate sends no stop) and the actor "tester".
func newRequestEngine(t *testing.T, extraConfig string) *engine.Engine {
	t.Helper()
	cfg, err := config.Parse("pvectl.yaml", []byte(requestsConfig+extraConfig))
	require.NoError(t, err)
	st, err := store.Create(context.Background(), filepath.Join(t.TempDir(), "pvectl.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return &engine.Engine{Config: cfg, Store: st, Clock: engine.FixedClock{T: requestsT0}, Actor: "tester",
		Pipelines: states.Pipelines()}
}

// vmAt creates a VM through the request API and puts it at status.
func vmAt(t *testing.T, e *engine.Engine, svc string, status states.State) engine.VM {
	t.Helper()
	ctx := context.Background()
	res, err := e.CreateVM(ctx, engine.CreateVM{ServiceID: svc, Product: "small", Hostname: svc + ".example.com"})
	require.NoError(t, err)
	if status != states.Creation {
		require.NoError(t, e.Store.VMSetStatus(ctx, res.VM.ID, string(status), requestsT0))
	}
	vm, err := e.FindVM(ctx, svc)
	require.NoError(t, err)
	return vm
}

// requestLines are the request lines of a VM's log, oldest first, as "what from→to detail".
func requestLines(t *testing.T, e *engine.Engine, vm engine.VM) []string {
	t.Helper()
	runs, err := e.Log(context.Background(), vm, 50)
	require.NoError(t, err)
	var out []string
	for i := len(runs) - 1; i >= 0; i-- {
		if !engine.IsRequest(runs[i]) {
			continue
		}
		require.Len(t, runs[i].Lines, 1)
		l := runs[i].Lines[0]
		out = append(out, l.Step+" "+l.From+"→"+l.To+" "+l.Detail)
	}
	return out
}

func TestRequestsRefuseWithTypedErrors(t *testing.T) {
	t.Parallel()
	type call func(ctx context.Context, e *engine.Engine, ref string) error
	changePackage := func(product string) call {
		return func(ctx context.Context, e *engine.Engine, ref string) error {
			_, err := e.ChangePackage(ctx, ref, product)
			return err
		}
	}
	terminate := func(ctx context.Context, e *engine.Engine, ref string) error {
		_, err := e.Terminate(ctx, ref)
		return err
	}
	reinstall := func(ctx context.Context, e *engine.Engine, ref string) error {
		_, err := e.Reinstall(ctx, ref, engine.Reinstall{})
		return err
	}
	resetStatus := func(target string) call {
		return func(ctx context.Context, e *engine.Engine, ref string) error {
			_, err := e.ResetStatus(ctx, ref, target, engine.Ask{})
			return err
		}
	}
	deleteRecord := func(ctx context.Context, e *engine.Engine, ref string) error {
		_, err := e.DeleteRecord(ctx, ref, false, engine.Ask{})
		return err
	}
	syncDNS := func(ctx context.Context, e *engine.Engine, ref string) error {
		_, err := e.SyncDNS(ctx, ref)
		return err
	}
	retry := func(ctx context.Context, e *engine.Engine, ref string) error {
		_, err := e.Retry(ctx, ref)
		return err
	}
	setHostname := func(name string) call {
		return func(ctx context.Context, e *engine.Engine, ref string) error {
			_, err := e.SetHostname(ctx, ref, name)
			return err
		}
	}
	reinstallFrom := func(tpl string) call {
		return func(ctx context.Context, e *engine.Engine, ref string) error {
			_, err := e.Reinstall(ctx, ref, engine.Reinstall{Template: tpl, Ask: engine.Ask{}})
			return err
		}
	}
	const dnsZone = "dns:\n  zones:\n    - {name: example.net, server: 127.0.0.1:1, key_name: k, secret: c2VjcmV0}\n"
	for _, tc := range []struct {
		name   string
		config string
		status states.State
		ref    string // "" = the VM
		call   call
		// exactly one of these
		wrongState, invalidField string
		notFound                 bool
		msg                      string // the whole message
	}{
		{name: "change-package from a deploy step", status: states.SetCloudinit, call: changePackage("large"),
			wrongState: "set_cloudinit", msg: "VM v is in state set_cloudinit (allowed: ready, change_package): not allowed in the VM's current state"},
		{name: "change-package to another product while changing", status: states.CPStop, call: changePackage("large"),
			wrongState: "cp_stop", msg: "VM v is already changing to product small (status cp_stop); wait for it to reach ready"},
		{name: "change-package to an unknown product", status: states.Ready, call: changePackage("smal"),
			invalidField: "--product", msg: `--product "smal": valid: large, small`},
		{name: "change-package of an unknown VM", status: states.Ready, ref: "nope", call: changePackage("large"),
			notFound: true, msg: `no VM with service id or hostname "nope": not found`},
		{name: "terminate from error_terminate", status: states.ErrorTerminate, call: terminate,
			wrongState: "error_terminate", msg: "VM v is in error_terminate: fix the cause, then pvectl reset-status v terminate"},
		{name: "terminate from remove", status: states.Remove, call: terminate, wrongState: "remove"},
		{name: "reinstall from a deploy step", status: states.SetIP, call: reinstall,
			wrongState: "set_ip", msg: "VM v is in state set_ip; reinstall needs ready"},
		{name: "reset-status to an unknown state", status: states.Ready, call: resetStatus("redy"),
			invalidField: "STATUS"},
		{name: "reset-status to ready without a VMID", status: states.SetIP, call: resetStatus("ready"),
			wrongState: "set_ip", msg: "VM v has no VMID (it is set_ip): ready carries on with an existing VM; to deploy it again use: pvectl reset-status v creation; nothing changed"},
		{name: "delete-record of a live VM", status: states.Ready, call: deleteRecord,
			wrongState: "ready", msg: "VM v is in state ready; delete-record is only for error_terminate or remove"},
		{name: "dns sync without zones", status: states.Ready, call: syncDNS,
			invalidField: "dns.zones", msg: "no DNS zones configured (dns.zones in the config); nothing to sync"},
		{name: "dns sync of a VM in a pipeline", config: dnsZone, status: states.CPStop, call: syncDNS, wrongState: "cp_stop"},
		{name: "retry of an unknown VM", status: states.Ready, ref: "nope", call: retry, notFound: true},
		{name: "set-hostname to a bare name", status: states.Ready, call: setHostname("web1"),
			invalidField: "NEW", msg: `NEW "web1": want a fully qualified domain name like vm1.example.com`},
		{name: "set-hostname to a zone apex", config: dnsZone, status: states.Ready, call: setHostname("Example.NET."),
			invalidField: "NEW", msg: `NEW "example.net": is the apex of DNS zone example.net, where the zone's own records live (SOA, NS, the domain's web and mail); want a name inside the zone, like vm1.example.net (or set allow_apex: true on the zone in the config)`},
		{name: "set-hostname during a deploy", status: states.SetCloudinit, call: setHostname("new.example.com"),
			wrongState: "set_cloudinit", msg: "VM v is in state set_cloudinit (allowed: ready, set_hostname, hostname_renamed): vm set-hostname is only for a ready VM"},
		{name: "set-hostname of a suspended VM", status: states.Suspended, call: setHostname("new.example.com"), wrongState: "suspended"},
		{name: "reinstall from an unknown template", status: states.Ready, call: reinstallFrom("alma-9"),
			invalidField: "--template", msg: `--template "alma-9": product small has a single template (no templates map); omit --template; nothing changed`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := newRequestEngine(t, tc.config)
			vm := vmAt(t, e, "v", tc.status)
			ref := tc.ref
			if ref == "" {
				ref = vm.ServiceID
			}
			err := tc.call(ctx, e, ref)
			require.Error(t, err)
			if tc.msg != "" {
				require.EqualError(t, err, tc.msg)
			}
			var ws *engine.ErrWrongState
			var inv *engine.ErrInvalid
			switch {
			case tc.wrongState != "":
				require.ErrorAs(t, err, &ws)
				require.Equal(t, states.State(tc.wrongState), ws.State)
			case tc.invalidField != "":
				require.ErrorAs(t, err, &inv)
				require.Equal(t, tc.invalidField, inv.Field)
			case tc.notFound:
				require.ErrorIs(t, err, engine.ErrNotFound)
			}
			// Refused: nothing changed, nothing recorded.
			after, err := e.FindVM(ctx, "v")
			require.NoError(t, err)
			require.Equal(t, vm.Status, after.Status)
			require.Equal(t, vm.Version, after.Version)
			require.Equal(t, []string{"vm create →creation by tester; product small; hostname v.example.com"}, requestLines(t, e, after))
		})
	}
}

func TestCreateVMRefusesBadInputTogether(t *testing.T) {
	t.Parallel()
	e := newRequestEngine(t, "")
	_, err := e.CreateVM(context.Background(), engine.CreateVM{ServiceID: "bad id", Product: "smal", Hostname: "vm",
		Node: "pve_1", IdempotencyKey: "order 1", SSHKeys: "ssh-ed25519 AAAA-garbage\n", Password: "pw\x00"})
	var inv *engine.InvalidRequest
	require.ErrorAs(t, err, &inv)
	var fields []string
	for _, p := range inv.Problems {
		fields = append(fields, p.Field)
	}
	require.Equal(t, []string{"--service-id", "--hostname", "--product", "--node", "--idempotency-key", "--ssh-key-file", "--password-file"}, fields)
	require.True(t, strings.HasPrefix(err.Error(), "invalid request, nothing created:\n  --service-id \"bad id\": want"))
	require.NotContains(t, err.Error(), "pw\x00")
	vms, err := e.ListVMs(context.Background(), "")
	require.NoError(t, err)
	require.Empty(t, vms)
}

func TestCreateVMIdempotencyAndConflicts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newRequestEngine(t, "")
	keyFile := filepath.Join(t.TempDir(), "key.pub")
	require.NoError(t, os.WriteFile(keyFile, []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGplv8dU5Uv42pCUaMrmO4uMOUKWgMz9F9N2oO3WbaN1 admin@example\n"), 0o600))
	req := engine.CreateVM{ServiceID: "4711", Product: "small", Hostname: "VM4711.example.com.", IdempotencyKey: "order-4711",
		SSHKeyFile: keyFile, Password: "not-a-real-password"}
	first, err := e.CreateVM(ctx, req)
	require.NoError(t, err)
	require.True(t, first.Changed)
	require.Equal(t, "vm4711.example.com", first.VM.Hostname)
	require.Equal(t, string(states.Creation), first.VM.Status)
	// The password is not part of the digest: a repeat with another one is the same request.
	req.Password = "another-password"
	again, err := e.CreateVM(ctx, req)
	require.NoError(t, err)
	require.False(t, again.Changed)
	require.Equal(t, first.VM.ID, again.VM.ID)

	for _, tc := range []struct {
		name string
		req  engine.CreateVM
		msg  string
	}{
		{"same key, other product", engine.CreateVM{ServiceID: "4711", Product: "large", Hostname: "vm4711.example.com", IdempotencyKey: "order-4711"},
			`idempotency key already used with different arguments (key "order-4711" belongs to service 4711)`},
		{"same service id", engine.CreateVM{ServiceID: "4711", Product: "small", Hostname: "other.example.com"},
			`service id "4711": already exists`},
		{"same hostname", engine.CreateVM{ServiceID: "4712", Product: "small", Hostname: "vm4711.example.com"},
			"hostname vm4711.example.com is used by service 4711 (status creation): already exists"},
	} {
		_, err := e.CreateVM(ctx, tc.req)
		require.ErrorIs(t, err, engine.ErrConflict, tc.name)
		require.EqualError(t, err, tc.msg, tc.name)
	}
	// One audit line, no secret, a key count.
	lines := requestLines(t, e, first.VM)
	require.Equal(t, []string{"vm create →creation by tester; product small; hostname vm4711.example.com; idempotency key order-4711; 1 SSH key(s); password set"}, lines)
	require.NotContains(t, strings.Join(lines, "\n"), "AAAAC3")
	require.NotContains(t, strings.Join(lines, "\n"), "not-a-real-password")
}

func TestAcceptedRequestsAreAuditEvents(t *testing.T) {
	t.Parallel()
	const dnsZone = "dns:\n  zones:\n    - {name: example.net, server: 127.0.0.1:1, key_name: k, secret: c2VjcmV0}\n"
	yes := engine.Ask{Confirm: func(string) error { return nil }}
	for _, tc := range []struct {
		name   string
		status states.State
		do     func(ctx context.Context, e *engine.Engine) (engine.Result, error)
		to     states.State
		line   string // "" = no line (the request changed nothing)
	}{
		{"change-package", states.Ready, func(ctx context.Context, e *engine.Engine) (engine.Result, error) {
			return e.ChangePackage(ctx, "v", "large")
		}, states.ChangePackage, "vm change-package ready→change_package by tester; product large; was small"},
		{"change-package repeated", states.ChangePackage, func(ctx context.Context, e *engine.Engine) (engine.Result, error) {
			return e.ChangePackage(ctx, "v", "small")
		}, states.ChangePackage, ""},
		{"change-package under way, same product", states.CPStop, func(ctx context.Context, e *engine.Engine) (engine.Result, error) {
			return e.ChangePackage(ctx, "v", "small")
		}, states.CPStop, ""},
		{"terminate during a deploy", states.Clone, func(ctx context.Context, e *engine.Engine) (engine.Result, error) {
			return e.Terminate(ctx, "v")
		}, states.Terminate, "vm terminate clone→terminate by tester"},
		{"terminate under way", states.TerminateStopped, func(ctx context.Context, e *engine.Engine) (engine.Result, error) {
			return e.Terminate(ctx, "v")
		}, states.TerminateStopped, ""},
		{"reinstall with a password", states.Ready, func(ctx context.Context, e *engine.Engine) (engine.Result, error) {
			return e.Reinstall(ctx, "v", engine.Reinstall{Password: "not-a-real-password", Ask: yes})
		}, states.Reinstall, "vm reinstall ready→reinstall by tester; new password set"},
		{"reset-status to remove", states.Creation, func(ctx context.Context, e *engine.Engine) (engine.Result, error) {
			return e.ResetStatus(ctx, "v", "remove", yes)
		}, states.Remove, "reset-status creation→remove by tester"},
		{"reset-status to terminate", states.ErrorTerminate, func(ctx context.Context, e *engine.Engine) (engine.Result, error) {
			return e.ResetStatus(ctx, "v", "terminate", yes)
		}, states.Terminate, "reset-status error_terminate→terminate by tester"},
		{"retry with nothing to do", states.SetIP, func(ctx context.Context, e *engine.Engine) (engine.Result, error) {
			return e.Retry(ctx, "v")
		}, states.SetIP, ""},
		{"dns sync", states.Ready, func(ctx context.Context, e *engine.Engine) (engine.Result, error) {
			return e.SyncDNS(ctx, "v")
		}, states.SetDNSRecords, "dns sync ready→set_dns_records by tester"},
		{"set-hostname", states.Ready, func(ctx context.Context, e *engine.Engine) (engine.Result, error) {
			return e.SetHostname(ctx, "v", "New.Example.COM.")
		}, states.SetHostname, "vm set-hostname ready→set_hostname by tester; v.example.com → new.example.com"},
		{"set-hostname to its own name", states.Ready, func(ctx context.Context, e *engine.Engine) (engine.Result, error) {
			return e.SetHostname(ctx, "v", "v.example.com")
		}, states.Ready, ""},
		{"set-hostname replaces a pending rename", states.HostnameRenamed, func(ctx context.Context, e *engine.Engine) (engine.Result, error) {
			return e.SetHostname(ctx, "v", "again.example.com")
		}, states.SetHostname, "vm set-hostname hostname_renamed→set_hostname by tester; v.example.com → again.example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := newRequestEngine(t, dnsZone)
			vmAt(t, e, "v", tc.status)
			res, err := tc.do(ctx, e)
			require.NoError(t, err)
			require.Equal(t, tc.status, res.From)
			require.Equal(t, tc.line != "", res.Changed)
			vm, err := e.FindVM(ctx, "v")
			require.NoError(t, err)
			require.Equal(t, string(tc.to), vm.Status)
			want := []string{"vm create →creation by tester; product small; hostname v.example.com"}
			if tc.line != "" {
				want = append(want, tc.line)
			}
			require.Equal(t, want, requestLines(t, e, vm))
		})
	}
}

func TestRetryReleasesHeldVM(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newRequestEngine(t, "")
	vm := vmAt(t, e, "v", states.SetIP)
	require.NoError(t, e.Store.VMApplyOutcome(ctx, store.Outcome{ID: vm.ID, FromStatus: vm.Status, FromVersion: vm.Version,
		ToStatus: vm.Status, Attempts: 2, Held: true, LastError: "403", Now: requestsT0}))
	res, err := e.Retry(ctx, "v")
	require.NoError(t, err)
	require.True(t, res.Changed)
	got, err := e.FindVM(ctx, "v")
	require.NoError(t, err)
	require.False(t, got.Held)
	require.Equal(t, []string{"vm create →creation by tester; product small; hostname v.example.com",
		"vm retry set_ip→set_ip by tester; was held; attempts 2"}, requestLines(t, e, got))
}

func TestAdminRequestsAskBeforeWriting(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newRequestEngine(t, "")
	vmAt(t, e, "v", states.ErrorTerminate)
	refused := errors.New("not confirmed")
	var warned, asked []string
	ask := engine.Ask{Warn: func(m string) { warned = append(warned, m) },
		Confirm: func(q string) error { asked = append(asked, q); return refused }}
	_, err := e.DeleteRecord(ctx, "v", false, ask)
	require.ErrorIs(t, err, refused)
	_, err = e.ResetStatus(ctx, "v", "remove", ask)
	require.ErrorIs(t, err, refused)
	require.Equal(t, []string{"Delete the record of v?", "Set v from error_terminate to remove?"}, asked)
	require.Len(t, warned, 2)
	require.Contains(t, warned[1], "warning: remove does not contact Proxmox")
	vm, err := e.FindVM(ctx, "v")
	require.NoError(t, err)
	require.Equal(t, string(states.ErrorTerminate), vm.Status)

	// Confirmed, the record goes with its log; the audit event is returned.
	res, err := e.DeleteRecord(ctx, "v", false, engine.Ask{})
	require.NoError(t, err)
	require.Equal(t, "vm delete-record", res.Audit.What)
	require.Equal(t, "by tester", res.Audit.Detail)
	_, err = e.FindVM(ctx, "v")
	require.ErrorIs(t, err, engine.ErrNotFound)
}

func TestMovedVMIsAConflict(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newRequestEngine(t, "")
	vmAt(t, e, "v", states.Remove)
	// Another process moves the VM while the admin answers the question.
	moveIt := engine.Ask{Confirm: func(string) error {
		vm, err := e.FindVM(ctx, "v")
		require.NoError(t, err)
		return e.Store.VMSetStatus(ctx, vm.ID, string(states.Remove), requestsT0)
	}}
	_, err := e.DeleteRecord(ctx, "v", false, moveIt)
	require.ErrorIs(t, err, engine.ErrConflict)
	require.EqualError(t, err, "VM v changed since it was read (it was remove); nothing changed — look again and re-run")
	// The reset's write and its audit line commit together: a write the
	// compare-and-set refused leaves no line.
	_, err = e.ResetStatus(ctx, "v", "terminate", moveIt)
	require.ErrorIs(t, err, engine.ErrConflict)
	vm, err := e.FindVM(ctx, "v")
	require.NoError(t, err)
	require.Equal(t, string(states.Remove), vm.Status)
	require.Equal(t, []string{"vm create →creation by tester; product small; hostname v.example.com"}, requestLines(t, e, vm))
}

// A rename under way keeps a suspend billing queued meanwhile: the new
// name replaces the pending one, the suspend is still carried out once
// the VM is ready.
func TestSetHostnameKeepsAQueuedSuspend(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newRequestEngine(t, "")
	vmAt(t, e, "v", states.HostnameRenamed)
	res, err := e.Suspend(ctx, "v", "unpaid")
	require.NoError(t, err)
	require.True(t, res.VM.SuspendPending)
	res, err = e.SetHostname(ctx, "v", "other.example.com")
	require.NoError(t, err)
	require.True(t, res.Changed)
	vm, err := e.FindVM(ctx, "v")
	require.NoError(t, err)
	require.Equal(t, string(states.SetHostname), vm.Status)
	require.Equal(t, "other.example.com", vm.Hostname)
	require.True(t, vm.SuspendPending, "the queued suspend stays")
	require.Equal(t, "unpaid", vm.SuspendReason)
}
