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
)

// inviteError carries an admin-facing sentence and the sentinel it stands for.
type inviteError struct {
	sentinel error
	msg      string
}

func (e *inviteError) Error() string { return e.msg }
func (e *inviteError) Unwrap() error { return e.sentinel }

func refuse(sentinel error, format string, a ...any) error {
	return &inviteError{sentinel: sentinel, msg: fmt.Sprintf(format, a...)}
}

// Audit events of invitations.
const (
	AuditInvite           = "invite"
	AuditInviteResend     = "invite.resend"
	AuditInviteMailFailed = "invite.mail_failed"
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
}

// Invitation is the outcome of Invite. InitialPassword is for the admin's
// terminal only when asked (--show-password); it is never logged.
type Invitation struct {
	Username        string
	Name            string
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
	inv := &Invitation{Username: username, Name: name, InitialPassword: initial, ExpiresAt: now.Add(validFor), Resent: resend}

	var user *store.User
	for attempt := 1; ; attempt++ {
		user, err = iv.record(ctx, inv, hash, now)
		if !errors.Is(err, store.ErrSerialization) || attempt == txAttempts {
			break
		}
		// Back off a little, with jitter, so racing invitations do not
		// collide again in lockstep.
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(attempt*10+mrand.IntN(20)) * time.Millisecond):
		}
	}
	if err != nil {
		return nil, err
	}
	inv.Name = user.Name

	iv.logger().InfoContext(ctx, "invitation recorded", "username", username, "user_id", user.ID,
		"resent", resend, "expires_at", inv.ExpiresAt.Format(time.RFC3339))

	if err := iv.sendOnboarding(ctx, inv, signIn); err != nil {
		inv.MailErr = err
		iv.logger().WarnContext(ctx, "onboarding email not sent; the invitation stays valid", "username", username, "err", err)
		// The audit line must be written even when ctx ran out sending the mail.
		if aerr := iv.Store.AppendAudit(context.WithoutCancel(ctx), &store.AuditEvent{
			At: iv.now(), Event: AuditInviteMailFailed, UserID: user.ID, Username: username,
			Detail: detail(map[string]string{"error": err.Error()}),
		}); aerr != nil {
			iv.logger().ErrorContext(ctx, "audit of the mail failure not written", "username", username, "err", aerr)
		}
		return inv, nil
	}
	iv.logger().InfoContext(ctx, "onboarding email sent", "username", username)
	return inv, nil
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
			return refuse(ErrNoInvitation, "there is no invitation for %s to resend: invite the officer without --resend", inv.Username)
		case existing == nil:
			id, err := newUserID()
			if err != nil {
				return err
			}
			user = &store.User{
				ID: id, Username: inv.Username, Email: inv.Username, Name: inv.Name,
				State: store.UserInvited, PasswordHash: hash, PasswordInitial: true,
				InviteExpiresAt: inv.ExpiresAt, CreatedAt: now, UpdatedAt: now,
			}
			if err := iv.Store.CreateUser(ctx, user); err != nil {
				if errors.Is(err, store.ErrConflict) {
					// Another invitation of the same address won the race.
					return refuse(ErrAlreadyInvited, "%s was invited at the same moment by another command; to issue a new initial password, run: lanyard invite --resend %s", inv.Username, inv.Username)
				}
				return fmt.Errorf("invite %s: create user: %w", inv.Username, err)
			}
		case existing.State == store.UserActive:
			return refuse(ErrAlreadyActive, "%s already has an active account: there is nothing to invite", inv.Username)
		case existing.State == store.UserDisabled:
			return refuse(ErrAccountDisabled, "%s has a disabled account: enable it instead of inviting the officer again", inv.Username)
		case !inv.Resent:
			until := ""
			if !existing.InviteExpiresAt.IsZero() {
				verb := "is valid until"
				if !existing.InviteExpiresAt.After(now) {
					verb = "expired on"
				}
				until = fmt.Sprintf(" (the invitation %s %s)", verb, existing.InviteExpiresAt.UTC().Format(dateLayout))
			}
			return refuse(ErrAlreadyInvited, "%s is already invited%s; to send a new initial password and expiry, run: lanyard invite --resend %s", inv.Username, until, inv.Username)
		default:
			// Resend: conditional on the stored hash, so of two racing
			// resends exactly one wins and only its email carries a working
			// password.
			if err := iv.Store.ChangePassword(ctx, existing.ID, existing.PasswordHash, hash, true); err != nil {
				if errors.Is(err, store.ErrConflict) {
					return refuse(ErrAlreadyInvited, "the invitation of %s was changed at the same moment by another command; run the command again if needed", inv.Username)
				}
				return fmt.Errorf("invite %s: replace initial password: %w", inv.Username, err)
			}
			user = existing
			user.PasswordHash, user.PasswordInitial = hash, true
			user.InviteExpiresAt, user.UpdatedAt = inv.ExpiresAt, now
			if inv.Name != "" {
				user.Name = inv.Name
			}
			if err := iv.Store.UpdateUser(ctx, user); err != nil {
				return fmt.Errorf("invite %s: update user: %w", inv.Username, err)
			}
			event = AuditInviteResend
		}
		return iv.Store.AppendAudit(ctx, &store.AuditEvent{
			At: now, Event: event, UserID: user.ID, Username: user.Username,
			Detail: detail(map[string]string{"expires_at": inv.ExpiresAt.Format(time.RFC3339)}),
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
			return refuse(ErrRefusedMailbox, "%s is a LiteMail-style mailbox (it matches %q); invite the officer's standard mailbox", username, pat)
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
		return refuse(ErrDomainNotAllowed, "%s is not an allowed domain: no domain is allowed yet; add the organisation's domain to invitations.allowed_domains", domain)
	}
	return refuse(ErrDomainNotAllowed, "%s is not an allowed domain: invite the officer's organisational address (allowed: %s)", domain, strings.Join(allowed, ", "))
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
