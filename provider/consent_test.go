package provider

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/provider/store"
)

// The consent page, as the provider sees it: a request that needs the
// officer's consent (prompt=consent, or a client registered with consent:
// required whose remembered decision does not cover the request) goes
// through the journey, and resumes only past an answer this officer gave
// for this very request; a decline reaches the relying party as
// access_denied. The journey's side (the page itself) is tested in flows
// and, end to end, in cmd/lanyard.

// consentEnv: "other" is registered with consent: required; "webapp" is
// first-party.
func consentEnv(t *testing.T) *env {
	return newEnv(t, func(c *config.Config) {
		for i := range c.Clients {
			if c.Clients[i].ID == otherID {
				c.Clients[i].Consent = config.ConsentRequired
			}
		}
	})
}

var promptConsent = oauth2.SetAuthURLParam("prompt", "consent")

// authorizeError runs an authorization request that must come back to
// the relying party with an error, and returns the callback's query.
func (r *rp) authorizeError(t *testing.T, b *browser, want string, extra ...oauth2.AuthCodeOption) url.Values {
	t.Helper()
	state := randomHex()
	opts := append([]oauth2.AuthCodeOption{oidc.Nonce(randomHex()), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())}, extra...)
	res := b.get(r.oauth.AuthCodeURL(state, opts...))
	if res.location == nil {
		t.Fatalf("want %s at the relying party, got a page: %d %q", want, res.status, truncate(res.body))
	}
	q := res.location.Query()
	if q.Get("error") != want || q.Get("code") != "" || q.Get("state") != state || q.Get("iss") != r.e.issuer {
		t.Fatalf("want error %s with state and iss, got %s", want, res.location)
	}
	return q
}

// oidcc-prompt-consent and oidcc-refresh-token's prompt=consent: a
// first-party client's prompt=consent shows the page every time, also to a
// signed-in browser that allowed it before.
func TestConsentPromptFirstParty(t *testing.T) {
	e := consentEnv(t)
	b := e.newBrowser()
	r := e.newRP(webappID, webappSecret, webappRedir)
	e.journey.setNext(alice())
	r.exchange(r.authorize(b)) // signed in, no consent page
	if n := e.journey.consentCount(); n != 0 {
		t.Fatalf("a first-party client without prompt=consent got %d consent pages", n)
	}
	for i := 1; i <= 2; i++ {
		before := e.journey.signInCount()
		_, idt := r.exchange(r.authorize(b, promptConsent))
		req := e.journey.lastSignIn()
		if e.journey.signInCount() != before+1 || e.journey.consentCount() != i {
			t.Fatalf("prompt=consent #%d: sign-ins +%d, consent pages %d", i, e.journey.signInCount()-before, e.journey.consentCount())
		}
		if !req.Consent || req.ConsentRequired || req.RequestID == "" || req.ClientName != "Web app" ||
			!slices.Equal(req.Scopes, r.oauth.Scopes) {
			t.Fatalf("the journey was asked %+v", req)
		}
		if idt.Subject != aliceID {
			t.Fatalf("sub = %q", idt.Subject)
		}
	}
}

// Declining on the consent page: access_denied at the relying party
// (with state and iss), no code, and the parked request stays declined if
// the browser comes back to it.
func TestConsentDeclined(t *testing.T) {
	e := consentEnv(t)
	b := e.newBrowser()
	r := e.newRP(webappID, webappSecret, webappRedir)
	e.journey.setNext(alice())
	e.journey.setAnswer(store.ConsentDeclined)
	r.authorizeError(t, b, "access_denied", promptConsent)
	req := e.journey.lastSignIn()
	res := b.get(req.ResumeURL)
	if res.location == nil || res.location.Query().Get("error") != "access_denied" {
		t.Fatalf("the declined request resumed again: %v %d", res.location, res.status)
	}
	// The decline is not remembered as a grant.
	if _, err := e.st.ConsentOf(context.Background(), aliceID, webappID); err == nil {
		t.Fatal("a declined consent was remembered")
	}
}

