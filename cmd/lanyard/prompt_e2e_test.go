package main

import (
	"testing"
	"time"

	"golang.org/x/net/html"
	"golang.org/x/oauth2"
)

// TestPromptModulesEndToEnd checks, on Lanyard's own pages with go-oidc as
// the relying party, what the conformance suite's prompt and max_age
// modules check (oidcc-prompt-none-logged-in, -not-logged-in,
// oidcc-max-age-10000, oidcc-max-age-1, oidcc-prompt-login,
// oidcc-id-token-hint, oidcc-login-hint): which requests show a login page,
// the error a prompt=none request gets, and the auth_time of each ID token
// (present, the same without a new login, later and recent after one).
func TestPromptModulesEndToEnd(t *testing.T) {
	l := startLanyard(t)
	inv := l.invite("officer@agency.example")
	rp := newRP(t, l.issuer, "docs-portal-staging", "staging-secret", "http://localhost:9001/callback")
	const cbPrefix = "http://localhost:9001/"
	b := newBrowser(t, l.issuer)
	a := rp.start()
	_, _, recovery, cb := firstSignIn(t, b, inv, a.url, cbPrefix)
	tok, first := rp.finish(t, a, cb)
	if first.AuthTime == 0 {
		t.Fatal("the first ID token has no auth_time")
	}
	hint, _ := tok.Extra("id_token").(string)

	// silent asks for a code with no page and returns its claims.
	silent := func(module string, opts ...oauth2.AuthCodeOption) idClaims {
		t.Helper()
		a := rp.start(opts...)
		p, cb := b.visit("GET", a.url, nil, cbPrefix)
		if p != nil {
			t.Fatalf("%s: a page was shown (%q)", module, p.step)
		}
		_, c := rp.finish(t, a, cb)
		return c
	}
	// relogin expects a login page, signs in again (password and a
	// recovery code: the app's code of this 30 s step was used already)
	// and returns the claims.
	relogin := func(module, code string, opts ...oauth2.AuthCodeOption) idClaims {
		t.Helper()
		a := rp.start(opts...)
		p, cb := b.visit("GET", a.url, nil, cbPrefix)
		if p == nil || (p.step != "identify" && p.step != "password") {
			t.Fatalf("%s: no login page (%v)", module, p)
		}
		for i := 0; p != nil && i < 5; i++ {
			switch p.step {
			case "identify":
				p, cb = b.submit(p, map[string]string{"username": inv.Username}, cbPrefix)
			case "password":
				p, cb = b.submit(p, map[string]string{"username": inv.Username, "password": newPassword}, cbPrefix)
			case "mfa-challenge":
				p, cb = b.submit(p, map[string]string{"code": code}, cbPrefix)
			default:
				t.Fatalf("%s: unexpected page %q", module, p.step)
			}
		}
		_, c := rp.finish(t, a, cb)
		return c
	}

	if c := silent("oidcc-prompt-none-logged-in", oauth2.SetAuthURLParam("prompt", "none")); c.AuthTime != first.AuthTime {
		t.Errorf("oidcc-prompt-none-logged-in: auth_time %d, first %d", c.AuthTime, first.AuthTime)
	}
	if c := silent("oidcc-max-age-10000", oauth2.SetAuthURLParam("max_age", "10000")); c.AuthTime != first.AuthTime {
		t.Errorf("oidcc-max-age-10000: auth_time %d, first %d", c.AuthTime, first.AuthTime)
	}
	silent("oidcc-id-token-hint", oauth2.SetAuthURLParam("prompt", "none"), oauth2.SetAuthURLParam("id_token_hint", hint))

	// oidcc-prompt-none-not-logged-in: an error that needs a user
	// interface, with the state and the issuer, never a page.
	fresh := newBrowser(t, l.issuer)
	a = rp.start(oauth2.SetAuthURLParam("prompt", "none"))
	p, cb := fresh.visit("GET", a.url, nil, cbPrefix)
	if p != nil || cb == nil || cb.Query().Get("error") != "login_required" || cb.Query().Get("state") != a.state || cb.Query().Get("iss") != l.issuer {
		t.Fatalf("oidcc-prompt-none-not-logged-in: page %v, callback %v", p, cb)
	}
	// oidcc-login-hint: the username page comes filled in.
	a = rp.start(oauth2.SetAuthURLParam("login_hint", inv.Username))
	p, _ = fresh.visit("GET", a.url, nil, cbPrefix)
	in := find(p.doc, func(n *html.Node) bool { return n.Data == "input" && attr(n, "name") == "username" })
	if p.step != "identify" || in == nil || attr(in, "value") != inv.Username {
		t.Errorf("oidcc-login-hint: step %q, username field %v", p.step, in)
	}

	// oidcc-max-age-1: after 2 s, a new login; auth_time present, later
	// and recent.
	time.Sleep(2 * time.Second)
	c := relogin("oidcc-max-age-1", recovery[0], oauth2.SetAuthURLParam("max_age", "1"))
	now := time.Now().Unix()
	if c.AuthTime <= first.AuthTime || c.AuthTime > now+5 || c.AuthTime < now-60 {
		t.Errorf("oidcc-max-age-1: auth_time %d, first %d, now %d", c.AuthTime, first.AuthTime, now)
	}
	// oidcc-prompt-login: a new login again, a later auth_time.
	time.Sleep(1100 * time.Millisecond)
	c2 := relogin("oidcc-prompt-login", recovery[1], oauth2.SetAuthURLParam("prompt", "login"))
	if c2.AuthTime <= c.AuthTime {
		t.Errorf("oidcc-prompt-login: auth_time %d, not after %d", c2.AuthTime, c.AuthTime)
	}
}
