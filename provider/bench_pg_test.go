package provider

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
)

// The client_credentials benchmark against PostgreSQL: the same HTTP handler
// and the same request mix as BenchmarkClientCredentials (SQLite), with the
// store on the server LANYARD_TEST_POSTGRES_URL names (a fresh schema per
// run). Both run with:
//
//	LANYARD_TEST_POSTGRES_URL=postgres://lanyard:lanyard@127.0.0.1/lanyard_test \
//	  go test -run '^$' -bench ClientCredentials -benchtime 5s ./provider/

func BenchmarkClientCredentialsPostgres(b *testing.B) {
	e := newEnvOn(b, postgresSchema(b))
	body := url.Values{"grant_type": {"client_credentials"}, "scope": {"docs:read"}}.Encode()
	client := e.srv.Client()
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	// As in BenchmarkClientCredentials: many clients at once.
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, e.issuer+pathToken, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(serviceID, serviceSecret)
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "grants/s")
	// Every grant answered 200 was committed: the rows are there.
	var rows int
	if err := e.st.DB().QueryRowContext(context.Background(), `SELECT count(*) FROM oauth`).Scan(&rows); err != nil {
		b.Fatal(err)
	}
	if rows < b.N {
		b.Fatalf("%d grants answered, %d token rows stored", b.N, rows)
	}
}

// postgresSchema is a fresh schema on LANYARD_TEST_POSTGRES_URL, dropped
// after the test or benchmark. Without the variable it skips; under CI it
// fails.
func postgresSchema(b testing.TB) string {
	b.Helper()
	base := os.Getenv("LANYARD_TEST_POSTGRES_URL")
	if base == "" {
		if os.Getenv("CI") == "true" {
			b.Fatal("LANYARD_TEST_POSTGRES_URL is required under CI")
		}
		b.Skip("LANYARD_TEST_POSTGRES_URL is not set (e.g. postgres://lanyard:lanyard@127.0.0.1/lanyard_test)")
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		b.Fatal("LANYARD_TEST_POSTGRES_URL is not a PostgreSQL URL")
	}
	r := make([]byte, 8)
	rand.Read(r)
	schema := "lanyard_bench_" + hex.EncodeToString(r)
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		admin.Close()
		b.Fatalf("create schema: %v", err)
	}
	b.Cleanup(func() {
		defer admin.Close()
		if _, err := admin.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			b.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		b.Fatal("LANYARD_TEST_POSTGRES_URL is not a URL")
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
