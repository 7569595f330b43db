// Package authn is the seam between the provider (OAuth2/OIDC on fosite) and
// flows (the officer journey): the provider asks whether a browser is fully
// signed in, and how, and hands the browser over when it is not; before a
// token grant it asks whether the officer has a journey step pending. Neither
// side imports the other; both import this package. Besides those questions
// it holds only what both sides must compute alike about a browser's request:
// its client address (ClientAddr). Nothing else belongs here.
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

	// Consent: the request asks for the officer's consent (prompt=consent).
	// The journey shows the consent page, listing ClientName, Scopes and
	// Claims, before it resumes; a declined consent resumes nothing (the
	// provider answers access_denied). Until the journey has a consent
	// page, a first-party client's request resumes at once.
	Consent bool
	// Scopes and Claims are what the client asks for (the claims are those
	// named in the claims request parameter), for the consent page.
	Scopes []string
	Claims []string
	// ACRValues are the authentication context classes the request asks
	// for (acr_values, or acr in the claims parameter), among those the
	// journey produces, weakest first. When the browser's session has
	// achieved less, the journey steps the officer up (a second factor for
	// urn:lanyard:acr:mfa, a passkey for urn:lanyard:acr:phr) before it
	// resumes. The provider never states an acr the session did not
	// achieve: when the resumed session still falls short it issues the
	// session's own acr, or, with ACREssential, refuses (access_denied).
	ACRValues    []string
	ACREssential bool
}