// consent: required: the page the first time; a remembered decision
// stands until the client asks for more or the officer withdraws it;
// prompt=none without it answers consent_required.
func TestConsentRequiredRemembered(t *testing.T) {
	e := consentEnv(t)
	ctx := context.Background()
	b := e.newBrowser()
	e.journey.setNext(alice())
	narrow := e.newRP(otherID, otherSecret, otherRedir, oidc.ScopeOpenID, "email")
	wide := e.newRP(otherID, otherSecret, otherRedir, oidc.ScopeOpenID, "email", "profile")

	// prompt=none before any decision (the browser signs in through
	// another client first).
	web := e.newRP(webappID, webappSecret, webappRedir)
	web.exchange(web.authorize(b))
	narrow.authorizeError(t, b, "consent_required", oauth2.SetAuthURLParam("prompt", "none"))

	narrow.exchange(narrow.authorize(b))
	if e.journey.consentCount() != 1 || !e.journey.lastSignIn().ConsentRequired {
		t.Fatalf("consent pages %d, last request %+v", e.journey.consentCount(), e.journey.lastSignIn())
	}
	c, err := e.st.ConsentOf(ctx, aliceID, otherID)
	if err != nil || !slices.Equal(c.Scopes, []string{"email", "openid"}) {
		t.Fatalf("remembered %+v, %v", c, err)
	}
	// Remembered: no detour through the journey, and prompt=none works.
	before := e.journey.signInCount()
	narrow.exchange(narrow.authorize(b))
	narrow.exchange(narrow.authorize(b, oauth2.SetAuthURLParam("prompt", "none")))
	if e.journey.signInCount() != before || e.journey.consentCount() != 1 {
		t.Fatalf("a remembered consent: sign-ins +%d, pages %d", e.journey.signInCount()-before, e.journey.consentCount())
	}
	// More scopes, or a claim asked by name: asked again.
	wide.exchange(wide.authorize(b))
	if e.journey.consentCount() != 2 {
		t.Fatalf("wider scopes: %d consent pages, want 2", e.journey.consentCount())
	}
	narrow.exchange(narrow.authorize(b, oauth2.SetAuthURLParam("claims", `{"userinfo":{"email_verified":null}}`)))
	if e.journey.consentCount() != 3 || !slices.Equal(e.journey.lastSignIn().Claims, []string{"email_verified"}) {
		t.Fatalf("a claim asked by name: %d consent pages, request %+v", e.journey.consentCount(), e.journey.lastSignIn())
	}
	// The narrower request is covered by the wider decision.
	narrow.exchange(narrow.authorize(b))
	if e.journey.consentCount() != 3 {
		t.Fatalf("a narrower request after a wider consent: %d pages", e.journey.consentCount())
	}
	// Withdrawn (the account page): asked again.
	if err := e.st.WithdrawConsent(ctx, aliceID, otherID, false); err != nil {
		t.Fatal(err)
	}
	narrow.authorizeError(t, b, "consent_required", oauth2.SetAuthURLParam("prompt", "none"))
	narrow.exchange(narrow.authorize(b))
	if e.journey.consentCount() != 4 {
		t.Fatalf("after withdrawal: %d pages, want 4", e.journey.consentCount())
	}
}

// A request never resumes past a consent page that was not answered, or
// answered by someone else: the resume URL hands the browser back to the
// journey, and no code reaches the relying party.
func TestConsentUnansweredNeverResumes(t *testing.T) {
	e := consentEnv(t)
	b := e.newBrowser()
	r := e.newRP(otherID, otherSecret, otherRedir)
	e.journey.setNext(alice())
	web := e.newRP(webappID, webappSecret, webappRedir)
	web.exchange(web.authorize(b)) // a signed-in browser

	// The authorization request parks and goes to the journey; take the
	// resume URL by hand instead of letting the stand-in answer.
	resp, err := b.client.Get(r.oauth.AuthCodeURL("state-unanswered", oidc.Nonce("nonce-unanswered"), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	req := e.journey.lastSignIn()
	if resp.StatusCode != http.StatusSeeOther || !req.ConsentRequired || req.RequestID == "" {
		t.Fatalf("authorize: %d, journey asked %+v", resp.StatusCode, req)
	}
	resume := func(what string) {
		t.Helper()
		before := e.journey.signInCount()
		resp, err := b.client.Get(req.ResumeURL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := resp.Location()
		if loc == nil || loc.Path != "/test/login" || e.journey.signInCount() != before+1 {
			t.Fatalf("%s: the resume went to %v (sign-ins +%d), not back to the journey", what, loc, e.journey.signInCount()-before)
		}
	}
	resume("no answer")
	// Bob's answer to Alice's request counts for nothing...
	ctx := context.Background()
	if err := e.st.DecideAuthRequest(ctx, req.RequestID, bobID, store.ConsentGranted, time.Now()); err != nil {
		t.Fatal(err)
	}
	resume("another officer's answer")
	// ...and Alice's own answer may replace it; then the request resumes.
	if err := e.st.DecideAuthRequest(ctx, req.RequestID, aliceID, store.ConsentGranted, time.Now()); err != nil {
		t.Fatal(err)
	}
	res := b.get(req.ResumeURL)
	if res.location == nil || res.location.Query().Get("code") == "" || res.location.Query().Get("state") != "state-unanswered" {
		t.Fatalf("after Alice's answer: %v %d", res.location, res.status)
	}
	// One answer per request: a second one (a racing decline) is refused.
	if err := e.st.DecideAuthRequest(ctx, req.RequestID, aliceID, store.ConsentDeclined, time.Now()); err == nil {
		t.Fatal("a second answer by the same officer was taken")
	}
}
