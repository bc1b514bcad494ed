package states_test

// Admin actions on the rig: `vm retry` of a VM that backs off, and the
// startup safety net that reports PVE VMs carrying pvectl's marker that no
// record knows.

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
	"github.com/pvectl/pvectl/states"
	"github.com/stretchr/testify/require"
)

// qmstartsSince counts the start tasks PVE received for vmid at or after t.
func (r *rig) qmstartsSince(vmid string, t time.Time) int {
	n := 0
	for _, task := range r.sim.Tasks() {
		if task.Type == "qmstart" && task.ID == vmid && !task.Start.Before(t) {
			n++
		}
	}
	return n
}

// A VM at starting whose guest does not come up backs off with "guest not
// running after N ticks". `vm retry` ends the backoff, and the tick after it
// sends the start again (once): the VM does not wait start_wait_ticks for a
// guest nobody started.
func TestVMRetryAtStartingSendsStartAtNextTick(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	vm := r.create("rs1", "small")
	vm = r.until(vm.ID, states.Clone, 20)
	r.sim.SetNeverRunning(vm.VMID, true)
	for range 30 {
		r.tick(20 * time.Second)
		if strings.Contains(r.get(vm.ID).LastError, "guest not running") {
			break
		}
	}
	cur := r.get(vm.ID)
	require.Equal(t, string(states.Starting), cur.Status)
	require.Contains(t, cur.LastError, "guest not running")
	require.Positive(t, cur.Attempts)
	require.True(t, cur.NextAttemptAt.After(r.clk.Now()), "the VM backs off")

	// The admin fixes the guest and ends the backoff early.
	r.sim.SetNeverRunning(vm.VMID, false)
	r.tick(time.Second)
	cur = r.get(vm.ID)
	require.Equal(t, string(states.Starting), cur.Status)
	released := r.clk.Now()
	require.NoError(t, r.st.VMRelease(r.ctx, cur.ID, cur.Status, cur.Version, released))

	out := r.tick(20 * time.Second)
	require.Equal(t, 1, r.qmstartsSince("1000", released), "the tick after vm retry sends the start again\n%s", out)
	out += r.tick(20 * time.Second)
	cur = r.get(vm.ID)
	require.Equal(t, string(states.Ready), cur.Status, "status %s, error %q\n%s", cur.Status, cur.LastError, out)
	require.Equal(t, 1, r.qmstartsSince("1000", released), "exactly one start after the retry")
}

// The look before the start: a guest that is already running after a retry
// is done, with no start sent.
func TestVMRetryAtStartingRunningGuestIsDone(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	vm := r.create("rs2", "small")
	vm = r.until(vm.ID, states.Clone, 20)
	r.sim.SetNeverRunning(vm.VMID, true)
	for range 30 {
		r.tick(20 * time.Second)
		if strings.Contains(r.get(vm.ID).LastError, "guest not running") {
			break
		}
	}
	cur := r.get(vm.ID)
	require.Contains(t, cur.LastError, "guest not running")

	// Someone starts the guest by hand, then the admin retries.
	r.sim.SetNeverRunning(vm.VMID, false)
	_, err := r.pve.Start(r.ctx, proxmox.VMRef{Node: cur.Node, VMID: cur.VMID}, proxmox.StartOptions{})
	require.NoError(t, err)
	r.tick(10 * time.Second)
	cur = r.get(vm.ID)
	released := r.clk.Now()
	require.NoError(t, r.st.VMRelease(r.ctx, cur.ID, cur.Status, cur.Version, released))
	r.tick(20 * time.Second)
	cur = r.get(vm.ID)
	require.Equal(t, string(states.Ready), cur.Status, "error %q", cur.LastError)
	require.Zero(t, r.qmstartsSince("1000", released), "a running guest is not started again")
}

