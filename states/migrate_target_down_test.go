package states_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/states"
	"github.com/stretchr/testify/require"
)

// longLogClient puts pad progress lines in front of every task log, as a
// long copy that logs its progress does, and counts the log reads.
type longLogClient struct {
	proxmox.Client
	pad   int
	mu    sync.Mutex
	reads int
}

func (c *longLogClient) TaskLog(ctx context.Context, task proxmox.TaskRef, start, limit int) ([]proxmox.TaskLogLine, error) {
	c.mu.Lock()
	c.reads++
	c.mu.Unlock()
	real, err := c.Client.TaskLog(ctx, task, 0, 100000)
	if err != nil {
		return nil, err
	}
	all := make([]proxmox.TaskLogLine, 0, c.pad+len(real))
	for i := range c.pad {
		all = append(all, proxmox.TaskLogLine{N: i + 1, Text: fmt.Sprintf("drive-scsi0: transferred 1.0 GiB of 32.0 GiB (%d.00%%)", i%100)})
	}
	for _, l := range real {
		all = append(all, proxmox.TaskLogLine{N: len(all) + 1, Text: l.Text})
	}
	if start >= len(all) {
		return nil, nil
	}
	return all[start:min(len(all), start+limit)], nil
}

// The target node goes down just before the migration: PVE takes the
// request and its worker ends with the bare "migration aborted"; the cause
// is the ERROR line at the end of a long log. pvectl reads it there, backs
// off (the node may come back) instead of holding the VM, names the cause,
// and finishes the deploy once the node is back.
func TestMigrationToANodeThatIsDown(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	logs := &longLogClient{Client: r.pve, pad: 2500}
	r.env.PVE = logs
	vm := r.create("m1", "moved")
	vm = r.until(vm.ID, states.SetDNS, 20)
	require.NoError(t, r.sim.SetNodeOffline("pve2", true))

	var log strings.Builder
	for range 6 {
		log.WriteString(r.tick(20 * time.Second))
		if r.get(vm.ID).Attempts > 0 {
			break
		}
	}
	vm = r.get(vm.ID)
	require.Equal(t, string(states.SetDNS), vm.Status, log.String())
	require.False(t, vm.Held, "a node that is down is worth retrying: %s", vm.LastError)
	require.Equal(t, 1, vm.Attempts)
	require.Contains(t, vm.LastError, "migration aborted (Can't connect to destination address using public key)")
	require.Contains(t, vm.LastError, "[transient]")
	m, _ := r.sim.VM(vm.VMID)
	require.Equal(t, "pve1", m.Node, "the VM did not move")

	require.NoError(t, r.sim.SetNodeOffline("pve2", false))
	for range 40 {
		r.tick(time.Minute)
		if r.get(vm.ID).Status == string(states.Ready) {
			break
		}
	}
	vm = r.get(vm.ID)
	require.Equal(t, string(states.Ready), vm.Status, vm.LastError)
	require.Equal(t, "pve2", vm.Node)
	require.Positive(t, logs.reads)
}
