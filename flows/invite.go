package flows

// Invitations: an admin invites an officer by email address (lanyard invite).
// The account and its audit event are written in one transaction; the
// onboarding email is sent after the commit, so a mail failure never undoes
// an invitation, and an invitation is never half-created.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	netmail "net/mail"
	"net/url"
	"path"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/flows/mail"
	"github.com/lanyard-idp/lanyard/flows/password"
	"github.com/lanyard-idp/lanyard/provider/store"
	"github.com/lanyard-idp/lanyard/templates"
)

// Errors of Invite, for the admin who ran the command. Each returned error
// wraps one of them and says what to do in a full sentence.
var (
	ErrDomainNotAllowed = errors.New("the address is not in an allowed domain (invitations.allowed_domains)")
	ErrRefusedMailbox   = errors.New("the address is a refused mailbox (invitations.refused_mailboxes)")
	ErrAlreadyActive    = errors.New("the officer already has an active account")
	ErrAlreadyInvited   = errors.New("the officer already has a pending invitation; use --resend to issue a new one")
	ErrNoInvitation     = errors.New("there is no pending invitation to resend")
	ErrAccountDisabled  = errors.New("the officer's account is disabled")
	ErrBadName          = errors.New("the name must be one line of at most 200 characters")
	ErrNoAccount        = errors.New("there is no account for that address")
	ErrNotInvited       = errors.New("the account is not a pending invitation")
	ErrNotActive        = errors.New("the officer has not accepted the invitation yet")
)

// inviteError carries an admin-facing sentence and the sentinel it stands for.
type inviteError struct {
	sentinel error
	msg      string
}

func (e *inviteError) Error() string { return e.msg }
func (e *inviteError) Unwrap() error { return e.sentinel }

func refuseInvite(sentinel error, format string, a ...any) error {
	return &inviteError{sentinel: sentinel, msg: fmt.Sprintf(format, a...)}
}

// Audit events of invitations.
const (
	AuditInvite           = "invite"
	AuditInviteResend     = "invite.resend"
	AuditInviteMailFailed = "invite.mail_failed"
	AuditInviteRevoke     = "invite.revoke"
	// An admin's password reset (lanyard user reset-password), and the
	// failure of its email.
	AuditResetPassword           = "admin.user.reset_password"
	AuditResetPasswordMailFailed = "admin.user.reset_password.mail_failed"
)

const (
	defaultInviteValidity = 30 * 24 * time.Hour
	maxNameRunes          = 200
	// txAttempts bounds the retries of an invitation's transaction when the
	// database aborts it for a concurrent one (SQLite BUSY, PostgreSQL 40001).
	// The retry sees the winner's row and answers "already invited".
	txAttempts = 5
)

// Inviter creates invitations and sends the onboarding email.
type Inviter struct {
	Config *config.Config
	Store  *store.Store
	Mailer mail.Mailer
	Pages  *templates.Set
	Now    func() time.Time
	Logger *slog.Logger
	// Actor, when set, is recorded as "by" in the detail of every audit
	// event the Inviter writes ("cli" for the admin commands).
	Actor string
}

// Invitation is the outcome of Invite. InitialPassword is for the admin's
// terminal only when asked (--show-password); it is never logged.
type Invitation struct {
	Username        string
	Name            string
	GivenName       string // OIDC given_name ("" when unknown)
	FamilyName      string // OIDC family_name ("" when unknown)
	InitialPassword string
	ExpiresAt       time.Time
	Resent          bool
	// MailErr is set when the invitation is recorded but the onboarding email
	// could not be sent; `lanyard invite --resend` issues a new one.
	MailErr error
}

// OnboardingMail is the data of templates/mail/onboarding.{txt,html}.
type OnboardingMail struct {
	Product         string // cfg.Journey.DisplayName
	Environment     string // cfg.Journey.Environment ("" in production)
	Name            string
	Username        string
	InitialPassword string
	SignInURL       string // built from the configured issuer only
	ExpiresOn       string // "Monday 26 December 2026" (UTC)
	ExpiresTime     string // "09:30" (UTC)
}

// Invite invites the officer at email, or with resend issues a new initial
// password and expiry for a pending invitation (the old password stops
// working). Bad input and refused addresses return an error and write
// nothing. The onboarding email is sent after the invitation is committed; its
// failure is reported in Invitation.MailErr, not as the error.
func (iv *Inviter) Invite(ctx context.Context, email, name string, resend bool) (*Invitation, error) {
	return iv.InviteNamed(ctx, email, Names{Full: name}, resend)
}

