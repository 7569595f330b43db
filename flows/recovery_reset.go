package flows

// Forgot your password: the link on the password page (data-step
// forgot-password) emails a single-use link valid recovery.reset_link_for
// (15 minutes) to an active account's address. The page says the same thing
// and takes the same time whether or not the account exists (evenly), and
// asking is limited per client address and per username typed. A new link
// voids the older one.
//
// The link alone proves only the mailbox, so it is not enough:
//
//   - Following it changes nothing (a mail scanner that fetches it proves
//     nothing); its button binds the link to this browser — its session's
//     stable key, which survives the id's rotation at every step. Opened
//     in a second browser (another cookie jar: another device, a private
//     window, whoever else has the link) it stops working everywhere: the
//     first browser's reset is voided too, and the officer asks for a new
//     link from the browser they use.
//   - The link stands in for the password step only: the journey then asks
//     for the second factor (mfa-challenge, counted on the very same
//     counters as at sign-in), and only then for a new password
//     (reset-password). Nothing configured — an enrolment least of all —
//     is pending while a reset is (Pending), so an account without a second
//     factor cannot be reset this way: the page says whom to ask.
//   - The new password is stored in the transaction that marks the link
//     used (once), signs out every other session and revokes every token of
//     the officer (the relying parties are told through back-channel
//     logout, by the store); the officer is emailed, and the journey goes on
//     to the application they came from.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/lanyard-idp/lanyard/flows/mail"
	"github.com/lanyard-idp/lanyard/flows/password"
	"github.com/lanyard-idp/lanyard/provider/store"
)

// The recovery pages that are not journey steps.
const (
	PathForgot     = "/signin/forgot"
	PathForgotSent = "/signin/forgot/sent"
	// PathReset is the emailed link (?token=…) and its button.
	PathReset         = "/signin/reset"
	PathResetPassword = "/signin/reset-password"
)

// StepForgotPassword is the data-step of the "Forgot your password?" form.
const StepForgotPassword = "forgot-password"

const (
	msgForgotTooMany  = "Too many password resets have been asked for from your network in the last hour. Try again later."
	msgForgotAccount  = "We have already sent several links for this username in the last hour. Use the newest email (only its link works), or try again in an hour."
	msgResetNoFactor  = "Your account has no second factor (an authenticator app, a passkey or the approval app), so an email alone cannot reset its password."
	msgResetConflict  = "This reset cannot be finished: the link was replaced by a newer one, opened in another browser, or your password was changed meanwhile. Ask for a new link."
	noticePasswordSet = "Your password was reset with a link sent to this address"
)

// recoveryLimits bound the public recovery forms: per client address (an
// IPv6 client's network) and per username or mailbox typed, whether or not
// it has an account (tests lower them).
type recoveryLimits struct {
	perAddress int           // forms an hour from one address (each form)
	perAccount int           // reset links an hour for one username
	onePer     time.Duration // onboarding emails: one per mailbox this often
	perDay     int           // onboarding emails a day to one mailbox
}

var defaultRecoveryLimits = recoveryLimits{perAddress: 10, perAccount: 3, onePer: 10 * time.Minute, perDay: 3}

// defaultRecoveryFloor is how long every public recovery form takes at
// least: longer than its work takes, so the answer's time says nothing
// about the account (the emails go out in the background).
const defaultRecoveryFloor = 400 * time.Millisecond

// resetClaim is the reset a browser opened (journey.Reset).
type resetClaim struct {
	ID       string    `json:"id"`
	OpenedAt time.Time `json:"opened_at"`
}

// errResetOver ends a reset in progress that can no longer finish (its link
// was voided, replaced or used, it ran out of time, or the account changed):
// said once, then the browser starts over.
var errResetOver = errors.New("the password reset is over")

func resetOver(msg string) error {
	return &pageError{Status: http.StatusGone, Title: "This password reset has stopped", Message: msg, Cause: errResetOver}
}

type forgotPage struct {
	page
	Username string
}

// linkPage is the page an emailed link opens: who it is for, what comes
// next, and the one button that acts.
type linkPage struct {
	page
	Token, Username string
	Lines           []string
	Button          string
}

// resetPasswordPage is the reset-password step: the new password twice,
// or, for an account without a second factor, whom to ask instead.
type resetPasswordPage struct {
	changePasswordPage
	Username string
	NoFactor bool
	Lines    []string
	Link     string
	Label    string
}

