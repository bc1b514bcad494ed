package states_test

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

// sentParams returns the parameters of every request sent with one of
// methods to a path ending in suffix.
func (r *rig) sentParams(suffix string, methods ...string) []map[string]string {
	var out []map[string]string
	for _, q := range r.sim.Requests() {
		if slices.Contains(methods, q.Method) && strings.HasSuffix(q.Path, suffix) {
			out = append(out, q.Params)
		}
	}
	return out
}

// configPuts returns the parameters of every PUT/POST …/config sent for vmid.
func (r *rig) configPuts(vmid int) []map[string]string {
	return r.sentParams("/qemu/"+strconv.Itoa(vmid)+"/config", "PUT", "POST")
}

// vm set-hostname renames the VM in PVE (name and description, marker
// kept) while it keeps running, then moves its DNS records: the old name's
// go, the new name's come. A rerun of the rename after a crash (PVE
// already renamed, the step's success not recorded) writes nothing.
func TestSetHostnameRenamesAndMovesDNS(t *testing.T) {
	t.Parallel()
	r := newRig(t, true)
	vm := r.deployed("h1", "small")
	require.ElementsMatch(t, []string{"h1.example.test A 192.0.2.10", "10.2.0.192.in-addr.arpa PTR h1.example.test"}, r.dns.records())
	since := r.clk.Now()
	putsBefore := len(r.configPuts(vm.VMID))

	res, err := r.e.SetHostname(r.ctx, "h1", "renamed.example.test")
	require.NoError(t, err)
	require.Equal(t, string(states.SetHostname), res.VM.Status)
	out := r.run(vm.ID, states.HostnameRenamed, 3, 20*time.Second)
	require.Contains(t, out, "Rename VM")
	st, ok := r.sim.VM(vm.VMID)
	require.True(t, ok)
	require.Equal(t, "renamed.example.test", st.Config["name"])
	require.Equal(t, "pvectl service=h1\nhostname=renamed.example.test", st.Config["description"])
	require.Len(t, r.configPuts(vm.VMID), putsBefore+1)

	// Killed after PVE renamed it, before the success was recorded: the
	// step runs again, finds the name in place and writes nothing.
	cur := r.get(vm.ID)
	require.NoError(t, r.st.VMApplyOutcome(r.ctx, store.Outcome{ID: cur.ID, FromStatus: cur.Status, FromVersion: cur.Version,
		ToStatus: string(states.SetHostname), ClearPending: true, Now: r.clk.Now()}))
	out = r.run(vm.ID, states.Ready, 5, 20*time.Second)
	require.Contains(t, out, "skip (already named renamed.example.test)")
	require.Len(t, r.configPuts(vm.VMID), putsBefore+1, "no second rename")

	require.ElementsMatch(t, []string{"renamed.example.test A 192.0.2.10", "10.2.0.192.in-addr.arpa PTR renamed.example.test"}, r.dns.records())
	got := r.get(vm.ID)
	require.Equal(t, "renamed.example.test", got.Hostname)
	require.False(t, got.DNSDirty)
	st, _ = r.sim.VM(vm.VMID)
	require.Equal(t, "running", st.Status, "the VM keeps running")
	require.Zero(t, r.tasksOf(vm.VMID, "qmstop", since)+r.tasksOf(vm.VMID, "qmshutdown", since)+r.tasksOf(vm.VMID, "qmstart", since))
}

// A backup made before a rename brings the old VM name back when it is
// restored; the product re-apply after the restore renames it again, so PVE
// (and cloud-init at the next boot) keep the record's hostname.
func TestRestoreAfterRenameKeepsTheNewName(t *testing.T) {
	t.Parallel()
	r := newRig(t, true)
	vm := r.deployed("h2", "small")
	volid := r.backupNow(vm)
	_, err := r.e.SetHostname(r.ctx, "h2", "later.example.test")
	require.NoError(t, err)
	r.until(vm.ID, states.Ready, 5)
	st, _ := r.sim.VM(vm.VMID)
	require.Equal(t, "later.example.test", st.Config["name"])

	r.restore(r.get(vm.ID), volid)
	out := r.run(vm.ID, states.Ready, 40, 20*time.Second)
	require.Equal(t, string(states.Ready), r.get(vm.ID).Status, out)
	require.Contains(t, out, "VM name h2.example.test → later.example.test")
	st, _ = r.sim.VM(vm.VMID)
	require.Equal(t, "later.example.test", st.Config["name"])
	require.Equal(t, "pvectl service=h2\nhostname=later.example.test", st.Config["description"])
}
