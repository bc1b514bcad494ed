package store_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pvectl/pvectl/store"
)

// Each tick is its own process: what one tick adds is still there for the
// next, which adds to it; series differing in one label stay apart, and the
// order labels are given in does not matter.
func TestMetricsAddAcrossProcesses(t *testing.T) {
	t.Parallel()
	runs := func(step, result string, v float64) store.MetricSeries {
		return store.MetricSeries{Name: "pvectl_step_runs_total", Labels: map[string]string{"step": step, "result": result}, Value: v}
	}
	sum := func(ep string, v float64) store.MetricSeries {
		return store.MetricSeries{Name: "pvectl_pve_request_duration_seconds_sum", Labels: map[string]string{"endpoint": ep}, Value: v}
	}
	for _, tc := range []struct {
		name  string
		ticks [][]store.MetricSeries
		want  []store.MetricSeries
	}{
		{"two ticks add up",
			[][]store.MetricSeries{{runs("Clone VM", "success", 2)}, {runs("Clone VM", "success", 3)}},
			[]store.MetricSeries{runs("Clone VM", "success", 5)}},
		{"labels kept distinct",
			[][]store.MetricSeries{
				{runs("Clone VM", "success", 1), runs("Clone VM", "waiting", 4)},
				{runs("Start VM", "success", 1), runs("Clone VM", "waiting", 1)}},
			[]store.MetricSeries{runs("Clone VM", "success", 1), runs("Clone VM", "waiting", 5), runs("Start VM", "success", 1)}},
		{"names kept distinct, fractions kept",
			[][]store.MetricSeries{{sum("GET /version", 0.25), runs("Clone VM", "error", 1)}, {sum("GET /version", 0.125)}},
			[]store.MetricSeries{sum("GET /version", 0.375), runs("Clone VM", "error", 1)}},
		{"an empty tick changes nothing",
			[][]store.MetricSeries{{runs("Clone VM", "success", 1)}, nil},
			[]store.MetricSeries{runs("Clone VM", "success", 1)}},
		{"nothing ever added", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "pvectl.db")
			s, err := store.Create(ctx, path)
			require.NoError(t, err)
			require.NoError(t, s.Close())
			for _, tick := range tc.ticks {
				s, err := store.Open(ctx, path)
				require.NoError(t, err)
				require.NoError(t, s.MetricsAdd(ctx, tick))
				require.NoError(t, s.Close())
			}
			s, err = store.Open(ctx, path)
			require.NoError(t, err)
			t.Cleanup(func() { _ = s.Close() })
			got, err := s.MetricTotals(ctx)
			require.NoError(t, err)
			require.ElementsMatch(t, tc.want, got)
		})
	}
}
