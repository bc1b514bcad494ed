package proxmox_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pvectl/pvectl/providers/proxmox"
)

func TestContractFirewallOptions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	vm := b.clone(t, 101, "web1")

	o, err := b.c.FirewallOptions(b.ctx, vm)
	require.NoError(t, err)
	require.Nil(t, o.Enable)

	require.NoError(t, b.c.SetFirewallOptions(b.ctx, vm, proxmox.FirewallOptions{Enable: proxmox.Bool(true), IPFilter: proxmox.Bool(true),
		MACFilter: proxmox.Bool(true), DHCP: proxmox.Bool(false), PolicyIn: "DROP", PolicyOut: "ACCEPT", LogLevelIn: "nolog"}))
	o, err = b.c.FirewallOptions(b.ctx, vm)
	require.NoError(t, err)
	require.Equal(t, proxmox.Bool(true), o.Enable)
	require.Equal(t, proxmox.Bool(true), o.IPFilter)
	require.Equal(t, proxmox.Bool(false), o.DHCP)
	require.Equal(t, "DROP", o.PolicyIn)
	require.Equal(t, "ACCEPT", o.PolicyOut)

	// enable=0 reaches PVE (go-proxmox drops it).
	require.NoError(t, b.c.SetFirewallOptions(b.ctx, vm, proxmox.FirewallOptions{Enable: proxmox.Bool(false)}))
	o, err = b.c.FirewallOptions(b.ctx, vm)
	require.NoError(t, err)
	require.Equal(t, proxmox.Bool(false), o.Enable)

	// Stale digest: conflict.
	require.NotEmpty(t, o.Digest)
	require.NoError(t, b.c.SetFirewallOptions(b.ctx, vm, proxmox.FirewallOptions{NDP: proxmox.Bool(true)}))
	err = b.c.SetFirewallOptions(b.ctx, vm, proxmox.FirewallOptions{RAdv: proxmox.Bool(true), Digest: o.Digest})
	requireClass(t, proxmox.ClassConflict, err)

	_, err = b.c.FirewallOptions(b.ctx, proxmox.VMRef{Node: "pve1", VMID: 555})
	requireClass(t, proxmox.ClassNotFound, err)
	err = b.limited.SetFirewallOptions(b.ctx, vm, proxmox.FirewallOptions{Enable: proxmox.Bool(true)})
	requireClass(t, proxmox.ClassPermission, err)
}

func TestContractIPSets(t *testing.T) {
	t.Parallel()
	b := setup(t)
	vm := b.clone(t, 101, "web1")
	const set = "ipfilter-net0"

	sets, err := b.c.IPSets(b.ctx, vm)
	require.NoError(t, err)
	require.Empty(t, sets)

	require.NoError(t, b.c.CreateIPSet(b.ctx, vm, set, "pvectl anti-spoofing"))
	sets, err = b.c.IPSets(b.ctx, vm)
	require.NoError(t, err)
	require.Len(t, sets, 1)
	require.Equal(t, set, sets[0].Name)
	require.Equal(t, "pvectl anti-spoofing", sets[0].Comment)
	requireClass(t, proxmox.ClassAlreadyExists, b.c.CreateIPSet(b.ctx, vm, set, ""))

	for _, cidr := range []string{"192.0.2.10", "2001:db8::10", "198.51.100.0/24", "2001:db8:1::/64"} {
		require.NoError(t, b.c.AddIPSetEntry(b.ctx, vm, set, proxmox.IPSetEntry{CIDR: cidr, Comment: "vm ip"}))
	}
	requireClass(t, proxmox.ClassAlreadyExists, b.c.AddIPSetEntry(b.ctx, vm, set, proxmox.IPSetEntry{CIDR: "192.0.2.10"}))
	entries, err := b.c.IPSetEntries(b.ctx, vm, set)
	require.NoError(t, err)
	var cidrs []string
	for _, e := range entries {
		cidrs = append(cidrs, e.CIDR)
	}
	require.ElementsMatch(t, []string{"192.0.2.10", "2001:db8::10", "198.51.100.0/24", "2001:db8:1::/64"}, cidrs)

	require.NoError(t, b.c.RemoveIPSetEntry(b.ctx, vm, set, "198.51.100.0/24"))
	require.NoError(t, b.c.RemoveIPSetEntry(b.ctx, vm, set, "2001:db8:1::/64"))
	require.NoError(t, b.c.RemoveIPSetEntry(b.ctx, vm, set, "2001:db8::10"))
	requireClass(t, proxmox.ClassNotFound, b.c.RemoveIPSetEntry(b.ctx, vm, set, "2001:db8::10"))
	entries, err = b.c.IPSetEntries(b.ctx, vm, set)
	require.NoError(t, err)
	require.Len(t, entries, 1)

	// Not empty without force; then force.
	requireClass(t, proxmox.ClassPrecondition, b.c.DeleteIPSet(b.ctx, vm, set, false))
	require.NoError(t, b.c.DeleteIPSet(b.ctx, vm, set, true))
	requireClass(t, proxmox.ClassNotFound, b.c.DeleteIPSet(b.ctx, vm, set, false))
	_, err = b.c.IPSetEntries(b.ctx, vm, set)
	requireClass(t, proxmox.ClassNotFound, err)
	requireClass(t, proxmox.ClassNotFound, b.c.AddIPSetEntry(b.ctx, vm, set, proxmox.IPSetEntry{CIDR: "192.0.2.10"}))

	// Empty set deletes without force.
	require.NoError(t, b.c.CreateIPSet(b.ctx, vm, "empty", ""))
	require.NoError(t, b.c.DeleteIPSet(b.ctx, vm, "empty", false))

	requireClass(t, proxmox.ClassPermission, b.limited.CreateIPSet(b.ctx, vm, "x", ""))
	requireClass(t, proxmox.ClassAuth, b.badAuth.CreateIPSet(b.ctx, vm, "x", ""))
	_, err = b.badAuth.IPSets(b.ctx, vm)
	requireClass(t, proxmox.ClassAuth, err)
	_, err = b.badAuth.IPSetEntries(b.ctx, vm, set)
	requireClass(t, proxmox.ClassAuth, err)
}
