package engine

import (
	"context"

	"github.com/pvectl/pvectl/store"
)

// dispatch hands the pass's VMs to its workers, node by node: next is the
// first VM of the node with the most VMs left, among the nodes with fewer
// than perNode VMs being worked on. A worker has at most one PVE request in
// flight, mostly on its VM's node, and the adapter lets only
// max_requests_per_node requests at a time at one node: a worker given one
// more VM of a node that busy would wait for a slot while another node had
// none to do, and a node served only when the others have nothing left
// would end the pass alone, at its limit. When every node with VMs left is
// that busy, the VM of the node with the most left goes anyway (its step
// may not ask PVE at all: DNS, a heavy slot to wait for), so a worker never
// idles for dispatch. VMs not placed yet (node "") count as one node that
// is never busy. Within a node, VMs go in pass order; ties between nodes go
// to the VM earlier in the pass.
//
// It returns when every VM was handed out or ctx ended; done receives the
// node of each VM a worker has finished with.
func dispatch(ctx context.Context, vms []store.VM, perNode int, work chan<- store.VM, done <-chan string) {
	busy := map[string]int{}
	queue := map[string][]int{} // each node's VMs (indexes into vms), in order
	for i, vm := range vms {
		queue[vm.Node] = append(queue[vm.Node], i)
	}
	// better reports whether node a's queue qa goes before b's qb.
	better := func(qa, qb []int) bool {
		return len(qa) > len(qb) || len(qa) == len(qb) && qa[0] < qb[0]
	}
	for left := len(vms); left > 0 && ctx.Err() == nil; {
		var next, any []int
		for node, q := range queue {
			if len(q) == 0 {
				continue
			}
			if any == nil || better(q, any) {
				any = q
			}
			if (node == "" || busy[node] < perNode) && (next == nil || better(q, next)) {
				next = q
			}
		}
		if next == nil {
			next = any
		}
		vm := vms[next[0]]
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
