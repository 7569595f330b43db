package flows

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/lanyard-idp/lanyard/provider/authn"
	"github.com/lanyard-idp/lanyard/provider/store"
)

// Step-up for acr_values: a request for more than the session proved goes
// through the second factor once more — a passkey for the phishing-
// resistant level — and the session states the new level only when it was
// reached.

// TestStepUpToPasskey: an officer signed in with an authenticator code
// (acr mfa) and holding a passkey is asked for the passkey alone when a
// request wants urn:lanyard:acr:phr; after it, the session states phr.
func TestStepUpToPasskey(t *testing.T) {
	t.Parallel()
	e := newPasskeyEnv(t)
	e.seedUser(alice, aliceFirst, true)
	b := e.browser()
	o := firstLogin(t, e, b)
	if o.done.ACR != authn.ACRMFA {
		t.Fatalf("signed in with a code: acr %q", o.done.ACR)
	}
	a := e.authenticator()
	res, _ := b.register(PathAccountPasskey, a, "Blue key")
	if res.status != http.StatusOK {
		t.Fatalf("add a passkey: %d %s", res.status, res.body)
	}

	// mfa asked of an mfa session: no detour.
	if d := b.done(b.open("/test/authorize?n=2&acr=" + authn.ACRMFA)); d.ACR != authn.ACRMFA {
		t.Fatalf("mfa asked: %+v", d.Browser)
	}
	// phr asked (with mfa as a second choice, weakest first): the second
	// factor page, passkey only.
	r := b.open("/test/authorize?n=3&acr=" + authn.ACRPhishingResistant)
	mustStep(t, r, StepMFAChallenge)
	checkPage(t, r)
	if byID(r.doc, "code") != nil || !strings.Contains(text(r.doc), "Use your passkey") ||
		find(r.doc, func(n *html.Node) bool { return attr(n, "data-webauthn") == "authenticate" }) == nil {
		t.Fatalf("the step-up page: %s", text(r.doc))
	}
	// The session is still signed in for everything else meanwhile.
	if d := b.done(b.open("/test/done?n=other")); !d.SignedIn || d.ACR != authn.ACRMFA {
		t.Fatalf("during the step-up the browser is %+v", d.Browser)
	}
	// A code does not reach it, and is not taken.
	bad := b.post(PathMFAChallenge, map[string][]string{"code": {codeAt(o.secret, e.clock.Now())}})
	mustStatus(t, bad, http.StatusUnprocessableEntity)
	if !strings.Contains(bad.errorSummary(), msgPasskeyAsked) {
		t.Errorf("a code at the passkey step-up: %q", bad.errorSummary())
	}
	// The passkey: the request resumes with phr, and the step-up is audited.
	d := b.done(b.mustGo(b.assert(PathPasskeyChallenge, a), PathNext))
	if d.ACR != authn.ACRPhishingResistant || !slices.Contains(d.AMR, "mfa") || d.N != "3" {
		t.Fatalf("after the passkey: %+v", d.Browser)
	}
	ev, detail := e.lastEvent(store.EventSigninStepUp)
	if ev.ID == 0 || detail["acr"] != authn.ACRPhishingResistant || detail["client_id"] != "docs-portal-staging" {
		t.Fatalf("step-up event %+v %v", ev, detail)
	}
	// And it stays: phr asked again, no detour.
	if d := b.done(b.open("/test/authorize?n=4&acr=" + authn.ACRPhishingResistant)); d.ACR != authn.ACRPhishingResistant {
		t.Fatalf("phr asked again: %+v", d.Browser)
	}
}

// TestStepUpDeclined: the officer goes on without the passkey; the request
// resumes with what the session proved (mfa), never phr.
func TestStepUpDeclined(t *testing.T) {
	t.Parallel()
	e := newPasskeyEnv(t)
	e.seedUser(alice, aliceFirst, true)
	b := e.browser()
	firstLogin(t, e, b)
	res, _ := b.register(PathAccountPasskey, e.authenticator(), "Blue key")
	mustStatus(t, res, http.StatusOK)
	r := b.open("/test/authorize?n=2&acr=" + authn.ACRPhishingResistant)
	mustStep(t, r, StepMFAChallenge)
	skip := find(r.doc, func(n *html.Node) bool { return n.Data == "button" && attr(n, "name") == "skip" })
	if skip == nil {
		t.Fatal("no way to go on without the passkey")
	}
	d := b.done(b.follow(b.submit(r, map[string]string{"skip": "yes"})))
	if d.ACR != authn.ACRMFA {
		t.Fatalf("without the passkey the session states %q", d.ACR)
	}
	if n := e.countEvents(store.EventSigninStepUp); n != 0 {
		t.Fatalf("%d step-up events without a step-up", n)
	}
}

// TestStepUpWithoutPasskey: nothing of the officer's reaches phr: no page
// that cannot be passed; the request resumes with mfa at once.
func TestStepUpWithoutPasskey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seedUser(alice, aliceFirst, true)
	b := e.browser()
	firstLogin(t, e, b)
	if d := b.done(b.open("/test/authorize?n=2&acr=" + authn.ACRPhishingResistant)); d.ACR != authn.ACRMFA {
		t.Fatalf("phr without a passkey: %+v", d.Browser)
	}
}

// TestStepUpEnrolsFactor: a journey without mfa-enrol leaves a password
// alone (acr pwd); a request for mfa enrols a second factor first.
func TestStepUpEnrolsFactor(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withoutMFA)
	e.seedReady(alice, alicePw)
	b := e.browser()
	r := b.open("/test/authorize?n=1")
	r = b.follow(b.submit(r, map[string]string{"username": alice}))
	d := b.done(b.follow(b.submit(r, map[string]string{"password": alicePw})))
	if d.ACR != authn.ACRPassword {
		t.Fatalf("a password alone: acr %q", d.ACR)
	}
	r = b.open("/test/authorize?n=2&acr=" + authn.ACRMFA)
	mustStep(t, r, StepMFAEnrol)
	secret := text(byID(r.doc, "totp-secret"))
	r = b.follow(b.submit(r, map[string]string{"code": codeAt(secret, e.clock.Now())}))
	mustStep(t, r, StepRecoveryCodes)
	codes := findAll(r.doc, func(n *html.Node) bool { return n.Data == "li" && attr(n, "class") == "recovery-code" })
	if len(codes) == 0 {
		t.Fatal("no recovery codes after the enrolment")
	}
	d = b.done(b.follow(b.submit(r, map[string]string{"accept": "yes"})))
	if d.ACR != authn.ACRMFA || !slices.Contains(d.AMR, "otp") {
		t.Fatalf("after enrolling: %+v", d.Browser)
	}
}