// The startup safety net finds exactly the VMs in the VMID range that carry
// pvectl's marker (or tag) and that no record knows, with the addresses in
// their cloud-init config and IP sets; everything else is left alone.
func TestFindStraysFindsMarkedVMsNoRecordKnows(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	ctx := r.ctx
	known := r.create("known", "small")
	require.NoError(t, r.st.VMSetVMID(ctx, known.ID, 1001, r.clk.Now()))

	vms := []struct {
		vmid int
		conf map[string]string
		set  []string // ipfilter-net0 entries
	}{
		// Lost from the store: static v4 + v6 in cloud-init, one more in the IP set.
		{1000, map[string]string{"description": "pvectl service=lost\nhostname=lost.example.test",
			"ipconfig0": "ip=192.0.2.10/24,gw=192.0.2.1,ip6=2001:db8::10/64,gw6=2001:db8::1"}, []string{"192.0.2.20"}},
		// Its record holds the VMID: not a stray.
		{1001, map[string]string{"description": "pvectl service=known", "ipconfig0": "ip=192.0.2.11/24"}, nil},
		// Only the tag: the marker line was edited away.
		{1002, map[string]string{"tags": "pvectl;web", "ipconfig0": "ip=192.0.2.12/24,gw=192.0.2.1", "ipconfig1": "ip=dhcp"}, nil},
		// Somebody else's VM in the range: no marker, no tag.
		{1003, map[string]string{"description": "customer import", "ipconfig0": "ip=192.0.2.13/24"}, nil},
		// Marked, but outside the VMID range.
		{2000, map[string]string{"description": "pvectl service=old-range", "ipconfig0": "ip=192.0.2.14/24"}, nil},
		// A template made from a pvectl VM runs nothing.
		{1004, map[string]string{"description": "pvectl service=tpl", "template": "1", "ipconfig0": "ip=192.0.2.15/24"}, nil},
	}
	for _, v := range vms {
		require.NoError(t, r.sim.AddVM(pvesim.VMSpec{VMID: v.vmid, Node: "pve1", Config: v.conf}))
		ref := proxmox.VMRef{Node: "pve1", VMID: v.vmid}
		if v.set != nil {
			require.NoError(t, r.pve.CreateIPSet(ctx, ref, states.IPSetName, ""))
			for _, a := range v.set {
				require.NoError(t, r.pve.AddIPSetEntry(ctx, ref, states.IPSetName, proxmox.IPSetEntry{CIDR: a}))
			}
		}
	}

	var warned []string
	s := states.NewStrays(func(w string) { warned = append(warned, w) })
	require.False(t, s.Holds(netip.MustParseAddr("192.0.2.10")), "nothing held before the look")
	require.NoError(t, s.Look(ctx, r.env))
	require.NoError(t, s.Look(ctx, r.env), "a second look is free")
	found := s.VMs
	addrs := func(ss ...string) []netip.Addr {
		var out []netip.Addr
		for _, s := range ss {
			out = append(out, netip.MustParseAddr(s))
		}
		return out
	}
	require.Equal(t, []states.Stray{
		{VMID: 1000, Node: "pve1", ServiceID: "lost", Addresses: addrs("192.0.2.10", "192.0.2.20", "2001:db8::10")},
		{VMID: 1002, Node: "pve1", Addresses: addrs("192.0.2.12")},
	}, found)

	for _, tc := range []struct {
		addr string
		held bool
	}{{"192.0.2.10", true}, {"192.0.2.20", true}, {"2001:db8::10", true}, {"192.0.2.12", true},
		{"192.0.2.11", false}, {"192.0.2.13", false}, {"192.0.2.14", false}, {"192.0.2.15", false}} {
		require.Equal(t, tc.held, s.Holds(netip.MustParseAddr(tc.addr)), tc.addr)
	}
	require.Len(t, warned, 1, "one warning line")
	require.Equal(t, s.Warning(), warned[0])
	require.Contains(t, s.Warning(), "2 PVE VM(s) carry pvectl's marker but no record knows them: "+
		"VMID 1000 on pve1 (service=lost, addresses: 192.0.2.10, 192.0.2.20, 2001:db8::10); VMID 1002 on pve1 (service=?, addresses: 192.0.2.12)")
	require.Empty(t, states.NewStrays(nil).Warning(), "nothing found, nothing said")
}
