package engine

import (
	"context"
	"sort"

	"github.com/pvectl/pvectl/store"
)

// finished is a VM a worker is done with: the node dispatch counted it
// against and the PVE requests its steps sent (proxmox.WithRequestCount).
type finished struct {
	node     string
	requests int
}

// nodeQueue is dispatch's view of one node.
type nodeQueue struct {
	left     []int // its VMs not handed out yet (indexes into vms), statuses spread
	busy     int   // its VMs being worked on
	done     int   // its VMs finished
	requests int   // the PVE requests those sent
}

// workLeft is the node's expected PVE requests still to send: its VMs left
// times the requests per VM its finished VMs sent, counting one request
// for a VM not seen yet (so before any VM of the node finished, its VMs
// left).
func (q *nodeQueue) workLeft() float64 {
	return float64(len(q.left)) * float64(q.requests+1) / float64(q.done+1)
}

// dispatch hands the pass's VMs to its workers, node by node: next is the
// next VM of the node with the most work left (nodeQueue.workLeft), among
// the nodes with fewer than perNode VMs being worked on. A worker has at
// most one PVE request in flight, mostly on its VM's node, and the adapter
// lets only max_requests_per_node requests at a time at one node: a worker
// given one more VM of a node that busy would wait for a slot while
// another node had none to do, and the node with the most work left must
// be served from the start, or it ends the pass alone, at its limit.
//
// Work is counted in requests, not VMs: the status decides the step, and
// one node's VMs may need three requests each while another's wait for a
// heavy slot and send none. Each node's VMs are handed out with each
// status spread evenly over the node's turn (spread), so the VMs a node
// has finished are a fair sample of those it has left. Measured on the
// 1,000-VM benchmark pass (docs/performance.md): ordered by VMs left, one
// node was left alone for the last 0.5–0.9 s of a 9 s pass.
//
// When every node with VMs left is that busy, a VM of the node with the
// most work left goes anyway (its step may not ask PVE at all: DNS, a
// heavy slot to wait for), so a worker never idles for dispatch. VMs not
// placed yet (node "") count as one node that is never busy. Ties between
// nodes go to the VM earlier in the pass.
//
// It returns when every VM was handed out or ctx ended; done receives each
// VM a worker has finished with.
func dispatch(ctx context.Context, vms []store.VM, perNode int, work chan<- store.VM, done <-chan finished) {
	nodes := map[string]*nodeQueue{}
	for i, vm := range vms {
		q := nodes[vm.Node]
		if q == nil {
			q = &nodeQueue{}
			nodes[vm.Node] = q
		}
		q.left = append(q.left, i)
	}
	for _, q := range nodes {
		q.left = spread(vms, q.left)
	}
	// better reports whether node a goes before node b (a nil b: yes).
	better := func(a, b *nodeQueue) bool {
		if b == nil {
			return true
		}
		wa, wb := a.workLeft(), b.workLeft()
		return wa > wb || wa == wb && a.left[0] < b.left[0]
	}
	for left := len(vms); left > 0 && ctx.Err() == nil; {
		var next, any *nodeQueue
		for node, q := range nodes {
			if len(q.left) == 0 {
				continue
			}
			if better(q, any) {
				any = q
			}
			if (node == "" || q.busy < perNode) && better(q, next) {
				next = q
			}
		}
		if next == nil {
			next = any
		}
		vm := vms[next.left[0]]
		select {
		case work <- vm:
			next.busy++
			next.left = next.left[1:]
			left--
		case f := <-done:
			q := nodes[f.node]
			q.busy--
			q.done++
			q.requests += f.requests
		case <-ctx.Done():
		}
	}
}

// spread orders one node's VMs (indexes into vms, in pass order) so that
// the VMs of each status are spread evenly over it: the k-th of a status's
// n VMs goes at (k+½)/n of the way, in pass order within a status and
// between statuses at the same point.
func spread(vms []store.VM, idx []int) []int {
	count := map[string]int{}
	for _, i := range idx {
		count[vms[i].Status]++
	}
	if len(count) < 2 {
		return idx
	}
	type placed struct {
		i  int
		at float64
	}
	seen := map[string]int{}
	order := make([]placed, len(idx))
	for k, i := range idx {
		st := vms[i].Status
		order[k] = placed{i, (float64(seen[st]) + 0.5) / float64(count[st])}
		seen[st]++
	}
	sort.SliceStable(order, func(a, b int) bool { return order[a].at < order[b].at })
	out := make([]int, len(order))
	for k, p := range order {
		out[k] = p.i
	}
	return out
}