// RecoveryMail is the data of the recovery mail templates
// (templates/mail/password-reset-*, invitation-*).
type RecoveryMail struct {
	Product, Environment string
	Name, Username       string
	ResetURL             string // password-reset-link
	Minutes              int
	When, Device         string // who asked
	Address              string
	InvitationURL        string // password-reset-invited: ask for a new onboarding email
	SignInURL            string
	ForgotURL            string
	Helpdesk             string
}

func (h *Handler) forgotPage() forgotPage {
	p := forgotPage{page: h.page(nil, StepForgotPassword, "Reset your password")}
	p.Action = PathForgot
	return p
}

func (h *Handler) getForgot(w http.ResponseWriter, r *http.Request) error {
	p := h.forgotPage()
	var err error
	if p.Username, err = h.typedBefore(r); err != nil {
		return err
	}
	return h.show(w, http.StatusOK, "forgot-password", p)
}

// typedBefore is the username this browser typed (or was given as a
// hint) on the sign-in page, for a recovery form to start with.
func (h *Handler) typedBefore(r *http.Request) (string, error) {
	s, err := h.load(r)
	if err != nil || s == nil {
		return "", err
	}
	if s.j.Username != "" {
		return s.j.Username, nil
	}
	return s.j.Hint, nil
}

// addressOver counts one more recovery form of kind from the client's
// address (an IPv6 client's network) and reports whether it went over the
// hourly limit; the first refusal is audited as refused.
func (h *Handler) addressOver(ctx context.Context, r *http.Request, kind string, refused store.Event) (bool, error) {
	t, err := h.store.RecordFailure(ctx, kind+"-"+h.addressKey(r), h.now().UTC(), time.Hour)
	if err != nil {
		return false, err
	}
	if t.Failures == h.recLimits.perAddress+1 {
		h.auditLog(ctx, r, nil, event{Name: refused, Detail: map[string]any{"reason": store.ReasonAddressLimit}})
	}
	return t.Failures > h.recLimits.perAddress, nil
}

func (h *Handler) postForgot(w http.ResponseWriter, r *http.Request) error {
	if err := form(r); err != nil {
		return err
	}
	ctx, lim := r.Context(), h.recLimits
	p := h.forgotPage()
	typed := r.PostForm.Get("username")
	p.Username = truncate(strings.TrimSpace(typed), 254)
	refuse := func(status int, field, msg string) error {
		p.fail(field, msg)
		return h.show(w, status, "forgot-password", p)
	}
	if over, err := h.addressOver(ctx, r, "reset", store.EventResetRefused); err != nil || over {
		if err != nil {
			return err
		}
		return refuse(http.StatusTooManyRequests, "", msgForgotTooMany)
	}
	username, err := CanonicalUsername(typed)
	if err != nil {
		return refuse(http.StatusBadRequest, "username", msgBadUsernameFmt)
	}
	// The username's count, whether or not it has an account.
	if over, err := h.overLimit(ctx, "reset-acct:"+digest(username), lim.perAccount, time.Hour); err != nil || over {
		if err != nil {
			return err
		}
		h.auditLog(ctx, r, nil, event{Name: store.EventResetRefused, Username: username, Detail: map[string]any{"reason": store.ReasonAccountLimit}})
		return refuse(http.StatusTooManyRequests, "username", msgForgotAccount)
	}
	if err := h.requestReset(ctx, r, username); err != nil {
		return err
	}
	return redirect(w, r, PathForgotSent)
}

// overLimit counts one more use of key in window and reports whether it
// went over limit.
func (h *Handler) overLimit(ctx context.Context, key string, limit int, window time.Duration) (bool, error) {
	t, err := h.store.RecordFailure(ctx, key, h.now().UTC(), window)
	if err != nil {
		return false, err
	}
	return t.Failures > limit, nil
}

// orNil is a store lookup with "there is none" as a nil row.
func orNil[T any](v *T, err error) (*T, error) {
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return v, err
}

// digest names a username in a throttle key without writing it out.
func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}

