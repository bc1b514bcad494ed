package engine_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/pvectl/pvectl/config"
	"github.com/pvectl/pvectl/engine"
	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

// receiver is a webhook endpoint that fails, hangs past the timeout or
// succeeds as told, checks the signature and de-duplicates by id.
type receiver struct {
	mu     sync.Mutex
	plan   []string // per request: "fail", "slow", "ok"
	seen   map[string]int
	bodies []string
	bad    int // requests with a wrong signature
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	what := "ok"
	if len(rc.plan) > 0 {
		what, rc.plan = rc.plan[0], rc.plan[1:]
	}
	if r.Header.Get(engine.SignatureHeader) != engine.Sign([]byte("s3cret"), body) {
		rc.bad++
	}
	rc.mu.Unlock()
	switch what {
	case "fail":
		http.Error(w, "receiver down", http.StatusInternalServerError)
		return
	case "slow":
		time.Sleep(300 * time.Millisecond)
	}
	rc.mu.Lock()
	rc.seen[r.Header.Get("X-Pvectl-Delivery")]++
	rc.bodies = append(rc.bodies, string(body))
	rc.mu.Unlock()
}

// The notify task delivers the outbox over a webhook: a failure and a
// timeout are retried with backoff (the id stays the same), a success is
// recorded, a delivery failing max_attempts times is parked; the body is
// signed with HMAC-SHA256.
func TestNotifyWebhook(t *testing.T) {
	t.Parallel()
	rc := &receiver{plan: []string{"fail", "slow", "ok"}, seen: map[string]int{}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	h := newHarness(t, "")
	h.e.Config.Notifications = config.Notifications{MaxAttempts: 3,
		Webhook: &config.Webhook{URL: srv.URL, Secret: "s3cret", Timeout: config.Duration(100 * time.Millisecond)}}
	ev := store.OutboxEvent{EventID: "pvectl-1-1-vm_ready", Event: "vm_ready", ServiceID: "w1",
		Payload: `{"id":"pvectl-1-1-vm_ready","event":"vm_ready","service_id":"w1"}`, Channels: []string{"webhook"}}
	require.NoError(t, h.st.OutboxAdd(h.ctx, []store.OutboxEvent{ev, ev}, t0), "the same event twice is one row")

	run := func() engine.NotifyRun {
		t.Helper()
		r, err := h.e.Notify(h.ctx)
		require.NoError(t, err)
		return r
	}
	require.Equal(t, 1, run().Failed, "500")
	require.Zero(t, run().Processed, "backing off")
	h.at(10 * time.Minute)
	require.Equal(t, 1, run().Failed, "timed out")
	h.at(30 * time.Minute)
	r := run()
	require.Equal(t, 1, r.Delivered)
	require.Equal(t, map[string]int{"pvectl-1-1-vm_ready": 1}, rc.seen)
	require.Zero(t, rc.bad, "every request signed")
	h.at(2 * time.Hour)
	require.Zero(t, run().Processed, "delivered once")
	pending, parked, err := h.st.OutboxCounts(h.ctx)
	require.NoError(t, err)
	require.Zero(t, pending+parked)

	// A receiver that always fails: parked after 3 attempts.
	rc.mu.Lock()
	rc.plan = []string{"fail", "fail", "fail", "fail"}
	rc.mu.Unlock()
	ev.EventID = "pvectl-1-2-vm_held"
	require.NoError(t, h.st.OutboxAdd(h.ctx, []store.OutboxEvent{ev}, h.clk.T))
	for i := range 3 {
		h.at(time.Duration(3+i*2) * time.Hour)
		require.Equal(t, 1, run().Failed, "attempt %d", i+1)
	}
	h.at(10 * time.Hour)
	require.Zero(t, run().Processed, "parked: not tried again")
	rows, err := h.st.OutboxList(h.ctx, true, 10)
	require.NoError(t, err)
	require.Len(t, rows, 1)
	require.Equal(t, 3, rows[0].Attempts)
	require.Contains(t, rows[0].LastError, "500 Internal Server Error receiver down")
	_, parked, err = h.st.OutboxCounts(h.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, parked)
}
