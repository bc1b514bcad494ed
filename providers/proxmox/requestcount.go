package proxmox

import (
	"context"
	"sync/atomic"
)

// requestCountKey is the context key of WithRequestCount's counter.
type requestCountKey struct{}

// WithRequestCount returns a context under which the adapter adds one to n
// for every HTTP request it sends (each try of a retried read counts).
func WithRequestCount(ctx context.Context, n *atomic.Int64) context.Context {
	return context.WithValue(ctx, requestCountKey{}, n)
}

// countRequest adds one to ctx's WithRequestCount counter, if it has one.
func countRequest(ctx context.Context) {
	if n, ok := ctx.Value(requestCountKey{}).(*atomic.Int64); ok {
		n.Add(1)
	}
}