// requestReset records what a "Forgot your password?" for username calls
// for, in one transaction with its audit event, and emails it in the
// background: an active account a new link (the older one voided); an
// invited one the advice to ask for a new onboarding email; no account, or
// a disabled one, nothing.
func (h *Handler) requestReset(ctx context.Context, r *http.Request, username string) error {
	now := h.now().UTC()
	u, err := orNil(h.store.UserByUsername(ctx, username))
	if err != nil {
		return err
	}
	sent, token := store.ResetMailNothing, ""
	var row *store.PasswordReset
	ev := event{Name: store.EventResetRequest, Username: username}
	if u != nil {
		ev.UserID = u.ID
		switch u.State {
		case store.UserActive:
			if token, err = randomToken(); err != nil {
				return err
			}
			id, err := newRequestID()
			if err != nil {
				return err
			}
			sent = store.ResetMailLink
			row = &store.PasswordReset{ID: id, UserID: u.ID, Token: token, ClientAddr: clientAddr(r),
				CreatedAt: now, ExpiresAt: now.Add(h.settings().cfg.Recovery.ResetLinkFor.D())}
		case store.UserInvited:
			sent = store.ResetMailInvitation
		}
	}
	ev.Detail = map[string]any{"sent": sent}
	err = retry(ctx, func() error {
		return h.store.InTx(ctx, func(ctx context.Context) error {
			if row != nil {
				if err := h.store.CreatePasswordReset(ctx, row); err != nil {
					if errors.Is(err, store.ErrConflict) {
						// A racing request stored its link first: run
						// again, and replace it.
						return fmt.Errorf("%w: %w", store.ErrSerialization, err)
					}
					return err
				}
				ev.Detail["link"] = row.ID
			}
			return h.audit(ctx, r, nil, ev)
		})
	})
	if err != nil {
		return err
	}
	switch sent {
	case store.ResetMailLink:
		m := h.recoveryMail(r, u)
		m.ResetURL = h.link(PathReset + "?token=" + url.QueryEscape(token))
		m.Minutes = int(h.settings().cfg.Recovery.ResetLinkFor.D() / time.Minute)
		h.sendRecovery(r, u, "password-reset-link", m)
	case store.ResetMailInvitation:
		h.sendRecovery(r, u, "password-reset-invited", h.recoveryMail(r, u))
	}
	return nil
}

// recoveryMail is what every recovery email says: who, and who asked.
func (h *Handler) recoveryMail(r *http.Request, u *store.User) RecoveryMail {
	set := h.settings()
	return RecoveryMail{
		Product: set.cfg.Journey.DisplayName, Environment: set.cfg.Journey.Environment,
		Name: u.Name, Username: u.Username,
		When: h.now().UTC().Format(mailTimeLayout), Device: describeAgent(r.UserAgent()), Address: clientAddr(r),
		InvitationURL: h.link(PathInvitation), SignInURL: h.link(PathSignIn), ForgotURL: h.link(PathForgot),
		Helpdesk: set.cfg.Recovery.Helpdesk,
	}
}

// link is a path under the configured issuer (never the request's Host).
func (h *Handler) link(path string) string {
	return strings.TrimSuffix(h.settings().issuer.String(), "/") + path
}

// sendRecovery renders the mail template page for u and sends it in the
// background, so that the page's time does not depend on it. A failure is
// logged and audited (recovery.mail_failed).
func (h *Handler) sendRecovery(r *http.Request, u *store.User, page string, data any) {
	ctx := context.WithoutCancel(withOrigin(r.Context(), r))
	err := errors.New("flows: no mailer")
	var msg mail.Message
	if h.auditedMailer != nil {
		var subject, text, html string
		if subject, text, html, err = h.pages.Mail(page, data); err == nil {
			to := u.Email
			if to == "" {
				to = u.Username
			}
			msg = mail.Message{To: to, Subject: subject, Text: text, HTML: html}
		}
	}
	failed := func(err error) {
		h.log.Warn(page+" email not sent", "user", u.ID, "err", err)
		if aerr := h.admin().audit(ctx, store.EventRecoveryMailFailed, store.Actor(u.Username), u,
			map[string]any{"mail": page, "error": err.Error()}); aerr != nil {
			h.log.Error("audit of the mail failure not written", "err", aerr)
		}
	}
	if msg.To == "" {
		failed(err)
		return
	}
	h.mailWG.Go(func() {
		ctx, cancel := context.WithTimeout(ctx, mailTimeout)
		defer cancel()
		if err := h.auditedMailer.Send(ctx, msg); err != nil {
			failed(err)
		}
	})
}

