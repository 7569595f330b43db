package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/net/html"
	"golang.org/x/oauth2"

	"github.com/lanyard-idp/lanyard/config"
)

// TestConsentEndToEnd: the real journey and the real provider, with go-oidc
// as the relying party. The production portal is registered with consent:
// required; the staging portal is first-party. It checks what the
// conformance suite's prompt and refresh modules exercise, on Lanyard's own
// pages: the consent page after the sign-in, remembered for the next
// request, prompt=consent showing it again (also to a first-party client),
// Decline reaching the relying party as access_denied, a refresh after
// prompt=consent with offline_access; then the names the officer edits on
// the account page at userinfo, and acr_values honoured.
func TestConsentEndToEnd(t *testing.T) {
	l := startLanyardWith(t, devFlags, func(c *config.Config) {
		for i := range c.Clients {
			if c.Clients[i].ID == "docs-portal-production" {
				c.Clients[i].Consent = config.ConsentRequired
			}
		}
	})
	inv := l.invite("officer@agency.example")
	staging := newRP(t, l.issuer, "docs-portal-staging", "staging-secret", "http://localhost:9001/callback")
	prod := newRP(t, l.issuer, "docs-portal-production", "production-secret", "http://localhost:9002/callback")
	const stagingCB, prodCB = "http://localhost:9001/", "http://localhost:9002/"
	b := newBrowser(t, l.issuer)
	a := staging.start()
	steps, _, _, cb := firstSignIn(t, b, inv, a.url, stagingCB)
	if strings.Contains(strings.Join(steps, ","), "consent") {
		t.Fatalf("a first-party client showed the consent page: %v", steps)
	}
	staging.finish(t, a, cb)

	// consent: required: the page, naming the portal and what it asks.
	a = prod.start()
	p, _ := b.visit("GET", a.url, nil, prodCB)
	if p == nil || p.step != "consent" {
		t.Fatalf("the production portal's first request: %+v", p)
	}
	for _, want := range []string{"Allow Docs portal (production)?", "Your email address", "Your name and username",
		"Keep access while you are away"} {
		if !strings.Contains(text(p.doc), want) {
			t.Errorf("the consent page lacks %q: %s", want, text(p.doc))
		}
	}
	_, cb = b.submit(p, map[string]string{"accept": "yes"}, prodCB)
	tok, _ := prod.finish(t, a, cb)

	// Remembered: single sign-on with no page.
	a = prod.start()
	if p, cb = b.visit("GET", a.url, nil, prodCB); p != nil {
		t.Fatalf("a remembered consent showed %q", p.step)
	}
	prod.finish(t, a, cb)

	// prompt=consent with offline_access (oidcc-refresh-token): the page
	// again, also for the first-party portal; then the refresh token
	// rotates and works.
	a = staging.start(oauth2.SetAuthURLParam("prompt", "consent"))
	p, _ = b.visit("GET", a.url, nil, stagingCB)
	if p == nil || p.step != "consent" {
		t.Fatalf("prompt=consent on a first-party client: %+v", p)
	}
	_, cb = b.submit(p, map[string]string{"accept": "yes"}, stagingCB)
	stok, _ := staging.finish(t, a, cb)
	if stok.RefreshToken == "" {
		t.Fatal("no refresh token with offline_access")
	}
	fresh, err := staging.cfg.TokenSource(t.Context(), &oauth2.Token{RefreshToken: stok.RefreshToken}).Token()
	if err != nil || fresh.RefreshToken == "" || fresh.RefreshToken == stok.RefreshToken {
		t.Fatalf("refresh after prompt=consent: %v (rotated: %v)", err, fresh != nil && fresh.RefreshToken != stok.RefreshToken)
	}

	// Decline: access_denied at the relying party, with its state and iss.
	a = staging.start(oauth2.SetAuthURLParam("prompt", "consent"))
	p, _ = b.visit("GET", a.url, nil, stagingCB)
	_, cb = b.submit(p, map[string]string{"decline": "yes"}, stagingCB)
	if cb == nil || cb.Query().Get("error") != "access_denied" || cb.Query().Get("code") != "" ||
		cb.Query().Get("state") != a.state || cb.Query().Get("iss") != l.issuer {
		t.Fatalf("after Decline the relying party got %v", cb)
	}

	// The names the officer sets on the account page reach userinfo.
	acct, _ := b.visit("GET", l.issuer+"/account", nil, "")
	form := find(acct.doc, func(n *html.Node) bool { return n.Data == "form" && attr(n, "data-account") == "names" })
	if form == nil {
		t.Fatalf("no names form on the account page: %s", text(acct.doc))
	}
	action, _ := acct.url.Parse(attr(form, "action"))
	b.visit(http.MethodPost, action.String(), url.Values{"name": {"Alex Officer-Smith"}, "given_name": {"Alex"},
		"family_name": {"Officer-Smith"}}, "")
	ui, err := prod.provider.UserInfo(t.Context(), oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatal(err)
	}
	var names struct {
		Name       string `json:"name"`
		GivenName  string `json:"given_name"`
		FamilyName string `json:"family_name"`
	}
	if err := ui.Claims(&names); err != nil || names.Name != "Alex Officer-Smith" || names.GivenName != "Alex" || names.FamilyName != "Officer-Smith" {
		t.Fatalf("userinfo names %+v, %v", names, err)
	}

	// acr_values: the session's mfa is stated when asked for; a request
	// for a passkey from an officer without one gets what was achieved,
	// never more.
	for _, acr := range []string{"urn:lanyard:acr:mfa", "urn:lanyard:acr:phr"} {
		a = staging.start(oauth2.SetAuthURLParam("acr_values", acr))
		p, cb = b.visit("GET", a.url, nil, stagingCB)
		if p != nil {
			t.Fatalf("acr_values=%s showed %q", acr, p.step)
		}
		if _, c := staging.finish(t, a, cb); c.ACR != "urn:lanyard:acr:mfa" {
			t.Errorf("acr_values=%s: the ID token states %q", acr, c.ACR)
		}
	}
	// An essential phr that cannot be reached: access_denied, not a lie.
	a = staging.start(oauth2.SetAuthURLParam("claims", `{"id_token":{"acr":{"essential":true,"value":"urn:lanyard:acr:phr"}}}`))
	if _, cb = b.visit("GET", a.url, nil, stagingCB); cb == nil || cb.Query().Get("error") != "access_denied" {
		t.Fatalf("an essential phr without a passkey: %v", cb)
	}
}
