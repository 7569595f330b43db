package flows

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/provider/store"
	"github.com/lanyard-idp/lanyard/templates"
)

// Passkeys and security keys (WebAuthn, with go-webauthn). Three journey
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
	ceremonyTTL = 5 * time.Minute
	// methodWebAuthn is journey.FactorMethod for a passkey or security key.
	methodWebAuthn = "webauthn"
	// maxPasskeyName bounds the name an officer gives a passkey.
	maxPasskeyName = 64
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
	// Data is go-webauthn's SessionData (challenge, RP ID, allowed
	// credentials, user verification) as JSON.
	Data json.RawMessage `json:"data"`
}

// newRelyingParty configures go-webauthn for the deployment: the RP ID is
// the issuer's host, the origins the issuer's origin and the configured
// extra origins. A host that is an IP address cannot be an RP ID (browsers
// refuse it too): passkeys are then unavailable and the pages say so.
func newRelyingParty(cfg *config.Config, iss *url.URL) (*webauthn.WebAuthn, error) {
	host := iss.Hostname()
	if net.ParseIP(host) != nil {
		return nil, fmt.Errorf("the issuer's host %s is an IP address; passkeys need a domain name (in development, use localhost)", host)
	}
	origins := append([]string{iss.Scheme + "://" + iss.Host}, cfg.WebAuthn.ExtraOrigins...)
	return webauthn.New(&webauthn.Config{
		RPID:                  host,
		RPDisplayName:         cfg.WebAuthn.RPDisplayName,
		RPOrigins:             origins,
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:        protocol.ResidentKeyRequirementPreferred,
			RequireResidentKey: protocol.ResidentKeyNotRequired(),
			UserVerification:   protocol.VerificationPreferred,
		},
		// The browser gives up after this; the server enforces its own
		// expiry with the injected clock (ceremony.Expires).
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Timeout: ceremonyTTL, TimeoutUVD: ceremonyTTL},
			Registration: webauthn.TimeoutConfig{Timeout: ceremonyTTL, TimeoutUVD: ceremonyTTL},
		},
	})
}

// waUser is an officer as go-webauthn sees them: the random user handle
// (never the user id or the email) and their credentials.
type waUser struct {
	u      *store.User
	handle []byte
	creds  []webauthn.Credential
	rows   []store.WebAuthnCredential
}

func (w *waUser) WebAuthnID() []byte   { return w.handle }
func (w *waUser) WebAuthnName() string { return w.u.Username }
func (w *waUser) WebAuthnDisplayName() string {
	if w.u.Name != "" {
		return w.u.Name
	}
	return w.u.Username
}
func (w *waUser) WebAuthnCredentials() []webauthn.Credential { return w.creds }

// row returns the stored credential with this id.
func (w *waUser) row(id []byte) *store.WebAuthnCredential {
	for i := range w.rows {
		if string(w.rows[i].ID) == string(id) {
			return &w.rows[i]
		}
	}
	return nil
}

// webAuthnUser loads u's handle and credentials; with create, a user who has
// none gets a random handle first (registration needs one).
func (h *Handler) webAuthnUser(ctx context.Context, u *store.User, create bool) (*waUser, error) {
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
	w := &waUser{u: u, handle: handle, rows: rows}
	for _, row := range rows {
		w.creds = append(w.creds, credentialOf(row))
	}
	return w, nil
}

// credentialOf rebuilds go-webauthn's credential record from the stored
// row. The columns (id, key, sign count) are authoritative; Data keeps the
// rest (flags, attestation format).
func credentialOf(row store.WebAuthnCredential) webauthn.Credential {
	var c webauthn.Credential
	if len(row.Data) > 0 {
		_ = json.Unmarshal(row.Data, &c)
	}
	c.ID, c.PublicKey = row.ID, row.PublicKey
	c.Authenticator.SignCount = row.SignCount
	c.Authenticator.AAGUID = row.AAGUID
	c.Authenticator.CloneWarning = false
	c.Transport = nil
	for _, t := range row.Transports {
		c.Transport = append(c.Transport, protocol.AuthenticatorTransport(t))
	}
	return c
}

// synced reports whether a stored credential is a synced passkey (backup
// eligible) rather than bound to one device.
func synced(row store.WebAuthnCredential) bool {
	return credentialOf(row).Flags.BackupEligible
}