func (h *Handler) getForgotSent(w http.ResponseWriter, r *http.Request) error {
	minutes := int(h.settings().cfg.Recovery.ResetLinkFor.D() / time.Minute)
	p := requestDonePage{page: h.page(nil, "", "Check your email"), Lines: []string{
		fmt.Sprintf("If the username you gave has an account, we have sent a link to its email address. It works once, for %d minutes, in the browser you open it in.", minutes),
		"To choose a new password you will also need your second factor: your authenticator app, a passkey or security key, the approval app on your phone, or one of your recovery codes.",
		"Nothing there after a few minutes? Check your Junk Email folder. Asking again sends a new link, and only the newest one works.",
	}, Link: PathSignIn, Label: "Back to sign in"}
	return h.show(w, http.StatusOK, "request-done", p)
}

// evenly answers no sooner than h.recoveryFloor after the request came
// in, whatever fn did: a public form whose work depends on what exists
// (an account, an invitation) takes the same time either way. fn's answer
// is held back until then.
func (h *Handler) evenly(fn handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		start := time.Now()
		held := &heldWriter{header: w.Header(), status: http.StatusOK}
		err := fn(held, r)
		if d := h.recoveryFloor - time.Since(start); d > 0 {
			sleepCtx(r.Context(), d)
		}
		if err != nil {
			return err
		}
		w.WriteHeader(held.status)
		_, err = w.Write(held.body.Bytes())
		return err
	}
}

// heldWriter keeps a response until evenly lets it go.
type heldWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *heldWriter) Header() http.Header         { return w.header }
func (w *heldWriter) WriteHeader(status int)      { w.status = status }
func (w *heldWriter) Write(b []byte) (int, error) { return w.body.Write(b) }

// The emailed link.

// linkProblem is why an opened link cannot be used, in the officer's
// words, with the reason the audit trail records.
func linkProblem(row *store.PasswordReset, now time.Time) (string, store.Reason) {
	switch {
	case row == nil:
		return "This link does not work. Check that you opened the whole link from the email, or ask for a new one.", store.ReasonLinkUnknown
	case row.Status == store.ResetUsed:
		return "This link has already been used: your password was reset with it. If that was not you, ask for a new link now, and tell your administrator.", store.ReasonLinkUsed
	case row.Status == store.ResetVoid && row.VoidReason == store.ResetVoidReplaced:
		return "A newer link was sent after this one, and only the newest works. Use the newest email, or ask for a new link.", store.ReasonLinkReplaced
	case row.Status == store.ResetVoid && row.VoidReason == store.ResetVoidOtherBrowser:
		return linkElsewhere, store.ReasonLinkElsewhere
	case row.Status == store.ResetVoid:
		return "This link no longer works. Ask for a new one.", store.ReasonNotActive
	case row.Status == store.ResetSent && !now.Before(row.ExpiresAt):
		return "This link has expired. Ask for a new one: it works for a short time only.", store.ReasonLinkExpired
	}
	return "", ""
}

const linkElsewhere = "This link was opened in two browsers, so it no longer works in either: only the person who asked for it should have it. Ask for a new link, and open it in the browser you will use."

// showLinkProblem answers a link that cannot be used.
func (h *Handler) showLinkProblem(w http.ResponseWriter, msg string) error {
	p := requestDonePage{page: h.page(nil, "", "This link no longer works"), Lines: []string{msg},
		Link: PathForgot, Label: "Ask for a new link"}
	return h.show(w, http.StatusGone, "request-done", p)
}

// resetLinkPage is the page of an emailed reset link that may be used.
func (h *Handler) resetLinkPage(token string, u *store.User) linkPage {
	p := linkPage{page: h.page(nil, "", "Reset your password"), Token: token, Username: u.Username, Button: "Continue", Lines: []string{
		"Next you will prove it is you with your second factor: your authenticator app, a passkey or security key, the approval app on your phone, or one of your recovery codes. Then you choose a new password.",
		"The link works in this browser only. Once you continue, it cannot be used anywhere else.",
	}}
	p.Action = PathReset
	return p
}

