package provider

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lanyard-idp/lanyard/provider/store"
	"github.com/lanyard-idp/lanyard/provider/store/seal"
	"github.com/lanyard-idp/lanyard/provider/store/storetest"
)

// Benchmarks of the token endpoint's hot paths, through the real HTTP handler
// on httptest.Server, on both backends: SQLite (WAL) in a temporary directory,
// PostgreSQL in a fresh schema of LANYARD_TEST_POSTGRES_URL. Many clients at
// once, as a token endpoint sees them (SetParallelism(16): 16 × GOMAXPROCS
// goroutines).
//
//	go test -run '^$' -bench 'ClientCredentials|Introspect|Refresh' -benchtime 5s ./provider/
//
// With a full database (README, Performance: `lanyard fixture` makes one):
// LANYARD_BENCH_SQLITE=/path/lanyard.db and LANYARD_BENCH_POSTGRES=postgres://…
// run the same benchmarks on those databases instead of empty ones, with the
// key-encryption key in LANYARD_ENCRYPTION_KEY.

func BenchmarkClientCredentials(b *testing.B) { benchGrants(b, benchEnv(b, store.DialectSQLite)) }
func BenchmarkClientCredentialsPostgres(b *testing.B) {
	benchGrants(b, benchEnv(b, store.DialectPostgres))
}
func BenchmarkIntrospect(b *testing.B) { benchIntrospect(b, benchEnv(b, store.DialectSQLite)) }
func BenchmarkIntrospectPostgres(b *testing.B) {
	benchIntrospect(b, benchEnv(b, store.DialectPostgres))
}
func BenchmarkRefresh(b *testing.B)         { benchRefresh(b, benchEnv(b, store.DialectSQLite)) }
func BenchmarkRefreshPostgres(b *testing.B) { benchRefresh(b, benchEnv(b, store.DialectPostgres)) }

// The garbage collector at work: grants while DeleteExpired sweeps 100,000
// expired tokens. Compare the latencies with BenchmarkClientCredentials'.
func BenchmarkGrantsDuringGC(b *testing.B) { benchGrantsDuringGC(b, benchEnv(b, store.DialectSQLite)) }
func BenchmarkGrantsDuringGCPostgres(b *testing.B) {
	benchGrantsDuringGC(b, benchEnv(b, store.DialectPostgres))
}

func BenchmarkDiscovery(b *testing.B) {
	e := newEnv(b)
	client := benchClient(e)
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get(e.issuer + pathDiscovery)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "requests/s")
}

// benchEnv is a provider on dialect's database: the full one named by
// LANYARD_BENCH_SQLITE / LANYARD_BENCH_POSTGRES, or a fresh one.
func benchEnv(b *testing.B, dialect string) *env {
	b.Helper()
	full := map[string]string{store.DialectSQLite: "LANYARD_BENCH_SQLITE", store.DialectPostgres: "LANYARD_BENCH_POSTGRES"}[dialect]
	if u := os.Getenv(full); u != "" {
		if os.Getenv("LANYARD_ENCRYPTION_KEY") == "" {
			b.Fatalf("%s needs the key-encryption key the database was made with in LANYARD_ENCRYPTION_KEY", full)
		}
		b.Logf("on the database of %s", full)
		return newEnvOn(b, u)
	}
	if dialect == store.DialectSQLite {
		return newEnvOn(b, filepath.Join(b.TempDir(), "l.db"))
	}
	return newEnvOn(b, postgresSchema(b))
}

func benchClient(e *env) *http.Client {
	c := e.srv.Client()
	c.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	return c
}

// post sends a form with Basic credentials and decodes the JSON answer.
func benchPost(c *http.Client, u string, form url.Values, id, secret string, out any) error {
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		return errors.New(resp.Status + ": " + string(body))
	}
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// runParallel runs op on 16 × GOMAXPROCS goroutines and fails on the first
// error (op runs off the benchmark's goroutine: it returns errors).
func runParallel(b *testing.B, setup func() any, op func(state any) error) {
	b.Helper()
	var failed atomic.Pointer[error]
	b.SetParallelism(16)
	reads, written := procIO("syscr"), procIO("wchar")
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var st any
		if setup != nil {
			st = setup()
		}
		for pb.Next() {
			if err := op(st); err != nil {
				failed.CompareAndSwap(nil, &err)
				return
			}
		}
	})
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	// Read system calls and bytes written per operation: SQLite's page
	// reads that missed its cache and its WAL writes (plus a constant part
	// for HTTP), a measure of a full database's cost that a busy machine
	// does not blur.
	if r := procIO("syscr"); r > 0 {
		b.ReportMetric(float64(r-reads)/float64(b.N), "reads/op")
		b.ReportMetric(float64(procIO("wchar")-written)/1024/float64(b.N), "KiB-written/op")
	}
}

// procIO is a counter of /proc/self/io (Linux; 0 elsewhere): syscr, wchar…
func procIO(name string) int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, name+": "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// latencies records how long each operation took, for percentiles.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) time(op func() error) error {
	start := time.Now()
	err := op()
	l.mu.Lock()
	l.d = append(l.d, time.Since(start))
	l.mu.Unlock()
	return err
}

func (l *latencies) report(b *testing.B) {
	slices.Sort(l.d)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(l.d[len(l.d)/2]), "p50-ms")
	b.ReportMetric(ms(l.d[len(l.d)*99/100]), "p99-ms")
	b.ReportMetric(ms(l.d[len(l.d)-1]), "max-ms")
}

