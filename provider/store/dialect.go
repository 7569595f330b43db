package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
)

// ErrInvalid wraps every refusal of bad input (empty key, unknown kind or
// state...). Nothing is written when it is returned.
var ErrInvalid = errors.New("store: invalid input")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// side says which pool a statement uses when ctx carries no transaction.
type side bool

const (
	rd side = false // reads: the read pool (WAL readers run in parallel)
	wr side = true  // writes, and reads that must see them: the write pool
)

// stmt returns what to run query on: the ctx's transaction when there is one
// (so a transaction reads its own writes), else the pool of side. On SQLite
// statements are prepared once and cached: parsing is a fair part of a small
// INSERT's cost there. pgx caches prepared statements per connection itself.
func (s *Store) stmt(ctx context.Context, sd side, query string) (execer, func(), error) {
	q := s.sq(query)
	var tx *sql.Tx
	if st := txFrom(ctx, s); st != nil && !st.done {
		tx = st.tx
	}
	if s.dialect != DialectSQLite {
		if tx != nil {
			return tx, noop, nil
		}
		if sd == wr {
			return s.db, noop, nil
		}
		return s.rdb, noop, nil
	}
	db, cache := s.rdb, &s.rstmts
	if sd == wr || tx != nil {
		db, cache = s.db, &s.wstmts
	}
	var ps *sql.Stmt
	if v, ok := cache.Load(q); ok {
		ps = v.(*sql.Stmt)
	} else if tx != nil {
		// Preparing on the pool would wait for its only connection, which
		// this transaction holds: run unprepared (Open warms the hot
		// transactional statements, see warmStatements).
		return tx, noop, nil
	} else {
		p, err := s.prepare(ctx, db, cache, q)
		if err != nil {
			return nil, nil, err
		}
		ps = p
	}
	if tx != nil {
		// The transaction runs on the write pool's connection, where ps is
		// already prepared: StmtContext reuses it.
		ts := tx.StmtContext(ctx, ps)
		return stmtExecer{ts}, func() { ts.Close() }, nil
	}
	return stmtExecer{ps}, noop, nil
}

func noop() {}

// prepare prepares q on db once and caches it.
func (s *Store) prepare(ctx context.Context, db *sql.DB, cache *sync.Map, q string) (*sql.Stmt, error) {
	p, err := db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if v, loaded := cache.LoadOrStore(q, p); loaded {
		p.Close()
		return v.(*sql.Stmt), nil
	}
	return p, nil
}

// warmStatements prepares the statements that run inside transactions on the
// hot paths (fosite's code exchange and refresh, the audit trail), which the
// cache could not prepare itself (see stmt).
func (s *Store) warmStatements(ctx context.Context) error {
	if s.dialect != DialectSQLite {
		return nil
	}
	for _, q := range []string{
		qCreateOAuth, qGetOAuth, qDeactivateOAuth, qDeactivateOAuthByRequest,
		qAuditLast, qAuditInsert,
	} {
		if _, err := s.prepare(ctx, s.db, &s.wstmts, q); err != nil {
			return fmt.Errorf("store: prepare: %w", err)
		}
	}
	return nil
}

// closeStatements releases the cached statements (Close).
func (s *Store) closeStatements() {
	for _, m := range []*sync.Map{&s.wstmts, &s.rstmts} {
		m.Range(func(k, v any) bool {
			v.(*sql.Stmt).Close()
			m.Delete(k)
			return true
		})
	}
}

// execer is a transaction, a pool or a prepared statement.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// stmtExecer adapts a prepared statement to execer (the query is built in).
type stmtExecer struct{ st *sql.Stmt }

func (e stmtExecer) ExecContext(ctx context.Context, _ string, args ...any) (sql.Result, error) {
	return e.st.ExecContext(ctx, args...)
}

func (e stmtExecer) QueryContext(ctx context.Context, _ string, args ...any) (*sql.Rows, error) {
	return e.st.QueryContext(ctx, args...)
}

func (e stmtExecer) QueryRowContext(ctx context.Context, _ string, args ...any) *sql.Row {
	return e.st.QueryRowContext(ctx, args...)
}

// inList is the condition "col IN (?, ?, …)" with a placeholder for each of
// values (at least one), and values as the query's arguments.
func inList[T ~string](col string, values []T) (string, []any) {
	args := make([]any, len(values))
	for i, v := range values {
		args[i] = string(v)
	}
	return col + " IN (?" + strings.Repeat(", ?", len(values)-1) + ")", args
}

