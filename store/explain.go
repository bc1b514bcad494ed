package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"modernc.org/sqlite"
)

// SQLite primary result codes that have a cause an operator can act on.
const (
	sqliteReadOnly = 8
	sqliteIOErr    = 10
	sqliteFull     = 13
	sqliteCantOpen = 14
)

// Explain turns an error whose cause is the disk or the file system into one
// that names it ("state directory is read-only", "disk full") in front of
// SQLite's own text, so a 3 a.m. reader does not have to know that SQLite
// code 13 means a full disk. Other errors pass through unchanged.
func Explain(err error) error {
	if err == nil || errors.Is(err, ErrReadOnly) || errors.Is(err, ErrDiskFull) {
		return err
	}
	switch {
	case errors.Is(err, syscall.EROFS):
		return fmt.Errorf("%w (read-only file system): %w", ErrReadOnly, err)
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("%w (free space in the state directory, then run again): %w", ErrDiskFull, err)
	}
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return err
	}
	switch se.Code() & 0xff {
	case sqliteReadOnly:
		return fmt.Errorf("%w (the database or its directory cannot be written: check the mount, permissions and owner of the state directory): %w", ErrReadOnly, err)
	case sqliteFull:
		return fmt.Errorf("%w (free space in the state directory, then run again; nothing was lost: the failed write was rolled back): %w", ErrDiskFull, err)
	case sqliteIOErr:
		return fmt.Errorf("disk I/O error on the database (check the disk and the kernel log; a full disk can show as this too): %w", err)
	case sqliteCantOpen:
		return fmt.Errorf("cannot open the database file or its journal (check that the state directory exists and is writable): %w", err)
	}
	return err
}

// explainAt is Explain for an error on the database at path: SQLite reports
// a full disk met while growing its shared-memory or journal file as a
// generic I/O error, so for those the file system is asked how much room is
// left, and a full one is named as such.
func explainAt(path string, err error) error {
	if err == nil {
		return nil
	}
	var se *sqlite.Error
	if errors.As(err, &se) && !errors.Is(err, ErrDiskFull) {
		switch se.Code() & 0xff {
		case sqliteIOErr, sqliteCantOpen, sqliteFull:
			var st unix.Statfs_t
			if unix.Statfs(filepath.Dir(path), &st) == nil && uint64(st.Bavail)*uint64(st.Bsize) < minFree {
				return fmt.Errorf("%w: no space left in %s (free space there, then run again; the failed write was rolled back): %w", ErrDiskFull, filepath.Dir(path), err)
			}
		}
	}
	return Explain(err)
}

// minFree is the free space below which an I/O error is blamed on a full
// disk: less than SQLite needs for one shared-memory region.
const minFree = 64 << 10

// exec runs one write outside an explicit transaction, refusing it when the
// file was removed or replaced since Open.
func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if s.readOnly {
		return nil, s.errReadOnly()
	}
	if s.audit != nil || s.gc != nil {
		// Through the group commit (tx); a request's write and its audit
		// line commit together.
		var res sql.Result
		err := s.tx(ctx, func(tx *sql.Tx) error {
			var err error
			res, err = tx.ExecContext(ctx, query, args...)
			return err
		})
		return res, err
	}
	if err := s.Verify(); err != nil {
		return nil, err
	}
	res, err := s.db.ExecContext(ctx, query, args...)
	return res, explainAt(s.path, err)
}
