package engine

import (
	"context"

	"github.com/pvectl/pvectl/store"
)

// dispatch hands the pass's VMs to its workers in order, except that a VM
// whose node already has perNode VMs being worked on is passed over for
// the next VM of a node below that. A worker has at most one PVE request in
// flight, mostly on its VM's node, and the adapter lets only
// max_requests_per_node requests at a time at one node: a worker given one
// more VM of a node that busy would wait for a slot while another node had
// none to do. When only VMs of busy nodes are left they go anyway (their
// step may not ask PVE at all: DNS, a heavy slot to wait for), so a worker
// never idles for dispatch. VMs not placed yet (node "") are never passed
// over.
//
// It returns when every VM was handed out or ctx ended; done receives the
// node of each VM a worker has finished with.
func dispatch(ctx context.Context, vms []store.VM, perNode int, work chan<- store.VM, done <-chan string) {
	busy := map[string]int{}
	queue := map[string][]int{} // each node's VMs (indexes into vms), in order
	for i, vm := range vms {
		queue[vm.Node] = append(queue[vm.Node], i)
	}
	for left := len(vms); left > 0 && ctx.Err() == nil; {
		// The first VM of a node below its limit, else the first VM.
		next, first := -1, -1
		for node, q := range queue {
			if len(q) == 0 {
				continue
			}
			if first < 0 || q[0] < first {
				first = q[0]
			}
			if (node == "" || busy[node] < perNode) && (next < 0 || q[0] < next) {
				next = q[0]
			}
		}
		if next < 0 {
			next = first
		}
		vm := vms[next]
		select {
		case work <- vm:
			busy[vm.Node]++
			queue[vm.Node] = queue[vm.Node][1:]
			left--
		case n := <-done:
			busy[n]--
		case <-ctx.Done():
		}
	}
}
