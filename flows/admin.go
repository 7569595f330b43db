package flows

// The admin service: what an administrator does to officers' accounts —
// invite, resend and revoke an invitation (invite.go), disable, enable,
// unlock, reset the second factors, reset the password, sign out
// everywhere. The admin commands (lanyard invite, lanyard user …) are thin
// wrappers around it and the admin console calls the same methods; each
// names its actor, who goes into the audit event ("cli", or the acting
// admin's user id).
//
// Each change runs in one transaction with its audit event, decides from
// what is stored inside that transaction (so of racing admins exactly one
// acts; a transaction the database aborted for a concurrent one is run
// again), and takes effect at once: sessions and tokens end in the same
// transaction.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/flows/mail"
	"github.com/lanyard-idp/lanyard/provider/store"
	"github.com/lanyard-idp/lanyard/templates"
)

// Admin is the admin service. Build it with NewAdmin.
type Admin struct {
	cfg    *config.Config
	store  *store.Store
	mailer mail.Mailer    // invitations and password resets
	pages  *templates.Set // their emails
	log    *slog.Logger
	now    func() time.Time
}

// NewAdmin builds the admin service from the journey's Options: Config and
// Store are required; Mailer and Pages only for what sends an email
// (Invite, Resend, ResetPassword), which refuses to run without them. Box
// is not used.
func NewAdmin(o Options) (*Admin, error) {
	switch {
	case o.Config == nil:
		return nil, errors.New("flows: Options.Config is required")
	case o.Store == nil:
		return nil, errors.New("flows: Options.Store is required")
	case !o.Config.Defaulted():
		return nil, errNoDefaults
	}
	a := &Admin{cfg: o.Config, store: o.Store, mailer: o.Mailer, pages: o.Pages, log: o.Logger, now: o.Now}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	return a, nil
}

// Errors of the admin service, for the admin who asked. Each returned
// refusal wraps one of them and says what to do in a full sentence.
var (
	ErrDomainNotAllowed = errors.New("the address is not in an allowed domain (invitations.allowed_domains)")
	ErrRefusedMailbox   = errors.New("the address is a refused mailbox (invitations.refused_mailboxes)")
	ErrAlreadyActive    = errors.New("the officer already has an active account")
	ErrAlreadyInvited   = errors.New("the officer already has a pending invitation; use --resend to issue a new one")
	ErrNoInvitation     = errors.New("there is no pending invitation to resend")
	ErrAccountDisabled  = errors.New("the officer's account is disabled")
	ErrBadName          = errors.New("the name must be one line of at most 200 characters, without control or text-direction characters")
	ErrNoAccount        = errors.New("there is no account for that address")
	ErrNotInvited       = errors.New("the account is not a pending invitation")
	ErrNotActive        = errors.New("the officer has not accepted the invitation yet")
	ErrAlreadyDisabled  = errors.New("the account is already disabled")
	ErrNotDisabled      = errors.New("the account is not disabled")
)

// adminError carries an admin-facing sentence and the sentinel it stands for.
type adminError struct {
	sentinel error
	msg      string
}

func (e *adminError) Error() string { return e.msg }
func (e *adminError) Unwrap() error { return e.sentinel }

func refuseAdmin(sentinel error, format string, a ...any) error {
	return &adminError{sentinel: sentinel, msg: fmt.Sprintf(format, a...)}
}

// AccountChange is the outcome of an admin change to an account.
type AccountChange struct {
	User          *store.User // the account after the change
	SessionsEnded int
	WasLocked     bool           // Unlock: the account was locked
	Removed       RemovedFactors // ResetMFA: what was removed
}

// RemovedFactors are the second factors ResetMFA removed.
type RemovedFactors struct {
	TOTP          bool
	Passkeys      int
	Devices       int // phones paired with the approval app
	RecoveryCodes int
}

// Disable refuses every sign-in of the account until Enable, ends every
// session and revokes every token.
func (a *Admin) Disable(ctx context.Context, by store.Actor, email string) (*AccountChange, error) {
	return a.change(ctx, by, email, func(ctx context.Context, u *store.User, c *AccountChange) (store.Event, map[string]any, error) {
		if u.State == store.UserDisabled {
			return "", nil, refuseAdmin(ErrAlreadyDisabled, "%s is already disabled", u.Username)
		}
		prev := u.State
		u.State, u.UpdatedAt = store.UserDisabled, a.now().UTC()
		if err := a.store.UpdateUser(ctx, u); err != nil {
			return "", nil, fmt.Errorf("disable %s: %w", u.Username, err)
		}
		n, err := SignOutEverywhere(ctx, a.store, u.ID, "")
		if err != nil {
			return "", nil, err
		}
		c.SessionsEnded = n
		return store.EventUserDisable, map[string]any{"previous_state": prev, "sessions_ended": n}, nil
	})
}

