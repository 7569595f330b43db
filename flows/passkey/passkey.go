// Package passkey is the WebAuthn mechanics of Lanyard's passkeys and
// security keys, on go-webauthn: the relying party made from the issuer,
// the options that start a ceremony, the checks that finish one, and the
// conversion between go-webauthn's credential record and the stored row.
//
// A ceremony is begun here (the options for the browser and the challenge
// data to keep) and finished here (the browser's answer checked against that
// data); keeping the challenge single-use in the server-side session,
// throttling refusals, auditing them and storing the result are the
// caller's job (package flows): nothing here touches storage, HTTP handlers,
// sessions or the clock. A refused answer is a *Refusal whose Reason is
// meant for the audit log; every other error is the server's.
package passkey

import (
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

	"github.com/lanyard-idp/lanyard/provider/store"
)

const (
	// ChallengeTTL is how long a challenge may be answered. The browser
	// gives up after it; the caller enforces it with its own clock.
	ChallengeTTL = 5 * time.Minute
	// MaxName bounds the name an officer gives a passkey, in characters.
	MaxName = 64
)

// RelyingParty is go-webauthn configured for one deployment.
type RelyingParty struct {
	wa *webauthn.WebAuthn
}

// New configures the relying party of an issuer: the RP ID is the issuer's
// host, the origins the issuer's origin and extraOrigins. A host that is an
// IP address cannot be an RP ID (browsers refuse it too): New fails, and
// passkeys are then unavailable.
func New(issuer *url.URL, displayName string, extraOrigins []string) (*RelyingParty, error) {
	host := issuer.Hostname()
	if net.ParseIP(host) != nil {
		return nil, fmt.Errorf("the issuer's host %s is an IP address; passkeys need a domain name (in development, use localhost)", host)
	}
	origins := append([]string{issuer.Scheme + "://" + issuer.Host}, extraOrigins...)
	wa, err := webauthn.New(&webauthn.Config{
		RPID:                  host,
		RPDisplayName:         displayName,
		RPOrigins:             origins,
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:        protocol.ResidentKeyRequirementPreferred,
			RequireResidentKey: protocol.ResidentKeyNotRequired(),
			UserVerification:   protocol.VerificationPreferred,
		},
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Timeout: ChallengeTTL, TimeoutUVD: ChallengeTTL},
			Registration: webauthn.TimeoutConfig{Timeout: ChallengeTTL, TimeoutUVD: ChallengeTTL},
		},
	})
	if err != nil {
		return nil, err
	}
	return &RelyingParty{wa: wa}, nil
}

// User is an officer as go-webauthn sees them: the random user handle
// (never the user id or the email) and their stored credentials.
type User struct {
	ID          string // the store's user id: it goes into new rows, never to the browser
	Handle      []byte
	Name        string // the username
	DisplayName string
	Rows        []store.WebAuthnCredential
}

// webauthnUser adapts a User to go-webauthn's interface.
type webauthnUser struct {
	u     *User
	creds []webauthn.Credential
}

func (w *webauthnUser) WebAuthnID() []byte                         { return w.u.Handle }
func (w *webauthnUser) WebAuthnName() string                       { return w.u.Name }
func (w *webauthnUser) WebAuthnDisplayName() string                { return w.u.DisplayName }
func (w *webauthnUser) WebAuthnCredentials() []webauthn.Credential { return w.creds }

func (u *User) webauthn() *webauthnUser {
	w := &webauthnUser{u: u}
	for _, row := range u.Rows {
		w.creds = append(w.creds, credential(row))
	}
	return w
}

// Row returns the user's stored credential with this id, or nil.
func (u *User) Row(id []byte) *store.WebAuthnCredential {
	for i := range u.Rows {
		if string(u.Rows[i].ID) == string(id) {
			return &u.Rows[i]
		}
	}
	return nil
}

