package engine_test

import (
	"testing"
	"time"

	"github.com/pvectl/pvectl/engine"
	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

// The purge deletes task runs older than purge.task_runs_days but keeps
// each task's newest, and delivered notifications older than
// purge.notifications_days but never pending or parked ones; 0 keeps.
func TestPurge(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	gone := h.vm("gone", "remove") // removed at t0; purge.removed_days defaults to 90
	at := func(days int) time.Time { return t0.Add(time.Duration(days) * 24 * time.Hour) }
	for _, r := range []struct {
		task string
		day  int
	}{{"process_vms", 0}, {"process_vms", 1}, {"process_vms", 40}, {"collect_stats", 2}} {
		id, err := h.st.TaskRunStart(h.ctx, r.task, 1, at(r.day))
		require.NoError(t, err)
		require.NoError(t, h.st.TaskRunFinish(h.ctx, store.TaskRun{ID: id, Result: "ok", FinishedAt: at(r.day)}))
	}
	ev := func(id string) store.OutboxEvent {
		return store.OutboxEvent{EventID: id, Event: "vm_ready", ServiceID: "s", Payload: "{}", Channels: []string{"webhook"}}
	}
	require.NoError(t, h.st.OutboxAdd(h.ctx, []store.OutboxEvent{ev("old-delivered"), ev("old-parked"), ev("old-pending"), ev("new-delivered")}, at(0)))
	rows, err := h.st.OutboxList(h.ctx, false, 10)
	require.NoError(t, err)
	for _, r := range rows {
		switch r.EventID {
		case "old-delivered":
			require.NoError(t, h.st.OutboxDelivered(h.ctx, r.ID, at(1)))
		case "new-delivered":
			require.NoError(t, h.st.OutboxDelivered(h.ctx, r.ID, at(40)))
		case "old-parked":
			require.NoError(t, h.st.OutboxFailed(h.ctx, r.ID, "x", at(2), true, at(1)))
		}
	}
	h.at(45 * 24 * time.Hour)

	dry, err := h.e.Purge(h.ctx, true)
	require.NoError(t, err)
	require.Equal(t, store.PurgeCounts{TaskRuns: 2, Notifications: 1}, dry, "process_vms days 0 and 1; collect_stats' only run is its newest; the record removed 45 days ago stays")
	done, err := h.e.Purge(h.ctx, false)
	require.NoError(t, err)
	require.Equal(t, dry, done)
	again, err := h.e.Purge(h.ctx, false)
	require.NoError(t, err)
	require.Zero(t, again.TaskRuns+again.Notifications)
	last, err := h.st.TaskRunLast(h.ctx)
	require.NoError(t, err)
	require.Contains(t, last, "collect_stats")
	require.Contains(t, last, "process_vms")
	left, err := h.st.OutboxList(h.ctx, false, 10)
	require.NoError(t, err)
	var ids []string
	for _, r := range left {
		ids = append(ids, r.EventID)
	}
	require.ElementsMatch(t, []string{"old-parked", "old-pending", "new-delivered"}, ids)

	zero := 0
	h.e.Config.Purge.TaskRunsDays, h.e.Config.Purge.NotificationsDays, h.e.Config.Purge.RemovedDays = &zero, &zero, &zero
	h.at(400 * 24 * time.Hour)
	kept, err := h.e.Purge(h.ctx, true)
	require.NoError(t, err)
	require.Zero(t, kept.TaskRuns+kept.Notifications+kept.RemovedVMs, "0 keeps forever")

	h.e.Config.Purge.RemovedDays = nil
	purged, err := h.e.Purge(h.ctx, false)
	require.NoError(t, err)
	require.Equal(t, store.PurgeCounts{RemovedVMs: 1}, purged, "the default 90 days have passed")
	require.Equal(t, "deleted 0 task run(s), 0 delivered notification(s) and 1 removed VM record(s)", engine.PurgeMessage(purged, false))
	_, err = h.st.VMGet(h.ctx, gone.ID)
	require.Error(t, err)
	audit, err := h.st.AuditVMID(h.ctx, 0)
	require.NoError(t, err)
	require.Empty(t, audit, "a record that never had a VMID is not listed under VMID 0")
}
