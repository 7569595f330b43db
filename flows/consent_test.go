package flows

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/lanyard-idp/lanyard/provider/store"
)

// The consent page: where it comes in the journey, what it shows, what
// each answer records, and that it is answered once.

// signedInTo signs a ready officer (no second factor: withoutMFA) in for a
// request with the query q and returns the page the journey stops at.
func signedInTo(t *testing.T, e *env, q string) (*browser, *resp) {
	t.Helper()
	b := e.browser()
	r := b.open("/test/authorize?" + q)
	r = b.follow(b.submit(r, map[string]string{"username": alice}))
	return b, b.follow(b.submit(r, map[string]string{"password": alicePw}))
}

// permissionsShown lists the consent page's permissions.
func (r *resp) permissionsShown() []string {
	var out []string
	for _, ul := range findAll(r.doc, func(n *html.Node) bool { return n.Data == "ul" && attr(n, "class") == "permissions" }) {
		for _, li := range findAll(ul, func(n *html.Node) bool { return n.Data == "li" }) {
			out = append(out, text(li))
		}
	}
	return out
}

func TestConsentPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withoutMFA)
	u := e.seedReady(alice, alicePw)
	const scopes = "scopes=openid+email+profile"

	// consent: required, first time: the page comes after the sign-in.
	b, r := signedInTo(t, e, "n=1&consent=required&"+scopes+"&claims=email_verified")
	mustStep(t, r, StepConsent)
	checkPage(t, r)
	if !strings.HasSuffix(r.url, PathConsent) || !strings.Contains(text(r.doc), "Allow Docs portal (staging)?") ||
		!strings.Contains(text(r.doc), alice) {
		t.Fatalf("consent page at %s: %s", r.url, text(r.doc))
	}
	want := []string{"Confirm who you are (your account's identifier)", "Your email address", "Your name and username",
		"Whether your email address is verified"}
	if got := r.permissionsShown(); !slices.Equal(got, want) {
		t.Errorf("permissions shown %q, want %q", got, want)
	}
	form := r.form()
	for _, name := range []string{"accept", "decline"} {
		if find(form, func(n *html.Node) bool { return n.Data == "button" && attr(n, "name") == name }) == nil {
			t.Errorf("no %s button in the consent form", name)
		}
	}
	// The account itself is signed in meanwhile: another request of the
	// browser needs no page, and the account page opens.
	if d := b.done(b.open("/test/done?n=other")); !d.SignedIn || d.UserID != u.ID {
		t.Errorf("while the consent page waits, the browser is %+v", d.Browser)
	}
	if r := b.open(PathAccount); !strings.HasSuffix(r.url, PathAccount) {
		t.Errorf("the account page sent the browser to %s", r.url)
	}
	// Neither button: the page again, said where.
	bad := b.submit(r, nil)
	mustStatus(t, bad, http.StatusUnprocessableEntity)
	checkPage(t, bad)
	if !strings.Contains(bad.errorSummary(), msgChooseConsent) {
		t.Errorf("error summary %q", bad.errorSummary())
	}
	// Allow: the request resumes, the answer is on it, the decision is
	// remembered and audited.
	d := b.done(b.follow(b.submit(r, map[string]string{"accept": "yes"})))
	if d.Decision != store.ConsentGranted || d.DecidedBy != u.ID || d.N != "1" || !d.SignedIn {
		t.Fatalf("after Allow: %+v", d)
	}
	c, err := e.st.ConsentOf(t.Context(), u.ID, "docs-portal-staging")
	if err != nil || !slices.Equal(c.Scopes, []string{"email", "openid", "profile"}) || !slices.Equal(c.Claims, []string{"email_verified"}) {
		t.Fatalf("remembered %+v, %v", c, err)
	}
	if n := e.countEvents(store.EventConsentGrant); n != 1 {
		t.Errorf("%d consent.grant events", n)
	}

	// Remembered: the next request resumes at once; asking for less too.
	for _, q := range []string{"n=2&consent=required&" + scopes, "n=3&consent=required&scopes=openid"} {
		if d := b.done(b.open("/test/authorize?" + q)); d.Decision != "" || !d.SignedIn {
			t.Errorf("%s: %+v (no page expected)", q, d)
		}
	}
	// More than before: the page again, saying so.
	r = b.open("/test/authorize?n=4&consent=required&scopes=openid+offline_access")
	mustStep(t, r, StepConsent)
	if !strings.Contains(text(r.doc), "asks for more than you allowed it before") {
		t.Errorf("a wider request's page: %s", text(r.doc))
	}
	b.done(b.follow(b.submit(r, map[string]string{"accept": "yes"})))
	if c, _ := e.st.ConsentOf(t.Context(), u.ID, "docs-portal-staging"); !slices.Contains(c.Scopes, "offline_access") || !slices.Contains(c.Scopes, "email") {
		t.Errorf("the wider grant did not add to the first: %+v", c)
	}

	// prompt=consent: the page whatever was allowed before. Decline: the
	// request resumes with the answer on it (the provider answers
	// access_denied), and what was allowed before is forgotten.
	r = b.open("/test/authorize?n=5&consent=always&scopes=openid")
	mustStep(t, r, StepConsent)
	d = b.done(b.follow(b.submit(r, map[string]string{"decline": "yes"})))
	if d.Decision != store.ConsentDeclined || d.DecidedBy != u.ID {
		t.Fatalf("after Decline: %+v", d)
	}
	if _, err := e.st.ConsentOf(t.Context(), u.ID, "docs-portal-staging"); err == nil {
		t.Error("a decline left the earlier permission in place")
	}
	if n := e.countEvents(store.EventConsentDecline); n != 1 {
		t.Errorf("%d consent.decline events", n)
	}
	// Both buttons at once (a crafted post): the decline wins.
	r = b.open("/test/authorize?n=6&consent=always&scopes=openid")
	if d := b.done(b.follow(b.submit(r, map[string]string{"accept": "yes", "decline": "yes"}))); d.Decision != store.ConsentDeclined {
		t.Errorf("accept and decline together: %q", d.Decision)
	}
	// No page was due: a post to it changes nothing.
	b.open("/test/authorize?n=7")
	res := b.post(PathConsent, url.Values{"accept": {"yes"}})
	if res.status != http.StatusSeeOther {
		t.Errorf("a consent post with no page due: %d", res.status)
	}
	if a, _ := e.st.AuthRequestByID(t.Context(), "req-7", e.clock.Now()); a != nil && a.Decision != "" {
		t.Errorf("a consent post with no page due recorded %q", a.Decision)
	}
}

