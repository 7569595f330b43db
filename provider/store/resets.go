package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Password-reset link statuses (PasswordReset.Status). sent and claimed are
// live: an account has at most one live link.
const (
	ResetSent    = "sent"    // emailed, not opened yet
	ResetClaimed = "claimed" // opened, and bound to one browser (ClaimedSID)
	ResetUsed    = "used"    // the password was reset with it
	ResetVoid    = "void"    // no longer usable: VoidReason says why
)

// Why a reset link stopped working before it was used (PasswordReset.VoidReason).
const (
	ResetVoidReplaced     = "replaced"        // a newer link was sent
	ResetVoidOtherBrowser = "other browser"   // opened in a second browser: it leaked
	ResetVoidAccount      = "account changed" // the account can no longer be reset this way
)

// PasswordReset is one "Forgot your password?" link.
type PasswordReset struct {
	ID     string
	UserID string
	// Token is the emailed secret: write-only (the store keeps its SHA-256
	// only; loaded rows have it empty).
	Token      string
	Status     string
	ClientAddr string // who asked for it
	CreatedAt  time.Time
	// ExpiresAt is when the link stops working if nobody opened it.
	ExpiresAt time.Time
	// ClaimedSID is the stable key (Session.SID) of the browser that opened
	// it: the only one that may go on with the reset.
	ClaimedSID string
	ClaimedAt  time.Time
	DoneAt     time.Time
	VoidReason string
}

// Live reports whether the link may still be opened or finished.
func (r *PasswordReset) Live() bool { return r.Status == ResetSent || r.Status == ResetClaimed }

const resetCols = `id, user_id, status, client_addr, created_at, expires_at, claimed_sid, claimed_at, done_at, void_reason`

func scanReset(sc interface{ Scan(...any) error }) (*PasswordReset, error) {
	var r PasswordReset
	var created, expires, claimed, done sql.NullInt64
	if err := sc.Scan(&r.ID, &r.UserID, &r.Status, &r.ClientAddr, &created, &expires, &r.ClaimedSID, &claimed, &done, &r.VoidReason); err != nil {
		return nil, err
	}
	r.CreatedAt, r.ExpiresAt = fromMicro(created), fromMicro(expires)
	r.ClaimedAt, r.DoneAt = fromMicro(claimed), fromMicro(done)
	return &r, nil
}

// CreatePasswordReset stores a new link (status sent, with its Token) and
// voids the account's live one, in one transaction (it joins ctx's): a new
// link makes the older useless. ErrConflict when a racing request stored
// its link first (retry: it is voided then).
func (s *Store) CreatePasswordReset(ctx context.Context, r *PasswordReset) error {
	switch {
	case r == nil || r.ID == "" || r.UserID == "":
		return invalid("password reset without id or user")
	case r.Token == "":
		return invalid("password reset without a token")
	case r.ExpiresAt.IsZero():
		return invalid("password reset without an expiry")
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = s.now()
	}
	r.Status = ResetSent
	return s.InTx(ctx, func(ctx context.Context) error {
		if _, err := s.exec(ctx, `UPDATE password_resets SET status = 'void', void_reason = ?
			WHERE user_id = ? AND status IN ('sent', 'claimed')`, ResetVoidReplaced, r.UserID); err != nil {
			return fmt.Errorf("replace password reset: %w", err)
		}
		if _, err := s.exec(ctx, `INSERT INTO password_resets (id, user_id, token_hash, status, client_addr, created_at,
			expires_at, claimed_sid, claimed_at, done_at, void_reason) VALUES (?, ?, ?, ?, ?, ?, ?, '', NULL, NULL, '')`,
			r.ID, r.UserID, hashKey(r.Token), r.Status, r.ClientAddr, micro(r.CreatedAt), micro(r.ExpiresAt)); err != nil {
			return fmt.Errorf("create password reset: %w", err)
		}
		return nil
	})
}

// PasswordResetByToken loads the link whose emailed token is token, in any
// status (ErrNotFound when there is none).
func (s *Store) PasswordResetByToken(ctx context.Context, token string) (*PasswordReset, error) {
	if token == "" {
		return nil, fmt.Errorf("load password reset: %w", ErrNotFound)
	}
	r, err := scanReset(s.queryRow(ctx, wr, `SELECT `+resetCols+` FROM password_resets WHERE token_hash = ?`, hashKey(token)))
	if err != nil {
		return nil, s.notFound(err, "password reset by token")
	}
	return r, nil
}

// PasswordResetByID loads a link (ErrNotFound when there is none).
func (s *Store) PasswordResetByID(ctx context.Context, id string) (*PasswordReset, error) {
	r, err := scanReset(s.queryRow(ctx, wr, `SELECT `+resetCols+` FROM password_resets WHERE id = ?`, id))
	if err != nil {
		return nil, s.notFound(err, "password reset %q", id)
	}
	return r, nil
}

// ClaimPasswordReset binds a sent, unexpired link to the browser whose
// session key is sid. Of racing claims one succeeds; the others, and a
// link no longer sent or out of time, get ErrConflict.
func (s *Store) ClaimPasswordReset(ctx context.Context, id, sid string, at time.Time) error {
	if sid == "" {
		return invalid("a claim needs the browser's session key")
	}
	n, err := s.execN(ctx, `UPDATE password_resets SET status = 'claimed', claimed_sid = ?, claimed_at = ?
		WHERE id = ? AND status = 'sent' AND expires_at > ?`, sid, micro(at), id, micro(at))
	if err != nil {
		return fmt.Errorf("claim password reset: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("claim password reset: %w", s.existsOr(ctx, `SELECT COUNT(*) FROM password_resets WHERE id = ?`, id))
	}
	return nil
}

// VoidPasswordReset makes a live link useless for reason (one of the
// ResetVoid… reasons). ErrConflict when it was not live.
func (s *Store) VoidPasswordReset(ctx context.Context, id, reason string) error {
	if reason == "" {
		return invalid("voiding a password reset needs a reason")
	}
	n, err := s.execN(ctx, `UPDATE password_resets SET status = 'void', void_reason = ?
		WHERE id = ? AND status IN ('sent', 'claimed')`, reason, id)
	if err != nil {
		return fmt.Errorf("void password reset: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("void password reset: %w", s.existsOr(ctx, `SELECT COUNT(*) FROM password_resets WHERE id = ?`, id))
	}
	return nil
}

// FinishPasswordReset marks a link claimed by the browser sid used. Of
// racing finishes one succeeds; the others, and a link not claimed by sid,
// get ErrConflict.
func (s *Store) FinishPasswordReset(ctx context.Context, id, sid string, at time.Time) error {
	n, err := s.execN(ctx, `UPDATE password_resets SET status = 'used', done_at = ?
		WHERE id = ? AND status = 'claimed' AND claimed_sid = ? AND claimed_sid <> ''`, micro(at), id, sid)
	if err != nil {
		return fmt.Errorf("finish password reset: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("finish password reset: %w", s.existsOr(ctx, `SELECT COUNT(*) FROM password_resets WHERE id = ?`, id))
	}
	return nil
}
