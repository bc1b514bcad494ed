package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pvectl/pvectl/engine"
)

// exitStatus ends a command with code and no further message (what it had
// to say is on stdout): pvectl health's monitoring exit codes.
type exitStatus struct{ code int }

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func newHealthCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Rate pvectl healthy, degraded or unhealthy, as a monitoring plugin (exit 0/1/2, 3 unknown)",
		Long: `Check held, error_terminate and stuck VMs, the scheduled tasks, PVE (GET /version) and DNS
reachability, the store's integrity and free disk in the state directory, and rate pvectl:
healthy (exit 0), degraded (exit 1), unhealthy (exit 2), or unknown (exit 3: the config or the
store could not be read). One line on stdout, as Nagios, Icinga and Zabbix expect; every check
with -v; the whole report with --json. See docs/monitoring.md.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := cmd.OutOrStdout()
			var r engine.HealthReport
			e, closeFn, err := g.openEngine(cmd.Context())
			if err != nil {
				r = engine.HealthUnknown(err, time.Now())
			} else {
				defer closeFn()
				r = e.Health(cmd.Context())
			}
			if asJSON {
				if err := writeJSON(w, r); err != nil {
					return err
				}
			} else {
				fmt.Fprintln(w, healthLine(r))
				if g.verbose {
					for _, c := range r.Checks {
						fmt.Fprintf(w, "%-9s %-9s %s\n", c.Name, c.Status, c.Detail)
					}
				}
			}
			if code := engine.HealthExitCode(r.Status); code != 0 {
				return exitStatus{code}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON (stable shape, see docs/monitoring.md)")
	return cmd
}

// healthLine is the plugin output: "STATUS: summary | perfdata".
func healthLine(r engine.HealthReport) string {
	line := strings.ToUpper(r.Status) + ": " + r.Summary
	if r.Status == engine.Unknown {
		return line
	}
	perf := fmt.Sprintf("vms=%d held=%d error_terminate=%d stuck=%d", r.VMs, r.Held, r.ErrorTerminate, r.StuckVMs)
	if r.PVEMillis != nil {
		perf += fmt.Sprintf(" pve=%dms", *r.PVEMillis)
	}
	return line + " | " + perf
}