// The consent page comes last: after the onboarding steps of a first
// sign-in, never before them.
func TestConsentAfterOnboarding(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seedUser(alice, aliceFirst, true)
	b := e.browser()
	r := b.open("/test/authorize?n=1&consent=always&scopes=openid")
	var steps []string
	secret := ""
	for i := 0; i < 12 && r.step() != ""; i++ {
		step := r.step()
		steps = append(steps, step)
		fields := map[string]string{"accept": "yes"}
		switch step {
		case StepIdentify:
			fields = map[string]string{"username": alice}
		case StepPassword:
			fields = map[string]string{"password": aliceFirst}
		case StepMFAEnrol:
			secret = text(byID(r.doc, "totp-secret"))
			fields = map[string]string{"code": codeAt(secret, e.clock.Now())}
		case StepChangePassword:
			fields = map[string]string{"current_password": aliceFirst, "new_password": alicePw, "confirm_password": alicePw}
		case StepConsent:
			if strings.Contains(text(r.doc), "Step ") {
				t.Errorf("the consent page counts as an onboarding step: %s", text(r.doc))
			}
		}
		r = b.follow(b.submit(r, fields))
	}
	want := []string{StepIdentify, StepPassword, StepMFAEnrol, StepRecoveryCodes, StepChangePassword, StepPrivacy, StepTerms, StepConsent}
	if !slices.Equal(steps, want) {
		t.Fatalf("steps %v, want %v", steps, want)
	}
	if d := b.done(r); d.Decision != store.ConsentGranted || !d.SignedIn {
		t.Fatalf("resumed %+v", d)
	}
}

