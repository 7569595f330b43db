// Package store is Lanyard's persistence: one SQL implementation on
// database/sql with a small dialect table for SQLite (modernc.org/sqlite, the
// embedded default) and PostgreSQL (pgx), embedded forward-only migrations,
// domain-shaped methods (api.go lists them), and the audit trail's
// vocabulary (events.go: every event name, failure reason and actor). Every
// method joins the transaction carried in the context, so fosite's code
// exchange and refresh rotation are atomic.
//
// Secrets that are lookup keys (session ids, fosite signatures) are stored
// only as SHA-256; recovery codes arrive salted and keyed by the caller
// (flows/recovery.go); secrets that must be read back (TOTP seeds, signing
// keys) arrive sealed by the caller (package seal), so the store never holds
// a usable secret in the clear.
//
// No HTTP, no fosite and no page logic here: provider adapts fosite to these
// methods, flows builds the journey on them. The conformance suite every
// backend must pass lives in storetest.
package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"
	_ "modernc.org/sqlite"             // driver "sqlite"
)

// Dialect names, as returned by (*Store).Dialect.
const (
	DialectSQLite   = "sqlite"
	DialectPostgres = "postgres"
)

// sqlitePragmas are set by the driver on every new connection of the pool, not
// once after Open: a PRAGMA run on one pooled connection would leave the others
// without foreign keys or a busy timeout. _txlock=immediate makes every
// transaction take the write lock at BEGIN, so two transactions never deadlock
// upgrading a read lock (SQLite would fail one of them at once, busy timeout or
// not). wal_autocheckpoint(10000) checkpoints every ~40 MB of WAL rather than
// every 4 MB: the index pages every token INSERT touches are then copied back
// once per many commits, which measurably cuts the token endpoint's write cost.
const sqlitePragmas = "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)" +
	"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=wal_autocheckpoint(10000)&_txlock=immediate"

// sqliteWriterPragmas give the one writer connection an 8 MiB page cache
// (SQLite's default is 2 MiB). Every write of the deployment goes through it,
// one at a time, and with a million tokens and ten million audit events the
// index pages a token write touches no longer fit in 2 MiB: each miss is a
// read under the write lock. Measured on the full fixture, a refresh went
// from 37 to 22.5 read system calls (12 on an empty database); 32 MiB saved
// one more read but cost every commit ~20 µs of CPU (SQLite walks the cache's
// hash table at the end of each write transaction) and 50 MiB of memory under
// load. The readers, which run in parallel, keep the default.
const sqliteWriterPragmas = "&_pragma=cache_size(-8192)"

// Store is the database of one deployment.
type Store struct {
	// db serves writes and transactions; rdb serves reads outside a
	// transaction. They are the same pool on PostgreSQL. On SQLite, writers
	// are serialized by the file lock anyway; queueing them in Go (a small
	// write pool) instead of in SQLite's sleeping busy handler keeps latency
	// flat under load, while WAL readers use their own pool in parallel.
	db  *sql.DB
	rdb *sql.DB

	dialect string
	now     func() time.Time

	throttleRetention time.Duration
	auditKey          []byte // see OpenOptions.AuditKey
	maxConns          int

	rebound sync.Map // query text -> PostgreSQL text ($1...)
	wstmts  sync.Map // SQLite: query -> *sql.Stmt prepared on db
	rstmts  sync.Map // SQLite: query -> *sql.Stmt prepared on rdb
}

// OpenOptions tune Open. The zero value is what production uses.
type OpenOptions struct {
	// NoMigrate opens without applying pending migrations (`lanyard migrate`
	// calls Migrate itself to report what it applied).
	NoMigrate bool
	// Now is the clock for the few values the store fills in itself
	// (CreatedAt left zero, audit At left zero). Default time.Now.
	Now func() time.Time
	// ThrottleRetention is how long DeleteExpired keeps a throttle row after
	// its window started and its lock ended, so growing lock times survive a
	// quiet spell. Default 24h.
	ThrottleRetention time.Duration
	// AuditKey keys the audit chain (audit.go): 32 bytes derived from the
	// key-encryption key (seal.Box.Derive(AuditKeyPurpose)). Without it the
	// store reads but cannot append to or check the chain (ErrNoAuditKey),
	// nor migrate a trail written before the key (0008_audit_keyed).
	AuditKey []byte
	// Logger receives the warning when a SQLite file is found readable by
	// others and made private (files.go). Default slog.Default().
	Logger *slog.Logger
	// MaxConnections caps the connections this process opens (config
	// database.max_connections): on PostgreSQL the pool every query and
	// transaction shares, on SQLite the reader pool (there is one writer
	// connection regardless). 0 means DefaultMaxConnections.
	MaxConnections int
}

