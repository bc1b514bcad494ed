package proxmox_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
)

func TestContractVMStatusAndConfig(t *testing.T) {
	t.Parallel()
	b := setup(t)
	st, err := b.c.VMStatus(b.ctx, template)
	require.NoError(t, err)
	require.True(t, st.Template)
	require.True(t, st.Stopped())
	require.Equal(t, "debian-12-template", st.Name)

	cfg, err := b.c.VMConfig(b.ctx, template)
	require.NoError(t, err)
	require.NotEmpty(t, cfg.Digest)
	require.True(t, cfg.Template())
	require.Equal(t, "2", cfg.Values["cores"])
	require.Equal(t, "2048", cfg.Values["memory"])
	size, ok := cfg.DiskSize("scsi0")
	require.True(t, ok)
	require.Equal(t, int64(32<<30), size)

	vm := b.clone(t, 101, "web1")
	st, err = b.c.VMStatus(b.ctx, vm)
	require.NoError(t, err)
	require.False(t, st.Template, "template key must be absent for a normal VM")
	require.Equal(t, "web1", st.Name)

	missing := proxmox.VMRef{Node: "pve1", VMID: 555}
	_, err = b.c.VMStatus(b.ctx, missing)
	requireClass(t, proxmox.ClassNotFound, err)
	require.True(t, proxmox.IsNotFound(err))
	_, err = b.c.VMConfig(b.ctx, missing)
	requireClass(t, proxmox.ClassNotFound, err)

	_, err = b.badAuth.VMConfig(b.ctx, template)
	requireClass(t, proxmox.ClassAuth, err)
}

func TestContractSetConfig(t *testing.T) {
	t.Parallel()
	b := setup(t)
	vm := b.clone(t, 101, "web1")

	// Async POST.
	ref, err := b.c.SetConfig(b.ctx, vm, proxmox.ConfigChange{Set: map[string]string{"cores": "4", "sockets": "1", "memory": "4096", "onboot": "1"}})
	ts := b.ok(t, ref, err)
	require.Equal(t, "qmconfig", ts.Type)
	cfg, err := b.c.VMConfig(b.ctx, vm)
	require.NoError(t, err)
	require.Equal(t, "4", cfg.Values["cores"])
	require.Equal(t, "4096", cfg.Values["memory"])
	require.Equal(t, "1", cfg.Values["onboot"])

	// Sync PUT with the current digest, then delete a key.
	require.NoError(t, b.c.SetConfigSync(b.ctx, vm, proxmox.ConfigChange{Set: map[string]string{"description": "hello"}, Digest: cfg.Digest}))
	require.NoError(t, b.c.SetConfigSync(b.ctx, vm, proxmox.ConfigChange{Delete: []string{"onboot"}}))
	cfg2, err := b.c.VMConfig(b.ctx, vm)
	require.NoError(t, err)
	require.Equal(t, "hello", cfg2.Description())
	_, set := cfg2.Get("onboot")
	require.False(t, set)
	require.NotEqual(t, cfg.Digest, cfg2.Digest)

	// A stale digest: conflict, in PUT and POST.
	err = b.c.SetConfigSync(b.ctx, vm, proxmox.ConfigChange{Set: map[string]string{"description": "x"}, Digest: cfg.Digest})
	requireClass(t, proxmox.ClassConflict, err)
	ref, err = b.c.SetConfig(b.ctx, vm, proxmox.ConfigChange{Set: map[string]string{"cores": "2"}, Digest: cfg.Digest})
	requireClass(t, proxmox.ClassConflict, b.outcome(t, ref, err))

	// A lock left behind by a dead task.
	require.NoError(t, b.sim.LeaveLock(vm.VMID, "backup"))
	_, err = b.c.SetConfig(b.ctx, vm, proxmox.ConfigChange{Set: map[string]string{"cores": "2"}})
	requireClass(t, proxmox.ClassLocked, err)
	require.Contains(t, err.Error(), "VM is locked (backup)")
	err = b.c.SetConfigSync(b.ctx, vm, proxmox.ConfigChange{Set: map[string]string{"cores": "2"}})
	requireClass(t, proxmox.ClassLocked, err)

	// Missing VM, permission, auth, ambiguous 596.
	missing := proxmox.VMRef{Node: "pve1", VMID: 555}
	_, err = b.c.SetConfig(b.ctx, missing, proxmox.ConfigChange{Set: map[string]string{"cores": "2"}})
	requireClass(t, proxmox.ClassNotFound, err)
	err = b.limited.SetConfigSync(b.ctx, template, proxmox.ConfigChange{Set: map[string]string{"description": "x"}})
	requireClass(t, proxmox.ClassPermission, err)
	err = b.badAuth.SetConfigSync(b.ctx, template, proxmox.ConfigChange{Set: map[string]string{"description": "x"}})
	requireClass(t, proxmox.ClassAuth, err)

	vm2 := b.clone(t, 102, "web2")
	b.sim.FailNext(pvesim.FailNext{Endpoint: "PUT /nodes/{node}/qemu/{vmid}/config", Status: 596, AfterApply: true})
	err = b.c.SetConfigSync(b.ctx, vm2, proxmox.ConfigChange{Set: map[string]string{"description": "applied"}})
	requireClass(t, proxmox.ClassTransient, err)
	require.True(t, proxmox.MaybeApplied(err))
	cfg, err = b.c.VMConfig(b.ctx, vm2)
	require.NoError(t, err)
	require.Equal(t, "applied", cfg.Description())
}

