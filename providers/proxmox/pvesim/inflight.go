package pvesim

import (
	"context"
	"maps"
	"net/url"
	"strings"
	"sync"
)

// In-flight requests per node: an observation for tests and benchmarks
// (InFlightPeaks), and an optional model of pveproxy's per-node workers
// (SetNodeWorkers), off by default. Neither changes what any request is
// answered; the worker model only changes when.
//
// A request counts against the node of its path, /nodes/{node}/...; every
// other API request (/cluster/resources, /version, /access/..., /pools)
// against EndpointNode, the node the client talks to.

// EndpointNode is the key under which InFlightPeaks counts the requests
// that do not name a node.
const EndpointNode = ""

type inflight struct {
	mu      sync.Mutex
	now     map[string]int // arrived, not answered
	peak    map[string]int
	serving map[string]int // holding one of the node's workers
	served  map[string]int // serving's peak
	workers int
	sems    map[string]chan struct{}
}

// requestNode is the node an API path (after /api2/json, still escaped)
// counts against.
func requestNode(rel string) string {
	rest, ok := strings.CutPrefix(rel, "/nodes/")
	if !ok {
		return EndpointNode
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		rest = rest[:i]
	}
	if n, err := url.PathUnescape(rest); err == nil {
		return n
	}
	return rest
}

// enter counts a request in flight to node from the moment it arrives and,
// with the worker model on, waits for one of the node's workers (or for the
// client to give up: ok false, nothing held). leave ends both.
func (f *inflight) enter(ctx context.Context, node string) (leave func(), ok bool) {
	f.mu.Lock()
	if f.now == nil {
		f.now, f.peak = map[string]int{}, map[string]int{}
		f.serving, f.served = map[string]int{}, map[string]int{}
	}
	f.now[node]++
	f.peak[node] = max(f.peak[node], f.now[node])
	var sem chan struct{}
	if f.workers > 0 {
		if f.sems == nil {
			f.sems = map[string]chan struct{}{}
		}
		sem = f.sems[node]
		if sem == nil {
			sem = make(chan struct{}, f.workers)
			f.sems[node] = sem
		}
	}
	f.mu.Unlock()
	done := func() {
		f.mu.Lock()
		f.now[node]--
		f.mu.Unlock()
	}
	serve := func() (leave func()) {
		f.mu.Lock()
		f.serving[node]++
		f.served[node] = max(f.served[node], f.serving[node])
		f.mu.Unlock()
		return func() {
			f.mu.Lock()
			f.serving[node]--
			f.now[node]--
			f.mu.Unlock()
		}
	}
	if sem == nil {
		return serve(), true
	}
	select {
	case sem <- struct{}{}:
		leave := serve()
		return func() { leave(); <-sem }, true
	case <-ctx.Done():
		done()
		return nil, false
	}
}

// InFlightPeaks returns, per node (EndpointNode for requests that name
// none), the largest number of API requests the simulator has had in
// flight at once (arrived, not yet answered; with SetNodeWorkers, queued
// ones included) since it started or since ResetInFlightPeaks.
func (s *Sim) InFlightPeaks() map[string]int {
	s.flight.mu.Lock()
	defer s.flight.mu.Unlock()
	return maps.Clone(s.flight.peak)
}

// ServedPeaks is InFlightPeaks without the requests waiting for a worker
// (SetNodeWorkers): the most requests each node has served at once. With
// the worker model off it is InFlightPeaks.
func (s *Sim) ServedPeaks() map[string]int {
	s.flight.mu.Lock()
	defer s.flight.mu.Unlock()
	return maps.Clone(s.flight.served)
}

// ResetInFlightPeaks starts InFlightPeaks and ServedPeaks over (requests in flight now stay
// counted).
func (s *Sim) ResetInFlightPeaks() {
	s.flight.mu.Lock()
	defer s.flight.mu.Unlock()
	for k := range s.flight.peak {
		s.flight.peak[k] = s.flight.now[k]
	}
	for k := range s.flight.served {
		s.flight.served[k] = s.flight.serving[k]
	}
}

// SetNodeWorkers models pveproxy's worker processes: with w > 0 each node
// (and EndpointNode) serves at most w API requests at once, latency
// (SetLatency) included; a request beyond them waits, in arrival order as
// far as Go's channels go, until a worker is free, and that wait is part of
// the request's time as the client sees it. 0 (the default) turns the
// model off: every request is served at once, however many are in flight.
// Requests already waiting keep the workers they queued for.
func (s *Sim) SetNodeWorkers(w int) {
	s.flight.mu.Lock()
	defer s.flight.mu.Unlock()
	s.flight.workers = max(w, 0)
	s.flight.sems = nil
}

// NodeWorkers is the worker model's w (0: off).
func (s *Sim) NodeWorkers() int {
	s.flight.mu.Lock()
	defer s.flight.mu.Unlock()
	return s.flight.workers
}

func nonNilMap(m map[string]int) map[string]int {
	if m == nil {
		return map[string]int{}
	}
	return m
}
