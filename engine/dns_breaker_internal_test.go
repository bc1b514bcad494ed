package engine

import (
	"context"
	"strings"
	"testing"

	"github.com/pvectl/pvectl/providers/dns"
	"github.com/stretchr/testify/require"
)

// The DNS breaker opens per server after BreakerAfter outage failures in a
// row (unreachable, timeout, SERVFAIL); an answer that is not an outage
// (success, REFUSED, BADSIG …) starts the count again; an open server's
// operations are not sent; another server's zones are not affected.
func TestDNSBreaker(t *testing.T) {
	t.Parallel()
	down := func(k dns.Kind) error { return &dns.Error{Op: "update", Kind: k, Rcode: -1} }
	type op struct {
		zone string
		err  error // what the server answers if the operation is sent
	}
	for _, tc := range []struct {
		name     string
		ops      []op
		wantSent []bool
		wantOpen []string // servers stopped
	}{
		{"three unreachable in a row open it",
			[]op{{"a.test", down(dns.KindUnreachable)}, {"a.test", down(dns.KindUnreachable)}, {"a.test", down(dns.KindUnreachable)}, {"a.test", nil}, {"b.test", nil}},
			[]bool{true, true, true, false, true}, []string{"10.0.0.1:53"}},
		{"timeout and SERVFAIL count; zones of one server share it",
			[]op{{"a.test", down(dns.KindTimeout)}, {"a2.test", down(dns.KindServFail)}, {"a.test", down(dns.KindTimeout)}, {"a2.test", nil}},
			[]bool{true, true, true, false}, []string{"10.0.0.1:53"}},
		{"a success in between starts again",
			[]op{{"a.test", down(dns.KindUnreachable)}, {"a.test", down(dns.KindUnreachable)}, {"a.test", nil}, {"a.test", down(dns.KindUnreachable)}, {"a.test", down(dns.KindUnreachable)}, {"a.test", nil}},
			[]bool{true, true, true, true, true, true}, nil},
		{"REFUSED and BADSIG are answers, not outages",
			[]op{{"a.test", down(dns.KindRefused)}, {"a.test", down(dns.KindBadSig)}, {"a.test", down(dns.KindRefused)}, {"a.test", down(dns.KindNotAuth)}},
			[]bool{true, true, true, true}, nil},
		{"failures on two servers are counted apart",
			[]op{{"a.test", down(dns.KindUnreachable)}, {"b.test", down(dns.KindUnreachable)}, {"a.test", down(dns.KindUnreachable)}, {"b.test", nil}, {"a.test", down(dns.KindUnreachable)}, {"a.test", nil}, {"b.test", nil}},
			[]bool{true, true, true, true, true, false, true}, []string{"10.0.0.1:53"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newDNSBreaker([]dns.Zone{{Name: "a.test", Server: "10.0.0.1:53"}, {Name: "a2.test", Server: "10.0.0.1:53"}, {Name: "b.test", Server: "10.0.0.2:53"}})
			var sent []bool
			for _, o := range tc.ops {
				called := false
				err := b.do(o.zone, "update", func() error { called = true; return o.err })
				sent = append(sent, called)
				if !called {
					require.True(t, dns.IsNotSent(err), "an operation not sent says so: %v", err)
					require.True(t, dns.IsOutage(err))
				} else {
					require.Equal(t, o.err, err)
				}
			}
			require.Equal(t, tc.wantSent, sent)
			lines := b.lines("process_vms")
			require.Len(t, lines, len(tc.wantOpen))
			for i, s := range tc.wantOpen {
				require.Contains(t, lines[i], "DNS server "+s+" ")
				require.Contains(t, lines[i], "stopped sending to it for this tick")
			}
		})
	}
}

// The wrapper sends queries through the breaker too, and a querier stays
// a querier (the hostname check needs RecordsAt).
func TestDNSBreakerWrapQueries(t *testing.T) {
	t.Parallel()
	b := newDNSBreaker([]dns.Zone{{Name: "a.test", Server: "10.0.0.1:53"}})
	q := &countingQuerier{err: &dns.Error{Op: "query", Kind: dns.KindTimeout, Rcode: -1}}
	w := b.wrap(q)
	wq, ok := w.(interface {
		RecordsAt(context.Context, string, string) ([]dns.Record, error)
	})
	require.True(t, ok)
	for range 5 {
		_, _ = wq.RecordsAt(context.Background(), "a.test", "x.a.test")
	}
	require.Equal(t, BreakerAfter, q.calls)
	err := w.Publish(context.Background(), dns.Record{Zone: "a.test", Name: "x.a.test", Type: "A", Value: "192.0.2.1"})
	require.True(t, dns.IsNotSent(err))
	require.Equal(t, BreakerAfter, q.calls)
	lines := b.lines("process_vms")
	require.Len(t, lines, 1)
	require.True(t, strings.Contains(lines[0], "3 operation(s) not sent"), lines[0])
}

type countingQuerier struct {
	calls int
	err   error
}

func (c *countingQuerier) Publish(context.Context, dns.Record) error { c.calls++; return c.err }
func (c *countingQuerier) Delete(context.Context, dns.Record) error  { c.calls++; return c.err }
func (c *countingQuerier) RecordsAt(context.Context, string, string) ([]dns.Record, error) {
	c.calls++
	return nil, c.err
}