// Names are an officer's names: Full as the email greets them, Given and
// Family for the OIDC given_name and family_name claims.
type Names struct{ Full, Given, Family string }

// SplitName derives the given and family names from a full name where that
// is unambiguous: exactly two words ("Alice Martin"). Otherwise both are ""
// (Lanyard does not guess which of "Maria de la Cruz" is the family name).
func SplitName(full string) (given, family string) {
	if f := strings.Fields(full); len(f) == 2 {
		return f[0], f[1]
	}
	return "", ""
}

// InviteNamed is Invite with given and family names. A missing full name is
// the given and family names together; missing given and family names are
// derived from the full name when that is unambiguous (SplitName).
func (iv *Inviter) InviteNamed(ctx context.Context, email string, names Names, resend bool) (*Invitation, error) {
	var err error
	for _, n := range []*string{&names.Full, &names.Given, &names.Family} {
		if *n, err = cleanName(*n); err != nil {
			return nil, err
		}
	}
	if names.Full == "" {
		names.Full = strings.TrimSpace(names.Given + " " + names.Family)
	}
	if names.Given == "" && names.Family == "" {
		names.Given, names.Family = SplitName(names.Full)
	}
	name := names.Full
	if iv.Config == nil || iv.Store == nil || iv.Mailer == nil || iv.Pages == nil {
		return nil, errors.New("invite: the Inviter is missing its config, store, mailer or templates")
	}
	signIn, err := signInURL(iv.Config.Issuer)
	if err != nil {
		return nil, err
	}
	username, err := CanonicalUsername(email)
	if err != nil {
		return nil, err
	}
	name, err = cleanName(name)
	if err != nil {
		return nil, err
	}
	if err := iv.checkAddress(username); err != nil {
		return nil, err
	}

	initial := password.Generate()
	hash, err := password.Hash(initial)
	if err != nil {
		return nil, fmt.Errorf("invite %s: %w", username, err)
	}
	now := iv.now()
	validFor := iv.Config.Invitations.ValidFor.D()
	if validFor <= 0 {
		validFor = defaultInviteValidity
	}
	inv := &Invitation{Username: username, Name: name, GivenName: names.Given, FamilyName: names.Family,
		InitialPassword: initial, ExpiresAt: now.Add(validFor), Resent: resend}

	var user *store.User
	err = retry(ctx, func() (err error) {
		user, err = iv.record(ctx, inv, hash, now)
		return err
	})
	if err != nil {
		return nil, err
	}
	inv.Name, inv.GivenName, inv.FamilyName = user.Name, user.GivenName, user.FamilyName

	iv.logger().InfoContext(ctx, "invitation recorded", "username", username, "user_id", user.ID,
		"resent", resend, "expires_at", inv.ExpiresAt.Format(time.RFC3339))

	if err := iv.sendOnboarding(ctx, inv, signIn); err != nil {
		inv.MailErr = err
		iv.logger().WarnContext(ctx, "onboarding email not sent; the invitation stays valid", "username", username, "err", err)
		// The audit line must be written even when ctx ran out sending the mail.
		if aerr := iv.Store.AppendAudit(context.WithoutCancel(ctx), &store.AuditEvent{
			At: iv.now(), Event: AuditInviteMailFailed, UserID: user.ID, Username: username,
			Detail: iv.detail(map[string]string{"error": err.Error()}),
		}); aerr != nil {
			iv.logger().ErrorContext(ctx, "audit of the mail failure not written", "username", username, "err", aerr)
		}
		return inv, nil
	}
	iv.logger().InfoContext(ctx, "onboarding email sent", "username", username)
	return inv, nil
}

// retry runs fn again when the database aborted its transaction for a
// concurrent one, up to txAttempts times.
func retry(ctx context.Context, fn func() error) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		if !errors.Is(err, store.ErrSerialization) || attempt == txAttempts {
			return err
		}
		// Back off a little, with jitter, so racing commands do not collide
		// again in lockstep.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt*10+mrand.IntN(20)) * time.Millisecond):
		}
	}
}