// passkeyAMR is what an assertion or registration proved, per RFC 8176:
// "swk" for a synced (backup-eligible) passkey, "hwk" for a key bound to
// one device, and "user" when the authenticator verified the user.
func passkeyAMR(flags protocol.AuthenticatorFlags) []string {
	amr := []string{"hwk"}
	if flags.HasBackupEligible() {
		amr = []string{"swk"}
	}
	if flags.HasUserVerified() {
		amr = append(amr, "user")
	}
	return amr
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

// finishBody is what the script posts to finish a ceremony.
type finishBody struct {
	// Credential is PublicKeyCredential.toJSON().
	Credential json.RawMessage `json:"credential"`
	// Name is the name typed for a new passkey (account page).
	Name string `json:"name"`
}

// readFinish reads the posted answer within the body limit. An error is a
// reason for the audit line; the caller refuses the ceremony.
func readFinish(r *http.Request) (finishBody, store.Reason) {
	var b finishBody
	raw, err := io.ReadAll(r.Body)
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return b, store.ReasonOversized
	case err != nil:
		return b, store.ReasonUnreadableRequest
	}
	if err := json.Unmarshal(raw, &b); err != nil || len(b.Credential) == 0 {
		return b, store.ReasonMalformedRequest
	}
	return b, ""
}

// Starting a ceremony.

// begin keeps the ceremony's challenge in the session (replacing any
// earlier one, whose challenge dies with it) and sends the options.
func (h *Handler) begin(w http.ResponseWriter, r *http.Request, s *session, purpose, userID string, sd *webauthn.SessionData, options any) error {
	data, err := json.Marshal(sd)
	if err != nil {
		return err
	}
	s.j.Ceremony = &ceremony{Purpose: purpose, UserID: userID, Expires: h.now().UTC().Add(ceremonyTTL), Data: data}
	if err := h.save(r.Context(), s); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, options)
}

// take removes the session's ceremony (the caller stores the removal) and
// returns its challenge data when it is for purpose and user and still
// fresh; otherwise the reason for the audit line.
func (h *Handler) take(s *session, purpose, userID string) (*webauthn.SessionData, store.Reason) {
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
	}
	var sd webauthn.SessionData
	if err := json.Unmarshal(c.Data, &sd); err != nil {
		return nil, store.ReasonUnreadableChallenge
	}
	return &sd, ""
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

// badBody is the refusal of an unreadable answer; an oversized one is
// told so.
func badBody(reason store.Reason) *refusal {
	rf := refuse(reason, msgPasskeyMalformed)
	if reason == store.ReasonOversized {
		rf.status, rf.msg = errFormTooLarge.Status, errFormTooLarge.Message
	}
	return rf
}

// protocolReason turns go-webauthn's error into a reason for the audit
// line. Nothing in a ceremony is secret (challenges are single-use and
// public keys public), so its debugging detail — which origin, which RP ID
// hash — goes in too, cut short: it is what an administrator needs.
func protocolReason(prefix store.Reason, err error) store.Reason {
	msg := string(prefix) + ": " + err.Error()
	var pe *protocol.Error
	if errors.As(err, &pe) && pe.Details != "" {
		msg = string(prefix) + ": " + pe.Details
		if pe.DevInfo != "" {
			msg += " (" + pe.DevInfo + ")"
		}
	}
	return store.Reason(truncate(msg, 300))
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
	ev.Detail["reason"] = rf.reason
	if err := h.failed(r.Context(), r, s, k, ev); err != nil {
		return err
	}
	return writeJSON(w, rf.status, jsonAnswer{Error: rf.msg})
}

// locked refuses an attempt while the account or the address is locked.
func (h *Handler) locked(ctx context.Context, k throttleKeys) (bool, error) {
	until, err := h.lockedUntil(ctx, k)
	return !until.IsZero(), err
}

// cloneWarning audits an assertion whose sign count did not grow: the key
// may have been copied. go-webauthn only flags it; Lanyard refuses it.
func (h *Handler) cloneWarning(ctx context.Context, r *http.Request, s *session, u *store.User, stored, got uint32) {
	h.log.Warn("passkey sign count went backwards: refused", "user", u.ID)
	h.auditLog(ctx, r, s, event{Name: evWebAuthnClone, UserID: u.ID, Username: u.Username,
		Detail: map[string]any{"stored_count": stored, "presented_count": got}})
}

