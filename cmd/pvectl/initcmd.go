package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/pvectl/pvectl/store"
	"github.com/spf13/cobra"
)

func newInitCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "Create the state directory and an empty pvectl database (once, at installation)",
		Long: `Create the state directory (mode 0750) and a new, empty pvectl database in it
(<state-dir>/pvectl.db, mode 0600). This is the only command that creates a
database: every other command refuses to run without one, so a deleted, emptied or
mistyped database can never be silently replaced by an empty one (which would hand
the addresses of running VMs to new ones).

Running init again on an existing pvectl database changes nothing and exits 0.
An existing file that is empty or not a pvectl database is left alone (exit 1):
restore the database from a backup, or remove the file yourself if you really mean
to start over.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := g.checkStateDir(); err != nil {
				return err
			}
			ctx := cmd.Context()
			path := g.dbPath()
			if _, err := os.Lstat(path); err == nil {
				st, err := store.Open(ctx, path)
				if err != nil {
					return err
				}
				defer func() { _ = st.Close() }()
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "pvectl database %s already exists; nothing changed\n", path)
				return err
			}
			st, err := store.Create(ctx, path)
			if errors.Is(err, store.ErrExists) { // another init won the race
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "pvectl database %s already exists; nothing changed\n", path)
				return err
			}
			if err != nil {
				return err
			}
			defer func() { _ = st.Close() }()
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "created pvectl database %s\n", path)
			return err
		},
	}
}
