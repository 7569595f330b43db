package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

func validKind(kind string) bool {
	switch kind {
	case KindCode, KindPKCE, KindOIDC, KindAccess, KindRefresh, KindPAR, KindJTI:
		return true
	}
	return false
}

// Statements of the token endpoint's hot path (prepared at Open on SQLite).
const (
	qCreateOAuth = `INSERT INTO oauth (kind, signature_hash, request_id, client_id, subject, session_id, active,
		access_signature_hash, requested_at, expires_at, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qGetOAuth = `SELECT request_id, client_id, subject, session_id, active, access_signature_hash,
		requested_at, expires_at, data FROM oauth WHERE kind = ? AND signature_hash = ?`
	qDeactivateOAuth          = `UPDATE oauth SET active = 0 WHERE kind = ? AND signature_hash = ? AND active = 1`
	qDeactivateOAuthByRequest = `UPDATE oauth SET active = 0 WHERE kind = ? AND request_id = ? AND active = 1`
)

// revocableKinds are what revoking a user's or a session's grants
// deactivates: tokens, and codes not yet redeemed (redeeming a deactivated
// code makes fosite revoke what it issued).
const revocableKinds = `('code', 'access', 'refresh')`

// CreateOAuth stores a fosite request under the SHA-256 of its signature
// (AccessSignature, for refresh rows, is hashed too). ErrConflict when the
// kind and signature exist. One INSERT, no other round trip: it is on the
// token endpoint's hot path.
func (s *Store) CreateOAuth(ctx context.Context, r *OAuthRow) error {
	switch {
	case r == nil || !validKind(r.Kind):
		return invalid("unknown OAuth row kind")
	case r.Signature == "":
		return invalid("OAuth row without signature")
	case r.RequestID == "":
		return invalid("OAuth row without request id")
	}
	accessHash := ""
	if r.AccessSignature != "" {
		accessHash = hashKey(r.AccessSignature)
	}
	_, err := s.exec(ctx, qCreateOAuth,
		r.Kind, hashKey(r.Signature), r.RequestID, r.ClientID, r.Subject, r.SessionID, boolInt(r.Active),
		accessHash, micro(r.RequestedAt), micro(r.ExpiresAt), r.Data)
	if err != nil {
		return fmt.Errorf("create %s: %w", r.Kind, err)
	}
	r.AccessSignatureHash = accessHash
	return nil
}

// GetOAuth loads a row by kind and signature; inactive and expired rows are
// returned as they are (Active, ExpiresAt tell), fosite decides. The raw
// AccessSignature cannot be returned (only its hash is stored):
// AccessSignatureHash carries it.
func (s *Store) GetOAuth(ctx context.Context, kind, signature string) (*OAuthRow, error) {
	r := OAuthRow{Kind: kind, Signature: signature}
	var active int64
	var requested, expires sql.NullInt64
	err := s.row(ctx, rd, qGetOAuth, []any{kind, hashKey(signature)},
		&r.RequestID, &r.ClientID, &r.Subject, &r.SessionID, &active, &r.AccessSignatureHash, &requested, &expires, &r.Data)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", kind, err)
	}
	r.Active = active != 0
	r.RequestedAt, r.ExpiresAt = fromMicro(requested), fromMicro(expires)
	return &r, nil
}

// DeactivateOAuth deactivates an active row: one caller wins, the others get
// ErrConflict (a code redeemed twice, a refresh token rotated twice).
// ErrNotFound when there is no such row at all.
func (s *Store) DeactivateOAuth(ctx context.Context, kind, signature string) error {
	h := hashKey(signature)
	n, err := s.execN(ctx, qDeactivateOAuth, kind, h)
	if err != nil {
		return fmt.Errorf("deactivate %s: %w", kind, err)
	}
	if n == 0 {
		return fmt.Errorf("deactivate %s: %w", kind,
			s.existsOr(ctx, `SELECT COUNT(*) FROM oauth WHERE kind = ? AND signature_hash = ?`, kind, h))
	}
	return nil
}

// DeleteOAuth deletes a row (no error when there is none).
func (s *Store) DeleteOAuth(ctx context.Context, kind, signature string) error {
	if _, err := s.exec(ctx, `DELETE FROM oauth WHERE kind = ? AND signature_hash = ?`, kind, hashKey(signature)); err != nil {
		return fmt.Errorf("delete %s: %w", kind, err)
	}
	return nil
}

// DeactivateOAuthByRequestID deactivates every row of a kind in a token
// family (no error when there is none).
func (s *Store) DeactivateOAuthByRequestID(ctx context.Context, kind, requestID string) error {
	if _, err := s.exec(ctx, qDeactivateOAuthByRequest, kind, requestID); err != nil {
		return fmt.Errorf("deactivate %s of request: %w", kind, err)
	}
	return nil
}

// DeleteOAuthByRequestID deletes every row of a kind in a token family (no
// error when there is none).
func (s *Store) DeleteOAuthByRequestID(ctx context.Context, kind, requestID string) error {
	if _, err := s.exec(ctx, `DELETE FROM oauth WHERE kind = ? AND request_id = ?`, kind, requestID); err != nil {
		return fmt.Errorf("delete %s of request: %w", kind, err)
	}
	return nil
}

// RevokeOAuthBySubject deactivates every code, access and refresh token of a
// user (disable, reset, sign out everywhere) and queues the logout of every
// relying party that received tokens in any of the user's sessions.
func (s *Store) RevokeOAuthBySubject(ctx context.Context, subject string) error {
	if subject == "" {
		return invalid("subject is empty") // would hit every client_credentials token
	}
	if err := s.revokeAndQueue(ctx, "subject", subject, `subject = ?`, ReasonUserRevoked); err != nil {
		return fmt.Errorf("revoke tokens of %q: %w", subject, err)
	}
	return nil
}

// RevokeOAuthBySession deactivates every code, access and refresh token issued
// to an SSO session, and queues the logout of the relying parties that
// received them; sessionID is the session's stable key (Session.SID), the
// value the provider stores in OAuthRow.SessionID.
func (s *Store) RevokeOAuthBySession(ctx context.Context, sessionID string) error {
	if sessionID == "" {
		return invalid("session id is empty") // would hit every token without a session
	}
	if err := s.revokeAndQueue(ctx, "session_id", sessionID, `session_ref = ?`, ReasonSessionEnded); err != nil {
		return fmt.Errorf("revoke tokens of session: %w", err)
	}
	return nil
}

// revokeAndQueue deactivates the codes and tokens whose column (subject or
// session_id) is value, and queues the logouts of the session_clients rows
// matching where, in one transaction.
func (s *Store) revokeAndQueue(ctx context.Context, column, value, where string, reason Reason) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		if _, err := s.exec(ctx, `UPDATE oauth SET active = 0 WHERE `+column+` = ? AND `+column+` <> '' AND active = 1 AND kind IN `+revocableKinds,
			value); err != nil {
			return err
		}
		_, err := s.queueLogouts(ctx, reason, s.now(), where, value)
		return err
	})
}

// CreateAuthRequest parks an authorization request. ExpiresAt is required (a
// parked request must not live for ever); a zero CreatedAt is set to now.
// ErrConflict when the id exists.
func (s *Store) CreateAuthRequest(ctx context.Context, a *AuthRequest) error {
	switch {
	case a == nil || a.ID == "":
		return invalid("authorization request without id")
	case a.ClientID == "":
		return invalid("authorization request without client id")
	case a.ExpiresAt.IsZero():
		return invalid("authorization request without expiry")
	}
	if a.CreatedAt.IsZero() {
		a.CreatedAt = s.now()
	}
	_, err := s.exec(ctx, `INSERT INTO auth_requests (id, client_id, query_string, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
		a.ID, a.ClientID, a.Query, micro(a.CreatedAt), micro(a.ExpiresAt))
	if err != nil {
		return fmt.Errorf("park authorization request: %w", err)
	}
	return nil
}