// record writes the user (new, or with the new initial password on resend)
// and the audit event in one transaction, deciding from what is stored inside
// that same transaction.
func (iv *Inviter) record(ctx context.Context, inv *Invitation, hash string, now time.Time) (*store.User, error) {
	var user *store.User
	err := iv.Store.InTx(ctx, func(ctx context.Context) error {
		existing, err := iv.Store.UserByUsername(ctx, inv.Username)
		switch {
		case errors.Is(err, store.ErrNotFound):
			existing = nil
		case err != nil:
			return fmt.Errorf("invite %s: look up user: %w", inv.Username, err)
		}
		event := AuditInvite
		switch {
		case existing == nil && inv.Resent:
			return refuseInvite(ErrNoInvitation, "there is no invitation for %s to resend: invite the officer without --resend", inv.Username)
		case existing == nil:
			id, err := newUserID()
			if err != nil {
				return err
			}
			user = &store.User{
				ID: id, Username: inv.Username, Email: inv.Username, Name: inv.Name,
				GivenName: inv.GivenName, FamilyName: inv.FamilyName, State: store.UserInvited, PasswordHash: hash, PasswordInitial: true,
				InviteExpiresAt: inv.ExpiresAt, CreatedAt: now, UpdatedAt: now,
			}
			if err := iv.Store.CreateUser(ctx, user); err != nil {
				if errors.Is(err, store.ErrConflict) {
					// Another invitation of the same address won the race.
					return refuseInvite(ErrAlreadyInvited, "%s was invited at the same moment by another command; to issue a new initial password, run: lanyard invite --resend %s", inv.Username, inv.Username)
				}
				return fmt.Errorf("invite %s: create user: %w", inv.Username, err)
			}
		case existing.State == store.UserActive:
			return refuseInvite(ErrAlreadyActive, "%s already has an active account: there is nothing to invite", inv.Username)
		case existing.State == store.UserDisabled:
			return refuseInvite(ErrAccountDisabled, "%s has a disabled account: enable it instead of inviting the officer again", inv.Username)
		case !inv.Resent:
			until := ""
			if !existing.InviteExpiresAt.IsZero() {
				verb := "is valid until"
				if !existing.InviteExpiresAt.After(now) {
					verb = "expired on"
				}
				until = fmt.Sprintf(" (the invitation %s %s)", verb, existing.InviteExpiresAt.UTC().Format(dateLayout))
			}
			return refuseInvite(ErrAlreadyInvited, "%s is already invited%s; to send a new initial password and expiry, run: lanyard invite --resend %s", inv.Username, until, inv.Username)
		default:
			// Resend: conditional on the stored hash, so of two racing
			// resends exactly one wins and only its email carries a working
			// password.
			if err := iv.Store.ChangePassword(ctx, existing.ID, existing.PasswordHash, hash, true); err != nil {
				if errors.Is(err, store.ErrConflict) {
					return refuseInvite(ErrAlreadyInvited, "the invitation of %s was changed at the same moment by another command; run the command again if needed", inv.Username)
				}
				return fmt.Errorf("invite %s: replace initial password: %w", inv.Username, err)
			}
			user = existing
			user.PasswordHash, user.PasswordInitial = hash, true
			user.InviteExpiresAt, user.UpdatedAt = inv.ExpiresAt, now
			if inv.Name != "" {
				user.Name, user.GivenName, user.FamilyName = inv.Name, inv.GivenName, inv.FamilyName
			}
			if err := iv.Store.UpdateUser(ctx, user); err != nil {
				return fmt.Errorf("invite %s: update user: %w", inv.Username, err)
			}
			event = AuditInviteResend
		}
		return iv.Store.AppendAudit(ctx, &store.AuditEvent{
			At: now, Event: event, UserID: user.ID, Username: user.Username,
			Detail: iv.detail(map[string]string{"expires_at": inv.ExpiresAt.Format(time.RFC3339)}),
		})
	})
	if err != nil {
		return nil, err
	}
	return user, nil
}

