package main

// Tokens and the session they came from, end to end: the real journey, the
// real provider, go-oidc's oauth2 client refreshing.

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/html"
	"golang.org/x/oauth2"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/provider/store"
)

// sidOf is the sid claim of a token response's ID token.
func sidOf(t *testing.T, rp *relyingParty, tok *oauth2.Token) string {
	t.Helper()
	raw, _ := tok.Extra("id_token").(string)
	idt, err := rp.verifier.Verify(t.Context(), raw)
	if err != nil {
		t.Fatalf("verify id token: %v", err)
	}
	var c struct {
		SID string `json:"sid"`
	}
	if err := idt.Claims(&c); err != nil || c.SID == "" {
		t.Fatalf("no sid in the ID token (%v)", err)
	}
	return c.SID
}

// refresh redeems a refresh token at the staging portal's token endpoint.
func (o *officer) refresh(t *testing.T, rt string) (*oauth2.Token, error) {
	t.Helper()
	return o.rp.cfg.TokenSource(t.Context(), &oauth2.Token{RefreshToken: rt}).Token()
}

func wantInvalidGrant(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("%s: %v, want invalid_grant", what, err)
	}
}

// authorize runs an authorization of the staging portal in b, answering
// the sign-in pages (a recovery code as the second factor), and returns the
// tokens.
func (o *officer) authorize(t *testing.T, b *browser, opts ...oauth2.AuthCodeOption) *oauth2.Token {
	t.Helper()
	a := o.rp.start(opts...)
	p, cb := b.visit("GET", a.url, nil, stagingCallback)
	for i := 0; p != nil; i++ {
		var fields map[string]string
		switch {
		case i > 6:
			t.Fatalf("the sign-in loops at %s", p.step)
		case p.step == "identify":
			fields = map[string]string{"username": o.email}
		case p.step == "password":
			fields = map[string]string{"password": o.password}
		case p.step == "mfa-challenge":
			fields = map[string]string{"code": o.recovery[0]}
			o.recovery = o.recovery[1:]
		case p.step == "terms" || p.step == "privacy":
			fields = map[string]string{"accept": "yes"}
		case p.step == "":
			// A notice (few recovery codes left) before the relying party.
			next := find(p.doc, func(n *html.Node) bool { return n.Data == "a" && text(n) == "Continue" })
			if next == nil {
				t.Fatalf("unexpected page: %s", text(p.doc))
			}
			to, _ := p.url.Parse(attr(next, "href"))
			p, cb = b.visit("GET", to.String(), nil, stagingCallback)
			continue
		default:
			t.Fatalf("unexpected page %q: %s", p.step, text(p.doc))
		}
		p, cb = b.submit(p, fields, stagingCallback)
	}
	tok, _ := o.rp.finish(t, a, cb)
	return tok
}

// accountForm posts one of the account page's forms (data-account) in b.
func accountPost(t *testing.T, b *browser, issuer, kind string, fields map[string]string) *page {
	t.Helper()
	acct, _ := b.visit("GET", issuer+"/account", nil, "")
	form := find(acct.doc, func(n *html.Node) bool { return n.Data == "form" && attr(n, "data-account") == kind })
	if form == nil {
		t.Fatalf("no %s form on /account: %s", kind, text(acct.doc))
	}
	vals := url.Values{}
	walk(form, func(n *html.Node) {
		if n.Data == "input" && attr(n, "type") == "hidden" {
			vals.Set(attr(n, "name"), attr(n, "value"))
		}
	})
	for k, v := range fields {
		vals.Set(k, v)
	}
	action, _ := acct.url.Parse(attr(form, "action"))
	p, _ := b.visit(http.MethodPost, action.String(), vals, "")
	return p
}

