package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// These tests run real pvectl processes (this test binary with
// PVECTL_AS_MAIN=1) to prove the task locks work across processes.

type proc struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
}

func pvectlProc(t *testing.T, dir string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(os.Args[0], args...)}
	p.cmd.Env = append(os.Environ(), "PVECTL_AS_MAIN=1", "PVECTL_TEST_TASKS=1",
		"PVECTL_STATE_DIR="+filepath.Join(dir, "state"), "PVECTL_CONFIG="+filepath.Join(dir, "pvectl.yaml"))
	p.cmd.Env = append(p.cmd.Env, env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	require.NoError(t, p.cmd.Start())
	t.Cleanup(func() { _ = p.cmd.Process.Kill(); _, _ = p.cmd.Process.Wait() })
	return p
}

func (p *proc) exitCode() int {
	err := p.cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func processDir(t *testing.T) string {
	dir := t.TempDir()
	// The smallest valid config, shared with the engine tests.
	cfg, err := os.ReadFile(filepath.Join("..", "..", "testdata", "config", "minimal.yaml"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pvectl.yaml"), cfg, 0o600))
	p := pvectlProc(t, dir, nil, "init")
	require.Equal(t, 0, p.exitCode(), p.stderr.String())
	return dir
}

func taskStatus(t *testing.T, dir, env, name string) map[string]any {
	t.Helper()
	p := pvectlProc(t, dir, []string{env}, "tasks", "--json")
	require.Equal(t, 0, p.exitCode(), p.stderr.String())
	var rows []map[string]any
	require.NoError(t, json.Unmarshal(p.stdout.Bytes(), &rows))
	for _, r := range rows {
		if r["name"] == name {
			return r
		}
	}
	t.Fatalf("task %s not listed: %s", name, p.stdout.String())
	return nil
}

func TestTwoRunTaskProcessesOnlyOneRuns(t *testing.T) {
	t.Parallel()
	dir := processDir(t)
	env := []string{"PVECTL_TEST_SLEEP=3s", "PVECTL_NOW=2026-11-25T12:00:00Z"}
	// B starts once A holds the lock (A writes the started file from inside
	// the task): started together, a slow start of one process on a loaded
	// machine could let the other finish first, and both would run.
	started := filepath.Join(dir, "started")
	a := pvectlProc(t, dir, append([]string{"PVECTL_TEST_STARTED=" + started}, env...), "run-task", "test_sleep")
	require.Eventually(t, func() bool { _, err := os.Stat(started); return err == nil }, time.Minute, 10*time.Millisecond,
		"the first process never started test_sleep: %s", a.stderr.String())
	b := pvectlProc(t, dir, env, "run-task", "test_sleep")
	codeA, codeB := a.exitCode(), b.exitCode()

	winner, loser := a, b
	if codeA != 0 {
		winner, loser = b, a
	}
	require.ElementsMatch(t, []int{0, 1}, []int{codeA, codeB}, "exactly one process runs the task\nA: %s%s\nB: %s%s",
		a.stdout.String(), a.stderr.String(), b.stdout.String(), b.stderr.String())
	require.Contains(t, loser.stdout.String(),
		fmt.Sprintf("task test_sleep skipped: lock held by pid %d since 2026-11-25T12:00:00Z", winner.cmd.Process.Pid))
	require.Contains(t, loser.stderr.String(), "lock held")

	st := taskStatus(t, dir, env[1], "test_sleep")
	require.Equal(t, "ok", st["last_result"])
	require.EqualValues(t, 1, st["last_processed"])
	require.Equal(t, false, st["lock_held"])
}

func TestKilledTickReleasesItsLockAtOnce(t *testing.T) {
	t.Parallel()
	dir := processDir(t)
	started := filepath.Join(dir, "started")
	a := pvectlProc(t, dir, []string{"PVECTL_TEST_SLEEP=10m", "PVECTL_TEST_STARTED=" + started,
		"PVECTL_NOW=2026-11-25T12:00:00Z"}, "tick")
	require.Eventually(t, func() bool { _, err := os.Stat(started); return err == nil }, time.Minute, 20*time.Millisecond,
		"the tick never started test_sleep: %s", a.stderr.String())

	st := taskStatus(t, dir, "PVECTL_NOW=2026-11-25T12:00:10Z", "test_sleep")
	require.Equal(t, true, st["lock_held"])
	require.EqualValues(t, a.cmd.Process.Pid, st["lock_pid"])

	require.NoError(t, a.cmd.Process.Signal(syscall.SIGKILL))
	_ = a.exitCode()

	st = taskStatus(t, dir, "PVECTL_NOW=2026-11-25T12:00:20Z", "test_sleep")
	require.Equal(t, false, st["lock_held"], "the kernel released the dead process's lock")
	require.Equal(t, "interrupted", st["last_result"])

	b := pvectlProc(t, dir, []string{"PVECTL_TEST_SLEEP=0s", "PVECTL_NOW=2026-11-25T12:01:00Z"}, "tick")
	require.Equal(t, 0, b.exitCode(), b.stderr.String())
	require.NotContains(t, b.stdout.String(), "skipped")
	st = taskStatus(t, dir, "PVECTL_NOW=2026-11-25T12:01:10Z", "test_sleep")
	require.Equal(t, "ok", st["last_result"])
	require.Equal(t, "2026-11-25T12:01:00Z", st["last_start"])
}

func TestLogFollowPrintsNewLinesAsTicksWriteThem(t *testing.T) {
	t.Parallel()
	dir := processDir(t)
	env := []string{"PVECTL_NOW=2026-11-25T12:00:00Z"}
	c := pvectlProc(t, dir, env, "vm", "create", "--service-id", "f1", "--product", "small", "--hostname", "f1.example.test")
	require.Equal(t, 0, c.exitCode(), c.stderr.String())

	// The config points at an unreachable PVE: the step waits and logs it
	// (an outage counts no attempt). A first tick writes run 1 before
	// --follow starts.
	tick := pvectlProc(t, dir, env, "run-task", "process_vms")
	require.Equal(t, 0, tick.exitCode(), tick.stderr.String())

	var out syncBuffer
	f := &proc{cmd: exec.Command(os.Args[0], "log", "f1", "--follow")}
	f.cmd.Env = append(os.Environ(), "PVECTL_AS_MAIN=1", "PVECTL_STATE_DIR="+filepath.Join(dir, "state"),
		"PVECTL_CONFIG="+filepath.Join(dir, "pvectl.yaml"), env[0])
	f.cmd.Stdout, f.cmd.Stderr = &out, &f.stderr
	require.NoError(t, f.cmd.Start())
	t.Cleanup(func() { _ = f.cmd.Process.Kill() })

	// --follow has printed the existing run: it is running and reading.
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "waiting (PVE unreachable: list cluster resources") },
		30*time.Second, 50*time.Millisecond, "follow never printed the existing run: %q", out.String())
	require.Equal(t, 1, strings.Count(out.String(), "run #"), out.String())

	// Only now a second tick waits again at the same step: its run is
	// folded into run 1, and --follow must say so without being restarted.
	tick = pvectlProc(t, dir, []string{"PVECTL_NOW=2026-11-25T13:00:00Z"}, "run-task", "process_vms")
	require.Equal(t, 0, tick.exitCode(), tick.stderr.String())
	require.Eventually(t, func() bool {
		return strings.Contains(out.String(), "… and 1 more waiting run(s) at this step, the last at 2026-11-25T13:00:00Z: waiting (PVE unreachable: list cluster resources")
	}, 30*time.Second, 50*time.Millisecond, "follow never printed the folded run: %q", out.String())
	require.Equal(t, 1, strings.Count(out.String(), "run #"), out.String())

	require.NoError(t, f.cmd.Process.Signal(syscall.SIGINT))
	require.Equal(t, 0, f.exitCode(), "log --follow exits cleanly on Ctrl-C: %s", f.stderr.String())

	// --follow --json prints JSON Lines.
	var jout syncBuffer
	j := &proc{cmd: exec.Command(os.Args[0], "log", "f1", "--follow", "--json")}
	j.cmd.Env = f.cmd.Env
	j.cmd.Stdout, j.cmd.Stderr = &jout, &j.stderr
	require.NoError(t, j.cmd.Start())
	t.Cleanup(func() { _ = j.cmd.Process.Kill() })
	require.Eventually(t, func() bool { return strings.Count(jout.String(), "\n") >= 2 }, 30*time.Second, 50*time.Millisecond)
	// The create request comes first (an audit line), then the step.
	lines := strings.SplitN(jout.String(), "\n", 3)
	var request, step map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &request), lines[0])
	require.Equal(t, "request", request["kind"])
	require.Equal(t, "vm create", request["step"])
	require.Equal(t, "creation", request["to"])
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &step), lines[1])
	require.Equal(t, "step", step["kind"])
	require.Equal(t, "Allocate VMID and IPs", step["step"])
	require.Equal(t, "creation", step["from"])
	require.NoError(t, j.cmd.Process.Signal(syscall.SIGINT))
	require.Equal(t, 0, j.exitCode())
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A database deleted, or replaced by another file, while a tick runs is not
// written to as if nothing happened: the tick exits 1 and says what
// happened, and no new database appears at the path.
func TestTickNoticesDatabaseRemovedOrReplaced(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, db string)
		want   string
	}{
		{"deleted", func(t *testing.T, db string) { require.NoError(t, os.Remove(db)) }, "was deleted while pvectl ran"},
		{"replaced", func(t *testing.T, db string) {
			other := db + ".restored"
			require.NoError(t, os.WriteFile(other, []byte("SQLite format 3\x00 not really"), 0o600))
			require.NoError(t, os.Rename(other, db))
		}, "was replaced by another file while pvectl ran"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := processDir(t)
			db := filepath.Join(dir, "state", "pvectl.db")
			started := filepath.Join(dir, "started")
			a := pvectlProc(t, dir, []string{"PVECTL_TEST_SLEEP=2s", "PVECTL_TEST_STARTED=" + started,
				"PVECTL_NOW=2026-11-25T12:00:00Z"}, "tick")
			require.Eventually(t, func() bool { _, err := os.Stat(started); return err == nil }, time.Minute, 20*time.Millisecond,
				"the tick never started test_sleep: %s", a.stderr.String())
			tc.change(t, db)
			require.Equal(t, 1, a.exitCode(), "stdout: %s\nstderr: %s", a.stdout.String(), a.stderr.String())
			require.Contains(t, a.stderr.String(), tc.want)
			if tc.name == "deleted" {
				require.NoFileExists(t, db, "a new database was created in place of the deleted one")
			}
		})
	}
}
