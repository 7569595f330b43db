package store

// This file is the contract of the store: the domain types and every method the
// rest of Lanyard calls. The implementation lives in the other files of the
// package. Times are UTC; zero time.Time means "not set" (stored as NULL).

import (
	"errors"
	"time"
)

// Errors every method returns in the same situations, on every backend.
var (
	// ErrNotFound: no row for the key (or it has expired, where the type expires).
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: a unique key already exists, or a conditional update lost its race.
	ErrConflict = errors.New("store: conflict")
	// ErrSerialization: the backend aborted the transaction because of a concurrent
	// one (SQLite BUSY inside a transaction, PostgreSQL 40001/40P01). Retry the whole
	// transaction or report failure; fosite maps it to its own serialization error.
	ErrSerialization = errors.New("store: serialization failure")
)

// User states.
const (
	UserInvited  = "invited"  // invited, initial password not yet used to finish the journey
	UserActive   = "active"   // has completed the first sign-in
	UserDisabled = "disabled" // refused at sign-in; sessions and tokens revoked
)

// User is an officer's account. ID is random and is the OIDC `sub`.
type User struct {
	ID       string
	Username string // canonical: NFKC, trimmed, lower-cased email address; unique
	Email    string
	Name     string
	// GivenName and FamilyName are the OIDC given_name and family_name; ""
	// when unknown (Name alone does not say which part is which).
	GivenName  string
	FamilyName string
	State      string // UserInvited | UserActive | UserDisabled
	// PasswordHash is an encoded argon2id hash (parameters inside).
	PasswordHash string
	// PasswordInitial is true while the password is the one from the invitation
	// (or an admin reset) and must be replaced in the journey.
	PasswordInitial bool
	// InviteExpiresAt is when the initial password stops working (zero: no expiry).
	InviteExpiresAt time.Time
	CreatedAt       time.Time
	UpdatedAt       time.Time
	LastSignInAt    time.Time
}

// TOTP is a user's authenticator-app secret. One per user.
type TOTP struct {
	UserID    string
	Secret    []byte // sealed (encrypted) by the caller; the store never sees plaintext
	Confirmed bool   // false while enrolment awaits the first correct code
	LastStep  int64  // the last accepted RFC 6238 time step (0: none)
	CreatedAt time.Time
}

// WebAuthnCredential is a passkey or security key.
type WebAuthnCredential struct {
	ID         []byte // credential id (unique)
	UserID     string
	Name       string
	PublicKey  []byte
	SignCount  uint32
	AAGUID     []byte
	Transports []string
	// Data is the go-webauthn Credential as JSON (flags, attestation type...).
	Data       []byte
	CreatedAt  time.Time
	LastUsedAt time.Time
}

// Acceptance records that a user accepted a version of a policy document.
type Acceptance struct {
	UserID     string
	Document   string // "privacy" | "terms"
	Version    string
	AcceptedAt time.Time
	ClientAddr string
}

// Session is a server-side SSO session; the browser cookie holds its ID.
// The journey state of a sign-in in progress lives in Data (JSON, owned by flows).
type Session struct {
	ID string // random, ≥128 bits; the store keeps only a hash of it
	// Ref is SessionRef(ID), the reference of the current id (set by the store
	// on every session it returns); it changes with the id (RotateSession).
	Ref string
	// SID is the session's stable key: random, set by CreateSession, never
	// changed. What must outlive a rotation of the id is bound to it: the
	// codes and tokens issued in the session (OAuthRow.SessionID), the relying
	// parties to tell when it ends (SessionClient.SID), the sid claim.
	SID        string
	UserID     string // "" until a password (or passkey) has been verified
	State      string // owned by flows: "journey" | "authenticated"
	AuthTime   time.Time
	AMR        []string
	ACR        string
	Data       []byte // JSON owned by flows
	UserAgent  string
	ClientAddr string
	CreatedAt  time.Time
	LastSeenAt time.Time
	// ExpiresAt is the absolute limit; idle expiry is LastSeenAt + idle timeout,
	// enforced by flows.
	ExpiresAt time.Time
}

// Throttle is a failure counter for a key such as "acct:<user id>" or "addr:<ip>".
type Throttle struct {
	Key         string
	Failures    int
	WindowStart time.Time
	LockedUntil time.Time
	Locks       int // how many times this key has been locked (for growing lock times)
}

