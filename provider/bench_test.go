package provider

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Benchmarks go through the real HTTP handler on httptest.Server, with SQLite
// (WAL) in a temporary directory.
//
//	go test ./provider -run '^$' -bench . -benchtime 5s

func BenchmarkClientCredentials(b *testing.B) {
	e := newEnv(b)
	body := url.Values{"grant_type": {"client_credentials"}, "scope": {"docs:read"}}.Encode()
	client := e.srv.Client()
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	// Many clients at once, as a token endpoint sees them (RunParallel starts
	// parallelism × GOMAXPROCS goroutines).
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
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "grants/s")
}

func BenchmarkIntrospect(b *testing.B) {
	e := newEnv(b)
	tok, err := clientCredentials(e, serviceID, serviceSecret, "docs:read").Token(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	body := url.Values{"token": {tok.AccessToken}}.Encode()
	client := e.srv.Client()
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	// Many clients at once, as a token endpoint sees them (RunParallel starts
	// parallelism × GOMAXPROCS goroutines).
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, e.issuer+pathIntrospect, strings.NewReader(body))
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
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "introspections/s")
}

func BenchmarkDiscovery(b *testing.B) {
	e := newEnv(b)
	client := e.srv.Client()
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	// Many clients at once, as a token endpoint sees them (RunParallel starts
	// parallelism × GOMAXPROCS goroutines).
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
