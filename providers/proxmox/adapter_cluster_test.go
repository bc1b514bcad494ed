package proxmox_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
)

func TestContractClusterResources(t *testing.T) {
	t.Parallel()
	b := setup(t)
	all, err := b.c.ClusterResources(b.ctx, proxmox.ResourceAll)
	require.NoError(t, err)
	types := map[string]int{}
	for _, r := range all {
		types[r.Type]++
	}
	require.Equal(t, 2, types["node"])
	require.Equal(t, 1, types["qemu"])
	require.Equal(t, 4, types["storage"])

	vms, err := b.c.ClusterResources(b.ctx, proxmox.ResourceVM)
	require.NoError(t, err)
	require.Len(t, vms, 1)
	v := vms[0]
	require.True(t, v.IsVM())
	require.Equal(t, "qemu/9000", v.ID)
	require.Equal(t, templateID, v.VMID)
	require.Equal(t, "pve1", v.Node)
	require.Equal(t, "debian-12-template", v.Name)
	require.True(t, v.Template)

	nodes, err := b.c.ClusterResources(b.ctx, proxmox.ResourceNode)
	require.NoError(t, err)
	require.Len(t, nodes, 2)
	for _, n := range nodes {
		require.Equal(t, "node", n.Type)
		require.Equal(t, "online", n.Status)
		require.Equal(t, int64(64<<30), n.MaxMem)
	}

	st, err := b.c.ClusterResources(b.ctx, proxmox.ResourceStorage)
	require.NoError(t, err)
	require.Len(t, st, 4)
	for _, s := range st {
		require.Equal(t, "storage", s.Type)
		require.NotEmpty(t, s.Storage)
		require.NotEmpty(t, s.Content)
	}

	// A clone shows lock, tags and name while and after it runs.
	ref, err := b.c.Clone(b.ctx, proxmox.CloneRequest{Source: template, NewID: 101, Name: "web1", Mode: proxmox.CloneLinked})
	require.NoError(t, err)
	vms, err = b.c.ClusterResources(b.ctx, proxmox.ResourceVM)
	require.NoError(t, err)
	var locked bool
	for _, r := range vms {
		if r.VMID == 101 {
			locked = r.Lock == "clone"
		}
	}
	require.True(t, locked, "new VM carries lock clone while the clone runs: %+v", vms)
	b.ok(t, ref, nil)
	b.must(t)(b.c.SetConfig(b.ctx, proxmox.VMRef{Node: "pve1", VMID: 101}, proxmox.ConfigChange{Set: map[string]string{"tags": "pvectl;svc-42"}}))
	vms, err = b.c.ClusterResources(b.ctx, proxmox.ResourceVM)
	require.NoError(t, err)
	for _, r := range vms {
		if r.VMID == 101 {
			require.Equal(t, "web1", r.Name)
			require.Empty(t, r.Lock)
			require.False(t, r.Template)
			require.True(t, r.HasTag("pvectl") && r.HasTag("svc-42"), "%+v", r)
		}
	}

	_, err = b.badAuth.ClusterResources(b.ctx, proxmox.ResourceVM)
	requireClass(t, proxmox.ClassAuth, err)

	// Reads are retried (retry_test.go): fail every attempt.
	b.sim.FailNext(pvesim.FailNext{Endpoint: "GET /cluster/resources", Count: proxmox.ReadAttempts, Status: 503})
	_, err = b.c.ClusterResources(b.ctx, proxmox.ResourceVM)
	requireClass(t, proxmox.ClassTransient, err)
}

func TestContractNodeStatus(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ns, err := b.c.NodeStatus(b.ctx, "pve1")
	require.NoError(t, err)
	require.Equal(t, "pve1", ns.Node)
	require.Equal(t, int64(64<<30), ns.MemoryTotal)
	require.Positive(t, ns.MemoryFree)
	require.Equal(t, ns.MemoryTotal, ns.MemoryUsed+ns.MemoryFree)
	require.Equal(t, 16, ns.CPUs)

	require.NoError(t, b.sim.SetNodeOffline("pve2", true))
	_, err = b.c.NodeStatus(b.ctx, "pve2")
	requireClass(t, proxmox.ClassTransient, err)
	var pe *proxmox.Error
	require.ErrorAs(t, err, &pe)
	require.Equal(t, 595, pe.HTTPStatus)

	_, err = b.c.NodeStatus(b.ctx, "nosuchnode")
	requireClass(t, proxmox.ClassInvalid, err)

	_, err = b.badAuth.NodeStatus(b.ctx, "pve1")
	requireClass(t, proxmox.ClassAuth, err)
}

