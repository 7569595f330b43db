package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// PutTOTP inserts or replaces the user's TOTP secret (one per user). A zero
// CreatedAt is set to now. ErrNotFound when the user does not exist.
func (s *Store) PutTOTP(ctx context.Context, t *TOTP) error {
	if t == nil || t.UserID == "" {
		return invalid("TOTP without user id")
	}
	if len(t.Secret) == 0 {
		return invalid("TOTP secret is empty")
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = s.now()
	}
	_, err := s.exec(ctx, `INSERT INTO totp (user_id, secret, confirmed, last_step, created_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, confirmed = excluded.confirmed,
			last_step = excluded.last_step, created_at = excluded.created_at`,
		t.UserID, t.Secret, boolInt(t.Confirmed), t.LastStep, micro(t.CreatedAt))
	if err != nil {
		return fmt.Errorf("put TOTP of %q: %w", t.UserID, err)
	}
	return nil
}

// TOTPByUser loads the user's TOTP secret.
func (s *Store) TOTPByUser(ctx context.Context, userID string) (*TOTP, error) {
	t := TOTP{UserID: userID}
	var confirmed int64
	var created sql.NullInt64
	err := s.row(ctx, rd, `SELECT secret, confirmed, last_step, created_at FROM totp WHERE user_id = ?`,
		[]any{userID}, &t.Secret, &confirmed, &t.LastStep, &created)
	if err != nil {
		return nil, fmt.Errorf("load TOTP of %q: %w", userID, err)
	}
	t.Confirmed = confirmed != 0
	t.CreatedAt = fromMicro(created)
	return &t, nil
}

// ConfirmTOTP completes enrolment with the step of the first correct code,
// which is thereby used. Once only: ErrConflict when the secret is already
// confirmed (or the step is not after the last one), ErrNotFound when there
// is no secret.
func (s *Store) ConfirmTOTP(ctx context.Context, userID string, step int64) error {
	n, err := s.execN(ctx, `UPDATE totp SET confirmed = 1, last_step = ?
		WHERE user_id = ? AND confirmed = 0 AND last_step < ?`, step, userID, step)
	if err != nil {
		return fmt.Errorf("confirm TOTP of %q: %w", userID, err)
	}
	if n == 0 {
		return fmt.Errorf("confirm TOTP of %q: %w", userID, s.existsOr(ctx, `SELECT COUNT(*) FROM totp WHERE user_id = ?`, userID))
	}
	return nil
}

// UseTOTPStep records that the code of step was accepted, only if no code of
// this or a later step was: each step is accepted once, also under
// concurrency. ErrConflict when replayed, ErrNotFound when there is no secret.
func (s *Store) UseTOTPStep(ctx context.Context, userID string, step int64) error {
	n, err := s.execN(ctx, `UPDATE totp SET last_step = ? WHERE user_id = ? AND last_step < ?`, step, userID, step)
	if err != nil {
		return fmt.Errorf("use TOTP step of %q: %w", userID, err)
	}
	if n == 0 {
		return fmt.Errorf("use TOTP step of %q: %w", userID, s.existsOr(ctx, `SELECT COUNT(*) FROM totp WHERE user_id = ?`, userID))
	}
	return nil
}

// DeleteTOTP removes the user's TOTP secret (no error when there is none).
func (s *Store) DeleteTOTP(ctx context.Context, userID string) error {
	if _, err := s.exec(ctx, `DELETE FROM totp WHERE user_id = ?`, userID); err != nil {
		return fmt.Errorf("delete TOTP of %q: %w", userID, err)
	}
	return nil
}