// Enable gives a disabled account back the state it would have: active
// when the officer has ever finished a sign-in, else invited.
func (a *Admin) Enable(ctx context.Context, by store.Actor, email string) (*AccountChange, error) {
	return a.change(ctx, by, email, func(ctx context.Context, u *store.User, c *AccountChange) (store.Event, map[string]any, error) {
		if u.State != store.UserDisabled {
			return "", nil, refuseAdmin(ErrNotDisabled, "%s is not disabled (state %s)", u.Username, u.State)
		}
		u.State = store.UserInvited
		if !u.LastSignInAt.IsZero() {
			u.State = store.UserActive
		}
		u.UpdatedAt = a.now().UTC()
		if err := a.store.UpdateUser(ctx, u); err != nil {
			return "", nil, fmt.Errorf("enable %s: %w", u.Username, err)
		}
		return store.EventUserEnable, map[string]any{"state": u.State}, nil
	})
}

// Unlock forgets the account's failures and locks: the passwords' and the
// second factor's, and the day's cap of second-factor failures. Address
// locks stay (they protect against a guesser, whoever they target), and so
// do the locks of single browsers known to the account (they end by
// themselves, and never keep the officer's other browsers out).
func (a *Admin) Unlock(ctx context.Context, by store.Actor, email string) (*AccountChange, error) {
	return a.change(ctx, by, email, func(ctx context.Context, u *store.User, c *AccountChange) (store.Event, map[string]any, error) {
		until, _, err := a.AccountLock(ctx, u)
		if err != nil {
			return "", nil, err
		}
		if err := a.store.ResetThrottle(ctx, accountKeys(u)...); err != nil {
			return "", nil, fmt.Errorf("unlock %s: %w", u.Username, err)
		}
		c.WasLocked = !until.IsZero()
		return store.EventUserUnlock, map[string]any{"was_locked": c.WasLocked}, nil
	})
}

// ResetMFA removes every second factor (authenticator app, passkeys,
// phones paired with the approval app, recovery codes) and ends every
// session; with none left, the journey's
// mfa-enrol step is pending again at the next sign-in.
func (a *Admin) ResetMFA(ctx context.Context, by store.Actor, email string) (*AccountChange, error) {
	return a.change(ctx, by, email, func(ctx context.Context, u *store.User, c *AccountChange) (store.Event, map[string]any, error) {
		r := &c.Removed
		if _, err := a.store.TOTPByUser(ctx, u.ID); err == nil {
			r.TOTP = true
		} else if !errors.Is(err, store.ErrNotFound) {
			return "", nil, err
		}
		if err := a.store.DeleteTOTP(ctx, u.ID); err != nil {
			return "", nil, fmt.Errorf("reset-mfa %s: %w", u.Username, err)
		}
		n, err := a.store.RecoveryCodesLeft(ctx, u.ID)
		if err != nil {
			return "", nil, err
		}
		r.RecoveryCodes = n
		if err := a.store.DeleteRecoveryCodes(ctx, u.ID); err != nil {
			return "", nil, fmt.Errorf("reset-mfa %s: %w", u.Username, err)
		}
		creds, err := a.store.WebAuthnCredentials(ctx, u.ID)
		if err != nil {
			return "", nil, err
		}
		for _, cr := range creds {
			if err := a.store.DeleteWebAuthnCredential(ctx, u.ID, cr.ID); err != nil {
				return "", nil, fmt.Errorf("reset-mfa %s: %w", u.Username, err)
			}
		}
		r.Passkeys = len(creds)
		if r.Devices, err = a.store.DeleteApprovalDevices(ctx, u.ID); err != nil {
			return "", nil, fmt.Errorf("reset-mfa %s: %w", u.Username, err)
		}
		if c.SessionsEnded, err = SignOutEverywhere(ctx, a.store, u.ID, ""); err != nil {
			return "", nil, err
		}
		return store.EventUserResetMFA, map[string]any{
			"totp": r.TOTP, "passkeys": r.Passkeys, "approval_devices": r.Devices, "recovery_codes": r.RecoveryCodes, "sessions_ended": c.SessionsEnded}, nil
	})
}

