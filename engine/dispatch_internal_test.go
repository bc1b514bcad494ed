package engine

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pvectl/pvectl/store"
)

// dispatchOrder runs dispatch with one worker that keeps the VMs listed in
// hold busy (never reports them done) and returns the order the VMs were
// handed out in.
func dispatchOrder(t *testing.T, vms []store.VM, perNode int, hold ...int64) []int64 {
	t.Helper()
	work := make(chan store.VM)
	done := make(chan string, len(vms))
	var got []int64
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for vm := range work {
			got = append(got, vm.ID)
			held := false
			for _, id := range hold {
				held = held || id == vm.ID
			}
			if !held {
				done <- vm.Node
			}
		}
	}()
	dispatch(context.Background(), vms, perNode, work, done)
	close(work)
	<-finished
	return got
}

// A VM of a node at its limit is passed over for another node's; the node
// with the most VMs left goes first; with only busy nodes' VMs left they
// go anyway; VMs not placed yet are never passed over.
func TestDispatch(t *testing.T) {
	t.Parallel()
	vm := func(id int64, node string) store.VM { return store.VM{ID: id, Node: node} }
	for _, tc := range []struct {
		name    string
		vms     []store.VM
		perNode int
		hold    []int64
		want    []int64
	}{
		{"a busy node's VM waits for another node's", []store.VM{vm(1, "a"), vm(2, "a"), vm(3, "b"), vm(4, "a")}, 1, []int64{1}, []int64{1, 3, 2, 4}},
		{"below the limit: in order", []store.VM{vm(1, "a"), vm(2, "a"), vm(3, "b")}, 2, []int64{1}, []int64{1, 2, 3}},
		{"only busy nodes left: in order", []store.VM{vm(1, "a"), vm(2, "a"), vm(3, "a")}, 1, []int64{1, 2}, []int64{1, 2, 3}},
		{"not placed: never passed over", []store.VM{vm(1, ""), vm(2, ""), vm(3, "b")}, 1, []int64{1}, []int64{1, 2, 3}},
		{"every node busy", []store.VM{vm(1, "a"), vm(2, "b"), vm(3, "a"), vm(4, "c"), vm(5, "b")}, 1, []int64{1, 2}, []int64{1, 2, 4, 3, 5}},
		{"the node with the most left goes first", []store.VM{vm(1, "a"), vm(2, "b"), vm(3, "a"), vm(4, "a"), vm(5, "a")}, 2, nil, []int64{1, 3, 4, 2, 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, dispatchOrder(t, tc.vms, tc.perNode, tc.hold...))
		})
	}
}
