// Code below is a placeholder so the other packages compile while the store is written.
// Each stub is replaced by its implementation; delete this file when none is left.

package store

import (
	"context"
	"errors"
	"time"
)

var errUnimplemented = errors.New("store: not implemented yet")

var _ = time.Second

func (s *Store) CreateUser(ctx context.Context, u *User) error          { return errUnimplemented }
func (s *Store) UserByID(ctx context.Context, id string) (*User, error) { return nil, errUnimplemented }
func (s *Store) UserByUsername(ctx context.Context, username string) (*User, error) {
	return nil, errUnimplemented
}
func (s *Store) UpdateUser(ctx context.Context, u *User) error { return errUnimplemented }
func (s *Store) ListUsers(ctx context.Context, state, search string) ([]User, error) {
	return nil, errUnimplemented
}
func (s *Store) ChangePassword(ctx context.Context, id, oldHash, newHash string, initial bool) error {
	return errUnimplemented
}
func (s *Store) DeleteUser(ctx context.Context, id string) error { return errUnimplemented }
func (s *Store) PutTOTP(ctx context.Context, t *TOTP) error      { return errUnimplemented }
func (s *Store) TOTPByUser(ctx context.Context, userID string) (*TOTP, error) {
	return nil, errUnimplemented
}
func (s *Store) ConfirmTOTP(ctx context.Context, userID string, step int64) error {
	return errUnimplemented
}
func (s *Store) UseTOTPStep(ctx context.Context, userID string, step int64) error {
	return errUnimplemented
}
func (s *Store) DeleteTOTP(ctx context.Context, userID string) error { return errUnimplemented }
func (s *Store) ReplaceRecoveryCodes(ctx context.Context, userID string, hashes []string) error {
	return errUnimplemented
}
func (s *Store) UseRecoveryCode(ctx context.Context, userID, hash string, now time.Time) error {
	return errUnimplemented
}
func (s *Store) RecoveryCodesLeft(ctx context.Context, userID string) (int, error) {
	return 0, errUnimplemented
}
func (s *Store) DeleteRecoveryCodes(ctx context.Context, userID string) error {
	return errUnimplemented
}
func (s *Store) AddWebAuthnCredential(ctx context.Context, c *WebAuthnCredential) error {
	return errUnimplemented
}
func (s *Store) WebAuthnCredentials(ctx context.Context, userID string) ([]WebAuthnCredential, error) {
	return nil, errUnimplemented
}
func (s *Store) WebAuthnCredentialByID(ctx context.Context, id []byte) (*WebAuthnCredential, error) {
	return nil, errUnimplemented
}
func (s *Store) UpdateWebAuthnUse(ctx context.Context, id []byte, oldCount, newCount uint32, at time.Time) error {
	return errUnimplemented
}
func (s *Store) RenameWebAuthnCredential(ctx context.Context, userID string, id []byte, name string) error {
	return errUnimplemented
}
func (s *Store) DeleteWebAuthnCredential(ctx context.Context, userID string, id []byte) error {
	return errUnimplemented
}
func (s *Store) SetWebAuthnHandle(ctx context.Context, userID string, handle []byte) error {
	return errUnimplemented
}
func (s *Store) WebAuthnHandle(ctx context.Context, userID string) ([]byte, error) {
	return nil, errUnimplemented
}
func (s *Store) UserByWebAuthnHandle(ctx context.Context, handle []byte) (*User, error) {
	return nil, errUnimplemented
}
func (s *Store) Accept(ctx context.Context, a Acceptance) error { return errUnimplemented }
func (s *Store) Acceptances(ctx context.Context, userID string) ([]Acceptance, error) {
	return nil, errUnimplemented
}
func (s *Store) CreateSession(ctx context.Context, sess *Session) error { return errUnimplemented }
func (s *Store) SessionByID(ctx context.Context, id string, now time.Time) (*Session, error) {
	return nil, errUnimplemented
}
func (s *Store) UpdateSession(ctx context.Context, sess *Session) error { return errUnimplemented }
func (s *Store) RotateSession(ctx context.Context, oldID, newID string) error {
	return errUnimplemented
}
func (s *Store) TouchSession(ctx context.Context, id string, at time.Time) error {
	return errUnimplemented
}
func (s *Store) DeleteSession(ctx context.Context, id string) error { return errUnimplemented }
func (s *Store) UserSessions(ctx context.Context, userID string, now time.Time) ([]Session, error) {
	return nil, errUnimplemented
}
func (s *Store) DeleteUserSessions(ctx context.Context, userID string, except string) ([]string, error) {
	return nil, errUnimplemented
}
func (s *Store) RecordFailure(ctx context.Context, key string, now time.Time, window time.Duration) (Throttle, error) {
	return Throttle{}, errUnimplemented
}
func (s *Store) Lock(ctx context.Context, key string, until time.Time) error { return errUnimplemented }
func (s *Store) GetThrottle(ctx context.Context, key string) (Throttle, error) {
	return Throttle{}, errUnimplemented
}
func (s *Store) ResetThrottle(ctx context.Context, key string) error  { return errUnimplemented }
func (s *Store) AppendAudit(ctx context.Context, e *AuditEvent) error { return errUnimplemented }
func (s *Store) Audit(ctx context.Context, f AuditFilter) ([]AuditEvent, error) {
	return nil, errUnimplemented
}
func (s *Store) VerifyAudit(ctx context.Context) (badID int64, err error) { return 0, errUnimplemented }
func (s *Store) AddSigningKey(ctx context.Context, k *SigningKey) error   { return errUnimplemented }
func (s *Store) SigningKeys(ctx context.Context) ([]SigningKey, error)    { return nil, errUnimplemented }
func (s *Store) RetireSigningKeys(ctx context.Context, except string, at time.Time) error {
	return errUnimplemented
}
func (s *Store) DeleteRetiredSigningKeys(ctx context.Context, before time.Time) error {
	return errUnimplemented
}
func (s *Store) GetSecret(ctx context.Context, name string) ([]byte, error) {
	return nil, errUnimplemented
}
func (s *Store) PutSecretIfAbsent(ctx context.Context, name string, value []byte) ([]byte, error) {
	return nil, errUnimplemented
}
func (s *Store) CreateOAuth(ctx context.Context, r *OAuthRow) error { return errUnimplemented }
func (s *Store) GetOAuth(ctx context.Context, kind, signature string) (*OAuthRow, error) {
	return nil, errUnimplemented
}
func (s *Store) DeactivateOAuth(ctx context.Context, kind, signature string) error {
	return errUnimplemented
}
func (s *Store) DeleteOAuth(ctx context.Context, kind, signature string) error {
	return errUnimplemented
}
func (s *Store) DeactivateOAuthByRequestID(ctx context.Context, kind, requestID string) error {
	return errUnimplemented
}
func (s *Store) DeleteOAuthByRequestID(ctx context.Context, kind, requestID string) error {
	return errUnimplemented
}
func (s *Store) RevokeOAuthBySubject(ctx context.Context, subject string) error {
	return errUnimplemented
}
func (s *Store) RevokeOAuthBySession(ctx context.Context, sessionID string) error {
	return errUnimplemented
}
func (s *Store) CreateAuthRequest(ctx context.Context, a *AuthRequest) error { return errUnimplemented }
func (s *Store) AuthRequestByID(ctx context.Context, id string, now time.Time) (*AuthRequest, error) {
	return nil, errUnimplemented
}
func (s *Store) DeleteExpired(ctx context.Context, now time.Time) (int64, error) {
	return 0, errUnimplemented
}
func (s *Store) Ping(ctx context.Context) error                       { return errUnimplemented }
func (s *Store) Backup(ctx context.Context, path string) error        { return errUnimplemented }
func (s *Store) BeginTx(ctx context.Context) (context.Context, error) { return ctx, errUnimplemented }
func (s *Store) Commit(ctx context.Context) error                     { return errUnimplemented }
func (s *Store) Rollback(ctx context.Context) error                   { return errUnimplemented }
func (s *Store) InTx(ctx context.Context, fn func(ctx context.Context) error) error {
	return errUnimplemented
}
func (s *Store) Close() error { return errUnimplemented }
