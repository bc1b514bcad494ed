package engine_test

import (
	"strings"
	"testing"

	"github.com/pvectl/pvectl/engine"
	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

// TestReconcileVMIDs: the findings about which PVE VM a record's VMID is.
// A record whose VMID is a VM carrying another service's marker, or none,
// is a vmid_conflict (never drift, never "ours"); a record whose VM is gone
// is vm_missing; a VM in the range or tagged pvectl that no record holds
// is unknown_vm; an untagged VM outside the range is another tenant's and
// not reported. Nothing is changed in PVE or the store.
func TestReconcileVMIDs(t *testing.T) {
	t.Parallel()
	r := newPowerRig(t)
	add := func(vmid int, cfg map[string]string) {
		t.Helper()
		if cfg == nil {
			cfg = map[string]string{}
		}
		cfg["name"] = "vm" + strings.Repeat("x", vmid%3)
		require.NoError(t, r.sim.AddVM(pvesim.VMSpec{VMID: vmid, Node: "pve1", Config: cfg}))
	}
	add(1000, map[string]string{"description": "pvectl service=other"})
	add(1001, nil)
	add(1002, map[string]string{"description": "pvectl service=good"})
	add(1500, nil)
	add(3000, map[string]string{"tags": "pvectl"})
	add(4000, nil)
	recs := []struct {
		svc  string
		vmid int
	}{{"taken", 1000}, {"replaced", 1001}, {"good", 1002}, {"gone", 1003}}
	for _, rec := range recs {
		r.record(rec.svc, "error_terminate", rec.vmid, "")
	}
	before, err := r.st.VMList(r.ctx, store.VMFilter{})
	require.NoError(t, err)

	rep, err := r.e.Reconcile(r.ctx)
	require.NoError(t, err)
	require.Empty(t, rep.Errors)
	type key struct {
		kind, svc string
		vmid      int
	}
	var got []key
	for _, f := range rep.Findings {
		got = append(got, key{f.Kind, f.ServiceID, f.VMID})
		require.NotEmpty(t, f.Fix, "every finding names its fix: %+v", f)
	}
	require.Equal(t, []key{
		{engine.FindingUnknownVM, "", 1500},
		{engine.FindingUnknownVM, "", 3000},
		{engine.FindingVMIDConflict, "replaced", 1001},
		{engine.FindingVMIDConflict, "taken", 1000},
		{engine.FindingVMMissing, "gone", 1003},
	}, got)
	for _, f := range rep.Findings {
		switch f.ServiceID {
		case "taken":
			require.Contains(t, f.Detail, "marker of service other")
		case "replaced":
			require.Contains(t, f.Detail, "carries no pvectl marker")
		}
	}
	require.Equal(t, 4, rep.Records)

	// Changed nothing: every VM is still there, every record as it was.
	for _, vmid := range []int{1000, 1001, 1002, 1500, 3000, 4000} {
		_, ok := r.sim.VM(vmid)
		require.True(t, ok, "VM %d still exists", vmid)
	}
	after, err := r.st.VMList(r.ctx, store.VMFilter{})
	require.NoError(t, err)
	require.Equal(t, before, after)
}