// Registration.

// beginRegistration starts a registration for u: a discoverable credential
// where the authenticator can make one, user verification preferred, no
// attestation, and never a second credential on an authenticator that
// already holds one of u's.
func (h *Handler) beginRegistration(w http.ResponseWriter, r *http.Request, s *session, u *store.User, purpose string) error {
	rp := h.settings().wa
	if rp == nil {
		return &pageError{Status: http.StatusNotFound, Message: msgPasskeyUnavailable}
	}
	wu, err := h.webAuthnUser(r.Context(), u, true)
	if err != nil {
		return err
	}
	var exclude []protocol.CredentialDescriptor
	for _, c := range wu.creds {
		exclude = append(exclude, c.Descriptor())
	}
	options, sd, err := rp.BeginRegistration(wu,
		webauthn.WithAuthenticatorSelection(rp.Config.AuthenticatorSelection),
		webauthn.WithConveyancePreference(protocol.PreferNoAttestation),
		webauthn.WithExclusions(exclude))
	if err != nil {
		return fmt.Errorf("begin registration: %w", err)
	}
	return h.begin(w, r, s, purpose, u.ID, sd, options)
}

// verifyRegistration checks a registration answer against the challenge;
// it returns the credential and the row to store.
func (h *Handler) verifyRegistration(ctx context.Context, u *store.User, sd *webauthn.SessionData, body finishBody) (*store.WebAuthnCredential, protocol.AuthenticatorFlags, *refusal, error) {
	rp := h.settings().wa
	parsed, err := protocol.ParseCredentialCreationResponseBytes(body.Credential)
	if err != nil {
		return nil, 0, refuse(protocolReason(store.ReasonMalformedRegistration, err), msgPasskeyMalformed), nil
	}
	wu, err := h.webAuthnUser(ctx, u, false)
	if err != nil {
		return nil, 0, nil, err
	}
	cred, err := rp.CreateCredential(wu, *sd, parsed)
	if err != nil {
		return nil, 0, refuse(protocolReason(store.ReasonRegistrationRefused, err), msgPasskeyFailed), nil
	}
	if wu.row(cred.ID) != nil {
		return nil, 0, refuse(store.ReasonCredentialExists, msgPasskeyFailed), nil
	}
	flags := parsed.Response.AttestationObject.AuthData.Flags
	name, ok := passkeyName(body.Name)
	if !ok {
		return nil, 0, &refusal{status: http.StatusBadRequest, reason: store.ReasonBadPasskeyName, msg: msgPasskeyNameBad}, nil
	}
	if name == "" {
		name = defaultPasskeyName(flags, wu.rows)
	}
	data, err := json.Marshal(cred)
	if err != nil {
		return nil, 0, nil, err
	}
	row := &store.WebAuthnCredential{
		ID:        cred.ID,
		UserID:    u.ID,
		Name:      name,
		PublicKey: cred.PublicKey,
		SignCount: cred.Authenticator.SignCount,
		AAGUID:    cred.Authenticator.AAGUID,
		Data:      data,
		CreatedAt: h.now().UTC(),
	}
	for _, t := range cred.Transport {
		row.Transports = append(row.Transports, string(t))
	}
	return row, flags, nil, nil
}

const msgPasskeyNameBad = "Give the passkey a name of at most 64 letters, digits, spaces or punctuation."

// passkeyName cleans a name typed for a passkey: trimmed, at most 64
// characters, printable. "" means none was given.
func passkeyName(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > maxPasskeyName {
		return "", false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return "", false
		}
	}
	return s, true
}

// defaultPasskeyName names a new credential by its kind, numbered when
// the officer has others of that kind.
func defaultPasskeyName(flags protocol.AuthenticatorFlags, existing []store.WebAuthnCredential) string {
	base := "Security key"
	if flags.HasBackupEligible() {
		base = "Passkey"
	}
	taken := map[string]bool{}
	for _, c := range existing {
		taken[c.Name] = true
	}
	if !taken[base] {
		return base
	}
	for i := 2; ; i++ {
		if n := fmt.Sprintf("%s %d", base, i); !taken[n] {
			return n
		}
	}
}

// Assertions.

