package storetest

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
)

// PostgresURL is the server the PostgreSQL tests use,
// LANYARD_TEST_POSTGRES_URL (e.g. postgres://lanyard:lanyard@127.0.0.1/lanyard_test).
// Without it the test skips, except under CI (CI=true), where that fails.
func PostgresURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("LANYARD_TEST_POSTGRES_URL")
	if u == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("LANYARD_TEST_POSTGRES_URL is required under CI")
		}
		// The one allowed skip: developers without a PostgreSQL server.
		t.Skip("LANYARD_TEST_POSTGRES_URL is not set; the PostgreSQL tests are not run")
	}
	return u
}

// FreshSchema creates a randomly named schema on the server at base and
// returns a URL whose connections use it (search_path), dropping it at
// cleanup.
func FreshSchema(t testing.TB, base string) string {
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