// TestTokensFollowTheSession: rotating the session id (prompt=login,
// confirming it is you on the account page) detaches nothing. A refresh
// after the rotation keeps the session's sid, and RP-initiated logout,
// "sign out other sessions" and a password change all reach the refreshed
// tokens; the current session's tokens survive the last two.
func TestTokensFollowTheSession(t *testing.T) {
	l := startLanyard(t)
	o := l.onboard("officer@agency.example")
	end := func(b *browser, tok *oauth2.Token) {
		t.Helper()
		hint, _ := tok.Extra("id_token").(string)
		p, _ := b.visit("GET", l.issuer+"/end_session?id_token_hint="+url.QueryEscape(hint), nil, "")
		if p == nil || p.status != http.StatusOK {
			t.Fatal("end_session did not answer")
		}
	}

	// prompt=login, then RP-initiated logout.
	b := newBrowser(t, l.issuer)
	tok := o.authorize(t, b)
	sid := sidOf(t, o.rp, tok)
	again := o.authorize(t, b, oauth2.SetAuthURLParam("prompt", "login"))
	if got := sidOf(t, o.rp, again); got != sid {
		t.Fatalf("prompt=login changed the session's sid from %q to %q", sid, got)
	}
	refreshed, err := o.refresh(t, tok.RefreshToken)
	if err != nil {
		t.Fatalf("refresh after prompt=login: %v", err)
	}
	if got := sidOf(t, o.rp, refreshed); got != sid {
		t.Fatalf("the refreshed ID token carries sid %q, the session's is %q", got, sid)
	}
	logouts := len(l.events(store.EventLogout))
	end(b, again)
	// One sign-out, one logout event (the provider's, which names the
	// relying party), whatever part of Lanyard ended the session.
	if evs := l.events(store.EventLogout); len(evs) != logouts+1 {
		t.Errorf("an RP-initiated logout wrote %d logout events, want 1", len(evs)-logouts)
	} else if ev := evs[len(evs)-1]; ev.ClientID != o.rp.cfg.ClientID || ev.UserID == "" {
		t.Errorf("the logout event: client %q, user %q", ev.ClientID, ev.UserID)
	}
	_, err = o.refresh(t, refreshed.RefreshToken)
	wantInvalidGrant(t, "refresh after prompt=login and end_session", err)
	_, err = o.refresh(t, again.RefreshToken)
	wantInvalidGrant(t, "the prompt=login tokens after end_session", err)

	// Confirm it is you on the account page, then "sign out other sessions"
	// from another browser.
	b = newBrowser(t, l.issuer)
	tok = o.authorize(t, b)
	p, _ := b.visit("GET", l.issuer+"/account/reauth", nil, "")
	p, _ = b.submit(p, map[string]string{"code": o.recovery[0]}, "")
	o.recovery = o.recovery[1:]
	if p == nil || !strings.HasSuffix(p.url.Path, "/account") {
		t.Fatalf("confirming it is you did not return to the account page")
	}
	refreshed, err = o.refresh(t, tok.RefreshToken)
	if err != nil {
		t.Fatalf("refresh after confirming it is you: %v", err)
	}
	other := newBrowser(t, l.issuer)
	kept := o.authorize(t, other)
	accountPost(t, other, l.issuer, "sign-out-others", nil)
	_, err = o.refresh(t, refreshed.RefreshToken)
	wantInvalidGrant(t, "refresh after confirming it is you and signing out the others", err)
	if kept, err = o.refresh(t, kept.RefreshToken); err != nil {
		t.Fatalf("the current session's token after signing out the others: %v", err)
	}

	// prompt=login, then a password change in another browser.
	b = newBrowser(t, l.issuer)
	tok = o.authorize(t, b)
	o.authorize(t, b, oauth2.SetAuthURLParam("prompt", "login"))
	refreshed, err = o.refresh(t, tok.RefreshToken)
	if err != nil {
		t.Fatalf("refresh after prompt=login: %v", err)
	}
	const next = "Harbour-willow-ember-31"
	accountPost(t, other, l.issuer, "change-password", map[string]string{
		"current_password": o.password, "new_password": next, "confirm_password": next})
	o.password = next
	_, err = o.refresh(t, refreshed.RefreshToken)
	wantInvalidGrant(t, "refresh after prompt=login and a password change elsewhere", err)
	if _, err = o.refresh(t, kept.RefreshToken); err != nil {
		t.Fatalf("the token of the session that changed the password: %v", err)
	}
}

// TestNoTokenWhileStepPending: a new version of the Terms of use makes every
// refresh answer invalid_grant until the officer has accepted it at a
// sign-in; then the same refresh token works again and the ID token states
// the version accepted.
func TestNoTokenWhileStepPending(t *testing.T) {
	l := startLanyard(t)
	o := l.onboard("officer@agency.example")
	policies := func(tok *oauth2.Token) map[string]string {
		t.Helper()
		raw, _ := tok.Extra("id_token").(string)
		idt, err := o.rp.verifier.Verify(t.Context(), raw)
		if err != nil {
			t.Fatal(err)
		}
		var c idClaims
		if err := idt.Claims(&c); err != nil {
			t.Fatal(err)
		}
		return c.Policies
	}
	before := policies(o.tok)["terms"]
	if before == "" {
		t.Fatal("the ID token states no terms version")
	}
	if err := l.srv.reload(func() (*config.Config, error) {
		next := *l.srv.config()
		next.Documents = slices.Clone(next.Documents)
		for i := range next.Documents {
			if next.Documents[i].ID == "terms" {
				next.Documents[i].Version = before + "-rev2"
			}
		}
		return &next, nil
	}); err != nil {
		t.Fatal(err)
	}
	_, err := o.refresh(t, o.tok.RefreshToken)
	wantInvalidGrant(t, "refresh with new terms not accepted", err)

	// The browser's own SSO session is sent through the terms first.
	tok := o.authorize(t, o.b)
	if got := policies(tok)["terms"]; got != before+"-rev2" {
		t.Fatalf("ID token after accepting states terms %q", got)
	}
	fresh, err := o.refresh(t, o.tok.RefreshToken)
	if err != nil {
		t.Fatalf("refresh once the terms are accepted: %v", err)
	}
	if got := policies(fresh)["terms"]; got != before+"-rev2" {
		t.Fatalf("refreshed ID token states terms %q", got)
	}
}