// beginAssertion starts an assertion with one of u's credentials.
func (h *Handler) beginAssertion(w http.ResponseWriter, r *http.Request, s *session, u *store.User, purpose string) error {
	rp := h.settings().wa
	if rp == nil {
		return &pageError{Status: http.StatusNotFound, Message: msgPasskeyUnavailable}
	}
	wu, err := h.webAuthnUser(r.Context(), u, false)
	if err != nil {
		return err
	}
	if len(wu.creds) == 0 || len(wu.handle) == 0 {
		return &pageError{Status: http.StatusBadRequest, Message: msgPasskeyNone}
	}
	options, sd, err := rp.BeginLogin(wu)
	if err != nil {
		return fmt.Errorf("begin login: %w", err)
	}
	return h.begin(w, r, s, purpose, u.ID, sd, options)
}

// assertion is a verified assertion: the credential's stored row, its
// new sign count and what it proved.
type assertion struct {
	user     *store.User
	row      *store.WebAuthnCredential
	newCount uint32
	amr      []string
}

// use records the assertion in the caller's transaction: conditional on the
// stored sign count, so two requests presenting answers to one challenge
// cannot both record theirs.
func (a *assertion) use(ctx context.Context, st *store.Store, now time.Time) error {
	return st.UpdateWebAuthnUse(ctx, a.row.ID, a.row.SignCount, a.newCount, now)
}

// verifyAssertion checks an assertion by u's credential.
func (h *Handler) verifyAssertion(ctx context.Context, r *http.Request, s *session, u *store.User, sd *webauthn.SessionData, body finishBody) (*assertion, *refusal, error) {
	rp := h.settings().wa
	parsed, err := protocol.ParseCredentialRequestResponseBytes(body.Credential)
	if err != nil {
		return nil, refuse(protocolReason(store.ReasonMalformedAssertion, err), msgPasskeyMalformed), nil
	}
	wu, err := h.webAuthnUser(ctx, u, false)
	if err != nil {
		return nil, nil, err
	}
	cred, err := rp.ValidateLogin(wu, *sd, parsed)
	if err != nil {
		return nil, refuse(protocolReason(store.ReasonAssertionRefused, err), msgPasskeyFailed), nil
	}
	return h.checked(ctx, r, s, wu, cred, parsed)
}

// checked finishes the checks go-webauthn leaves to the caller.
func (h *Handler) checked(ctx context.Context, r *http.Request, s *session, wu *waUser, cred *webauthn.Credential, parsed *protocol.ParsedCredentialAssertionData) (*assertion, *refusal, error) {
	row := wu.row(cred.ID)
	if row == nil {
		return nil, refuse("credential not the user's", msgPasskeyFailed), nil
	}
	got := parsed.Response.AuthenticatorData.Counter
	if cred.Authenticator.CloneWarning {
		h.cloneWarning(ctx, r, s, wu.u, row.SignCount, got)
		return nil, refuse("sign count regression (clone warning)", msgPasskeyClone), nil
	}
	return &assertion{user: wu.u, row: row, newCount: cred.Authenticator.SignCount,
		amr: passkeyAMR(parsed.Response.AuthenticatorData.Flags)}, nil, nil
}

// Finishing a signed-in user's ceremony.

// ceremonyAnswer is a signed-in user's answer to a ceremony with its
// challenge, and what a later failure is counted against and audited as.
type ceremonyAnswer struct {
	k    throttleKeys
	ev   event
	body finishBody
	sd   *webauthn.SessionData
}

// readAnswer runs the checks every signed-in ceremony's finish starts with:
// passkeys available here, the user not locked out, a readable answer to a
// fresh challenge of this ceremony and user. A nil answer with a nil error
// means it has answered the request itself.
func (h *Handler) readAnswer(w http.ResponseWriter, r *http.Request, f *flow, ceremony string) (*ceremonyAnswer, error) {
	if f.set.wa == nil {
		return nil, &pageError{Status: http.StatusNotFound, Message: msgPasskeyUnavailable}
	}
	s, u := f.s, f.user
	k := keysFor(r, u.ID)
	if l, err := h.locked(r.Context(), k); err != nil || l {
		if err != nil {
			return nil, err
		}
		return nil, writeJSON(w, http.StatusTooManyRequests, jsonAnswer{Error: msgTooManyTries})
	}
	ev := event{UserID: u.ID, Username: u.Username, Detail: map[string]any{"ceremony": ceremony}}
	body, bad := readFinish(r)
	sd, why := h.take(s, ceremony, u.ID)
	switch {
	case bad != "":
		return nil, h.fail(w, r, s, k, ev, badBody(bad))
	case sd == nil:
		return nil, h.fail(w, r, s, k, ev, refuse(why, msgPasskeyExpired))
	}
	return &ceremonyAnswer{k: k, ev: ev, body: body, sd: sd}, nil
}

