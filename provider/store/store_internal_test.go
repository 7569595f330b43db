package store

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func openTest(t *testing.T, opts ...OpenOptions) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lanyard.db")
	s, err := Open(t.Context(), path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

// Every pooled connection, not just the first, must carry the pragmas.
func TestSQLitePragmasOnEveryConnection(t *testing.T) {
	s, path := openTest(t)
	ctx := t.Context()
	var conns []*sql.Conn
	for range 4 { // held at once, so the read pool opens four connections
		c, err := s.rdb.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	w, err := s.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	conns = append(conns, w)
	for i, c := range conns {
		for pragma, want := range map[string]string{
			"journal_mode": "wal", "busy_timeout": "10000", "foreign_keys": "1", "synchronous": "1",
		} {
			var got string
			if err := c.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("connection %d: PRAGMA %s = %s, want %s", i, pragma, got, want)
			}
		}
	}
	for _, c := range conns {
		c.Close()
	}
	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Errorf("no WAL file beside the database: %v", err)
	}
}

func TestMigrationNamesMatch(t *testing.T) {
	lite, err := MigrationNames(DialectSQLite)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := MigrationNames(DialectPostgres)
	if err != nil {
		t.Fatal(err)
	}
	if len(lite) == 0 || !reflect.DeepEqual(lite, pg) {
		t.Fatalf("migrations differ: sqlite %v, postgres %v", lite, pg)
	}
	for _, n := range lite {
		if len(n) < 9 || strings.Trim(n[:4], "0123456789") != "" || n[4] != '_' {
			t.Errorf("migration %q is not named NNNN_name.sql", n)
		}
	}
}

func TestMigrate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	s, err := Open(t.Context(), path, OpenOptions{NoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UserByID(t.Context(), "x"); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("NoMigrate: query on a missing table: %v", err)
	}
	applied, err := s.Migrate(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want, _ := MigrationNames(DialectSQLite)
	for i := range want {
		want[i] = strings.TrimSuffix(want[i], ".sql")
	}
	if !reflect.DeepEqual(applied, want) {
		t.Fatalf("applied %v, want %v", applied, want)
	}
	again, err := s.Migrate(t.Context())
	if err != nil || len(again) != 0 {
		t.Fatalf("second Migrate: %v, %v", again, err)
	}
	if _, err := s.UserByID(t.Context(), "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after Migrate: %v", err)
	}
	// A second process opening the same file applies nothing.
	s2, err := Open(t.Context(), "sqlite://"+path)
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
}

// Two stores migrating the same new file at once: each migration is applied
// once (the second waits for the first's immediate transaction).
func TestMigrateConcurrently(t *testing.T) {
	path := filepath.Join(t.TempDir(), "race.db")
	errs := make(chan error, 4)
	applied := make(chan []string, 4)
	for range 4 {
		go func() {
			s, err := Open(t.Context(), path, OpenOptions{NoMigrate: true})
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			a, err := s.Migrate(t.Context())
			applied <- a
			errs <- err
		}()
	}
	total := 0
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	close(applied)
	for a := range applied {
		total += len(a)
	}
	want, _ := MigrationNames(DialectSQLite)
	if total != len(want) {
		t.Fatalf("%d migrations applied in all, want %d", total, len(want))
	}
}

func TestOpenURLs(t *testing.T) {
	dir := t.TempDir()
	for _, url := range []string{
		filepath.Join(dir, "plain.db"),
		"sqlite://" + filepath.Join(dir, "abs.db"),
		"sqlite:" + filepath.Join(dir, "opaque.db"),
	} {
		s, err := Open(t.Context(), url)
		if err != nil {
			t.Fatalf("Open(%q): %v", url, err)
		}
		if s.Dialect() != DialectSQLite || s.DB() == nil {
			t.Fatalf("Open(%q): dialect %q", url, s.Dialect())
		}
		s.Close()
	}
	for _, url := range []string{
		"mysql://user:secret@host/db",
		"sqlite://",
		filepath.Join(dir, "x.db") + "?_pragma=foreign_keys(0)",
		"file:" + filepath.Join(dir, "x.db"),
		":memory:",
	} {
		s, err := Open(t.Context(), url)
		if err == nil {
			s.Close()
			t.Fatalf("Open(%q) succeeded", url)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Fatalf("error leaks the URL: %v", err)
		}
	}
	// A PostgreSQL URL with a password: the error must not contain it.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	s, err := Open(ctx, "postgres://lanyard:hunter2-secret@127.0.0.1:1/none?connect_timeout=1")
	if err == nil {
		s.Close()
		t.Fatal("Open of an unreachable PostgreSQL succeeded")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error leaks the password: %v", err)
	}
}