// AuthRequestByID loads a parked request. ErrNotFound when it does not exist
// or now is at or past its ExpiresAt.
func (s *Store) AuthRequestByID(ctx context.Context, id string, now time.Time) (*AuthRequest, error) {
	a := AuthRequest{ID: id}
	var created, expires, decided sql.NullInt64
	err := s.row(ctx, rd, `SELECT client_id, query_string, created_at, expires_at, decision, decided_by, decided_at
		FROM auth_requests WHERE id = ? AND expires_at > ?`, []any{id, now.UnixMicro()},
		&a.ClientID, &a.Query, &created, &expires, &a.Decision, &a.DecidedBy, &decided)
	if err != nil {
		return nil, fmt.Errorf("load authorization request: %w", err)
	}
	a.CreatedAt, a.ExpiresAt, a.DecidedAt = fromMicro(created), fromMicro(expires), fromMicro(decided)
	return &a, nil
}

// DeleteAuthRequest removes a parked request once it has been resumed (no
// error when there is none).
func (s *Store) DeleteAuthRequest(ctx context.Context, id string) error {
	if _, err := s.exec(ctx, `DELETE FROM auth_requests WHERE id = ?`, id); err != nil {
		return fmt.Errorf("delete authorization request: %w", err)
	}
	return nil
}
