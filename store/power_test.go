package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

// A power refresh records what the listing says for every VM with a VMID,
// as an observation: the version, status and updated_at stay, so a
// request's compare-and-set taken before the refresh still succeeds after
// it. A VM missing from the listing keeps its state and its time; a newer
// observation by a step is not overwritten by an older listing.
func TestVMsObservePower(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	mk := func(svc string, vmid int, power string, seen time.Time) store.VM {
		vm := newVM(t, s, svc)
		if vmid != 0 {
			require.NoError(t, s.VMSetVMID(ctx, vm.ID, vmid, t0))
		}
		if power != "" {
			require.NoError(t, s.VMSetPowerSeen(ctx, vm.ID, power, seen))
		}
		got, err := s.VMGet(ctx, vm.ID)
		require.NoError(t, err)
		return got
	}
	web1 := mk("web1", 101, "running", at(0))                                  // customer shut it down
	web2 := mk("web2", 102, "stopped", at(0))                                  // unchanged
	web3 := mk("web3", 103, "running", at(0))                                  // gone from the cluster
	web4 := mk("web4", 104, "", time.Time{})                                   // never seen
	web5 := mk("web5", 105, "running", at(2*time.Minute+500*time.Millisecond)) // a step saw it after the listing
	web6 := mk("web6", 106, "running", at(time.Hour))                          // seen by a clock that ran ahead
	mk("web7", 0, "", time.Time{})                                             // no VMID: not looked at

	n, err := s.VMsWithVMID(ctx)
	require.NoError(t, err)
	require.Equal(t, 6, n)

	listed := map[int]string{101: "stopped", 102: "stopped", 104: "running", 105: "stopped", 106: "stopped", 999: "running"}
	listedAt, now := at(2*time.Minute), at(2*time.Minute+time.Second)
	obs, err := s.VMsObservePower(ctx, listed, listedAt, now)
	require.NoError(t, err)

	type row struct {
		svc, before, listed string
		recorded, changed   bool
	}
	var got []row
	for _, o := range obs {
		got = append(got, row{o.ServiceID, o.Before, o.Listed, o.Recorded, o.Changed()})
	}
	require.Equal(t, []row{
		{"web1", "running", "stopped", true, true},
		{"web2", "stopped", "stopped", true, false},
		{"web3", "running", "", false, false},
		{"web4", "", "running", true, true},
		{"web5", "running", "stopped", false, false},
		{"web6", "running", "stopped", true, true},
	}, got)

	for _, tc := range []struct {
		before store.VM
		power  string
		seen   time.Time
	}{
		{web1, "stopped", listedAt},
		{web2, "stopped", listedAt},
		{web3, "running", at(0)},
		{web4, "running", listedAt},
		{web5, "running", at(2*time.Minute + 500*time.Millisecond)},
		{web6, "stopped", listedAt},
	} {
		vm, err := s.VMGet(ctx, tc.before.ID)
		require.NoError(t, err)
		require.Equal(t, tc.power, vm.PowerState, vm.ServiceID)
		require.Equal(t, tc.seen, vm.PowerSeenAt, vm.ServiceID)
		require.Equal(t, tc.before.Version, vm.Version, "%s: an observation does not bump the version", vm.ServiceID)
		require.Equal(t, tc.before.Status, vm.Status, vm.ServiceID)
		require.Equal(t, tc.before.UpdatedAt, vm.UpdatedAt, vm.ServiceID)
	}

	// A compare-and-set taken before the refresh still holds.
	require.NoError(t, s.VMSetStatusIf(ctx, web1.ID, web1.Status, web1.Version, "set_ip", at(3*time.Minute)))

	// Nothing listed: nothing written.
	obs, err = s.VMsObservePower(ctx, nil, at(10*time.Minute), at(10*time.Minute))
	require.NoError(t, err)
	require.Len(t, obs, 6)
	for _, o := range obs {
		require.False(t, o.Recorded, o.ServiceID)
	}
}