// DefaultMaxConnections is the pool size when OpenOptions.MaxConnections is 0.
// On PostgreSQL every node opens up to this many: with the server's default
// max_connections (100, a few reserved) that leaves room for four nodes and
// the administrators. Beyond a few connections per core a pool adds no
// throughput, only server memory (each PostgreSQL connection is a process).
const DefaultMaxConnections = 20

// MaxConnectionsLimit is the largest MaxConnections accepted.
const MaxConnectionsLimit = 1000

// Open connects to the database named by url and, unless opts says
// otherwise, applies pending migrations.
//
//   - "postgres://..." or "postgresql://...": PostgreSQL via pgx.
//   - "sqlite:///abs/path.db", "sqlite:rel.db" or a plain file path: SQLite.
//   - "": SQLite in ./lanyard.db.
//
// The URL is never included in errors (it may carry a password).
func Open(ctx context.Context, url string, opts ...OpenOptions) (*Store, error) {
	var o OpenOptions
	if len(opts) > 0 {
		o = opts[len(opts)-1]
	}
	if o.MaxConnections < 0 || o.MaxConnections > MaxConnectionsLimit {
		return nil, fmt.Errorf("store: max connections must be between 1 and %d", MaxConnectionsLimit)
	}
	if o.AuditKey != nil && len(o.AuditKey) < 32 {
		return nil, errors.New("store: the audit key must be at least 32 bytes")
	}
	s := &Store{now: o.Now, throttleRetention: o.ThrottleRetention, maxConns: o.MaxConnections, auditKey: bytes.Clone(o.AuditKey)}
	if s.maxConns == 0 {
		s.maxConns = DefaultMaxConnections
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.throttleRetention <= 0 {
		s.throttleRetention = 24 * time.Hour
	}

	switch {
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		db, err := sql.Open("pgx", url)
		if err != nil {
			return nil, errors.New("store: invalid PostgreSQL URL")
		}
		db.SetMaxOpenConns(s.maxConns)
		db.SetMaxIdleConns(s.maxConns)
		db.SetConnMaxIdleTime(5 * time.Minute)
		s.db, s.rdb, s.dialect = db, db, DialectPostgres
	default:
		path, err := sqlitePath(url)
		if err != nil {
			return nil, err
		}
		if err := privateSQLite(path, o.Logger); err != nil {
			return nil, err
		}
		dsn := path + "?" + sqlitePragmas
		w, err := sql.Open("sqlite", dsn+sqliteWriterPragmas)
		if err != nil {
			return nil, fmt.Errorf("store: open %s: %w", path, err)
		}
		// One writer connection: SQLite allows one writer at a time; the
		// pool queues the others without sleeping. Callers that hold a
		// transaction must pass its ctx to every method (they do: every
		// method joins it), or they would wait on themselves.
		w.SetMaxOpenConns(1)
		w.SetMaxIdleConns(1)
		w.SetConnMaxLifetime(0)
		w.SetConnMaxIdleTime(0)
		r, err := sql.Open("sqlite", dsn)
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("store: open %s: %w", path, err)
		}
		r.SetMaxOpenConns(min(s.maxConns, 8))
		r.SetMaxIdleConns(min(s.maxConns, 8))
		r.SetConnMaxIdleTime(5 * time.Minute)
		s.db, s.rdb, s.dialect = w, r, DialectSQLite
	}

	if err := s.connect(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("store: connect to %s database: %w", s.dialect, err)
	}
	if !o.NoMigrate {
		if _, err := s.Migrate(ctx); err != nil {
			s.Close()
			return nil, err
		}
		if err := s.warmStatements(ctx); err != nil {
			s.Close()
			return nil, err
		}
	}
	if s.dialect == DialectSQLite {
		// The WAL and shared-memory files exist now; ones left by an
		// earlier process may predate the database's tightening.
		path, _ := sqlitePath(url)
		if err := privateSQLite(path, o.Logger); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// connect makes the first connection. Converting a new SQLite file to WAL
// takes an exclusive lock without waiting on the busy timeout, so processes
// opening the same new file together may see SQLITE_BUSY once: retry briefly.
func (s *Store) connect(ctx context.Context) error {
	var err error
	for range 50 {
		if err = s.db.PingContext(ctx); err == nil || !errors.Is(s.mapErr(err), ErrSerialization) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return err
}

// sqlitePath turns the accepted SQLite spellings into a file path.
func sqlitePath(url string) (string, error) {
	path := url
	switch {
	case url == "":
		path = "lanyard.db"
	case strings.HasPrefix(url, "sqlite://"):
		path = strings.TrimPrefix(url, "sqlite://")
	case strings.HasPrefix(url, "sqlite:"):
		path = strings.TrimPrefix(url, "sqlite:")
	case strings.Contains(url, "://"):
		return "", errors.New("store: unsupported database URL scheme (want sqlite:, postgres: or a file path)")
	}
	if path == "" {
		return "", errors.New("store: SQLite URL has no file path")
	}
	// The DSN's query string is ours: the pragmas above are not optional.
	if strings.ContainsAny(path, "?#") || strings.HasPrefix(path, "file:") || strings.Contains(path, ":memory:") {
		return "", errors.New("store: SQLite path must be a plain file path (no query, no file: URI, no :memory:)")
	}
	return path, nil
}

// Close closes the connection pools.
func (s *Store) Close() error {
	s.closeStatements()
	var err error
	if s.rdb != nil && s.rdb != s.db {
		err = s.rdb.Close()
	}
	if s.db != nil {
		err = errors.Join(s.db.Close(), err)
	}
	return err
}

// Dialect reports the backend: "sqlite" or "postgres".
func (s *Store) Dialect() string { return s.dialect }

// WriteConcurrency is how many group-commit batches may be in flight at once
// (provider/groupcommit.go): one on SQLite, whose single writer would only
// queue more; on PostgreSQL a quarter of the pool, at most four — batches
// queue on the audit chain's lock, so more would only hold connections.
func (s *Store) WriteConcurrency() int {
	if s.dialect != DialectPostgres {
		return 1
	}
	return min(4, max(1, s.maxConns/4))
}

// DB is the pool that serves writes and transactions (for pool metrics).
func (s *Store) DB() *sql.DB { return s.db }

// Ping checks that the database answers a query.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.queryRow(ctx, rd, "SELECT 1").Scan(&one); err != nil {
		return s.mapErr(fmt.Errorf("store: ping: %w", err))
	}
	return nil
}

// Backup writes a consistent copy of a SQLite database to path, which must not
// exist yet; the copy is created 0600 as it holds password hashes and sealed
// keys. PostgreSQL deployments use pg_dump.
func (s *Store) Backup(ctx context.Context, path string) error {
	if s.dialect != DialectSQLite {
		return errors.New("store: backup of a PostgreSQL database: use pg_dump")
	}
	if st := txFrom(ctx, s); st != nil && !st.done {
		return errors.New("store: backup cannot run inside a transaction")
	}
	if path == "" {
		return errors.New("store: backup path is empty")
	}
	// O_EXCL makes "refuse if the file exists" atomic; VACUUM INTO accepts an
	// empty file.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("store: backup: %s already exists", path)
	}
	if err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	f.Close()
	if _, err := s.rdb.ExecContext(ctx, "VACUUM INTO ?", path); err != nil {
		os.Remove(path)
		return fmt.Errorf("store: backup to %s: %w", path, err)
	}
	return nil
}
