package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// SessionRef is the reference of a session's current id: the hex SHA-256 of
// the raw id. The sessions table is keyed by it (the raw id, which the cookie
// holds, is never stored), and it changes with the id (RotateSession). What
// outlives a rotation — the codes and tokens issued in the session, the
// relying parties to tell when it ends, the sid claim — is bound to the
// session's stable key, Session.SID, instead.
func SessionRef(rawID string) string { return hashKey(rawID) }

// minSessionIDLen refuses ids too short to be ≥128 random bits in any common
// encoding (22 base64 characters); it catches a caller passing a ref or a
// constant rather than policing entropy.
const minSessionIDLen = 16

const sessionCols = `id_hash, sid, user_id, state, auth_time, amr, acr, data, user_agent, client_addr,
	created_at, last_seen_at, expires_at`

func scanSession(sc interface{ Scan(...any) error }) (*Session, error) {
	var x Session
	var amr string
	var auth, created, seen, expires sql.NullInt64
	if err := sc.Scan(&x.Ref, &x.SID, &x.UserID, &x.State, &auth, &amr, &x.ACR, &x.Data, &x.UserAgent, &x.ClientAddr,
		&created, &seen, &expires); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(amr), &x.AMR); err != nil {
		return nil, fmt.Errorf("decode amr: %w", err)
	}
	x.AuthTime = fromMicro(auth)
	x.CreatedAt = fromMicro(created)
	x.LastSeenAt = fromMicro(seen)
	x.ExpiresAt = fromMicro(expires)
	return &x, nil
}

// CreateSession stores a new session under the hash of sess.ID and fills
// sess.Ref, and sess.SID when it is empty (a fresh random key). A zero
// CreatedAt/LastSeenAt is set to now. ErrConflict when the id or the key
// exists.
func (s *Store) CreateSession(ctx context.Context, sess *Session) error {
	if sess == nil || len(sess.ID) < minSessionIDLen {
		return invalid("session id is missing or too short")
	}
	amr, err := json.Marshal(sess.AMR)
	if err != nil {
		return invalid("session amr: %v", err)
	}
	if sess.CreatedAt.IsZero() {
		sess.CreatedAt = s.now()
	}
	if sess.LastSeenAt.IsZero() {
		sess.LastSeenAt = sess.CreatedAt
	}
	sid := sess.SID
	if sid == "" {
		sid = rand.Text()
	}
	ref := SessionRef(sess.ID)
	_, err = s.exec(ctx, `INSERT INTO sessions (`+sessionCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		ref, sid, sess.UserID, sess.State, micro(sess.AuthTime), string(amr), sess.ACR, sess.Data, sess.UserAgent,
		sess.ClientAddr, micro(sess.CreatedAt), micro(sess.LastSeenAt), micro(sess.ExpiresAt))
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	sess.Ref, sess.SID = ref, sid
	return nil
}

// SessionByID loads a session by its raw id. ErrNotFound when it does not
// exist or now is at or past its ExpiresAt (idle expiry is flows' business).
func (s *Store) SessionByID(ctx context.Context, id string, now time.Time) (*Session, error) {
	x, err := scanSession(s.queryRow(ctx, rd, `SELECT `+sessionCols+` FROM sessions
		WHERE id_hash = ? AND (expires_at IS NULL OR expires_at > ?)`, SessionRef(id), now.UnixMicro()))
	if err != nil {
		return nil, s.notFound(err, "session")
	}
	x.ID = id
	return x, nil
}