func (h *Handler) getReset(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	token := truncate(r.URL.Query().Get("token"), 128)
	row, err := orNil(h.store.PasswordResetByToken(ctx, token))
	if err != nil {
		return err
	}
	if msg, _ := linkProblem(row, h.now().UTC()); msg != "" {
		return h.showLinkProblem(w, msg)
	}
	s, err := h.load(r)
	if err != nil {
		return err
	}
	if row.Status == store.ResetClaimed && s != nil && row.ClaimedSID == s.row.SID && s.j.Reset != nil && s.j.Reset.ID == row.ID {
		return redirect(w, r, PathNext) // opened again in the browser that has it
	}
	u, err := h.store.UserByID(ctx, row.UserID)
	if err != nil {
		return err
	}
	// The button's request must come with a session, so that two clicks of
	// it are one browser (a fresh browser gets one here; nothing else
	// changes).
	if s == nil {
		if _, err := h.create(ctx, w, r); err != nil {
			return err
		}
	}
	return h.show(w, http.StatusOK, "reset-link", h.resetLinkPage(token, u))
}

// postReset binds the link to this browser and starts the reset: the
// journey of this browser becomes the link's account's, with the link in
// place of the password.
func (h *Handler) postReset(w http.ResponseWriter, r *http.Request) error {
	if err := form(r); err != nil {
		return err
	}
	ctx := r.Context()
	now := h.now().UTC()
	token := truncate(r.PostForm.Get("token"), 128)
	s, err := h.load(r)
	if err != nil {
		return err
	}
	if s == nil {
		if s, err = h.create(ctx, w, r); err != nil {
			return err
		}
	}
	row, err := orNil(h.store.PasswordResetByToken(ctx, token))
	if err != nil {
		return err
	}
	if msg, why := linkProblem(row, now); msg != "" {
		ev := event{Name: store.EventResetLinkFailed, Detail: map[string]any{"reason": why}}
		if row != nil {
			ev.UserID = row.UserID
			ev.Detail["link"] = row.ID
		}
		// Anyone can post junk tokens: like the sign-in's failures, an
		// address's many are aggregated in the audit trail (auditflood.go).
		h.auditFailure(ctx, r, s, throttleKeys{addr: h.addressKey(r)}, ev)
		return h.showLinkProblem(w, msg)
	}
	u, err := h.store.UserByID(ctx, row.UserID)
	if err != nil {
		return err
	}
	if row.Status == store.ResetClaimed {
		return h.claimedAlready(w, r, s, row, u)
	}
	// Only an active account with a second factor can be reset with a link.
	has, err := h.hasSecondFactor(ctx, u.ID)
	if err != nil {
		return err
	}
	if u.State != store.UserActive || !has {
		h.voidReset(ctx, r, s, row, u, store.ResetVoidAccount, store.ReasonNoSecondFactor)
		return h.showNoFactor(w, http.StatusConflict, u)
	}
	before, rowBefore := s.j, *s.row
	previous := ""
	if s.row.UserID != "" && s.row.UserID != u.ID {
		previous = s.row.UserID
	}
	s.j = journey{ResumeURL: s.j.ResumeURL, ClientID: s.j.ClientID, ClientName: s.j.ClientName, RequestedAt: s.j.RequestedAt,
		Username: u.Username, Reset: &resetClaim{ID: row.ID, OpenedAt: now}}
	s.row.UserID, s.row.State = u.ID, stateJourney
	s.row.AuthTime, s.row.AMR, s.row.ACR = time.Time{}, nil, ""
	// Not rotated: a second click of the button, sent with the same cookie
	// before the first answer arrived, must find the same browser. The id
	// is rotated at the second factor and again at the new password.
	err = h.commit(ctx, s, func(ctx context.Context) error {
		if previous != "" {
			// The browser was someone else's session: what it was given
			// ends with it, her relying parties are told, and the reset
			// gets a session key of its own (as at a sign-in, newSignIn).
			sid, err := h.store.RenewSessionKey(ctx, s.row.SID)
			if err != nil {
				return err
			}
			s.row.SID = sid
			if err := h.audit(ctx, r, s, event{Name: evLogout, UserID: previous,
				Detail: map[string]any{"reason": "another officer signed in"}}); err != nil {
				return err
			}
		}
		if err := h.store.ClaimPasswordReset(ctx, row.ID, s.row.SID, now); err != nil {
			return err
		}
		return h.audit(ctx, r, s, event{Name: store.EventResetOpen, UserID: u.ID, Username: u.Username, Detail: map[string]any{"link": row.ID}})
	})
	if errors.Is(err, store.ErrConflict) {
		// Another request claimed it first: this browser's (a second
		// click), or another one's.
		s.j, *s.row = before, rowBefore
		if row, err = h.store.PasswordResetByID(ctx, row.ID); err != nil {
			return err
		}
		if msg, _ := linkProblem(row, now); msg != "" {
			return h.showLinkProblem(w, msg)
		}
		return h.claimedAlready(w, r, s, row, u)
	}
	if err != nil {
		return err
	}
	return redirect(w, r, PathNext)
}