func TestContractStorageStatus(t *testing.T) {
	t.Parallel()
	cl := pvesim.DefaultCluster()
	cl.Nodes[1].Storages = append(cl.Nodes[1].Storages,
		pvesim.StorageSpec{Name: "nfs-off", Type: "nfs", Content: []string{"backup"}, Shared: true, Offline: true},
		pvesim.StorageSpec{Name: "old", Type: "dir", Content: []string{"backup"}, Disabled: true})
	b := setupCluster(t, cl)

	st, err := b.c.StorageStatus(b.ctx, "pve1", "local-lvm")
	require.NoError(t, err)
	require.Equal(t, "lvmthin", st.Type)
	require.True(t, st.Enabled)
	require.True(t, st.Active)
	require.True(t, st.HasContent("images"))
	require.Equal(t, int64(500<<30), st.Total)
	require.Equal(t, st.Total, st.Used+st.Avail)

	_, err = b.c.StorageStatus(b.ctx, "pve1", "nosuch")
	requireClass(t, proxmox.ClassStorage, err)

	// PVE reports an offline or disabled storage's status (active/enabled
	// 0); using it is what fails.
	st, err = b.c.StorageStatus(b.ctx, "pve2", "nfs-off")
	require.NoError(t, err)
	require.False(t, st.Active)
	st, err = b.c.StorageStatus(b.ctx, "pve2", "old")
	require.NoError(t, err)
	require.False(t, st.Enabled)

	// A VM on pve2: local storage cannot be cloned across nodes, so clone
	// on pve1 and migrate.
	_, err = b.c.Clone(b.ctx, proxmox.CloneRequest{Source: template, NewID: 102, Target: "pve2", Mode: proxmox.CloneFull, Storage: "local-lvm"})
	requireClass(t, proxmox.ClassInvalid, err)
	require.Contains(t, err.Error(), "VM uses local storage")
	ref, err := b.c.Clone(b.ctx, proxmox.CloneRequest{Source: template, NewID: 102, Mode: proxmox.CloneFull})
	b.ok(t, ref, err)
	b.must(t)(b.c.Migrate(b.ctx, proxmox.MigrateRequest{VM: proxmox.VMRef{Node: "pve1", VMID: 102}, Target: "pve2", TargetStorage: "local-lvm"}))
	vm := proxmox.VMRef{Node: "pve2", VMID: 102}
	ref, err = b.c.Backup(b.ctx, proxmox.BackupRequest{VM: vm, Storage: "nfs-off"})
	requireClass(t, proxmox.ClassStorageOffline, b.outcome(t, ref, err))
	ref, err = b.c.Backup(b.ctx, proxmox.BackupRequest{VM: vm, Storage: "old"})
	requireClass(t, proxmox.ClassStorage, b.outcome(t, ref, err))
	_, err = b.c.StorageContent(b.ctx, "pve2", "nfs-off", proxmox.ContentFilter{})
	requireClass(t, proxmox.ClassStorageOffline, err)
}

func TestContractVersion(t *testing.T) {
	t.Parallel()
	b := setup(t)
	v, err := b.c.Version(b.ctx)
	require.NoError(t, err)
	require.Equal(t, "8.4.5", v)
	_, err = b.badAuth.Version(b.ctx)
	requireClass(t, proxmox.ClassAuth, err)
}

func TestContractNodeBridges(t *testing.T) {
	t.Parallel()
	b := setup(t)
	br, err := b.c.NodeBridges(b.ctx, "pve1")
	require.NoError(t, err)
	require.Equal(t, []string{"vmbr0", "vmbr1"}, br)
	_, err = b.c.NodeBridges(b.ctx, "nosuchnode")
	requireClass(t, proxmox.ClassInvalid, err)
	_, err = b.badAuth.NodeBridges(b.ctx, "pve1")
	requireClass(t, proxmox.ClassAuth, err)
}