// finishAssertion reads and verifies a signed-in user's assertion. A nil
// assertion with a nil error means it has answered the request itself.
func (h *Handler) finishAssertion(w http.ResponseWriter, r *http.Request, f *flow, ceremony string) (*assertion, *ceremonyAnswer, error) {
	ans, err := h.readAnswer(w, r, f, ceremony)
	if err != nil || ans == nil {
		return nil, nil, err
	}
	a, rf, err := h.verifyAssertion(r.Context(), r, f.s, f.user, ans.sd, ans.body)
	if err != nil {
		return nil, nil, err
	}
	if rf != nil {
		return nil, nil, h.fail(w, r, f.s, ans.k, ans.ev, rf)
	}
	return a, ans, nil
}

// finishRegistration reads and verifies a signed-in user's registration. A
// nil row with a nil error means it has answered the request itself.
func (h *Handler) finishRegistration(w http.ResponseWriter, r *http.Request, f *flow, ceremony string) (*store.WebAuthnCredential, protocol.AuthenticatorFlags, *ceremonyAnswer, error) {
	ans, err := h.readAnswer(w, r, f, ceremony)
	if err != nil || ans == nil {
		return nil, 0, nil, err
	}
	row, flags, rf, err := h.verifyRegistration(r.Context(), f.user, ans.sd, ans.body)
	if err != nil {
		return nil, 0, nil, err
	}
	if rf != nil {
		return nil, 0, nil, h.fail(w, r, f.s, ans.k, ans.ev, rf)
	}
	return row, flags, ans, nil
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
	h.succeeded(r.Context(), ans.k)
	return true, nil
}

// The journey's ceremonies.

// atJSON is the step guard for a ceremony endpoint.
func (h *Handler) atJSON(w http.ResponseWriter, r *http.Request, step string) (*flow, error) {
	f, to, err := h.guard(w, r, step)
	if err != nil || to == "" {
		return f, err
	}
	return nil, elsewhere(w, to)
}

// postPasskeyEnrolOptions starts registering the first factor (mfa-enrol).
func (h *Handler) postPasskeyEnrolOptions(w http.ResponseWriter, r *http.Request) error {
	f, err := h.atJSON(w, r, StepMFAEnrol)
	if err != nil || f == nil {
		return err
	}
	return h.beginRegistration(w, r, f.s, f.user, ceremonyEnrol)
}

// postPasskeyEnrol finishes it: like a confirmed authenticator code, a
// registered passkey completes mfa-enrol and brings fresh recovery codes.
func (h *Handler) postPasskeyEnrol(w http.ResponseWriter, r *http.Request) error {
	f, err := h.atJSON(w, r, StepMFAEnrol)
	if err != nil || f == nil {
		return err
	}
	row, flags, ans, err := h.finishRegistration(w, r, f, ceremonyEnrol)
	if err != nil || row == nil {
		return err
	}
	s, u := f.s, f.user

	codes, hashes := newRecoveryCodes()
	plainCodes, err := json.Marshal(codes)
	if err != nil {
		return err
	}
	now := h.now().UTC()
	before := s.j
	s.j.PendingTOTP = nil
	s.j.FactorVerified, s.j.FactorMethod, s.j.FactorAt = true, methodWebAuthn, now
	s.j.PasskeyAMR = passkeyAMR(flags)
	s.j.RecoveryCodes = h.box.Seal(plainCodes, purposeRecoveryCodes)
	s.markDone(StepMFAEnrol)
	ok, err := h.commitCeremony(w, r, s, before, ans, func(ctx context.Context) error {
		// As for an authenticator app: never beside or over a factor the
		// account already has (a password alone must not add one).
		if has, err := h.hasSecondFactor(ctx, u.ID); err != nil || has {
			if err == nil {
				err = store.ErrConflict
			}
			return err
		}
		if err := h.store.AddWebAuthnCredential(ctx, row); err != nil {
			return fmt.Errorf("store passkey: %w", err)
		}
		if err := h.store.ReplaceRecoveryCodes(ctx, u.ID, hashes); err != nil {
			return fmt.Errorf("store recovery codes: %w", err)
		}
		return h.audit(ctx, r, s, event{Name: evMFAEnrol, UserID: u.ID, Username: u.Username,
			Detail: map[string]any{"method": methodWebAuthn, "kind": kindOf(flags)}})
	})
	if !ok || err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, jsonAnswer{Redirect: PathNext})
}

