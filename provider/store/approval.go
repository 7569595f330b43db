package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// The Lanyard approval app: paired phones (devices) and the requests they
// answer. A request is a pairing (a one-time link opened on the phone,
// then confirmed with the number), a sign-in, or a confirm-it-is-you on the
// account page. Every change of a request's state is a conditional update
// of its state, so of racing answers exactly one takes effect; at most one
// sign-in or confirm request waits per account (a unique partial index).

// ApprovalDevice is a phone paired with the approval app.
type ApprovalDevice struct {
	ID     string
	UserID string
	Name   string
	// PublicKey is the device-bound key's public half: DER
	// SubjectPublicKeyInfo, ECDSA P-256.
	PublicKey []byte
	// Push is the device's Web Push subscription (Endpoint "" when none).
	Push       PushSubscription
	CreatedAt  time.Time
	LastUsedAt time.Time
}

// PushSubscription is a browser's Web Push subscription (RFC 8030/8291).
type PushSubscription struct {
	Endpoint string
	P256dh   string
	Auth     string
}

// Approval request kinds.
const (
	ApprovalPairing = "pairing"
	ApprovalSignIn  = "signin"
	ApprovalReauth  = "reauth"
)

// Approval request states. pending → approved → used (the signing-in
// browser took the approval), or pending → denied, expired or cancelled.
const (
	ApprovalPending   = "pending"
	ApprovalApproved  = "approved"
	ApprovalUsed      = "used"
	ApprovalDenied    = "denied"
	ApprovalExpired   = "expired"
	ApprovalCancelled = "cancelled"
)

// ApprovalRequest is one request to the approval app.
type ApprovalRequest struct {
	ID        string
	UserID    string
	Kind      string // ApprovalPairing | ApprovalSignIn | ApprovalReauth
	State     string
	Number    int    // shown in the signing-in browser only
	Challenge string // what the app's signature covers
	// A pairing's: the hash of its link's token; once the phone opened it,
	// the public key it registered (ClaimedAt) and the name and push
	// subscription it sent with its approval.
	TokenHash  string
	PublicKey  []byte
	DeviceName string
	Push       PushSubscription
	// DeviceID is the device that answered ("" until then; for a pairing,
	// the id its device will have).
	DeviceID string
	// What the phone shows about the sign-in.
	Application string
	Browser     string
	ClientAddr  string

	WrongNumbers int
	Reason       string // why it was denied
	Reported     bool   // the officer reported a denied request as not theirs
	CreatedAt    time.Time
	ExpiresAt    time.Time
	ClaimedAt    time.Time
	DecidedAt    time.Time
}

// Live reports whether the request still waits for an answer at now.
func (r *ApprovalRequest) Live(now time.Time) bool {
	return r.State == ApprovalPending && now.Before(r.ExpiresAt)
}

const approvalDeviceCols = `id, user_id, name, public_key, push_endpoint, push_p256dh, push_auth, created_at, last_used_at`

func scanApprovalDevice(sc rowScanner) (*ApprovalDevice, error) {
	var d ApprovalDevice
	var created, used sql.NullInt64
	if err := sc.Scan(&d.ID, &d.UserID, &d.Name, &d.PublicKey, &d.Push.Endpoint, &d.Push.P256dh, &d.Push.Auth,
		&created, &used); err != nil {
		return nil, err
	}
	d.CreatedAt, d.LastUsedAt = fromMicro(created), fromMicro(used)
	return &d, nil
}

// AddApprovalDevice stores a paired device. A zero CreatedAt is set to now.
// ErrConflict when the id exists, ErrNotFound when the user does not.
func (s *Store) AddApprovalDevice(ctx context.Context, d *ApprovalDevice) error {
	switch {
	case d == nil || d.ID == "":
		return invalid("approval device without id")
	case d.UserID == "":
		return invalid("approval device without user id")
	case len(d.PublicKey) == 0:
		return invalid("approval device without public key")
	}
	if d.CreatedAt.IsZero() {
		d.CreatedAt = s.now()
	}
	_, err := s.exec(ctx, `INSERT INTO approval_devices (`+approvalDeviceCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.ID, d.UserID, d.Name, d.PublicKey, d.Push.Endpoint, d.Push.P256dh, d.Push.Auth, micro(d.CreatedAt), micro(d.LastUsedAt))
	if err != nil {
		return fmt.Errorf("add approval device of %q: %w", d.UserID, err)
	}
	return nil
}

