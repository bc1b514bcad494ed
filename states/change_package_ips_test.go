package states_test

// Change-package scenarios about addresses: an address the new product does
// not use is released only once DNS and the IP set no longer use it, and a
// change to another network re-pools the VM.

import (
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pvectl/pvectl/config"
	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

// While the IP set refresh of the change backs off, the address it takes
// away is still in the VM's IP set (and configured in the guest): a
// background DNS retry of the DNS-dirty VM that runs meanwhile deletes the
// address's records but does not give the address back to the pool.
func TestRemovedAddressStaysAllocatedWhileInTheIPSet(t *testing.T) {
	t.Parallel()
	r := newRig(t, true)
	c1 := r.deployed("c1", "two-ips")
	before, err := r.st.IPsForVM(r.ctx, c1.ID)
	require.NoError(t, err)
	require.Len(t, before, 2)
	gone := before[1].Address

	// c1 is DNS-dirty from some earlier failure; its next retry is due in 30s.
	require.NoError(t, r.st.DNSSetDirty(r.ctx, c1.ID, 1, r.clk.Now().Add(30*time.Second), r.clk.Now()))
	r.request(c1, states.ChangePackage, "small")
	// Reading the IP set fails once (node busy): updateIPs backs off after marking the address releasing.
	r.sim.FailNext(pvesim.FailNext{Endpoint: "GET /nodes/{node}/qemu/{vmid}/firewall/ipset/{name}", VMID: c1.VMID, Count: proxmox.ReadAttempts, Status: 595})
	r.tick(20 * time.Second)
	require.Equal(t, string(states.ChangePackage), r.get(c1.ID).Status)
	r.tick(20 * time.Second) // the DNS retry is due; the step is still backing off

	st, _ := r.sim.VM(c1.VMID)
	inSet := false
	for _, cidr := range st.IPSets[states.IPSetName] {
		if cidr == gone || cidr == gone+"/32" {
			inSet = true
		}
	}
	used, err := r.st.IPsInPool(r.ctx, "v4")
	require.NoError(t, err)
	require.True(t, inSet, "the IP set refresh has not run yet")
	require.True(t, used[gone], "%s is still in c1's %s (and still configured in the guest), so it stays out of the pool", gone, states.IPSetName)
}

// An admin renames a pool in the config (same range). Addresses recorded
// under the old name stay taken: a new VM gets a free one at once instead of
// colliding five times and retrying, and a change-package of the old VM
// still writes the pool's gateway and prefix into cloud-init.
func TestRenamedPoolKeepsItsAddressesAndGateway(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	old := r.deployed("g1", "small")
	before, err := r.st.IPsForVM(r.ctx, old.ID)
	require.NoError(t, err)
	require.Len(t, before, 1)
	require.Equal(t, "v4", before[0].Pool)

	r.cfg.IPPools[0].Name = "public-v4"

	fresh := r.deployed("g2", "small")
	ips, err := r.st.IPsForVM(r.ctx, fresh.ID)
	require.NoError(t, err)
	require.Len(t, ips, 1)
	require.NotEqual(t, before[0].Address, ips[0].Address)
	require.Equal(t, "public-v4", ips[0].Pool)
	require.Zero(t, r.get(fresh.ID).Attempts, "no collisions, no retries")

	r.request(old, states.ChangePackage, "big")
	r.until(old.ID, states.Ready, 60)
	st, ok := r.sim.VM(old.VMID)
	require.True(t, ok)
	require.Equal(t, "ip="+before[0].Address+"/24,gw=192.0.2.1", st.Config["ipconfig0"])
}

// repoolConfig has products on the untagged vmbr0 and on VLANs 10 and 20 of
// vmbr1, each with its pool, all inside 192.0.2.0/24 so the rig's reverse
// zone holds every PTR. v4-vlan20 has a single address.
const repoolConfig = `proxmox: {url: "https://pve.invalid:8006", token_id: "t@pve!t", token_secret: "x"}
vmid_range: {min: 1000, max: 1099}
products:
  vlan10:
    cores: 1
    memory_mb: 1024
    template: {vmid: 9000, node: pve1}
    target_node: pve1
    system_disk: {size_gb: 32, storage: local-lvm}
    network: {bridge: vmbr1, vlan: 10, ipv4: 1}
  vlan10-big:
    cores: 2
    memory_mb: 2048
    template: {vmid: 9000, node: pve1}
    target_node: pve1
    system_disk: {size_gb: 32, storage: local-lvm}
    network: {bridge: vmbr1, vlan: 10, ipv4: 1}
  vlan20:
    cores: 1
    memory_mb: 1024
    template: {vmid: 9000, node: pve1}
    target_node: pve1
    system_disk: {size_gb: 32, storage: local-lvm}
    network: {bridge: vmbr1, vlan: 20, ipv4: 1}
  flat:
    cores: 1
    memory_mb: 1024
    template: {vmid: 9000, node: pve1}
    target_node: pve1
    system_disk: {size_gb: 32, storage: local-lvm}
    network: {bridge: vmbr0, ipv4: 1}
  flat-dhcp:
    cores: 1
    memory_mb: 1024
    template: {vmid: 9000, node: pve1}
    target_node: pve1
    system_disk: {size_gb: 32, storage: local-lvm}
    network: {bridge: vmbr0, dhcp_v4: true}
dns:
  zones:
    - {name: example.test, server: 127.0.0.1:1, key_name: k, secret: c2VjcmV0}
    - {name: 2.0.192.in-addr.arpa, server: 127.0.0.1:1, key_name: k, secret: c2VjcmV0}
ip_pools:
  - {name: v4, nodes: [pve1, pve2], family: 4, bridge: vmbr0, network: 192.0.2.0/26, gateway: 192.0.2.1, first: 192.0.2.10, last: 192.0.2.20}
  - {name: VLAN10_POOL, nodes: [pve1, pve2], family: 4, bridge: vmbr1, vlan: 10, network: 192.0.2.64/26, gateway: 192.0.2.65, first: 192.0.2.70, last: 192.0.2.80}
  - {name: v4-vlan20, nodes: [pve1, pve2], family: 4, bridge: vmbr1, vlan: 20, network: 192.0.2.128/26, gateway: 192.0.2.129, first: 192.0.2.130, last: 192.0.2.130}
`

// useRepoolConfig puts repoolConfig (with the VLAN 10 pool named vlan10Pool)
// in place of the rig's config, keeping its Proxmox endpoint.
func useRepoolConfig(t *testing.T, r *rig, vlan10Pool string) {
	t.Helper()
	cfg, err := config.Parse("pvectl.yaml", []byte(strings.ReplaceAll(repoolConfig, "VLAN10_POOL", vlan10Pool)))
	require.NoError(t, err)
	cfg.Proxmox = r.cfg.Proxmox
	*r.cfg = *cfg // the engine and the steps' Env share this pointer
}

// A change-package to a product on another bridge or VLAN re-pools the VM's
// addresses: it takes new ones from a pool that serves the new network and
// frees the old ones through the usual release path (DNS first, then the
// quarantine). An address on the same network is kept, also when its pool
// was renamed; with no free address in a matching pool nothing changes.
func TestChangePackageRepoolsAddresses(t *testing.T) {
	t.Parallel()
	const old = "192.0.2.70" // the first address of the VLAN 10 pool
	for _, tc := range []struct {
		name       string
		to         string
		renamePool bool // the VLAN 10 pool is renamed in the config before the change
		occupy     bool // another VM holds the only address of v4-vlan20
		failIPSet  bool // the step fails once right after its store write (as a crash there would)
		rerun      bool // the step runs again after it finished (a crash before its transition was stored)
		wantIPs    []string
		wantPool   string
		wantNet    string // net0 options besides the NIC model and MAC
		wantIPCfg  string // "" = not asserted
		wantErr    string // the VM must stay at change_package with this error
	}{{
		name: "untagged bridge: address from the vmbr0 pool", to: "flat",
		wantIPs: []string{"192.0.2.10"}, wantPool: "v4", wantNet: "bridge=vmbr0,firewall=1",
		wantIPCfg: "ip=192.0.2.10/26,gw=192.0.2.1",
	}, {
		name: "other VLAN on the same bridge", to: "vlan20",
		wantIPs: []string{"192.0.2.130"}, wantPool: "v4-vlan20", wantNet: "bridge=vmbr1,firewall=1,tag=20",
		wantIPCfg: "ip=192.0.2.130/26,gw=192.0.2.129",
	}, {
		name: "step fails after the store write, then resumes", to: "flat", failIPSet: true,
		wantIPs: []string{"192.0.2.10"}, wantPool: "v4", wantNet: "bridge=vmbr0,firewall=1",
		wantIPCfg: "ip=192.0.2.10/26,gw=192.0.2.1",
	}, {
		name: "step runs again after it finished", to: "flat", rerun: true,
		wantIPs: []string{"192.0.2.10"}, wantPool: "v4", wantNet: "bridge=vmbr0,firewall=1",
		wantIPCfg: "ip=192.0.2.10/26,gw=192.0.2.1",
	}, {
		name: "same network: address kept", to: "vlan10-big",
		wantIPs: []string{old}, wantPool: "v4-vlan10", wantNet: "bridge=vmbr1,firewall=1,tag=10",
		wantIPCfg: "ip=192.0.2.70/26,gw=192.0.2.65",
	}, {
		// The address is recognised by the renamed pool's range. (Its
		// cloud-init gateway is looked up by the recorded pool name, which
		// this change does not rewrite: not asserted here.)
		name: "same network, pool renamed: address kept", to: "vlan10-big", renamePool: true,
		wantIPs: []string{old}, wantPool: "v4-vlan10", wantNet: "bridge=vmbr1,firewall=1,tag=10",
	}, {
		name: "to DHCP: static address released", to: "flat-dhcp",
		wantIPs: nil, wantNet: "bridge=vmbr0,firewall=1", wantIPCfg: "ip=dhcp",
	}, {
		name: "no free address in a matching pool: nothing changes", to: "vlan20", occupy: true,
		wantIPs: []string{old}, wantPool: "v4-vlan10", wantNet: "bridge=vmbr1,firewall=1,tag=10",
		wantIPCfg: "ip=192.0.2.70/26,gw=192.0.2.65",
		wantErr:   "re-pool 192.0.2.70 (no configured pool for bridge vmbr1 VLAN 20 on node pve1 holds it): no free IPv4 address for product vlan20",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, true)
			useRepoolConfig(t, r, "v4-vlan10")
			if tc.occupy {
				r.deployed("other", "vlan20")
			}
			c1 := r.deployed("c1", "vlan10")
			before, err := r.st.IPsForVM(r.ctx, c1.ID)
			require.NoError(t, err)
			require.Equal(t, []store.IPAllocation{{Address: old, Family: 4, Pool: "v4-vlan10", VMID: c1.ID}}, before)
			require.Contains(t, r.dns.records(), "c1.example.test A "+old)
			if tc.renamePool {
				useRepoolConfig(t, r, "vlan10-renamed")
			}
			sim0, _ := r.sim.VM(c1.VMID)

			r.request(c1, states.ChangePackage, tc.to)
			if tc.failIPSet {
				r.sim.FailNext(pvesim.FailNext{Endpoint: "GET /nodes/{node}/qemu/{vmid}/firewall/ipset/{name}", VMID: c1.VMID, Count: proxmox.ReadAttempts, Status: 595})
				r.tick(20 * time.Second)
				vm := r.get(c1.ID)
				require.Equal(t, string(states.ChangePackage), vm.Status, "the IP set refresh failed after the store write")
				ips, err := r.st.IPsForVM(r.ctx, c1.ID)
				require.NoError(t, err)
				require.Len(t, ips, 1, "the new address is written with the old one's release")
				require.NotEqual(t, old, ips[0].Address)
				// Let the backoff pass.
				for range 10 {
					r.tick(time.Minute)
				}
			}

			if tc.rerun {
				r.until(c1.ID, states.CPUpdateIP, 1)
				require.NoError(t, r.st.VMSetStatus(r.ctx, c1.ID, string(states.ChangePackage), r.clk.Now()))
				out := r.tick(20 * time.Second)
				require.Contains(t, out, "change_package → cp_update_ip  skip (no change)", "the second run finds everything in place")
			}

			var log string
			if tc.wantErr != "" {
				log = r.run(c1.ID, states.CPUpdateIP, 5, 20*time.Second)
			} else {
				r.until(c1.ID, states.Ready, 40)
				for range 10 { // the DNS TTL quarantine and any background retry
					log += r.tick(time.Minute)
				}
			}
			vm := r.get(c1.ID)
			ips, err := r.st.IPsForVM(r.ctx, c1.ID)
			require.NoError(t, err)
			var got []string
			for _, ip := range ips {
				got = append(got, ip.Address)
			}
			require.Equal(t, tc.wantIPs, got, "the VM's addresses\n%s", log)
			for _, ip := range ips {
				require.Equal(t, tc.wantPool, ip.Pool, "recorded pool of %s", ip.Address)
			}

			oldPool, err := r.st.IPsInPool(r.ctx, "v4-vlan10")
			require.NoError(t, err)
			m, ok := r.sim.VM(c1.VMID)
			require.True(t, ok)
			if tc.wantErr != "" {
				require.Equal(t, string(states.ChangePackage), vm.Status)
				require.Contains(t, vm.LastError, tc.wantErr)
				require.Contains(t, vm.LastError, "nothing was changed")
				require.True(t, oldPool[old], "%s stays allocated", old)
				require.Equal(t, sim0.Config, m.Config, "the VM's config is untouched")
				require.Equal(t, sim0.IPSets, m.IPSets, "the VM's IP set is untouched")
				require.Equal(t, "running", m.Status)
				require.Contains(t, r.dns.records(), "c1.example.test A "+old)
				return
			}
			require.Equal(t, string(states.Ready), vm.Status)
			require.False(t, vm.DNSDirty)

			net0 := m.Config["net0"]
			_, rest, _ := strings.Cut(net0, ",")
			require.True(t, sameOptions(tc.wantNet, rest), "net0 = %q, want the options %q", net0, tc.wantNet)
			if tc.wantIPCfg != "" {
				require.Equal(t, tc.wantIPCfg, m.Config["ipconfig0"])
			}
			var set []string
			for _, cidr := range m.IPSets[states.IPSetName] {
				set = append(set, strings.TrimSuffix(cidr, "/32"))
			}
			sort.Strings(set)
			if len(tc.wantIPs) > 0 {
				require.Equal(t, tc.wantIPs, set, "anti-spoofing IP set")
			} else {
				require.Empty(t, set, "anti-spoofing IP set")
			}

			recs := r.dns.records()
			for _, a := range tc.wantIPs {
				require.Contains(t, recs, "c1.example.test A "+a)
				require.Contains(t, recs, reversePTR(a)+" PTR c1.example.test")
			}
			if !slices.Contains(tc.wantIPs, old) {
				require.False(t, oldPool[old], "%s must be back in its pool (log:\n%s)", old, log)
				for _, rec := range recs {
					require.NotContains(t, rec, old, "no record may point at the address given up")
					require.False(t, strings.HasPrefix(rec, reversePTR(old)), "no PTR may remain for %s: %s", old, rec)
				}
				quarantined, err := r.st.IPsReleasedAfter(r.ctx, "v4-vlan10", time.Time{})
				require.NoError(t, err)
				require.Contains(t, quarantined, old, "a freed address enters the quarantine")
			}
		})
	}
}

// sameOptions compares two comma-separated option lists as sets.
func sameOptions(a, b string) bool {
	pa, pb := strings.Split(a, ","), strings.Split(b, ",")
	sort.Strings(pa)
	sort.Strings(pb)
	return slices.Equal(pa, pb)
}

// reversePTR is the PTR owner name of an IPv4 address in in-addr.arpa.
func reversePTR(a string) string {
	o := strings.Split(a, ".")
	return o[3] + "." + o[2] + "." + o[1] + "." + o[0] + ".in-addr.arpa"
}
