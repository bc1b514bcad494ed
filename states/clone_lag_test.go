package states_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/states"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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

// Regression (found in review): the process is killed between Clone() returning and
// VMSetPendingTask (the window that rule 2 is about). The next tick looks
// only at /cluster/resources. If the new VMID is not listed yet, it clones
// again. PVE refuses with "unable to create VM N: config file already
// exists", which is ClassAlreadyExists (not retryable). cloneTemplate does
// not look again, as the errors.go comment on that class asks. It holds the
// VM. No duplicate VM is made, but an admin is woken for a clone that
// succeeded. cloneTemplate should treat AlreadyExists as "look again"
// (GET config on the VMID directly, check the marker).
func TestCloneAlreadyExistsAfterCrashIsNotHeld(t *testing.T) {
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
	t.Logf("status %s, held %v, last error %q", vm.Status, vm.Held, vm.LastError)
	assert.False(t, vm.Held, "our own clone exists with our marker; the VM must not be held")
	assert.NotEqual(t, string(states.SetIP), vm.Status)
}
