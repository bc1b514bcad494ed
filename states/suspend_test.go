package states_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
	"github.com/pvectl/pvectl/states"
	"github.com/stretchr/testify/require"
)

// Suspend keeps what onboot was and unsuspend restores it; a suspended VM
// started behind pvectl's back is stopped again by the next pass.
func TestSuspendUnsuspendRestoresOnboot(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	vm := r.deployed("s1", "small")
	ref := proxmox.VMRef{Node: vm.Node, VMID: vm.VMID}
	require.NoError(t, r.pve.SetConfigSync(r.ctx, ref, proxmox.ConfigChange{Set: map[string]string{"onboot": "1"}}))

	_, err := r.e.Suspend(r.ctx, "s1", "unpaid")
	require.NoError(t, err)
	r.until(vm.ID, states.Suspended, 10)
	st, _ := r.sim.VM(vm.VMID)
	require.Equal(t, "stopped", st.Status)
	require.Equal(t, "0", st.Config["onboot"])
	require.Equal(t, "pvectl;suspended", st.Config["tags"])

	require.NoError(t, r.sim.StartOutOfBand(vm.VMID))
	out := r.tick(20 * time.Second)
	require.Contains(t, out, "Keep suspended  suspended  suspended VM found running; stopped again")
	r.tick(20 * time.Second)
	st, _ = r.sim.VM(vm.VMID)
	require.Equal(t, "stopped", st.Status)
	require.Empty(t, r.tick(20*time.Second), "a stopped suspended VM: an idle pass prints nothing")

	// The look at suspended VMs and a new order's allocation share the
	// pass's one read of /cluster/resources.
	r.create("s2", "small")
	sent := len(r.sim.Requests())
	require.Contains(t, r.tick(20*time.Second), "s2  Allocate VMID and IPs  creation → set_ip  success")
	reads := 0
	for _, q := range r.sim.Requests()[sent:] {
		if q.Method == "GET" && q.Path == "/cluster/resources" {
			reads++
		}
	}
	require.Equal(t, 1, reads, "GET /cluster/resources in one pass")

	_, err = r.e.Unsuspend(r.ctx, "s1")
	require.NoError(t, err)
	r.until(vm.ID, states.Ready, 10)
	st, _ = r.sim.VM(vm.VMID)
	require.Equal(t, "running", st.Status)
	require.Equal(t, "1", st.Config["onboot"])
	require.Equal(t, "pvectl", st.Config["tags"])
	require.Empty(t, r.get(vm.ID).SuspendSaved)
}

// accessRig is a rig whose cluster knows a customer (user, group, token),
// the principals suspend.keep_access names, a custom role and pool "cust".
func accessRig(t *testing.T) *rig {
	t.Helper()
	c := pvesim.DefaultCluster()
	c.Access = pvesim.AccessSpec{
		Users:  []string{"customer@pve", "admin@pam"},
		Groups: []string{"customers", "ops"},
		Tokens: []string{"customer@pve!cli", "billing@pve!sync"},
		Roles:  []string{"CustomerRole"},
		Pools:  []pvesim.PoolSpec{{ID: "cust"}},
	}
	r := newRigOn(t, false, c)
	r.cfg.Suspend.KeepAccess = []string{"admin@pam", "@ops", "billing@pve!sync"}
	return r
}

// grantAccess gives the VM the ACL entries of a customer VM (and some
// that a suspend must keep) and puts it in pool "cust", as an admin would.
// It returns the entries a suspend removes.
func grantAccess(t *testing.T, r *rig, vmid int) (customer []proxmox.ACLEntry) {
	t.Helper()
	path := fmt.Sprintf("/vms/%d", vmid)
	customer = []proxmox.ACLEntry{
		{Path: path, RoleID: "PVEVMUser", Type: proxmox.ACLUser, UGID: "customer@pve", Propagate: true},
		{Path: path, RoleID: "CustomerRole", Type: proxmox.ACLGroup, UGID: "customers", Propagate: false},
		{Path: path, RoleID: "PVEVMUser", Type: proxmox.ACLToken, UGID: "customer@pve!cli", Propagate: true},
	}
	kept := []proxmox.ACLEntry{
		{Path: path, RoleID: "PVEAdmin", Type: proxmox.ACLUser, UGID: "admin@pam", Propagate: true},
		{Path: path, RoleID: "PVEVMAdmin", Type: proxmox.ACLGroup, UGID: "ops", Propagate: false},
		{Path: path, RoleID: "PVEVMUser", Type: proxmox.ACLToken, UGID: "billing@pve!sync", Propagate: true},
		{Path: path, RoleID: "PVEVMAdmin", Type: proxmox.ACLUser, UGID: "pvectl@pve", Propagate: true}, // pvectl's token user
		{Path: path, RoleID: "PVEVMAdmin", Type: proxmox.ACLToken, UGID: pvesim.DefaultTokenID, Propagate: true},
		// Not the VM's own path: untouched.
		{Path: path + "0", RoleID: "PVEVMUser", Type: proxmox.ACLUser, UGID: "customer@pve", Propagate: true},
		{Path: "/pool/cust", RoleID: "PVEVMUser", Type: proxmox.ACLUser, UGID: "customer@pve", Propagate: true},
	}
	for _, e := range append(append([]proxmox.ACLEntry(nil), customer...), kept...) {
		require.NoError(t, r.pve.GrantACL(r.ctx, e))
	}
	require.NoError(t, r.pve.AddToPool(r.ctx, "cust", vmid))
	return customer
}

