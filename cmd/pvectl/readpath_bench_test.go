package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pvectl/pvectl/engine"
	_ "modernc.org/sqlite"
)

// BenchmarkReadPaths runs the built pvectl binary against a store seeded
// with N ready VMs (10,000; 100,000 with PVECTL_BENCH_LARGE=1), each with
// an IPv4 and an IPv6 address and 50 runs in its log, and times the idle
// and read commands an operator or cron runs most. Every iteration runs
// `pvectl version` (the reference: process start, no store) right before
// the command, so each figure comes with its reference from the same run:
// ms/run and peak-MB for the command, ref-ms and ref-MB for version,
// delta-ms (command - version) and ratio.
func BenchmarkReadPaths(b *testing.B) {
	sizes := []int{10_000}
	if os.Getenv("PVECTL_BENCH_LARGE") == "1" {
		sizes = append(sizes, 100_000)
	}
	bin := buildPvectl(b)
	for _, n := range sizes {
		b.Run(fmt.Sprintf("vms=%d", n), func(b *testing.B) {
			dir := seedReadStore(b, bin, n, 50)
			logVM := fmt.Sprintf("svc-%06d", n/2)
			cmds := []struct {
				name string
				args []string
				prep func(b *testing.B) // before each run, outside the timer
			}{
				{"version", []string{"version"}, nil},
				{"run-task_process_vms", []string{"run-task", "process_vms"}, nil},
				{"tick_idle", []string{"tick"}, func(b *testing.B) { idleTick(b, dir) }},
				{"vm_list", []string{"vm", "list"}, nil},
				{"vm_list_json", []string{"vm", "list", "--json"}, nil},
				{"vm_list_status", []string{"vm", "list", "--status", "set_ip"}, nil},
				{"vm_list_node", []string{"vm", "list", "--node", "pve2"}, nil},
				{"vm_list_product", []string{"vm", "list", "--product", "p3"}, nil},
				{"vm_list_held", []string{"vm", "list", "--held"}, nil},
				{"log_vm", []string{"log", logVM}, nil},
			}
			for _, c := range cmds {
				b.Run(c.name, func(b *testing.B) {
					var ref, cmd runStats
					// One run outside the timer: the page cache holds the
					// database, as it does for a cron job every minute.
					if c.prep != nil {
						c.prep(b)
					}
					runPvectl(b, bin, dir, c.args...)
					for b.Loop() {
						if c.prep != nil {
							b.StopTimer()
							c.prep(b)
							b.StartTimer()
						}
						ref.add(runPvectl(b, bin, dir, "version"))
						cmd.add(runPvectl(b, bin, dir, c.args...))
					}
					// Peak RSS from one more run of each, through the launcher.
					cmd.peakMB = runPvectl(b, bin, dir, append([]string{rssLaunch}, c.args...)...).maxMB
					ref.peakMB = runPvectl(b, bin, dir, rssLaunch, "version").maxMB
					b.ReportMetric(cmd.ms(), "ms/run")
					b.ReportMetric(ref.ms(), "ref-ms")
					b.ReportMetric(cmd.ms()-ref.ms(), "delta-ms")
					b.ReportMetric(cmd.ms()/ref.ms(), "ratio")
					b.ReportMetric(cmd.peakMB, "peak-MB")
					b.ReportMetric(ref.peakMB, "ref-MB")
				})
			}
		})
	}
}

// runStats sums the runs of one command.
type runStats struct {
	total  time.Duration
	n      int
	peakMB float64
}

type runResult struct {
	wall  time.Duration
	maxMB float64 // peak RSS; only the process's own through rssLaunch
}

func (s *runStats) add(r runResult) {
	s.total += r.wall
	s.n++
}

func (s *runStats) ms() float64 {
	if s.n == 0 {
		return 0
	}
	return float64(s.total.Microseconds()) / 1000 / float64(s.n)
}

// rssLaunch as runPvectl's first argument runs pvectl under GNU time
// (/usr/bin/time), which forks it from its own small process and reports
// its peak RSS. Go starts a child with vfork, and Linux counts the parent's
// resident set at exec in the child's peak RSS (rusage maxrss): measured
// directly, every command would show the benchmark process's own ~30 MB.
const rssLaunch = "\x00rss"

