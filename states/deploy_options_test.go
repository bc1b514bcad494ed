package states_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/states"
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
