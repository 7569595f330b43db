package store

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Account request statuses (AccountRequest.Status). unverified and pending
// are open: a mailbox has at most one open request.
const (
	RequestUnverified = "unverified" // waiting for the requester to prove the mailbox
	RequestPending    = "pending"    // proved; waiting for an approver
	RequestApproved   = "approved"   // an invitation was made
	RequestDenied     = "denied"
	RequestExpired    = "expired" // nobody verified or decided it in time
)

// Account request kinds (AccountRequest.Kind).
const (
	// RequestKindAccount asks for a new account (/request).
	RequestKindAccount = "account"
	// RequestKindInvitation asks for a fresh onboarding email for an
	// invitation that was lost or has expired: approved, it is a resend.
	// It needs no verification (the email goes to the invited mailbox
	// anyway), so it is stored pending.
	RequestKindInvitation = "invitation"
)

// RequestStatuses are the statuses, in the order a request goes through them.
var RequestStatuses = []string{RequestUnverified, RequestPending, RequestApproved, RequestDenied, RequestExpired}

// AccountRequest is an officer's request for an account (/request).
type AccountRequest struct {
	ID           string // random; shown to approvers and on the command line
	Kind         string // RequestKindAccount (the default) or RequestKindInvitation
	Email        string // canonical address
	Name         string
	Organisation string
	Reason       string
	Status       string
	// Token is the emailed verification token: write-only (the store keeps
	// its SHA-256 only; loaded requests have it empty).
	Token      string
	ClientAddr string
	CreatedAt  time.Time
	VerifiedAt time.Time
	DecidedAt  time.Time
	// ExpiresAt is when an open request expires: a day after it was made
	// while unverified, requests.unapproved_for after verification.
	ExpiresAt  time.Time
	DecidedBy  string // the Actor who approved or denied it
	DenyReason string
}

// Open reports whether the request still waits for its requester or an approver.
func (r *AccountRequest) Open() bool {
	return r.Status == RequestUnverified || r.Status == RequestPending
}

const requestCols = `id, kind, email, name, organisation, reason, status, client_addr, created_at, verified_at,
	decided_at, expires_at, decided_by, deny_reason`

func scanRequest(sc interface{ Scan(...any) error }) (*AccountRequest, error) {
	var r AccountRequest
	var created, verified, decided, expires sql.NullInt64
	if err := sc.Scan(&r.ID, &r.Kind, &r.Email, &r.Name, &r.Organisation, &r.Reason, &r.Status, &r.ClientAddr,
		&created, &verified, &decided, &expires, &r.DecidedBy, &r.DenyReason); err != nil {
		return nil, err
	}
	r.CreatedAt, r.VerifiedAt = fromMicro(created), fromMicro(verified)
	r.DecidedAt, r.ExpiresAt = fromMicro(decided), fromMicro(expires)
	return &r, nil
}

func validRequestStatus(s string) bool {
	for _, v := range RequestStatuses {
		if s == v {
			return true
		}
	}
	return false
}

// CreateAccountRequest stores a new request: for an account, unverified
// with its Token; for an invitation's fresh email, pending (verified at its
// creation) and without one. ErrConflict when the mailbox already has an
// open request or the id is taken: of racing submissions for one mailbox,
// one is stored.
func (s *Store) CreateAccountRequest(ctx context.Context, r *AccountRequest) error {
	if r != nil && r.Kind == "" {
		r.Kind = RequestKindAccount
	}
	switch {
	case r == nil || r.ID == "" || r.Email == "":
		return invalid("account request without id or email")
	case r.Kind != RequestKindAccount && r.Kind != RequestKindInvitation:
		return invalid("unknown account request kind %q", r.Kind)
	case r.Kind == RequestKindAccount && r.Token == "":
		return invalid("account request without a verification token")
	case r.Kind == RequestKindInvitation && r.Token != "":
		return invalid("an invitation's request has no verification token")
	case r.ExpiresAt.IsZero():
		return invalid("account request without an expiry")
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = s.now()
	}
	r.Status, r.VerifiedAt = RequestUnverified, time.Time{}
	token := ""
	if r.Kind == RequestKindInvitation {
		r.Status, r.VerifiedAt = RequestPending, r.CreatedAt
	} else {
		token = hashKey(r.Token)
	}
	_, err := s.exec(ctx, `INSERT INTO account_requests (id, kind, email, name, organisation, reason, status, token_hash,
		client_addr, created_at, verified_at, decided_at, expires_at, decided_by, deny_reason)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, '', '')`,
		r.ID, r.Kind, r.Email, r.Name, r.Organisation, r.Reason, r.Status, token, r.ClientAddr,
		micro(r.CreatedAt), micro(r.VerifiedAt), micro(r.ExpiresAt))
	if err != nil {
		return fmt.Errorf("create account request: %w", err)
	}
	return nil
}

