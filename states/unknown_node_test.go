package states_test

import (
	"testing"
	"time"

	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

// A node name that passes the pattern check but is not in the cluster (the
// product's target_node, its template node or the order's --node) is a
// typo: the first deploy step holds the VM naming the cluster's nodes,
// before it reserves anything or sends anything to PVE.
func TestFirstStepHoldsVMOnNodeNotInCluster(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, product, node, want string
	}{
		{"order's --node", "small", "pve9", "target node is not in the cluster: pve9 (cluster nodes: pve1, pve2); fix the product or the VM's node"},
		{"product target_node", "bad-target", "", "target node is not in the cluster: pve7 (cluster nodes: pve1, pve2)"},
		{"product template node", "bad-template", "", "target node is not in the cluster: pve8 is product bad-template's template node (cluster nodes: pve1, pve2); fix template.node in the config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, false)
			bad := r.cfg.Products["small"]
			bad.TargetNode = "pve7"
			r.cfg.Products["bad-target"] = bad
			bad = r.cfg.Products["small"]
			bad.Template.Node = "pve8"
			r.cfg.Products["bad-template"] = bad

			vm, _, err := r.st.VMCreate(r.ctx, store.NewVM{ServiceID: "typo", Hostname: "typo.example.test", Product: tc.product,
				RequestedNode: tc.node, Status: string(states.Creation), Now: r.clk.Now()})
			require.NoError(t, err)
			before := len(r.sim.Requests())
			r.tick(20 * time.Second)
			got := r.get(vm.ID)
			require.True(t, got.Held, "held, not retried")
			require.Equal(t, string(states.Creation), got.Status)
			require.Contains(t, got.LastError, tc.want)
			require.Zero(t, got.VMID, "nothing reserved")
			for _, req := range r.sim.Requests()[before:] {
				require.Equal(t, "GET", req.Method, "only looked: %s %s", req.Method, req.Path)
			}
		})
	}
}
