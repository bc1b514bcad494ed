package states_test

import (
	"testing"
	"time"

	"github.com/pvectl/pvectl/states"
	"github.com/stretchr/testify/require"
)

// A change-package during a traffic throttle keeps it: the network step
// sets the throttle's rate, not the new product's; once the throttle has
// ended, a change-package sets the product's rate.
func TestChangePackageKeepsTrafficThrottle(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	vm := r.deployed("t1", "small")
	until := r.clk.Now().Add(48 * time.Hour)
	require.NoError(t, r.st.VMSetThrottle(r.ctx, vm.ID, 3, until, r.clk.Now()))

	net0 := func() string {
		t.Helper()
		st, ok := r.sim.VM(vm.VMID)
		require.True(t, ok)
		return st.Config["net0"]
	}
	r.request(r.get(vm.ID), states.ChangePackage, "big")
	out := r.run(vm.ID, states.Ready, 60, 20*time.Second)
	require.Equal(t, string(states.Ready), r.get(vm.ID).Status, out)
	require.Equal(t, float64(3), states.RateOf(net0()), "throttled: %s", net0())

	require.NoError(t, r.st.VMSetThrottle(r.ctx, vm.ID, 3, r.clk.Now(), r.clk.Now())) // ended
	r.request(r.get(vm.ID), states.ChangePackage, "small")
	out = r.run(vm.ID, states.Ready, 60, 20*time.Second)
	require.Equal(t, string(states.Ready), r.get(vm.ID).Status, out)
	want := float64(r.env.Config.Products["small"].Network.RateMBps)
	require.Equal(t, want, states.RateOf(net0()), "the product's rate once the throttle ended: %s", net0())
}

func TestRateOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		net  string
		want float64
	}{
		{"virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1", 0},
		{"virtio=BC:24:11:00:00:01,bridge=vmbr0,rate=2", 2},
		{"virtio=BC:24:11:00:00:01,rate=12.5,bridge=vmbr0", 12.5},
	} {
		require.Equal(t, tc.want, states.RateOf(tc.net), tc.net)
	}
}