// checkAddress applies the refused-mailbox patterns, then the allowed
// domains. The patterns come first: a LiteMail address is usually also outside
// the allowed domains, and "use the standard mailbox" is the useful answer.
func (iv *Inviter) checkAddress(username string) error {
	for _, pat := range iv.Config.Invitations.RefusedMailboxes {
		ok, err := path.Match(strings.ToLower(strings.TrimSpace(pat)), username)
		if err != nil {
			// Fail closed: a broken pattern must not let every address through.
			return fmt.Errorf("invitations.refused_mailboxes: pattern %q is malformed: %w", pat, err)
		}
		if ok {
			return refuseInvite(ErrRefusedMailbox, "%s is a LiteMail-style mailbox (it matches %q); invite the officer's standard mailbox", username, pat)
		}
	}
	_, domain, _ := strings.Cut(username, "@")
	allowed := make([]string, 0, len(iv.Config.Invitations.AllowedDomains))
	for _, d := range iv.Config.Invitations.AllowedDomains {
		d = strings.ToLower(strings.TrimSpace(d))
		if d == domain {
			return nil
		}
		allowed = append(allowed, d)
	}
	if len(allowed) == 0 {
		return refuseInvite(ErrDomainNotAllowed, "%s is not an allowed domain: no domain is allowed yet; add the organisation's domain to invitations.allowed_domains", domain)
	}
	return refuseInvite(ErrDomainNotAllowed, "%s is not an allowed domain: invite the officer's organisational address (allowed: %s)", domain, strings.Join(allowed, ", "))
}

// dateLayout is how dates read in emails and messages: "Monday 26 December 2026".
const dateLayout = "Monday 2 January 2006"

// sendOnboarding renders and sends the onboarding email.
func (iv *Inviter) sendOnboarding(ctx context.Context, inv *Invitation, signIn string) error {
	product := iv.Config.Journey.DisplayName
	if product == "" {
		product = "Lanyard"
	}
	exp := inv.ExpiresAt.UTC()
	subject, text, html, err := iv.Pages.Mail("onboarding", OnboardingMail{
		Product:         product,
		Environment:     iv.Config.Journey.Environment,
		Name:            inv.Name,
		Username:        inv.Username,
		InitialPassword: inv.InitialPassword,
		SignInURL:       signIn,
		ExpiresOn:       exp.Format(dateLayout),
		ExpiresTime:     exp.Format("15:04"),
	})
	if err != nil {
		return err
	}
	to := inv.Username
	if inv.Name != "" {
		to = (&netmail.Address{Name: inv.Name, Address: inv.Username}).String()
	}
	return iv.Mailer.Send(ctx, mail.Message{To: to, Subject: subject, Text: text, HTML: html})
}

// signInURL is the issuer's sign-in page. It is built from the configured
// issuer and nothing else: a link in an email must never depend on the Host
// or X-Forwarded-* headers of some request.
func signInURL(issuer string) (string, error) {
	u, err := url.Parse(issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("invite: the issuer %q is not an absolute http(s) URL; fix issuer in the configuration", issuer)
	}
	return strings.TrimRight(issuer, "/") + "/signin", nil
}

// cleanName trims the officer's name and refuses what would break a mail
// header or a greeting: control characters (line breaks) and excessive length.
func cleanName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > maxNameRunes || strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return "", ErrBadName
	}
	return name, nil
}

