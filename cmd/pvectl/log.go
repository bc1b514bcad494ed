package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pvectl/pvectl/engine"
	"github.com/pvectl/pvectl/states"
	"github.com/spf13/cobra"
)

func newLogCmd(g *globals) *cobra.Command {
	var runs int
	var asJSON, follow bool
	cmd := &cobra.Command{
		Use:   "log VM",
		Short: "Show a VM's run log: each step, from → to, result, duration (newest run first)",
		Long: `Show the VM's newest runs (the newest 50 are kept), newest first. Each line is one step:
time, step, from → to, result (success, skip (reason), waiting (reason), error: …) and
duration, plus sub-lines such as DNS records and events. The last failure is shown on
top. With --follow, new lines are printed as ticks write them (Ctrl-C to stop); with
--follow --json, one JSON object per line.`,
		Args: exactArgs(1, "a VM (service id or hostname)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if runs < 1 {
				return usagef("--runs must be at least 1")
			}
			e, closeFn, err := g.openEngine(cmd.Context())
			if err != nil {
				return err
			}
			defer closeFn()
			ctx := cmd.Context()
			vm, err := e.FindVM(ctx, args[0])
			if err != nil {
				return err
			}
			list, err := e.Log(ctx, vm, runs)
			if err != nil {
				return err
			}
			w, loc := cmd.OutOrStdout(), e.Zone()
			if asJSON && !follow {
				return writeJSON(w, logJSON(vm, list))
			}
			if vm.LastError != "" && !asJSON {
				state := "will retry"
				switch {
				case vm.Status == string(states.ErrorTerminate):
					state = fmt.Sprintf("the cron leaves it alone; fix the cause, then pvectl reset-status %s terminate", vm.ServiceID)
				case vm.Held:
					state = "HELD until an admin acts (pvectl vm retry / reset-status)"
				}
				fmt.Fprintf(w, "!! LAST ERROR at %s (attempt %d, %s): %s\n\n", vm.Status, vm.Attempts, state, vm.LastError)
			}
			if !follow {
				for _, r := range list {
					printRun(w, r, loc)
				}
				return nil
			}
			// --follow: print the existing lines oldest first, then poll. With
			// --json every line is one JSON object (JSON Lines).
			emitRun := func(r engine.Run) {
				switch {
				case asJSON:
				case engine.IsRequest(r):
					for _, l := range r.Lines {
						printRequest(w, r, l, loc)
					}
				default:
					fmt.Fprintf(w, "run #%d  %s  %s\n", r.ID, engine.HumanTime(r.StartedAt, loc), r.Task)
				}
			}
			emitLine := func(r engine.Run, l engine.RunLine) {
				if !asJSON && engine.IsRequest(r) {
					return // printed with its run
				}
				if !asJSON {
					printLine(w, l, loc)
					return
				}
				b, _ := json.Marshal(struct {
					Run int64 `json:"run"`
					lineJSON
				}{r.ID, toLineJSON(r, l)})
				fmt.Fprintf(w, "%s\n", b)
			}
			var lastRun, lastLine int64
			repeats := map[int64]int{} // waiting runs folded into a run, as last printed
			show := func(list []engine.Run) {
				for i := len(list) - 1; i >= 0; i-- {
					r := list[i]
					if r.ID < lastRun {
						continue
					}
					if r.ID > lastRun {
						emitRun(r)
						lastRun = r.ID
					}
					for _, l := range r.Lines {
						if l.ID > lastLine {
							emitLine(r, l)
							lastLine = l.ID
						}
					}
					// A later waiting run at the same step was folded into
					// this one: say so instead of printing nothing.
					if r.Repeats > repeats[r.ID] {
						repeats[r.ID] = r.Repeats
						if asJSON {
							b, _ := json.Marshal(struct {
								Run      int64         `json:"run"`
								Repeated *repeatedJSON `json:"repeated"`
							}{r.ID, &repeatedJSON{Count: r.Repeats, LastAt: r.LastAt, LastResult: r.LastResult}})
							fmt.Fprintf(w, "%s\n", b)
						} else {
							fmt.Fprintln(w, repeatedLine(r, loc))
						}
					}
				}
			}
			show(list)
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(time.Second):
				}
				fresh, err := e.Log(ctx, vm, 5)
				if err != nil {
					return err
				}
				show(fresh)
			}
		},
	}
	cmd.Flags().IntVar(&runs, "runs", 10, "how many of the newest runs to show")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines as ticks write them")
	return cmd
}

func printRun(w io.Writer, r engine.Run, loc *time.Location) {
	if engine.IsRequest(r) {
		for _, l := range r.Lines {
			printRequest(w, r, l, loc)
		}
		return
	}
	fmt.Fprintf(w, "run #%d  %s  %s  %s\n", r.ID, engine.HumanTime(r.StartedAt, loc), r.Task, r.Result)
	for _, l := range r.Lines {
		printLine(w, l, loc)
	}
	if r.Repeats > 0 {
		fmt.Fprintln(w, repeatedLine(r, loc))
	}
}

