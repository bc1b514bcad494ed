package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pvectl/pvectl/engine"
	"github.com/pvectl/pvectl/store"
)

// receiveMode is how the de-duplicating receiver answers one delivery.
type receiveMode int

const (
	recvOK         receiveMode = iota // kept, 200
	recvFail                          // 500, not kept
	recvLate                          // kept, but answered after pvectl's timeout
	recvHoldDrop                      // in flight: held until pvectl is killed, not kept
	recvHoldKept                      // kept, then held until pvectl is killed (no answer)
	recvKeptLocked                    // kept and answered 204 while the test holds the database's write lock, so pvectl is killed before it can mark the row
	recvModes
)

var recvModeNames = [recvModes]string{"ok", "500", "late", "in-flight-dropped", "in-flight-kept", "answered-unmarked"}

// dedupReceiver is a webhook receiver that checks each delivery's signature
// and keeps every body it accepted by event id; the test tells it, per
// notify process, which request to hold for a kill and how.
type dedupReceiver struct {
	secret []byte
	db     *sql.DB // for the write lock of recvKeptLocked (_txlock=immediate)

	mu       sync.Mutex
	rng      *rand.Rand
	healthy  bool        // no 500s and no late answers
	killAt   int         // the current process's request (1-based) to hold, 0 none
	killMode receiveMode // how
	seen     int         // requests of the current process
	modes    [recvModes]int
	kept     map[string][]string // event id → bodies accepted
	bad      []string            // requests with a wrong signature or headers
	tx       *sql.Tx             // the write lock held for recvKeptLocked
	txErr    error
	inFlight chan heldRequest // the held request (buffered 1)
}

// plan sets which request of the next notify process is held, and how.
func (h *dedupReceiver) plan(at int, mode receiveMode) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.killAt, h.killMode, h.seen = at, mode, 0
	select {
	case <-h.inFlight:
	default:
	}
}

// answers counts the receiver's answers by mode name.
func (h *dedupReceiver) answers() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return namedCounts(h.modes)
}

func (h *dedupReceiver) keep(id string, body []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.kept[id] = append(h.kept[id], string(body))
}

// heldRequest is the request the receiver holds for a kill: its event id,
// and when the receiver had it.
type heldRequest struct {
	id string
	at time.Time
}

func (h *dedupReceiver) signal(id string) {
	select {
	case h.inFlight <- heldRequest{id, time.Now()}:
	default:
	}
}

func (h *dedupReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return // pvectl died while sending: nothing received
	}
	id := r.Header.Get("X-Pvectl-Delivery")
	var p engine.EventPayload
	h.mu.Lock()
	if r.Header.Get(engine.SignatureHeader) != engine.Sign(h.secret, body) || json.Unmarshal(body, &p) != nil ||
		p.ID != id || r.Header.Get("X-Pvectl-Event") != p.Event || r.Method != http.MethodPost {
		h.bad = append(h.bad, fmt.Sprintf("%s %v %s", r.Method, r.Header, body))
		h.mu.Unlock()
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	h.seen++
	mode := recvOK
	switch x := h.rng.IntN(100); {
	case h.seen == h.killAt:
		mode = h.killMode
	case h.healthy:
	case x < 15:
		mode = recvFail
	case x < 20:
		mode = recvLate
	}
	h.modes[mode]++
	h.mu.Unlock()

	switch mode {
	case recvOK:
		h.keep(id, body)
	case recvFail:
		http.Error(w, "receiver failing", http.StatusInternalServerError)
	case recvLate:
		<-r.Context().Done() // pvectl gave up
		h.keep(id, body)
	case recvHoldDrop:
		h.signal(id)
		<-r.Context().Done()
	case recvHoldKept:
		h.keep(id, body)
		h.signal(id)
		<-r.Context().Done()
	case recvKeptLocked:
		tx, err := h.db.BeginTx(context.Background(), nil) // BEGIN IMMEDIATE
		h.mu.Lock()
		h.tx, h.txErr = tx, err
		h.mu.Unlock()
		if err != nil {
			http.Error(w, "receiver failing", http.StatusInternalServerError)
			h.signal(id)
			return
		}
		h.keep(id, body)
		w.WriteHeader(http.StatusNoContent)
		w.(http.Flusher).Flush()
		h.signal(id)
	}
}