// AuditEvent is one line of the append-only audit trail.
type AuditEvent struct {
	ID         int64
	At         time.Time
	Event      Event // one of the constants of events.go
	UserID     string
	Username   string
	ClientID   string
	ClientAddr string
	UserAgent  string
	// Detail is a small JSON object; never a secret.
	Detail   []byte
	PrevHash string
	Hash     string
}

// AuditFilter selects audit events; zero fields match everything.
type AuditFilter struct {
	UserID string
	Event  string // exact, or a prefix ending in "." ("signin.")
	// Events, when set, keeps only these events (with Event, both apply).
	Events  []Event
	Since   time.Time
	AfterID int64
	Limit   int
	// Newest: the newest Limit events, newest first (else oldest first).
	Newest bool
}

// SigningKey is a JWT signing key; Private is sealed by the caller.
type SigningKey struct {
	KID       string
	Alg       string // RS256 | ES256
	Private   []byte // sealed PKCS#8 DER
	CreatedAt time.Time
	// RetiredAt is when the key stopped signing (zero: current). It stays in the
	// JWKS until RetiredAt + retire_after.
	RetiredAt time.Time
}

// OAuth row kinds: one table holds every fosite storage kind.
const (
	KindCode    = "code"
	KindPKCE    = "pkce"
	KindOIDC    = "oidc"
	KindAccess  = "access"
	KindRefresh = "refresh"
	KindPAR     = "par"
	// KindJTI records a used private_key_jwt assertion id until the assertion
	// expires (replay protection); Signature is the jti.
	KindJTI = "jti"
)

// OAuthRow is one stored fosite request (code, PKCE, OIDC session, access or
// refresh token, PAR). Signature is what fosite hands the storage; the store
// keeps only its SHA-256.
type OAuthRow struct {
	Kind      string
	Signature string
	RequestID string // fosite request id: the token family
	ClientID  string
	Subject   string // user id ("" for client_credentials)
	SessionID string // the stable key (Session.SID) of the SSO session that produced it ("" when none)
	Active    bool
	// AccessSignature links a refresh token to its access token (refresh only).
	// Stored hashed like Signature, so it is write-only: GetOAuth leaves it
	// empty and fills AccessSignatureHash (hex SHA-256) instead.
	AccessSignature     string
	AccessSignatureHash string
	RequestedAt         time.Time
	ExpiresAt           time.Time
	Data                []byte // serialized fosite request (owned by provider)
}

// AuthRequest is a pending authorization request parked while the officer goes
// through the journey; the journey resumes it by ID.
type AuthRequest struct {
	ID        string
	ClientID  string
	Query     string // the raw, validated authorization request query
	CreatedAt time.Time
	ExpiresAt time.Time
	// Decision is the officer's answer on the consent page: "",
	// ConsentGranted or ConsentDeclined (DecideAuthRequest), given by the
	// user DecidedBy at DecidedAt.
	Decision  string
	DecidedBy string
	DecidedAt time.Time
}

