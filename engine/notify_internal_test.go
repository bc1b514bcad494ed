package engine

import (
	"testing"
	"time"

	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

// Which outcome causes which notification.
func TestEventOf(t *testing.T) {
	t.Parallel()
	vm := func(status string) store.VM {
		return store.VM{ID: 7, ServiceID: "s7", Hostname: "h7.example.com", Product: "small", Status: status}
	}
	out := func(to string) store.Outcome { return store.Outcome{ToStatus: to, Now: time.Unix(1, 0)} }
	restored := vm(string(states.CPStart))
	restored.RestoreVolid = "local:backup/x.vma.zst"
	held := out(string(states.SetIP))
	held.Held, held.LastError = true, "403"
	alreadyHeld := vm(string(states.SetIP))
	alreadyHeld.Held = true
	for _, tc := range []struct {
		name       string
		cur        store.VM
		o          store.Outcome
		want, with string
	}{
		{"deploy done", vm(string(states.Starting)), out(string(states.Ready)), "vm_ready", ""},
		{"change-package done", vm(string(states.CPStart)), out(string(states.Ready)), "vm_changed", "product small"},
		{"restore done", restored, out(string(states.Ready)), "backup_restored", "local:backup/x.vma.zst"},
		{"rename done", vm(string(states.HostnameRenamed)), out(string(states.Ready)), "vm_changed", "hostname h7.example.com"},
		{"unsuspended", vm(string(states.UnsuspendRestored)), out(string(states.Ready)), "vm_unsuspended", ""},
		{"suspended", vm(string(states.SuspendStopped)), out(string(states.Suspended)), "vm_suspended", ""},
		{"terminated", vm(string(states.TerminateDeleted)), out(string(states.Remove)), "vm_terminated", ""},
		{"terminate failed", vm(string(states.TerminateStopped)), out(string(states.ErrorTerminate)), "terminate_failed", ""},
		{"held", vm(string(states.SetIP)), held, "vm_held", "403"},
		{"held again: no second event", alreadyHeld, held, "", ""},
		{"a step in the middle", vm(string(states.SetIP)), out(string(states.Clone)), "", ""},
		{"a power action back to ready", vm(string(states.PowerStart)), out(string(states.Ready)), "", ""},
		{"waiting", vm(string(states.SetIP)), out(string(states.SetIP)), "", ""},
	} {
		ev, detail := eventOf(tc.cur, tc.o)
		require.Equal(t, tc.want, ev, tc.name)
		require.Equal(t, tc.with, detail, tc.name)
	}
}
