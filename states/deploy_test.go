package states_test

// Deploy scenarios: an order goes from creation to ready on the rig, and
// what pvectl does when PVE, the cluster list or the config get in the way.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

// Deploy options a product can set, each as the VM's owner would see it in
// PVE: a DHCP product gets no anti-spoofing IP set, a product on another node
// is migrated with its disks mapped to the product's storage, a template that
// does not exist holds the VM with PVE's reason.
func TestDeployProductOptions(t *testing.T) {
	t.Parallel()

	t.Run("dhcp product has no IP set", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, false)
		vm := r.deployed("d1", "dhcp")
		ips, err := r.st.IPsForVM(r.ctx, vm.ID)
		require.NoError(t, err)
		require.Empty(t, ips, "DHCP: no address from the pools")
		sets, err := r.pve.IPSets(r.ctx, proxmox.VMRef{Node: vm.Node, VMID: vm.VMID})
		require.NoError(t, err)
		require.Empty(t, sets, "no ipfilter-net0 for a DHCP product")
		m, ok := r.sim.VM(vm.VMID)
		require.True(t, ok)
		require.Equal(t, "ip=dhcp", m.Config["ipconfig0"])
		for _, q := range r.sim.Requests() {
			if q.Method != "GET" {
				require.NotContains(t, q.Endpoint, "/firewall/ipset", "no IP set is written for a DHCP product")
			}
		}
	})

	t.Run("migration maps disks to the product storage", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, false)
		vm := r.deployed("m1", "moved")
		require.Equal(t, "pve2", vm.Node)
		var migrates []map[string]string
		for _, q := range r.sim.Requests() {
			if q.Endpoint == "POST /nodes/{node}/qemu/{vmid}/migrate" {
				migrates = append(migrates, q.Params)
			}
		}
		require.Len(t, migrates, 1, "one migration")
		require.Equal(t, "pve2", migrates[0]["target"])
		require.Equal(t, "local-lvm", migrates[0]["targetstorage"])
		require.NotContains(t, migrates[0], "online", "an offline migration")
		m, ok := r.sim.VM(vm.VMID)
		require.True(t, ok)
		require.Equal(t, "pve2", m.Node)
		require.True(t, strings.HasPrefix(m.Config["scsi0"], "local-lvm:"), m.Config["scsi0"])
	})

	t.Run("missing template holds the VM", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, false)
		vm := r.create("n1", "no-template")
		var log strings.Builder
		for range 6 {
			log.WriteString(r.tick(20 * time.Second))
		}
		vm = r.get(vm.ID)
		require.True(t, vm.Held, log.String())
		require.Equal(t, string(states.SetIP), vm.Status, "held before the clone, VMID and address kept")
		require.Contains(t, vm.LastError, "9999")
		require.Contains(t, vm.LastError, "does not exist")
		_, exists := r.sim.VM(vm.VMID)
		require.False(t, exists, "nothing was created")
		clones := 0
		for _, q := range r.sim.Requests() {
			if q.Endpoint == "POST /nodes/{node}/qemu/{vmid}/clone" {
				clones++
			}
		}
		require.Equal(t, 1, clones, "a held VM is not retried by the ticks")
	})

	t.Run("a disk limit set by hand is removed (0 = unlimited)", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, false)
		vm := r.deployed("l1", "small")
		ref := proxmox.VMRef{Node: vm.Node, VMID: vm.VMID}
		cfg, err := r.pve.VMConfig(r.ctx, ref)
		require.NoError(t, err)
		scsi0, _ := cfg.Get("scsi0")
		require.NoError(t, r.pve.SetConfigSync(r.ctx, ref, proxmox.ConfigChange{Set: map[string]string{"scsi0": scsi0 + ",iops_rd=500,mbps_wr=20"}}))
		require.NoError(t, r.st.VMSetStatus(r.ctx, vm.ID, string(states.SetSystemDiskSize), r.clk.Now()))
		out := r.tick(20 * time.Second)
		require.Contains(t, out, "set_system_disk_size → set_system_disk_bandwidth  success", out)
		m, _ := r.sim.VM(vm.VMID)
		require.NotContains(t, m.Config["scsi0"], "iops_rd")
		require.NotContains(t, m.Config["scsi0"], "mbps_wr")
		// Run again: nothing left to change.
		require.NoError(t, r.st.VMSetStatus(r.ctx, vm.ID, string(states.SetSystemDiskSize), r.clk.Now()))
		out = r.tick(20 * time.Second)
		require.Contains(t, out, "set_system_disk_size → set_system_disk_bandwidth  skip (no change)", out)
	})
}