// kindOf names a credential's kind in audit lines.
func kindOf(flags protocol.AuthenticatorFlags) string {
	if flags.HasBackupEligible() {
		return "synced passkey"
	}
	return "device-bound key"
}

// postPasskeyChallengeOptions starts the second factor (mfa-challenge).
func (h *Handler) postPasskeyChallengeOptions(w http.ResponseWriter, r *http.Request) error {
	f, err := h.atJSON(w, r, StepMFAChallenge)
	if err != nil || f == nil {
		return err
	}
	return h.beginAssertion(w, r, f.s, f.user, ceremonyMFA)
}

// postPasskeyChallenge finishes it.
func (h *Handler) postPasskeyChallenge(w http.ResponseWriter, r *http.Request) error {
	f, err := h.atJSON(w, r, StepMFAChallenge)
	if err != nil || f == nil {
		return err
	}
	a, ans, err := h.finishAssertion(w, r, f, ceremonyMFA)
	if err != nil || a == nil {
		return err
	}
	s, u := f.s, f.user
	now := h.now().UTC()
	before := s.j
	s.j.FactorVerified, s.j.FactorMethod, s.j.FactorAt = true, methodWebAuthn, now
	s.j.PasskeyAMR = a.amr
	ok, err := h.commitCeremony(w, r, s, before, ans, func(ctx context.Context) error {
		if err := a.use(ctx, h.store, now); err != nil {
			return err
		}
		return h.audit(ctx, r, s, event{Name: evMFAChallenge, UserID: u.ID, Username: u.Username,
			Detail: map[string]any{"method": methodWebAuthn, "amr": a.amr}})
	})
	if !ok || err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, jsonAnswer{Redirect: PathNext})
}

// signInAllowed is the guard of passwordless sign-in: a browser with no
// session, or one that has not got past the password yet. It returns the
// session (nil when there is none) or where the browser belongs.
func (h *Handler) signInAllowed(w http.ResponseWriter, r *http.Request) (*session, string, error) {
	s, err := h.load(r)
	if err != nil || s == nil {
		return nil, "", err
	}
	f, to, err := h.guard(w, r, StepIdentify)
	if err != nil || to != "" {
		return nil, to, err
	}
	return f.s, "", nil
}

// postPasskeySignInOptions starts a passwordless sign-in: a discoverable
// credential, user verification required. ?mediation=conditional is the
// request the username field's autofill answers.
func (h *Handler) postPasskeySignInOptions(w http.ResponseWriter, r *http.Request) error {
	rp := h.settings().wa
	if rp == nil {
		return &pageError{Status: http.StatusNotFound, Message: msgPasskeyUnavailable}
	}
	s, to, err := h.signInAllowed(w, r)
	if err != nil {
		return err
	}
	if to != "" {
		return elsewhere(w, to)
	}
	if s == nil {
		if s, err = h.create(r.Context(), w, r); err != nil {
			return err
		}
	}
	mediation := protocol.MediationDefault
	if r.URL.Query().Get("mediation") == "conditional" {
		mediation = protocol.MediationConditional
	}
	options, sd, err := rp.BeginDiscoverableMediatedLogin(mediation, webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return fmt.Errorf("begin discoverable login: %w", err)
	}
	return h.begin(w, r, s, ceremonySignIn, "", sd, options)
}

// keyUnknownPasskey is the account counter of passwordless attempts whose
// user is not known: the address counter is the one that matters then.
const keyUnknownPasskey = "passkey:unknown"