// claimedAlready answers a link that a browser has opened: this one goes on
// (a second click, or the link opened again); any other stops the reset
// everywhere.
func (h *Handler) claimedAlready(w http.ResponseWriter, r *http.Request, s *session, row *store.PasswordReset, u *store.User) error {
	if row.ClaimedSID == s.row.SID {
		if s.j.Reset == nil || s.j.Reset.ID != row.ID {
			// prompt=login forgot it: the browser takes it up again.
			s.j.Username, s.j.Reset = u.Username, &resetClaim{ID: row.ID, OpenedAt: row.ClaimedAt}
			s.row.UserID, s.row.State = u.ID, stateJourney
			if err := h.save(r.Context(), s); err != nil {
				return err
			}
		}
		return redirect(w, r, PathNext)
	}
	h.voidReset(r.Context(), r, s, row, u, store.ResetVoidOtherBrowser, store.ReasonLinkElsewhere)
	h.notify(r, u, "A password reset of your account was stopped", "The link was opened in two browsers")
	return h.showLinkProblem(w, linkElsewhere)
}

// voidReset makes a live link useless, with its audit event.
func (h *Handler) voidReset(ctx context.Context, r *http.Request, s *session, row *store.PasswordReset, u *store.User, void string, why store.Reason) {
	err := h.store.InTx(ctx, func(ctx context.Context) error {
		if err := h.store.VoidPasswordReset(ctx, row.ID, void); err != nil {
			return err
		}
		return h.audit(ctx, r, s, event{Name: store.EventResetVoid, UserID: u.ID, Username: u.Username,
			Detail: map[string]any{"link": row.ID, "reason": why}})
	})
	if err != nil && !errors.Is(err, store.ErrConflict) {
		h.log.Error("cannot void a password reset", "err", err)
	}
}

// checkReset is the dispatcher's check of a reset in progress: the link is
// still claimed by this browser, within its time, and the account active.
func (h *Handler) checkReset(ctx context.Context, s *session, u *store.User) error {
	row, err := h.store.PasswordResetByID(ctx, s.j.Reset.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return resetOver("This link no longer works. Ask for a new one.")
	case err != nil:
		return err
	}
	if row.Status != store.ResetClaimed || row.ClaimedSID != s.row.SID || row.UserID != u.ID {
		msg, _ := linkProblem(row, h.now().UTC())
		if msg == "" {
			msg = "This link no longer works. Ask for a new one."
		}
		return resetOver(msg)
	}
	if !h.now().UTC().Before(h.resetDeadline(s.j.Reset)) {
		return resetOver(fmt.Sprintf("A password reset must be finished within %d minutes of opening the link. Ask for a new link.",
			int(h.settings().cfg.Recovery.ResetLinkFor.D()/time.Minute)))
	}
	if u.State != store.UserActive {
		return resetOver("This account can no longer be reset with an emailed link. Ask your administrator.")
	}
	return nil
}

// resetDeadline is when a reset opened in a browser must be done.
func (h *Handler) resetDeadline(c *resetClaim) time.Time {
	return c.OpenedAt.Add(h.settings().cfg.Recovery.ResetLinkFor.D())
}

// showNoFactor says why an account without a second factor cannot be reset
// with a link, and whom to ask: an invitation not yet finished asks for a
// new onboarding email; anyone else the helpdesk.
func (h *Handler) showNoFactor(w http.ResponseWriter, status int, u *store.User) error {
	p := resetPasswordPage{changePasswordPage: changePasswordPage{page: h.page(nil, "", "Your password cannot be reset here")},
		Username: u.Username, NoFactor: true}
	p.Lines, p.Link, p.Label = h.noFactorAdvice(u)
	return h.show(w, status, "reset-password", p)
}