func aclOf(t *testing.T, r *rig) []proxmox.ACLEntry {
	t.Helper()
	acl, err := r.pve.ACL(r.ctx)
	require.NoError(t, err)
	return acl
}

// savedACL is what the record keeps for the unsuspend.
func savedOf(t *testing.T, r *rig, id int64) (acl []proxmox.ACLEntry, pool string) {
	t.Helper()
	var saved struct {
		ACL  []proxmox.ACLEntry `json:"acl"`
		Pool string             `json:"pool"`
	}
	if s := r.get(id).SuspendSaved; s != "" {
		require.NoError(t, json.Unmarshal([]byte(s), &saved))
	}
	return saved.ACL, saved.Pool
}

// A suspend removes the customer's ACL entries on the VM's path and its
// pool membership, keeps the principals of suspend.keep_access and
// pvectl's own token, and an unsuspend puts back exactly what it removed
// (propagate flags included); also when the tick is cut short after the
// record kept the access but before PVE removed it (save → delete), or
// after PVE removed it but before the step advanced (delete → success).
func TestSuspendRevokesAndRestoresAccess(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// fault cuts one tick of the suspend's config step short.
		fault *pvesim.FailNext
	}{
		{name: "no crash"},
		{name: "crash between save and delete", fault: &pvesim.FailNext{Endpoint: "PUT /access/acl", Status: 500, Message: "failed to read from command socket"}},
		{name: "crash after an ACL delete", fault: &pvesim.FailNext{Endpoint: "PUT /access/acl", Status: 596, Message: "Connection timed out", AfterApply: true}},
		{name: "crash after the pool delete", fault: &pvesim.FailNext{Endpoint: "PUT /pools", Status: 596, Message: "Connection timed out", AfterApply: true}},
		{name: "crash between delete and success", fault: &pvesim.FailNext{Endpoint: "PUT /nodes/{node}/qemu/{vmid}/config", Status: 596, Message: "Connection timed out", AfterApply: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := accessRig(t)
			vm := r.deployed("a1", "small")
			customer := grantAccess(t, r, vm.VMID)
			before := aclOf(t, r)

			_, err := r.e.Suspend(r.ctx, "a1", "unpaid")
			require.NoError(t, err)
			r.until(vm.ID, states.SuspendStopped, 10)
			if tc.fault != nil {
				r.sim.FailNext(*tc.fault)
				out := r.tick(20 * time.Second)
				require.Equal(t, string(states.SuspendStopped), r.get(vm.ID).Status, out)
				saved, pool := savedOf(t, r, vm.ID)
				require.ElementsMatch(t, customer, saved, "the record keeps the access before PVE loses it")
				require.Equal(t, "cust", pool)
			}
			out := r.run(vm.ID, states.Suspended, 20, 20*time.Second)
			require.Equal(t, string(states.Suspended), r.get(vm.ID).Status, out)
			if tc.fault == nil {
				require.Contains(t, out, "revoked access: CustomerRole for @customers on /vms/1000 (no propagate); PVEVMUser for customer@pve!cli on /vms/1000; PVEVMUser for customer@pve on /vms/1000; member of pool cust")
			}
			now := aclOf(t, r)
			for _, e := range customer {
				require.NotContains(t, now, e)
			}
			require.Len(t, now, len(before)-len(customer), "kept principals and other paths stay")
			require.Empty(t, r.sim.PoolOf(vm.VMID))
			saved, pool := savedOf(t, r, vm.ID)
			require.ElementsMatch(t, customer, saved, "a rerun never shrinks what is kept")
			require.Equal(t, "cust", pool)

			_, err = r.e.Unsuspend(r.ctx, "a1")
			require.NoError(t, err)
			out = r.run(vm.ID, states.Ready, 10, 20*time.Second)
			require.Equal(t, string(states.Ready), r.get(vm.ID).Status, out)
			require.Contains(t, out, "restored access: ")
			require.ElementsMatch(t, before, aclOf(t, r))
			require.Equal(t, "cust", r.sim.PoolOf(vm.VMID))
			require.Empty(t, r.get(vm.ID).SuspendSaved)
		})
	}
}