// crashNotifyConfig: one small product (a linked clone on pve1, fast to
// deploy) and a bigger one to change to; the webhook's timeout is long
// enough for the test to kill pvectl while a request is held, and
// max_attempts high enough that the receiver's random failures never park
// a delivery.
const crashNotifyConfig = `proxmox:
  url: %s
  token_id: %s
  token_secret: %s
vmid_range: {min: 1000, max: 1099}
products:
  small:
    cores: 1
    memory_mb: 1024
    template: {vmid: 9000, node: pve1}
    target_node: pve1
    system_disk: {size_gb: 32, storage: local-lvm}
    network: {bridge: vmbr0, ipv4: 1}
  big:
    cores: 2
    memory_mb: 2048
    template: {vmid: 9000, node: pve1}
    target_node: pve1
    system_disk: {size_gb: 32, storage: local-lvm}
    network: {bridge: vmbr0, ipv4: 1}
notifications:
  max_attempts: 30
  webhook: {url: %s, secret: %s, timeout: 1s}
ip_pools:
  - {name: v4, nodes: [pve1], family: 4, bridge: vmbr0, network: 192.0.2.0/24, gateway: 192.0.2.1, first: 192.0.2.10, last: 192.0.2.250}
`

// TestCrashNotify is the crash test of the notify task (issue 14): VMs are
// deployed, changed, renamed, suspended, unsuspended and terminated by
// unkilled `pvectl run-task process_vms` processes against an
// out-of-process pvesim, writing events of six kinds to the outbox, while
// `pvectl run-task notify` processes running beside them are SIGKILLed: at
// random instants, with a webhook request in flight (the receiver holds it,
// having kept the event or not), and after the receiver kept the event and
// answered 204 but before pvectl could mark the row delivered (the test
// holds the database's write lock). The receiver also fails requests with
// 500 and answers some after pvectl's timeout. Rounds continue (more
// change-packages if the outbox ran dry) until every kind of kill and
// failure happened often enough; then, with the receiver healthy, the
// outbox must drain and the receiver, de-duplicating by event id, must
// hold every event exactly once: none lost, none unknown, repeats
// identical, every signature valid, every row delivered, none parked.
//
// PVECTL_CRASH_SEED=N replays the kill schedule and the receiver's answers
// (the interleaving also depends on timing).
func TestCrashNotify(t *testing.T) {
	t.Parallel()
	const (
		vms           = 10
		minInFlight   = 15 // kills with a request held, all kinds
		minEachHeld   = 3  // kills of each held kind
		minRandom     = 8  // kills at random instants
		minFails      = 3  // 500s
		minLate       = 2  // answers after pvectl's timeout
		webhookSecret = "crash-s3cret"
	)
	ctx := context.Background()
	began := time.Now()
	dir := t.TempDir()
	sim := startPvesimBinary(t, dir, "--task-duration", "50ms", "--task-duration-type", "qmclone=150ms",
		"--task-duration-type", "qmstart=50ms")

	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("PVECTL_CRASH_SEED"); s != "" {
		var err error
		seed, err = strconv.ParseUint(s, 10, 64)
		require.NoError(t, err)
	}
	t.Logf("crash test seed %d (replay with PVECTL_CRASH_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	h := &dedupReceiver{secret: []byte(webhookSecret), rng: rand.New(rand.NewPCG(seed^1, seed^2)),
		kept: map[string][]string{}, inFlight: make(chan heldRequest, 1)}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	cfg := fmt.Sprintf(crashNotifyConfig, sim.apiURL, sim.tokenID, sim.secret, srv.URL, webhookSecret)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pvectl.yaml"), []byte(cfg), 0o600))
	ini := pvectlProc(t, dir, nil, "init")
	require.Equal(t, 0, ini.exitCode(), ini.stderr.String())

	dbPath := filepath.Join(dir, "state", "pvectl.db")
	st, err := store.Open(ctx, dbPath)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	h.db, err = sql.Open("sqlite", "file:"+dbPath+"?_pragma=busy_timeout(15000)&_txlock=immediate")
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.db.Close() })

	// pvectl's clock moves a minute per process, so backoff expires
	// without sleeping.
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	nextNow := func(d time.Duration) string {
		now = now.Add(d)
		return "PVECTL_NOW=" + now.Format(time.RFC3339)
	}
	want := map[string]int{}    // "service event" → events expected
	goal := map[string]string{} // service → status it is heading for
	cmd := func(svc, event, status string, args ...string) {
		t.Helper()
		p := pvectlProc(t, dir, []string{nextNow(time.Minute)}, args...)
		require.Equal(t, 0, p.exitCode(), "%v: %s%s", args, p.stdout.String(), p.stderr.String())
		want[svc+" "+event]++
		goal[svc] = status
	}
	svc := func(i int) string { return fmt.Sprintf("n%02d", i) }
	for i := range vms {
		cmd(svc(i), "vm_ready", "ready", "vm", "create", "--service-id", svc(i), "--product", "small",
			"--hostname", fmt.Sprintf("n%02d.example.com", i))
	}
	stages := []func(){
		func() {
			for i := range 3 {
				cmd(svc(i), "vm_changed", "ready", "vm", "change-package", svc(i), "--product", "big")
			}
			for i := 3; i < 6; i++ {
				cmd(svc(i), "vm_terminated", "remove", "vm", "terminate", svc(i))
			}
			for i := 6; i < 8; i++ {
				cmd(svc(i), "vm_suspended", "suspended", "vm", "suspend", svc(i), "--reason", "unpaid")
			}
		},
		func() {
			for i := 6; i < 8; i++ {
				cmd(svc(i), "vm_unsuspended", "ready", "vm", "unsuspend", svc(i))
			}
			cmd(svc(8), "vm_changed", "ready", "vm", "set-hostname", svc(8), "n08-renamed.example.com")
			cmd(svc(9), "vm_changed", "ready", "vm", "change-package", svc(9), "--product", "big")
		},
	}
	extraProducts := []string{"small", "big"} // n00..n02, n09 are big after the stages

	var (
		killsHeld  [recvModes]int // kills with a request held, by how
		killsRand  int            // kills at random instants
		finished   int            // notify processes that ended before their kill
		extras     int            // change-packages added for coverage
		notifyRuns int
		lastRun    = 100 * time.Millisecond // of the last notify process not killed
	)
	covered := func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		held := killsHeld[recvHoldDrop] + killsHeld[recvHoldKept] + killsHeld[recvKeptLocked]
		return held >= minInFlight && killsHeld[recvHoldDrop] >= minEachHeld && killsHeld[recvHoldKept] >= minEachHeld &&
			killsHeld[recvKeptLocked] >= minEachHeld && killsRand >= minRandom &&
			h.modes[recvFail] >= minFails && h.modes[recvLate] >= minLate
	}
	kill := func(p *tickProc) bool {
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Fatal(err)
		}
		<-p.done
		if p.code() == -1 {
			return true
		}
		finished++
		require.Equal(t, 0, p.code(), "notify failed:\n%s%s", p.stdout.String(), p.stderr.String())
		return false
	}

	stage := 0
	round := 0
