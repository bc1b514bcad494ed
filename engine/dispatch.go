package engine

import (
	"context"

	"github.com/pvectl/pvectl/store"
)

// dispatch hands the pass's VMs to its workers in order, except that a VM
// whose node already has perNode VMs being worked on waits while a VM on
// another node can go. A worker has at most one PVE request in flight, for
// the VM it works on (mostly on the VM's node), and the adapter lets only
// max_requests_per_node requests at a time at one node: a worker given a
// VM of a node already that busy would wait for a slot instead of keeping
// another node busy. (VMs not placed yet, node "", count as one node.)
//
// It returns when every VM was handed out or ctx ended; done receives the
// node of each VM a worker has finished with.
func dispatch(ctx context.Context, vms []store.VM, perNode int, work chan<- store.VM, done <-chan string) {
	busy := map[string]int{}
	pending := vms
	for len(pending) > 0 && ctx.Err() == nil {
		next := -1
		for i, vm := range pending {
			if busy[vm.Node] < perNode {
				next = i
				break
			}
		}
		if next < 0 { // every node with VMs left is busy: wait for one
			select {
			case n := <-done:
				busy[n]--
			case <-ctx.Done():
			}
			continue
		}
		vm := pending[next]
		select {
		case work <- vm:
			busy[vm.Node]++
			pending = append(pending[:next:next], pending[next+1:]...)
		case n := <-done:
			busy[n]--
		case <-ctx.Done():
		}
	}
}