// postPasskeySignIn finishes a passwordless sign-in. The user is the owner
// of the user handle the authenticator returned, and the credential must be
// theirs; with user verification it stands for both factors, and the
// dispatcher takes over as after a password.
func (h *Handler) postPasskeySignIn(w http.ResponseWriter, r *http.Request) error {
	rp := h.settings().wa
	if rp == nil {
		return &pageError{Status: http.StatusNotFound, Message: msgPasskeyUnavailable}
	}
	s, to, err := h.signInAllowed(w, r)
	if err != nil {
		return err
	}
	if to != "" {
		return elsewhere(w, to)
	}
	ctx := r.Context()
	k := keysFor(r, keyUnknownPasskey)
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
	body, bad := readFinish(r)
	sd, why := h.take(s, ceremonySignIn, "")
	switch {
	case bad != "":
		return h.fail(w, r, s, k, ev, badBody(bad))
	case sd == nil:
		return h.fail(w, r, s, k, ev, refuse(why, msgPasskeyExpired))
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(body.Credential)
	if err != nil {
		return h.fail(w, r, s, k, ev, refuse(protocolReason(store.ReasonMalformedAssertion, err), msgPasskeyMalformed))
	}
	// Who the handle names, so that the failure counts against them.
	var owner *waUser
	if u, err := h.store.UserByWebAuthnHandle(ctx, parsed.Response.UserHandle); err == nil {
		if owner, err = h.webAuthnUser(ctx, u, false); err != nil {
			return err
		}
		k = keysFor(r, u.ID)
		ev.UserID, ev.Username = u.ID, u.Username
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if !parsed.Response.AuthenticatorData.Flags.HasUserVerified() {
		return h.fail(w, r, s, k, ev, refuse(store.ReasonNoUserVerification, msgPasskeyNoUV))
	}
	if owner == nil {
		return h.fail(w, r, s, k, ev, refuse(store.ReasonUnknownUserHandle, msgPasskeyFailed))
	}
	if owner.u.State == store.UserDisabled {
		return h.fail(w, r, s, k, ev, refuse(store.ReasonDisabled, msgPasskeyFailed))
	}
	if l, err := h.locked(ctx, k); err != nil || l {
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusTooManyRequests, jsonAnswer{Error: msgTooManyTries})
	}
	_, cred, err := rp.ValidatePasskeyLogin(func(_, handle []byte) (webauthn.User, error) {
		return owner, nil
	}, *sd, parsed)
	if err != nil {
		return h.fail(w, r, s, k, ev, refuse(protocolReason(store.ReasonAssertionRefused, err), msgPasskeyFailed))
	}
	a, rf, err := h.checked(ctx, r, s, owner, cred, parsed)
	if err != nil {
		return err
	}
	if rf != nil {
		return h.fail(w, r, s, k, ev, rf)
	}

	// A new sign-in, as after a password (postPassword): keep the parked
	// request, forget earlier progress, keep codes not yet shown to this user.
	u, now := owner.u, h.now().UTC()
	before, beforeRow := s.j, *s.row
	keep := journey{
		ResumeURL: s.j.ResumeURL, ClientID: s.j.ClientID, ClientName: s.j.ClientName,
		RequestedAt: s.j.RequestedAt, ForceLogin: s.j.ForceLogin,
		Username: u.Username, PasswordVerified: true, PasswordAt: now,
		FactorVerified: true, FactorMethod: methodWebAuthn, FactorAt: now,
		Passwordless: true, PasskeyAMR: a.amr,
	}
	if s.row.UserID == u.ID {
		keep.RecoveryCodes = s.j.RecoveryCodes
	}
	s.j = keep
	s.row.UserID, s.row.State = u.ID, stateJourney
	s.row.AuthTime, s.row.AMR, s.row.ACR = now, nil, ""
	err = h.commitRotated(w, r, s, func(ctx context.Context) error {
		if err := a.use(ctx, h.store, now); err != nil {
			return err
		}
		return h.audit(ctx, r, s, event{Name: evSigninPasskey, UserID: u.ID, Username: u.Username,
			Detail: map[string]any{"amr": a.amr}})
	})
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		s.j, *s.row = before, beforeRow
		return h.fail(w, r, s, k, ev, refuse(store.ReasonChallengeUsed, msgPasskeyExpired))
	}
	if err != nil {
		return err
	}
	h.succeeded(ctx, k)
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
