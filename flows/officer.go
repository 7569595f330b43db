package flows

import (
	"context"
	"errors"
	"time"

	"github.com/lanyard-idp/lanyard/provider/store"
)

// Officer is an account as an admin sees it (`lanyard user show`, the
// console's officer page): its state, lock, invitation, sign-in methods,
// accepted documents and sessions.
type Officer struct {
	User           *store.User
	LockedUntil    time.Time // zero: not locked now
	RecentFailures int
	// InviteExpired: the initial password (of an invitation or a reset)
	// no longer works.
	InviteExpired bool
	TOTP          string // TOTPNone | TOTPPending | TOTPEnrolled
	Passkeys      []store.WebAuthnCredential
	Phones        []store.ApprovalDevice // paired approval apps
	RecoveryCodes int
	Documents     []AcceptedDocument
	Sessions      []store.Session
}

// Authenticator app states of an Officer.
const (
	TOTPNone     = "none"
	TOTPPending  = "pending"
	TOTPEnrolled = "enrolled"
)

// AcceptedDocument is a policy document as an officer accepted it: every
// configured document (accepted or not), then any accepted one the
// configuration no longer has (Current "").
type AcceptedDocument struct {
	Document   string
	Accepted   string // the version accepted last ("" none)
	AcceptedAt time.Time
	Current    string // the configured version
	UpToDate   bool
}

// HasFactor reports whether the officer has a second factor to reset.
func (o *Officer) HasFactor() bool {
	return o.TOTP != TOTPNone || len(o.Passkeys) > 0 || len(o.Phones) > 0 || o.RecoveryCodes > 0
}

// Officer describes the account u at the service's now.
func (a *Admin) Officer(ctx context.Context, u *store.User) (*Officer, error) {
	st, now := a.store, a.now().UTC()
	o := &Officer{User: u, TOTP: TOTPNone}
	var err error
	if o.LockedUntil, o.RecentFailures, err = a.AccountLock(ctx, u); err != nil {
		return nil, err
	}
	o.InviteExpired = u.PasswordInitial && !u.InviteExpiresAt.IsZero() && !now.Before(u.InviteExpiresAt)
	t, err := st.TOTPByUser(ctx, u.ID)
	switch {
	case err == nil && t.Confirmed:
		o.TOTP = TOTPEnrolled
	case err == nil:
		o.TOTP = TOTPPending
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	if o.Passkeys, err = st.WebAuthnCredentials(ctx, u.ID); err != nil {
		return nil, err
	}
	if o.Phones, err = st.ApprovalDevices(ctx, u.ID); err != nil {
		return nil, err
	}
	if o.RecoveryCodes, err = st.RecoveryCodesLeft(ctx, u.ID); err != nil {
		return nil, err
	}
	acc, err := st.Acceptances(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, doc := range a.cfg.Documents {
		d := AcceptedDocument{Document: doc.ID, Current: doc.Version}
		for _, x := range acc {
			if x.Document == doc.ID {
				d.Accepted, d.AcceptedAt = x.Version, x.AcceptedAt
			}
		}
		d.UpToDate = d.Accepted == doc.Version
		o.Documents = append(o.Documents, d)
		seen[doc.ID] = true
	}
	for _, x := range acc {
		if !seen[x.Document] {
			o.Documents = append(o.Documents, AcceptedDocument{Document: x.Document, Accepted: x.Version, AcceptedAt: x.AcceptedAt})
		}
	}
	if o.Sessions, err = st.UserSessions(ctx, u.ID, now); err != nil {
		return nil, err
	}
	return o, nil
}
