package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// PVECTL_NOW is a test hook (engine.ClockFromEnv honours it only under
// testing.Testing()). A real pvectl binary, built with `go build`, must ignore
// it: otherwise a stray variable in a cron environment would freeze the clock.
func TestRealBinaryIgnoresPVECTLNOW(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "pvectl")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, string(out))

	dir := processDir(t)
	env := append(os.Environ(),
		"PVECTL_STATE_DIR="+filepath.Join(dir, "state"),
		"PVECTL_CONFIG="+filepath.Join(dir, "pvectl.yaml"),
		"PVECTL_NOW=2001-01-01T00:00:00Z")
	runBin := func(args ...string) (string, string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		require.NoError(t, cmd.Run(), "pvectl %v\nstdout: %s\nstderr: %s", args, stdout.String(), stderr.String())
		return stdout.String(), stderr.String()
	}

	before := time.Now().UTC().Truncate(time.Second)
	runBin("run-task", "process_vms")
	after := time.Now().UTC()

	stdout, _ := runBin("tasks", "--json")
	var rows []map[string]any
	require.NoError(t, json.Unmarshal([]byte(stdout), &rows), stdout)
	var row map[string]any
	for _, r := range rows {
		if r["name"] == "process_vms" {
			row = r
		}
	}
	require.NotNil(t, row, "process_vms not listed: %s", stdout)
	require.Equal(t, "ok", row["last_result"], stdout)
	ls, ok := row["last_start"].(string)
	require.True(t, ok, "last_start is not a string: %s", stdout)
	start, err := time.Parse(time.RFC3339Nano, ls)
	require.NoError(t, err, stdout)
	require.NotEqual(t, 2001, start.Year(), "the real binary used PVECTL_NOW: %s", stdout)
	require.False(t, start.Before(before.Add(-time.Second)) || start.After(after.Add(time.Second)),
		"last_start %s is not the real time (run between %s and %s)", ls, before, after)
}

// The counterpart: the test binary acting as pvectl does honour PVECTL_NOW,
// so the test above fails for the right reason if the guard ever goes.
func TestTestBinaryHonoursPVECTLNOW(t *testing.T) {
	t.Parallel()
	dir := processDir(t)
	env := "PVECTL_NOW=2001-01-01T00:00:00Z"
	p := pvectlProc(t, dir, []string{env}, "run-task", "process_vms")
	require.Equal(t, 0, p.exitCode(), p.stderr.String())
	st := taskStatus(t, dir, env, "process_vms")
	require.Equal(t, "2001-01-01T00:00:00Z", st["last_start"])
}