// revoke_access: false leaves ACL and pool alone.
func TestSuspendKeepsAccessWhenRevokeIsOff(t *testing.T) {
	t.Parallel()
	r := accessRig(t)
	off := false
	r.cfg.Suspend.RevokeAccess = &off
	vm := r.deployed("a2", "small")
	grantAccess(t, r, vm.VMID)
	before := aclOf(t, r)
	sent := len(r.sim.Requests())
	_, err := r.e.Suspend(r.ctx, "a2", "")
	require.NoError(t, err)
	r.until(vm.ID, states.Suspended, 10)
	require.ElementsMatch(t, before, aclOf(t, r))
	require.Equal(t, "cust", r.sim.PoolOf(vm.VMID))
	saved, pool := savedOf(t, r, vm.ID)
	require.Empty(t, saved)
	require.Empty(t, pool)
	for _, q := range r.sim.Requests()[sent:] {
		require.False(t, q.Method == "PUT" && (q.Endpoint == "PUT /access/acl" || q.Endpoint == "PUT /pools"), "%s %s", q.Method, q.Path)
	}
	_, err = r.e.Unsuspend(r.ctx, "a2")
	require.NoError(t, err)
	r.until(vm.ID, states.Ready, 10)
	require.ElementsMatch(t, before, aclOf(t, r))
}

// A principal or pool deleted in PVE while the VM was suspended does not
// block the unsuspend: the entry is logged and left.
func TestUnsuspendCarriesOnWhenAccessIsGone(t *testing.T) {
	t.Parallel()
	r := accessRig(t)
	vm := r.deployed("a3", "small")
	grantAccess(t, r, vm.VMID)
	_, err := r.e.Suspend(r.ctx, "a3", "")
	require.NoError(t, err)
	r.until(vm.ID, states.Suspended, 10)

	r.sim.DeleteUser("customer@pve") // its token goes with it
	r.sim.DeletePool("cust")
	_, err = r.e.Unsuspend(r.ctx, "a3")
	require.NoError(t, err)
	out := r.run(vm.ID, states.Ready, 10, 20*time.Second)
	require.Equal(t, string(states.Ready), r.get(vm.ID).Status, out)
	require.Contains(t, out, "access not restored: PVEVMUser for customer@pve on /vms/1000: ACL update failed: user 'customer@pve' does not exist")
	require.Contains(t, out, "access not restored: PVEVMUser for customer@pve!cli on /vms/1000: ACL update failed: no such user ('customer@pve')")
	require.Contains(t, out, "access not restored: member of pool cust: update pools failed: pool 'cust' does not exist")
	require.Contains(t, out, "restored access: CustomerRole for @customers on /vms/1000 (no propagate)")
	require.Contains(t, aclOf(t, r), proxmox.ACLEntry{Path: "/vms/1000", RoleID: "CustomerRole", Type: proxmox.ACLGroup, UGID: "customers"})
	require.Empty(t, r.get(vm.ID).SuspendSaved)
}

// Terminate from suspended: PVE drops the VM's ACL entries and pool
// membership with the VM; nothing is left behind.
func TestTerminateSuspendedLeavesNoAccess(t *testing.T) {
	t.Parallel()
	r := accessRig(t)
	vm := r.deployed("a4", "small")
	grantAccess(t, r, vm.VMID)
	_, err := r.e.Suspend(r.ctx, "a4", "")
	require.NoError(t, err)
	r.until(vm.ID, states.Suspended, 10)
	r.request(r.get(vm.ID), states.Terminate, "")
	r.until(vm.ID, states.Remove, 20)
	_, ok := r.sim.VM(vm.VMID)
	require.False(t, ok)
	require.Empty(t, r.sim.ACL(fmt.Sprintf("/vms/%d", vm.VMID)))
	require.Empty(t, r.sim.PoolOf(vm.VMID))
}
