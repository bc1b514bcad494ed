package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

func TestDNSRetryState(t *testing.T) {
	t.Parallel()
	s := open(t)
	ctx := context.Background()
	a, b, c := newVM(t, s, "svc-a"), newVM(t, s, "svc-b"), newVM(t, s, "svc-c")

	due, err := s.DNSDirtyDue(ctx, t0, nil)
	require.NoError(t, err)
	require.Empty(t, due, "nothing is dirty yet")

	// The deploy step marks a and b dirty: both are due at once.
	require.NoError(t, s.VMSetDNSDirty(ctx, a.ID, true, t0))
	require.NoError(t, s.VMSetDNSDirty(ctx, b.ID, true, t0))
	due, err = s.DNSDirtyDue(ctx, t0, nil)
	require.NoError(t, err)
	require.Len(t, due, 2)
	require.Equal(t, a.ID, due[0].VM.ID)
	require.Equal(t, 0, due[0].Attempts)
	require.True(t, due[0].NextAt.IsZero())
	require.True(t, due[0].VM.DNSDirty)

	// A failed retry of a backs off; b's status is skipped.
	require.NoError(t, s.DNSSetDirty(ctx, a.ID, 1, t0.Add(time.Minute), t0))
	require.NoError(t, s.VMSetStatus(ctx, b.ID, "set_dns_records", t0))
	due, err = s.DNSDirtyDue(ctx, t0.Add(59*time.Second), []string{"set_dns_records", "terminate"})
	require.NoError(t, err)
	require.Empty(t, due)
	due, err = s.DNSDirtyDue(ctx, t0.Add(time.Minute), []string{"set_dns_records", "terminate"})
	require.NoError(t, err)
	require.Len(t, due, 1)
	require.Equal(t, a.ID, due[0].VM.ID)
	require.Equal(t, 1, due[0].Attempts)
	require.Equal(t, t0.Add(time.Minute), due[0].NextAt)

	// Cleared by the retry: the retry state is reset.
	cur, err := s.VMGet(ctx, a.ID)
	require.NoError(t, err)
	// With a stale version (an admin moved the VM meanwhile) nothing changes.
	require.NoError(t, s.DNSSetClean(ctx, a.ID, cur.Version-1, t0))
	got, err := s.DNSRetryGet(ctx, a.ID)
	require.NoError(t, err)
	require.True(t, got.VM.DNSDirty)
	require.NoError(t, s.DNSSetClean(ctx, a.ID, cur.Version, t0))
	got, err = s.DNSRetryGet(ctx, a.ID)
	require.NoError(t, err)
	require.False(t, got.VM.DNSDirty)
	require.Equal(t, 0, got.Attempts)
	require.True(t, got.NextAt.IsZero())

	// Cleared by anyone else (a pipeline step publishing everything): reset too.
	require.NoError(t, s.DNSSetDirty(ctx, c.ID, 4, t0.Add(time.Hour), t0))
	require.NoError(t, s.VMSetDNSDirty(ctx, c.ID, false, t0))
	got, err = s.DNSRetryGet(ctx, c.ID)
	require.NoError(t, err)
	require.False(t, got.VM.DNSDirty)
	require.Equal(t, 0, got.Attempts)
	require.True(t, got.NextAt.IsZero())

	// Marking dirty again keeps a streak in progress.
	require.NoError(t, s.DNSSetDirty(ctx, c.ID, 2, t0.Add(time.Hour), t0))
	require.NoError(t, s.VMSetDNSDirty(ctx, c.ID, true, t0))
	got, err = s.DNSRetryGet(ctx, c.ID)
	require.NoError(t, err)
	require.Equal(t, 2, got.Attempts)

	_, err = s.DNSRetryGet(ctx, 9999)
	require.ErrorIs(t, err, store.ErrNotFound)
}