// Twenty racing answers to one page (double clicks, two tabs): one
// decision, one audit event, and every racer lands where the winner did.
func TestConsentRace(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withoutMFA)
	e.seedReady(alice, alicePw)
	b, r := signedInTo(t, e, "n=1&consent=always&scopes=openid")
	mustStep(t, r, StepConsent)
	var wg sync.WaitGroup
	statuses := make([]int, 20)
	for i := range statuses {
		wg.Go(func() {
			field := "accept"
			if i%2 == 1 {
				field = "decline"
			}
			statuses[i] = b.submit(r, map[string]string{field: "yes"}).status
		})
	}
	wg.Wait()
	for i, s := range statuses {
		if s != http.StatusSeeOther {
			t.Errorf("racer %d: status %d", i, s)
		}
	}
	a, err := e.st.AuthRequestByID(t.Context(), "req-1", e.clock.Now())
	if err != nil || a.Decision == "" {
		t.Fatalf("no decision: %+v %v", a, err)
	}
	if n := e.countEvents(store.EventConsentGrant) + e.countEvents(store.EventConsentDecline); n != 1 {
		t.Fatalf("%d consent events for one page, want 1", n)
	}
	if d := b.done(b.open(PathNext)); d.Decision != a.Decision {
		t.Fatalf("the browser resumed with %q, the request says %q", d.Decision, a.Decision)
	}
}

// A page left open past the parked request's life: a clear page, no
// decision, no event.
func TestConsentExpired(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withoutMFA)
	e.seedReady(alice, alicePw)
	b, r := signedInTo(t, e, "n=1&consent=always&scopes=openid")
	mustStep(t, r, StepConsent)
	e.clock.Advance(31 * time.Minute)
	res := b.submit(r, map[string]string{"accept": "yes"})
	mustStatus(t, res, http.StatusGone)
	if !strings.Contains(text(res.doc), msgConsentExpired) {
		t.Errorf("expired page: %s", text(res.doc))
	}
	if n := e.countEvents(store.EventConsentGrant); n != 0 {
		t.Errorf("%d consent.grant events for an expired request", n)
	}
	if _, err := e.st.ConsentOf(t.Context(), "u-alice-agency-example", "docs-portal-staging"); err == nil {
		t.Error("an answer to an expired request was remembered")
	}
}

// TestConsentAnswersItsOwnPage: a consent page answered after another
// request of the browser parked a newer one records nothing for the newer
// one; the browser sees the current page instead.
func TestConsentAnswersItsOwnPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withoutMFA)
	u := e.seedReady(alice, alicePw)
	b, x := signedInTo(t, e, "n=1&consent=always&scopes=openid")
	mustStep(t, x, StepConsent)
	y := b.open("/test/authorize?n=2&consent=always&scopes=openid+email+offline_access")
	mustStep(t, y, StepConsent)
	r := b.submit(x, map[string]string{"accept": "yes"}) // Allow, on the page for X
	mustStatus(t, r, http.StatusConflict)
	mustStep(t, r, StepConsent)
	if got, want := r.permissionsShown(), y.permissionsShown(); !slices.Equal(got, want) {
		t.Errorf("shown %q, want the current page's %q", got, want)
	}
	if a, _ := e.st.AuthRequestByID(t.Context(), "req-2", e.clock.Now()); a == nil || a.Decision != "" {
		t.Fatalf("an answer to the page for X was recorded for Y: %+v", a)
	}
	if _, err := e.st.ConsentOf(t.Context(), u.ID, "docs-portal-staging"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a permission was remembered: %v", err)
	}
	if n := e.countEvents(store.EventConsentGrant) + e.countEvents(store.EventConsentDecline); n != 0 {
		t.Errorf("%d consent events", n)
	}
	// The current page's own answer is taken.
	if d := b.done(b.follow(b.submit(r, map[string]string{"accept": "yes"}))); d.Decision != store.ConsentGranted {
		t.Errorf("the current page's Allow: %q", d.Decision)
	}
}