// newUserID is a random 128-bit id, hex-encoded: the OIDC sub, which must
// never be reassigned or guessable.
func newUserID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("invite: user id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

func detail(m map[string]string) []byte {
	b, _ := json.Marshal(m) // a map of strings always marshals
	return b
}

// detail is the audit detail m plus who acted, when the Inviter knows.
func (iv *Inviter) detail(m map[string]string) []byte {
	if iv.Actor != "" {
		m["by"] = iv.Actor
	}
	return detail(m)
}

func (iv *Inviter) now() time.Time {
	if iv.Now == nil {
		return time.Now().UTC()
	}
	return iv.Now().UTC()
}

func (iv *Inviter) logger() *slog.Logger {
	if iv.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return iv.Logger
}

// Invitation statuses, as `lanyard invite list` shows them.
const (
	InvitePending  = "pending"  // invited; the initial password still works
	InviteExpired  = "expired"  // invited; the initial password no longer works
	InviteAccepted = "accepted" // the officer finished the first sign-in
	InviteDisabled = "disabled" // the account is disabled
)

// InvitationStatus is one account as seen from its invitation.
type InvitationStatus struct {
	Username  string
	Name      string
	Status    string    // InvitePending | InviteExpired | InviteAccepted | InviteDisabled
	InvitedAt time.Time // when the account was created
	// ExpiresAt is when the initial password stops working (zero: accepted
	// accounts, whose password is their own).
	ExpiresAt    time.Time
	LastSignInAt time.Time
}

// List returns every account with the status of its invitation, by username.
func (iv *Inviter) List(ctx context.Context) ([]InvitationStatus, error) {
	if iv.Store == nil {
		return nil, errors.New("invite: the Inviter has no store")
	}
	users, err := iv.Store.ListUsers(ctx, "", "")
	if err != nil {
		return nil, fmt.Errorf("list invitations: %w", err)
	}
	now := iv.now()
	out := make([]InvitationStatus, 0, len(users))
	for _, u := range users {
		st := InvitationStatus{Username: u.Username, Name: u.Name, InvitedAt: u.CreatedAt, LastSignInAt: u.LastSignInAt}
		switch u.State {
		case store.UserInvited:
			st.Status, st.ExpiresAt = InvitePending, u.InviteExpiresAt
			if !u.InviteExpiresAt.IsZero() && !now.Before(u.InviteExpiresAt) {
				st.Status = InviteExpired
			}
		case store.UserDisabled:
			st.Status = InviteDisabled
		default:
			st.Status = InviteAccepted
		}
		out = append(out, st)
	}
	return out, nil
}

// Revoke withdraws a pending (or expired) invitation: the account, which was
// never activated, is deleted with its sessions and anything it enrolled, so
// the initial password no longer works and the address can be invited
// afresh. The audit trail keeps the invitation and its revocation. An
// accepted account is refused: disable it instead.
func (iv *Inviter) Revoke(ctx context.Context, email string) (*store.User, error) {
	if iv.Store == nil {
		return nil, errors.New("invite: the Inviter has no store")
	}
	username, err := CanonicalUsername(email)
	if err != nil {
		return nil, err
	}
	var user *store.User
	err = retry(ctx, func() error {
		return iv.Store.InTx(ctx, func(ctx context.Context) error {
			u, err := iv.Store.UserByUsername(ctx, username)
			if errors.Is(err, store.ErrNotFound) {
				return refuseInvite(ErrNoInvitation, "there is no invitation for %s to revoke", username)
			}
			if err != nil {
				return fmt.Errorf("revoke %s: look up user: %w", username, err)
			}
			if u.State != store.UserInvited {
				return refuseInvite(ErrNotInvited, "%s is not a pending invitation (the account is %s): disable the account instead: lanyard user disable %s", username, u.State, username)
			}
			if err := iv.Store.DeleteUser(ctx, u.ID); err != nil {
				return fmt.Errorf("revoke %s: delete account: %w", username, err)
			}
			user = u
			return iv.Store.AppendAudit(ctx, &store.AuditEvent{
				At: iv.now(), Event: AuditInviteRevoke, UserID: u.ID, Username: u.Username,
				Detail: iv.detail(map[string]string{}),
			})
		})
	})
	if err != nil {
		return nil, err
	}
	iv.logger().InfoContext(ctx, "invitation revoked", "username", username, "user_id", user.ID)
	return user, nil
}

// PasswordResetMail is the data of templates/mail/password-reset.{txt,html}.
type PasswordResetMail = OnboardingMail

// ResetPassword gives an active officer a new initial password by email,
// as after an invitation: it works until the invitation validity runs out,
// and the journey asks for a new password at the next sign-in (enrolled
// factors stay). Every session of the officer ends and every token is
// revoked. Refused for invited accounts (use Invite with resend) and
// disabled ones. As with Invite, the change and its audit event are
// committed first; a mail failure is reported in Invitation.MailErr.
func (iv *Inviter) ResetPassword(ctx context.Context, email string) (*Invitation, error) {
	if iv.Config == nil || iv.Store == nil || iv.Mailer == nil || iv.Pages == nil {
		return nil, errors.New("reset password: the Inviter is missing its config, store, mailer or templates")
	}
	signIn, err := signInURL(iv.Config.Issuer)
	if err != nil {
		return nil, err
	}
	username, err := CanonicalUsername(email)
	if err != nil {
		return nil, err
	}
	initial := password.Generate()
	hash, err := password.Hash(initial)
	if err != nil {
		return nil, fmt.Errorf("reset password of %s: %w", username, err)
	}
	now := iv.now()
	validFor := iv.Config.Invitations.ValidFor.D()
	if validFor <= 0 {
		validFor = defaultInviteValidity
	}
	inv := &Invitation{Username: username, InitialPassword: initial, ExpiresAt: now.Add(validFor)}
	var user *store.User
	var ended int
	err = retry(ctx, func() error {
		return iv.Store.InTx(ctx, func(ctx context.Context) error {
			u, err := iv.Store.UserByUsername(ctx, username)
			if errors.Is(err, store.ErrNotFound) {
				return refuseInvite(ErrNoAccount, "there is no account for %s", username)
			}
			if err != nil {
				return fmt.Errorf("reset password of %s: look up user: %w", username, err)
			}
			switch u.State {
			case store.UserInvited:
				return refuseInvite(ErrNotActive, "%s has not accepted the invitation yet: send a new one with: lanyard invite --resend %s", username, username)
			case store.UserDisabled:
				return refuseInvite(ErrAccountDisabled, "%s has a disabled account: enable it first (lanyard user enable %s)", username, username)
			}
			if err := iv.Store.ChangePassword(ctx, u.ID, u.PasswordHash, hash, true); err != nil {
				if errors.Is(err, store.ErrConflict) {
					return fmt.Errorf("the password of %s was changed at the same moment by another request; run the command again", username)
				}
				return fmt.Errorf("reset password of %s: %w", username, err)
			}
			u.PasswordHash, u.PasswordInitial = hash, true
			u.InviteExpiresAt, u.UpdatedAt = inv.ExpiresAt, now
			if err := iv.Store.UpdateUser(ctx, u); err != nil {
				return fmt.Errorf("reset password of %s: update user: %w", username, err)
			}
			refs, err := iv.Store.DeleteUserSessions(ctx, u.ID, "")
			if err != nil {
				return fmt.Errorf("reset password of %s: end sessions: %w", username, err)
			}
			if err := iv.Store.RevokeOAuthBySubject(ctx, u.ID); err != nil {
				return fmt.Errorf("reset password of %s: revoke tokens: %w", username, err)
			}
			user, ended = u, len(refs)
			return iv.Store.AppendAudit(ctx, &store.AuditEvent{
				At: now, Event: AuditResetPassword, UserID: u.ID, Username: u.Username,
				Detail: iv.detail(map[string]string{"expires_at": inv.ExpiresAt.Format(time.RFC3339), "sessions_ended": fmt.Sprint(len(refs))}),
			})
		})
	})
	if err != nil {
		return nil, err
	}
	inv.Name = user.Name
	iv.logger().InfoContext(ctx, "password reset by an admin", "username", username, "user_id", user.ID, "sessions_ended", ended)
	if err := iv.sendReset(ctx, inv, signIn); err != nil {
		inv.MailErr = err
		iv.logger().WarnContext(ctx, "password reset email not sent", "username", username, "err", err)
		if aerr := iv.Store.AppendAudit(context.WithoutCancel(ctx), &store.AuditEvent{
			At: iv.now(), Event: AuditResetPasswordMailFailed, UserID: user.ID, Username: username,
			Detail: iv.detail(map[string]string{"error": err.Error()}),
		}); aerr != nil {
			iv.logger().ErrorContext(ctx, "audit of the mail failure not written", "username", username, "err", aerr)
		}
	}
	return inv, nil
}

// sendReset sends the new initial password (templates/mail/password-reset).
func (iv *Inviter) sendReset(ctx context.Context, inv *Invitation, signIn string) error {
	product := iv.Config.Journey.DisplayName
	if product == "" {
		product = "Lanyard"
	}
	exp := inv.ExpiresAt.UTC()
	data := PasswordResetMail{
		Product: product, Environment: iv.Config.Journey.Environment, Name: inv.Name, Username: inv.Username,
		InitialPassword: inv.InitialPassword, SignInURL: signIn,
		ExpiresOn: exp.Format(dateLayout), ExpiresTime: exp.Format("15:04"),
	}
	subject, text, html, err := iv.Pages.Mail("password-reset", data)
	if err != nil {
		return err
	}
	to := inv.Username
	if inv.Name != "" {
		to = (&netmail.Address{Name: inv.Name, Address: inv.Username}).String()
	}
	return iv.Mailer.Send(ctx, mail.Message{To: to, Subject: subject, Text: text, HTML: html})
}
