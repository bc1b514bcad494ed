package proxmox_test

// Contract tests: the go-proxmox adapter against pvesim served over HTTP,
// for every Client method — success and the error classes it can hit.
// Every test's setup fails the test if any request the adapter sent was
// rejected by pvesim's PVE-schema validation.

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
)

const (
	limitedTokenID = "audit@pve!ro"
	limitedSecret  = "00000000-0000-4000-8000-00000000a0d1"
	templateID     = 9000
)

var template = proxmox.VMRef{Node: "pve1", VMID: templateID}

type testBundle struct {
	sim     *pvesim.Sim
	c       proxmox.Client
	limited proxmox.Client // token with audit privileges only
	badAuth proxmox.Client // wrong secret
	ctx     context.Context
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	return setupCluster(t, pvesim.DefaultCluster())
}

func setupCluster(t *testing.T, cl pvesim.Cluster) *testBundle {
	t.Helper()
	cl.Tokens = append(cl.Tokens, pvesim.TokenSpec{ID: limitedTokenID, Secret: limitedSecret,
		Grants: []pvesim.Grant{{Path: "/", Privs: []string{"VM.Audit", "Sys.Audit", "Datastore.Audit"}}}})
	sim, apiURL, id, secret := pvesim.StartTest(t, cl)
	// The contract: nothing the adapter sends may fail PVE's schema.
	t.Cleanup(func() { sim.RequireNoRejections(t) })
	mk := func(id, secret string) proxmox.Client {
		a, err := proxmox.New(proxmox.Options{URL: apiURL, TokenID: id, TokenSecret: secret})
		require.NoError(t, err)
		return a
	}
	return &testBundle{sim: sim, c: mk(id, secret), limited: mk(limitedTokenID, limitedSecret),
		badAuth: mk(id, "00000000-0000-4000-8000-0000000bad00"), ctx: context.Background()}
}

// wait advances the simulated clock until the task stops (never sleeps).
func (b *testBundle) wait(t *testing.T, ref proxmox.TaskRef) proxmox.TaskStatus {
	t.Helper()
	require.False(t, ref.IsZero(), "expected a task")
	for range 600 {
		st, err := b.c.TaskStatus(b.ctx, ref)
		require.NoError(t, err)
		require.Equal(t, ref, st.Task)
		if st.Done() {
			return st
		}
		b.sim.Advance(time.Second)
	}
	t.Fatalf("task %s never finished", ref.UPID)
	return proxmox.TaskStatus{}
}

// ok waits for a task and requires success.
func (b *testBundle) ok(t *testing.T, ref proxmox.TaskRef, err error) proxmox.TaskStatus {
	t.Helper()
	require.NoError(t, err)
	st := b.wait(t, ref)
	require.NoError(t, st.Err(), "task %s", ref.UPID)
	require.True(t, st.Succeeded())
	return st
}

// must is ok for a call's two results: b.must(t)(b.c.Start(…)).
func (b *testBundle) must(t *testing.T) func(proxmox.TaskRef, error) proxmox.TaskStatus {
	t.Helper()
	return func(ref proxmox.TaskRef, err error) proxmox.TaskStatus {
		t.Helper()
		return b.ok(t, ref, err)
	}
}

// outcome is the error of a call that returns a task: the call's own error,
// or the task's exit status. PVE checks some things synchronously and
// others in the worker; the class is the same either way.
func (b *testBundle) outcome(t *testing.T, ref proxmox.TaskRef, err error) error {
	t.Helper()
	if err != nil {
		return err
	}
	if ref.IsZero() {
		return nil
	}
	return b.wait(t, ref).Err()
}

func requireClass(t *testing.T, want proxmox.Class, err error) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, want.String(), proxmox.Classify(err).String(), "error: %v", err)
}

