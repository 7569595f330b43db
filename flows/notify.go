package flows

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/lanyard-idp/lanyard/flows/mail"
	"github.com/lanyard-idp/lanyard/provider/store"
)

// Security notices: an email to the officer after every change to how they
// sign in, so a change they did not make does not go unnoticed. The notice
// says what changed, when, and from which browser and address; it never
// carries a code, a secret or a link that acts on the account.

// Notices (the sentence is also the mail's subject).
const (
	noticePasskeyAdded     = "A passkey was added to your account"
	noticePasskeyRemoved   = "A passkey was removed from your account"
	noticeTOTPAdded        = "An authenticator app was added to your account"
	noticeTOTPRemoved      = "The authenticator app was removed from your account"
	noticeRecoveryRenewed  = "New recovery codes were made for your account"
	noticePasswordChanged  = "Your password was changed"
	noticeSignedOutOthers  = "Your account was signed out of its other sessions"
	noticeSignedOutAll     = "Your account was signed out everywhere"
	noticeSessionSignedOut = "One of your sessions was signed out"
	noticeDeviceAdded      = "A phone was paired with your account for sign-in approval"
	noticeDeviceRemoved    = "A phone was removed from your account"
	noticeApprovalDenied   = "A sign-in to your account was refused on your phone"
	noticeApprovalReported = "You reported a sign-in that was not you: your account was signed out everywhere. Change your password now"
)

// mailTimeout bounds one notice's delivery.
const mailTimeout = 30 * time.Second

// SecurityNoticeMail is the data of the mail/security-notice templates: a
// notice of a change, or an alert about what someone else tried (Lines).
type SecurityNoticeMail struct {
	Product     string
	Environment string
	Name        string
	Username    string
	// What is the sentence: "A passkey was added to your account".
	What string
	// Detail names the thing changed ("Passkey: YubiKey 5"), or "".
	Detail     string
	When       string // "2 March 2026 at 09:00 UTC"
	Device     string // "Firefox on Windows"
	Address    string
	AccountURL string
	// Lines, for an alert about what someone else tried, are its
	// paragraphs (what happened, what it means, what to do); they replace
	// the advice a notice of a change ends with.
	Lines []string
}

// notify sends a security notice to u in the background (the change is
// already stored; a slow relay must not hold the officer's page). A failure
// is logged, without the message.
func (h *Handler) notify(r *http.Request, u *store.User, what, detail string) {
	h.sendMail(u, "security-notice", what, h.noticeData(r, u, what, detail))
}

// noticeData is what every security email says: who, what, when, from
// which browser and address.
func (h *Handler) noticeData(r *http.Request, u *store.User, what, detail string) SecurityNoticeMail {
	set := h.settings()
	return SecurityNoticeMail{
		Product:     set.cfg.Journey.DisplayName,
		Environment: set.cfg.Journey.Environment,
		Name:        u.Name,
		Username:    u.Username,
		What:        what,
		Detail:      detail,
		When:        h.now().UTC().Format(mailTimeLayout),
		Device:      describeAgent(r.UserAgent()),
		Address:     clientAddr(r),
		AccountURL:  strings.TrimSuffix(set.issuer.String(), "/") + PathAccount,
	}
}

// mailTimeLayout is how a time reads in the emails.
const mailTimeLayout = "2 January 2006 at 15:04 UTC"

// sendMail renders the mail template page with data and sends it to u in
// the background.
func (h *Handler) sendMail(u *store.User, page, what string, data any) {
	if h.mailer == nil {
		return
	}
	subject, text, html, err := h.pages.Mail(page, data)
	if err != nil {
		h.log.Error("cannot render a security email", "mail", page, "err", err)
		return
	}
	to := u.Email
	if to == "" {
		to = u.Username
	}
	msg := mail.Message{To: to, Subject: subject, Text: text, HTML: html}
	h.mailWG.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), mailTimeout)
		defer cancel()
		if err := h.mailer.Send(ctx, msg); err != nil {
			h.log.Error("cannot send a security email", "user", u.ID, "mail", what, "err", err)
		}
	})
}

