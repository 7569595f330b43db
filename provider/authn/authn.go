// Package authn is the seam between the provider (OAuth2/OIDC on fosite) and
// flows (the officer journey): the provider asks whether a browser is fully
// signed in, and how, and hands the browser over when it is not; before a
// token grant it asks whether the officer has a journey step pending. Neither
// side imports the other; both import this package. Besides those questions
// it holds only what both sides must compute alike: a browser's client
// address (ClientAddr) and the order of the authentication context classes
// (ACRs). Nothing else belongs here.
package authn

import (
	"context"
	"net/http"
	"time"
)

// Journey is everything the authorization endpoint needs from the officer
// journey (package flows implements it). The provider never renders a journey
// page; it only asks whether the browser is fully signed in and, when it is not,
// hands the browser over.
type Journey interface {
	// Browser reports what the browser's SSO session proves. A browser with no
	// (or an expired, tampered or unknown) session cookie is the zero Browser.
	Browser(r *http.Request) (Browser, error)
	// SignIn hands the browser to the sign-in journey for a parked authorization
	// request. When every step is done the journey redirects the browser to
	// req.ResumeURL, where the provider issues the code.
	SignIn(w http.ResponseWriter, r *http.Request, req SignInRequest)
	// SignOut ends the browser's SSO session server-side and clears the cookie
	// (RP-initiated logout). It returns the user id that was signed out, if any.
	SignOut(w http.ResponseWriter, r *http.Request) (userID string, err error)
	// StepPending names the first journey step the officer userID must
	// complete at a sign-in before any token is issued for them (a new
	// version of a policy document to accept, a second factor or a password
	// to set after a reset, an account that can no longer sign in), or ""
	// when there is none. The token endpoint refuses every grant for an
	// officer with a step pending.
	StepPending(ctx context.Context, userID string) (step string, err error)
}

// Browser is the state of a browser's SSO session.
type Browser struct {
	// SignedIn: the password (or a passkey) was verified and no journey step is
	// pending: the session may receive codes.
	SignedIn bool
	// InProgress: a sign-in has started for this browser but steps are pending
	// (prompt=none must answer interaction_required rather than login_required).
	InProgress bool
	// SessionID is the session's stable key: the sid claim of the ID tokens
	// and logout tokens issued in it, and what its codes and tokens are bound
	// to. It never changes, however often the cookie's id is rotated (after
	// each sign-in step, on the account page, in passkey ceremonies), so
	// ending the session always reaches them.
	SessionID string
	UserID    string
	AuthTime  time.Time
	AMR       []string
	ACR       string
}

// SignInRequest describes why the provider needs a sign-in.
type SignInRequest struct {
	// ResumeURL is an absolute URL under the issuer that resumes the parked
	// authorization request.
	ResumeURL  string
	ClientID   string
	ClientName string
	// ForceLogin: prompt=login, or max_age exceeded: verify the password again even
	// if the browser is signed in (and mint a new session id).
	ForceLogin bool
	// LoginHint pre-fills the username page (login_hint).
	LoginHint string
	// RequestedAt: the journey must produce an AuthTime after it when ForceLogin.
	RequestedAt time.Time

	// RequestID is the parked request's id: the journey records the
	// officer's answer on the consent page against it
	// (store.DecideAuthRequest), and the provider reads it back when the
	// request resumes, so a request never resumes past a consent that was
	// not given.
	RequestID string
	// Consent: the request asks for the officer's consent (prompt=consent):
	// the journey shows the consent page, listing ClientName, Scopes and
	// Claims, before it resumes, whatever the officer allowed before.
	// ConsentRequired: the client is registered with consent: required: the
	// journey shows the page unless the officer's remembered decision for
	// the client covers Scopes and Claims (store.Consent.Covers). Either
	// way a declined consent resumes to access_denied.
	Consent         bool
	ConsentRequired bool
	// Scopes and Claims are what the client asks for (the claims are those
	// named in the claims request parameter), for the consent page.
	Scopes []string
	Claims []string
	// ACRValues are the authentication context classes the request asks
	// for (acr_values, or acr in the claims parameter), among ACRs, weakest
	// first. When the browser's session has
	// achieved less, the journey steps the officer up (a second factor for
	// urn:lanyard:acr:mfa, a passkey for urn:lanyard:acr:phr) before it
	// resumes. The provider never states an acr the session did not
	// achieve: when the resumed session still falls short it issues the
	// session's own acr, or, with ACREssential, refuses (access_denied).
	ACRValues    []string
	ACREssential bool
}

// The authentication context classes the journey produces (the acr of the
// ID token), weakest first: a password; a password and a second factor; a
// phishing-resistant factor (a passkey bound to Lanyard's origin). Each
// reaches the ones before it.
const (
	ACRPassword          = "urn:lanyard:acr:pwd"
	ACRMFA               = "urn:lanyard:acr:mfa"
	ACRPhishingResistant = "urn:lanyard:acr:phr"
)

// ACRs lists them, weakest first.
var ACRs = []string{ACRPassword, ACRMFA, ACRPhishingResistant}

// ACRLevel is an acr's place in ACRs (1 for the weakest), 0 for a value
// Lanyard never produces.
func ACRLevel(acr string) int {
	for i, a := range ACRs {
		if a == acr {
			return i + 1
		}
	}
	return 0
}
