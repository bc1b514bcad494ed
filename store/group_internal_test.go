package store

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// newInternalStore is a store made by Create in a temp dir, closed with
// the test.
func newInternalStore(t *testing.T) *Store {
	t.Helper()
	s, err := Create(context.Background(), filepath.Join(t.TempDir(), "pvectl.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// newGroupStore is a store in a temp dir with n VMs at set_ip, each with
// an open run; it returns the VMs and their run ids.
func newGroupStore(t *testing.T, n int) (*Store, []VM, []int64) {
	t.Helper()
	ctx := context.Background()
	s := newInternalStore(t)
	var vms []VM
	var runs []int64
	for i := range n {
		vm, _, err := s.VMCreate(ctx, NewVM{ServiceID: fmt.Sprintf("svc-%03d", i), Hostname: fmt.Sprintf("h%03d.example.test", i),
			Product: "small", Status: "set_ip", Now: time.Now()})
		require.NoError(t, err)
		id, err := s.RunStart(ctx, vm.ID, "process_vms", time.Now())
		require.NoError(t, err)
		vms, runs = append(vms, vm), append(runs, id)
	}
	return s, vms, runs
}

// Concurrent outcomes that arrive while a commit runs go in one
// transaction; one whose compare-and-set finds the VM moved fails alone,
// and its outbox event and run line are not written, while the others of
// the batch, with theirs, are.
func TestGroupCommitBatchesAndFailsOnlyTheStaleItem(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const n = 20
	s, vms, runs := newGroupStore(t, n)

	// Another connection holds the write lock, so the first outcome's
	// BEGIN waits and the others queue behind it.
	other, err := sql.Open("sqlite", "file:"+s.Path()+"?_pragma=busy_timeout(10000)")
	require.NoError(t, err)
	t.Cleanup(func() { _ = other.Close() })
	conn, err := other.Conn(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	_, err = conn.ExecContext(ctx, "BEGIN IMMEDIATE")
	require.NoError(t, err)

	commits0, _ := s.GroupCommits()
	stale := func(i int) bool { return i%4 == 3 }
	errs := make([]error, n)
	var wg sync.WaitGroup
	apply := func(i int) {
		wg.Go(func() {
			o := Outcome{ID: vms[i].ID, FromStatus: "set_ip", FromVersion: vms[i].Version, ToStatus: "clone", Now: time.Now(),
				ClearPending: true, FinishRun: "success",
				Line:   &RunLine{RunID: runs[i], At: time.Now(), Step: "Clone VM", From: "set_ip", To: "clone", Result: "success"},
				Events: []OutboxEvent{{EventID: fmt.Sprintf("ev-%d", i), Event: "vm_ready", ServiceID: vms[i].ServiceID, Payload: "{}", Channels: []string{"webhook"}}}}
			if stale(i) {
				o.FromVersion++ // someone else moved it
			}
			_, errs[i] = s.VMApplyStep(ctx, o)
		})
	}
	// VM 0 (not stale) leads: its batch of one waits on the write lock.
	apply(0)
	require.Eventually(t, func() bool {
		s.gc.mu.Lock()
		defer s.gc.mu.Unlock()
		return s.gc.running
	}, 10*time.Second, time.Millisecond)
	for i := 1; i < n; i++ {
		apply(i)
	}
	// Wait until every outcome but the leader's is queued.
	require.Eventually(t, func() bool {
		s.gc.mu.Lock()
		defer s.gc.mu.Unlock()
		return len(s.gc.queue) == n-1
	}, 10*time.Second, time.Millisecond)
	_, err = conn.ExecContext(ctx, "ROLLBACK")
	require.NoError(t, err)
	wg.Wait()

	commits, _ := s.GroupCommits()
	require.Equal(t, int64(2), commits-commits0, "the leader's own commit, then one for the %d queued outcomes", n-1)
	for i := range n {
		vm, err := s.VMGet(ctx, vms[i].ID)
		require.NoError(t, err)
		var lines, events int
		require.NoError(t, s.db.QueryRowContext(ctx, `SELECT count(*) FROM run_lines WHERE run_id = ?`, runs[i]).Scan(&lines))
		require.NoError(t, s.db.QueryRowContext(ctx, `SELECT count(*) FROM outbox WHERE event_id = ?`, fmt.Sprintf("ev-%d", i)).Scan(&events))
		if stale(i) {
			require.ErrorIs(t, errs[i], ErrConflict, "vm %d", i)
			require.Equal(t, "set_ip", vm.Status)
			require.Zero(t, lines, "a failed outcome's line is rolled back with it")
			require.Zero(t, events, "a failed outcome's event is rolled back with it")
			continue
		}
		require.NoError(t, errs[i], "vm %d", i)
		require.Equal(t, "clone", vm.Status)
		require.Equal(t, vms[i].Version+1, vm.Version)
		require.Equal(t, 1, lines)
		require.Equal(t, 1, events)
	}
}

// The child of TestGroupCommitKill9: applies outcomes to every VM of the
// database from concurrent workers and prints each acknowledged one.
func init() {
	path := os.Getenv("PVECTL_GROUPCOMMIT_CHILD")
	if path == "" {
		return
	}
	os.Exit(groupCommitChild(path))
}

func groupCommitChild(path string) int {
	ctx := context.Background()
	s, err := Open(ctx, path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ids, err := s.db.QueryContext(ctx, `SELECT id FROM vms ORDER BY id`)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var vms []int64
	for ids.Next() {
		var id int64
		_ = ids.Scan(&id)
		vms = append(vms, id)
	}
	ids.Close()
	var out sync.Mutex
	var wg sync.WaitGroup
	for _, id := range vms {
		wg.Go(func() {
			for {
				vm, err := s.VMGet(ctx, id)
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				run, err := s.RunStart(ctx, id, "process_vms", time.Now())
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				to := map[string]string{"set_ip": "clone", "clone": "set_ip"}[vm.Status]
				step := fmt.Sprintf("v%d", vm.Version)
				_, err = s.VMApplyStep(ctx, Outcome{ID: id, FromStatus: vm.Status, FromVersion: vm.Version, ToStatus: to,
					Now: time.Now(), ClearPending: true, FinishRun: "success",
					Line: &RunLine{RunID: run, At: time.Now(), Step: step, From: vm.Status, To: to, Result: "success"}})
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				// Acknowledged: the outcome is durable now.
				out.Lock()
				fmt.Fprintf(os.Stdout, "ack %d %d\n", id, vm.Version)
				out.Unlock()
			}
		})
	}
	wg.Wait()
	return 0
}

// kill -9 at random instants while concurrent outcomes are being batched
// and fsynced: every outcome the child acknowledged is in the database,
// and every outcome in it was applied once (one run line per version step,
// none for a step not applied).
func TestGroupCommitKill9(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, vms, _ := newGroupStore(t, 12)
	path := s.Path()
	require.NoError(t, s.Close())

	acked := map[int64]int64{} // vm id → highest version acknowledged as applied from
	for round := range 6 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "PVECTL_GROUPCOMMIT_CHILD="+path)
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		require.NoError(t, cmd.Start())
		sc := bufio.NewScanner(stdout)
		killAt := 5 + rand.IntN(150) // acknowledgements before the kill
		n := 0
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			require.Len(t, f, 3, sc.Text())
			id, _ := strconv.ParseInt(f[1], 10, 64)
			v, _ := strconv.ParseInt(f[2], 10, 64)
			if cur, ok := acked[id]; !ok || v > cur {
				acked[id] = v
			}
			if n++; n == killAt {
				require.NoError(t, cmd.Process.Kill()) // SIGKILL, mid-batch
			}
		}
		err = cmd.Wait()
		var ee *exec.ExitError
		require.True(t, errors.As(err, &ee), "round %d: child ended by itself: %v\n%s", round, err, stderr.String())
		require.Empty(t, stderr.String(), "round %d", round)
		require.GreaterOrEqual(t, n, killAt, "round %d", round)

		s, err := Open(ctx, path)
		require.NoError(t, err)
		for _, vm := range vms {
			cur, err := s.VMGet(ctx, vm.ID)
			require.NoError(t, err)
			if v, ok := acked[vm.ID]; ok {
				require.Greater(t, cur.Version, v, "round %d: vm %d: acknowledged outcome from version %d lost", round, vm.ID, v)
			}
			// One line per applied outcome, in version order: v0, v1, ….
			rows, err := s.db.QueryContext(ctx, `SELECT l.step FROM run_lines l JOIN runs r ON r.id = l.run_id
				WHERE r.vm_id = ? ORDER BY l.id`, vm.ID)
			require.NoError(t, err)
			var steps []string
			for rows.Next() {
				var st string
				require.NoError(t, rows.Scan(&st))
				steps = append(steps, st)
			}
			require.NoError(t, rows.Err())
			rows.Close()
			// Old runs are pruned (RunsKeptPerVM, counting the runs a kill
			// left without a line): the kept lines are the newest, ending at
			// the current version, one per outcome applied.
			applied := cur.Version - vm.Version
			require.LessOrEqual(t, int64(len(steps)), applied, "round %d: vm %d: more lines than outcomes applied: %v", round, vm.ID, steps)
			require.GreaterOrEqual(t, int64(len(steps)), min(applied, int64(RunsKeptPerVM-round-1)), "round %d: vm %d: lines lost: %v", round, vm.ID, steps)
			first := applied - int64(len(steps))
			for j, st := range steps {
				require.Equal(t, fmt.Sprintf("v%d", vm.Version+first+int64(j)), st, "round %d: vm %d: lines %v", round, vm.ID, steps)
			}
		}
		problems, err := s.QuickCheck(ctx)
		require.NoError(t, err)
		require.Empty(t, problems)
		require.NoError(t, s.Close())
	}
}
