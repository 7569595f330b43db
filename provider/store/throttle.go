package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// RecordFailure counts one failure for key in a window of the given length
// and returns the new state. It is one statement, so concurrent failures all
// count: a failure whose window started more than window ago opens a new
// window at now with a count of 1.
func (s *Store) RecordFailure(ctx context.Context, key string, now time.Time, window time.Duration) (Throttle, error) {
	if key == "" {
		return Throttle{}, invalid("throttle key is empty")
	}
	if window <= 0 {
		return Throttle{}, invalid("throttle window must be positive")
	}
	nowUS := now.UnixMicro()
	cutoff := now.Add(-window).UnixMicro()
	// Both CASEs read the row as it was before this update (SQL semantics on
	// both backends), so they agree on whether the window is over.
	t := Throttle{Key: key}
	var start, locked sql.NullInt64
	err := s.row(ctx, wr, `INSERT INTO throttle (key_name, failures, window_start, locked_until, locks)
		VALUES (?, 1, ?, NULL, 0)
		ON CONFLICT (key_name) DO UPDATE SET
			failures = CASE WHEN throttle.window_start IS NULL OR throttle.window_start < ?
				THEN 1 ELSE throttle.failures + 1 END,
			window_start = CASE WHEN throttle.window_start IS NULL OR throttle.window_start < ?
				THEN ? ELSE throttle.window_start END
		RETURNING failures, window_start, locked_until, locks`,
		[]any{key, nowUS, cutoff, cutoff, nowUS}, &t.Failures, &start, &locked, &t.Locks)
	if err != nil {
		return Throttle{}, fmt.Errorf("record failure: %w", err)
	}
	t.WindowStart = fromMicro(start)
	t.LockedUntil = fromMicro(locked)
	return t, nil
}

// Lock locks key until the given time: locked_until = until, the lock count
// to locks (the caller decides it: one more than the earlier locks it still
// holds against the key) and the failure count back to 0 (the lock is the
// consequence of those failures). Racing lockers of one key agree on it.
func (s *Store) Lock(ctx context.Context, key string, until time.Time, locks int) error {
	if key == "" {
		return invalid("throttle key is empty")
	}
	if locks < 1 {
		return invalid("a lock counts at least itself")
	}
	_, err := s.exec(ctx, `INSERT INTO throttle (key_name, failures, window_start, locked_until, locks)
		VALUES (?, 0, NULL, ?, ?)
		ON CONFLICT (key_name) DO UPDATE SET locked_until = excluded.locked_until,
			locks = excluded.locks, failures = 0`, key, micro(until), locks)
	if err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	return nil
}

// GetThrottle returns the state of key; a key never seen (or reset) is the
// zero Throttle with Key set, not an error.
func (s *Store) GetThrottle(ctx context.Context, key string) (Throttle, error) {
	t := Throttle{Key: key}
	var start, locked sql.NullInt64
	err := s.row(ctx, rd, `SELECT failures, window_start, locked_until, locks FROM throttle WHERE key_name = ?`,
		[]any{key}, &t.Failures, &start, &locked, &t.Locks)
	if errors.Is(err, ErrNotFound) {
		return Throttle{Key: key}, nil
	}
	if err != nil {
		return Throttle{}, fmt.Errorf("load throttle: %w", err)
	}
	t.WindowStart = fromMicro(start)
	t.LockedUntil = fromMicro(locked)
	return t, nil
}

// ResetThrottle forgets keys entirely (failures, lock and lock count), as
// after a successful sign-in: one statement, so one commit, whatever their
// number.
func (s *Store) ResetThrottle(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	in, args := inList("key_name", keys)
	if _, err := s.exec(ctx, `DELETE FROM throttle WHERE `+in, args...); err != nil {
		return fmt.Errorf("reset throttle: %w", err)
	}
	return nil
}

// ReleaseFailure takes back one failure that RecordFailure counted for key
// in the window that started at windowStart: an attempt is charged before
// it is checked, so that racing guesses all meet the limit, and one that
// turns out right (or is refused unchecked) gives its charge back. A window
// that has since been replaced, or a count a lock has already cleared, is
// left alone.
func (s *Store) ReleaseFailure(ctx context.Context, key string, windowStart time.Time) error {
	if _, err := s.exec(ctx, `UPDATE throttle SET failures = failures - 1
		WHERE key_name = ? AND failures > 0 AND window_start = ?`, key, micro(windowStart)); err != nil {
		return fmt.Errorf("release failure: %w", err)
	}
	return nil
}