// AccountRequestByID loads a request.
func (s *Store) AccountRequestByID(ctx context.Context, id string) (*AccountRequest, error) {
	r, err := scanRequest(s.queryRow(ctx, rd, `SELECT `+requestCols+` FROM account_requests WHERE id = ?`, id))
	if err != nil {
		return nil, s.notFound(err, "account request %q", id)
	}
	return r, nil
}

// AccountRequestByToken loads the unverified request whose verification
// token is token (ErrNotFound when none: wrong, already used or replaced).
func (s *Store) AccountRequestByToken(ctx context.Context, token string) (*AccountRequest, error) {
	if token == "" {
		return nil, fmt.Errorf("load account request: %w", ErrNotFound)
	}
	r, err := scanRequest(s.queryRow(ctx, rd, `SELECT `+requestCols+` FROM account_requests
		WHERE token_hash = ? AND token_hash <> ''`, hashKey(token)))
	if err != nil {
		return nil, s.notFound(err, "account request by token")
	}
	return r, nil
}

// OpenAccountRequest loads the mailbox's open request (ErrNotFound when it
// has none).
func (s *Store) OpenAccountRequest(ctx context.Context, email string) (*AccountRequest, error) {
	r, err := scanRequest(s.queryRow(ctx, wr, `SELECT `+requestCols+` FROM account_requests
		WHERE email = ? AND status IN ('unverified', 'pending')`, email))
	if err != nil {
		return nil, s.notFound(err, "open account request of %q", email)
	}
	return r, nil
}

