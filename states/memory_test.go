package states

import (
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Step memory is versioned JSON; the url-encoded memory of earlier versions
// (a VM caught mid-step by an upgrade) reads the same.
func TestStepMemoryFormats(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 25, 12, 9, 0, 123_000_000, time.UTC)
	ms := strconv.FormatInt(at.UnixMilli(), 10)

	legacy := url.Values{}
	legacy.Set("shutdown_at", ms)
	legacy.Set("stop_at", ms)
	legacy.Set("lock_since", ms)
	legacy.Set("del local:backup/vzdump-qemu-1000-a.vma.zst", "pve1 UPID:pve1:0001:imgdel")
	legacy.Set("del local:backup/vzdump-qemu-1000-b.vma.zst", "lost")
	legacy.Set("del local:backup/vzdump-qemu-1000-c.vma.zst", "pve1 UPID:pve1:0002:imgdel")
	legacy.Set("res local:backup/vzdump-qemu-1000-c.vma.zst", "failed")
	legacy.Set("res local:backup/vzdump-qemu-1000-d.vma.zst", "ok")

	m, old := decodeStepMemory(legacy.Encode())
	require.True(t, old)
	require.Equal(t, at, *m.ShutdownAt)
	require.Equal(t, at, *m.StopAt)
	require.Equal(t, at, *m.LockSince)
	require.Equal(t, map[string]*BackupDeletion{
		"local:backup/vzdump-qemu-1000-a.vma.zst": {Node: "pve1", UPID: "UPID:pve1:0001:imgdel"},
		"local:backup/vzdump-qemu-1000-b.vma.zst": {Lost: true},
		"local:backup/vzdump-qemu-1000-c.vma.zst": {Node: "pve1", UPID: "UPID:pve1:0002:imgdel", Result: deletionFailed},
		"local:backup/vzdump-qemu-1000-d.vma.zst": {Result: deletionOK},
	}, m.Backups)
	require.True(t, m.Backups["local:backup/vzdump-qemu-1000-a.vma.zst"].Submitted())
	require.False(t, m.Backups["local:backup/vzdump-qemu-1000-b.vma.zst"].Submitted())

	// Written back as JSON, it reads back equal, with its version.
	data := m.encode()
	require.Contains(t, data, `"v":1`)
	require.Contains(t, data, `"shutdown_at"`)
	again, old := decodeStepMemory(data)
	require.False(t, old)
	m.V = stepMemoryVersion
	require.Equal(t, m, again)

	// Nothing remembered is an empty column; unreadable memory is forgotten.
	require.Empty(t, StepMemory{}.encode())
	for _, data := range []string{"", "{not json", "%zz"} {
		m, _ := decodeStepMemory(data)
		require.Equal(t, StepMemory{}, m, data)
	}
	// Remembered times keep the millisecond, as they always did.
	require.Equal(t, at, *stamp(at.Add(456 * time.Microsecond)))
}
