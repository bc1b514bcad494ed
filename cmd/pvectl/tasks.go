package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/pvectl/pvectl/engine"
	"github.com/spf13/cobra"
)

func newTickCmd(g *globals) *cobra.Command {
	var metrics string
	cmd := &cobra.Command{
		Use:   "tick",
		Short: "Run every scheduled task that is due (what cron runs every minute)",
		Long: `Run every scheduled task whose interval has passed since its last start. Each task
takes its own lock in <state-dir>/locks/ without waiting; a task whose lock is held
by another process is reported ("skipped: lock held by pid N since T") and left for
the next tick. Prints what changed state, failed or needs attention: one line per
VM step that advanced or failed as it completes, warnings (a DNS record that could
not be published is retried), and a task's summary when the task advanced or
failed something. A tick where every VM only waits prints nothing at all, so cron
mails only what matters; -v adds the waiting lines, the summaries and debug lines
(what run-task prints). Times are in --tz / timezone (UTC by default).

Crontab:  * * * * * pvectl tick`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, closeFn, err := g.openWritable(cmd.Context())
			if err != nil {
				return err
			}
			defer closeFn()
			// Cron mails whatever a tick prints: without -v, only what
			// changed state, failed or needs attention.
			e.Live.SetQuiet(!g.verbose)
			path := metrics
			if path == "" {
				path = e.Config.MetricsFile
			}
			if path != "" {
				// Step runs and PVE requests are counted only when
				// they are written.
				e.Metrics = engine.NewMetrics()
			}
			err = e.Tick(cmd.Context())
			if path != "" {
				// Written whatever the tick's result: a failing tick is
				// what the metrics are for.
				if merr := e.WriteMetrics(context.WithoutCancel(cmd.Context()), path); merr != nil {
					return errors.Join(err, fmt.Errorf("write metrics to %s: %w", path, merr))
				}
			}
			return err
		},
	}
	cmd.Flags().StringVar(&metrics, "metrics-file", "", "after the tick, write Prometheus metrics to this file (node_exporter textfile collector; default: metrics_file in the config)")
	return cmd
}

func newRunTaskCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "run-task NAME",
		Short: "Run one scheduled task now, ignoring its interval but not its lock",
		Long: `Run one scheduled task now. The interval is ignored; the task's lock is not: if
another process holds it, run-task says who and exits 1 without running.
"pvectl tasks" lists the task names.`,
		Args: exactArgs(1, "a task name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			tasks := &engine.Engine{TaskList: scheduledTasks()}
			t, ok := tasks.LookupTask(args[0])
			if !ok {
				return usagef("unknown task %q; valid: %s", args[0], strings.Join(tasks.TaskNames(), ", "))
			}
			e, closeFn, err := g.openWritable(cmd.Context())
			if err != nil {
				return err
			}
			defer closeFn()
			return e.RunTask(cmd.Context(), t)
		},
	}
}

func newTasksCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "tasks",
		Short: "List scheduled tasks: interval, last run, result and current lock holder",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, closeFn, err := g.openEngine(cmd.Context())
			if err != nil {
				return err
			}
			defer closeFn()
			rows, err := e.TaskStatuses(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "TASK\tINTERVAL\tLAST START\tDURATION\tRESULT\tLOCK\tMESSAGE")
			for _, r := range rows {
				iv := r.Interval
				if !r.Enabled {
					iv = "disabled"
				}
				last, res, lock := "never", "-", "free"
				if r.LastStart != nil {
					last = e.HumanTime(*r.LastStart)
					res = r.LastResult
					if r.LastResult == "ok" || r.LastResult == "error" {
						res = fmt.Sprintf("%s (%d processed, %d errors)", r.LastResult, r.Processed, r.Errors)
					}
				}
				if r.LockHeld {
					lock = "held"
					if r.LockPID != 0 {
						lock = fmt.Sprintf("held by pid %d", r.LockPID)
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, iv, last, dash(r.LastDuration), res, lock, dash(r.LastMessage))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (stable shape, see docs/cli.md)")
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print pvectl's version",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "pvectl", version)
			return err
		},
	}
}