// credential rebuilds go-webauthn's credential record from the stored row.
// The columns (id, key, sign count) are authoritative; Data keeps the rest
// (flags, attestation format).
func credential(row store.WebAuthnCredential) webauthn.Credential {
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

// Synced reports whether a stored credential is a synced passkey (backup
// eligible) rather than bound to one device.
func Synced(row store.WebAuthnCredential) bool {
	return credential(row).Flags.BackupEligible
}

// amr is what an assertion or registration proved, per RFC 8176: "swk" for
// a synced (backup-eligible) passkey, "hwk" for a key bound to one device,
// and "user" when the authenticator verified the user.
func amr(flags protocol.AuthenticatorFlags) []string {
	out := []string{"hwk"}
	if flags.HasBackupEligible() {
		out = []string{"swk"}
	}
	if flags.HasUserVerified() {
		out = append(out, "user")
	}
	return out
}

// kind names a credential's kind in audit lines.
func kind(flags protocol.AuthenticatorFlags) string {
	if flags.HasBackupEligible() {
		return "synced passkey"
	}
	return "device-bound key"
}

// Refusals.

// Why is the kind of a refusal: what the officer is told.
type Why int

const (
	// Malformed: the answer could not be read.
	Malformed Why = iota
	// Failed: the authenticator's answer does not check out.
	Failed
	// BadName: the name typed for a new passkey is too long or unprintable.
	BadName
	// Cloned: the sign count went backwards; the key may have been copied.
	Cloned
	// Oversized: the answer is far larger than any honest one.
	Oversized
)

// Refusal is a ceremony answer refused. Reason is for the audit line:
// nothing in a ceremony is secret (challenges are single-use, public keys
// public), so it carries go-webauthn's detail — which origin, which RP ID
// hash —, which is what an administrator needs; the caller cuts it short.
type Refusal struct {
	Why    Why
	Reason store.Reason
	// Stored and Presented are the sign counts of a Cloned refusal.
	Stored, Presented uint32
}

func (r *Refusal) Error() string { return string(r.Reason) }

func refused(why Why, reason store.Reason) *Refusal {
	return &Refusal{Why: why, Reason: reason}
}

// protocolRefusal turns go-webauthn's error into a refusal: the reason is
// prefix, ": " and what go-webauthn said.
func protocolRefusal(why Why, prefix store.Reason, err error) *Refusal {
	msg := string(prefix) + ": " + err.Error()
	var pe *protocol.Error
	if errors.As(err, &pe) && pe.Details != "" {
		msg = string(prefix) + ": " + pe.Details
		if pe.DevInfo != "" {
			msg += " (" + pe.DevInfo + ")"
		}
	}
	return refused(why, store.Reason(msg))
}

// Reading an answer.

// Answer is what the browser's script posts to finish a ceremony.
type Answer struct {
	// Credential is PublicKeyCredential.toJSON().
	Credential json.RawMessage `json:"credential"`
	// Name is the name typed for a new passkey (account page).
	Name string `json:"name"`
}

// ReadAnswer reads a posted answer (the caller bounds the body). A refusal
// says why it could not be read.
func ReadAnswer(body io.Reader) (Answer, *Refusal) {
	var a Answer
	raw, err := io.ReadAll(body)
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return a, refused(Oversized, store.ReasonOversized)
	case err != nil:
		return a, refused(Malformed, store.ReasonUnreadableRequest)
	}
	if err := json.Unmarshal(raw, &a); err != nil || len(a.Credential) == 0 {
		return a, refused(Malformed, store.ReasonMalformedRequest)
	}
	return a, nil
}

// Challenge is the data a begun ceremony keeps (go-webauthn's SessionData:
// the challenge, RP ID, allowed credentials, user verification), as JSON
// for the caller's session.
type Challenge = json.RawMessage

// parseChallenge reads kept challenge data.
func parseChallenge(c Challenge) (*webauthn.SessionData, error) {
	var sd webauthn.SessionData
	if err := json.Unmarshal(c, &sd); err != nil {
		return nil, err
	}
	return &sd, nil
}

// ValidChallenge reports whether kept challenge data can be read at all.
func ValidChallenge(c Challenge) bool {
	_, err := parseChallenge(c)
	return err == nil
}

func challengeOf(sd *webauthn.SessionData) (Challenge, error) {
	return json.Marshal(sd)
}

