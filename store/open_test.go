package store_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

// Open never creates a database: a missing, empty or foreign file is an
// error naming the path and what to do, and the file is left as it was.
func TestOpenRefusesMissingEmptyOrForeignDatabase(t *testing.T) {
	t.Parallel()
	foreignSQLite := func(t *testing.T, path string) {
		db, err := sql.Open("sqlite", "file:"+path)
		require.NoError(t, err)
		_, err = db.Exec(`CREATE TABLE customers (id INTEGER PRIMARY KEY)`)
		require.NoError(t, err)
		require.NoError(t, db.Close())
	}
	otherApp := func(t *testing.T, path string) {
		foreignSQLite(t, path)
		db, err := sql.Open("sqlite", "file:"+path)
		require.NoError(t, err)
		_, err = db.Exec(`PRAGMA application_id = 1234`)
		require.NoError(t, err)
		require.NoError(t, db.Close())
	}
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, path string)
		wantErr error
		want    string
	}{
		{"missing state dir", func(t *testing.T, path string) { require.NoError(t, os.RemoveAll(filepath.Dir(path))) },
			store.ErrNoDatabase, "state directory"},
		{"missing file", func(t *testing.T, path string) {}, store.ErrNoDatabase, "run `pvectl init`"},
		{"empty file", func(t *testing.T, path string) { require.NoError(t, os.WriteFile(path, nil, 0o600)) },
			store.ErrNoDatabase, "is empty (0 bytes"},
		{"text file", func(t *testing.T, path string) { require.NoError(t, os.WriteFile(path, []byte("hello\n"), 0o600)) },
			store.ErrNotPvectl, "is not a SQLite database"},
		{"sqlite without pvectl tables", foreignSQLite, store.ErrNotPvectl, "without pvectl's tables"},
		{"another application's sqlite", otherApp, store.ErrNotPvectl, "belongs to another application"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "state", "pvectl.db")
			require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o750))
			tc.prepare(t, path)
			before, statErr := os.ReadFile(path)
			_, err := store.Open(context.Background(), path)
			require.ErrorIs(t, err, tc.wantErr)
			require.ErrorContains(t, err, tc.want)
			require.ErrorContains(t, err, filepath.Dir(path))
			after, err := os.ReadFile(path)
			if statErr != nil {
				require.True(t, os.IsNotExist(err), "Open created %s", path)
				return
			}
			require.NoError(t, err)
			require.Equal(t, before, after, "Open changed the file")
		})
	}
}

func TestCreateRefusesAnyExistingFileAndOpenFindsItsWork(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "new-state")
	path := filepath.Join(dir, "pvectl.db")
	s, err := store.Create(ctx, path)
	require.NoError(t, err)
	newVM(t, s, "a")
	require.NoError(t, s.Close())
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o750), fi.Mode().Perm())
	leftovers, err := filepath.Glob(filepath.Join(dir, ".pvectl.db.init-*"))
	require.NoError(t, err)
	require.Empty(t, leftovers, "Create left its temporary file behind")

	_, err = store.Create(ctx, path)
	require.ErrorIs(t, err, store.ErrExists)

	empty := filepath.Join(t.TempDir(), "pvectl.db")
	require.NoError(t, os.WriteFile(empty, nil, 0o600))
	_, err = store.Create(ctx, empty)
	require.ErrorIs(t, err, store.ErrExists)

	s, err = store.Open(ctx, path)
	require.NoError(t, err)
	defer s.Close()
	_, err = s.VMFind(ctx, "a")
	require.NoError(t, err)
	id, err := s.Pragma(ctx, "application_id")
	require.NoError(t, err)
	require.Equal(t, "1886807395", id) // 0x70766563, 'pvec'
}

// A database removed, truncated or replaced while the store is open takes
// no further write: every write checks the file first.
func TestWritesRefusedWhenTheFileIsRemovedOrReplaced(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, path string)
		want   string
	}{
		{"deleted", func(t *testing.T, path string) { require.NoError(t, os.Remove(path)) }, "was deleted"},
		{"truncated", func(t *testing.T, path string) { require.NoError(t, os.Truncate(path, 0)) }, "truncated to 0 bytes"},
		{"replaced", func(t *testing.T, path string) {
			s, err := store.Create(context.Background(), path+".other")
			require.NoError(t, err)
			require.NoError(t, s.Close())
			require.NoError(t, os.Rename(path+".other", path))
		}, "replaced by another file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "pvectl.db")
			s, err := store.Create(ctx, path)
			require.NoError(t, err)
			defer s.Close()
			vm := newVM(t, s, "a")
			require.NoError(t, s.Verify())
			tc.change(t, path)
			require.ErrorIs(t, s.Verify(), store.ErrReplaced)
			_, _, err = s.VMCreate(ctx, store.NewVM{ServiceID: "b", Hostname: "b.example.test", Product: "small", Status: "creation", Now: t0})
			require.ErrorIs(t, err, store.ErrReplaced)
			require.ErrorContains(t, err, tc.want)
			err = s.VMSetDNSDirty(ctx, vm.ID, true, t0)
			require.ErrorIs(t, err, store.ErrReplaced)
			if tc.name == "deleted" {
				require.NoFileExists(t, path)
			}
		})
	}
}

// SQLite's "database or disk is full" (code 13) is reported as a full disk.
// A real SQLITE_FULL is provoked by capping the database's page count.
func TestDiskFullIsNamed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t)
	count, err := s.Pragma(ctx, "page_count")
	require.NoError(t, err)
	_, err = s.Pragma(ctx, "max_page_count = "+count)
	require.NoError(t, err)
	var last error
	for i := range 200 {
		_, _, last = s.VMCreate(ctx, store.NewVM{ServiceID: "svc" + string(rune('a'+i%26)) + string(rune('a'+i/26)),
			Hostname: "h" + string(rune('a'+i%26)) + string(rune('a'+i/26)) + ".example.test", Product: "small", Status: "creation", Now: t0})
		if last != nil {
			break
		}
	}
	require.ErrorIs(t, last, store.ErrDiskFull)
	require.ErrorContains(t, last, "disk full (free space in the state directory")
}