// The methods below are implemented in the other files of this package. Every
// method joins the transaction carried in ctx when there is one (see BeginTx).
// Bad input (empty keys, unknown states or kinds...) is refused with an error
// wrapping ErrInvalid and writes nothing. Deletes of a named row a user owns
// (DeleteUser, DeleteWebAuthnCredential, DeleteSessionByRef) return
// ErrNotFound when there is none; other deletes are idempotent. A store
// filling a zero CreatedAt (or audit At) uses OpenOptions.Now.
//
// Opening:
//   Open(ctx, url string, opts ...OpenOptions) (*Store, error)     sqlite file / sqlite:path / postgres://; migrates
//   Migrate(ctx) (applied []string, err error); MigrationNames(dialect) ([]string, error)
//   Close() error; Dialect() string ("sqlite"|"postgres"); DB() *sql.DB (the write pool, for metrics)
//
// Users:
//   CreateUser(ctx, *User) error                                  ErrConflict on duplicate id or username
//   UserByID(ctx, id) (*User, error)                               ErrNotFound
//   UserByUsername(ctx, username) (*User, error)                   ErrNotFound
//   UpdateUser(ctx, *User) error                                   every field but ID/CreatedAt; ErrNotFound; ErrConflict (username taken)
//   ListUsers(ctx, state, search string) ([]User, error)          by username; state "" or "locked" = all; search: substring of username/name, any case
//   ListUsersPage(ctx, UserQuery) ([]User, error)                  the console's page: by state or a search of name/address words (search.go),
//                                                                  keyset by username, indexed at any size; SearchWords, Matches say how a search reads
//   ChangePassword(ctx, id, oldHash, newHash string, initial bool) error
//       conditional on the stored hash still being oldHash, else ErrConflict (ErrNotFound: no user)
//   DeleteUser(ctx, id) error                                      cascades 2FA/acceptances, deletes sessions, deactivates tokens; audit kept
//
// Second factors:
//   PutTOTP(ctx, *TOTP) error                                      insert or replace; ErrNotFound: no user
//   TOTPByUser(ctx, userID) (*TOTP, error)                         ErrNotFound
//   ConfirmTOTP(ctx, userID string, step int64) error              sets confirmed and last_step, once: ErrConflict if confirmed already
//   UseTOTPStep(ctx, userID string, step int64) error              atomically last_step=step WHERE last_step < step; else ErrConflict (ErrNotFound: no secret)
//   DeleteTOTP(ctx, userID) error
//   ReplaceRecoveryCodes(ctx, userID string, hashes []string) error  atomic; empty/duplicate hashes refused
//   UseRecoveryCode(ctx, userID, hash string, now time.Time) error  once; else ErrNotFound
//   RecoveryCodeHashes(ctx, userID) ([]string, error)             the unused codes' stored hashes (the caller finds its match)
//   RekeyRecoveryCodes(ctx, keyedPrefix string, rekey func(userID, hash string) string) (int, error)
//       rewrites every hash not starting with keyedPrefix to rekey's, in one transaction
//   RecoveryCodesLeft(ctx, userID) (int, error)
//   DeleteRecoveryCodes(ctx, userID) error
//   AddWebAuthnCredential(ctx, *WebAuthnCredential) error          ErrConflict on duplicate id
//   WebAuthnCredentials(ctx, userID) ([]WebAuthnCredential, error)  oldest first
//   WebAuthnCredentialByID(ctx, id []byte) (*WebAuthnCredential, error)
//   UpdateWebAuthnUse(ctx, id []byte, oldCount, newCount uint32, at time.Time) error  conditional on sign_count = oldCount, else ErrConflict
//   RenameWebAuthnCredential(ctx, userID string, id []byte, name string) error  ErrNotFound unless the user's
//   DeleteWebAuthnCredential(ctx, userID string, id []byte) error  ErrNotFound unless the user's
//   SetWebAuthnHandle(ctx, userID string, handle []byte) error / UserByWebAuthnHandle(ctx, handle) (*User, error)
//   WebAuthnHandle(ctx, userID) ([]byte, error)                    ErrNotFound
//
// The approval app (approval.go, where its types live too):
//   AddApprovalDevice(ctx, *ApprovalDevice) error                  ErrConflict on duplicate id, ErrNotFound: no user
//   ApprovalDevices(ctx, userID) / ApprovalDeviceByID(ctx, id)     oldest first / ErrNotFound
//   RenameApprovalDevice / DeleteApprovalDevice(ctx, userID, id…)  ErrNotFound unless the user's
//   DeleteApprovalDevices(ctx, userID) (int, error)                also cancels the user's waiting requests
//   SetApprovalPush / ForgetApprovalPush(ctx, id, endpoint)        the latter only while the endpoint is still that one
//   UseApprovalDevice(ctx, id, at) error
//   CreateApprovalRequest(ctx, *ApprovalRequest) error             expires the user's stale ones; ErrConflict while another waits (pairings aside)
//   ApprovalRequestByID(ctx, id) / PairingByToken(ctx, tokenHash)  ErrNotFound
//   ClaimPairing(ctx, id, publicKey, now) error                    once, while live; else ErrConflict
//   AnswerApproval(ctx, id, ApprovalAnswer) error                  pending → approved|denied while live; else ErrConflict
//   WrongApprovalNumber(ctx, id, max, reason, now) (int, bool, error)  counts atomically; the max-th denies
//   UseApproval(ctx, id) error                                     approved → used, once; else ErrConflict
//   CancelApprovalRequest / ExpireApprovalRequest(ctx, id…) error
//   PendingApprovals(ctx, userID, now) / CountApprovalRequests(ctx, userID, since)
//   ReportApproval(ctx, id) error                                  a denied request, once; else ErrConflict
//
// Policies:
//   Accept(ctx, Acceptance) error                                  every acceptance kept
//   Acceptances(ctx, userID) ([]Acceptance, error)                 latest per document, by document name
//
// Sessions (stored under SessionRef(id) = hex SHA-256; the raw id never is):
//   SessionRef(rawID string) string                                the ref of the current id: Session.Ref (changes with RotateSession)
//   CreateSession(ctx, *Session) error                             fills Ref and SID (the stable key: authn.Browser.SessionID, OAuthRow.SessionID); ID ≥ 16 chars
//   SessionByID(ctx, id string, now time.Time) (*Session, error)   ErrNotFound when absent or now ≥ ExpiresAt
//   UpdateSession(ctx, *Session) error                             ErrNotFound
//   RotateSession(ctx, oldID, newID string) error                  re-keys the row; the old id is dead; SID and what is bound to it stay
//   TouchSession(ctx, id string, at time.Time) error               ErrNotFound
//   DeleteSession(ctx, id) error                                   tokens untouched (RevokeOAuthBySession for that); logouts queued
//   DeleteSessionByRef(ctx, userID, ref string) error              one of the user's sessions + its tokens
//   UserSessions(ctx, userID string, now time.Time) ([]Session, error)  unexpired, newest first; ID "" and Ref set
//   DeleteIdleSessions(ctx, state string, stateBefore, othersBefore, now time.Time) (int64, error)
//       ends the sessions last seen before a limit (idle expiry); logouts queued
//   DeleteUserSessions(ctx, userID string, except string) ([]string, error)
//       except is a raw id ("" = all); deactivates every code and token of the user not bound to the kept session; returns the deleted refs
//
// Throttling (atomic; concurrent failures all count):
//   RecordFailure(ctx, key string, now time.Time, window time.Duration) (Throttle, error)  returns the new state
//   Lock(ctx, key string, until time.Time, locks int) error        sets locked_until, locks, failures=0
//   GetThrottle(ctx, key) (Throttle, error)                         zero value (Key set, no error) when absent
//   ResetThrottle(ctx, keys ...string) error                        forgets the keys (failures, lock, locks), one commit
//
// Audit:
//   AppendAudit(ctx, *AuditEvent) error                             fills ID, PrevHash, Hash (and At when zero); Detail must be JSON;
//                                                                   ErrNoAuditKey without OpenOptions.AuditKey
//   Audit(ctx, AuditFilter) ([]AuditEvent, error)                  oldest first (newest first with Newest)
//   CheckAudit(ctx) (AuditCheck, error)                             walks the keyed chain: head, first bad event and why
//   VerifyAudit(ctx) (badID int64, err error)                       CheckAudit's verdict: 0 when the chain is intact
//   AuditHash(prev, *AuditEvent) string / NewAuditChain(prev) *AuditChain   the chain's one hash, and its checker
//   LastAuditID(ctx) (int64, error)                                 for readers that tail the trail (metrics)
//
// Keys and secrets:
//   AddSigningKey(ctx, *SigningKey) error                          ErrConflict on duplicate kid
//   SigningKeys(ctx) ([]SigningKey, error)                          newest first, retired ones included
//   RetireSigningKeys(ctx, except string, at time.Time) error      keys already retired keep their time
//   DeleteRetiredSigningKeys(ctx, before time.Time) error
//   LockSigningKeys(ctx) error                                      first in a key-creating tx: nodes agree on one key
//   GetSecret(ctx, name) ([]byte, error)                            ErrNotFound
//   PutSecretIfAbsent(ctx, name string, value []byte) ([]byte, error)  returns the stored value (first writer wins)
//
// OAuth (fosite; Signature and AccessSignature stored as SHA-256 only):
//   CreateOAuth(ctx, *OAuthRow) error                              ErrConflict on duplicate kind+signature
//   GetOAuth(ctx, kind, signature string) (*OAuthRow, error)      inactive and expired rows returned as they are
//   DeactivateOAuth(ctx, kind, signature string) error             WHERE active; ErrConflict when no row changed, ErrNotFound when none exists
//   DeleteOAuth(ctx, kind, signature string) error
//   DeactivateOAuthByRequestID(ctx, kind, requestID string) error
//   DeleteOAuthByRequestID(ctx, kind, requestID string) error
//   RevokeOAuthBySubject(ctx, subject string) error                deactivates code+access+refresh of the user; logouts queued
//   RevokeOAuthBySession(ctx, sid string) error                    deactivates code+access+refresh of an SSO session (its SID); logouts queued
//
// Logout propagation (logout.go): every method above that ends a session or
// revokes by session or user moves the matching SessionClient records into
// the outbox in its own transaction ("logouts queued"); DeleteExpired does
// the same for expired sessions.
//   RecordSessionClient(ctx, *SessionClient) error                 idempotent; SID is the session's stable key
//   SessionClients(ctx, sid string) ([]SessionClient, error)       oldest first
//   ClaimLogouts(ctx, now, lease, limit) ([]LogoutDelivery, error) due rows, each to one caller across nodes
//   FinishLogout(ctx, id, claim) error / RetryLogout(ctx, id, claim, next, lastErr) error
//                                                                  ErrConflict when the lease was lost, ErrNotFound when gone
//   PendingLogouts(ctx) (int64, error)
//
// Account requests (requests.go; the token is stored as SHA-256 only):
//   CreateAccountRequest(ctx, *AccountRequest) error               ErrConflict when the mailbox has an open one (unverified or pending);
//                                                                  Kind account: unverified with a token; invitation (a fresh onboarding email): pending
//   AccountRequestByID(ctx, id) / AccountRequestByToken(ctx, token) / OpenAccountRequest(ctx, email)   ErrNotFound
//   RenewRequestToken(ctx, id, token, expires) error               unverified only, else ErrConflict
//   VerifyAccountRequest(ctx, id, at, expires) error               unverified and unexpired → pending, once; else ErrConflict
//   DecideAccountRequest(ctx, id, to, by, reason, at) error        pending and unexpired → approved|denied, once; else ErrConflict
//   ExpireAccountRequests(ctx, now, email) ([]AccountRequest, error)  marks the due open ones expired; returns them as they were
//   ListAccountRequests(ctx, RequestQuery) ([]AccountRequest, error)   oldest first, keyset by Cursor
//
// Password-reset links (resets.go, where their type lives; the token is stored as SHA-256 only):
//   CreatePasswordReset(ctx, *PasswordReset) error                 sent; voids the account's live link in the same tx; ErrConflict: a racing one won
//   PasswordResetByToken(ctx, token) / PasswordResetByID(ctx, id)  any status; ErrNotFound
//   ClaimPasswordReset(ctx, id, sid, at) error                     sent and unexpired → claimed by the browser sid, once; else ErrConflict
//   VoidPasswordReset(ctx, id, reason) error                       live → void; else ErrConflict
//   FinishPasswordReset(ctx, id, sid, at) error                    claimed by sid → used, once; else ErrConflict
//
// The console's other reads:
//   LockedKeys(ctx, prefix, now) (map[string]time.Time, error)     throttle keys locked now
//   AuditPage(ctx, AuditQuery) ([]AuditEvent, error)               newest first, keyset by id
//
// Pending authorization requests:
//   CreateAuthRequest(ctx, *AuthRequest) error                     ExpiresAt required
//   AuthRequestByID(ctx, id string, now time.Time) (*AuthRequest, error)  ErrNotFound when now ≥ ExpiresAt
//   DeleteAuthRequest(ctx, id string) error
//   DecideAuthRequest(ctx, id, userID, decision string, at time.Time) error
//       the consent page's answer, once (ErrConflict); one by another user may be replaced
//
// Consent (consent.go, where its type lives too):
//   RememberConsent(ctx, Consent) error                            adds to what the officer allowed the client before
//   ConsentOf(ctx, userID, clientID) (*Consent, error)             ErrNotFound
//   Consents(ctx, userID) ([]Consent, error)                       by client id
//   WithdrawConsent(ctx, userID, clientID, revoke) error           ErrNotFound; revoke: the client's tokens of the user too
//
// Housekeeping:
//   DeleteExpired(ctx, now time.Time) (int64, error)                GC of every expiring kind
//   Ping(ctx) error
//   Backup(ctx, path string) error                                  SQLite: VACUUM INTO a new 0600 file; PostgreSQL: use pg_dump
//
// Transactions (fosite's storage.Transactional has the same shape):
//   BeginTx(ctx) (context.Context, error)                           ErrTxInProgress if ctx has an open one
//   Commit(ctx) error; Rollback(ctx) error                          Rollback after Commit: no-op
//   InTx(ctx, func(ctx context.Context) error) error               joins an open transaction of ctx
//   On SQLite, a caller holding a transaction must pass its ctx to every call
//   (the write pool has one connection: a call with another ctx waits for it).
