package engine

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pvectl/pvectl/store"
)

// dispatchOrder runs dispatch with one worker that keeps the VMs listed in
// hold busy (never reports them done), reports every other VM as having
// sent requests[ID] PVE requests (1 when not listed), and returns the
// order the VMs were handed out in. done is unbuffered, so dispatch has
// counted a finished VM before it hands out the next: the order is
// deterministic.
func dispatchOrder(t *testing.T, vms []store.VM, perNode int, requests map[int64]int, hold ...int64) []int64 {
	t.Helper()
	work := make(chan store.VM)
	done := make(chan finished)
	var got []int64
	over := make(chan struct{})
	go func() {
		defer close(over)
		for vm := range work {
			got = append(got, vm.ID)
			held := false
			for _, id := range hold {
				held = held || id == vm.ID
			}
			if !held {
				n, ok := requests[vm.ID]
				if !ok {
					n = 1
				}
				done <- finished{node: vm.Node, requests: n}
			}
		}
	}()
	dispatch(context.Background(), vms, perNode, work, done)
	go func() { // the last VM's report comes after dispatch returned
		for range done {
		}
	}()
	close(work)
	<-over
	close(done)
	return got
}

// A VM of a node at its limit is passed over for another node's; the node
// with the most work left goes first, work counted in the requests its
// finished VMs sent; with only busy nodes' VMs left they go anyway; VMs
// not placed yet are never passed over.
func TestDispatch(t *testing.T) {
	t.Parallel()
	vm := func(id int64, node string) store.VM { return store.VM{ID: id, Node: node} }
	for _, tc := range []struct {
		name     string
		vms      []store.VM
		perNode  int
		requests map[int64]int
		hold     []int64
		want     []int64
	}{
		{"a busy node's VM waits for another node's", []store.VM{vm(1, "a"), vm(2, "a"), vm(3, "b"), vm(4, "a")}, 1, nil, []int64{1}, []int64{1, 3, 2, 4}},
		{"below the limit: in order", []store.VM{vm(1, "a"), vm(2, "a"), vm(3, "b")}, 2, nil, []int64{1}, []int64{1, 2, 3}},
		{"only busy nodes left: in order", []store.VM{vm(1, "a"), vm(2, "a"), vm(3, "a")}, 1, nil, []int64{1, 2}, []int64{1, 2, 3}},
		{"not placed: never passed over", []store.VM{vm(1, ""), vm(2, ""), vm(3, "b")}, 1, nil, []int64{1}, []int64{1, 2, 3}},
		{"every node busy", []store.VM{vm(1, "a"), vm(2, "b"), vm(3, "a"), vm(4, "c"), vm(5, "b")}, 1, nil, []int64{1, 2}, []int64{1, 2, 4, 3, 5}},
		{"the node with the most left goes first", []store.VM{vm(1, "a"), vm(2, "b"), vm(3, "a"), vm(4, "a"), vm(5, "a")}, 2, nil, nil, []int64{1, 3, 4, 2, 5}},
		// By VMs left: 1 2 3 4 5 6 7. a's first VM sent nothing and b's
		// first three: b's VMs are the work left.
		{"work is counted in requests",
			[]store.VM{vm(1, "a"), vm(2, "b"), vm(3, "a"), vm(4, "b"), vm(5, "a"), vm(6, "b"), vm(7, "a")}, 10,
			map[int64]int{1: 0, 3: 0, 5: 0, 7: 0, 2: 3, 4: 3, 6: 3}, nil, []int64{1, 2, 4, 6, 3, 5, 7}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, dispatchOrder(t, tc.vms, tc.perNode, tc.requests, tc.hold...))
		})
	}
}

// A node's VMs go with each status spread over its turn, in pass order
// within a status; a node of one status keeps pass order.
func TestSpread(t *testing.T) {
	t.Parallel()
	vms := func(statuses ...string) []store.VM {
		var out []store.VM
		for i, s := range statuses {
			out = append(out, store.VM{ID: int64(i), Status: s})
		}
		return out
	}
	for _, tc := range []struct {
		name string
		vms  []store.VM
		want []int
	}{
		{"one status", vms("x", "x", "x"), []int{0, 1, 2}},
		{"two statuses, one after the other", vms("a", "a", "a", "a", "b", "b"), []int{0, 4, 1, 2, 5, 3}},
		{"three statuses", vms("a", "a", "b", "c", "c", "c"), []int{3, 0, 2, 4, 1, 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			idx := make([]int, len(tc.vms))
			for i := range idx {
				idx[i] = i
			}
			require.Equal(t, tc.want, spread(tc.vms, idx))
		})
	}
}
