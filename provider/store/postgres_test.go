package store_test

import (
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/lanyard-idp/lanyard/provider/store"
	"github.com/lanyard-idp/lanyard/provider/store/storetest"
)

// postgresURL and freshSchema: the server the PostgreSQL tests use, and a
// fresh schema on it per test (storetest, which the journey's tests share).
var (
	postgresURL = storetest.PostgresURL
	freshSchema = storetest.FreshSchema
)

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
