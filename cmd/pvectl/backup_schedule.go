package main

import (
	"context"
	"fmt"
	"io"

	"github.com/pvectl/pvectl/engine"
	"github.com/spf13/cobra"
)

func init() { backupSubcommands = append(backupSubcommands, newBackupScheduleCmd) }

// newBackupScheduleCmd builds backup schedule: save or clear a VM's backup
// schedule (docs/backups.md#schedules).
func newBackupScheduleCmd(g *globals) *cobra.Command {
	var days, at string
	var off bool
	cmd := &cobra.Command{
		Use:   "schedule VM --days mon,thu [--at HH:MM] | --off",
		Short: "Back a VM up on weekdays at a time (--at, or a random time in backups.window); --off clears it",
		Long: `Save when the VM is backed up: on the --days given (mon, tue, wed, thu, fri, sat, sun,
comma separated, or daily) at --at (HH:MM, 24-hour, in backups.timezone). Without --at a
new schedule gets a random minute in backups.window, picked once now (it spreads the
backups of many VMs over the night); a saved schedule keeps its time when only --days
changes, and --at alone changes only the time. --off clears the schedule.

The schedule_backup task (default hourly) queues each slot at its first run at or after
the slot's start, at most once per slot; the next process_vms pass starts the backup, so
with the hourly default a backup starts up to an hour after its slot. A slot found more
than backups.grace late (pvectl did not run, the clock jumped) is skipped and logged, not
run late. Refused (exit 2) when the VM's product has backup_quota 0 (backups off).`,
		Args: exactArgs(1, "a VM (service id or hostname)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var sched engine.Schedule
			var has bool
			res, err := g.request(cmd, func(ctx context.Context, e *engine.Engine) (engine.Result, error) {
				res, err := e.BackupSchedule(ctx, args[0], days, at, off)
				if err != nil {
					return res, err
				}
				sched, has, err = e.BackupScheduleOf(ctx, res.VM)
				return res, err
			})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			switch {
			case off && res.Changed:
				fmt.Fprintf(w, "VM %s: backup schedule cleared; no scheduled backups\n", res.VM.ServiceID)
			case off:
				fmt.Fprintf(w, "VM %s: had no backup schedule; nothing changed\n", res.VM.ServiceID)
			case has:
				unchanged := ""
				if !res.Changed {
					unchanged = " (unchanged)"
				}
				fmt.Fprintf(w, "VM %s: backups on %s%s\n", res.VM.ServiceID, sched, unchanged)
				if sched.Next.Name != "" {
					fmt.Fprintf(w, "next slot: %s\n", sched.Next.Name)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&days, "days", "", "weekdays: mon,tue,wed,thu,fri,sat,sun (comma separated) or daily")
	f.StringVar(&at, "at", "", "start time HH:MM (24-hour, backups.timezone); default: random in backups.window, picked once")
	f.BoolVar(&off, "off", false, "clear the VM's backup schedule")
	return cmd
}

// printBackupSchedule prints backup list's schedule line: "schedule: mon,
// thu at 03:10 (UTC); next slot 2026-12-03T03:10 (thu)" or "schedule: none".
func printBackupSchedule(ctx context.Context, w io.Writer, e *engine.Engine, ref string) error {
	vm, err := e.FindVM(ctx, ref)
	if err != nil {
		return err
	}
	s, ok, err := e.BackupScheduleOf(ctx, vm)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, s.Line(ok))
	return nil
}