func TestBackup(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	if err := s.CreateUser(ctx, &User{ID: "u1", Username: "alice", State: UserActive}); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "backup.db")
	if err := s.Backup(ctx, dst); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dst)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("backup mode %v, want 0600", fi.Mode().Perm())
	}
	b, err := Open(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if u, err := b.UserByID(ctx, "u1"); err != nil || u.Username != "alice" {
		t.Fatalf("user in the backup: %v %v", u, err)
	}
	// An existing file is refused and left alone.
	if err := s.Backup(ctx, dst); err == nil {
		t.Fatal("Backup over an existing file succeeded")
	}
	if u, err := b.UserByID(ctx, "u1"); err != nil || u == nil {
		t.Fatalf("the refused backup damaged the existing file: %v", err)
	}
	tctx, err := s.BeginTx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Rollback(tctx)
	if err := s.Backup(tctx, filepath.Join(t.TempDir(), "in-tx.db")); err == nil {
		t.Fatal("Backup inside a transaction succeeded")
	}
}

// A real SQLITE_BUSY (another connection holds the write lock, no busy
// timeout on ours) maps to ErrSerialization; a real unique violation to
// ErrConflict.
func TestErrorMapping(t *testing.T) {
	s, path := openTest(t)
	ctx := t.Context()
	tctx, err := s.BeginTx(ctx) // BEGIN IMMEDIATE: holds the write lock
	if err != nil {
		t.Fatal(err)
	}
	defer s.Rollback(tctx)
	other, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	_, err = other.ExecContext(ctx, "INSERT INTO secrets (name, value) VALUES ('x', x'01')")
	if err == nil {
		t.Fatal("write succeeded while another transaction held the lock")
	}
	if got := s.mapErr(err); !errors.Is(got, ErrSerialization) {
		t.Fatalf("BUSY mapped to %v", got)
	}
	s.Rollback(tctx)

	if _, err := other.ExecContext(ctx, "INSERT INTO secrets (name, value) VALUES ('x', x'01')"); err != nil {
		t.Fatal(err)
	}
	_, err = other.ExecContext(ctx, "INSERT INTO secrets (name, value) VALUES ('x', x'01')")
	if got := s.mapErr(err); !errors.Is(got, ErrConflict) {
		t.Fatalf("unique violation mapped to %v", got)
	}
}

func TestRebindDollar(t *testing.T) {
	for in, want := range map[string]string{
		"SELECT 1":                                "SELECT 1",
		"a = ? AND b = ?":                         "a = $1 AND b = $2",
		"kind IN ('a?', 'b') AND x = ?":           "kind IN ('a?', 'b') AND x = $1",
		`"we?ird" = ? AND y = 'it''s?' AND z = ?`: `"we?ird" = $1 AND y = 'it''s?' AND z = $2`,
		"INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)": "INSERT INTO t VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
	} {
		if got := rebindDollar(in); got != want {
			t.Errorf("rebindDollar(%q) = %q, want %q", in, got, want)
		}
	}
}

// The officers of a deployment that predates the console's search are
// found after the migration: its Go half writes their terms.
func TestMigrationBackfillsSearch(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	for _, u := range []struct{ id, username, name string }{
		{"u1", "alice.martin@agency.example", "Alice Martín"},
		{"u2", "bob@agency.example", "Robert Smith"},
	} {
		// Inserted as the first migration's schema had them: no terms.
		if _, err := s.db.ExecContext(ctx, `INSERT INTO users (id, username, email, name, state, password_hash, password_initial)
			VALUES (?, ?, ?, ?, 'active', 'x', 0)`, u.id, u.username, u.username, u.name); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.ListUsersPage(ctx, UserQuery{Search: "martin"}); err != nil || len(got) != 0 {
		t.Fatalf("before the backfill: %v, %v", got, err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := backfillUserSearch(ctx, s, tx); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	for q, want := range map[string]string{"martin": "alice.martin@agency.example", "smith": "bob@agency.example", "bob@": "bob@agency.example"} {
		got, err := s.ListUsersPage(ctx, UserQuery{Search: q})
		if err != nil || len(got) != 1 || got[0].Username != want {
			t.Errorf("search %q after the backfill: %v, %v", q, got, err)
		}
	}
}
