package engine

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/pvectl/pvectl/providers/dns"
	"github.com/pvectl/pvectl/states"
)

// dnsBreaker is a process_vms pass's circuit breaker per DNS server (a
// zone's server, host:port). After BreakerAfter operations in a row to one
// server fail because it is down (dns.IsOutage: unreachable, timeout,
// SERVFAIL), the pass stops sending to it: every later update, delete or
// query for a zone it serves returns a dns.KindNotSent error at once,
// which the DNS steps neither print nor record. Zones on other servers go
// on. One warning line per stopped server says so at the end of the pass.
// A VM's DNS retry that failed only because its server was down does not
// count a retry (no backoff grows; see retryDNS).
type dnsBreaker struct {
	mu      sync.Mutex
	server  map[string]string // normalized zone → server
	servers map[string]*dnsServerState
}

type dnsServerState struct {
	consecutive int
	open        bool
	cause       error
	notSent     int
	zones       []string
}

func newDNSBreaker(zones []dns.Zone) *dnsBreaker {
	b := &dnsBreaker{server: map[string]string{}, servers: map[string]*dnsServerState{}}
	for _, z := range zones {
		b.server[dns.Normalize(z.Name)] = z.Server
		st := b.servers[z.Server]
		if st == nil {
			st = &dnsServerState{}
			b.servers[z.Server] = st
		}
		st.zones = append(st.zones, dns.Normalize(z.Name))
	}
	return b
}

// do runs op, an operation on zone's server, unless the pass stopped
// sending to that server, and looks at its outcome.
func (b *dnsBreaker) do(zone, what string, op func() error) error {
	b.mu.Lock()
	server := b.server[dns.Normalize(zone)]
	st := b.servers[server]
	if st != nil && st.open {
		st.notSent++
		b.mu.Unlock()
		return &dns.Error{Op: what, Zone: dns.Normalize(zone), Server: server, Kind: dns.KindNotSent, Rcode: -1,
			Msg: fmt.Sprintf("%s failed %d times in a row in this pass", server, BreakerAfter)}
	}
	b.mu.Unlock()
	err := op()
	b.observe(server, err)
	return err
}

// observe counts an operation's outcome for its server.
func (b *dnsBreaker) observe(server string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.servers[server]
	if st == nil {
		return
	}
	switch k := dns.KindOf(err); {
	case dns.IsOutage(err):
		st.consecutive++
		if st.consecutive >= BreakerAfter && !st.open {
			st.open, st.cause = true, err
		}
	case k == dns.KindCanceled || k == dns.KindConfig:
		// nothing was said about the server
	default:
		st.consecutive = 0
	}
}

// lines are the pass's warning lines, one per server it stopped sending to.
func (b *dnsBreaker) lines(task string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for server, st := range b.servers {
		if !st.open {
			continue
		}
		out = append(out, fmt.Sprintf("%s: DNS server %s (zone %s) down (%d operations in a row failed: %s); stopped sending to it for this tick, %d operation(s) not sent; DNS retry counts unchanged",
			task, server, strings.Join(st.zones, ", "), BreakerAfter, dns.ShortError(st.cause), st.notSent))
	}
	sort.Strings(out)
	return out
}

// wrap returns u with every operation going through the breaker.
func (b *dnsBreaker) wrap(u states.DNSUpdater) states.DNSUpdater {
	if u == nil {
		return nil
	}
	w := breakerUpdater{u: u, b: b}
	if q, ok := u.(states.NameQuerier); ok {
		return breakerQuerier{breakerUpdater: w, q: q}
	}
	return w
}

type breakerUpdater struct {
	u states.DNSUpdater
	b *dnsBreaker
}

func (w breakerUpdater) Publish(ctx context.Context, rec dns.Record) error {
	return w.b.do(rec.Zone, "update", func() error { return w.u.Publish(ctx, rec) })
}

func (w breakerUpdater) Delete(ctx context.Context, rec dns.Record) error {
	return w.b.do(rec.Zone, "update", func() error { return w.u.Delete(ctx, rec) })
}

type breakerQuerier struct {
	breakerUpdater
	q states.NameQuerier
}

func (w breakerQuerier) RecordsAt(ctx context.Context, zone, name string) ([]dns.Record, error) {
	var recs []dns.Record
	err := w.b.do(zone, "query", func() error {
		var err error
		recs, err = w.q.RecordsAt(ctx, zone, name)
		return err
	})
	return recs, err
}
