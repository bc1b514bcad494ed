// Package store is pvectl's SQLite store (modernc.org/sqlite, no cgo) and the
// only package that writes SQL. Methods take and return plain structs.
//
// Durability: WAL journal, synchronous=FULL, foreign keys on, a busy timeout,
// and every transaction begun IMMEDIATE so that two writers never deadlock on
// a read-to-write upgrade. Migrations are embedded and applied at Open.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"
	"github.com/pressly/goose/v3"
	"golang.org/x/sys/unix"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations/*.sql
var migrations embed.FS

// maxIdleConns is how many open connections the pool keeps between uses:
// above the step runner's default concurrency plus its group-commit writer.
const maxIdleConns = 16

// BusyTimeout is how long a writer waits for another writer's lock.
const BusyTimeout = 15 * time.Second

// ErrNotFound is returned when a record does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a compare-and-set found the row changed.
var ErrConflict = errors.New("record changed concurrently")

// Store is an open pvectl database.
type Store struct {
	db       *sql.DB
	path     string
	ident    os.FileInfo // the file opened, to notice it being removed or replaced
	readOnly bool
	audit    *Request   // see Audited
	gc       *committer // group commit of the step runner's writes (group.go)
	stmts    *stmtCache // prepared statements of the hot paths (group.go)
}

// Open opens the existing pvectl database at path and applies pending
// migrations. It never creates one (that is Create, run by `pvectl init`): a
// missing, empty or foreign file is an error that says what to do, because a
// silently new, empty database would hand out the addresses of running VMs
// again. Concurrent Opens of the same file serialise their migrations through
// a lock file beside the database.
//
// When the database or its directory cannot be written (a read-only copy of
// the state directory, a read-only mount) the store is opened read-only:
// reads work, and every write fails with ErrReadOnly.
func Open(ctx context.Context, path string) (*Store, error) {
	fi, err := checkFile(path)
	if err != nil {
		return nil, err
	}
	ro := !writable(path) || !writable(filepath.Dir(path))
	s, err := openDB(ctx, path, ro)
	if err != nil {
		return nil, err
	}
	s.ident = fi
	if err := s.checkOwner(ctx); err != nil {
		_ = s.db.Close()
		return nil, err
	}
	if !ro {
		if _, err := s.db.ExecContext(ctx, "PRAGMA journal_mode = WAL"); err != nil {
			_ = s.db.Close()
			return nil, explainAt(path, fmt.Errorf("open database %s: %w", path, err))
		}
	}
	if ro {
		if err := s.checkNoPending(ctx); err != nil {
			_ = s.db.Close()
			return nil, err
		}
		return s, nil
	}
	if err := s.migrate(ctx); err != nil {
		_ = s.db.Close()
		return nil, Explain(err)
	}
	return s, nil
}

// Create makes a new, empty pvectl database at path (and its directory) and
// opens it. It refuses to touch an existing file of any kind. The schema is
// built in a temporary file that is linked into place only when complete,
// so a crash during Create leaves no half-made database behind.
func Create(ctx context.Context, path string) (*Store, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, Explain(fmt.Errorf("create state directory %s: %w", dir, err))
	}
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("%w: %s already exists; pvectl init never overwrites a database", ErrExists, path)
	}
	tmp, err := os.CreateTemp(dir, ".pvectl.db.init-*")
	if err != nil {
		return nil, Explain(fmt.Errorf("create database in %s: %w", dir, err))
	}
	tmpPath := tmp.Name()
	_ = tmp.Close()
	// The database holds cloud-init passwords until they reach PVE and SSH
	// keys: owner-only (SQLite gives -wal/-shm the same mode).
	if err := os.Chmod(tmpPath, 0o600); err != nil {
		_ = os.Remove(tmpPath)
		return nil, err
	}
	defer func() { _ = os.Remove(tmpPath) }()
	if err := buildSchema(ctx, tmpPath); err != nil {
		return nil, Explain(fmt.Errorf("create database %s: %w", path, err))
	}
	if err := os.Link(tmpPath, path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("%w: %s already exists; pvectl init never overwrites a database", ErrExists, path)
		}
		return nil, Explain(fmt.Errorf("create database %s: %w", path, err))
	}
	syncDir(dir)
	return Open(ctx, path)
}

// buildSchema stamps pvectl's application id on a new file and applies every
// migration, then syncs it to disk.
func buildSchema(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)&_pragma=synchronous(FULL)")
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }()
	if _, err := db.ExecContext(ctx, fmt.Sprintf("PRAGMA application_id = %d", ApplicationID)); err != nil {
		return err
	}
	s := &Store{db: db, path: path}
	if err := s.up(ctx); err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, "PRAGMA journal_mode = WAL"); err != nil {
		return err
	}
	return db.Close()
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// ApplicationID is stamped in every database pvectl creates ('pvec'), so a
// foreign SQLite file is recognised as such.
const ApplicationID = 0x70766563

// Errors of opening and guarding the database file. Every one is wrapped in
// a message naming the path and what to do.
var (
	ErrNoDatabase = errors.New("no pvectl database")
	ErrNotPvectl  = errors.New("not a pvectl database")
	ErrExists     = errors.New("database exists")
	// ErrReplaced: the file the store opened was removed or replaced by
	// another while pvectl ran; nothing more is written to it.
	ErrReplaced = errors.New("database file removed or replaced while pvectl ran")
	ErrReadOnly = errors.New("state directory is read-only")
	ErrDiskFull = errors.New("disk full")
)

const initHint = "the VMs in Proxmox would be unknown to pvectl and their addresses handed out again"

// checkFile refuses a missing, empty or non-SQLite database file.
func checkFile(path string) (os.FileInfo, error) {
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: state directory %s does not exist (wrong --state-dir or PVECTL_STATE_DIR? `pvectl init` creates it with a new database)", ErrNoDatabase, dir)
	}
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s does not exist. If this is a new installation, run `pvectl init`; if pvectl has managed VMs from here before, restore the database from a backup instead (%s)", ErrNoDatabase, path, initHint)
	}
	if err != nil {
		return nil, explainAt(path, fmt.Errorf("open database %s: %w", path, err))
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrNotPvectl, path)
	}
	if fi.Size() == 0 {
		return nil, fmt.Errorf("%w: %s is empty (0 bytes: a failed restore, a full disk, a truncation?). Restore it from a backup; do not run `pvectl init` over it (%s)", ErrNoDatabase, path, initHint)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, explainAt(path, fmt.Errorf("open database %s: %w", path, err))
	}
	defer func() { _ = f.Close() }()
	head := make([]byte, 16)
	if n, _ := io.ReadFull(f, head); n < 16 || string(head) != "SQLite format 3\x00" {
		return nil, fmt.Errorf("%w: %s is not a SQLite database (check --state-dir; restore pvectl.db from a backup)", ErrNotPvectl, path)
	}
	return fi, nil
}

// writable reports whether this process may write path (root included: a
// read-only mount answers EROFS even to root).
func writable(path string) bool {
	return unix.Access(path, unix.W_OK) == nil
}

func openDB(ctx context.Context, path string, readOnly bool) (*Store, error) {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", BusyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	if readOnly {
		q.Set("mode", "ro")
	} else {
		// Never create (that is Create's job). WAL is switched on only
		// after checkOwner: opening a foreign file must not change it.
		q.Set("mode", "rw")
		q.Add("_pragma", "synchronous(FULL)")
		q.Set("_txlock", "immediate")
	}
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err == nil {
		err = db.PingContext(ctx)
	}
	if err != nil && readOnly {
		// A read-only copy without its -shm file cannot be opened in WAL
		// mode from a directory nobody may write: read it as immutable.
		if db != nil {
			_ = db.Close()
		}
		q.Set("immutable", "1")
		db, err = sql.Open("sqlite", "file:"+path+"?"+q.Encode())
		if err == nil {
			err = db.PingContext(ctx)
		}
	}
	if err != nil {
		if db != nil {
			_ = db.Close()
		}
		return nil, explainAt(path, fmt.Errorf("open database %s: %w", path, err))
	}
	// Keep the connections the step workers use: database/sql keeps only
	// two idle by default, and a SQLite connection opened anew reads and
	// parses the whole schema (most of a pass's CPU at concurrency 8).
	db.SetMaxIdleConns(maxIdleConns)
	return &Store{db: db, path: path, readOnly: readOnly, gc: &committer{}, stmts: &stmtCache{}}, nil
}

// checkOwner accepts a file stamped with pvectl's application id, or one
// made before the stamp existed (pvectl's migration table and its vms table;
// stamped now when writable), and refuses anything else.
func (s *Store) checkOwner(ctx context.Context) error {
	var id int64
	if err := s.db.QueryRowContext(ctx, "PRAGMA application_id").Scan(&id); err != nil {
		return Explain(fmt.Errorf("read database %s: %w", s.path, err))
	}
	if id == ApplicationID {
		return nil
	}
	if id != 0 {
		return fmt.Errorf("%w: %s belongs to another application (SQLite application_id %#x); check --state-dir", ErrNotPvectl, s.path, id)
	}
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type='table' AND name IN ('goose_db_version','vms')`).Scan(&n)
	if err != nil {
		return Explain(fmt.Errorf("read database %s: %w", s.path, err))
	}
	if n != 2 {
		return fmt.Errorf("%w: %s is a SQLite database without pvectl's tables (wrong --state-dir? restore pvectl.db from a backup; `pvectl init` only creates a database where none exists)", ErrNotPvectl, s.path)
	}
	if !s.readOnly {
		if _, err := s.db.ExecContext(ctx, fmt.Sprintf("PRAGMA application_id = %d", ApplicationID)); err != nil {
			return Explain(fmt.Errorf("stamp database %s: %w", s.path, err))
		}
	}
	return nil
}

func (s *Store) provider() (*goose.Provider, error) {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, s.db, sub)
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	return p, nil
}

func (s *Store) up(ctx context.Context) error {
	p, err := s.provider()
	if err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate database %s: %w", s.path, err)
	}
	return nil
}

func (s *Store) checkNoPending(ctx context.Context) error {
	p, err := s.provider()
	if err != nil {
		return err
	}
	pending, err := p.HasPending(ctx)
	if err != nil {
		return Explain(fmt.Errorf("read database %s: %w", s.path, err))
	}
	if pending {
		return fmt.Errorf("%w: %s needs a schema upgrade, which cannot be written (run this pvectl once where the state directory is writable)", ErrReadOnly, s.path)
	}
	return nil
}

func (s *Store) migrate(ctx context.Context) error {
	lk := flock.New(s.path + ".migrate.lock")
	if err := lk.Lock(); err != nil {
		return fmt.Errorf("lock database for migration: %w", err)
	}
	defer func() { _ = lk.Unlock() }()
	return s.up(ctx)
}

func (s *Store) errReadOnly() error {
	return fmt.Errorf("%w: %s cannot be written (a read-only copy or mount?); only vm list, vm show, log and tasks work here", ErrReadOnly, filepath.Dir(s.path))
}

// ReadOnly reports whether the store was opened read-only because its file
// or directory cannot be written.
func (s *Store) ReadOnly() bool { return s.readOnly }

// Verify checks that the path still names the file the store opened, and
// that it is not empty. A database removed, truncated or replaced under a
// running pvectl would otherwise take writes that nobody will ever read.
func (s *Store) Verify() error {
	if s.ident == nil {
		return nil
	}
	fi, err := os.Stat(s.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%w: %s was deleted while pvectl ran; nothing more was written. Restore it from a backup (%s)", ErrReplaced, s.path, initHint)
	case err != nil:
		return Explain(fmt.Errorf("check database %s: %w", s.path, err))
	case !os.SameFile(fi, s.ident):
		return fmt.Errorf("%w: %s was replaced by another file while pvectl ran; nothing more was written to either. Run pvectl again to use the new file", ErrReplaced, s.path)
	case fi.Size() == 0:
		return fmt.Errorf("%w: %s was truncated to 0 bytes while pvectl ran; nothing more was written. Restore it from a backup (%s)", ErrReplaced, s.path, initHint)
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error {
	if s.stmts != nil {
		s.stmts.close()
	}
	return s.db.Close()
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Pragma returns the value of a PRAGMA as text (used by tests).
func (s *Store) Pragma(ctx context.Context, name string) (string, error) {
	var v string
	err := s.db.QueryRowContext(ctx, "PRAGMA "+name).Scan(&v)
	return v, err
}

// tx runs fn in an IMMEDIATE transaction and commits it if fn returns nil.
//
// On a store made by Open it goes through the group commit (group.go): fn
// runs in its own savepoint of the writer's next batch, and tx returns once
// that batch is durable, so concurrent writers share an fsync instead of
// queueing on SQLite's write lock.
func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	if s.gc != nil {
		return s.group(ctx, func(_ context.Context, g *gtx) error { return fn(g.Tx) })
	}
	return s.txDirect(ctx, fn)
}

// txDirect is tx in a transaction of its own.
func (s *Store) txDirect(ctx context.Context, fn func(*sql.Tx) error) error {
	if s.readOnly {
		return s.errReadOnly()
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return explainAt(s.path, err)
	}
	var before int64
	if s.audit != nil {
		if err := tx.QueryRowContext(ctx, `SELECT total_changes()`).Scan(&before); err != nil {
			_ = tx.Rollback()
			return explainAt(s.path, err)
		}
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return explainAt(s.path, err)
	}
	if s.audit != nil {
		if err := recordAudit(ctx, tx, *s.audit, before); err != nil {
			_ = tx.Rollback()
			return explainAt(s.path, err)
		}
	}
	// Look at the file before the commit makes the work durable: a database
	// removed or replaced under us must not silently take the write.
	if err := s.Verify(); err != nil {
		_ = tx.Rollback()
		return err
	}
	return explainAt(s.path, tx.Commit())
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// QuickCheck runs SQLite's PRAGMA quick_check (a fast integrity check of
// the database file: pages, records, UNIQUE and NOT NULL, without the
// index-to-table cross-check) and returns its problems; none means the
// file is sound.
func (s *Store) QuickCheck(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `PRAGMA quick_check(20)`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return nil, err
		}
		if line != "ok" {
			out = append(out, line)
		}
	}
	return out, rows.Err()
}
