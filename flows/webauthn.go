package flows

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/flows/passkey"
	"github.com/lanyard-idp/lanyard/provider/store"
	"github.com/lanyard-idp/lanyard/templates"
)

// Passkeys and security keys: the HTTP side of the WebAuthn ceremonies (the
// mechanics, on go-webauthn, are in the passkey subpackage). Three journey
// ceremonies — enrolment at mfa-enrol, the second factor at mfa-challenge,
// passwordless sign-in from the username page — and two on the account page
// (adding a passkey, confirming it is you). Each is two JSON endpoints that
// static/webauthn.js calls: "options" starts the ceremony and keeps its
// challenge in the browser's server-side session; the second takes the
// challenge out again (on first use, success or failure, under a new
// session id so that of racing requests only one can hold it), checks the
// authenticator's answer and, like every step, returns to the dispatcher.
//
// Every refusal — wrong origin or RP ID, a replayed or expired challenge,
// no user presence, no user verification where it is required, another
// user's credential, a sign count that went backwards, malformed or
// oversized input — stores nothing but the failure: it is counted by the
// same throttle as a wrong code and written to the audit log.

const (
	// ceremonyTTL is how long a challenge may be answered.
	ceremonyTTL = passkey.ChallengeTTL
	// methodWebAuthn is journey.FactorMethod for a passkey or security key.
	methodWebAuthn = "webauthn"
)

// Ceremony purposes: a challenge made for one is refused by every other.
const (
	ceremonyEnrol  = "enrol"  // mfa-enrol: register the first factor
	ceremonyMFA    = "mfa"    // mfa-challenge: the second factor
	ceremonySignIn = "signin" // passwordless, from the username page
	ceremonyAdd    = "add"    // account: add a passkey
	ceremonyReauth = "reauth" // account: confirm it is you
)

// Routes of the ceremonies (each has an options endpoint at path+"/options").
const (
	PathPasskeyEnrol     = "/signin/enrol/passkey"
	PathPasskeyChallenge = "/signin/mfa/passkey"
	PathPasskeySignIn    = "/signin/passkey"
	PathAccountPasskey   = "/account/passkeys"
	PathReauthPasskey    = "/account/reauth/passkey"
)

const optionsSuffix = "/options"

const (
	msgPasskeyFailed      = "Your passkey or security key could not be checked. Try again, or use another way to sign in."
	msgPasskeyExpired     = "That passkey request has expired or was already used. Try again."
	msgPasskeyUnavailable = "Passkeys cannot be used at this address. Use another way to sign in."
	msgPasskeyNoUV        = "Your passkey did not confirm it is you (with your PIN, fingerprint or face). Try again and confirm when asked, or sign in with your password."
	msgPasskeyClone       = "This passkey or security key cannot be trusted any more: it may have been copied. Use another way to sign in, remove it on your account page and tell your administrator."
	msgPasskeyNone        = "You have no passkey or security key yet."
	msgPasskeyMalformed   = "What your browser sent could not be read. Reload the page and try again."
)

// ceremony is a WebAuthn ceremony in flight, kept in the journey.
type ceremony struct {
	Purpose string    `json:"purpose"`
	UserID  string    `json:"user_id,omitempty"` // "" for passwordless
	Expires time.Time `json:"expires"`
	// Data is the challenge data the ceremony keeps (passkey.Challenge).
	Data json.RawMessage `json:"data"`
}

// newRelyingParty configures passkeys for the deployment: the RP ID is
// the issuer's host, the origins the issuer's origin and the configured
// extra origins. A host that is an IP address cannot be an RP ID (browsers
// refuse it too): passkeys are then unavailable and the pages say so.
func newRelyingParty(cfg *config.Config, iss *url.URL) (*passkey.RelyingParty, error) {
	return passkey.New(iss, cfg.WebAuthn.RPDisplayName, cfg.WebAuthn.ExtraOrigins)
}