// UpdateSession writes every field but ID, SID and CreatedAt of the session
// with the raw id sess.ID. ErrNotFound when it does not exist.
func (s *Store) UpdateSession(ctx context.Context, sess *Session) error {
	if sess == nil || sess.ID == "" {
		return invalid("session id is empty")
	}
	amr, err := json.Marshal(sess.AMR)
	if err != nil {
		return invalid("session amr: %v", err)
	}
	ref := SessionRef(sess.ID)
	n, err := s.execN(ctx, `UPDATE sessions SET user_id = ?, state = ?, auth_time = ?, amr = ?, acr = ?, data = ?,
		user_agent = ?, client_addr = ?, last_seen_at = ?, expires_at = ? WHERE id_hash = ?`,
		sess.UserID, sess.State, micro(sess.AuthTime), string(amr), sess.ACR, sess.Data, sess.UserAgent,
		sess.ClientAddr, micro(sess.LastSeenAt), micro(sess.ExpiresAt), ref)
	if err != nil {
		return fmt.Errorf("update session: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("update session: %w", ErrNotFound)
	}
	sess.Ref = ref
	return nil
}

// RotateSession re-keys a session from oldID to newID (session fixation
// defence): the old id is dead at once. Its stable key (SID) stays, and with
// it everything bound to the session — its codes and tokens, the relying
// parties to tell when it ends — so logging the session out later still
// reaches them. ErrNotFound when oldID does not exist, ErrConflict when newID
// does.
func (s *Store) RotateSession(ctx context.Context, oldID, newID string) error {
	if len(newID) < minSessionIDLen {
		return invalid("new session id is missing or too short")
	}
	n, err := s.execN(ctx, `UPDATE sessions SET id_hash = ? WHERE id_hash = ?`, SessionRef(newID), SessionRef(oldID))
	if err != nil {
		return fmt.Errorf("rotate session: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("rotate session: %w", ErrNotFound)
	}
	return nil
}

// RenewSessionKey ends what is bound to the session key sid — its codes and
// tokens are deactivated and its relying parties' logouts queued, as when
// the session is signed out — and gives the session a fresh key, which it
// returns, in one transaction. The journey calls it when another officer
// signs in on a browser that held a session: that session is over, and the
// new officer's tokens must not share its key. ErrNotFound when no session
// has the key.
func (s *Store) RenewSessionKey(ctx context.Context, sid string) (string, error) {
	if sid == "" {
		return "", invalid("session key is empty")
	}
	fresh := rand.Text()
	err := s.InTx(ctx, func(ctx context.Context) error {
		n, err := s.execN(ctx, `UPDATE sessions SET sid = ? WHERE sid = ?`, fresh, sid)
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		return s.RevokeOAuthBySession(ctx, sid)
	})
	if err != nil {
		return "", fmt.Errorf("renew session key: %w", err)
	}
	return fresh, nil
}

// TouchSession records activity (for idle expiry). ErrNotFound when the
// session does not exist.
func (s *Store) TouchSession(ctx context.Context, id string, at time.Time) error {
	n, err := s.execN(ctx, `UPDATE sessions SET last_seen_at = ? WHERE id_hash = ?`, micro(at), SessionRef(id))
	if err != nil {
		return fmt.Errorf("touch session: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("touch session: %w", ErrNotFound)
	}
	return nil
}

// DeleteSession deletes a session by raw id (no error when it does not
// exist) and queues the logout of the relying parties that received tokens
// in it (see RecordSessionClient). Its tokens are left alone: call
// RevokeOAuthBySession with its SID for that (logout does).
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	ref := SessionRef(id)
	err := s.InTx(ctx, func(ctx context.Context) error {
		// The row goes first: from here on no code can be recorded for the
		// session (RecordSessionClient), so the logouts queued next are all
		// of them.
		var sid string
		err := s.row(ctx, wr, `DELETE FROM sessions WHERE id_hash = ? RETURNING sid`, []any{ref}, &sid)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		_, err = s.queueLogouts(ctx, ReasonSessionEnded, s.now(), `session_ref = ?`, sid)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// DeleteSessionByRef deletes one of the user's sessions by its ref (the
// account page's "sign out that device"), deactivates its codes and tokens
// and queues the logout of its relying parties, atomically. ErrNotFound when
// the user has no such session.
func (s *Store) DeleteSessionByRef(ctx context.Context, userID, ref string) error {
	err := s.InTx(ctx, func(ctx context.Context) error {
		var sid string
		if err := s.row(ctx, wr, `DELETE FROM sessions WHERE user_id = ? AND id_hash = ? RETURNING sid`,
			[]any{userID, ref}, &sid); err != nil {
			return err
		}
		return s.RevokeOAuthBySession(ctx, sid)
	})
	if err != nil {
		return fmt.Errorf("delete session of %q: %w", userID, err)
	}
	return nil
}

// UserSessions lists the user's unexpired sessions, newest first. The raw ID
// is not known (only its hash is stored): ID is "" and Ref is set.
func (s *Store) UserSessions(ctx context.Context, userID string, now time.Time) ([]Session, error) {
	if userID == "" {
		return nil, invalid("user id is empty")
	}
	rows, err := s.query(ctx, rd, `SELECT `+sessionCols+` FROM sessions
		WHERE user_id = ? AND (expires_at IS NULL OR expires_at > ?) ORDER BY created_at DESC, id_hash`,
		userID, now.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("list sessions of %q: %w", userID, err)
	}
	defer rows.Close()
	var out []Session
	for rows.Next() {
		x, err := scanSession(rows)
		if err != nil {
			return nil, fmt.Errorf("list sessions of %q: %w", userID, s.mapErr(err))
		}
		out = append(out, *x)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list sessions of %q: %w", userID, s.mapErr(err))
	}
	return out, nil
}

// DeleteUserSessions deletes every session of the user except the one whose
// raw id is except ("" for none: sign out everywhere), deactivates every code
// and token of the user except those bound to the kept session (whatever
// session, live or long gone, they came from), queues the logout of the
// relying parties of the sessions it deleted, and returns their refs — all
// in one transaction.
func (s *Store) DeleteUserSessions(ctx context.Context, userID string, except string) ([]string, error) {
	if userID == "" {
		return nil, invalid("user id is empty")
	}
	exceptRef := ""
	if except != "" {
		exceptRef = SessionRef(except)
	}
	var refs []string
	err := s.InTx(ctx, func(ctx context.Context) error {
		if s.dialect == DialectPostgres {
			// Lock the sessions first: an authorization binding a code to
			// one of them (RecordSessionClient, which share-locks its row
			// until the code commits) then either commits before the
			// revocation below reads the tokens, or finds its session gone.
			if _, err := s.exec(ctx, `SELECT 1 FROM sessions WHERE user_id = ? FOR UPDATE`, userID); err != nil {
				return err
			}
		}
		// The kept session's key; "" when there is none, which keeps nothing.
		keep := ""
		if exceptRef != "" {
			err := s.row(ctx, wr, `SELECT sid FROM sessions WHERE id_hash = ? AND user_id = ?`, []any{exceptRef, userID}, &keep)
			if err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
		}
		if _, err := s.exec(ctx, `UPDATE oauth SET active = 0
			WHERE subject = ? AND active = 1 AND kind IN `+revocableKinds+` AND (? = '' OR session_id <> ?)`,
			userID, keep, keep); err != nil {
			return err
		}
		if _, err := s.queueLogouts(ctx, ReasonSessionEnded, s.now(),
			`session_ref IN (SELECT sid FROM sessions WHERE user_id = ? AND id_hash <> ?)`, userID, exceptRef); err != nil {
			return err
		}
		rows, err := s.query(ctx, wr, `DELETE FROM sessions WHERE user_id = ? AND id_hash <> ? RETURNING id_hash`,
			userID, exceptRef)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var ref string
			if err := rows.Scan(&ref); err != nil {
				return s.mapErr(err)
			}
			refs = append(refs, ref)
		}
		return s.mapErr(rows.Err())
	})
	if err != nil {
		return nil, fmt.Errorf("delete sessions of %q: %w", userID, err)
	}
	return refs, nil
}