// repeatedLine says how many later waiting runs were folded into r.
func repeatedLine(r engine.Run, loc *time.Location) string {
	return fmt.Sprintf("  … and %d more waiting run(s) at this step, the last at %s: %s", r.Repeats, engine.HumanTime(r.LastAt, loc), r.LastResult)
}

// printRequest prints a request (an audit event) of the log on one line:
// what, from → to, who and options.
func printRequest(w io.Writer, r engine.Run, l engine.RunLine, loc *time.Location) {
	fmt.Fprintf(w, "request #%d  %s  %s  %s  %s\n", r.ID, engine.HumanTime(l.At, loc), l.Step, requestArrow(l), l.Detail)
}

func requestArrow(l engine.RunLine) string {
	switch {
	case l.From == "":
		return "→ " + l.To
	case l.To == "" || l.To == l.From:
		return l.From
	}
	return l.From + " → " + l.To
}

// printLine prints a line of a run: its time of day in loc, under the
// run's header that shows the date and the zone.
func printLine(w io.Writer, l engine.RunLine, loc *time.Location) {
	if engine.IsEvent(l) {
		fmt.Fprintf(w, "  %s      %s\n", engine.ClockTime(l.At, loc), l.Detail)
		return
	}
	arrow := l.From + " → " + l.To
	if l.To == "" || l.To == l.From {
		arrow = l.From
	}
	mark := "  "
	if engine.LineFailed(l) {
		mark = "!!"
	}
	fmt.Fprintf(w, "%s%s  %-30s %-45s %s (%s)\n", mark, engine.ClockTime(l.At, loc), l.Step, arrow, l.Result, l.Duration.Round(time.Millisecond))
}

type lineJSON struct {
	At         time.Time `json:"at"`
	Kind       string    `json:"kind"` // request, step or event
	Step       string    `json:"step"`
	From       string    `json:"from"`
	To         string    `json:"to"`
	Result     string    `json:"result"`
	Detail     string    `json:"detail,omitempty"`
	DurationMS int64     `json:"duration_ms"`
}

func toLineJSON(r engine.Run, l engine.RunLine) lineJSON {
	kind := "step"
	switch {
	case engine.IsRequest(r):
		kind = "request"
	case engine.IsEvent(l):
		kind = "event"
	}
	return lineJSON{Kind: kind, At: l.At, Step: l.Step, From: l.From, To: l.To, Result: l.Result,
		Detail: l.Detail, DurationMS: l.Duration.Milliseconds()}
}

type runJSON struct {
	ID        int64      `json:"id"`
	Kind      string     `json:"kind"` // request or step
	Task      string     `json:"task"`
	StartedAt time.Time  `json:"started_at"`
	Result    string     `json:"result"`
	Lines     []lineJSON `json:"lines"`
	// Repeated: the waiting runs at the same step folded into this one
	// (count, the newest's time and result); null when none were.
	Repeated *repeatedJSON `json:"repeated"`
}

type repeatedJSON struct {
	Count      int       `json:"count"`
	LastAt     time.Time `json:"last_at"`
	LastResult string    `json:"last_result"`
}

func logJSON(vm engine.VM, runs []engine.Run) map[string]any {
	out := []runJSON{}
	for _, r := range runs {
		kind := "step"
		if engine.IsRequest(r) {
			kind = "request"
		}
		rj := runJSON{Kind: kind, ID: r.ID, Task: r.Task, StartedAt: r.StartedAt, Result: r.Result, Lines: []lineJSON{}}
		for _, l := range r.Lines {
			rj.Lines = append(rj.Lines, toLineJSON(r, l))
		}
		if r.Repeats > 0 {
			rj.Repeated = &repeatedJSON{Count: r.Repeats, LastAt: r.LastAt, LastResult: r.LastResult}
		}
		out = append(out, rj)
	}
	return map[string]any{"service_id": vm.ServiceID, "status": vm.Status, "held": vm.Held,
		"attempts": vm.Attempts, "last_error": vm.LastError, "runs": out}
}

func newPipelineCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "pipeline", Short: "Show the pipeline tables"}
	var mermaid bool
	show := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a pipeline table as text, or as a Mermaid state diagram",
		Args:  exactArgs(1, "a pipeline name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, ok := states.Pipelines().Get(args[0])
			if !ok {
				return usagef("unknown pipeline %q; valid: %s", args[0], strings.Join(states.Pipelines().Names(), ", "))
			}
			if mermaid {
				_, err := fmt.Fprint(cmd.OutOrStdout(), p.Mermaid())
				return err
			}
			_, err := fmt.Fprint(cmd.OutOrStdout(), p.Text())
			return err
		},
	}
	show.Flags().BoolVar(&mermaid, "mermaid", false, "print a Mermaid state diagram generated from the FSM")
	cmd.AddCommand(show)
	return cmd
}
