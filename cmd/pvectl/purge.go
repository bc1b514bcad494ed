package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pvectl/pvectl/engine"
)

func newPurgeCmd(g *globals) *cobra.Command {
	var dry bool
	cmd := &cobra.Command{
		Use:   "purge [--dry-run]",
		Short: "Delete old task runs, delivered notifications and removed VM records now (the daily purge task's work)",
		Long: `Delete task runs older than purge.task_runs_days (each task's newest run is kept),
notifications delivered more than purge.notifications_days ago (pending and parked ones
are kept), and the records of VMs in remove for more than purge.removed_days (with their
logs; who held their VMID and addresses stays, see pvectl audit), as the daily purge task
does. --dry-run only counts them.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			open := g.openWritable
			if dry {
				open = g.openEngine
			}
			e, closeFn, err := open(cmd.Context())
			if err != nil {
				return err
			}
			defer closeFn()
			c, err := e.Purge(cmd.Context(), dry)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), engine.PurgeMessage(c, dry))
			return nil
		},
	}
	cmd.Flags().BoolVar(&dry, "dry-run", false, "only count what would be deleted")
	return cmd
}