// webAuthnUser loads u's handle and credentials; with create, a user who has
// none gets a random handle first (registration needs one).
func (h *Handler) webAuthnUser(ctx context.Context, u *store.User, create bool) (*passkey.User, error) {
	handle, err := h.store.WebAuthnHandle(ctx, u.ID)
	if errors.Is(err, store.ErrNotFound) && create {
		handle = make([]byte, 32)
		rand.Read(handle)
		err = h.store.SetWebAuthnHandle(ctx, u.ID, handle)
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("load WebAuthn handle: %w", err)
	}
	rows, err := h.store.WebAuthnCredentials(ctx, u.ID)
	if err != nil {
		return nil, fmt.Errorf("load passkeys: %w", err)
	}
	display := u.Name
	if display == "" {
		display = u.Username
	}
	return &passkey.User{ID: u.ID, Handle: handle, Name: u.Username, DisplayName: display, Rows: rows}, nil
}

// passkeyUI tells a page's passkey button where its ceremony's endpoints
// are; the script reads them from data attributes.
type passkeyUI struct {
	Available bool
	Options   string
	Finish    string
}

func (h *Handler) passkeyUI(path string) passkeyUI {
	return passkeyUI{Available: h.settings().wa != nil, Options: path + optionsSuffix, Finish: path}
}

// JSON plumbing.