// A node name that passes the pattern check but is not in the cluster (the
// product's target_node, its template node or the order's --node) is a
// typo: the first deploy step holds the VM naming the cluster's nodes,
// before it reserves anything or sends anything to PVE.
func TestFirstStepHoldsVMOnNodeNotInCluster(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, product, node, want string
	}{
		{"order's --node", "small", "pve9", "target node is not in the cluster: pve9 (cluster nodes: pve1, pve2); fix the product or the VM's node"},
		{"product target_node", "bad-target", "", "target node is not in the cluster: pve7 (cluster nodes: pve1, pve2)"},
		{"product template node", "bad-template", "", "target node is not in the cluster: pve8 is product bad-template's template node (cluster nodes: pve1, pve2); fix template.node in the config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, false)
			bad := r.cfg.Products["small"]
			bad.TargetNode = "pve7"
			r.cfg.Products["bad-target"] = bad
			bad = r.cfg.Products["small"]
			bad.Template.Node = "pve8"
			r.cfg.Products["bad-template"] = bad

			vm, _, err := r.st.VMCreate(r.ctx, store.NewVM{ServiceID: "typo", Hostname: "typo.example.test", Product: tc.product,
				RequestedNode: tc.node, Status: string(states.Creation), Now: r.clk.Now()})
			require.NoError(t, err)
			before := len(r.sim.Requests())
			r.tick(20 * time.Second)
			got := r.get(vm.ID)
			require.True(t, got.Held, "held, not retried")
			require.Equal(t, string(states.Creation), got.Status)
			require.Contains(t, got.LastError, tc.want)
			require.Zero(t, got.VMID, "nothing reserved")
			for _, req := range r.sim.Requests()[before:] {
				require.Equal(t, "GET", req.Method, "only looked: %s %s", req.Method, req.Path)
			}
		})
	}
}

// A burst of orders: every VM of one pass reserves its VMID and addresses in
// that pass, although all the workers start from the same lowest free VMID
// and address. No error, no duplicate, no gap.
func TestReservationBurstInOnePass(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	require.Equal(t, 8, r.cfg.Tasks.ProcessVMs.Concurrency)
	var ids []int64
	for i := range 90 {
		product := "dhcp"
		if i%9 == 0 {
			product = "small" // 10 of them share the 11-address pool
		}
		ids = append(ids, r.create(fmt.Sprintf("b%02d", i), product).ID)
	}
	r.clk.T = r.clk.T.Add(20 * time.Second)
	s, err := r.e.ProcessVMs(r.ctx)
	require.NoError(t, err)
	require.Zero(t, s.Errors, r.out.String())
	var vmids []int
	addrs := map[string]bool{}
	for _, id := range ids {
		vm := r.get(id)
		require.Equal(t, string(states.SetIP), vm.Status, "%s: %s", vm.ServiceID, vm.LastError)
		require.Zero(t, vm.Attempts)
		vmids = append(vmids, vm.VMID)
		ips, err := r.st.IPsForVM(r.ctx, id)
		require.NoError(t, err)
		for _, ip := range ips {
			require.False(t, addrs[ip.Address], "address %s given twice", ip.Address)
			addrs[ip.Address] = true
		}
	}
	slices.Sort(vmids)
	for i, id := range vmids {
		require.Equal(t, 1000+i, id, "VMIDs are the lowest free ones, without gaps: %v", vmids)
	}
	require.Len(t, addrs, 10)
}