// clone makes a linked clone of the template on pve1 and waits for it.
func (b *testBundle) clone(t *testing.T, vmid int, name string) proxmox.VMRef {
	t.Helper()
	ref, err := b.c.Clone(b.ctx, proxmox.CloneRequest{Source: template, NewID: vmid, Name: name, Mode: proxmox.CloneLinked})
	b.ok(t, ref, err)
	return proxmox.VMRef{Node: "pve1", VMID: vmid}
}

func (b *testBundle) start(t *testing.T, vm proxmox.VMRef) {
	t.Helper()
	ref, err := b.c.Start(b.ctx, vm, proxmox.StartOptions{})
	b.ok(t, ref, err)
}

// requireAccepted fails unless the last request to endpoint passed pvesim's
// PVE-schema validation (it reached the handler: not a 400 rejection).
func requireAccepted(t *testing.T, sim *pvesim.Sim, endpoint string) pvesim.Request {
	t.Helper()
	reqs := sim.Requests()
	for i := len(reqs) - 1; i >= 0; i-- {
		if reqs[i].Endpoint == endpoint {
			require.False(t, reqs[i].Rejected, "%s rejected by the PVE schema: %v", endpoint, reqs[i].Errors)
			require.Empty(t, reqs[i].Errors)
			return reqs[i]
		}
	}
	t.Fatalf("no request to %s recorded", endpoint)
	return pvesim.Request{}
}