func TestContractCloudInit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	vm := b.clone(t, 101, "web1")
	// Real public keys (PVE parses each one), with '+' and '/' to encode.
	keys := []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL6j+kE1W98w6oNjS4+E3DHwbcBtPaDeVZ388oOL31ke admin@example.com",
		"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQCkItwh9VN9jnzhdUcYSE0TfxJh2mcnm2v8XPjvxvO+tPsHgZu+7QDlI1NoEARTqN/UB3jew+ynnPDMXTrfFSoPBPtaSNs6qhmc/Opu1FZU/iKdGPhqZi07+eA/rGmYCO0gk9H4YOK2jFVWDaurCSNP1EKQZo0PjirWXBwNC8e44w== user@host"}
	ci := proxmox.CloudInit{User: "admin", Password: "s3cret pass", SSHKeys: keys,
		IPConfigs:   map[int]proxmox.IPConfig{0: {IPv4: "192.0.2.10/24", GW4: "192.0.2.1", IPv6: "2001:db8::10/64", GW6: "2001:db8::1"}},
		Nameservers: []string{"192.0.2.53", "2001:db8::53"}, SearchDomain: "example.com"}
	require.NoError(t, b.c.SetCloudInit(b.ctx, vm, ci))
	cfg, err := b.c.VMConfig(b.ctx, vm)
	require.NoError(t, err)
	require.Equal(t, keys, cfg.SSHKeys())
	require.Equal(t, "admin", cfg.Values["ciuser"])
	require.Equal(t, "ip=192.0.2.10/24,gw=192.0.2.1,ip6=2001:db8::10/64,gw6=2001:db8::1", cfg.Values["ipconfig0"])
	require.Equal(t, "192.0.2.53 2001:db8::53", cfg.Values["nameserver"])
	require.Equal(t, "example.com", cfg.Values["searchdomain"])
	require.NotContains(t, ci.String(), "s3cret")

	// DHCP.
	require.NoError(t, b.c.SetCloudInit(b.ctx, vm, proxmox.CloudInit{IPConfigs: map[int]proxmox.IPConfig{0: {IPv4: "dhcp", IPv6: "auto"}}}))
	cfg, err = b.c.VMConfig(b.ctx, vm)
	require.NoError(t, err)
	require.Equal(t, "ip=dhcp,ip6=auto", cfg.Values["ipconfig0"])

	requireClass(t, proxmox.ClassNotFound, b.c.SetCloudInit(b.ctx, proxmox.VMRef{Node: "pve1", VMID: 555}, ci))
	requireClass(t, proxmox.ClassPermission, b.limited.SetCloudInit(b.ctx, vm, ci))
}
