package engine_test

import (
	"testing"
	"time"

	"github.com/pvectl/pvectl/config"
	"github.com/pvectl/pvectl/engine"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

// A VM is stuck when it has been in one non-final state longer than its
// class allows: a step (1h), a PVE task (2h, per type), a PVE lock (6h).
// Held VMs and final states are never stuck; the state's start survives
// waits (a Waiting outcome keeps step_started_at).
func TestStuckOf(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	h.e.Config.Health.StuckAfter.Tasks = map[string]config.Duration{"vzdump": config.Duration(12 * time.Hour)}
	step := h.vm("step", string(states.SetCPURAM))
	task := h.vm("task", string(states.SetIP))
	require.NoError(t, h.st.VMSetPendingTask(h.ctx, task.ID, task.Status, task.Version, task.Status, "pve1",
		"UPID:pve1:00001234:00005678:6B06CFDC:qmclone:9000:pvectl@pve!ci:", t0))
	lock := h.vm("lock", string(states.CPStop))
	cur := h.get(lock.ID)
	require.NoError(t, h.st.VMApplyOutcome(h.ctx, store.Outcome{ID: cur.ID, FromStatus: cur.Status, FromVersion: cur.Version,
		ToStatus: cur.Status, StepWaits: 1, WaitReason: "PVE lock backup", Now: t0.Add(time.Minute)}))
	held := h.vm("held", string(states.SetNetwork))
	cur = h.get(held.ID)
	require.NoError(t, h.st.VMApplyOutcome(h.ctx, store.Outcome{ID: cur.ID, FromStatus: cur.Status, FromVersion: cur.Version,
		ToStatus: cur.Status, Attempts: 1, Held: true, LastError: "403", Now: t0}))
	ready := h.vm("ready", string(states.Ready))

	for _, tc := range []struct {
		after time.Duration
		want  map[string]string // service → class, for the stuck ones
	}{
		{59 * time.Minute, map[string]string{}},
		{61 * time.Minute, map[string]string{"step": engine.StuckStep}},
		{2*time.Hour + time.Minute, map[string]string{"step": engine.StuckStep, "task": engine.StuckTask}},
		{6*time.Hour + time.Minute, map[string]string{"step": engine.StuckStep, "task": engine.StuckTask, "lock": engine.StuckLock}},
	} {
		now := t0.Add(tc.after)
		got := map[string]string{}
		for _, id := range []int64{step.ID, task.ID, lock.ID, held.ID, ready.ID} {
			vm := h.get(id)
			if s, ok := h.e.StuckOf(vm, now); ok {
				got[vm.ServiceID] = s.Class
				if s.Class == engine.StuckTask {
					require.Equal(t, "qmclone", s.TaskType)
				}
			}
		}
		require.Equal(t, tc.want, got, "after %s", tc.after)
	}
	s, _ := h.e.StuckOf(h.get(task.ID), t0.Add(3*time.Hour))
	require.Equal(t, "stuck: task qmclone for 3h (limit 2h)", s.Text())
}

// The vms check: held, error_terminate and stuck VMs make pvectl degraded,
// each named with what to do.
func TestHealthVMs(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	h.vm("ok1", string(states.Ready))
	held := h.vm("held1", string(states.SetNetwork))
	require.NoError(t, h.st.VMApplyOutcome(h.ctx, store.Outcome{ID: held.ID, FromStatus: held.Status, FromVersion: held.Version,
		ToStatus: held.Status, Attempts: 1, Held: true, LastError: "403", Now: t0}))
	h.vm("gone1", string(states.ErrorTerminate))
	h.vm("slow1", string(states.SetCPURAM))
	h.at(2 * time.Hour)
	r := h.e.Health(h.ctx)
	var vms engine.HealthCheck
	for _, c := range r.Checks {
		if c.Name == "vms" {
			vms = c
		}
	}
	require.Equal(t, engine.Degraded, vms.Status)
	require.Equal(t, "1 held: held1 (pvectl vm list; fix, then pvectl vm retry); 1 in error_terminate: gone1 (see docs/reset-status.md); 1 stuck: slow1 (set_cpu_ram: step for 2h (limit 1h)) (pvectl vm list --stuck)", vms.Detail)
	require.Equal(t, 4, r.VMs)
	require.Equal(t, 1, r.Held)
	require.Equal(t, 1, r.ErrorTerminate)
	require.Equal(t, 1, r.StuckVMs)
	// No PVE client in this harness: unhealthy overall.
	require.Equal(t, engine.Unhealthy, r.Status)
	require.Equal(t, 2, engine.HealthExitCode(r.Status))
}
