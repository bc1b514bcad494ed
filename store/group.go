package store

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
)

// Group commit (issue 15). The step runner's writes — a step's outcome
// (compare-and-set of the VM row, its outbox events, its run line and run
// end), run starts and run lines — go through one writer per Store that
// commits them in batches: everything that arrived while the previous
// commit ran is one IMMEDIATE transaction and one fsync (WAL,
// synchronous=FULL), instead of one each, and the workers no longer sleep
// on SQLite's busy timeout waiting for each other's write lock.
//
//   - A caller returns only after the transaction holding its write has
//     committed: an acknowledged write is durable, as with Store.tx.
//   - Each item runs inside its own SAVEPOINT (a batch of one item needs
//     none: the transaction is rolled back): an item that fails (a
//     compare-and-set that found the row moved, a constraint) is rolled
//     back alone and gets its error; the other items of the batch commit.
//   - An item's audit line (Audited) is written inside its savepoint, and
//     Verify runs once before the batch's COMMIT, as in Store.tx.
//   - An error that breaks the transaction itself (BEGIN, a failed
//     ROLLBACK TO, Verify, COMMIT: a full disk, a replaced file) fails every
//     item of the batch; none of them was acknowledged.
//
// There is no background goroutine while idle: the first caller to find
// no writer running commits its own batch on its own goroutine (so a lone
// worker, concurrency 1, pays no hand-off); if more items arrived
// meanwhile, a writer goroutine takes over until the queue is empty.
type committer struct {
	mu      sync.Mutex
	queue   []*groupItem
	running bool

	commits atomic.Int64 // batches committed (tests, benchmarks)
	items   atomic.Int64 // items acknowledged in them
}

type groupItem struct {
	ctx   context.Context
	fn    func(ctx context.Context, tx *gtx) error
	audit *Request
	done  chan groupResult
}

type groupResult struct {
	err      error
	panicked any
}

// group runs fn in the store's next group commit and returns once the
// batch holding it committed (nil) or fn's own error, or the batch's. fn
// must use the context and transaction it is given; it may run on another
// goroutine.
func (s *Store) group(ctx context.Context, fn func(ctx context.Context, tx *gtx) error) error {
	if s.readOnly {
		return s.errReadOnly()
	}
	if s.gc == nil { // a Store not made by Open (buildSchema): plain tx
		return s.txDirect(ctx, func(tx *sql.Tx) error { return fn(ctx, &gtx{Tx: tx, s: s}) })
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	it := &groupItem{ctx: ctx, fn: fn, audit: s.audit, done: make(chan groupResult, 1)}
	s.gc.submit(s, it)
	r := <-it.done
	if r.panicked != nil {
		panic(r.panicked)
	}
	return r.err
}

// GroupCommits returns how many batches the store's group commit has
// committed and how many writes they held (for tests and benchmarks).
func (s *Store) GroupCommits() (commits, items int64) {
	if s.gc == nil {
		return 0, 0
	}
	return s.gc.commits.Load(), s.gc.items.Load()
}

func (c *committer) submit(s *Store, it *groupItem) {
	c.mu.Lock()
	c.queue = append(c.queue, it)
	if c.running {
		c.mu.Unlock()
		return // the running writer takes it in its next batch
	}
	c.running = true
	c.mu.Unlock()
	// Lead: commit the batch holding our own item here, then hand what
	// arrived meanwhile to a writer goroutine so our caller returns now.
	if c.commitNext(s) {
		go func() {
			for c.commitNext(s) {
			}
		}()
	}
}

// commitNext commits the queued items as one batch and reports whether
// more arrived meanwhile; when none did the writer stops (running=false).
func (c *committer) commitNext(s *Store) bool {
	c.mu.Lock()
	batch := c.queue
	c.queue = nil
	c.mu.Unlock()
	if len(batch) > 0 {
		s.commitBatch(batch)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) == 0 {
		c.running = false
		return false
	}
	return true
}

// commitBatch runs batch in one transaction, each item in its own
// savepoint, commits, and answers every item.
func (s *Store) commitBatch(batch []*groupItem) {
	results := make([]groupResult, len(batch))
	live := make([]int, 0, len(batch))
	for i, it := range batch {
		if err := it.ctx.Err(); err != nil {
			results[i].err = err // given up before its turn: never written
		} else {
			live = append(live, i)
		}
	}
	answer := func(fatal error) {
		for i, it := range batch {
			r := results[i]
			if fatal != nil && r.err == nil && r.panicked == nil {
				r.err = fatal
			}
			it.done <- r
		}
	}
	if len(live) == 0 {
		answer(nil)
		return
	}
	ctx := context.Background()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		answer(explainAt(s.path, err))
		return
	}
	// A batch of one needs no savepoint: if its item fails, the whole
	// transaction is rolled back (a lone CLI write or worker saves two
	// statements).
	alone := len(live) == 1
	for _, i := range live {
		var fatal error
		if results[i], fatal = s.runItem(&gtx{Tx: tx, s: s}, batch[i], !alone); fatal != nil {
			_ = tx.Rollback()
			// Items that had failed on their own keep their error; the
			// others were rolled back with the batch.
			answer(explainAt(s.path, fatal))
			return
		}
		if alone && (results[i].err != nil || results[i].panicked != nil) {
			_ = tx.Rollback()
			answer(nil)
			return
		}
	}
	// Look at the file before the commit makes the work durable: a database
	// removed or replaced under us must not silently take the writes.
	if err := s.Verify(); err != nil {
		_ = tx.Rollback()
		answer(err)
		return
	}
	if err := tx.Commit(); err != nil {
		answer(explainAt(s.path, err))
		return
	}
	s.gc.commits.Add(1)
	s.gc.items.Add(int64(len(live)))
	answer(nil)
}