// Registration.

// BeginRegistration starts registering a credential for u: a discoverable
// one where the authenticator can make it, user verification preferred, no
// attestation, and never a second credential on an authenticator that
// already holds one of u's. options goes to the browser.
func (rp *RelyingParty) BeginRegistration(u *User) (options any, c Challenge, err error) {
	wu := u.webauthn()
	var exclude []protocol.CredentialDescriptor
	for _, cr := range wu.creds {
		exclude = append(exclude, cr.Descriptor())
	}
	opts, sd, err := rp.wa.BeginRegistration(wu,
		webauthn.WithAuthenticatorSelection(rp.wa.Config.AuthenticatorSelection),
		webauthn.WithConveyancePreference(protocol.PreferNoAttestation),
		webauthn.WithExclusions(exclude))
	if err != nil {
		return nil, nil, fmt.Errorf("begin registration: %w", err)
	}
	if c, err = challengeOf(sd); err != nil {
		return nil, nil, err
	}
	return opts, c, nil
}

// Registration is a verified new credential: the row to store, what it
// proved (RFC 8176 amr values) and its kind for the audit line.
type Registration struct {
	Row  *store.WebAuthnCredential
	AMR  []string
	Kind string
}

// FinishRegistration checks a registration answer against the challenge.
// A new credential is named as typed, or by its kind ("Passkey",
// "Security key 2") when no name was given.
func (rp *RelyingParty) FinishRegistration(u *User, c Challenge, a Answer, now time.Time) (*Registration, error) {
	sd, err := parseChallenge(c)
	if err != nil {
		return nil, refused(Failed, store.ReasonUnreadableChallenge)
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(a.Credential)
	if err != nil {
		return nil, protocolRefusal(Malformed, store.ReasonMalformedRegistration, err)
	}
	cred, err := rp.wa.CreateCredential(u.webauthn(), *sd, parsed)
	if err != nil {
		return nil, protocolRefusal(Failed, store.ReasonRegistrationRefused, err)
	}
	if u.Row(cred.ID) != nil {
		return nil, refused(Failed, store.ReasonCredentialExists)
	}
	flags := parsed.Response.AttestationObject.AuthData.Flags
	name, ok := CleanName(a.Name)
	if !ok {
		return nil, refused(BadName, store.ReasonBadPasskeyName)
	}
	if name == "" {
		name = defaultName(flags, u.Rows)
	}
	data, err := json.Marshal(cred)
	if err != nil {
		return nil, err
	}
	row := &store.WebAuthnCredential{
		ID:        cred.ID,
		UserID:    u.ID,
		Name:      name,
		PublicKey: cred.PublicKey,
		SignCount: cred.Authenticator.SignCount,
		AAGUID:    cred.Authenticator.AAGUID,
		Data:      data,
		CreatedAt: now,
	}
	for _, t := range cred.Transport {
		row.Transports = append(row.Transports, string(t))
	}
	return &Registration{Row: row, AMR: amr(flags), Kind: kind(flags)}, nil
}

// CleanName cleans a name typed for a passkey: trimmed, at most MaxName
// characters, printable. "" means none was given; false, that it is not
// acceptable.
func CleanName(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > MaxName {
		return "", false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return "", false
		}
	}
	return s, true
}

