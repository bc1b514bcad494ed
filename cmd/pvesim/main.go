// Command pvesim serves the pvesim Proxmox VE API simulator over HTTP.
//
//	pvesim --listen 127.0.0.1:8006 --cluster testdata/pvesim/cluster.yaml
//
// On start it prints the API URL, the token id and the secret, one
// "key=value" per line, then serves /api2/json/... and the /_sim/... control
// endpoints (see docs/simulator.md).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "pvesim:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("pvesim", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8006", "address to listen on (port 0 picks a free port)")
	clusterFile := fs.String("cluster", "", "cluster description (YAML); default: the built-in 2-node cluster")
	clock := fs.String("clock", "real", "clock: real, or manual (advance with POST /_sim/clock/advance)")
	taskDuration := fs.Duration("task-duration", 0, "default duration of every task (overrides the cluster file)")
	var typeDurations multiFlag
	fs.Var(&typeDurations, "task-duration-type", "per-type task duration TYPE=DURATION, e.g. qmclone=30s (repeatable)")
	seed := fs.Uint64("seed", 1, "seed for error rates and latency jitter")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c := pvesim.DefaultCluster()
	if *clusterFile != "" {
		var err error
		if c, err = pvesim.LoadCluster(*clusterFile); err != nil {
			return err
		}
	}
	if *taskDuration > 0 {
		c.Durations.Task = pvesim.Duration(*taskDuration)
	}
	for _, td := range typeDurations {
		typ, ds, ok := strings.Cut(td, "=")
		d, err := time.ParseDuration(ds)
		if !ok || err != nil {
			return fmt.Errorf("bad --task-duration-type %q (want TYPE=DURATION)", td)
		}
		if c.Durations.Tasks == nil {
			c.Durations.Tasks = map[string]pvesim.Duration{}
		}
		c.Durations.Tasks[typ] = pvesim.Duration(d)
	}
	opts := []pvesim.Option{pvesim.WithSeed(*seed)}
	switch *clock {
	case "real":
	case "manual":
		opts = append(opts, pvesim.WithManualClock(time.Now().UTC().Truncate(time.Second)))
	default:
		return fmt.Errorf("bad --clock %q (real or manual)", *clock)
	}
	sim, err := pvesim.New(c, opts...)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(stdout, "PVE_API_URL=%s/api2/json\n", base)
	if len(c.Tokens) > 0 {
		fmt.Fprintf(stdout, "PVE_TOKEN_ID=%s\nPVE_TOKEN_SECRET=%s\n", c.Tokens[0].ID, c.Tokens[0].Secret)
	}
	fmt.Fprintf(stdout, "PVESIM_CONTROL_URL=%s/_sim\n", base)
	if f, ok := stdout.(*os.File); ok {
		_ = f.Sync()
	}
	srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
