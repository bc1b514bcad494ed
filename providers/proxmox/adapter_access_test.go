package proxmox_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
)

// accessCluster is the default cluster with a customer (user, group,
// token), a custom role, pools "cust" and "other", and VMs 1000 and 1001.
func accessCluster(version string) pvesim.Cluster {
	c := pvesim.DefaultCluster()
	if version != "" {
		c.Version = version
	}
	for _, id := range []int{1000, 1001} {
		c.VMs = append(c.VMs, pvesim.VMSpec{VMID: id, Node: "pve1", Config: map[string]string{"name": "vm", "memory": "512"}})
	}
	c.Access = pvesim.AccessSpec{Users: []string{"customer@pve"}, Groups: []string{"customers"},
		Tokens: []string{"customer@pve!cli"}, Roles: []string{"CustomerRole"},
		Pools: []pvesim.PoolSpec{{ID: "cust", VMs: []int{1000}}, {ID: "other"}}}
	return c
}

func TestContractACL(t *testing.T) {
	t.Parallel()
	b := setupCluster(t, accessCluster(""))
	entries := []proxmox.ACLEntry{
		{Path: "/vms/1000", RoleID: "PVEVMUser", Type: proxmox.ACLUser, UGID: "customer@pve", Propagate: true},
		{Path: "/vms/1000", RoleID: "CustomerRole", Type: proxmox.ACLGroup, UGID: "customers", Propagate: false},
		{Path: "/vms/1000", RoleID: "PVEVMUser", Type: proxmox.ACLToken, UGID: "customer@pve!cli", Propagate: true},
	}
	for _, e := range entries {
		require.NoError(t, b.c.GrantACL(b.ctx, e))
		require.NoError(t, b.c.GrantACL(b.ctx, e), "granting twice is a no-op")
	}
	got, err := b.c.ACL(b.ctx)
	require.NoError(t, err)
	require.ElementsMatch(t, entries, got)
	require.Equal(t, "@customers", got[0].Principal())

	// The audit-only token sees the list (Sys.Audit on /access) but may not change it.
	seen, err := b.limited.ACL(b.ctx)
	require.NoError(t, err)
	require.Len(t, seen, 3)
	requireClass(t, proxmox.ClassPermission, b.limited.RevokeACL(b.ctx, entries[0]))

	for _, e := range entries {
		require.NoError(t, b.c.RevokeACL(b.ctx, e))
		require.NoError(t, b.c.RevokeACL(b.ctx, e), "revoking what is not there succeeds")
	}
	got, err = b.c.ACL(b.ctx)
	require.NoError(t, err)
	require.Empty(t, got)

	// What the request names must exist, on revoke as on grant.
	for _, tc := range []struct {
		e    proxmox.ACLEntry
		pred func(error) bool
		msg  string
	}{
		{proxmox.ACLEntry{Path: "/vms/1000", RoleID: "PVEVMUser", Type: proxmox.ACLUser, UGID: "gone@pve"}, proxmox.IsUnknownPrincipal, "ACL update failed: user 'gone@pve' does not exist"},
		{proxmox.ACLEntry{Path: "/vms/1000", RoleID: "PVEVMUser", Type: proxmox.ACLGroup, UGID: "gone"}, proxmox.IsUnknownPrincipal, "ACL update failed: group 'gone' does not exist"},
		{proxmox.ACLEntry{Path: "/vms/1000", RoleID: "PVEVMUser", Type: proxmox.ACLToken, UGID: "gone@pve!xy"}, proxmox.IsUnknownPrincipal, "ACL update failed: no such user ('gone@pve')"},
		{proxmox.ACLEntry{Path: "/vms/1000", RoleID: "PVEVMUser", Type: proxmox.ACLToken, UGID: "customer@pve!gone"}, proxmox.IsUnknownPrincipal, "ACL update failed: no such token 'gone' for user 'customer@pve'"},
		{proxmox.ACLEntry{Path: "/vms/1000", RoleID: "GoneRole", Type: proxmox.ACLUser, UGID: "customer@pve"}, proxmox.IsUnknownRole, "ACL update failed: role 'GoneRole' does not exist"},
	} {
		for _, err := range []error{b.c.GrantACL(b.ctx, tc.e), b.c.RevokeACL(b.ctx, tc.e)} {
			requireClass(t, proxmox.ClassInvalid, err)
			require.True(t, tc.pred(err), "%v", err)
			require.Contains(t, err.Error(), tc.msg)
		}
	}
	requireClass(t, proxmox.ClassInvalid, b.c.GrantACL(b.ctx, proxmox.ACLEntry{Path: "/vms/1000", RoleID: "PVEVMUser", Type: "pool", UGID: "x"}))

	// Destroying the VM drops its ACL entries and pool membership (remove_vm_access).
	require.NoError(t, b.c.GrantACL(b.ctx, entries[0]))
	require.NoError(t, b.c.GrantACL(b.ctx, proxmox.ACLEntry{Path: "/vms/1001", RoleID: "PVEVMUser", Type: proxmox.ACLUser, UGID: "customer@pve", Propagate: true}))
	ref, err := b.c.Delete(b.ctx, proxmox.VMRef{Node: "pve1", VMID: 1000}, proxmox.DeleteOptions{})
	b.ok(t, ref, err)
	require.Empty(t, b.sim.ACL("/vms/1000"))
	require.Len(t, b.sim.ACL("/vms/1001"), 1)
	require.Empty(t, b.sim.PoolOf(1000))
}