// lagClient hides VMIDs from /cluster/resources for a number of calls, the
// way a cluster-wide list can lag behind a config file that was just created.
type lagClient struct {
	proxmox.Client
	mu   sync.Mutex
	hide map[int]int
}

func (c *lagClient) ClusterResources(ctx context.Context, kind proxmox.ResourceType) ([]proxmox.Resource, error) {
	res, err := c.Client.ClusterResources(ctx, kind)
	c.mu.Lock()
	defer c.mu.Unlock()
	out := res[:0]
	for _, r := range res {
		if r.IsVM() && c.hide[r.VMID] > 0 {
			c.hide[r.VMID]--
			continue
		}
		out = append(out, r)
	}
	return out, err
}

// A tick killed between the clone call and storing its task leaves a clone
// the next tick cannot see yet in /cluster/resources. Cloning again, PVE
// answers "config file already exists": the clone step takes that as "look
// again next tick" and waits for the list to catch up, finds its own clone
// by the marker and goes on. The VM is not held and no second VM is made.
func TestCloneWaitsForTheClusterListToCatchUp(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	vm := r.create("k1", "small")
	vm = r.until(vm.ID, states.SetIP, 2)

	// The step's Clone call reached PVE; the process died before the UPID was stored.
	_, err := r.pve.Clone(r.ctx, proxmox.CloneRequest{Source: proxmox.VMRef{Node: "pve1", VMID: 9000}, NewID: vm.VMID,
		Name: vm.Hostname, Description: "pvectl service=" + vm.ServiceID + "\nhostname=" + vm.Hostname, Mode: proxmox.CloneLinked})
	require.NoError(t, err)

	lag := &lagClient{Client: r.pve, hide: map[int]int{vm.VMID: 1}}
	r.env.PVE = lag
	for range 10 {
		r.tick(20 * time.Second)
	}
	vm = r.get(vm.ID)
	require.False(t, vm.Held, "our own clone exists with our marker; the VM is not held (status %s, error %q)", vm.Status, vm.LastError)
	require.NotEqual(t, string(states.SetIP), vm.Status)
}

// A clone worker that dies leaves "lock: clone" on the target VMID, which
// only `qm unlock` clears; pvectl never unlocks by itself. The clone step
// waits while the lock is young and holds the VM for an admin once the lock
// has blocked it for stale_lock_after: within a day of ticks the VM is held.
func TestACloneLockThatNeverClearsHoldsTheVM(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	r.sim.FailTask(pvesim.TaskFault{Type: "qmclone", ExitStatus: "unexpected status", KeepLock: true, Count: 1})
	vm := r.create("l1", "small")
	var last string
	for range 24 * 60 / 5 { // one day of 5-minute ticks
		last = r.tick(5 * time.Minute)
	}
	vm = r.get(vm.ID)
	require.True(t, vm.Held, "a config lock that has not moved for a day holds the VM for an admin: status %s, attempts %d, step_waits %d, last_error %q\nlast tick:\n%s",
		vm.Status, vm.Attempts, vm.StepWaits, vm.LastError, last)
}

// longLogClient puts pad progress lines in front of every task log, as a
// long copy that logs its progress does, and counts the log reads.
type longLogClient struct {
	proxmox.Client
	pad   int
	mu    sync.Mutex
	reads int
}

func (c *longLogClient) TaskLog(ctx context.Context, task proxmox.TaskRef, start, limit int) ([]proxmox.TaskLogLine, error) {
	c.mu.Lock()
	c.reads++
	c.mu.Unlock()
	real, err := c.Client.TaskLog(ctx, task, 0, 100000)
	if err != nil {
		return nil, err
	}
	all := make([]proxmox.TaskLogLine, 0, c.pad+len(real))
	for i := range c.pad {
		all = append(all, proxmox.TaskLogLine{N: i + 1, Text: fmt.Sprintf("drive-scsi0: transferred 1.0 GiB of 32.0 GiB (%d.00%%)", i%100)})
	}
	for _, l := range real {
		all = append(all, proxmox.TaskLogLine{N: len(all) + 1, Text: l.Text})
	}
	if start >= len(all) {
		return nil, nil
	}
	return all[start:min(len(all), start+limit)], nil
}

