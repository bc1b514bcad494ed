package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/pvectl/pvectl/states"
)

// RestoreBackupInterval is restore_backup's default interval. Every minute,
// like process_vms, not every five: a restore is about fifteen steps (the
// stop, one per snapshot, the restore, then the change-package steps that
// process_vms runs), one per run, while the customer's VM is down.
const RestoreBackupInterval = time.Minute

// RestoreBackupTask drives backup restores (pvectl backup restore) through
// the restore table: stop the VM, delete its snapshots, restore the archive.
// The VM then leaves the table at change_package, where process_vms
// re-applies its product and starts it. process_vms never runs a restore
// step, so the two tasks never work on the same VM at once, and the
// restore's own lock lets an admin hold restores (pvectl tasks shows it)
// without stopping the pipelines.
func RestoreBackupTask() Task {
	return Task{
		Name:            "restore_backup",
		Description:     "advance backup restores (stop, delete snapshots, restore the archive; process_vms then re-applies the product)",
		DefaultInterval: RestoreBackupInterval,
		Run: func(ctx context.Context, e *Engine) (TaskCounts, error) {
			s, err := e.RestoreBackups(ctx)
			return TaskCounts{Processed: s.Processed, Errors: s.Errors, Message: fmt.Sprintf("advanced %d, waiting %d", s.Advanced, s.Waiting)}, err
		},
	}
}

// RestoreBackups runs one pass of the step runner over the VMs in the
// restore table (restore, restore_stopped, restore_snapshots_removed): one
// step each (steps_per_tick), never past the table.
func (e *Engine) RestoreBackups(ctx context.Context) (Summary, error) {
	dnsb := e.newDNSBreaker()
	s, err := e.runSteps(ctx, "restore_backup", time.Now(), e.Live.Mark(), states.Restoring, dnsb, nil)
	e.warnDNSBreaker(dnsb, "restore_backup")
	return s, err
}
