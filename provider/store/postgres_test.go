package store_test

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/lanyard-idp/lanyard/provider/store"
	"github.com/lanyard-idp/lanyard/provider/store/storetest"
)

// postgresURL is the server the PostgreSQL tests use, e.g.
// postgres://lanyard:lanyard@127.0.0.1/lanyard_test. Each test gets a fresh
// schema in it, dropped afterwards.
func postgresURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("LANYARD_TEST_POSTGRES_URL")
	if u == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("LANYARD_TEST_POSTGRES_URL is required under CI")
		}
		// The one allowed skip: developers without a PostgreSQL server.
		t.Skip("LANYARD_TEST_POSTGRES_URL is not set; PostgreSQL conformance not run")
	}
	return u
}

// freshSchema creates a randomly named schema and returns a URL whose
// connections use it (search_path), dropping it at cleanup.
func freshSchema(t *testing.T, base string) string {
	t.Helper()
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 8)
	rand.Read(b)
	schema := "lanyard_test_" + hex.EncodeToString(b)
	if _, err := admin.ExecContext(t.Context(), "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		if _, err := admin.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal("LANYARD_TEST_POSTGRES_URL is not a URL")
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func openPostgres(t *testing.T, base string) *store.Store {
	t.Helper()
	s, err := store.Open(t.Context(), freshSchema(t, base), store.OpenOptions{AuditKey: storetest.AuditKey})
	if err != nil {
		t.Fatal(err)
	}
	// Registered after the schema's cleanup, so it runs first.
	t.Cleanup(func() { s.Close() })
	if s.Dialect() != store.DialectPostgres {
		t.Fatalf("dialect %q", s.Dialect())
	}
	return s
}

func TestPostgres(t *testing.T) {
	base := postgresURL(t)
	storetest.Run(t, func(t *testing.T) *store.Store { return openPostgres(t, base) })
}

// Nodes starting together migrate once: the advisory lock serializes them.
func TestPostgresMigrateConcurrently(t *testing.T) {
	u := freshSchema(t, postgresURL(t))
	const nodes = 4
	var wg sync.WaitGroup
	applied := make([][]string, nodes)
	errs := make([]error, nodes)
	for i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := store.Open(t.Context(), u, store.OpenOptions{NoMigrate: true})
			if err != nil {
				errs[i] = err
				return
			}
			defer s.Close()
			applied[i], errs[i] = s.Migrate(t.Context())
		}()
	}
	wg.Wait()
	total := 0
	for i := range nodes {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		total += len(applied[i])
	}
	names, _ := store.MigrationNames(store.DialectPostgres)
	if total != len(names) {
		t.Fatalf("%d migrations applied in all, want %d", total, len(names))
	}
}

func TestPostgresBackupRefused(t *testing.T) {
	s := openPostgres(t, postgresURL(t))
	err := s.Backup(t.Context(), filepath.Join(t.TempDir(), "b.db"))
	if err == nil || !strings.Contains(err.Error(), "pg_dump") {
		t.Fatalf("Backup on PostgreSQL: %v, want an error pointing to pg_dump", err)
	}
	if errors.Is(err, store.ErrNotFound) {
		t.Fatal("wrong error kind")
	}
}