// ApprovalDevices lists the user's devices, oldest first.
func (s *Store) ApprovalDevices(ctx context.Context, userID string) ([]ApprovalDevice, error) {
	rows, err := s.query(ctx, rd, `SELECT `+approvalDeviceCols+` FROM approval_devices WHERE user_id = ? ORDER BY created_at, id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list approval devices of %q: %w", userID, err)
	}
	defer rows.Close()
	var out []ApprovalDevice
	for rows.Next() {
		d, err := scanApprovalDevice(rows)
		if err != nil {
			return nil, fmt.Errorf("list approval devices of %q: %w", userID, s.mapErr(err))
		}
		out = append(out, *d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list approval devices of %q: %w", userID, s.mapErr(err))
	}
	return out, nil
}

// ApprovalDeviceByID loads a device.
func (s *Store) ApprovalDeviceByID(ctx context.Context, id string) (*ApprovalDevice, error) {
	d, err := scanApprovalDevice(s.queryRow(ctx, rd, `SELECT `+approvalDeviceCols+` FROM approval_devices WHERE id = ?`, id))
	if err != nil {
		return nil, s.notFound(err, "approval device")
	}
	return d, nil
}

// RenameApprovalDevice renames one of the user's devices; ErrNotFound unless
// the user has it.
func (s *Store) RenameApprovalDevice(ctx context.Context, userID, id, name string) error {
	n, err := s.execN(ctx, `UPDATE approval_devices SET name = ? WHERE user_id = ? AND id = ?`, name, userID, id)
	if err != nil {
		return fmt.Errorf("rename approval device of %q: %w", userID, err)
	}
	if n == 0 {
		return fmt.Errorf("rename approval device of %q: %w", userID, ErrNotFound)
	}
	return nil
}

// DeleteApprovalDevice deletes one of the user's devices; another user's is
// never touched. ErrNotFound unless the user has it.
func (s *Store) DeleteApprovalDevice(ctx context.Context, userID, id string) error {
	n, err := s.execN(ctx, `DELETE FROM approval_devices WHERE user_id = ? AND id = ?`, userID, id)
	if err != nil {
		return fmt.Errorf("delete approval device of %q: %w", userID, err)
	}
	if n == 0 {
		return fmt.Errorf("delete approval device of %q: %w", userID, ErrNotFound)
	}
	return nil
}

// DeleteApprovalDevices deletes every device of the user and cancels the
// user's waiting requests; it returns how many devices went.
func (s *Store) DeleteApprovalDevices(ctx context.Context, userID string) (int, error) {
	var n int64
	err := s.InTx(ctx, func(ctx context.Context) error {
		var err error
		if n, err = s.execN(ctx, `DELETE FROM approval_devices WHERE user_id = ?`, userID); err != nil {
			return err
		}
		_, err = s.exec(ctx, `UPDATE approval_requests SET state = ? WHERE user_id = ? AND state IN (?, ?)`,
			ApprovalCancelled, userID, ApprovalPending, ApprovalApproved)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete approval devices of %q: %w", userID, err)
	}
	return int(n), nil
}

// ForgetApprovalPush drops a device's push subscription, if it is still
// endpoint (the push service said it is gone; a newer one is kept).
func (s *Store) ForgetApprovalPush(ctx context.Context, id, endpoint string) error {
	if _, err := s.exec(ctx, `UPDATE approval_devices SET push_endpoint = '', push_p256dh = '', push_auth = ''
		WHERE id = ? AND push_endpoint = ?`, id, endpoint); err != nil {
		return fmt.Errorf("forget push subscription: %w", err)
	}
	return nil
}

// SetApprovalPush replaces a device's push subscription (the app
// subscribed again).
func (s *Store) SetApprovalPush(ctx context.Context, id string, p PushSubscription) error {
	n, err := s.execN(ctx, `UPDATE approval_devices SET push_endpoint = ?, push_p256dh = ?, push_auth = ? WHERE id = ?`,
		p.Endpoint, p.P256dh, p.Auth, id)
	if err != nil {
		return fmt.Errorf("set push subscription: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("set push subscription: %w", ErrNotFound)
	}
	return nil
}

// UseApprovalDevice records that a device answered at at.
func (s *Store) UseApprovalDevice(ctx context.Context, id string, at time.Time) error {
	if _, err := s.exec(ctx, `UPDATE approval_devices SET last_used_at = ? WHERE id = ?`, micro(at), id); err != nil {
		return fmt.Errorf("record approval device use: %w", err)
	}
	return nil
}

const approvalRequestCols = `id, user_id, kind, state, number, challenge, token_hash, public_key, device_name,
	push_endpoint, push_p256dh, push_auth, device_id, application, browser, client_addr, wrong_numbers, reason, reported,
	created_at, expires_at, claimed_at, decided_at`

func scanApprovalRequest(sc rowScanner) (*ApprovalRequest, error) {
	var r ApprovalRequest
	var token sql.NullString
	var reported int64
	var created, expires, claimed, decided sql.NullInt64
	if err := sc.Scan(&r.ID, &r.UserID, &r.Kind, &r.State, &r.Number, &r.Challenge, &token, &r.PublicKey, &r.DeviceName,
		&r.Push.Endpoint, &r.Push.P256dh, &r.Push.Auth, &r.DeviceID, &r.Application, &r.Browser, &r.ClientAddr,
		&r.WrongNumbers, &r.Reason, &reported, &created, &expires, &claimed, &decided); err != nil {
		return nil, err
	}
	r.TokenHash, r.Reported = token.String, reported != 0
	r.CreatedAt, r.ExpiresAt, r.ClaimedAt, r.DecidedAt = fromMicro(created), fromMicro(expires), fromMicro(claimed), fromMicro(decided)
	return &r, nil
}

// CreateApprovalRequest stores a new pending request. Requests of the user
// still pending past their expiry are marked expired first; then, unless
// it is a pairing, ErrConflict when another request of the user is still
// waiting (one at a time per account). ErrNotFound when the user does not
// exist.
func (s *Store) CreateApprovalRequest(ctx context.Context, r *ApprovalRequest) error {
	switch {
	case r == nil || r.ID == "" || r.UserID == "":
		return invalid("approval request without id or user id")
	case r.Kind != ApprovalPairing && r.Kind != ApprovalSignIn && r.Kind != ApprovalReauth:
		return invalid("approval request kind %q", r.Kind)
	case r.Kind == ApprovalPairing && r.TokenHash == "":
		return invalid("pairing without token")
	case r.Challenge == "" || r.Number < 10 || r.Number > 99:
		return invalid("approval request without challenge or two-digit number")
	case r.CreatedAt.IsZero() || !r.ExpiresAt.After(r.CreatedAt):
		return invalid("approval request expiry must follow its creation")
	}
	r.State = ApprovalPending
	var token any
	if r.TokenHash != "" {
		token = r.TokenHash
	}
	err := s.InTx(ctx, func(ctx context.Context) error {
		if _, err := s.exec(ctx, `UPDATE approval_requests SET state = ? WHERE user_id = ? AND state = ? AND expires_at <= ?`,
			ApprovalExpired, r.UserID, ApprovalPending, r.CreatedAt.UnixMicro()); err != nil {
			return err
		}
		_, err := s.exec(ctx, `INSERT INTO approval_requests (`+approvalRequestCols+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.ID, r.UserID, r.Kind, r.State, r.Number, r.Challenge, token, r.PublicKey, r.DeviceName,
			r.Push.Endpoint, r.Push.P256dh, r.Push.Auth, r.DeviceID, r.Application, r.Browser, r.ClientAddr,
			r.WrongNumbers, r.Reason, boolInt(r.Reported), micro(r.CreatedAt), micro(r.ExpiresAt), micro(r.ClaimedAt), micro(r.DecidedAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("create approval request of %q: %w", r.UserID, err)
	}
	return nil
}

// ApprovalRequestByID loads a request as stored (an expired one too: see Live).
func (s *Store) ApprovalRequestByID(ctx context.Context, id string) (*ApprovalRequest, error) {
	r, err := scanApprovalRequest(s.queryRow(ctx, wr, `SELECT `+approvalRequestCols+` FROM approval_requests WHERE id = ?`, id))
	if err != nil {
		return nil, s.notFound(err, "approval request")
	}
	return r, nil
}

// PairingByToken loads the pairing whose link's token hashes to tokenHash.
func (s *Store) PairingByToken(ctx context.Context, tokenHash string) (*ApprovalRequest, error) {
	r, err := scanApprovalRequest(s.queryRow(ctx, wr, `SELECT `+approvalRequestCols+` FROM approval_requests
		WHERE token_hash = ? AND kind = ?`, tokenHash, ApprovalPairing))
	if err != nil {
		return nil, s.notFound(err, "pairing")
	}
	return r, nil
}

// ClaimPairing records the public key of the phone that opened a pairing's
// link: once, while the pairing is live. ErrConflict when it was claimed
// already (or is no longer live), ErrNotFound when there is none.
func (s *Store) ClaimPairing(ctx context.Context, id string, publicKey []byte, now time.Time) error {
	if len(publicKey) == 0 {
		return invalid("pairing claim without public key")
	}
	n, err := s.execN(ctx, `UPDATE approval_requests SET public_key = ?, claimed_at = ?
		WHERE id = ? AND kind = ? AND state = ? AND claimed_at IS NULL AND expires_at > ?`,
		publicKey, now.UnixMicro(), id, ApprovalPairing, ApprovalPending, now.UnixMicro())
	if err != nil {
		return fmt.Errorf("claim pairing: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("claim pairing: %w", s.existsOr(ctx, `SELECT COUNT(*) FROM approval_requests WHERE id = ?`, id))
	}
	return nil
}

// ApprovalAnswer is the phone's answer to a live request.
type ApprovalAnswer struct {
	State    string // ApprovalApproved or ApprovalDenied
	DeviceID string
	Reason   string // a denial's
	// A pairing's approval: the device's name and push subscription.
	DeviceName string
	Push       PushSubscription
	At         time.Time
}

// AnswerApproval records an answer, only while the request is live: of
// racing answers one wins, the others (and any later one) get ErrConflict.
// ErrNotFound when there is no such request.
func (s *Store) AnswerApproval(ctx context.Context, id string, a ApprovalAnswer) error {
	if a.State != ApprovalApproved && a.State != ApprovalDenied {
		return invalid("an answer approves or denies, not %q", a.State)
	}
	n, err := s.execN(ctx, `UPDATE approval_requests SET state = ?, device_id = ?, reason = ?, device_name = ?,
		push_endpoint = ?, push_p256dh = ?, push_auth = ?, decided_at = ?
		WHERE id = ? AND state = ? AND expires_at > ?`,
		a.State, a.DeviceID, a.Reason, a.DeviceName, a.Push.Endpoint, a.Push.P256dh, a.Push.Auth, a.At.UnixMicro(),
		id, ApprovalPending, a.At.UnixMicro())
	if err != nil {
		return fmt.Errorf("answer approval request: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("answer approval request: %w", s.existsOr(ctx, `SELECT COUNT(*) FROM approval_requests WHERE id = ?`, id))
	}
	return nil
}

// WrongApprovalNumber counts a wrong number typed for a live request; the
// max-th denies it (Reason reason). It returns the count and whether the
// request is now denied. Concurrent wrong numbers all count. ErrConflict
// when the request is no longer live.
func (s *Store) WrongApprovalNumber(ctx context.Context, id string, max int, reason string, now time.Time) (wrong int, denied bool, err error) {
	err = s.InTx(ctx, func(ctx context.Context) error {
		n, err := s.execN(ctx, `UPDATE approval_requests SET wrong_numbers = wrong_numbers + 1
			WHERE id = ? AND state = ? AND expires_at > ?`, id, ApprovalPending, now.UnixMicro())
		if err != nil {
			return err
		}
		if n == 0 {
			return s.existsOr(ctx, `SELECT COUNT(*) FROM approval_requests WHERE id = ?`, id)
		}
		if err := s.row(ctx, wr, `SELECT wrong_numbers FROM approval_requests WHERE id = ?`, []any{id}, &wrong); err != nil {
			return err
		}
		if wrong < max {
			return nil
		}
		denied = true
		_, err = s.exec(ctx, `UPDATE approval_requests SET state = ?, reason = ?, decided_at = ? WHERE id = ? AND state = ?`,
			ApprovalDenied, reason, now.UnixMicro(), id, ApprovalPending)
		return err
	})
	if err != nil {
		return 0, false, fmt.Errorf("count a wrong approval number: %w", err)
	}
	return wrong, denied, nil
}

// UseApproval takes an approved request for the browser that asked for it:
// once (approved → used). ErrConflict when it is not (or no longer)
// approved, ErrNotFound when there is none.
func (s *Store) UseApproval(ctx context.Context, id string) error {
	n, err := s.execN(ctx, `UPDATE approval_requests SET state = ? WHERE id = ? AND state = ?`, ApprovalUsed, id, ApprovalApproved)
	if err != nil {
		return fmt.Errorf("use approval: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("use approval: %w", s.existsOr(ctx, `SELECT COUNT(*) FROM approval_requests WHERE id = ?`, id))
	}
	return nil
}

// CancelApprovalRequest withdraws a request still waiting or approved but
// not used (the browser started another). No error when it is neither.
func (s *Store) CancelApprovalRequest(ctx context.Context, id string) error {
	if _, err := s.exec(ctx, `UPDATE approval_requests SET state = ? WHERE id = ? AND state IN (?, ?)`,
		ApprovalCancelled, id, ApprovalPending, ApprovalApproved); err != nil {
		return fmt.Errorf("cancel approval request: %w", err)
	}
	return nil
}

// ExpireApprovalRequest marks a request past its expiry as expired (so that
// the account may have another). No error when it is not pending or not
// yet expired.
func (s *Store) ExpireApprovalRequest(ctx context.Context, id string, now time.Time) error {
	if _, err := s.exec(ctx, `UPDATE approval_requests SET state = ? WHERE id = ? AND state = ? AND expires_at <= ?`,
		ApprovalExpired, id, ApprovalPending, now.UnixMicro()); err != nil {
		return fmt.Errorf("expire approval request: %w", err)
	}
	return nil
}

// PendingApprovals lists the user's sign-in and confirm requests still
// waiting at now, newest first.
func (s *Store) PendingApprovals(ctx context.Context, userID string, now time.Time) ([]ApprovalRequest, error) {
	rows, err := s.query(ctx, wr, `SELECT `+approvalRequestCols+` FROM approval_requests
		WHERE user_id = ? AND kind <> ? AND state = ? AND expires_at > ? ORDER BY created_at DESC, id`,
		userID, ApprovalPairing, ApprovalPending, now.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("list pending approvals of %q: %w", userID, err)
	}
	defer rows.Close()
	var out []ApprovalRequest
	for rows.Next() {
		r, err := scanApprovalRequest(rows)
		if err != nil {
			return nil, fmt.Errorf("list pending approvals of %q: %w", userID, s.mapErr(err))
		}
		out = append(out, *r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list pending approvals of %q: %w", userID, s.mapErr(err))
	}
	return out, nil
}

// CountApprovalRequests counts the user's requests (pairings included)
// created at or after since: the hourly cap against push fatigue.
func (s *Store) CountApprovalRequests(ctx context.Context, userID string, since time.Time) (int, error) {
	var n int
	if err := s.row(ctx, wr, `SELECT COUNT(*) FROM approval_requests WHERE user_id = ? AND created_at >= ?`,
		[]any{userID, since.UnixMicro()}, &n); err != nil {
		return 0, fmt.Errorf("count approval requests of %q: %w", userID, err)
	}
	return n, nil
}

// ReportApproval marks a denied request as reported by its officer: once.
// ErrConflict when it is not denied or was reported already.
func (s *Store) ReportApproval(ctx context.Context, id string) error {
	n, err := s.execN(ctx, `UPDATE approval_requests SET reported = 1 WHERE id = ? AND state = ? AND reported = 0`, id, ApprovalDenied)
	if err != nil {
		return fmt.Errorf("report approval request: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("report approval request: %w", s.existsOr(ctx, `SELECT COUNT(*) FROM approval_requests WHERE id = ?`, id))
	}
	return nil
}
