package main

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/pvectl/pvectl/engine"
	"github.com/spf13/cobra"
)

func newStatsCmd(g *globals) *cobra.Command {
	var month string
	var all, asJSON, asCSV bool
	cmd := &cobra.Command{
		Use:   "stats [VM | --all]",
		Short: "Show traffic statistics (GB in, out, in+out) per day and for a billing period",
		Long: `Show a VM's traffic as collect_stats stored it: per UTC day and for the billing
period, in decimal GB (1 GB = 10^9 bytes). The period starts on the product's
traffic_reset_day (UTC); --month YYYY-MM picks the period starting in that month
(default: the current one). --all reports every VM, terminated ones included
while their statistics are retained (stats.retention_days); with --csv it is a
billing export. A terminated VM can be named by its service id.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if asJSON && asCSV {
				return usagef("--json and --csv exclude each other")
			}
			if all != (len(args) == 0) || len(args) > 1 {
				return usagef("%s needs one VM (service id or hostname) or --all; see %s --help", cmd.CommandPath(), cmd.CommandPath())
			}
			if _, _, err := engine.PeriodOf(month, 1, timeZero); err != nil {
				return usagef("--month: %v", err)
			}
			e, closeFn, err := g.openEngine(cmd.Context())
			if err != nil {
				return err
			}
			defer closeFn()
			ctx := cmd.Context()
			w := cmd.OutOrStdout()
			if all {
				reps, err := e.TrafficReports(ctx, month)
				if err != nil {
					return err
				}
				switch {
				case asJSON:
					return writeJSON(w, reportsJSON(reps))
				case asCSV:
					return writeStatsCSVAll(w, reps)
				}
				fmt.Fprintf(w, "%-16s %-9s %-12s %-10s %12s %12s %12s\n", "VM", "VMID", "PRODUCT", "PERIOD", "IN GB", "OUT GB", "TOTAL GB")
				for _, r := range reps {
					id := r.ServiceID
					if r.Terminated {
						id += " (terminated)"
					}
					fmt.Fprintf(w, "%-16s %-9d %-12s %-10s %12s %12s %12s\n", id, r.VMID, r.Product, r.PeriodStart.Format("2006-01-02"),
						gb(r.BytesIn), gb(r.BytesOut), gb(r.BytesIn+r.BytesOut))
				}
				return nil
			}
			var rep engine.TrafficReport
			vm, ferr := e.FindVM(ctx, args[0])
			switch {
			case ferr == nil:
				rep, err = e.TrafficReportOf(ctx, vm.ServiceID, vm.VMID, vm.Product, month, false)
			case errors.Is(ferr, engine.ErrNotFound):
				// A terminated VM: its statistics outlive the record.
				rep, err = e.TrafficReportOf(ctx, args[0], 0, "", month, true)
				if err == nil && rep.Product == "" {
					return ferr
				}
			default:
				return ferr
			}
			if err != nil {
				return err
			}
			switch {
			case asJSON:
				return writeJSON(w, reportJSON(rep))
			case asCSV:
				return writeStatsCSV(w, rep)
			}
			fmt.Fprintf(w, "%s  vmid %d  product %s  period %s → %s (UTC)\n", rep.ServiceID, rep.VMID, rep.Product,
				rep.PeriodStart.Format("2006-01-02"), rep.PeriodEnd.Format("2006-01-02"))
			fmt.Fprintf(w, "%-10s %12s %12s %12s\n", "DAY", "IN GB", "OUT GB", "TOTAL GB")
			for _, d := range rep.Days {
				fmt.Fprintf(w, "%-10s %12s %12s %12s\n", d.Date, gb(d.BytesIn), gb(d.BytesOut), gb(d.BytesIn+d.BytesOut))
			}
			fmt.Fprintf(w, "%-10s %12s %12s %12s\n", "period", gb(rep.BytesIn), gb(rep.BytesOut), gb(rep.BytesIn+rep.BytesOut))
			return nil
		},
	}
	cmd.Flags().StringVar(&month, "month", "", "the billing period starting in this month (YYYY-MM); default the current one")
	cmd.Flags().BoolVar(&all, "all", false, "every VM, terminated ones included while retained")
	cmd.Flags().BoolVar(&asJSON, "json", false, "JSON output")
	cmd.Flags().BoolVar(&asCSV, "csv", false, "CSV output")
	return cmd
}

// gb formats bytes as decimal GB with three decimals.
func gb(b int64) string { return strconv.FormatFloat(float64(b)/engine.GB, 'f', 3, 64) }

type statsDayJSON struct {
	Date     string  `json:"date"`
	InGB     float64 `json:"in_gb"`
	OutGB    float64 `json:"out_gb"`
	TotalGB  float64 `json:"total_gb"`
	BytesIn  int64   `json:"bytes_in"`
	BytesOut int64   `json:"bytes_out"`
}

type statsJSON struct {
	ServiceID   string         `json:"service_id"`
	VMID        int            `json:"vmid"`
	Product     string         `json:"product"`
	Terminated  bool           `json:"terminated"`
	PeriodStart string         `json:"period_start"`
	PeriodEnd   string         `json:"period_end"`
	Days        []statsDayJSON `json:"days"`
	InGB        float64        `json:"in_gb"`
	OutGB       float64        `json:"out_gb"`
	TotalGB     float64        `json:"total_gb"`
	BytesIn     int64          `json:"bytes_in"`
	BytesOut    int64          `json:"bytes_out"`
}

func toGB(b int64) float64 { v, _ := strconv.ParseFloat(gb(b), 64); return v }

func reportJSON(r engine.TrafficReport) statsJSON {
	out := statsJSON{ServiceID: r.ServiceID, VMID: r.VMID, Product: r.Product, Terminated: r.Terminated,
		PeriodStart: r.PeriodStart.Format("2006-01-02"), PeriodEnd: r.PeriodEnd.Format("2006-01-02"), Days: []statsDayJSON{},
		InGB: toGB(r.BytesIn), OutGB: toGB(r.BytesOut), TotalGB: toGB(r.BytesIn + r.BytesOut), BytesIn: r.BytesIn, BytesOut: r.BytesOut}
	for _, d := range r.Days {
		out.Days = append(out.Days, statsDayJSON{Date: d.Date, InGB: toGB(d.BytesIn), OutGB: toGB(d.BytesOut),
			TotalGB: toGB(d.BytesIn + d.BytesOut), BytesIn: d.BytesIn, BytesOut: d.BytesOut})
	}
	return out
}

func reportsJSON(rs []engine.TrafficReport) []statsJSON {
	out := make([]statsJSON, 0, len(rs))
	for _, r := range rs {
		out = append(out, reportJSON(r))
	}
	return out
}

func writeStatsCSV(w io.Writer, r engine.TrafficReport) error {
	c := csv.NewWriter(w)
	_ = c.Write([]string{"service_id", "date", "in_gb", "out_gb", "total_gb", "bytes_in", "bytes_out"})
	for _, d := range r.Days {
		_ = c.Write([]string{r.ServiceID, d.Date, gb(d.BytesIn), gb(d.BytesOut), gb(d.BytesIn + d.BytesOut),
			strconv.FormatInt(d.BytesIn, 10), strconv.FormatInt(d.BytesOut, 10)})
	}
	_ = c.Write([]string{r.ServiceID, "period " + r.PeriodStart.Format("2006-01-02"), gb(r.BytesIn), gb(r.BytesOut), gb(r.BytesIn + r.BytesOut),
		strconv.FormatInt(r.BytesIn, 10), strconv.FormatInt(r.BytesOut, 10)})
	c.Flush()
	return c.Error()
}

func writeStatsCSVAll(w io.Writer, rs []engine.TrafficReport) error {
	c := csv.NewWriter(w)
	_ = c.Write([]string{"service_id", "vmid", "product", "terminated", "period_start", "period_end", "in_gb", "out_gb", "total_gb", "bytes_in", "bytes_out"})
	for _, r := range rs {
		_ = c.Write([]string{r.ServiceID, strconv.Itoa(r.VMID), r.Product, strconv.FormatBool(r.Terminated),
			r.PeriodStart.Format("2006-01-02"), r.PeriodEnd.Format("2006-01-02"), gb(r.BytesIn), gb(r.BytesOut), gb(r.BytesIn + r.BytesOut),
			strconv.FormatInt(r.BytesIn, 10), strconv.FormatInt(r.BytesOut, 10)})
	}
	c.Flush()
	return c.Error()
}

var timeZero time.Time