// RenewRequestToken gives an unverified request a new verification token
// (the old link stops working) and expiry. ErrConflict when the request is
// no longer unverified.
func (s *Store) RenewRequestToken(ctx context.Context, id, token string, expires time.Time) error {
	if token == "" {
		return invalid("empty verification token")
	}
	n, err := s.execN(ctx, `UPDATE account_requests SET token_hash = ?, expires_at = ?
		WHERE id = ? AND status = 'unverified'`, hashKey(token), micro(expires), id)
	if err != nil {
		return fmt.Errorf("renew request token: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("renew request token: %w", s.existsOr(ctx, `SELECT COUNT(*) FROM account_requests WHERE id = ?`, id))
	}
	return nil
}

// VerifyAccountRequest marks an unverified, unexpired request pending (the
// mailbox is proved) with its new expiry, and forgets its token. Of racing
// verifications one succeeds; the others get ErrConflict.
func (s *Store) VerifyAccountRequest(ctx context.Context, id string, at, expires time.Time) error {
	n, err := s.execN(ctx, `UPDATE account_requests SET status = 'pending', token_hash = '', verified_at = ?, expires_at = ?
		WHERE id = ? AND status = 'unverified' AND expires_at > ?`, micro(at), micro(expires), id, micro(at))
	if err != nil {
		return fmt.Errorf("verify account request: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("verify account request: %w", s.existsOr(ctx, `SELECT COUNT(*) FROM account_requests WHERE id = ?`, id))
	}
	return nil
}

// DecideAccountRequest approves or denies a pending, unexpired request:
// status becomes to (RequestApproved or RequestDenied) with who decided,
// when, and (denied) why. Of racing decisions one succeeds; the others get
// ErrConflict.
func (s *Store) DecideAccountRequest(ctx context.Context, id, to, by, reason string, at time.Time) error {
	if to != RequestApproved && to != RequestDenied {
		return invalid("a decision is approved or denied, not %q", to)
	}
	if by == "" {
		return invalid("a decision needs who made it")
	}
	n, err := s.execN(ctx, `UPDATE account_requests SET status = ?, decided_by = ?, deny_reason = ?, decided_at = ?
		WHERE id = ? AND status = 'pending' AND expires_at > ?`, to, by, reason, micro(at), id, micro(at))
	if err != nil {
		return fmt.Errorf("decide account request: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("decide account request: %w", s.existsOr(ctx, `SELECT COUNT(*) FROM account_requests WHERE id = ?`, id))
	}
	return nil
}

// ExpireAccountRequests marks the open requests whose time ran out at now
// expired (only the mailbox's, when email is set) and returns them as they
// were before: the caller audits each. Of concurrent callers (several
// nodes), each request is returned to the one that expired it only.
func (s *Store) ExpireAccountRequests(ctx context.Context, now time.Time, email string) ([]AccountRequest, error) {
	var out []AccountRequest
	err := s.InTx(ctx, func(ctx context.Context) error {
		q := `SELECT ` + requestCols + ` FROM account_requests WHERE status IN ('unverified', 'pending') AND expires_at <= ?`
		args := []any{micro(now)}
		if email != "" {
			q += ` AND email = ?`
			args = append(args, email)
		}
		rows, err := s.query(ctx, wr, q+` ORDER BY created_at, id LIMIT 500`, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			r, err := scanRequest(rows)
			if err != nil {
				rows.Close()
				return s.mapErr(err)
			}
			out = append(out, *r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return s.mapErr(err)
		}
		// Another node may have expired a row since the SELECT (PostgreSQL
		// reads committed rows without locking them): only the rows this
		// update changed are this caller's to return, and to audit.
		mine := out[:0]
		for _, r := range out {
			n, err := s.execN(ctx, `UPDATE account_requests SET status = 'expired', token_hash = '', decided_at = ?
				WHERE id = ? AND status = ?`, micro(now), r.ID, r.Status)
			if err != nil {
				return err
			}
			if n == 1 {
				mine = append(mine, r)
			}
		}
		out = mine
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("expire account requests: %w", err)
	}
	return out, nil
}

// RequestQuery selects a page of account requests, oldest first (a queue).
type RequestQuery struct {
	Status string // one of RequestStatuses; "" is any
	// After is the Cursor of the last request of the previous page.
	After string
	Limit int // default and maximum 500
}

// Cursor is where a page that ended with r continues.
func (r *AccountRequest) Cursor() string {
	return strconv.FormatInt(r.CreatedAt.UnixMicro(), 10) + "." + r.ID
}

// ListAccountRequests returns a page of requests, oldest first.
func (s *Store) ListAccountRequests(ctx context.Context, q RequestQuery) ([]AccountRequest, error) {
	if q.Status != "" && !validRequestStatus(q.Status) {
		return nil, invalid("unknown request status %q", q.Status)
	}
	if q.Limit <= 0 || q.Limit > 500 {
		q.Limit = 500
	}
	var where []string
	var args []any
	if q.Status != "" {
		where, args = append(where, "status = ?"), append(args, q.Status)
	}
	if q.After != "" {
		us, id, ok := strings.Cut(q.After, ".")
		t, err := strconv.ParseInt(us, 10, 64)
		if !ok || err != nil {
			return nil, invalid("malformed request cursor")
		}
		where = append(where, "(created_at > ? OR (created_at = ? AND id > ?))")
		args = append(args, t, t, id)
	}
	sqlText := `SELECT ` + requestCols + ` FROM account_requests`
	if len(where) > 0 {
		sqlText += ` WHERE ` + strings.Join(where, " AND ")
	}
	rows, err := s.query(ctx, rd, sqlText+` ORDER BY created_at, id LIMIT ?`, append(args, int64(q.Limit))...)
	if err != nil {
		return nil, fmt.Errorf("list account requests: %w", err)
	}
	defer rows.Close()
	var out []AccountRequest
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			return nil, fmt.Errorf("list account requests: %w", s.mapErr(err))
		}
		out = append(out, *r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list account requests: %w", s.mapErr(err))
	}
	return out, nil
}