func benchGrants(b *testing.B, e *env) {
	client := benchClient(e)
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"docs:read"}}
	before := countRows(b, e.st, store.KindAccess)
	var lat latencies
	runParallel(b, nil, func(any) error {
		return lat.time(func() error { return benchPost(client, e.issuer+pathToken, form, serviceID, serviceSecret, nil) })
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "grants/s")
	lat.report(b)
	// Every grant answered 200 was committed: the rows are there.
	if rows := countRows(b, e.st, store.KindAccess) - before; rows < b.N {
		b.Fatalf("%d grants answered, %d token rows stored", b.N, rows)
	}
}

func benchGrantsDuringGC(b *testing.B, e *env) {
	const expired = 100_000
	ctx := context.Background()
	// The fixture's tokens live 90 days from its Now: 91 days ago, they
	// expired yesterday.
	if err := e.st.GenerateFixture(ctx, store.Fixture{Tokens: expired, Now: time.Now().Add(-91 * 24 * time.Hour)}); err != nil {
		b.Fatal(err)
	}
	client := benchClient(e)
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"docs:read"}}
	var lat latencies
	type sweep struct {
		rows int64
		took time.Duration
		err  error
	}
	swept := make(chan sweep, 1)
	go func() {
		start := time.Now()
		n, err := e.st.DeleteExpired(ctx, time.Now())
		swept <- sweep{n, time.Since(start), err}
	}()
	runParallel(b, nil, func(any) error {
		return lat.time(func() error { return benchPost(client, e.issuer+pathToken, form, serviceID, serviceSecret, nil) })
	})
	gc := <-swept
	if gc.err != nil {
		b.Fatal(gc.err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "grants/s")
	lat.report(b)
	b.ReportMetric(gc.took.Seconds(), "gc-s")
	if gc.rows < expired {
		b.Fatalf("the sweep removed %d rows, want at least %d", gc.rows, expired)
	}
}

// benchIntrospect introspects 2,000 different tokens in turn, so that the
// lookups land all over the token table as they would in production, not
// on one row a cache keeps.
func benchIntrospect(b *testing.B, e *env) {
	client := benchClient(e)
	tokens := make([]string, 2000)
	grant := url.Values{"grant_type": {"client_credentials"}, "scope": {"docs:read"}}
	var next atomic.Int64
	errs := make(chan error, 16)
	for range 16 {
		go func() {
			for i := int(next.Add(1)) - 1; i < len(tokens); i = int(next.Add(1)) - 1 {
				var t struct {
					AccessToken string `json:"access_token"`
				}
				if err := benchPost(client, e.issuer+pathToken, grant, serviceID, serviceSecret, &t); err != nil {
					errs <- err
					return
				}
				tokens[i] = t.AccessToken
			}
			errs <- nil
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	next.Store(0)
	runParallel(b, nil, func(any) error {
		form := url.Values{"token": {tokens[int(next.Add(1))%len(tokens)]}}
		var r struct {
			Active bool `json:"active"`
		}
		if err := benchPost(client, e.issuer+pathIntrospect, form, serviceID, serviceSecret, &r); err != nil {
			return err
		}
		if !r.Active {
			return errors.New("the token is not active")
		}
		return nil
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "introspections/s")
}

// benchRefresh: each client rotates its own refresh token again and again
// (fosite's transaction: the old token deactivated, its access tokens
// revoked, a new pair and the audit event stored).
func benchRefresh(b *testing.B, e *env) {
	r := e.newRP(webappID, webappSecret, webappRedir)
	tokens := make(chan string, 1024)
	for range cap(tokens) / 8 { // enough for 16 × GOMAXPROCS goroutines
		e.journey.setNext(alice())
		tok, _ := r.exchange(r.authorize(e.newBrowser()))
		tokens <- tok.RefreshToken
	}
	client := benchClient(e)
	runParallel(b, func() any { rt := <-tokens; return &rt }, func(st any) error {
		rt := st.(*string)
		var out struct {
			RefreshToken string `json:"refresh_token"`
		}
		err := benchPost(client, e.issuer+pathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {*rt}},
			webappID, webappSecret, &out)
		if err != nil {
			return err
		}
		if out.RefreshToken == "" {
			return errors.New("no new refresh token")
		}
		*rt = out.RefreshToken
		return nil
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "refreshes/s")
}

func countRows(b *testing.B, st *store.Store, kind string) int {
	b.Helper()
	var n int
	q := `SELECT COUNT(*) FROM oauth WHERE kind = '` + kind + `'`
	if err := st.DB().QueryRowContext(context.Background(), q).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

// postgresSchema is a fresh schema on LANYARD_TEST_POSTGRES_URL, dropped
// after the test or benchmark. Without the variable it skips; under CI it
// fails.
func postgresSchema(t testing.TB) string {
	t.Helper()
	return storetest.FreshSchema(t, storetest.PostgresURL(t))
}

// benchMaxConnections is the pool size LANYARD_BENCH_MAX_CONNECTIONS asks for
// (0: the store's default), to measure database.max_connections.
func benchMaxConnections(t testing.TB) int {
	v := os.Getenv("LANYARD_BENCH_MAX_CONNECTIONS")
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("LANYARD_BENCH_MAX_CONNECTIONS: %v", err)
	}
	return n
}

// testKEK is the key-encryption key of a test environment: a new one, or the
// one in LANYARD_ENCRYPTION_KEY, which a full benchmark database was made with.
func testKEK(t testing.TB) []byte {
	if k := os.Getenv("LANYARD_ENCRYPTION_KEY"); k != "" {
		key, err := seal.ParseKey(k)
		if err != nil {
			t.Fatalf("LANYARD_ENCRYPTION_KEY: %v", err)
		}
		return key
	}
	return seal.NewKey()
}