// SignOutEverywhere ends every session of the account and revokes every
// token issued to it (SignOutEverywhere, the function, is the one place
// that does it; the account page calls it too).
func (a *Admin) SignOutEverywhere(ctx context.Context, by store.Actor, email string) (*AccountChange, error) {
	return a.change(ctx, by, email, func(ctx context.Context, u *store.User, c *AccountChange) (store.Event, map[string]any, error) {
		n, err := SignOutEverywhere(ctx, a.store, u.ID, "")
		if err != nil {
			return "", nil, err
		}
		c.SessionsEnded = n
		return store.EventUserSignOut, map[string]any{"sessions_ended": n}, nil
	})
}

// change runs one change to the account at email in a transaction with its
// audit event: fn changes u, fills c and names the event and its detail.
func (a *Admin) change(ctx context.Context, by store.Actor, email string,
	fn func(ctx context.Context, u *store.User, c *AccountChange) (store.Event, map[string]any, error)) (*AccountChange, error) {
	if by == "" {
		return nil, errNoActor
	}
	var c *AccountChange
	err := a.inTx(ctx, func(ctx context.Context) error {
		u, err := a.Account(ctx, email)
		if err != nil {
			return err
		}
		c = &AccountChange{User: u}
		ev, detail, err := fn(ctx, u, c)
		if err != nil {
			return err
		}
		return a.audit(ctx, ev, by, u, detail)
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Account finds the account at email (refused with ErrNoAccount when there
// is none).
func (a *Admin) Account(ctx context.Context, email string) (*store.User, error) {
	username, err := CanonicalUsername(email)
	if err != nil {
		return nil, err
	}
	u, err := a.store.UserByUsername(ctx, username)
	if errors.Is(err, store.ErrNotFound) {
		return nil, refuseAdmin(ErrNoAccount, "there is no account for %s", username)
	}
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", username, err)
	}
	return u, nil
}

// AccountLock is when the account's lock ends (zero: not locked now) and
// its most recent failure count.
func (a *Admin) AccountLock(ctx context.Context, u *store.User) (until time.Time, failures int, err error) {
	now := a.now().UTC()
	for _, k := range accountKeys(u) {
		t, err := a.store.GetThrottle(ctx, k)
		if err != nil {
			return time.Time{}, 0, fmt.Errorf("read throttle: %w", err)
		}
		if t.LockedUntil.After(now) && t.LockedUntil.After(until) {
			until = t.LockedUntil
		}
		if strings.HasPrefix(k, keyFactorPerDay) {
			// The daily cap refuses second factors without a lock of its own.
			if end := dayCapEnd(t, a.cfg.Throttle.SecondFactorDailyCap, now); end.After(until) {
				until = end
			}
		}
		failures = max(failures, t.Failures)
	}
	return until, failures, nil
}

// ActorName is who made a change, for a person to read: an admin acting
// in the console (whose actor is their user id) by their address; "cli",
// "automatic" and the like as they are.
func (a *Admin) ActorName(ctx context.Context, actor string) string {
	switch store.Actor(actor) {
	case "", store.ActorCLI, store.ActorAutomatic, store.ActorSIGHUP:
		return actor
	}
	if u, err := a.store.UserByID(ctx, actor); err == nil {
		return u.Username
	}
	return actor
}

// errNoActor refuses a change nobody is recorded as making.
var errNoActor = errors.New("flows: an admin change needs its actor")

// audit appends the event of an admin change, with who made it, in ctx's
// transaction: the change and its record are stored together or not at all.
func (a *Admin) audit(ctx context.Context, ev store.Event, by store.Actor, u *store.User, detail map[string]any) error {
	if detail == nil {
		detail = map[string]any{}
	}
	detail["by"] = by
	d, err := json.Marshal(detail)
	if err != nil {
		return fmt.Errorf("audit %s: %w", ev, err)
	}
	e := &store.AuditEvent{At: a.now().UTC(), Event: ev, Detail: d}
	if u != nil {
		e.UserID, e.Username = u.ID, u.Username
	}
	if o, ok := ctx.Value(originKey{}).(origin); ok {
		e.ClientAddr, e.UserAgent = o.addr, o.agent
	}
	return a.store.AppendAudit(ctx, e)
}

// origin is where a change made through a web page came from: the client
// address and user agent its audit event records (the commands have none).
type origin struct{ addr, agent string }

type originKey struct{}

// withOrigin carries r's client address and user agent to the audit events
// the admin service writes for it.
func withOrigin(ctx context.Context, r *http.Request) context.Context {
	return context.WithValue(ctx, originKey{}, origin{addr: clientAddr(r), agent: truncate(r.UserAgent(), 256)})
}

// inTx runs fn in a transaction, again when the database aborted it for a
// concurrent one.
func (a *Admin) inTx(ctx context.Context, fn func(ctx context.Context) error) error {
	return retry(ctx, func() error { return a.store.InTx(ctx, fn) })
}