// jsonAnswer is what every ceremony endpoint answers: where to go next, or
// a sentence to show beside the button (and, when the page is out of date,
// where to go instead).
type jsonAnswer struct {
	Redirect string `json:"redirect,omitempty"`
	Error    string `json:"error,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, err = w.Write(b)
	return err
}

// adaptJSON is adapt for the ceremony endpoints: an error becomes a JSON
// answer with the same plain sentence the error page would show.
func (h *Handler) adaptJSON(fn handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := fn(w, r)
		if err == nil {
			return
		}
		e := templates.Classify(err)
		e.Log(h.log, r)
		_ = writeJSON(w, e.Status, jsonAnswer{Error: e.Message})
	})
}

// elsewhere answers a ceremony request made from a page that is no longer
// the browser's current one.
func elsewhere(w http.ResponseWriter, to string) error {
	return writeJSON(w, http.StatusConflict, jsonAnswer{Redirect: to,
		Error: "This page is out of date. Continue where you left off."})
}

// Starting a ceremony.

// begin keeps the ceremony's challenge in the session (replacing any
// earlier one, whose challenge dies with it) and sends the options.
func (h *Handler) begin(w http.ResponseWriter, r *http.Request, s *session, purpose, userID string, c passkey.Challenge, options any) error {
	s.j.Ceremony = &ceremony{Purpose: purpose, UserID: userID, Expires: h.now().UTC().Add(ceremonyTTL), Data: c}
	if err := h.save(r.Context(), s); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, options)
}

// take removes the session's ceremony (the caller stores the removal) and
// returns its challenge data when it is for purpose and user and still
// fresh; otherwise the reason for the audit line.
func (h *Handler) take(s *session, purpose, userID string) (passkey.Challenge, store.Reason) {
	c := s.j.Ceremony
	s.j.Ceremony = nil
	switch {
	case c == nil:
		return nil, store.ReasonNoChallenge
	case c.Purpose != purpose:
		return nil, store.ReasonOtherCeremony
	case c.UserID != userID:
		return nil, store.ReasonOtherUser
	case !h.now().UTC().Before(c.Expires):
		return nil, store.ReasonChallengeExpired
	case !passkey.ValidChallenge(c.Data):
		return nil, store.ReasonUnreadableChallenge
	}
	return c.Data, ""
}

// refusal is a failed ceremony: why (for the audit line) and what the
// officer reads.
type refusal struct {
	status int
	reason store.Reason
	msg    string
}

func refuse(reason store.Reason, msg string) *refusal {
	return &refusal{status: http.StatusUnprocessableEntity, reason: reason, msg: msg}
}

// refusalOf tells the officer what a refusal of the passkey package means.
func refusalOf(p *passkey.Refusal) *refusal {
	rf := refuse(p.Reason, msgPasskeyFailed)
	switch p.Why {
	case passkey.Malformed:
		rf.msg = msgPasskeyMalformed
	case passkey.Oversized:
		rf.status, rf.msg = errFormTooLarge.Status, errFormTooLarge.Message
	case passkey.BadName:
		rf.status, rf.msg = http.StatusBadRequest, msgPasskeyNameBad
	case passkey.Cloned:
		rf.msg = msgPasskeyClone
	}
	return rf
}

// refused splits an error of the passkey package into a refusal of the
// answer and a failure of the server.
func refused(err error) (*refusal, error) {
	var p *passkey.Refusal
	if errors.As(err, &p) {
		return refusalOf(p), nil
	}
	return nil, err
}

// fail answers a refused ceremony: the challenge is consumed (under a new
// session id, so a racing request holding the same challenge finds its
// session gone), the failure is counted against the account and the
// address and audited, and the script gets the sentence to show.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, s *session, k throttleKeys, ev event, rf *refusal) error {
	if err := h.commitRotated(w, r, s, nil); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if ev.Detail == nil {
		ev.Detail = map[string]any{}
	}
	ev.Detail["factor"] = methodWebAuthn
	ev.Detail["reason"] = store.Reason(truncate(string(rf.reason), 300))
	if err := h.failed(r.Context(), r, s, k, ev); err != nil {
		return err
	}
	return writeJSON(w, rf.status, jsonAnswer{Error: rf.msg})
}

// cloneWarning audits an assertion whose sign count went backwards: the
// key may have been copied, and the passkey package refused it.
func (h *Handler) cloneWarning(ctx context.Context, r *http.Request, s *session, u *store.User, err error) {
	var p *passkey.Refusal
	if !errors.As(err, &p) || p.Why != passkey.Cloned {
		return
	}
	h.log.Warn("passkey sign count went backwards: refused", "user", u.ID)
	h.auditLog(ctx, r, s, event{Name: evWebAuthnClone, UserID: u.ID, Username: u.Username,
		Detail: map[string]any{"stored_count": p.Stored, "presented_count": p.Presented}})
}

// Registration.

// beginRegistration starts a registration for u (passkey.BeginRegistration).
func (h *Handler) beginRegistration(w http.ResponseWriter, r *http.Request, s *session, u *store.User, purpose string) error {
	rp := h.settings().wa
	wu, err := h.webAuthnUser(r.Context(), u, true)
	if err != nil {
		return err
	}
	options, c, err := rp.BeginRegistration(wu)
	if err != nil {
		return err
	}
	return h.begin(w, r, s, purpose, u.ID, c, options)
}

const msgPasskeyNameBad = "Give the passkey a name of at most 64 letters, digits, spaces or punctuation."

// Assertions.

// beginAssertion starts an assertion with one of u's credentials.
func (h *Handler) beginAssertion(w http.ResponseWriter, r *http.Request, s *session, u *store.User, purpose string) error {
	rp := h.settings().wa
	wu, err := h.webAuthnUser(r.Context(), u, false)
	if err != nil {
		return err
	}
	options, c, err := rp.BeginLogin(wu)
	if errors.Is(err, passkey.ErrNoCredentials) {
		return &pageError{Status: http.StatusBadRequest, Message: msgPasskeyNone}
	}
	if err != nil {
		return err
	}
	return h.begin(w, r, s, purpose, u.ID, c, options)
}

// useAssertion records a verified assertion in the caller's transaction:
// conditional on the stored sign count, so two requests presenting answers
// to one challenge cannot both record theirs.
func (h *Handler) useAssertion(ctx context.Context, v *passkey.Verified, now time.Time) error {
	return h.store.UpdateWebAuthnUse(ctx, v.Row.ID, v.Row.SignCount, v.NewCount, now)
}

// Finishing a signed-in user's ceremony.

// ceremonyAnswer is a signed-in user's answer to a ceremony with its
// challenge, and what a later failure is counted against and audited as.
type ceremonyAnswer struct {
	k         throttleKeys
	ev        event
	answer    passkey.Answer
	challenge passkey.Challenge
}

// readAnswer runs the checks every signed-in ceremony's finish starts with:
// passkeys available here, the user not locked out, a readable answer to a
// fresh challenge of this ceremony and user. A nil answer with a nil error
// means it has answered the request itself.
func (h *Handler) readAnswer(w http.ResponseWriter, r *http.Request, f *flow, ceremony string) (ans *ceremonyAnswer, err error) {
	s, u := f.s, f.user
	// An assertion proves a factor; a failed registration guesses nothing
	// and counts like a mistyped password.
	k := h.factorKeys(r, u)
	if ceremony == ceremonyEnrol || ceremony == ceremonyAdd {
		k = h.passwordKeys(r, u.Username, u)
	}
	if l, err := h.attempt(r.Context(), &k); err != nil || l {
		if err != nil {
			return nil, err
		}
		return nil, writeJSON(w, http.StatusTooManyRequests, jsonAnswer{Error: msgTooManyTries})
	}
	// A readable answer is released by the finish that checks it; one
	// refused here is kept as a failure by fail.
	defer func() {
		if ans == nil {
			h.release(k)
		}
	}()
	ev := event{UserID: u.ID, Username: u.Username, Detail: map[string]any{"ceremony": ceremony}}
	answer, bad := passkey.ReadAnswer(r.Body)
	c, why := h.take(s, ceremony, u.ID)
	switch {
	case bad != nil:
		return nil, h.fail(w, r, s, k, ev, refusalOf(bad))
	case c == nil:
		return nil, h.fail(w, r, s, k, ev, refuse(why, msgPasskeyExpired))
	}
	return &ceremonyAnswer{k: k, ev: ev, answer: answer, challenge: c}, nil
}

// finishAssertion reads and verifies a signed-in user's assertion. A nil
// assertion with a nil error means it has answered the request itself.
func (h *Handler) finishAssertion(w http.ResponseWriter, r *http.Request, f *flow, ceremony string) (*passkey.Verified, *ceremonyAnswer, error) {
	ans, err := h.readAnswer(w, r, f, ceremony)
	if err != nil || ans == nil {
		return nil, nil, err
	}
	defer h.release(ans.k)
	ctx := r.Context()
	v, err := h.verifyAssertion(ctx, f.user, ans)
	h.cloneWarning(ctx, r, f.s, f.user, err)
	rf, err := refused(err)
	if err != nil {
		return nil, nil, err
	}
	if rf != nil {
		return nil, nil, h.fail(w, r, f.s, ans.k, ans.ev, rf)
	}
	return v, ans, nil
}

// verifyAssertion checks an assertion by one of u's credentials.
func (h *Handler) verifyAssertion(ctx context.Context, u *store.User, ans *ceremonyAnswer) (*passkey.Verified, error) {
	a, err := passkey.ParseAssertion(ans.answer)
	if err != nil {
		return nil, err
	}
	wu, err := h.webAuthnUser(ctx, u, false)
	if err != nil {
		return nil, err
	}
	return h.settings().wa.FinishLogin(wu, ans.challenge, a)
}

// finishRegistration reads and verifies a signed-in user's registration. A
// nil registration with a nil error means it has answered the request
// itself.
func (h *Handler) finishRegistration(w http.ResponseWriter, r *http.Request, f *flow, ceremony string) (*passkey.Registration, *ceremonyAnswer, error) {
	ans, err := h.readAnswer(w, r, f, ceremony)
	if err != nil || ans == nil {
		return nil, nil, err
	}
	defer h.release(ans.k)
	wu, err := h.webAuthnUser(r.Context(), f.user, false)
	if err != nil {
		return nil, nil, err
	}
	reg, err := f.set.wa.FinishRegistration(wu, ans.challenge, ans.answer, h.now().UTC())
	rf, err := refused(err)
	if err != nil {
		return nil, nil, err
	}
	if rf != nil {
		return nil, nil, h.fail(w, r, f.s, ans.k, ans.ev, rf)
	}
	return reg, ans, nil
}

// commitCeremony stores a verified ceremony's outcome (fn) under a new
// session id. When a racing request of this browser used the challenge
// first, the journey goes back to before and the ceremony fails as
// expired. ok is false when the request has been answered.
func (h *Handler) commitCeremony(w http.ResponseWriter, r *http.Request, s *session, before journey, ans *ceremonyAnswer, fn func(ctx context.Context) error) (ok bool, err error) {
	err = h.commitRotated(w, r, s, fn)
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		s.j = before
		return false, h.fail(w, r, s, ans.k, ans.ev, refuse(store.ReasonChallengeUsed, msgPasskeyExpired))
	}
	if err != nil {
		return false, err
	}
	return true, nil
}

// The journey's ceremonies.

// postPasskeyEnrolOptions starts registering the first factor (mfa-enrol).
func (h *Handler) postPasskeyEnrolOptions(w http.ResponseWriter, r *http.Request, f *flow) error {
	return h.beginRegistration(w, r, f.s, f.user, ceremonyEnrol)
}

// postPasskeyEnrol finishes it: like a confirmed authenticator code, a
// registered passkey completes mfa-enrol and brings fresh recovery codes.
func (h *Handler) postPasskeyEnrol(w http.ResponseWriter, r *http.Request, f *flow) error {
	reg, ans, err := h.finishRegistration(w, r, f, ceremonyEnrol)
	if err != nil || reg == nil {
		return err
	}
	s, u := f.s, f.user
	before := s.j
	hashes, err := h.enrolled(s, methodWebAuthn, h.now().UTC(), reg.AMR)
	if err != nil {
		return err
	}
	ok, err := h.commitCeremony(w, r, s, before, ans, h.storeFactor(r, f, newFactor{passkey: reg.Row}, hashes,
		event{Name: evMFAEnrol, UserID: u.ID, Username: u.Username, Detail: map[string]any{"method": methodWebAuthn, "kind": reg.Kind}}))
	if !ok || err != nil {
		return err
	}
	h.notifyReplaced(r, f, "Passkey: "+reg.Row.Name)
	return writeJSON(w, http.StatusOK, jsonAnswer{Redirect: PathNext})
}

// postPasskeyChallengeOptions starts the second factor (mfa-challenge).
func (h *Handler) postPasskeyChallengeOptions(w http.ResponseWriter, r *http.Request, f *flow) error {
	return h.beginAssertion(w, r, f.s, f.user, ceremonyMFA)
}

// postPasskeyChallenge finishes it.
func (h *Handler) postPasskeyChallenge(w http.ResponseWriter, r *http.Request, f *flow) error {
	a, ans, err := h.finishAssertion(w, r, f, ceremonyMFA)
	if err != nil || a == nil {
		return err
	}
	s, u := f.s, f.user
	now := h.now().UTC()
	before := s.j
	s.j.factorVerified(methodWebAuthn, now, a.AMR)
	ok, err := h.commitCeremony(w, r, s, before, ans, func(ctx context.Context) error {
		if err := h.useAssertion(ctx, a, now); err != nil {
			return err
		}
		return h.audit(ctx, r, s, event{Name: evMFAChallenge, UserID: u.ID, Username: u.Username,
			Detail: map[string]any{"method": methodWebAuthn, "amr": a.AMR}})
	})
	if !ok || err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, jsonAnswer{Redirect: PathNext})
}

// postPasskeySignInOptions starts a passwordless sign-in: a discoverable
// credential, user verification required. ?mediation=conditional is the
// request the username field's autofill answers. It is offered on the
// username page, to a browser with no session too.
func (h *Handler) postPasskeySignInOptions(w http.ResponseWriter, r *http.Request, f *flow) error {
	s, err := f.s, error(nil)
	if s == nil {
		if s, err = h.create(r.Context(), w, r); err != nil {
			return err
		}
	}
	options, c, err := f.set.wa.BeginDiscoverable(r.URL.Query().Get("mediation") == "conditional")
	if err != nil {
		return err
	}
	return h.begin(w, r, s, ceremonySignIn, "", c, options)
}

// postPasskeySignIn finishes a passwordless sign-in. The user is the owner
// of the user handle the authenticator returned, and the credential must be
// theirs; with user verification it stands for both factors, and the
// dispatcher takes over as after a password. Until the credential names an
// account, a failure is charged to the client address alone: junk sent to
// this endpoint locks no officer out. A passkey is never refused by a
// password lock; once it names an account, that account's second-factor
// lock applies (or, in a browser the account knows, the browser's own).
func (h *Handler) postPasskeySignIn(w http.ResponseWriter, r *http.Request, f *flow) error {
	s, rp := f.s, f.set.wa
	ctx := r.Context()
	k := h.factorKeys(r, nil)
	if s == nil {
		// No session, so no challenge: a replay from a closed browser, or a
		// forged request. Count it against the address.
		h.failedNoSession(ctx, r, k)
		return writeJSON(w, http.StatusUnprocessableEntity, jsonAnswer{Error: msgPasskeyExpired})
	}
	if l, err := h.locked(ctx, k); err != nil || l {
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusTooManyRequests, jsonAnswer{Error: msgTooManyTries})
	}
	ev := event{Detail: map[string]any{"ceremony": ceremonySignIn}}
	answer, bad := passkey.ReadAnswer(r.Body)
	c, why := h.take(s, ceremonySignIn, "")
	switch {
	case bad != nil:
		return h.fail(w, r, s, k, ev, refusalOf(bad))
	case c == nil:
		return h.fail(w, r, s, k, ev, refuse(why, msgPasskeyExpired))
	}
	parsed, err := passkey.ParseAssertion(answer)
	if rf, err := refused(err); err != nil || rf != nil {
		if err != nil {
			return err
		}
		return h.fail(w, r, s, k, ev, rf)
	}
	// Who the handle names, so that the failure counts against them.
	var u *store.User
	var owner *passkey.User
	if u, err = h.store.UserByWebAuthnHandle(ctx, parsed.UserHandle()); err == nil {
		if owner, err = h.webAuthnUser(ctx, u, false); err != nil {
			return err
		}
		k = h.factorKeys(r, u)
		ev.UserID, ev.Username = u.ID, u.Username
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if !parsed.UserVerified() {
		return h.fail(w, r, s, k, ev, refuse(store.ReasonNoUserVerification, msgPasskeyNoUV))
	}
	if owner == nil {
		return h.fail(w, r, s, k, ev, refuse(store.ReasonUnknownUserHandle, msgPasskeyFailed))
	}
	if u.State == store.UserDisabled {
		return h.fail(w, r, s, k, ev, refuse(store.ReasonDisabled, msgPasskeyFailed))
	}
	if l, err := h.attempt(ctx, &k); err != nil || l {
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusTooManyRequests, jsonAnswer{Error: msgTooManyTries})
	}
	defer h.release(k)
	a, err := rp.FinishDiscoverable(owner, c, parsed)
	h.cloneWarning(ctx, r, s, u, err)
	if rf, err := refused(err); err != nil || rf != nil {
		if err != nil {
			return err
		}
		return h.fail(w, r, s, k, ev, rf)
	}
	if h.initialExpired(u) {
		// A passkey enrolled in a journey never finished does not outlive
		// the invitation: said, as after the right initial password, only
		// to whoever holds it.
		if err := h.commitRotated(w, r, s, nil); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		ev.Name, ev.Detail["factor"], ev.Detail["reason"] = evSigninFailure, methodWebAuthn, store.ReasonInvitationExpired
		h.auditLog(ctx, r, s, ev)
		return writeJSON(w, http.StatusForbidden, jsonAnswer{Error: msgInviteExpired})
	}

	// A new sign-in, as after a password, in which the passkey stands for
	// both factors.
	now := h.now().UTC()
	before, beforeRow := s.j, *s.row
	s.newSignIn(u, now)
	s.j.factorVerified(methodWebAuthn, now, a.AMR)
	s.j.Passwordless = true
	err = h.commitRotated(w, r, s, func(ctx context.Context) error {
		if err := h.useAssertion(ctx, a, now); err != nil {
			return err
		}
		return h.audit(ctx, r, s, event{Name: evSigninPasskey, UserID: u.ID, Username: u.Username,
			Detail: map[string]any{"amr": a.AMR}})
	})
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		s.j, *s.row, s.ended = before, beforeRow, nil
		return h.fail(w, r, s, k, ev, refuse(store.ReasonChallengeUsed, msgPasskeyExpired))
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, jsonAnswer{Redirect: PathNext})
}

// failedNoSession counts and audits a ceremony answer from a browser with
// no session at all.
func (h *Handler) failedNoSession(ctx context.Context, r *http.Request, k throttleKeys) {
	ev := event{Detail: map[string]any{"factor": methodWebAuthn, "reason": store.ReasonNoSession}}
	if err := h.failed(ctx, r, nil, k, ev); err != nil {
		h.log.Warn("cannot record a failed passkey attempt", "err", err)
	}
}

// b64 is how credential ids travel in forms (base64url, no padding).
var b64 = base64.RawURLEncoding