// runItem runs one item inside SAVEPOINT item (without one when savepoint
// is false: the caller rolls the transaction back if the item fails). A
// non-nil fatal error means the transaction is broken (the batch must roll
// back); err is the item's own failure, already rolled back to its
// savepoint.
func (s *Store) runItem(tx *gtx, it *groupItem, savepoint bool) (res groupResult, fatal error) {
	// The item's own error is explained however the item ends (a full disk
	// can also break the transaction, and so the ROLLBACK TO below).
	defer func() { res.err = explainAt(s.path, res.err) }()
	ctx := context.WithoutCancel(it.ctx)
	if savepoint {
		if _, err := tx.exec(ctx, `SAVEPOINT item`); err != nil {
			return groupResult{}, err
		}
	}
	func() {
		defer func() {
			if p := recover(); p != nil {
				res.panicked = p
			}
		}()
		var before int64
		if it.audit != nil {
			if err := tx.queryRow(ctx, `SELECT total_changes()`).Scan(&before); err != nil {
				res.err = err
				return
			}
		}
		if err := it.fn(ctx, tx); err != nil {
			res.err = err
			return
		}
		if it.audit != nil {
			res.err = recordAudit(ctx, tx.Tx, *it.audit, before)
		}
	}()
	if !savepoint {
		return res, nil
	}
	if res.err != nil || res.panicked != nil {
		if _, err := tx.exec(ctx, `ROLLBACK TO item`); err != nil {
			return res, fmt.Errorf("roll back a failed write (%v): %w", res.err, err)
		}
	}
	if _, err := tx.exec(ctx, `RELEASE item`); err != nil {
		return res, err
	}
	return res, nil
}

// gtx is a group commit's transaction as an item sees it: the *sql.Tx, and
// exec/queryRow that reuse the store's prepared statements (the writer is
// one goroutine; parsing the same few statements for every item would be
// most of its CPU).
type gtx struct {
	*sql.Tx
	s *Store
}

func (t *gtx) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := t.s.prepared(ctx, query)
	if err != nil {
		return nil, err
	}
	return t.StmtContext(ctx, st).ExecContext(ctx, args...)
}

func (t *gtx) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := t.s.prepared(ctx, query)
	if err != nil {
		return t.QueryRowContext(ctx, query, args...) // reports err again
	}
	return t.StmtContext(ctx, st).QueryRowContext(ctx, args...)
}

// stmtCache holds the store's prepared statements by text; database/sql
// prepares each again on every connection that runs it.
type stmtCache struct {
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

// prepared returns query prepared on the store's pool (once per store).
func (s *Store) prepared(ctx context.Context, query string) (*sql.Stmt, error) {
	c := s.stmts
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[query]; ok {
		return st, nil
	}
	st, err := s.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if c.m == nil {
		c.m = map[string]*sql.Stmt{}
	}
	c.m[query] = st
	return st, nil
}

// queryRow is db.QueryRowContext through the prepared statement cache, for
// the reads every step makes.
func (s *Store) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := s.prepared(ctx, query)
	if err != nil {
		return s.db.QueryRowContext(ctx, query, args...) // reports err again
	}
	return st.QueryRowContext(ctx, args...)
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.m {
		_ = st.Close()
	}
	c.m = nil
}