// defaultName names a new credential by its kind, numbered when the
// officer has others of that kind.
func defaultName(flags protocol.AuthenticatorFlags, existing []store.WebAuthnCredential) string {
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

// ErrNoCredentials: the user has no credential to assert with.
var ErrNoCredentials = errors.New("no passkey or security key")

// BeginLogin starts an assertion with one of u's credentials.
func (rp *RelyingParty) BeginLogin(u *User) (options any, c Challenge, err error) {
	wu := u.webauthn()
	if len(wu.creds) == 0 || len(u.Handle) == 0 {
		return nil, nil, ErrNoCredentials
	}
	opts, sd, err := rp.wa.BeginLogin(wu)
	if err != nil {
		return nil, nil, fmt.Errorf("begin login: %w", err)
	}
	if c, err = challengeOf(sd); err != nil {
		return nil, nil, err
	}
	return opts, c, nil
}

// BeginDiscoverable starts a passwordless sign-in: a discoverable
// credential, user verification required. conditional is the request the
// username field's autofill answers.
func (rp *RelyingParty) BeginDiscoverable(conditional bool) (options any, c Challenge, err error) {
	mediation := protocol.MediationDefault
	if conditional {
		mediation = protocol.MediationConditional
	}
	opts, sd, err := rp.wa.BeginDiscoverableMediatedLogin(mediation, webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return nil, nil, fmt.Errorf("begin discoverable login: %w", err)
	}
	if c, err = challengeOf(sd); err != nil {
		return nil, nil, err
	}
	return opts, c, nil
}

// Assertion is an assertion answer read but not yet verified: a
// passwordless sign-in first needs to know whose it claims to be.
type Assertion struct {
	parsed *protocol.ParsedCredentialAssertionData
}

// ParseAssertion reads an assertion answer.
func ParseAssertion(a Answer) (*Assertion, error) {
	parsed, err := protocol.ParseCredentialRequestResponseBytes(a.Credential)
	if err != nil {
		return nil, protocolRefusal(Malformed, store.ReasonMalformedAssertion, err)
	}
	return &Assertion{parsed: parsed}, nil
}

// UserHandle is the user handle the authenticator returned (a
// discoverable credential's).
func (a *Assertion) UserHandle() []byte { return a.parsed.Response.UserHandle }

// UserVerified reports whether the authenticator verified the user.
func (a *Assertion) UserVerified() bool {
	return a.parsed.Response.AuthenticatorData.Flags.HasUserVerified()
}

// Verified is a verified assertion: the credential's stored row, its new
// sign count and what it proved (RFC 8176 amr values). The caller records
// the new count conditionally on the old one, so two answers to one
// challenge cannot both be used.
type Verified struct {
	Row      *store.WebAuthnCredential
	NewCount uint32
	AMR      []string
}

// FinishLogin checks an assertion by one of u's credentials against the
// challenge.
func (rp *RelyingParty) FinishLogin(u *User, c Challenge, a *Assertion) (*Verified, error) {
	sd, err := parseChallenge(c)
	if err != nil {
		return nil, refused(Failed, store.ReasonUnreadableChallenge)
	}
	cred, err := rp.wa.ValidateLogin(u.webauthn(), *sd, a.parsed)
	if err != nil {
		return nil, protocolRefusal(Failed, store.ReasonAssertionRefused, err)
	}
	return checked(u, cred, a)
}

// FinishDiscoverable checks a passwordless assertion: owner is the user
// the handle names, and the credential must be theirs.
func (rp *RelyingParty) FinishDiscoverable(owner *User, c Challenge, a *Assertion) (*Verified, error) {
	sd, err := parseChallenge(c)
	if err != nil {
		return nil, refused(Failed, store.ReasonUnreadableChallenge)
	}
	wu := owner.webauthn()
	_, cred, err := rp.wa.ValidatePasskeyLogin(func(_, _ []byte) (webauthn.User, error) {
		return wu, nil
	}, *sd, a.parsed)
	if err != nil {
		return nil, protocolRefusal(Failed, store.ReasonAssertionRefused, err)
	}
	return checked(owner, cred, a)
}

// checked finishes the checks go-webauthn leaves to the caller: the
// credential is the user's, and its sign count did not go backwards
// (go-webauthn only flags that; Lanyard refuses it).
func checked(u *User, cred *webauthn.Credential, a *Assertion) (*Verified, error) {
	row := u.Row(cred.ID)
	if row == nil {
		return nil, refused(Failed, store.ReasonNotUsersCredential)
	}
	if cred.Authenticator.CloneWarning {
		rf := refused(Cloned, store.ReasonSignCountRegression)
		rf.Stored, rf.Presented = row.SignCount, a.parsed.Response.AuthenticatorData.Counter
		return nil, rf
	}
	return &Verified{Row: row, NewCount: cred.Authenticator.SignCount,
		AMR: amr(a.parsed.Response.AuthenticatorData.Flags)}, nil
}