// sq rewrites a query written with ? placeholders for the dialect. Queries are
// constants, so the PostgreSQL form is computed once per query text.
func (s *Store) sq(query string) string {
	if s.dialect != DialectPostgres {
		return query
	}
	if v, ok := s.rebound.Load(query); ok {
		return v.(string)
	}
	q := rebindDollar(query)
	s.rebound.Store(query, q)
	return q
}

// rebindDollar numbers ? placeholders $1, $2... outside quoted text.
func rebindDollar(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	var quote byte
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// exec runs a write and maps the backend's errors.
func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	on, done, err := s.stmt(ctx, wr, query)
	if err != nil {
		return nil, s.mapErr(err)
	}
	defer done()
	res, err := on.ExecContext(ctx, s.sq(query), args...)
	if err != nil {
		return nil, s.mapErr(err)
	}
	return res, nil
}

// execN runs a write and returns the number of rows it changed.
func (s *Store) execN(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := s.exec(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, s.mapErr(err)
	}
	return n, nil
}

// query runs a query returning rows (a read, or a write with RETURNING on wr).
// The caller closes the rows.
func (s *Store) query(ctx context.Context, sd side, query string, args ...any) (*sql.Rows, error) {
	on, done, err := s.stmt(ctx, sd, query)
	if err != nil {
		return nil, s.mapErr(err)
	}
	// A transaction's statement may be closed while its rows are open: the
	// rows keep what they need, and the statement is released with them.
	defer done()
	rows, err := on.QueryContext(ctx, s.sq(query), args...)
	if err != nil {
		return nil, s.mapErr(err)
	}
	return rows, nil
}

// queryRow runs a single-row query; errors surface at Scan.
func (s *Store) queryRow(ctx context.Context, sd side, query string, args ...any) rowScanner {
	on, done, err := s.stmt(ctx, sd, query)
	if err != nil {
		return errRow{err}
	}
	defer done()
	return on.QueryRowContext(ctx, s.sq(query), args...)
}

// rowScanner is a *sql.Row, or errRow when the statement could not be prepared.
type rowScanner interface{ Scan(dest ...any) error }

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// row runs a single-row query and scans it; sql.ErrNoRows becomes ErrNotFound.
func (s *Store) row(ctx context.Context, sd side, query string, args []any, dest ...any) error {
	err := s.queryRow(ctx, sd, query, args...).Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return s.mapErr(err)
	}
	return nil
}

// SQLite result codes (the driver reports extended codes; the low byte is the
// primary one).
const (
	sqliteBusy       = 5
	sqliteLocked     = 6
	sqliteConstraint = 19

	sqliteConstraintForeignKey = 787
	sqliteConstraintPrimaryKey = 1555
	sqliteConstraintUnique     = 2067
)

// mapErr turns backend errors into the store's sentinels, keeping the cause
// wrapped for logs: lost races and lock timeouts are ErrSerialization,
// duplicate keys ErrConflict, a missing referenced row (foreign key) ErrNotFound.
func (s *Store) mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) || errors.Is(err, ErrSerialization) || errors.Is(err, ErrInvalid) {
		return err
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		code := se.Code()
		switch {
		case code&0xff == sqliteBusy, code&0xff == sqliteLocked:
			return fmt.Errorf("%w: %w", ErrSerialization, err)
		case code == sqliteConstraintUnique, code == sqliteConstraintPrimaryKey:
			return fmt.Errorf("%w: %w", ErrConflict, err)
		case code == sqliteConstraintForeignKey:
			return fmt.Errorf("%w: referenced row does not exist: %w", ErrNotFound, err)
		case code&0xff == sqliteConstraint:
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "40001", "40P01", "55P03": // serialization, deadlock, lock not available
			return fmt.Errorf("%w: %w", ErrSerialization, err)
		case "23505":
			return fmt.Errorf("%w: %w", ErrConflict, err)
		case "23503":
			return fmt.Errorf("%w: referenced row does not exist: %w", ErrNotFound, err)
		case "23502", "23514", "22001", "22021", "22P02":
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	return err
}

// micro encodes a time for a BIGINT column: unix microseconds UTC, NULL for
// the zero time.
func micro(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

// fromMicro decodes what micro stored.
func fromMicro(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMicro(v.Int64).UTC()
}

// truncUTC is what a time becomes after a round trip through the store.
func truncUTC(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return time.UnixMicro(t.UnixMicro()).UTC()
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// hashKey is how a secret used as a lookup key is stored: hex SHA-256.
func hashKey(v string) string {
	h := sha256.Sum256([]byte(v))
	return hex.EncodeToString(h[:])
}