rounds:
	for ; ; round++ {
		recs, err := st.VMList(ctx, store.VMFilter{})
		require.NoError(t, err)
		if round >= 800 {
			var b strings.Builder
			for _, v := range recs {
				fmt.Fprintf(&b, "%s: %s (goal %s) %s\n", v.ServiceID, v.Status, goal[v.ServiceID], v.LastError)
				if v.Status != goal[v.ServiceID] {
					for _, tk := range sim.state(t).Tasks {
						if tk.ID == strconv.Itoa(v.VMID) {
							fmt.Fprintf(&b, "  task %s %s %s %s-%s %v\n", tk.Type, tk.Status, tk.ExitStatus, tk.Start.Format("15:04:05.000"), tk.End.Format("15:04:05.000"), tk.Log)
						}
					}
					p := pvectlProc(t, dir, []string{nextNow(0)}, "log", v.ServiceID)
					_ = p.exitCode()
					b.WriteString(p.stdout.String() + p.stderr.String())
				}
			}
			t.Fatalf("not done after %d rounds: stage %d, kills with a request held %v, at random instants %d; receiver answers %v; VMs:\n%s",
				round, stage, namedCounts(killsHeld), killsRand, h.answers(), &b)
		}
		settled := true
		for _, v := range recs {
			require.False(t, v.Held, "%s held: %s", v.ServiceID, v.LastError)
			require.False(t, strings.HasPrefix(v.Status, "error"), "%s in %s: %s", v.ServiceID, v.Status, v.LastError)
			if v.Status != goal[v.ServiceID] {
				settled = false
			}
		}
		pending, parked, err := st.OutboxCounts(ctx)
		require.NoError(t, err)
		require.Zero(t, parked, "deliveries parked")
		switch {
		case settled && stage < len(stages):
			stages[stage]()
			stage++
			settled = false
		case settled && pending == 0 && covered():
			break rounds
		case settled && pending == 0:
			// The outbox ran dry before every kind of kill happened
			// often enough: more events.
			require.Less(t, extras, 30, "coverage not reached with 30 extra rounds of change-packages: kills with a request held %v, at random instants %d; receiver answers %v",
				namedCounts(killsHeld), killsRand, h.answers())
			for _, v := range recs {
				if v.Status == "ready" {
					cmd(v.ServiceID, "vm_changed", "ready", "vm", "change-package", v.ServiceID, "--product", extraProducts[extras%2])
				}
			}
			extras++
			settled = false
		}
		var pv *tickProc
		if !settled {
			pv = startTick(t, dir, nextNow(time.Minute))
		}

		// One notify process, killed as planned (most of them while
		// the outbox holds something to deliver).
		if pending > 0 || rng.IntN(4) == 0 {
			notifyRuns++
			mode, at, delay := receiveMode(0), 0, time.Duration(-1)
			switch x := rng.IntN(100); {
			case x < 25:
				mode, at = recvHoldDrop, 1+rng.IntN(3)
			case x < 40:
				mode, at = recvHoldKept, 1+rng.IntN(3)
			case x < 55:
				mode, at = recvKeptLocked, 1+rng.IntN(3)
			case x < 80:
				// Within the last whole run's length, so the kill lands
				// before the process is done.
				delay = time.Duration(rng.Int64N(int64(lastRun) + 1))
			}
			h.plan(at, mode)
			started := time.Now()
			np := &tickProc{proc: pvectlProc(t, dir, []string{nextNow(time.Minute)}, "run-task", "notify"), done: make(chan struct{})}
			go func() { np.err = np.cmd.Wait(); close(np.done) }()
			var timer <-chan time.Time
			if delay >= 0 {
				timer = time.After(delay)
			}
			select {
			case <-np.done:
				require.Equal(t, 0, np.code(), "notify failed:\n%s%s", np.stdout.String(), np.stderr.String())
				lastRun = time.Since(started)
				if delay >= 0 {
					finished++
				}
			case <-timer:
				if kill(np) {
					killsRand++
				}
			case held := <-h.inFlight:
				id := held.id
				if mode == recvKeptLocked {
					time.Sleep(30 * time.Millisecond) // pvectl reads the answer and waits for the lock
				}
				// Well within the webhook's 1s timeout: pvectl still waits
				// for the answer (or, recvKeptLocked, for the lock).
				inFlight := time.Since(held.at) < 500*time.Millisecond
				killed := kill(np)
				h.mu.Lock()
				tx, txErr := h.tx, h.txErr
				h.tx, h.txErr = nil, nil
				if killed && inFlight {
					killsHeld[mode]++
				}
				h.mu.Unlock()
				if mode == recvKeptLocked {
					require.NoError(t, txErr, "the test's write lock")
					// Killed after the receiver kept the event and answered,
					// before pvectl could mark it: the row is still due.
					rows, err := st.OutboxList(ctx, false, 100000)
					require.NoError(t, err)
					for _, r := range rows {
						if r.EventID == id && killed {
							require.True(t, r.DeliveredAt.IsZero(), "%s marked delivered while the test held the write lock", id)
						}
					}
					require.NoError(t, tx.Rollback())
				}
			}
		}
		if pv != nil {
			<-pv.done
			require.Equal(t, 0, pv.code(), "process_vms failed:\n%s%s", pv.stdout.String(), pv.stderr.String())
		}
	}
	h.mu.Lock()
	t.Logf("%d rounds, %d notify processes in %s: kills with a request held %v, at random instants %d; %d ended before their kill; %d extra rounds of change-packages; receiver answers %v",
		round, notifyRuns, time.Since(began).Round(time.Millisecond), namedCounts(killsHeld), killsRand, finished, extras, namedCounts(h.modes))
	h.healthy = true
	h.mu.Unlock()

	// A healthy receiver: unkilled notify runs (hours apart, past any
	// backoff) drain the outbox.
	for i := 0; ; i++ {
		pending, parked, err := st.OutboxCounts(ctx)
		require.NoError(t, err)
		require.Zero(t, parked, "deliveries parked")
		if pending == 0 {
			break
		}
		require.Less(t, i, 5, "%d deliveries still pending with a healthy receiver", pending)
		h.plan(0, 0)
		p := pvectlProc(t, dir, []string{nextNow(2 * time.Hour)}, "run-task", "notify")
		require.Equal(t, 0, p.exitCode(), "notify: %s%s", p.stdout.String(), p.stderr.String())
	}

	// Every event the state changes caused is in the outbox once, delivered.
	rows, err := st.OutboxList(ctx, false, 100000)
	require.NoError(t, err)
	got := map[string]int{}
	byID := map[string]store.OutboxRow{}
	for _, r := range rows {
		got[r.ServiceID+" "+r.Event]++
		require.Equal(t, "webhook", r.Channel, r.EventID)
		require.False(t, r.DeliveredAt.IsZero(), "%s %s not delivered (attempts %d, last error %q)", r.Event, r.EventID, r.Attempts, r.LastError)
		require.True(t, r.ParkedAt.IsZero(), "%s parked", r.EventID)
		byID[r.EventID] = r
	}
	require.Equal(t, want, got, "events in the outbox (service event → count)")

	// The receiver, de-duplicating by id, holds each of them exactly once:
	// none lost, none it was never sent, every repeat the same body.
	h.mu.Lock()
	defer h.mu.Unlock()
	require.Empty(t, h.bad, "deliveries with a wrong signature or headers")
	dups, deliveries := 0, 0
	for id, bodies := range h.kept {
		r, ok := byID[id]
		require.True(t, ok, "delivery of event %s, which is not in the outbox: %s", id, bodies[0])
		for _, b := range bodies {
			require.Equal(t, r.Payload, b, "a delivery of %s differs from the event", id)
		}
		deliveries += len(bodies)
		if len(bodies) > 1 {
			dups++
		}
	}
	for id, r := range byID {
		require.NotEmpty(t, h.kept[id], "event %s (%s of %s) never reached the receiver", id, r.Event, r.ServiceID)
	}
	require.Len(t, h.kept, len(rows), "events after de-duplication")
	require.GreaterOrEqual(t, dups, 1, "events delivered more than once (the kills after the receiver kept an event)")
	t.Logf("%d events of %d kinds delivered %d times (%d delivered more than once); total %s",
		len(rows), len(eventKinds(rows)), deliveries, dups, time.Since(began).Round(time.Millisecond))
}

func namedCounts(c [recvModes]int) map[string]int {
	m := map[string]int{}
	for i, n := range c {
		if n > 0 {
			m[recvModeNames[i]] = n
		}
	}
	return m
}

func eventKinds(rows []store.OutboxRow) map[string]bool {
	m := map[string]bool{}
	for _, r := range rows {
		m[r.Event] = true
	}
	return m
}
