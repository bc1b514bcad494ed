package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pvectl/pvectl/config"
	"github.com/pvectl/pvectl/engine"
	"github.com/pvectl/pvectl/store"
	"github.com/spf13/cobra"
)

// Exit codes (documented in docs/cli.md).
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// usageError marks bad usage or bad input: exit 2, nothing changed.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// failure marks an error as exit 1 even if it wraps one that maps to 2.
type failure struct{ err error }

func (e failure) Error() string { return e.err.Error() }

// globals are the persistent flags every command shares.
type globals struct {
	configPath string
	stateDir   string
	logFormat  string
	verbose    bool
	tz         string         // --tz as given; "" = the config's timezone
	zone       *time.Location // --tz resolved (PersistentPreRunE); nil = not given
	stdout     io.Writer
	stderr     io.Writer
}

func run() int {
	return runArgs(os.Args[1:], os.Stdout, os.Stderr)
}

func runArgs(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd(&globals{stdout: stdout, stderr: stderr})
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var es exitStatus
	if errors.As(err, &es) {
		return es.code
	}
	fmt.Fprintln(stderr, "pvectl:", err)
	return exitCode(err)
}

// exitCode maps an error to the exit code: 2 for bad usage or input and for
// every request the request API refused (nothing was changed), else 1.
func exitCode(err error) int {
	var ue usageError
	var ce *config.Error
	var ws *engine.ErrWrongState
	var inv *engine.ErrInvalid
	var f failure
	switch {
	case errors.As(err, &f):
		return exitFailure
	case errors.As(err, &ue), errors.As(err, &ce), isCobraUsage(err),
		errors.As(err, &ws), errors.As(err, &inv), errors.Is(err, engine.ErrConflict), errors.Is(err, engine.ErrNotFound):
		return exitUsage
	}
	return exitFailure
}

// isCobraUsage recognises cobra's own argument and flag errors.
func isCobraUsage(err error) bool {
	var fe *flagError
	return errors.As(err, &fe) || strings.HasPrefix(err.Error(), "unknown command ")
}

type flagError struct{ err error }

func (e *flagError) Error() string { return e.err.Error() }

