// Package commitfloor measures the naive durable-commit rate of the disk a
// benchmark runs on: one UPDATE and one INSERT per transaction, on a SQLite
// file opened the way the store opens its own (WAL, synchronous=FULL,
// transactions begun IMMEDIATE). Benchmarks report their throughput as a
// ratio to this floor measured in the same run, so a loaded or slow machine
// moves both figures together (issue 15).
package commitfloor

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Floor is an open probe database.
type Floor struct {
	db *sql.DB
	n  int64
}

// Open creates the probe database in dir (a temp dir on the disk under test).
func Open(ctx context.Context, dir string) (*Floor, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(15000)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "commitfloor.db")+"?"+q.Encode())
	if err != nil {
		return nil, err
	}
	for _, stmt := range []string{
		`CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, status TEXT NOT NULL, version INTEGER NOT NULL, updated_at INTEGER NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS lines (id INTEGER PRIMARY KEY, row_id INTEGER NOT NULL, at INTEGER NOT NULL, detail TEXT NOT NULL)`,
		`INSERT OR IGNORE INTO rows (id, status, version, updated_at) VALUES (1, 'a', 0, 0)`,
	} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("commit floor: %w", err)
		}
	}
	return &Floor{db: db}, nil
}

// Commit runs one transaction: a compare-and-set UPDATE of one row and one
// INSERT of a line, then COMMIT (one fsync of the WAL).
func (f *Floor) Commit(ctx context.Context) error {
	tx, err := f.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	res, err := tx.ExecContext(ctx, `UPDATE rows SET version = version + 1, updated_at = ? WHERE id = 1 AND version = ?`,
		time.Now().UnixMilli(), f.n)
	if err == nil {
		var n int64
		if n, err = res.RowsAffected(); err == nil && n != 1 {
			err = fmt.Errorf("commit floor: compare-and-set changed %d rows", n)
		}
	}
	if err == nil {
		_, err = tx.ExecContext(ctx, `INSERT INTO lines (row_id, at, detail) VALUES (1, ?, 'done')`, time.Now().UnixMilli())
	}
	if err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	f.n++
	return nil
}

// Measure commits for about d and returns the rate in commits per second.
func (f *Floor) Measure(ctx context.Context, d time.Duration) (float64, error) {
	start := time.Now()
	n := 0
	for time.Since(start) < d || n == 0 {
		if err := f.Commit(ctx); err != nil {
			return 0, err
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// Close closes the probe database.
func (f *Floor) Close() error { return f.db.Close() }

// Rate opens a probe in dir, measures it for d and closes it.
func Rate(ctx context.Context, dir string, d time.Duration) (float64, error) {
	f, err := Open(ctx, dir)
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	return f.Measure(ctx, d)
}
