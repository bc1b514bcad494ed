package engine

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pvectl/pvectl/store"
)

// Workers are given VMs in order, except that no node ever has more than
// perNode VMs worked on at once while VMs of other nodes wait; every VM is
// handed out exactly once.
func TestDispatchKeepsNodesUnderTheirLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		nodes   []string // the VMs' nodes, in pass order
		workers int
		perNode int
	}{
		{"one busy node among others", []string{"a", "a", "a", "a", "a", "a", "b", "c", "a", "b", "", ""}, 4, 2},
		{"a single node", []string{"a", "a", "a", "a", "a"}, 3, 1},
		{"limit above the workers", []string{"a", "b", "a", "b"}, 2, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var vms []store.VM
			for i, n := range tc.nodes {
				vms = append(vms, store.VM{ID: int64(i + 1), Node: n})
			}
			work := make(chan store.VM)
			done := make(chan string, tc.workers)
			var mu sync.Mutex
			busy, peak, seen := map[string]int{}, map[string]int{}, map[int64]int{}
			release := make(chan struct{})
			var wg sync.WaitGroup
			for range tc.workers {
				wg.Go(func() {
					for vm := range work {
						mu.Lock()
						busy[vm.Node]++
						peak[vm.Node] = max(peak[vm.Node], busy[vm.Node])
						seen[vm.ID]++
						mu.Unlock()
						<-release // hold the VM until the test lets one go
						mu.Lock()
						busy[vm.Node]--
						mu.Unlock()
						done <- vm.Node
					}
				})
			}
			go func() {
				for range tc.nodes {
					release <- struct{}{}
				}
			}()
			dispatch(context.Background(), vms, tc.perNode, work, done)
			close(work)
			wg.Wait()
			for n, p := range peak {
				require.LessOrEqual(t, p, tc.perNode, "node %q had %d VMs worked on at once", n, p)
			}
			require.Len(t, seen, len(vms))
			for id, c := range seen {
				require.Equal(t, 1, c, "VM %d handed out %d times", id, c)
			}
		})
	}
}

// A VM of a busy node waits, but a VM of another node behind it goes
// first; the pass order is kept otherwise.
func TestDispatchOrder(t *testing.T) {
	t.Parallel()
	vms := []store.VM{{ID: 1, Node: "a"}, {ID: 2, Node: "a"}, {ID: 3, Node: "b"}, {ID: 4, Node: "a"}}
	work := make(chan store.VM)
	done := make(chan string, 1)
	var got []int64
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for vm := range work { // one worker; VM 1 stays busy until VM 3 was handed out
			got = append(got, vm.ID)
			if vm.ID != 1 {
				done <- vm.Node
			}
			if vm.ID == 3 {
				done <- "a" // VM 1 finished
			}
		}
	}()
	dispatch(context.Background(), vms, 1, work, done)
	close(work)
	<-finished
	require.Equal(t, []int64{1, 3, 2, 4}, got)
}
