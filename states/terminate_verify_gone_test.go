package states_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/states"
	"github.com/stretchr/testify/require"
)

// ghostClient keeps a deleted VM in /cluster/resources for a number of calls
// (forever when the count is negative), the way the cluster-wide list lags
// behind a destroy or a node's pvestatd is stuck.
type ghostClient struct {
	proxmox.Client
	mu    sync.Mutex
	vmid  int
	left  int
	ghost *proxmox.Resource
	shown int // calls that returned the ghost
}

func (c *ghostClient) ClusterResources(ctx context.Context, kind proxmox.ResourceType) ([]proxmox.Resource, error) {
	res, err := c.Client.ClusterResources(ctx, kind)
	if err != nil {
		return res, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range res {
		if r.IsVM() && r.VMID == c.vmid {
			rr := r
			c.ghost = &rr
			return res, nil
		}
	}
	if c.ghost != nil && c.left != 0 {
		c.left--
		c.shown++
		res = append(res, *c.ghost)
	}
	return res, nil
}

// The terminate releases a VM's addresses and VMID only once PVE no longer
// lists the VM: a delete task that ended OK is not enough. A list that
// catches up within a few ticks ends in remove; a VM that stays listed ends
// in error_terminate with its addresses still allocated.
func TestTerminateVerifiesTheVMIsGone(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		stale  int // /cluster/resources calls that still list the VM
		want   states.State
		keepIP bool
	}{
		{"list catches up", 2, states.Remove, false},
		{"VM stays listed", -1, states.ErrorTerminate, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, false)
			vm := r.deployed("g1", "small")
			ips, err := r.st.IPsForVM(r.ctx, vm.ID)
			require.NoError(t, err)
			require.Len(t, ips, 1)

			ghost := &ghostClient{Client: r.pve, vmid: vm.VMID, left: tc.stale}
			r.env.PVE = ghost
			r.request(vm, states.Terminate, "")

			var log strings.Builder
			for range 20 {
				log.WriteString(r.tick(time.Minute))
				cur := r.get(vm.ID)
				if cur.Status == string(tc.want) {
					break
				}
				if cur.Status == string(states.Remove) || cur.Status == string(states.ErrorTerminate) {
					t.Fatalf("ended in %s, want %s\n%s", cur.Status, tc.want, log.String())
				}
				// Until remove, the record holds its addresses, also once
				// the delete went through but PVE still lists the VM.
				left, err := r.st.IPsForVM(r.ctx, vm.ID)
				require.NoError(t, err)
				require.Len(t, left, 1, "addresses released before remove (status %s)", cur.Status)
			}
			cur := r.get(vm.ID)
			require.Equal(t, string(tc.want), cur.Status, log.String())
			_, inPVE := r.sim.VM(vm.VMID)
			require.False(t, inPVE, "the delete itself went through")
			require.Contains(t, log.String(), "waiting (delete finished; waiting for the VM to leave /cluster/resources)")
			require.Positive(t, ghost.shown)

			left, err := r.st.IPsForVM(r.ctx, vm.ID)
			require.NoError(t, err)
			if tc.keepIP {
				require.Len(t, left, 1, "error_terminate keeps the addresses")
				require.Equal(t, ips[0].Address, left[0].Address)
				require.Contains(t, cur.LastError, "is still in /cluster/resources after 5 ticks")
				require.Equal(t, vm.VMID, cur.VMID)
			} else {
				require.Empty(t, left)
				require.Zero(t, cur.VMID)
			}
		})
	}
}
