package store

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

func BenchmarkProbe(b *testing.B) {
	data := []byte(strings.Repeat("x", 1024))
	now := time.Now()
	for _, v := range []string{"current", "partial", "partial-blob", "partial-prepared", "partial-prepared-ckpt"} {
		b.Run(v, func(b *testing.B) {
			s, _ := openTestB(b)
			ctx := b.Context()
			if strings.HasPrefix(v, "partial") {
				if _, err := s.db.Exec("DROP INDEX oauth_subject; DROP INDEX oauth_session; CREATE INDEX oauth_subject ON oauth(subject) WHERE subject <> ''; CREATE INDEX oauth_session ON oauth(session_id) WHERE session_id <> ''"); err != nil {
					b.Fatal(err)
				}
			}
			if strings.HasSuffix(v, "ckpt") {
				s.db.Exec("PRAGMA wal_autocheckpoint=10000")
			}
			q := `INSERT INTO oauth (kind, signature_hash, request_id, client_id, subject, session_id, active,
		access_signature_hash, requested_at, expires_at, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
			st, _ := s.db.Prepare(q)
			i := 0
			for b.Loop() {
				i++
				var sig any = hashKey("sig-" + strconv.Itoa(i))
				if strings.HasSuffix(v, "blob") {
					h := []byte(sig.(string))[:32]
					sig = h
				}
				args := []any{"access", sig, "f47ac10b-58cc-4372-a567-0e02b2c3d4" + strconv.Itoa(i), "machine", "", "", 1, "", now.UnixMicro(), now.Add(time.Hour).UnixMicro(), data}
				var err error
				if strings.Contains(v, "prepared") {
					_, err = st.ExecContext(ctx, args...)
				} else {
					_, err = s.db.ExecContext(ctx, q, args...)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func openTestB(b *testing.B) (*Store, string) {
	path := b.TempDir() + "/x.db"
	s, err := Open(b.Context(), path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s, path
}