const gnuTime = "/usr/bin/time"

// buildPvectl builds cmd/pvectl into a temporary directory (the build
// cache makes it quick after the first time).
func buildPvectl(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "pvectl")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runPvectl runs the binary once and returns its wall time and peak RSS. It
// fails the benchmark when the command fails or writes to stderr.
func runPvectl(b *testing.B, bin, dir string, args ...string) runResult {
	b.Helper()
	env := append(os.Environ(), "PVECTL_STATE_DIR="+filepath.Join(dir, "state"),
		"PVECTL_CONFIG="+filepath.Join(dir, "pvectl.yaml"))
	cmd := exec.Command(bin, args...)
	var rssFile string
	if len(args) > 0 && args[0] == rssLaunch {
		args = args[1:]
		if _, err := os.Stat(gnuTime); err != nil {
			b.Logf("no %s: peak RSS includes the benchmark process's own", gnuTime)
			cmd = exec.Command(bin, args...)
		} else {
			rssFile = filepath.Join(b.TempDir(), "rss")
			cmd = exec.Command(gnuTime, append([]string{"-f", "%M", "-o", rssFile, bin}, args...)...)
		}
	}
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = nopWriter{}, &stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil || stderr.Len() > 0 {
		b.Fatalf("pvectl %v: %v\n%s", args, err, stderr.String())
	}
	var mb float64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		mb = float64(ru.Maxrss) / 1024 // kilobytes on Linux
	}
	if rssFile != "" {
		out, err := os.ReadFile(rssFile)
		if err != nil {
			b.Fatal(err)
		}
		kb, err := strconv.Atoi(strings.TrimSpace(string(out)))
		if err != nil {
			b.Fatalf("%s: %q: %v", gnuTime, out, err)
		}
		mb = float64(kb) / 1024
	}
	return runResult{wall: wall, maxMB: mb}
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

