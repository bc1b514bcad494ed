package proxmox_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
)

func TestContractTaskStatusAndLog(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ref, err := b.c.Clone(b.ctx, proxmox.CloneRequest{Source: template, NewID: 101, Mode: proxmox.CloneLinked})
	require.NoError(t, err)
	st, err := b.c.TaskStatus(b.ctx, ref)
	require.NoError(t, err)
	require.True(t, st.Running)
	require.Empty(t, st.ExitStatus)
	require.NoError(t, st.Err())
	require.Equal(t, "qmclone", st.Type)
	require.Equal(t, "9000", st.ID)
	require.Equal(t, pvesim.DefaultTokenID, st.User)
	require.Equal(t, pvesim.DefaultStart.Unix(), st.StartTime.Unix())
	b.ok(t, ref, nil)

	lines, err := b.c.TaskLog(b.ctx, ref, 0, 0)
	require.NoError(t, err)
	require.NotEmpty(t, lines)
	require.Equal(t, 1, lines[0].N)
	require.Equal(t, "TASK OK", lines[len(lines)-1].Text)
	tail, err := b.c.TaskLog(b.ctx, ref, len(lines)-1, 1)
	require.NoError(t, err)
	require.Equal(t, []proxmox.TaskLogLine{lines[len(lines)-1]}, tail)

	// WARNINGS: n is success.
	b.sim.FailTask(pvesim.TaskFault{Type: "qmconfig", Count: 1, ExitStatus: "WARNINGS: 1"})
	ref, err = b.c.SetConfig(b.ctx, proxmox.VMRef{Node: "pve1", VMID: 101}, proxmox.ConfigChange{Set: map[string]string{"cores": "3"}})
	st = b.ok(t, ref, err)
	require.Equal(t, "WARNINGS: 1", st.ExitStatus)

	// A task that never ends stays running.
	b.sim.FailTask(pvesim.TaskFault{Type: "qmstart", Count: 1, Hang: true})
	ref, err = b.c.Start(b.ctx, proxmox.VMRef{Node: "pve1", VMID: 101}, proxmox.StartOptions{})
	require.NoError(t, err)
	b.sim.Advance(time.Hour)
	st, err = b.c.TaskStatus(b.ctx, ref)
	require.NoError(t, err)
	require.True(t, st.Running)

	// Unknown task: not found. Well-formed UPID of a node that exists.
	_, err = b.c.TaskStatus(b.ctx, proxmox.TaskRef{Node: "pve1", UPID: "UPID:pve1:0000FFFF:0000FFFF:6000FFFF:qmstart:101:root@pam:"})
	requireClass(t, proxmox.ClassNotFound, err)
	// Malformed: refused before sending.
	_, err = b.c.TaskStatus(b.ctx, proxmox.TaskRef{Node: "pve1", UPID: "UPID:nonsense"})
	requireClass(t, proxmox.ClassInvalid, err)

	// Node down: transient.
	require.NoError(t, b.sim.SetNodeOffline("pve1", true))
	_, err = b.c.TaskStatus(b.ctx, ref)
	requireClass(t, proxmox.ClassTransient, err)
	_, err = b.c.TaskLog(b.ctx, ref, 0, 0)
	requireClass(t, proxmox.ClassTransient, err)
}

// The task list: filtered by VMID, type and start time (PVE's clock), with
// running tasks included (source=all), newest first.
func TestContractTaskList(t *testing.T) {
	t.Parallel()
	b := setup(t)
	lister := b.c
	for _, id := range []int{101, 102} {
		b.must(t)(b.c.Clone(b.ctx, proxmox.CloneRequest{Source: template, NewID: id, Mode: proxmox.CloneLinked}))
		b.must(t)(b.c.Start(b.ctx, proxmox.VMRef{Node: "pve1", VMID: id}, proxmox.StartOptions{}))
	}
	vm := proxmox.VMRef{Node: "pve1", VMID: 101}
	first := b.must(t)(b.c.Reboot(b.ctx, vm, proxmox.RebootOptions{}))
	b.must(t)(b.c.Reboot(b.ctx, proxmox.VMRef{Node: "pve1", VMID: 102}, proxmox.RebootOptions{}))
	b.sim.Advance(time.Minute)
	second, err := b.c.Reboot(b.ctx, vm, proxmox.RebootOptions{}) // still running when listed
	require.NoError(t, err)

	list, err := lister.Tasks(b.ctx, "pve1", proxmox.TaskFilter{VMID: 101, Type: "qmreboot"})
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, second, list[0].Task)
	require.True(t, list[0].Running())
	require.True(t, list[0].EndTime.IsZero())
	require.Equal(t, first.Task, list[1].Task)
	require.Equal(t, "OK", list[1].Status)
	require.False(t, list[1].Running())
	require.Equal(t, "qmreboot", list[1].Type)
	require.Equal(t, "101", list[1].ID)
	require.Equal(t, pvesim.DefaultTokenID, list[1].User)
	require.Equal(t, first.StartTime, list[1].StartTime)
	require.False(t, list[1].EndTime.Before(list[1].StartTime))

	// since is PVE's starttime, inclusive.
	list, err = lister.Tasks(b.ctx, "pve1", proxmox.TaskFilter{VMID: 101, Type: "qmreboot", Since: list[0].StartTime})
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, second, list[0].Task)
	list, err = lister.Tasks(b.ctx, "pve1", proxmox.TaskFilter{VMID: 101, Type: "qmreboot", Since: list[0].StartTime.Add(time.Second)})
	require.NoError(t, err)
	require.Empty(t, list)

	// No type filter: the VM's clone is listed under the template's VMID
	// (qmclone's id is the source), its start and reboots under its own.
	list, err = lister.Tasks(b.ctx, "pve1", proxmox.TaskFilter{VMID: 101})
	require.NoError(t, err)
	var types []string
	for _, e := range list {
		types = append(types, e.Type)
	}
	require.Equal(t, []string{"qmreboot", "qmreboot", "qmstart"}, types)
	list, err = lister.Tasks(b.ctx, "pve1", proxmox.TaskFilter{Limit: 1})
	require.NoError(t, err)
	require.Len(t, list, 1)

	_, err = lister.Tasks(b.ctx, "", proxmox.TaskFilter{})
	requireClass(t, proxmox.ClassInvalid, err)
	require.NoError(t, b.sim.SetNodeOffline("pve1", true))
	_, err = lister.Tasks(b.ctx, "pve1", proxmox.TaskFilter{VMID: 101})
	requireClass(t, proxmox.ClassTransient, err)
}
