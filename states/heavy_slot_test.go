package states_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
	"github.com/pvectl/pvectl/states"
	"github.com/stretchr/testify/require"
)

// A heavy step takes its node's slot before it looks, and gives it back
// when the look shows there is nothing to submit: a clone that finds the
// VM an earlier attempt made (a kill -9 between the clone's POST and the
// write of its task) does not keep the template node's only slot from the
// next VM's clone in the same pass, and a VM that finds no slot waits
// without asking PVE anything.
func TestHeavySlotGivenBackWhenNothingToSubmit(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	r.cfg.Tasks.ProcessVMs.HeavyPerNode = 1
	r.cfg.Tasks.ProcessVMs.Concurrency = 1 // the VMs in the order they were created
	a := r.create("a", "small")
	b := r.create("b", "small")
	c := r.create("c", "small")
	r.tick(20 * time.Second) // allocation
	a = r.get(a.ID)
	require.Equal(t, string(states.SetIP), a.Status)
	// a's clone was made before a crash; its task was never recorded.
	require.NoError(t, r.sim.AddVM(pvesim.VMSpec{VMID: a.VMID, Node: "pve1",
		Config: map[string]string{"description": "pvectl service=a\nhostname=a.example.test"}}))

	before := len(r.sim.Requests())
	r.tick(20 * time.Second)
	require.Equal(t, string(states.Clone), r.get(a.ID).Status, "a's earlier clone is found: done")
	b = r.get(b.ID)
	require.Equal(t, string(states.SetIP), b.Status)
	require.NotEmpty(t, b.PendingUPID, "b clones in the same pass, on the slot a gave back")
	c = r.get(c.ID)
	require.Empty(t, c.PendingUPID, "c waits: b holds pve1's only slot")
	require.Contains(t, c.WaitReason, "heavy tasks in flight")
	for _, q := range r.sim.Requests()[before:] {
		require.NotContains(t, q.Path+"/", "/qemu/"+strconv.Itoa(c.VMID)+"/", "c asked PVE about its VMID while it waited for a slot: %s %s", q.Method, q.Path)
	}
}