// idleTick prepares a `pvectl tick` with nothing to do: the minutely tasks
// (process_vms, restore_backup, notify) last started a minute ago, so they
// are due and find no work, and every other task has just started, so it
// is not due.
func idleTick(b *testing.B, dir string) {
	b.Helper()
	now := time.Now()
	db := openSeedDB(b, dir)
	defer db.Close()
	for _, t := range engine.StandardTasks() {
		last := now
		if t.DefaultInterval <= time.Minute {
			last = now.Add(-time.Minute)
		}
		res, err := db.Exec(`UPDATE task_runs SET started_at = ?, finished_at = ? WHERE task = ?`, last.UnixMilli(), last.UnixMilli(), t.Name)
		if err == nil {
			var n int64
			if n, err = res.RowsAffected(); err == nil && n == 0 {
				_, err = db.Exec(`INSERT INTO task_runs (task, pid, started_at, finished_at, result) VALUES (?, 1, ?, ?, 'ok')`,
					t.Name, last.UnixMilli(), last.UnixMilli())
			}
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

const readBenchConfig = `proxmox:
  url: https://127.0.0.1:1
  token_id: pvectl@pve!t
  token_secret: not-a-real-secret
vmid_range: {min: 1000, max: 999999}
products:
  p1:
    template: {vmid: 900, node: pve1}
    target_node: pve1
    network: {ipv4: 1, ipv6: 1}
  p2:
    template: {vmid: 900, node: pve1}
    target_node: pve2
    network: {ipv4: 1, ipv6: 1}
  p3:
    template: {vmid: 900, node: pve1}
    target_node: pve3
    network: {ipv4: 1, ipv6: 1}
ip_pools:
  - {name: v4, nodes: [pve1, pve2, pve3], family: 4, bridge: vmbr0, network: 10.0.0.0/8, gateway: 10.0.0.1, first: 10.1.0.0, last: 10.255.255.250}
  - {name: v6, nodes: [pve1, pve2, pve3], family: 6, bridge: vmbr0, network: "2001:db8::/64", gateway: "2001:db8::1", first: "2001:db8::1:0", last: "2001:db8::ffff:ffff"}
`

// seedReadStore creates a store with `pvectl init` and fills it in one
// transaction: n ready VMs over 3 nodes and 3 products (every 100th one held
// at set_ip), two addresses each, runsPerVM runs of two lines each per VM,
// as of now.
func seedReadStore(b *testing.B, bin string, n, runsPerVM int) string {
	b.Helper()
	start := time.Now()
	dir := b.TempDir()
	if keep := os.Getenv("PVECTL_BENCH_DIR"); keep != "" {
		// Keep the seeded store, to profile commands against it.
		dir = filepath.Join(keep, fmt.Sprintf("vms-%d", n))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "pvectl.yaml"), []byte(readBenchConfig), 0o600); err != nil {
		b.Fatal(err)
	}
	runPvectl(b, bin, dir, "init")
	db := openSeedDB(b, dir)
	defer db.Close()
	// A built binary runs on the real clock (PVECTL_NOW is a test hook).
	now := time.Now().UnixMilli()
	stmts := []struct {
		q    string
		args []any
	}{
		{`PRAGMA synchronous = OFF`, nil},
		{`BEGIN`, nil},
		// n ready VMs; every 100th one held at set_ip with an error.
		{`WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ?)
		INSERT INTO vms (id, service_id, hostname, product, status, target_node, node, vmid, held, last_error,
			power_state, power_seen_at, step_started_at, created_at, updated_at)
		SELECT i, printf('svc-%06d', i), printf('vm%06d.example.com', i), 'p' || (i % 3 + 1),
			CASE WHEN i % 100 = 0 THEN 'set_ip' ELSE 'ready' END, 'pve' || (i % 3 + 1), 'pve' || (i % 3 + 1),
			CASE WHEN i % 100 = 0 THEN NULL ELSE 1000 + i END, i % 100 = 0,
			CASE WHEN i % 100 = 0 THEN 'pool v4 exhausted' ELSE '' END,
			'running', ?, ? - 86400000, ? - 86400000 * 2, ?
		FROM s`, []any{n, now, now, now, now}},
		{`WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ?)
		INSERT INTO ip_allocations (address, family, pool, vm_id, created_at)
		SELECT printf('10.%d.%d.%d', 1 + i / 65536, (i / 256) % 256, i % 256), 4, 'v4', i, ? FROM s WHERE i % 100 <> 0`, []any{n, now}},
		{`WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ?)
		INSERT INTO ip_allocations (address, family, pool, vm_id, created_at)
		SELECT printf('2001:db8::%x:%x', 1 + i / 65536, i % 65536), 6, 'v6', i, ? FROM s WHERE i % 100 <> 0`, []any{n, now}},
		// runsPerVM runs per VM, interleaved as ticks write them (run k of
		// every VM, then run k+1), each with two lines.
		{`WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < ? - 1)
		INSERT INTO runs (id, vm_id, task, started_at, finished_at, result)
		SELECT i + 1, i % ? + 1, 'process_vms', ? - (? - i / ?) * 60000, ? - (? - i / ?) * 60000 + 900, 'success' FROM s`,
			[]any{n * runsPerVM, n, now, runsPerVM, n, now, runsPerVM, n}},
		{`INSERT INTO run_lines (run_id, at, step, from_state, to_state, result, detail, duration_ms)
		SELECT id, started_at + 100, 'set_cpu_ram', 'migrated', 'set_cpu_ram', 'success', 'cores 2, memory 2048 MB', 412 FROM runs`, nil},
		{`INSERT INTO run_lines (run_id, at, step, from_state, to_state, result, detail, duration_ms)
		SELECT id, started_at + 600, 'set_system_disk_size', 'set_cpu_ram', 'set_cpu_ram', 'waiting', 'task resize running', 305 FROM runs`, nil},
		{`COMMIT`, nil},
		{`PRAGMA synchronous = FULL`, nil},
		{`PRAGMA wal_checkpoint(TRUNCATE)`, nil},
	}
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s.q, s.args...); err != nil {
			b.Fatalf("seed: %v\n%s", err, s.q)
		}
	}
	b.Logf("seeded %d VMs, %d runs in %s", n, n*runsPerVM, time.Since(start).Round(time.Millisecond))
	return dir
}

func openSeedDB(b *testing.B, dir string) *sql.DB {
	b.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "state", "pvectl.db")+"?_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)")
	if err != nil {
		b.Fatal(err)
	}
	return db
}
