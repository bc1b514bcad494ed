package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pvectl/pvectl/engine"
	"github.com/rogpeppe/go-internal/testscript"
	"github.com/stretchr/testify/require"
)

// TestMain lets the test binary act as pvectl: testscript installs it under
// that name, and process tests exec it with PVECTL_AS_MAIN=1.
func TestMain(m *testing.M) {
	if os.Getenv("PVECTL_AS_MAIN") == "1" {
		if os.Getenv("PVECTL_TEST_TASKS") == "1" {
			testTasks = []engine.Task{testSleepTask()}
		}
		os.Exit(run())
	}
	testscript.Main(m, map[string]func(){
		"pvectl": func() { os.Exit(run()) },
	})
}

func TestScripts(t *testing.T) {
	t.Parallel()
	testscript.Run(t, testscript.Params{
		Dir: "../../testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("PVECTL_STATE_DIR", env.WorkDir+"/state")
			env.Setenv("PVECTL_CONFIG", env.WorkDir+"/pvectl.yaml")
			env.Setenv("PVECTL_NOW", "2026-11-25T12:00:00Z")
			return nil
		},
		RequireExplicitExec: true,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"pvesim":  pvesimCmd,
			"subst":   substCmd,
			"ticks":   ticksCmd,
			"named":   namedCmd,   // real BIND 9, see dns_test.go
			"webhook": webhookCmd, // a webhook receiver, see webhook_test.go
			// exitcode N CMD ARGS... runs CMD and requires exit status N;
			// its stdout and stderr stay available to stdout/stderr checks.
			"exitcode": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) < 2 {
					ts.Fatalf("usage: exitcode N command [args...]")
				}
				want, err := strconv.Atoi(args[0])
				ts.Check(err)
				err = ts.Exec(args[1], args[2:]...)
				got := 0
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					got = ee.ExitCode()
				} else if err != nil {
					ts.Fatalf("%s: %v", args[1], err)
				}
				if got != want {
					ts.Fatalf("%s exited %d, want %d", args[1], got, want)
				}
			},
		},
	})
}

// Every scenario that talks to pvesim ends by proving that no request
// pvectl sent was rejected by PVE's schema (a scenario that forgets the
// check could hide an invalid request behind a retry).
func TestScriptsCheckSchemaRejections(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../../testdata/script/*.txtar")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		s := string(b)
		if strings.Contains(s, "\npvesim start") || strings.HasPrefix(s, "pvesim start") {
			require.Contains(t, s, "\npvesim no-rejections", "%s starts pvesim but never checks `pvesim no-rejections`", filepath.Base(f))
		}
	}
}
