package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// notificationJSON is one delivery of pvectl notifications --json.
type notificationJSON struct {
	EventID     string     `json:"event_id"`
	Event       string     `json:"event"`
	Channel     string     `json:"channel"`
	ServiceID   string     `json:"service_id"`
	CreatedAt   time.Time  `json:"created_at"`
	Attempts    int        `json:"attempts"`
	State       string     `json:"state"` // pending, delivered, parked
	DeliveredAt *time.Time `json:"delivered_at"`
	LastError   string     `json:"last_error"`
}

func newNotificationsCmd(g *globals) *cobra.Command {
	var failed, asJSON bool
	var limit int
	cmd := &cobra.Command{
		Use:   "notifications [--failed] [--json]",
		Short: "List the newest notifications and their delivery (--failed: only parked ones)",
		Long: `List the newest notifications from the outbox, newest first: the event, the VM, the
channel, attempts, and whether it is pending, delivered or parked (given up after
notifications.max_attempts; pvectl health reports parked ones). See docs/monitoring.md.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 1 {
				return usagef("--limit must be 1 or more, got %d", limit)
			}
			e, closeFn, err := g.openEngine(cmd.Context())
			if err != nil {
				return err
			}
			defer closeFn()
			rows, err := e.Store.OutboxList(cmd.Context(), failed, limit)
			if err != nil {
				return err
			}
			out := []notificationJSON{}
			for _, r := range rows {
				j := notificationJSON{EventID: r.EventID, Event: r.Event, Channel: r.Channel, ServiceID: r.ServiceID,
					CreatedAt: r.CreatedAt, Attempts: r.Attempts, State: "pending", LastError: r.LastError}
				switch {
				case !r.DeliveredAt.IsZero():
					d := r.DeliveredAt
					j.State, j.DeliveredAt = "delivered", &d
				case !r.ParkedAt.IsZero():
					j.State = "parked"
				}
				out = append(out, j)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(w, out)
			}
			if len(out) == 0 {
				fmt.Fprintln(w, "no notifications")
				return nil
			}
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "CREATED\tEVENT\tVM\tCHANNEL\tSTATE\tATTEMPTS\tLAST ERROR")
			for _, j := range out {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", e.HumanTime(j.CreatedAt), j.Event, j.ServiceID, j.Channel,
					j.State, j.Attempts, dash(truncate(j.LastError, 160)))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&failed, "failed", false, "only parked deliveries (given up after notifications.max_attempts)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().IntVar(&limit, "limit", 50, "how many of the newest to show")
	return cmd
}
