package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Logout propagation (OpenID Connect Back-Channel Logout 1.0). The provider
// records which relying party received tokens in which SSO session
// (RecordSessionClient), by the session's stable key (Session.SID), which is
// also the sid of the client's ID token and logout token. Every store method
// that ends a session or revokes a user's or a session's tokens moves those
// records into the logout outbox in its own transaction, so no caller can end
// a session and forget to tell the relying parties, and a crash leaves
// either both or neither. Delivery workers (one per node) claim due rows,
// post the logout tokens, and finish or reschedule them.

// SessionClient says that a relying party received tokens in an SSO session.
type SessionClient struct {
	SID       string // the session's stable key (Session.SID): the sid the client was given
	ClientID  string
	Subject   string // user id
	CreatedAt time.Time
}

// LogoutDelivery is one logout token to deliver: to ClientID, about the
// session SID of Subject.
type LogoutDelivery struct {
	ID        int64
	ClientID  string
	Subject   string
	SID       string
	Reason    Reason // ReasonSessionEnded | ReasonUserRevoked | ReasonSessionExpired
	CreatedAt time.Time
	// Attempts counts the claims so far, this one included.
	Attempts int
	// Claim proves the lease: FinishLogout and RetryLogout need it.
	Claim     string
	LastError string
}

// RecordSessionClient notes that rec.ClientID received tokens in the
// session whose key is rec.SID (idempotent). ErrNotFound when no session
// has that key any more: it ended (signed out) since the caller looked, and
// what the caller is issuing in it must not be issued, for no sign-out
// will reach it. On PostgreSQL the session's row is share-locked until the
// transaction ends, so a concurrent sign-out either ended it first (then
// ErrNotFound) or waits and then revokes what this transaction issued.
func (s *Store) RecordSessionClient(ctx context.Context, rec *SessionClient) error {
	switch {
	case rec == nil || rec.SID == "":
		return invalid("session client without session")
	case rec.ClientID == "":
		return invalid("session client without client id")
	case rec.Subject == "":
		return invalid("session client without subject")
	}
	created := rec.CreatedAt
	if created.IsZero() {
		created = s.now()
	}
	// session_ref and sid were two values while tokens followed the
	// session's rotating id; both are the stable key now.
	lock := ""
	if s.dialect == DialectPostgres {
		lock = " FOR SHARE"
	}
	return s.InTx(ctx, func(ctx context.Context) error {
		var one int
		if err := s.row(ctx, wr, `SELECT 1 FROM sessions WHERE sid = ?`+lock, []any{rec.SID}, &one); err != nil {
			return fmt.Errorf("record session client: session: %w", err)
		}
		if _, err := s.exec(ctx, `INSERT INTO session_clients (session_ref, client_id, sid, subject, created_at)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, rec.SID, rec.ClientID, rec.SID, rec.Subject, micro(created)); err != nil {
			return fmt.Errorf("record session client: %w", err)
		}
		return nil
	})
}

// SessionClients lists the relying parties that received tokens in the
// session whose key is sid, oldest first.
func (s *Store) SessionClients(ctx context.Context, sid string) ([]SessionClient, error) {
	rows, err := s.query(ctx, rd, `SELECT client_id, sid, subject, created_at FROM session_clients
		WHERE session_ref = ? ORDER BY created_at, client_id, sid`, sid)
	if err != nil {
		return nil, fmt.Errorf("list session clients: %w", err)
	}
	defer rows.Close()
	var out []SessionClient
	for rows.Next() {
		var c SessionClient
		var created sql.NullInt64
		if err := rows.Scan(&c.ClientID, &c.SID, &c.Subject, &created); err != nil {
			return nil, fmt.Errorf("list session clients: %w", s.mapErr(err))
		}
		c.CreatedAt = fromMicro(created)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list session clients: %w", s.mapErr(err))
	}
	return out, nil
}

// queueLogouts moves the session_clients rows matching where into the
// outbox. The DELETE … RETURNING hands each row to exactly one caller, so
// two transactions ending the same session queue its logouts once. It must
// run inside a transaction (the callers' InTx) so the move is atomic. It
// returns how many it queued.
func (s *Store) queueLogouts(ctx context.Context, reason Reason, now time.Time, where string, args ...any) (int, error) {
	rows, err := s.query(ctx, wr, `DELETE FROM session_clients WHERE `+where+` RETURNING client_id, subject, sid`, args...)
	if err != nil {
		return 0, fmt.Errorf("queue logouts: %w", err)
	}
	type rec struct{ client, subject, sid string }
	var recs []rec
	for rows.Next() {
		var r rec
		if err := rows.Scan(&r.client, &r.subject, &r.sid); err != nil {
			rows.Close()
			return 0, fmt.Errorf("queue logouts: %w", s.mapErr(err))
		}
		recs = append(recs, r)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return 0, fmt.Errorf("queue logouts: %w", s.mapErr(err))
	}
	t := now.UnixMicro()
	for _, r := range recs {
		if _, err := s.exec(ctx, `INSERT INTO logout_outbox (client_id, subject, sid, reason, created_at,
			next_attempt_at, attempts, claim, last_error) VALUES (?, ?, ?, ?, ?, ?, 0, '', '')`,
			r.client, r.subject, r.sid, reason, t, t); err != nil {
			return 0, fmt.Errorf("queue logout: %w", err)
		}
	}
	return len(recs), nil
}

// ClaimLogouts claims up to limit deliveries due at now for lease: each row
// goes to one caller only, across nodes (FOR UPDATE SKIP LOCKED on
// PostgreSQL, the single writer on SQLite). A claimed row is due again when
// the lease runs out unless FinishLogout or RetryLogout settles it first.
func (s *Store) ClaimLogouts(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]LogoutDelivery, error) {
	if limit <= 0 || lease <= 0 {
		return nil, invalid("claim needs a positive limit and lease")
	}
	t := now.UnixMicro()
	// Most polls find nothing: answer them from the read pool, without
	// taking SQLite's write lock.
	var one int
	switch err := s.row(ctx, rd, `SELECT 1 FROM logout_outbox WHERE next_attempt_at <= ? LIMIT 1`, []any{t}, &one); {
	case errors.Is(err, ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("claim logouts: %w", err)
	}
	lock := ""
	if s.dialect == DialectPostgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	claim := rand.Text()
	rows, err := s.query(ctx, wr, `UPDATE logout_outbox SET claim = ?, attempts = attempts + 1, next_attempt_at = ?
		WHERE next_attempt_at <= ? AND id IN (SELECT id FROM logout_outbox WHERE next_attempt_at <= ?
			ORDER BY next_attempt_at, id LIMIT ?`+lock+`)
		RETURNING id, client_id, subject, sid, reason, created_at, attempts, claim, last_error`,
		claim, now.Add(lease).UnixMicro(), t, t, limit)
	if err != nil {
		return nil, fmt.Errorf("claim logouts: %w", err)
	}
	defer rows.Close()
	var out []LogoutDelivery
	for rows.Next() {
		var d LogoutDelivery
		var created sql.NullInt64
		if err := rows.Scan(&d.ID, &d.ClientID, &d.Subject, &d.SID, &d.Reason, &created, &d.Attempts, &d.Claim, &d.LastError); err != nil {
			return nil, fmt.Errorf("claim logouts: %w", s.mapErr(err))
		}
		d.CreatedAt = fromMicro(created)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim logouts: %w", s.mapErr(err))
	}
	return out, nil
}

// FinishLogout removes a delivery that was made (or given up). ErrConflict
// when the claim is no longer the caller's (the lease ran out and another
// node claimed the row), ErrNotFound when the row is gone.
func (s *Store) FinishLogout(ctx context.Context, id int64, claim string) error {
	n, err := s.execN(ctx, `DELETE FROM logout_outbox WHERE id = ? AND claim = ? AND claim <> ''`, id, claim)
	if err != nil {
		return fmt.Errorf("finish logout %d: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("finish logout %d: %w", id, s.existsOr(ctx, `SELECT COUNT(*) FROM logout_outbox WHERE id = ?`, id))
	}
	return nil
}

// RetryLogout releases a failed delivery until next, keeping lastErr for
// the operator. The same errors as FinishLogout.
func (s *Store) RetryLogout(ctx context.Context, id int64, claim string, next time.Time, lastErr string) error {
	if len(lastErr) > 500 {
		lastErr = lastErr[:500]
	}
	n, err := s.execN(ctx, `UPDATE logout_outbox SET claim = '', next_attempt_at = ?, last_error = ?
		WHERE id = ? AND claim = ? AND claim <> ''`, next.UnixMicro(), lastErr, id, claim)
	if err != nil {
		return fmt.Errorf("retry logout %d: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("retry logout %d: %w", id, s.existsOr(ctx, `SELECT COUNT(*) FROM logout_outbox WHERE id = ?`, id))
	}
	return nil
}

// PendingLogouts counts the deliveries in the outbox (claimed or not).
func (s *Store) PendingLogouts(ctx context.Context) (int64, error) {
	var n int64
	if err := s.row(ctx, rd, `SELECT COUNT(*) FROM logout_outbox`, nil, &n); err != nil {
		return 0, fmt.Errorf("count pending logouts: %w", err)
	}
	return n, nil
}
