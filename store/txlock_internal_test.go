package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// Write transactions begin IMMEDIATE: the write lock is taken at BEGIN, so
// two ticks never both read a VM and then fail to upgrade to a write
// (SQLITE_BUSY mid-transaction, which busy_timeout cannot wait out).
func TestWriteTransactionsBeginImmediate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "pvectl.db")
	s, err := Create(ctx, path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })

	other, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(0)")
	require.NoError(t, err)
	t.Cleanup(func() { _ = other.Close() })
	conn, err := other.Conn(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	tryWrite := func() error {
		if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			return err
		}
		_, err := conn.ExecContext(ctx, "ROLLBACK")
		return err
	}

	require.NoError(t, tryWrite(), "nothing holds the write lock yet")
	err = s.tx(ctx, func(tx *sql.Tx) error {
		// Only a read so far: a deferred transaction would hold no lock.
		var n int
		require.NoError(t, tx.QueryRowContext(ctx, "SELECT count(*) FROM vms").Scan(&n))
		werr := tryWrite()
		require.Error(t, werr, "another writer must be locked out from BEGIN on")
		require.Regexp(t, `(?i)locked|busy`, werr.Error())
		return nil
	})
	require.NoError(t, err)
	require.NoError(t, tryWrite(), "the lock is gone with the transaction")
}