// The target node goes down just before the migration: PVE takes the
// request and its worker ends with the bare "migration aborted"; the cause
// is the ERROR line at the end of a long log. pvectl reads it there, backs
// off (the node may come back) instead of holding the VM, names the cause,
// and finishes the deploy once the node is back.
func TestMigrationToANodeThatIsDown(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	logs := &longLogClient{Client: r.pve, pad: 2500}
	r.env.PVE = logs
	vm := r.create("m1", "moved")
	vm = r.until(vm.ID, states.SetDNS, 20)
	require.NoError(t, r.sim.SetNodeOffline("pve2", true))

	var log strings.Builder
	for range 6 {
		log.WriteString(r.tick(20 * time.Second))
		if r.get(vm.ID).Attempts > 0 {
			break
		}
	}
	vm = r.get(vm.ID)
	require.Equal(t, string(states.SetDNS), vm.Status, log.String())
	require.False(t, vm.Held, "a node that is down is worth retrying: %s", vm.LastError)
	require.Equal(t, 1, vm.Attempts)
	require.Contains(t, vm.LastError, "migration aborted (Can't connect to destination address using public key)")
	require.Contains(t, vm.LastError, "[transient]")
	m, _ := r.sim.VM(vm.VMID)
	require.Equal(t, "pve1", m.Node, "the VM did not move")

	require.NoError(t, r.sim.SetNodeOffline("pve2", false))
	for range 40 {
		r.tick(time.Minute)
		if r.get(vm.ID).Status == string(states.Ready) {
			break
		}
	}
	vm = r.get(vm.ID)
	require.Equal(t, string(states.Ready), vm.Status, vm.LastError)
	require.Equal(t, "pve2", vm.Node)
	require.Positive(t, logs.reads)
}

// The cloud-init step looks before acting: run again on a VM whose cloud-init
// keys already hold the product's values (an admin's reset-status, a tick
// killed after PVE took the keys), it writes nothing and says so; a key
// changed by hand in PVE is written back.
func TestCloudInitStepSkipsWhenConfigured(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	vm := r.deployed("c1", "small")

	cloudInitWrites := func() int {
		n := 0
		for _, q := range r.sim.Requests() {
			if q.Endpoint == "PUT /nodes/{node}/qemu/{vmid}/config" && q.Params["ipconfig0"] != "" {
				n++
			}
		}
		return n
	}
	require.Equal(t, 1, cloudInitWrites(), "the deploy writes cloud-init once")

	// Back to the step before cloud-init, as `reset-status` would put it.
	require.NoError(t, r.st.VMSetStatus(r.ctx, vm.ID, string(states.SetFirewall), r.clk.Now()))
	out := r.tick(20 * time.Second)
	require.Contains(t, out, "set_firewall → set_cloudinit  skip (no change)")
	require.Equal(t, 1, cloudInitWrites(), "nothing was written")

	// Someone edits the VM's cloud-init by hand: the step puts it back.
	require.NoError(t, r.st.VMSetStatus(r.ctx, vm.ID, string(states.SetFirewall), r.clk.Now()))
	m, ok := r.sim.VM(vm.VMID)
	require.True(t, ok)
	want := m.Config["ipconfig0"]
	require.NoError(t, r.pve.SetConfigSync(r.ctx, proxmox.VMRef{Node: vm.Node, VMID: vm.VMID},
		proxmox.ConfigChange{Set: map[string]string{"ipconfig0": "ip=dhcp"}}))
	require.Equal(t, 2, cloudInitWrites())
	out = r.tick(20 * time.Second)
	require.Contains(t, out, "set_firewall → set_cloudinit  success")
	require.Equal(t, 3, cloudInitWrites())
	m, _ = r.sim.VM(vm.VMID)
	require.Equal(t, want, m.Config["ipconfig0"])
}