func newRootCmd(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "pvectl",
		Short: "Provision, change and terminate Proxmox VE virtual machines from cron",
		Long: `pvectl is a provisioning engine for Proxmox VE hosting. The system crontab runs
"pvectl tick" every minute; each tick advances every VM that is not ready by one
resumable step of its deploy, change-package or terminate pipeline. Requests from
a billing system write a record and return at once; the tick does the work and
logs every step live and per VM.

Exit codes: 0 ok, 1 failure, 2 bad usage or input (nothing was changed).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return &flagError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&g.configPath, "config", envOr("PVECTL_CONFIG", config.DefaultPath), "config file (env PVECTL_CONFIG)")
	pf.StringVar(&g.stateDir, "state-dir", envOr("PVECTL_STATE_DIR", "/var/lib/pvectl"), "state directory: database and locks (env PVECTL_STATE_DIR)")
	pf.StringVar(&g.logFormat, "log-format", "console", "output format of log lines: console or json")
	pf.BoolVarP(&g.verbose, "verbose", "v", false, "also print debug lines (and, for tick, the lines of VMs that only wait)")
	pf.StringVar(&g.tz, "tz", "", "time zone of printed times: "+config.ZoneHelp+" (default: timezone in the config, else UTC; JSON stays UTC)")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if !cmd.Flags().Changed("tz") {
			return nil
		}
		loc, err := config.LoadZone(g.tz)
		if err != nil {
			return usagef("--tz: %v", err)
		}
		g.zone = loc
		return nil
	}

	root.AddCommand(
		newInitCmd(g),
		newTickCmd(g),
		newRunTaskCmd(g),
		newTasksCmd(g),
		newConfigCmd(g),
		newVersionCmd(g),
		newVMCmd(g),
		newLogCmd(g),
		newPipelineCmd(g),
		newResetStatusCmd(g),
		newDNSCmd(g),
		newBackupCmd(g),
		newSnapshotCmd(g),
		newStatsCmd(g),
		newHealthCmd(g),
		newNotificationsCmd(g),
		newPurgeCmd(g),
		newOrphansCmd(g),
		newAuditCmd(g),
	)
	strictGroups(root)
	return root
}

// strictGroups makes every command that only groups subcommands (vm, dns,
// config, pipeline) refuse to run bare or with an unknown subcommand: exit
// 2 with the valid names, never help with exit 0, so billing glue with a
// typo ("vm destroy") does not read success.
func strictGroups(c *cobra.Command) {
	for _, sub := range c.Commands() {
		strictGroups(sub)
	}
	if !c.HasSubCommands() || c.Run != nil || c.RunE != nil || !c.HasParent() {
		return
	}
	c.Args = func(cmd *cobra.Command, args []string) error { return nil }
	c.RunE = func(cmd *cobra.Command, args []string) error {
		var names []string
		for _, sub := range cmd.Commands() {
			if sub.IsAvailableCommand() {
				names = append(names, sub.Name())
			}
		}
		if len(args) == 0 {
			return usagef("%s needs a subcommand; valid: %s (see %s --help)", cmd.CommandPath(), strings.Join(names, ", "), cmd.CommandPath())
		}
		return usagef("unknown command %q for %s; valid: %s", args[0], cmd.CommandPath(), strings.Join(names, ", "))
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s needs %s (got %d arguments); see %s --help", cmd.CommandPath(), what, len(args), cmd.CommandPath())
		}
		return nil
	}
}

// loadConfig loads and validates the config file.
func (g *globals) loadConfig() (*config.Config, error) {
	c, err := config.Load(g.configPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, usageError{fmt.Errorf("%w (choose another file with --config or PVECTL_CONFIG; docs/pvectl.example.yaml is an annotated example)", err)}
	}
	if err != nil {
		return nil, usageError{err}
	}
	if err := engine.ValidateConfig(c, scheduledTasks()); err != nil {
		return nil, usageError{err}
	}
	return c, nil
}

func (g *globals) dbPath() string { return filepath.Join(g.stateDir, "pvectl.db") }

// checkStateDir refuses an empty --state-dir (it would put the database in
// the current directory, wherever cron happens to run).
func (g *globals) checkStateDir() error {
	if strings.TrimSpace(g.stateDir) == "" {
		return usagef("--state-dir (or PVECTL_STATE_DIR) is empty; give the state directory, default /var/lib/pvectl")
	}
	return nil
}

// openEngine loads the config, opens the existing store and builds an
// engine. It never creates a database (that is `pvectl init`): a missing,
// empty or foreign one is an error (exit 1) that says what to do. A store on
// a read-only state directory opens read-only; its writes fail naming that.
func (g *globals) openEngine(ctx context.Context) (*engine.Engine, func(), error) {
	if err := g.checkStateDir(); err != nil {
		return nil, nil, err
	}
	c, err := g.loadConfig()
	if err != nil {
		return nil, nil, err
	}
	clock, err := engine.ClockFromEnv()
	if err != nil {
		return nil, nil, usageError{err}
	}
	zone := g.zone
	if zone == nil {
		zone = c.Zone()
	}
	live, err := engine.NewLiveWith(g.stdout, engine.LiveOptions{Format: g.logFormat, Verbose: g.verbose, Clock: clock, Zone: zone})
	if err != nil {
		return nil, nil, usageError{err}
	}
	st, err := store.Open(ctx, g.dbPath())
	if err != nil {
		return nil, nil, err
	}
	e := &engine.Engine{Config: c, Store: st, StateDir: g.stateDir, Clock: clock, Live: live, Loc: zone,
		Pipelines: pipelines(), TaskList: scheduledTasks(), NewEnv: newEnv}
	return e, func() { _ = st.Close() }, nil
}

// openWritable is openEngine for commands whose whole point is to write
// (tick, run-task, requests): on a read-only state directory they fail
// before doing anything.
func (g *globals) openWritable(ctx context.Context) (*engine.Engine, func(), error) {
	e, closeFn, err := g.openEngine(ctx)
	if err != nil {
		return nil, nil, err
	}
	if e.Store.ReadOnly() {
		closeFn()
		return nil, nil, fmt.Errorf("%w: %s cannot be written, so this command cannot run here (only vm list, vm show, log and tasks work on a read-only copy)", store.ErrReadOnly, g.stateDir)
	}
	return e, closeFn, nil
}

// request runs one request of the request API (vm terminate, suspend,
// reset-status, …): it opens the engine writable (a read-only state
// directory fails before anything is asked), runs call, prints the
// result's warnings on stderr and closes the store.
func (g *globals) request(cmd *cobra.Command, call func(ctx context.Context, e *engine.Engine) (engine.Result, error)) (engine.Result, error) {
	e, closeFn, err := g.openWritable(cmd.Context())
	if err != nil {
		return engine.Result{}, err
	}
	defer closeFn()
	res, err := call(cmd.Context(), e)
	for _, w := range res.Warnings {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w)
	}
	return res, err
}

// withVM opens the engine, finds the VM named by ref (service id or
// hostname; unknown = exit 2) and runs fn with both.
func (g *globals) withVM(ctx context.Context, ref string, fn func(e *engine.Engine, vm engine.VM) error) error {
	e, closeFn, err := g.openEngine(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	vm, err := e.FindVM(ctx, ref)
	if err != nil {
		return err
	}
	return fn(e, vm)
}
