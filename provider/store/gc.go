package store

import (
	"context"
	"fmt"
	"time"
)

// DeleteExpired removes what has expired at now and returns how many rows
// went: OAuth rows past expires_at, sessions past expires_at, parked
// authorization requests past expires_at, and throttle rows whose window
// started more than the retention (OpenOptions.ThrottleRetention) ago and
// whose lock is over. Used recovery codes and the audit trail are kept. Each
// kind is its own statement, so a long sweep never holds the write lock for
// long.
func (s *Store) DeleteExpired(ctx context.Context, now time.Time) (int64, error) {
	t := now.UnixMicro()
	keep := now.Add(-s.throttleRetention).UnixMicro()
	var total int64
	for _, d := range []struct {
		what, query string
		args        []any
	}{
		{"oauth rows", `DELETE FROM oauth WHERE expires_at IS NOT NULL AND expires_at < ?`, []any{t}},
		{"sessions", `DELETE FROM sessions WHERE expires_at IS NOT NULL AND expires_at < ?`, []any{t}},
		{"authorization requests", `DELETE FROM auth_requests WHERE expires_at IS NOT NULL AND expires_at < ?`, []any{t}},
		{"throttle rows", `DELETE FROM throttle WHERE (window_start IS NULL OR window_start < ?)
			AND (locked_until IS NULL OR locked_until < ?)`, []any{keep, t}},
	} {
		n, err := s.execN(ctx, d.query, d.args...)
		if err != nil {
			return total, fmt.Errorf("delete expired %s: %w", d.what, err)
		}
		total += n
	}
	return total, nil
}
