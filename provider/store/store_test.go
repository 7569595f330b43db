package store_test

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lanyard-idp/lanyard/provider/store"
	"github.com/lanyard-idp/lanyard/provider/store/storetest"
)

// openSQLite opens a new store in a real file (WAL, so -wal and -shm files
// appear beside it) in the test's temporary directory.
func openSQLite(t testing.TB) *store.Store {
	t.Helper()
	s, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "lanyard.db"), store.OpenOptions{AuditKey: storetest.AuditKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) *store.Store { return openSQLite(t) })
}

// BenchmarkCreateOAuth is the token endpoint's hot path: one INSERT of a ~1 KB
// row. It must stay well under 200µs/op for 3,000 grants/s.
func BenchmarkCreateOAuth(b *testing.B) {
	s := openSQLite(b)
	data := []byte(strings.Repeat("x", 1024))
	now := time.Now()
	i := 0
	for b.Loop() {
		i++
		err := s.CreateOAuth(b.Context(), &store.OAuthRow{
			Kind: store.KindAccess, Signature: "sig-" + strconv.Itoa(i), RequestID: "req-" + strconv.Itoa(i),
			ClientID: "machine", Active: true, RequestedAt: now, ExpiresAt: now.Add(time.Hour), Data: data,
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreateOAuthParallel is the same under concurrent requests.
func BenchmarkCreateOAuthParallel(b *testing.B) {
	s := openSQLite(b)
	data := []byte(strings.Repeat("x", 1024))
	now := time.Now()
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := strconv.FormatInt(n.Add(1), 10)
			err := s.CreateOAuth(context.Background(), &store.OAuthRow{
				Kind: store.KindAccess, Signature: "sig-" + i, RequestID: "req-" + i,
				ClientID: "machine", Active: true, RequestedAt: now, ExpiresAt: now.Add(time.Hour), Data: data,
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}
