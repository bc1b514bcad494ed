package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

// A bucket written again replaces the stored one (never adds to it); the
// last complete hour ignores partial buckets; purge drops old buckets of
// every VM and their over-limit marks; the over-limit mark is set once.
func TestTrafficReplacePurgeAndMarks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t)
	h0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	row := func(svc string, h time.Time, in, out int64, covered int) store.TrafficHour {
		return store.TrafficHour{ServiceID: svc, Hour: h, VMRecord: 1, VMID: 1000, Product: "small", BytesIn: in, BytesOut: out, Step: 60, Covered: covered}
	}
	require.NoError(t, s.TrafficReplace(ctx, []store.TrafficHour{
		row("a", h0, 10, 1, 3600), row("a", h0.Add(time.Hour), 5, 1, 1800), row("b", h0.Add(-40*24*time.Hour), 7, 7, 3600),
	}, h0))
	require.NoError(t, s.TrafficReplace(ctx, []store.TrafficHour{row("a", h0.Add(time.Hour), 9, 2, 3600)}, h0))

	rows, err := s.TrafficHours(ctx, "a", h0, h0.Add(2*time.Hour))
	require.NoError(t, err)
	require.Len(t, rows, 2)
	require.EqualValues(t, 9, rows[1].BytesIn, "replaced, not added")
	require.EqualValues(t, 2, rows[1].BytesOut)
	require.Equal(t, 3600, rows[1].Covered)

	last, err := s.TrafficLastComplete(ctx)
	require.NoError(t, err)
	require.Equal(t, h0.Add(time.Hour), last["a"])

	first, err := s.TrafficLimitMark(ctx, "b", h0.Add(-40*24*time.Hour), h0)
	require.NoError(t, err)
	require.True(t, first)
	again, err := s.TrafficLimitMark(ctx, "b", h0.Add(-40*24*time.Hour), h0)
	require.NoError(t, err)
	require.False(t, again)

	n, err := s.TrafficPurge(ctx, h0.Add(-30*24*time.Hour))
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	all, err := s.TrafficHours(ctx, "", time.Unix(0, 0), h0.Add(24*time.Hour))
	require.NoError(t, err)
	require.Len(t, all, 2)
	first, err = s.TrafficLimitMark(ctx, "b", h0.Add(-40*24*time.Hour), h0)
	require.NoError(t, err)
	require.True(t, first, "the purged period's mark went with it")
}
