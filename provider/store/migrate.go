package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// migrations holds one directory per dialect with the same numbered file
// names: forward-only, never edited once released (add a new number instead).
//
//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrations embed.FS

// migrateLockID is the PostgreSQL advisory lock that keeps two nodes starting
// together from applying the same migration twice.
const migrateLockID = 0x6c616e79 // "lany"

// migrationThen is the Go half of a migration, where SQL alone cannot do
// the same on both backends: run in the migration's transaction, after its
// SQL.
var migrationThen = map[string]func(ctx context.Context, s *Store, tx *sql.Tx) error{
	"0006_requests_console": backfillUserSearch,
	"0008_audit_keyed":      keyAuditChain,
}

// MigrationNames lists the embedded migrations of a dialect in order.
func MigrationNames(dialect string) ([]string, error) {
	entries, err := fs.ReadDir(migrations, "migrations/"+dialect)
	if err != nil {
		return nil, fmt.Errorf("store: no migrations for dialect %q", dialect)
	}
	var names []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".sql") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// Migrate applies the pending migrations and returns their versions (file
// names without .sql). Each migration runs in its own transaction together
// with its schema_migrations row, so a crash leaves it applied or not at all.
func (s *Store) Migrate(ctx context.Context) (applied []string, err error) {
	names, err := MigrationNames(s.dialect)
	if err != nil {
		return nil, err
	}
	// A dedicated connection: the PostgreSQL advisory lock belongs to a
	// session, and every statement below must run where the lock is held.
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, s.mapErr(fmt.Errorf("store: migrate: %w", err))
	}
	defer conn.Close()

	if s.dialect == DialectPostgres {
		if _, err := conn.ExecContext(ctx, fmt.Sprintf("SELECT pg_advisory_lock(%d)", migrateLockID)); err != nil {
			return nil, fmt.Errorf("store: migrate: lock: %w", err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), fmt.Sprintf("SELECT pg_advisory_unlock(%d)", migrateLockID))
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version TEXT PRIMARY KEY,
		applied_at BIGINT NOT NULL
	)`); err != nil {
		return nil, s.mapErr(fmt.Errorf("store: migrate: %w", err))
	}

	for _, name := range names {
		version := strings.TrimSuffix(name, ".sql")
		body, err := fs.ReadFile(migrations, path.Join("migrations", s.dialect, name))
		if err != nil {
			return applied, fmt.Errorf("store: migrate: %w", err)
		}
		done, err := s.applyMigration(ctx, conn, version, string(body))
		if err != nil {
			return applied, fmt.Errorf("store: migration %s: %w", version, err)
		}
		if done {
			applied = append(applied, version)
		}
	}
	return applied, nil
}

// applyMigration applies one migration unless it is recorded already. The
// check is inside the transaction: on SQLite the immediate transaction holds
// the write lock, so another process cannot apply it in between.
func (s *Store) applyMigration(ctx context.Context, conn *sql.Conn, version, body string) (bool, error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return false, s.mapErr(err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, s.sq("SELECT COUNT(*) FROM schema_migrations WHERE version = ?"), version).Scan(&n); err != nil {
		return false, s.mapErr(err)
	}
	if n > 0 {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, body); err != nil {
		return false, s.mapErr(err)
	}
	if then := migrationThen[version]; then != nil {
		if err := then(ctx, s, tx); err != nil {
			return false, s.mapErr(err)
		}
	}
	if _, err := tx.ExecContext(ctx, s.sq("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)"),
		version, s.now().UnixMicro()); err != nil {
		return false, s.mapErr(err)
	}
	return true, s.mapErr(tx.Commit())
}