func (h *Handler) noFactorAdvice(u *store.User) (lines []string, link, label string) {
	if u.State == store.UserInvited {
		next := "Your account is still being set up. Ask for a new onboarding email: it brings a new initial password, and you set up your second factor when you first sign in."
		return []string{msgResetNoFactor, next}, PathInvitation, "Get a new onboarding email"
	}
	next := "Ask " + h.settings().cfg.Recovery.Helpdesk + " to reset your password. They will check who you are first."
	return []string{msgResetNoFactor, next}, PathSignIn, "Back to sign in"
}

// The reset-password step.

func (h *Handler) resetPasswordPage(f *flow) resetPasswordPage {
	p := resetPasswordPage{changePasswordPage: h.changePasswordPage(f), Username: f.user.Username}
	p.page = h.page(f, StepResetPassword, "Choose a new password")
	p.MinLength, p.MaxLength, p.FocusNew = f.set.policy.MinLength, f.set.policy.MaxLength, true
	return p
}

func (h *Handler) getResetPassword(w http.ResponseWriter, r *http.Request, f *flow) error {
	if !f.state.HasSecondFactor {
		return h.showNoFactor(w, http.StatusConflict, f.user)
	}
	return h.show(w, http.StatusOK, "reset-password", h.resetPasswordPage(f))
}

func (h *Handler) postResetPassword(w http.ResponseWriter, r *http.Request, f *flow) error {
	s, u := f.s, f.user
	// The guard put the second factor first; without one, nothing.
	if !f.state.HasSecondFactor || !s.j.FactorVerified {
		return h.showNoFactor(w, http.StatusConflict, u)
	}
	p := h.resetPasswordPage(f)
	next := r.PostForm.Get("new_password")
	if next == "" {
		p.fail("new_password", msgEnterNew)
		return h.show(w, http.StatusBadRequest, "reset-password", p)
	}
	if err := h.checkNewPassword(f, &p.page, next, r.PostForm.Get("confirm_password"), ""); err != nil {
		return err
	}
	if len(p.Errors) > 0 {
		return h.show(w, http.StatusUnprocessableEntity, "reset-password", p)
	}
	hash, err := password.Hash(next)
	if err != nil {
		return fmt.Errorf("hash password: %w", err)
	}
	now := h.now().UTC()
	claim, before := s.j.Reset, s.j
	if !now.Before(h.resetDeadline(claim)) {
		return h.checkReset(r.Context(), s, u)
	}
	s.j.Reset = nil
	s.j.PasswordVerified, s.j.PasswordAt = true, now
	var ended int
	err = h.commitRotated(w, r, s, func(ctx context.Context) error {
		// Once, by the browser that opened the link, and only while it is
		// the account's live link.
		if err := h.store.FinishPasswordReset(ctx, claim.ID, s.row.SID, now); err != nil {
			return err
		}
		n, err := h.replacePassword(ctx, u, hash, s)
		if err != nil {
			return err
		}
		ended = n
		// Every token, this browser's old ones included: whoever had the
		// old password keeps nothing.
		if err := h.store.RevokeOAuthBySubject(ctx, u.ID); err != nil {
			return err
		}
		return h.audit(ctx, r, s, event{Name: store.EventResetDone, UserID: u.ID, Username: u.Username,
			Detail: map[string]any{"link": claim.ID, "sessions_ended": n}})
	})
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		s.j = before
		return resetOver(msgResetConflict)
	}
	if err != nil {
		return err
	}
	h.notify(r, u, noticePasswordSet, sessionsEnded(ended))
	return redirect(w, r, PathNext)
}

// checkNewPassword adds to p what is wrong with a new password: the
// policy (length, common passwords, the username, old — the initial
// password it replaces, when there is one) and the two boxes alike.
func (h *Handler) checkNewPassword(f *flow, p *page, next, confirm, old string) error {
	if err := f.set.policy.Check(next, f.user.Username, old); err != nil {
		var pe *password.PolicyError
		if !errors.As(err, &pe) {
			return err
		}
		p.fail("new_password", pe.Reason)
	} else if next != confirm {
		p.fail("confirm_password", msgMismatch)
	}
	return nil
}