// ReplaceRecoveryCodes replaces all of the user's recovery codes (used ones
// included) by the given hashes, atomically. The hashes arrive hashed and are
// stored as given; empty or duplicate hashes are refused.
func (s *Store) ReplaceRecoveryCodes(ctx context.Context, userID string, hashes []string) error {
	if userID == "" {
		return invalid("recovery codes without user id")
	}
	seen := make(map[string]bool, len(hashes))
	for _, h := range hashes {
		if h == "" {
			return invalid("empty recovery code hash")
		}
		if seen[h] {
			return invalid("duplicate recovery code hash")
		}
		seen[h] = true
	}
	err := s.InTx(ctx, func(ctx context.Context) error {
		if _, err := s.exec(ctx, `DELETE FROM recovery_codes WHERE user_id = ?`, userID); err != nil {
			return err
		}
		for _, h := range hashes {
			if _, err := s.exec(ctx, `INSERT INTO recovery_codes (user_id, hash) VALUES (?, ?)`, userID, h); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("replace recovery codes of %q: %w", userID, err)
	}
	return nil
}

// UseRecoveryCode marks an unused code as used; once only, also under
// concurrency. ErrNotFound when the code does not exist or was used.
func (s *Store) UseRecoveryCode(ctx context.Context, userID, hash string, now time.Time) error {
	n, err := s.execN(ctx, `UPDATE recovery_codes SET used_at = ? WHERE user_id = ? AND hash = ? AND used_at IS NULL`,
		now.UnixMicro(), userID, hash)
	if err != nil {
		return fmt.Errorf("use recovery code of %q: %w", userID, err)
	}
	if n == 0 {
		return fmt.Errorf("use recovery code of %q: %w", userID, ErrNotFound)
	}
	return nil
}

// RecoveryCodeHashes returns the stored hashes of the user's unused recovery
// codes. The hashes are salted and keyed by the caller, so it cannot look a
// typed code up by its hash: it finds the match among these, then uses that
// one (UseRecoveryCode).
func (s *Store) RecoveryCodeHashes(ctx context.Context, userID string) ([]string, error) {
	rows, err := s.query(ctx, rd, `SELECT hash FROM recovery_codes WHERE user_id = ? AND used_at IS NULL ORDER BY hash`, userID)
	if err != nil {
		return nil, fmt.Errorf("load recovery codes of %q: %w", userID, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return nil, fmt.Errorf("load recovery codes of %q: %w", userID, s.mapErr(err))
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load recovery codes of %q: %w", userID, s.mapErr(err))
	}
	return out, nil
}

// RekeyRecoveryCodes rewrites every stored hash (used or not) that does not
// start with keyedPrefix — one written by an older Lanyard — to
// rekey(userID, hash), in one transaction, and returns how many it rewrote.
// A row a concurrent rekey (another node starting) rewrote first is left to
// it. rekey sees every old hash of one user before the next user's.
func (s *Store) RekeyRecoveryCodes(ctx context.Context, keyedPrefix string, rekey func(userID, hash string) string) (int, error) {
	type row struct{ user, hash string }
	var n int
	err := s.InTx(ctx, func(ctx context.Context) error {
		n = 0
		rows, err := s.query(ctx, wr, `SELECT user_id, hash FROM recovery_codes WHERE substr(hash, 1, ?) <> ? ORDER BY user_id`,
			int64(len(keyedPrefix)), keyedPrefix)
		if err != nil {
			return err
		}
		var old []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.user, &r.hash); err != nil {
				rows.Close()
				return err
			}
			old = append(old, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, r := range old {
			k, err := s.execN(ctx, `UPDATE recovery_codes SET hash = ? WHERE user_id = ? AND hash = ?`, rekey(r.user, r.hash), r.user, r.hash)
			if err != nil {
				return err
			}
			n += int(k)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("rekey recovery codes: %w", s.mapErr(err))
	}
	return n, nil
}

// RecoveryCodesLeft counts the user's unused recovery codes.
func (s *Store) RecoveryCodesLeft(ctx context.Context, userID string) (int, error) {
	var n int
	if err := s.row(ctx, rd, `SELECT COUNT(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NULL`,
		[]any{userID}, &n); err != nil {
		return 0, fmt.Errorf("count recovery codes of %q: %w", userID, err)
	}
	return n, nil
}

// DeleteRecoveryCodes removes all of the user's recovery codes.
func (s *Store) DeleteRecoveryCodes(ctx context.Context, userID string) error {
	if _, err := s.exec(ctx, `DELETE FROM recovery_codes WHERE user_id = ?`, userID); err != nil {
		return fmt.Errorf("delete recovery codes of %q: %w", userID, err)
	}
	return nil
}

const webauthnCols = `id, user_id, name, public_key, sign_count, aaguid, transports, data, created_at, last_used_at`

func scanWebAuthn(sc interface{ Scan(...any) error }) (*WebAuthnCredential, error) {
	var c WebAuthnCredential
	var count int64
	var transports string
	var created, used sql.NullInt64
	if err := sc.Scan(&c.ID, &c.UserID, &c.Name, &c.PublicKey, &count, &c.AAGUID, &transports, &c.Data,
		&created, &used); err != nil {
		return nil, err
	}
	c.SignCount = uint32(count)
	if err := json.Unmarshal([]byte(transports), &c.Transports); err != nil {
		return nil, fmt.Errorf("decode transports: %w", err)
	}
	c.CreatedAt = fromMicro(created)
	c.LastUsedAt = fromMicro(used)
	return &c, nil
}

// AddWebAuthnCredential stores a new credential. A zero CreatedAt is set to
// now. ErrConflict when the credential id exists (for any user), ErrNotFound
// when the user does not exist.
func (s *Store) AddWebAuthnCredential(ctx context.Context, c *WebAuthnCredential) error {
	switch {
	case c == nil || len(c.ID) == 0:
		return invalid("WebAuthn credential id is empty")
	case c.UserID == "":
		return invalid("WebAuthn credential without user id")
	case len(c.PublicKey) == 0:
		return invalid("WebAuthn credential public key is empty")
	}
	transports, err := json.Marshal(c.Transports)
	if err != nil {
		return invalid("WebAuthn transports: %v", err)
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = s.now()
	}
	_, err = s.exec(ctx, `INSERT INTO webauthn_credentials (`+webauthnCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.UserID, c.Name, c.PublicKey, int64(c.SignCount), c.AAGUID, string(transports), c.Data,
		micro(c.CreatedAt), micro(c.LastUsedAt))
	if err != nil {
		return fmt.Errorf("add WebAuthn credential of %q: %w", c.UserID, err)
	}
	return nil
}

// WebAuthnCredentials lists the user's credentials, oldest first.
func (s *Store) WebAuthnCredentials(ctx context.Context, userID string) ([]WebAuthnCredential, error) {
	rows, err := s.query(ctx, rd, `SELECT `+webauthnCols+` FROM webauthn_credentials
		WHERE user_id = ? ORDER BY created_at, id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list WebAuthn credentials of %q: %w", userID, err)
	}
	defer rows.Close()
	var out []WebAuthnCredential
	for rows.Next() {
		c, err := scanWebAuthn(rows)
		if err != nil {
			return nil, fmt.Errorf("list WebAuthn credentials of %q: %w", userID, s.mapErr(err))
		}
		out = append(out, *c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list WebAuthn credentials of %q: %w", userID, s.mapErr(err))
	}
	return out, nil
}

// WebAuthnCredentialByID loads a credential by its id.
func (s *Store) WebAuthnCredentialByID(ctx context.Context, id []byte) (*WebAuthnCredential, error) {
	c, err := scanWebAuthn(s.queryRow(ctx, rd, `SELECT `+webauthnCols+` FROM webauthn_credentials WHERE id = ?`, id))
	if err != nil {
		return nil, s.notFound(err, "WebAuthn credential")
	}
	return c, nil
}

// UpdateWebAuthnUse records a successful assertion: the new sign count and
// the time, only if the stored count is still oldCount (two concurrent
// assertions with one counter value: one wins). ErrConflict when it is not,
// ErrNotFound when the credential does not exist.
func (s *Store) UpdateWebAuthnUse(ctx context.Context, id []byte, oldCount, newCount uint32, at time.Time) error {
	n, err := s.execN(ctx, `UPDATE webauthn_credentials SET sign_count = ?, last_used_at = ? WHERE id = ? AND sign_count = ?`,
		int64(newCount), micro(at), id, int64(oldCount))
	if err != nil {
		return fmt.Errorf("update WebAuthn credential use: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("update WebAuthn credential use: %w",
			s.existsOr(ctx, `SELECT COUNT(*) FROM webauthn_credentials WHERE id = ?`, id))
	}
	return nil
}

// RenameWebAuthnCredential renames one of the user's credentials.
// ErrNotFound when the user has no such credential.
func (s *Store) RenameWebAuthnCredential(ctx context.Context, userID string, id []byte, name string) error {
	n, err := s.execN(ctx, `UPDATE webauthn_credentials SET name = ? WHERE user_id = ? AND id = ?`, name, userID, id)
	if err != nil {
		return fmt.Errorf("rename WebAuthn credential of %q: %w", userID, err)
	}
	if n == 0 {
		return fmt.Errorf("rename WebAuthn credential of %q: %w", userID, ErrNotFound)
	}
	return nil
}

// DeleteWebAuthnCredential deletes one of the user's credentials; another
// user's credential is never touched. ErrNotFound when the user has no such
// credential.
func (s *Store) DeleteWebAuthnCredential(ctx context.Context, userID string, id []byte) error {
	n, err := s.execN(ctx, `DELETE FROM webauthn_credentials WHERE user_id = ? AND id = ?`, userID, id)
	if err != nil {
		return fmt.Errorf("delete WebAuthn credential of %q: %w", userID, err)
	}
	if n == 0 {
		return fmt.Errorf("delete WebAuthn credential of %q: %w", userID, ErrNotFound)
	}
	return nil
}

// SetWebAuthnHandle sets the user's WebAuthn user handle (the opaque id
// authenticators store). ErrNotFound when the user does not exist,
// ErrConflict when another user has this handle.
func (s *Store) SetWebAuthnHandle(ctx context.Context, userID string, handle []byte) error {
	if len(handle) == 0 {
		return invalid("WebAuthn user handle is empty")
	}
	n, err := s.execN(ctx, `UPDATE users SET webauthn_handle = ? WHERE id = ?`, handle, userID)
	if err != nil {
		return fmt.Errorf("set WebAuthn handle of %q: %w", userID, err)
	}
	if n == 0 {
		return fmt.Errorf("set WebAuthn handle of %q: %w", userID, ErrNotFound)
	}
	return nil
}

// WebAuthnHandle returns the user's WebAuthn user handle; ErrNotFound when
// the user does not exist or has none yet.
func (s *Store) WebAuthnHandle(ctx context.Context, userID string) ([]byte, error) {
	var h []byte
	if err := s.row(ctx, rd, `SELECT webauthn_handle FROM users WHERE id = ?`, []any{userID}, &h); err != nil {
		return nil, fmt.Errorf("load WebAuthn handle of %q: %w", userID, err)
	}
	if len(h) == 0 {
		return nil, fmt.Errorf("load WebAuthn handle of %q: %w", userID, ErrNotFound)
	}
	return bytes.Clone(h), nil
}

// UserByWebAuthnHandle finds the user a discoverable credential names.
func (s *Store) UserByWebAuthnHandle(ctx context.Context, handle []byte) (*User, error) {
	if len(handle) == 0 {
		return nil, fmt.Errorf("load user by WebAuthn handle: %w", ErrNotFound)
	}
	u, err := scanUser(s.queryRow(ctx, rd, `SELECT `+userCols+` FROM users WHERE webauthn_handle = ?`, handle))
	if err != nil {
		return nil, s.notFound(err, "user by WebAuthn handle")
	}
	return u, nil
}