func TestContractPools(t *testing.T) {
	t.Parallel()
	for _, version := range []string{"8.4.5", "9.2.3", "7.4-3"} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			b := setupCluster(t, accessCluster(version))
			res, err := b.c.ClusterResources(b.ctx, proxmox.ResourceVM)
			require.NoError(t, err)
			pools := map[int]string{}
			for _, r := range res {
				pools[r.VMID] = r.Pool
			}
			require.Equal(t, "cust", pools[1000], "/cluster/resources names a VM's pool")
			require.Empty(t, pools[1001])

			require.NoError(t, b.c.RemoveFromPool(b.ctx, "cust", 1000))
			require.Empty(t, b.sim.PoolOf(1000))
			err = b.c.RemoveFromPool(b.ctx, "cust", 1000)
			require.True(t, proxmox.IsNotFound(err), "%v", err)
			require.Contains(t, err.Error(), "update pools failed: VM 1000 is not a pool member")

			require.NoError(t, b.c.AddToPool(b.ctx, "cust", 1000))
			require.Equal(t, "cust", b.sim.PoolOf(1000))
			requireClass(t, proxmox.ClassAlreadyExists, b.c.AddToPool(b.ctx, "cust", 1000))
			requireClass(t, proxmox.ClassPrecondition, b.c.AddToPool(b.ctx, "other", 1000))

			for _, err := range []error{b.c.AddToPool(b.ctx, "gone", 1001), b.c.RemoveFromPool(b.ctx, "gone", 1001)} {
				requireClass(t, proxmox.ClassInvalid, err)
				require.True(t, proxmox.IsUnknownPool(err), "%v", err)
			}
			requireClass(t, proxmox.ClassPermission, b.limited.RemoveFromPool(b.ctx, "cust", 1000))

			// 8.1+ takes PUT /pools with poolid; before, only PUT /pools/{poolid} exists.
			var eps []string
			for _, r := range b.sim.Requests() {
				if r.Method == "PUT" && r.Status != 403 {
					eps = append(eps, r.Endpoint)
				}
			}
			if version == "7.4-3" {
				require.Contains(t, eps, "PUT /pools/{poolid}")
			} else {
				require.NotContains(t, eps, "PUT /pools/{poolid}")
			}
		})
	}
}

// GET /access/permissions: the token's effective privileges on a path,
// inherited from above; the audit-only token lacks what it was not given;
// a path that is not an ACL path is refused before anything is sent.
func TestContractPermissions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, tc := range []struct {
		name    string
		c       proxmox.Client
		path    string
		has     []string
		hasNot  []string
		invalid bool
	}{
		{"full token on /vms", b.c, "/vms", []string{"VM.Allocate", "VM.Clone", "VM.Config.Disk", "Permissions.Modify"}, nil, false},
		{"full token on a storage", b.c, "/storage/local-lvm", []string{"Datastore.AllocateSpace", "Datastore.Audit"}, nil, false},
		{"audit token on a VM, inherited from /", b.limited, "/vms/1000", []string{"VM.Audit"}, []string{"VM.Allocate", "VM.PowerMgmt"}, false},
		{"audit token on a node", b.limited, "/nodes/pve1", []string{"Sys.Audit"}, []string{"Sys.Modify"}, false},
		{"not an ACL path", b.c, "vms", nil, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := tc.c.Permissions(b.ctx, tc.path)
			if tc.invalid {
				requireClass(t, proxmox.ClassInvalid, err)
				return
			}
			require.NoError(t, err)
			for _, p := range tc.has {
				require.True(t, got[p], "%s on %s", p, tc.path)
			}
			for _, p := range tc.hasNot {
				require.False(t, got[p], "%s on %s", p, tc.path)
			}
		})
	}
}
