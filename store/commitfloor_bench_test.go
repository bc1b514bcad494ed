package store_test

import (
	"context"
	"testing"

	"github.com/pvectl/pvectl/internal/commitfloor"
)

// BenchmarkCommitFloor is the naive durable-commit rate of the disk under
// the temp dir: one compare-and-set UPDATE and one INSERT per transaction,
// WAL, synchronous=FULL, begun IMMEDIATE, as the store opens its database.
// Engine throughputs are reported as ratios to it (BenchmarkProcessVMs
// measures it again in its own run: x-floor).
func BenchmarkCommitFloor(b *testing.B) {
	ctx := context.Background()
	f, err := commitfloor.Open(ctx, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	n := 0
	for b.Loop() {
		if err := f.Commit(ctx); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "commits/s")
}
