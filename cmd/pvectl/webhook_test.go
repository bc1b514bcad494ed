package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/pvectl/pvectl/engine"
)

// hook is a webhook receiver for testscripts: it checks the signature,
// fails the first N requests when told, and de-duplicates by delivery id.
type hook struct {
	mu     sync.Mutex
	secret string
	fail   int
	events map[string]int // event name → deliveries accepted (distinct ids)
	ids    map[string]int // delivery id → times received
	bad    int
}

var hooks sync.Map // work dir → *hook

// webhookCmd: webhook start SECRET (sets $WEBHOOK_URL) | webhook fail N |
// webhook count EVENT (prints the distinct deliveries of EVENT) |
// webhook check (fails on a bad signature or a repeat id).
func webhookCmd(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) == 0 {
		ts.Fatalf("usage: webhook start SECRET | fail N | count EVENT | check")
	}
	if args[0] == "start" {
		h := &hook{secret: args[1], events: map[string]int{}, ids: map[string]int{}}
		srv := httptest.NewServer(h)
		ts.Defer(srv.Close)
		hooks.Store(ts.Getenv("WORK"), h)
		ts.Defer(func() { hooks.Delete(ts.Getenv("WORK")) })
		ts.Setenv("WEBHOOK_URL", srv.URL)
		return
	}
	v, ok := hooks.Load(ts.Getenv("WORK"))
	if !ok {
		ts.Fatalf("webhook not started")
	}
	h := v.(*hook)
	h.mu.Lock()
	defer h.mu.Unlock()
	switch args[0] {
	case "fail":
		n, err := strconv.Atoi(args[1])
		ts.Check(err)
		h.fail = n
	case "count":
		fmt.Fprintf(ts.Stdout(), "%d\n", h.events[args[1]])
	case "check":
		if h.bad > 0 {
			ts.Fatalf("%d request(s) with a wrong signature", h.bad)
		}
	default:
		ts.Fatalf("unknown webhook command %q", args[0])
	}
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.Header.Get(engine.SignatureHeader) != engine.Sign([]byte(h.secret), body) {
		h.bad++
	}
	if h.fail > 0 {
		h.fail--
		http.Error(w, "receiver busy", http.StatusServiceUnavailable)
		return
	}
	id := r.Header.Get("X-Pvectl-Delivery")
	h.ids[id]++
	if h.ids[id] == 1 {
		h.events[r.Header.Get("X-Pvectl-Event")]++
	}
}