// Security alerts: what someone else tried against the account, in plain
// words, and what to do about it.

type alertKind int

const (
	// alertLocked: wrong passwords from browsers the account does not know
	// locked those browsers out of it.
	alertLocked alertKind = iota
	// alertFactorGuessed: wrong second factors after a correct password.
	alertFactorGuessed
	// alertResetGuessed: wrong second factors after an emailed reset link.
	alertResetGuessed
)

// The alerts' subjects.
const (
	alertLockedWhat        = "Sign-ins to your account were paused after wrong passwords"
	alertFactorGuessedWhat = "Someone who knows your password tried to sign in as you"
	alertResetGuessedWhat  = "Someone tried to reset your password with a link sent to your email"
)

// alert emails u what the attempts of kind from r's browser mean; until is
// when the lock they caused ends.
func (h *Handler) alert(r *http.Request, u *store.User, kind alertKind, until time.Time) {
	at := until.UTC().Format("15:04 UTC on 2 January 2006")
	factorPaused := "Until " + at + ", second-factor codes from browsers you have not signed in with before are refused. Your own browsers still work."
	var data SecurityNoticeMail
	switch kind {
	case alertLocked:
		data = h.noticeData(r, u, alertLockedWhat, "")
		data.Lines = []string{
			"Someone entered wrong passwords for your account several times, from a browser you have not signed in with before. Sign-ins from browsers you have not used are paused until " + at + ".",
			"Browsers where you have signed in before, and your passkeys, still work as usual. Their password was not accepted: if this was not you, there is nothing you need to do. If it happens again and again, tell your administrator.",
		}
	case alertFactorGuessed:
		data = h.noticeData(r, u, alertFactorGuessedWhat, "")
		data.Lines = []string{
			"Someone entered your correct password, then wrong codes for your second factor, several times. If this was not you, your password is known to someone else.",
			"Change your password now: sign in on your account page, choose Change password under “How you sign in”, and pick a new password that you use nowhere else. Changing it signs out every other session. If you cannot sign in, ask your administrator to reset your password.",
			factorPaused,
		}
	case alertResetGuessed:
		data = h.noticeData(r, u, alertResetGuessedWhat, "")
		data.Lines = []string{
			"Someone opened a password-reset link that was sent to your email address, then entered wrong codes for your second factor several times. Your password was not changed: the link alone is not enough.",
			"If this was not you, someone may be able to read your email. Change your email password, tell your administrator, and check the sessions on your account page.",
			factorPaused,
		}
	}
	h.sendMail(u, "security-notice", data.What, data)
}

// describeAgent turns a User-Agent header into "Firefox on Windows": enough
// for an officer to recognise a browser, nothing more.
func describeAgent(ua string) string {
	if ua == "" {
		return "Unknown browser"
	}
	browser := "Unknown browser"
	for _, b := range []struct{ token, name string }{
		{"Edg/", "Edge"}, {"EdgA/", "Edge"}, {"EdgiOS/", "Edge"},
		{"OPR/", "Opera"}, {"SamsungBrowser/", "Samsung Internet"},
		{"Firefox/", "Firefox"}, {"FxiOS/", "Firefox"},
		{"CriOS/", "Chrome"}, {"Chrome/", "Chrome"}, {"Chromium/", "Chromium"},
		{"Safari/", "Safari"},
		{"curl/", "curl"}, {"Go-http-client/", "a program"}, {"python-requests/", "a program"},
	} {
		if strings.Contains(ua, b.token) {
			browser = b.name
			break
		}
	}
	system := ""
	for _, o := range []struct{ token, name string }{
		{"iPhone", "iPhone"}, {"iPad", "iPad"}, {"Android", "Android"},
		{"Windows", "Windows"}, {"CrOS", "ChromeOS"}, {"Macintosh", "macOS"}, {"Mac OS X", "macOS"},
		{"Linux", "Linux"},
	} {
		if strings.Contains(ua, o.token) {
			system = o.name
			break
		}
	}
	if system == "" {
		return browser
	}
	return browser + " on " + system
}
