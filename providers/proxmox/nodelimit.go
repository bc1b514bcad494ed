package proxmox

import (
	"context"
	"net/url"
	"strings"
	"sync"
)

// Per-node request limits (Options.MaxRequestsPerNode).
//
// PVE's API daemon (pveproxy) serves each node with a few worker processes;
// a request beyond them waits in the node's queue, and that wait counts
// against the client's HTTP timeout. The adapter therefore keeps at most
// MaxRequestsPerNode requests in flight to any one node: requests for
// /nodes/{node}/... count against that node, every other request
// (/cluster/resources, /version, /access/..., /pools) against the endpoint
// the adapter talks to (its pveproxy runs those handlers itself). A request
// beyond the limit waits in the adapter, before it is sent, for a slot of
// its node, or until its context is done.
//
// A slot is held for one HTTP round trip only (send): taken before the
// request goes out, given back as soon as its answer is read and before
// Options.Observe runs, never across a retry's backoff (each try takes a
// slot again). No adapter code sends a request while holding a slot, so a
// request can never wait for another slot of its own node: the limiter
// cannot deadlock, whatever the limit.

// endpointKey is the limiter's key for requests outside /nodes/{node}.
const endpointKey = ""

// nodeLimiter is one counting semaphore per node, made on first use. It
// lives in the Adapter: one per process in pvectl (Engine.Env builds one
// adapter).
type nodeLimiter struct {
	limit int
	mu    sync.Mutex
	sems  map[string]chan struct{}
}

func newNodeLimiter(limit int) *nodeLimiter {
	if limit <= 0 {
		return nil // no limit
	}
	return &nodeLimiter{limit: limit, sems: map[string]chan struct{}{}}
}

// acquire takes a slot of key's semaphore, waiting for one or until ctx is
// done (then it returns ctx.Err() and holds nothing). A nil limiter never
// waits.
func (l *nodeLimiter) acquire(ctx context.Context, key string) (release func(), err error) {
	if l == nil {
		return func() {}, nil
	}
	l.mu.Lock()
	sem := l.sems[key]
	if sem == nil {
		sem = make(chan struct{}, l.limit)
		l.sems[key] = sem
	}
	l.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err // a done context never takes a free slot either
	}
	select {
	case sem <- struct{}{}:
		return func() { <-sem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// limitKey is the node a request path counts against: NODE for
// "/nodes/NODE/..." (path-unescaped), endpointKey otherwise.
func limitKey(path string) string {
	rest, ok := strings.CutPrefix(path, "/nodes/")
	if !ok {
		return endpointKey
	}
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		rest = rest[:i]
	}
	if n, err := url.PathUnescape(rest); err == nil {
		return n
	}
	return rest
}
