package flows

// Invitations and initial passwords, on the admin service: an admin invites
// an officer by email address (lanyard invite), issues a new initial
// password for a pending invitation (--resend) or for an active account
// (lanyard user reset-password), or withdraws an invitation (--revoke). The
// account and its audit event are written in one transaction; the email is
// sent after the commit, so a mail failure never undoes the change, and a
// change is never half-made.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	netmail "net/mail"
	"net/url"
	"path"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"

	"github.com/lanyard-idp/lanyard/flows/mail"
	"github.com/lanyard-idp/lanyard/flows/password"
	"github.com/lanyard-idp/lanyard/provider/store"
)

const (
	maxNameRunes = 200
	// txAttempts bounds the retries of an admin change's transaction when
	// the database aborts it for a concurrent one (SQLite BUSY, PostgreSQL
	// 40001). The retry sees the winner's row and answers accordingly
	// ("already invited").
	txAttempts = 5
)

// Invitation is the outcome of Invite, Resend and ResetPassword.
// InitialPassword is for the admin's terminal only when asked
// (--show-password); it is never logged.
type Invitation struct {
	Username        string
	Name            string
	GivenName       string // OIDC given_name ("" when unknown)
	FamilyName      string // OIDC family_name ("" when unknown)
	InitialPassword string
	ExpiresAt       time.Time
	Resent          bool
	// MailErr is set when the change is recorded but the email could not be
	// sent; running the command again issues a new initial password.
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

// PasswordResetMail is the data of templates/mail/password-reset.{txt,html}.
type PasswordResetMail = OnboardingMail

// Names are an officer's names: Full as the email greets them, Given and
// Family for the OIDC given_name and family_name claims. A missing Full is
// Given and Family together; missing Given and Family are derived from Full
// where that is unambiguous (SplitName).
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

// clean checks each name (one line, at most 200 characters) and fills in
// the missing ones as Names documents.
func (n Names) clean() (Names, error) {
	var err error
	for _, s := range []*string{&n.Full, &n.Given, &n.Family} {
		if *s, err = cleanName(*s); err != nil {
			return Names{}, err
		}
	}
	if n.Full == "" {
		n.Full = strings.TrimSpace(n.Given + " " + n.Family)
	}
	if n.Given == "" && n.Family == "" {
		n.Given, n.Family = SplitName(n.Full)
	}
	return n, nil
}

// Invite invites the officer at email. Bad input and refused addresses
// return an error and write nothing. The onboarding email is sent after the
// invitation is committed; its failure is reported in Invitation.MailErr,
// not as the error.
func (a *Admin) Invite(ctx context.Context, by store.Actor, email string, names Names) (*Invitation, error) {
	return a.invite(ctx, by, email, names, false)
}

// Resend issues a new initial password and expiry for a pending invitation
// (the old password stops working) and sends them in a new onboarding
// email; names given replace those on the invitation.
func (a *Admin) Resend(ctx context.Context, by store.Actor, email string, names Names) (*Invitation, error) {
	return a.invite(ctx, by, email, names, true)
}

func (a *Admin) invite(ctx context.Context, by store.Actor, email string, names Names, resend bool) (*Invitation, error) {
	return a.inviteWith(ctx, by, email, names, resend, nil)
}

// AddressPolicy is the invitation policy an address must pass, whoever
// asks: an admin inviting (Invite checks it), an officer requesting an
// account, a row of a CSV. It returns the canonical username, or a refusal
// wrapping ErrBadUsername, ErrRefusedMailbox or ErrDomainNotAllowed.
func (a *Admin) AddressPolicy(email string) (string, error) {
	username, err := CanonicalUsername(email)
	if err != nil {
		return "", err
	}
	return username, a.checkAddress(username)
}

// inviteWith is invite with within, when not nil, run first in the
// invitation's transaction: what it writes is stored with the invitation
// or not at all, and its error refuses the invitation (an approved request
// is marked so this way).
func (a *Admin) inviteWith(ctx context.Context, by store.Actor, email string, names Names, resend bool, within func(ctx context.Context) error) (*Invitation, error) {
	signIn, username, err := a.mailOpening(by, email)
	if err != nil {
		return nil, err
	}
	if names, err = names.clean(); err != nil {
		return nil, err
	}
	if err := a.checkAddress(username); err != nil {
		return nil, err
	}
	inv, hash, err := a.initialPassword(username)
	if err != nil {
		return nil, err
	}
	inv.Name, inv.GivenName, inv.FamilyName, inv.Resent = names.Full, names.Given, names.Family, resend

	var user *store.User
	err = retry(ctx, func() error {
		return a.store.InTx(ctx, func(ctx context.Context) (err error) {
			if within != nil {
				if err := within(ctx); err != nil {
					return err
				}
			}
			user, err = a.record(ctx, by, inv, hash)
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	inv.Name, inv.GivenName, inv.FamilyName = user.Name, user.GivenName, user.FamilyName
	a.log.InfoContext(ctx, "invitation recorded", "username", username, "user_id", user.ID,
		"resent", resend, "expires_at", inv.ExpiresAt.Format(time.RFC3339))
	if a.send(ctx, by, "onboarding", store.EventInviteMailFailed, user, inv, signIn) {
		a.log.InfoContext(ctx, "onboarding email sent", "username", username)
	}
	return inv, nil
}

// mailOpening checks what every change that emails an initial password
// needs: an actor, the service's mail, the sign-in link and the canonical
// username.
func (a *Admin) mailOpening(by store.Actor, email string) (signIn, username string, err error) {
	switch {
	case by == "":
		return "", "", errNoActor
	case a.mailer == nil || a.pages == nil:
		return "", "", errors.New("flows: the admin service has no mailer or templates to send the email with")
	}
	if signIn, err = signInURL(a.cfg.Issuer); err != nil {
		return "", "", err
	}
	if username, err = CanonicalUsername(email); err != nil {
		return "", "", err
	}
	return signIn, username, nil
}

// initialPassword makes a random initial password for username, its hash,
// and its expiry (invitations.valid_for from now).
func (a *Admin) initialPassword(username string) (*Invitation, string, error) {
	initial := password.Generate()
	hash, err := password.Hash(initial)
	if err != nil {
		return nil, "", fmt.Errorf("initial password of %s: %w", username, err)
	}
	exp := a.now().UTC().Add(a.cfg.Invitations.ValidFor.D())
	return &Invitation{Username: username, InitialPassword: initial, ExpiresAt: exp}, hash, nil
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
func (a *Admin) record(ctx context.Context, by store.Actor, inv *Invitation, hash string) (*store.User, error) {
	now := a.now().UTC()
	var user *store.User
	err := a.store.InTx(ctx, func(ctx context.Context) error {
		existing, err := a.store.UserByUsername(ctx, inv.Username)
		switch {
		case errors.Is(err, store.ErrNotFound):
			existing = nil
		case err != nil:
			return fmt.Errorf("invite %s: look up user: %w", inv.Username, err)
		}
		event := store.EventInvite
		switch {
		case existing == nil && inv.Resent:
			return refuseAdmin(ErrNoInvitation, "there is no invitation for %s to resend: invite the officer without --resend", inv.Username)
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
			if err := a.store.CreateUser(ctx, user); err != nil {
				if errors.Is(err, store.ErrConflict) {
					// Another invitation of the same address won the race.
					return refuseAdmin(ErrAlreadyInvited, "%s was invited at the same moment by another command; to issue a new initial password, run: lanyard invite --resend %s", inv.Username, inv.Username)
				}
				return fmt.Errorf("invite %s: create user: %w", inv.Username, err)
			}
		case existing.State == store.UserActive:
			return refuseAdmin(ErrAlreadyActive, "%s already has an active account: there is nothing to invite", inv.Username)
		case existing.State == store.UserDisabled:
			return refuseAdmin(ErrAccountDisabled, "%s has a disabled account: enable it instead of inviting the officer again", inv.Username)
		case !inv.Resent:
			until := ""
			if !existing.InviteExpiresAt.IsZero() {
				verb := "is valid until"
				if !existing.InviteExpiresAt.After(now) {
					verb = "expired on"
				}
				until = fmt.Sprintf(" (the invitation %s %s)", verb, existing.InviteExpiresAt.UTC().Format(dateLayout))
			}
			return refuseAdmin(ErrAlreadyInvited, "%s is already invited%s; to send a new initial password and expiry, run: lanyard invite --resend %s", inv.Username, until, inv.Username)
		default:
			// Resend: conditional on the stored hash, so of two racing
			// resends exactly one wins and only its email carries a working
			// password.
			if err := a.store.ChangePassword(ctx, existing.ID, existing.PasswordHash, hash, true); err != nil {
				if errors.Is(err, store.ErrConflict) {
					return refuseAdmin(ErrAlreadyInvited, "the invitation of %s was changed at the same moment by another command; run the command again if needed", inv.Username)
				}
				return fmt.Errorf("invite %s: replace initial password: %w", inv.Username, err)
			}
			user = existing
			user.PasswordHash, user.PasswordInitial = hash, true
			user.InviteExpiresAt, user.UpdatedAt = inv.ExpiresAt, now
			if inv.Name != "" {
				user.Name, user.GivenName, user.FamilyName = inv.Name, inv.GivenName, inv.FamilyName
			}
			if err := a.store.UpdateUser(ctx, user); err != nil {
				return fmt.Errorf("invite %s: update user: %w", inv.Username, err)
			}
			event = store.EventInviteResend
		}
		return a.audit(ctx, event, by, user, map[string]any{"expires_at": inv.ExpiresAt.Format(time.RFC3339)})
	})
	if err != nil {
		return nil, err
	}
	return user, nil
}

// checkAddress is the policy every new account's address passes: no
// look-alike (checkLookAlike), then the refused-mailbox patterns, then the
// allowed domains. The patterns come before the domains: a LiteMail address
// is usually also outside the allowed domains, and "use the standard
// mailbox" is the useful answer.
func (a *Admin) checkAddress(username string) error {
	if err := checkLookAlike(username); err != nil {
		return err
	}
	for _, pat := range a.cfg.Invitations.RefusedMailboxes {
		ok, err := path.Match(strings.ToLower(strings.TrimSpace(pat)), username)
		if err != nil {
			// Fail closed: a broken pattern must not let every address through.
			return fmt.Errorf("invitations.refused_mailboxes: pattern %q is malformed: %w", pat, err)
		}
		if ok {
			return refuseAdmin(ErrRefusedMailbox, "%s is a LiteMail-style mailbox (it matches %q); invite the officer's standard mailbox", username, pat)
		}
	}
	_, domain, _ := strings.Cut(username, "@")
	allowed := make([]string, 0, len(a.cfg.Invitations.AllowedDomains))
	for _, d := range a.cfg.Invitations.AllowedDomains {
		d = strings.ToLower(strings.TrimSpace(d))
		// The operator may write an internationalised domain either way;
		// the address is in its Unicode form.
		if u, err := idna.Lookup.ToUnicode(d); err == nil {
			d = u
		}
		if d == domain {
			return nil
		}
		allowed = append(allowed, d)
	}
	if len(allowed) == 0 {
		return refuseAdmin(ErrDomainNotAllowed, "%s is not an allowed domain: no domain is allowed yet; add the organisation's domain to invitations.allowed_domains", domain)
	}
	return refuseAdmin(ErrDomainNotAllowed, "%s is not an allowed domain: invite the officer's organisational address (allowed: %s)", domain, strings.Join(allowed, ", "))
}

// dateLayout is how dates read in emails and messages: "Monday 26 December 2026".
const dateLayout = "Monday 2 January 2006"

// send emails the initial password in inv with the mail template named
// page, after the change is committed. It reports whether the email went;
// when it did not, the failure is in inv.MailErr and, as failed (an event
// of its own), in the audit trail: the change stays, and running the
// command again issues a new initial password.
func (a *Admin) send(ctx context.Context, by store.Actor, page string, failed store.Event, u *store.User, inv *Invitation, signIn string) bool {
	exp := inv.ExpiresAt.UTC()
	subject, text, html, err := a.pages.Mail(page, OnboardingMail{
		Product:         a.cfg.Journey.DisplayName,
		Environment:     a.cfg.Journey.Environment,
		Name:            inv.Name,
		Username:        inv.Username,
		InitialPassword: inv.InitialPassword,
		SignInURL:       signIn,
		ExpiresOn:       exp.Format(dateLayout),
		ExpiresTime:     exp.Format("15:04"),
	})
	if err == nil {
		to := inv.Username
		if inv.Name != "" {
			to = (&netmail.Address{Name: inv.Name, Address: inv.Username}).String()
		}
		err = a.mailer.Send(ctx, mail.Message{To: to, Subject: subject, Text: text, HTML: html})
	}
	if err == nil {
		return true
	}
	inv.MailErr = err
	a.log.WarnContext(ctx, page+" email not sent; the change stays", "username", inv.Username, "err", err)
	// The audit line must be written even when ctx ran out sending the mail.
	if aerr := a.audit(context.WithoutCancel(ctx), failed, by, u, map[string]any{"error": err.Error()}); aerr != nil {
		a.log.ErrorContext(ctx, "audit of the mail failure not written", "username", inv.Username, "err", aerr)
	}
	return false
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
// header or a greeting, or make a name show as another: control characters
// (line breaks), bidirectional controls (U+202E and its kind reorder what
// follows them on every page and in every email the name appears in), and
// excessive length.
func cleanName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > maxNameRunes || strings.IndexFunc(name, badNameRune) >= 0 {
		return "", ErrBadName
	}
	return name, nil
}

func badNameRune(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) }

// newUserID is a random 128-bit id, hex-encoded: the OIDC sub, which must
// never be reassigned or guessable.
func newUserID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("invite: user id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
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

// Invitations returns every account with the status of its invitation, by
// username.
func (a *Admin) Invitations(ctx context.Context) ([]InvitationStatus, error) {
	users, err := a.store.ListUsers(ctx, "", "")
	if err != nil {
		return nil, fmt.Errorf("list invitations: %w", err)
	}
	now := a.now().UTC()
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
func (a *Admin) Revoke(ctx context.Context, by store.Actor, email string) (*store.User, error) {
	if by == "" {
		return nil, errNoActor
	}
	username, err := CanonicalUsername(email)
	if err != nil {
		return nil, err
	}
	var user *store.User
	err = a.inTx(ctx, func(ctx context.Context) error {
		u, err := a.store.UserByUsername(ctx, username)
		if errors.Is(err, store.ErrNotFound) {
			return refuseAdmin(ErrNoInvitation, "there is no invitation for %s to revoke", username)
		}
		if err != nil {
			return fmt.Errorf("revoke %s: look up user: %w", username, err)
		}
		if u.State != store.UserInvited {
			return refuseAdmin(ErrNotInvited, "%s is not a pending invitation (the account is %s): disable the account instead: lanyard user disable %s", username, u.State, username)
		}
		if err := a.store.DeleteUser(ctx, u.ID); err != nil {
			return fmt.Errorf("revoke %s: delete account: %w", username, err)
		}
		user = u
		return a.audit(ctx, store.EventInviteRevoke, by, u, nil)
	})
	if err != nil {
		return nil, err
	}
	a.log.InfoContext(ctx, "invitation revoked", "username", username, "user_id", user.ID)
	return user, nil
}

// ResetPassword gives an active officer a new initial password by email,
// as after an invitation: it works until the invitation validity runs out,
// and the journey asks for a new password at the next sign-in (enrolled
// factors stay). Every session of the officer ends and every token is
// revoked. Refused for invited accounts (use Resend) and disabled ones. As
// with Invite, the change and its audit event are committed first; a mail
// failure is reported in Invitation.MailErr.
func (a *Admin) ResetPassword(ctx context.Context, by store.Actor, email string) (*Invitation, error) {
	signIn, username, err := a.mailOpening(by, email)
	if err != nil {
		return nil, err
	}
	inv, hash, err := a.initialPassword(username)
	if err != nil {
		return nil, err
	}
	var user *store.User
	var ended int
	err = a.inTx(ctx, func(ctx context.Context) error {
		u, err := a.Account(ctx, username)
		if err != nil {
			return err
		}
		switch u.State {
		case store.UserInvited:
			return refuseAdmin(ErrNotActive, "%s has not accepted the invitation yet: send a new one with: lanyard invite --resend %s", username, username)
		case store.UserDisabled:
			return refuseAdmin(ErrAccountDisabled, "%s has a disabled account: enable it first (lanyard user enable %s)", username, username)
		}
		if err := a.store.ChangePassword(ctx, u.ID, u.PasswordHash, hash, true); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("the password of %s was changed at the same moment by another request; run the command again", username)
			}
			return fmt.Errorf("reset password of %s: %w", username, err)
		}
		u.PasswordHash, u.PasswordInitial = hash, true
		u.InviteExpiresAt, u.UpdatedAt = inv.ExpiresAt, a.now().UTC()
		if err := a.store.UpdateUser(ctx, u); err != nil {
			return fmt.Errorf("reset password of %s: update user: %w", username, err)
		}
		if ended, err = SignOutEverywhere(ctx, a.store, u.ID, ""); err != nil {
			return fmt.Errorf("reset password of %s: %w", username, err)
		}
		user = u
		return a.audit(ctx, store.EventUserResetPassword, by, u, map[string]any{
			"expires_at": inv.ExpiresAt.Format(time.RFC3339), "sessions_ended": fmt.Sprint(ended)})
	})
	if err != nil {
		return nil, err
	}
	inv.Name = user.Name
	a.log.InfoContext(ctx, "password reset by an admin", "username", username, "user_id", user.ID, "sessions_ended", ended)
	a.send(ctx, by, "password-reset", store.EventResetMailFailed, user, inv, signIn)
	return inv, nil
}
