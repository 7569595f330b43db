package store

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// gcBatch bounds one DELETE of DeleteExpired: on SQLite every write waits for
// the single writer, so a sweep of a million expired tokens goes in short
// statements between which token requests get their turn.
const gcBatch = 500

// gcMaxPause caps the rest DeleteExpired takes after each full batch: twice
// as long as the batch took, so a sweep holds the writer at most a third of
// the time and the requests queued behind a batch go before the next one.
const gcMaxPause = 200 * time.Millisecond

// DeleteExpired removes what has expired at now, in batches of gcBatch rows
// with a rest after each (gcMaxPause), and returns how many rows went: OAuth
// rows past expires_at, sessions past expires_at (a journey abandoned before
// its password expires within the journey timeout; queuing the logout of
// their relying parties, see RecordSessionClient), parked authorization
// requests past expires_at, approval requests an hour past theirs, and
// throttle rows whose window
// started more than the retention (OpenOptions.ThrottleRetention) ago and
// whose lock is over. Used recovery codes, signing keys (see
// DeleteRetiredSigningKeys) and the audit trail are kept.
func (s *Store) DeleteExpired(ctx context.Context, now time.Time) (int64, error) {
	t := now.UnixMicro()
	keep := now.Add(-s.throttleRetention).UnixMicro()
	var total int64
	for _, d := range []struct {
		what, query string
		args        []any
	}{
		{"oauth rows", `DELETE FROM oauth WHERE (kind, signature_hash) IN (SELECT kind, signature_hash FROM oauth
			WHERE expires_at IS NOT NULL AND expires_at < ? LIMIT ?)`, []any{t, gcBatch}},
		{"sessions", `DELETE FROM sessions WHERE id_hash IN (SELECT id_hash FROM sessions
			WHERE expires_at IS NOT NULL AND expires_at < ? LIMIT ?)`, []any{t, gcBatch}},
		{"authorization requests", `DELETE FROM auth_requests WHERE id IN (SELECT id FROM auth_requests
			WHERE expires_at IS NOT NULL AND expires_at < ? LIMIT ?)`, []any{t, gcBatch}},
		// Approval requests stay an hour past their expiry: the hourly cap
		// counts them.
		{"approval requests", `DELETE FROM approval_requests WHERE id IN (SELECT id FROM approval_requests
			WHERE expires_at < ? LIMIT ?)`, []any{now.Add(-time.Hour).UnixMicro(), gcBatch}},
		// A reset link stays a day past its expiry (a claimed one may be
		// finished a while after it), then nothing needs it: the audit
		// trail keeps its story.
		{"password resets", `DELETE FROM password_resets WHERE id IN (SELECT id FROM password_resets
			WHERE expires_at < ? LIMIT ?)`, []any{now.Add(-24 * time.Hour).UnixMicro(), gcBatch}},
		{"throttle rows", `DELETE FROM throttle WHERE key_name IN (SELECT key_name FROM throttle
			WHERE (window_start IS NULL OR window_start < ?) AND (locked_until IS NULL OR locked_until < ?) LIMIT ?)`,
			[]any{keep, t, gcBatch}},
	} {
		for {
			start := time.Now()
			n, err := s.execN(ctx, d.query, d.args...)
			if err != nil {
				return total, fmt.Errorf("delete expired %s: %w", d.what, err)
			}
			total += n
			if n < gcBatch {
				break
			}
			select {
			case <-ctx.Done():
				return total, ctx.Err()
			case <-time.After(min(2*time.Since(start), gcMaxPause)):
			}
		}
	}
	// The relying parties of the sessions that expired above (or of any
	// session gone without a word) are told now, in batches.
	for {
		var n int
		err := s.InTx(ctx, func(ctx context.Context) (err error) {
			n, err = s.queueLogouts(ctx, ReasonSessionExpired, now, `(session_ref, client_id, sid) IN
				(SELECT session_ref, client_id, sid FROM session_clients WHERE NOT EXISTS
					(SELECT 1 FROM sessions WHERE sessions.sid = session_clients.session_ref) LIMIT ?)`, gcBatch)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("queue logouts of expired sessions: %w", err)
		}
		if n < gcBatch {
			break
		}
	}
	return total, nil
}

// idleBatch bounds one transaction of DeleteIdleSessions (each deleted
// session's ref is a parameter of the statement that queues its logouts).
const idleBatch = 500

// DeleteIdleSessions ends the sessions nobody has used for too long: those
// in state (flows' "signed in") last seen before stateBefore, the others
// (sign-ins in progress) last seen before othersBefore. Each batch deletes
// its sessions and queues the logout of their relying parties
// (ReasonSessionExpired) in one transaction, so a relying party hears of an
// idle session's end when the collector passes, not at its absolute expiry.
// Tokens are left alone, as at absolute expiry. It returns how many
// sessions it ended.
func (s *Store) DeleteIdleSessions(ctx context.Context, state string, stateBefore, othersBefore, now time.Time) (int64, error) {
	if state == "" {
		return 0, invalid("idle sessions: no state")
	}
	const cond = `((state = ? AND last_seen_at < ?) OR (state <> ? AND last_seen_at < ?))`
	condArgs := []any{state, stateBefore.UnixMicro(), state, othersBefore.UnixMicro()}
	var total int64
	for {
		var refs []string // the ended sessions' stable keys (session_clients.session_ref)
		err := s.InTx(ctx, func(ctx context.Context) error {
			refs = refs[:0]
			args := append(append(slices.Clone(condArgs), idleBatch), condArgs...)
			rows, err := s.query(ctx, wr, `DELETE FROM sessions WHERE id_hash IN
				(SELECT id_hash FROM sessions WHERE `+cond+` LIMIT ?) AND `+cond+` RETURNING sid`, args...)
			if err != nil {
				return err
			}
			for rows.Next() {
				var ref string
				if err := rows.Scan(&ref); err != nil {
					rows.Close()
					return s.mapErr(err)
				}
				refs = append(refs, ref)
			}
			err = rows.Err()
			rows.Close()
			if err != nil || len(refs) == 0 {
				return s.mapErr(err)
			}
			in, args := inList("session_ref", refs)
			_, err = s.queueLogouts(ctx, ReasonSessionExpired, now, in, args...)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("delete idle sessions: %w", err)
		}
		total += int64(len(refs))
		if len(refs) < idleBatch {
			return total, nil
		}
	}
}
