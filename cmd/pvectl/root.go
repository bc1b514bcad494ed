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

// globals are the persistent flags every command shares.
type globals struct {
	configPath string
	stateDir   string
	logFormat  string
	verbose    bool
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
	fmt.Fprintln(stderr, "pvectl:", err)
	var ue usageError
	var ce *config.Error
	switch {
	case errors.As(err, &ue), errors.As(err, &ce), isCobraUsage(err):
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
	pf.BoolVarP(&g.verbose, "verbose", "v", false, "also print debug lines")

	root.AddCommand(
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
	)
	return root
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
	if err := engine.ValidateConfig(c); err != nil {
		return nil, usageError{err}
	}
	return c, nil
}

// errNoDatabase: a command about existing VMs found no database, so it
// creates none (a mistyped --state-dir must not leave an empty one behind).
var errNoDatabase = errors.New("no pvectl database")

func (g *globals) dbPath() string { return filepath.Join(g.stateDir, "pvectl.db") }

// openExisting is openEngine for commands about existing records: without
// a database it fails with errNoDatabase (exit 2) and creates nothing.
func (g *globals) openExisting(ctx context.Context) (*engine.Engine, func(), error) {
	if _, err := os.Stat(g.dbPath()); errors.Is(err, os.ErrNotExist) {
		return nil, nil, usageError{fmt.Errorf("%w at %s: no VM has been created with this --state-dir (wrong --state-dir or PVECTL_STATE_DIR?)", errNoDatabase, g.dbPath())}
	}
	return g.openEngine(ctx)
}

// openEngine loads the config, opens the store and builds an engine.
func (g *globals) openEngine(ctx context.Context) (*engine.Engine, func(), error) {
	c, err := g.loadConfig()
	if err != nil {
		return nil, nil, err
	}
	clock, err := engine.ClockFromEnv()
	if err != nil {
		return nil, nil, usageError{err}
	}
	live, err := engine.NewLive(g.stdout, g.logFormat, g.verbose, clock)
	if err != nil {
		return nil, nil, usageError{err}
	}
	st, err := store.Open(ctx, g.dbPath())
	if err != nil {
		return nil, nil, err
	}
	e := &engine.Engine{Config: c, Store: st, StateDir: g.stateDir, Clock: clock, Live: live,
		Pipelines: pipelines(), NewEnv: newEnv}
	return e, func() { _ = st.Close() }, nil
}

// withVM opens the engine, finds the VM named by ref (service id or
// hostname; unknown = exit 2) and runs fn with both.
func (g *globals) withVM(ctx context.Context, ref string, fn func(e *engine.Engine, vm store.VM) error) error {
	e, closeFn, err := g.openExisting(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	vm, err := findVM(ctx, e, ref)
	if err != nil {
		return err
	}
	return fn(e, vm)
}