// A full pipeline-shaped run through every mutating method, asserting at the
// end that pvesim validated (and accepted) every request the adapter sent.
func TestContractNoSchemaRejections(t *testing.T) {
	t.Parallel()
	b := setup(t)
	vm := b.clone(t, 101, "web1")
	b.must(t)(b.c.SetConfig(b.ctx, vm, proxmox.ConfigChange{Set: map[string]string{
		"cores": "4", "sockets": "1", "memory": "4096", "tags": "pvectl;svc-1", "description": "pvectl:svc-1",
		"net0":  "virtio=BC:24:11:00:01:01,bridge=vmbr0,tag=100,rate=12.5,firewall=1",
		"scsi1": "local-lvm:10,iops_rd=100,iops_wr=100,mbps_rd=50,mbps_wr=50"}}))
	b.must(t)(b.c.ResizeDisk(b.ctx, vm, "scsi0", "40G"))
	require.NoError(t, b.c.SetFirewallOptions(b.ctx, vm, proxmox.FirewallOptions{Enable: proxmox.Bool(true), IPFilter: proxmox.Bool(true), DHCP: proxmox.Bool(false), MACFilter: proxmox.Bool(true), NDP: proxmox.Bool(true), RAdv: proxmox.Bool(false), PolicyIn: "DROP", PolicyOut: "ACCEPT", LogLevelIn: "nolog", LogLevelOut: "nolog"}))
	require.NoError(t, b.c.CreateIPSet(b.ctx, vm, "ipfilter-net0", "pvectl"))
	require.NoError(t, b.c.AddIPSetEntry(b.ctx, vm, "ipfilter-net0", proxmox.IPSetEntry{CIDR: "192.0.2.10", Comment: "v4"}))
	require.NoError(t, b.c.AddIPSetEntry(b.ctx, vm, "ipfilter-net0", proxmox.IPSetEntry{CIDR: "2001:db8::/64", NoMatch: true}))
	require.NoError(t, b.c.SetCloudInit(b.ctx, vm, proxmox.CloudInit{User: "admin", Password: "pw", SSHKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL6j+kE1W98w6oNjS4+E3DHwbcBtPaDeVZ388oOL31ke a@b"},
		IPConfigs: map[int]proxmox.IPConfig{0: {IPv4: "192.0.2.10/24", GW4: "192.0.2.1"}}, Nameservers: []string{"192.0.2.53"}, SearchDomain: "example.com"}))
	b.must(t)(b.c.Start(b.ctx, vm, proxmox.StartOptions{Timeout: time.Minute}))
	b.must(t)(b.c.CreateSnapshot(b.ctx, vm, proxmox.SnapshotRequest{Name: "s1", Description: "d", VMState: false}))
	b.must(t)(b.c.DeleteSnapshot(b.ctx, vm, "s1", true))
	b.must(t)(b.c.Backup(b.ctx, proxmox.BackupRequest{VM: vm, Storage: "local", Mode: "snapshot", Compress: "zstd", Remove: proxmox.Bool(true), NotesTemplate: "{{guestname}}"}))
	_, err := b.c.RRDData(b.ctx, vm, proxmox.TimeframeDay, proxmox.CFMax)
	require.NoError(t, err)
	b.must(t)(b.c.Shutdown(b.ctx, vm, proxmox.ShutdownOptions{Timeout: 30 * time.Second, ForceStop: true}))
	b.must(t)(b.c.Stop(b.ctx, vm, proxmox.StopOptions{Timeout: 5 * time.Second, OverruleShutdown: true}))
	require.NoError(t, b.c.RemoveIPSetEntry(b.ctx, vm, "ipfilter-net0", "2001:db8::/64"))
	require.NoError(t, b.c.DeleteIPSet(b.ctx, vm, "ipfilter-net0", true))
	vols, err := b.c.StorageContent(b.ctx, "pve1", "local", proxmox.ContentFilter{Content: "backup", VMID: vm.VMID})
	require.NoError(t, err)
	require.Len(t, vols, 1)
	b.must(t)(b.c.Restore(b.ctx, proxmox.RestoreRequest{VM: proxmox.VMRef{Node: "pve1", VMID: 301}, Archive: vols[0].VolID, Storage: "local-lvm", Unique: true, Pool: ""}))
	if ref, err := b.c.DeleteVolume(b.ctx, "pve1", "local", vols[0].VolID); err == nil && !ref.IsZero() {
		b.ok(t, ref, nil)
	} else {
		require.NoError(t, err)
	}
	ref, err := b.c.Clone(b.ctx, proxmox.CloneRequest{Source: template, NewID: 102, Name: "web2", Mode: proxmox.CloneFull, Storage: "local-lvm", Format: "raw", Description: "d"})
	b.ok(t, ref, err)
	b.must(t)(b.c.Migrate(b.ctx, proxmox.MigrateRequest{VM: proxmox.VMRef{Node: "pve1", VMID: 102}, Target: "pve2", TargetStorage: "local-lvm", BWLimitKiB: 10240, Online: true, WithLocalDisks: true}))
	b.must(t)(b.c.Delete(b.ctx, proxmox.VMRef{Node: "pve2", VMID: 102}, proxmox.DeleteOptions{Purge: true, DestroyUnreferencedDisks: true}))
	b.must(t)(b.c.Delete(b.ctx, vm, proxmox.DeleteOptions{Purge: true, DestroyUnreferencedDisks: true}))

	require.NotEmpty(t, b.sim.Requests())
	require.Empty(t, b.sim.Rejected(), "requests rejected by the PVE schema: %v", fmt.Sprint(b.sim.Rejected()))
}

// The check itself works: a request PVE's schema rejects is recorded.
func TestContractRejectionsAreDetected(t *testing.T) {
	t.Parallel()
	sim, apiURL, id, secret := pvesim.StartTest(t, pvesim.DefaultCluster())
	a, err := proxmox.New(proxmox.Options{URL: apiURL, TokenID: id, TokenSecret: secret})
	require.NoError(t, err)
	_, err = a.ResizeDisk(context.Background(), template, "scsi0", "forty gigabytes")
	requireClass(t, proxmox.ClassInvalid, err)
	var pe *proxmox.Error
	require.ErrorAs(t, err, &pe)
	require.Equal(t, 400, pe.HTTPStatus)
	require.Equal(t, "Parameter verification failed.", pe.Message)
	require.Contains(t, pe.Fields, "size")
	require.Len(t, sim.Rejected(), 1)
}
