package provider

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// What the conformance suite's RP-initiated logout and back-channel logout
// plans check, the way their conditions judge it (AbstractOIDCCRpInitiatedLogout
// and its modules; OIDCCBackChannelRpInitiatedLogout with
// ValidateLogoutTokenClaims, CheckIdTokenSidMatchesLogoutToken,
// CheckIdTokenSubMatchesLogoutToken, CheckLogoutTokenNoNonce,
// CheckLogoutTokenHasSubOrSid, CheckForUnexpectedParametersInBackchannelLogoutRequest,
// CheckPostLogoutState, CheckForUnexpectedParametersInPostLogoutRedirect).

// oidcc-backchannel-rp-initiated-logout: a normal sign-in, then the browser
// at end_session with id_token_hint, post_logout_redirect_uri and state:
// the relying party gets a back-channel request with nothing but a valid
// logout token for that sub and sid, the browser comes back with exactly
// the state, and prompt=none afterwards is an error.
func TestConformanceBackchannelRPInitiatedLogout(t *testing.T) {
	var mu sync.Mutex
	var forms []url.Values
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		mu.Lock()
		forms = append(forms, r.PostForm)
		mu.Unlock()
		w.Header().Set("Cache-Control", "no-store")
	}))
	t.Cleanup(rcv.Close)
	e := newEnv(t)
	e.p.SetClients(clientsWith(e.cfg.Clients, webappID, rcv.URL+"/backchannel_logout"))
	b := e.newBrowser()
	r := e.newRP(webappID, webappSecret, webappRedir, oidc.ScopeOpenID)
	e.journey.setNext(alice())
	tok, idt := r.exchange(r.authorize(b))
	idc := claimsOf(t, idt)

	res := b.get(e.issuer + pathEndSession + "?" + url.Values{"id_token_hint": {tok.Extra("id_token").(string)},
		"post_logout_redirect_uri": {webappLogout}, "state": {"logout-state-1"}}.Encode())
	// CheckPostLogoutState, CheckForUnexpectedParametersInPostLogoutRedirect.
	if res.location == nil || res.location.Query().Get("state") != "logout-state-1" || len(res.location.Query()) != 1 ||
		!strings.HasPrefix(res.location.String(), webappLogout+"?") {
		t.Fatalf("post-logout redirect %v (%d)", res.location, res.status)
	}
	if got := e.p.deliverLogouts(context.Background()); got != 1 {
		t.Fatalf("delivered %d logout tokens, want 1", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(forms) != 1 {
		t.Fatalf("the relying party got %d back-channel requests", len(forms))
	}
	// ExtractLogoutTokenFromBackchannelLogoutRequest,
	// CheckForUnexpectedParametersInBackchannelLogoutRequest.
	if len(forms[0]) != 1 || forms[0].Get("logout_token") == "" {
		t.Fatalf("back-channel request parameters %v, want logout_token alone", forms[0])
	}
	// ValidateLogoutTokenSignature, ValidateLogoutTokenClaims (iss, aud, iat,
	// jti, events: exactly one member, an empty object), no nonce.
	lc := e.logoutClaims(forms[0].Get("logout_token"), webappID)
	events, _ := lc["events"].(map[string]any)
	ev, ok := events[backchannelEvent].(map[string]any)
	if len(events) != 1 || !ok || len(ev) != 0 {
		t.Errorf("events = %v, want exactly {%q: {}}", lc["events"], backchannelEvent)
	}
	// CheckIdTokenSubMatchesLogoutToken, CheckIdTokenSidMatchesLogoutToken.
	if lc["sub"] != idc["sub"] || lc["sid"] == nil || lc["sid"] != idc["sid"] {
		t.Errorf("logout token sub/sid %v/%v, ID token %v/%v", lc["sub"], lc["sid"], idc["sub"], idc["sid"])
	}
	// The prompt=none request that follows must fail: the session is over.
	e.journey.setNext(nil)
	r.authorizeError(t, b, "login_required", oauth2.SetAuthURLParam("prompt", "none"))
}

// longState is a state of the length the suite sends at end_session.
var longState = strings.Repeat("aB3-", 32)

// The RP-initiated logout plan's variations of the logout request.
func TestConformanceRPInitiatedLogoutVariants(t *testing.T) {
	e := newEnv(t)
	hintOf := func(b *browser) string { return e.idToken(b) }
	tests := []struct {
		module string
		params func(hint string) url.Values
		// want is where the browser must end: the exact redirect, or "" for
		// a page of Lanyard's own with status.
		want   string
		status int
		// signedOut: the session ends.
		signedOut bool
	}{
		// The suite's end-session state is 128 characters, to catch an OP
		// that corrupts it.
		{"oidcc-rp-initiated-logout", func(h string) url.Values {
			return url.Values{"id_token_hint": {h}, "post_logout_redirect_uri": {webappLogout}, "state": {longState}}
		}, webappLogout + "?state=" + longState, 0, true},
		{"oidcc-rp-initiated-logout-no-state", func(h string) url.Values {
			return url.Values{"id_token_hint": {h}, "post_logout_redirect_uri": {webappLogout}}
		}, webappLogout, 0, true},
		{"oidcc-rp-initiated-logout-only-state", func(h string) url.Values {
			return url.Values{"id_token_hint": {h}, "state": {"st-2"}}
		}, "", http.StatusOK, true},
		{"oidcc-rp-initiated-logout-no-post-logout-redirect-uri", func(h string) url.Values {
			return url.Values{"id_token_hint": {h}}
		}, "", http.StatusOK, true},
		{"oidcc-rp-initiated-logout-query-added-to-logout-redirect-uri", func(h string) url.Values {
			return url.Values{"id_token_hint": {h}, "post_logout_redirect_uri": {webappLogout + "?foo=bar"}, "state": {"st-3"}}
		}, "", http.StatusBadRequest, false},
		{"oidcc-rp-initiated-logout-bad-post-logout-redirect-uri", func(h string) url.Values {
			return url.Values{"id_token_hint": {h}, "post_logout_redirect_uri": {"https://rp.example/not-registered"}}
		}, "", http.StatusBadRequest, false},
		{"oidcc-rp-initiated-logout-modified-id-token-hint", func(h string) url.Values {
			parts := strings.Split(h, ".")
			sig := []byte(parts[2])
			sig[len(sig)/2] ^= 1
			return url.Values{"id_token_hint": {parts[0] + "." + parts[1] + "." + string(sig)}, "post_logout_redirect_uri": {webappLogout}}
		}, "", http.StatusBadRequest, false},
		// The suite sends no client_id either: the address cannot be
		// checked, so an error page and never the redirect.
		{"oidcc-rp-initiated-logout-no-id-token-hint", func(string) url.Values {
			return url.Values{"post_logout_redirect_uri": {webappLogout}, "state": {"st-4"}}
		}, "", http.StatusBadRequest, false},
		// With client_id the address is checked against the client's
		// registration: a confirmation page, never a silent redirect.
		{"no id_token_hint, with client_id (confirmation)", func(string) url.Values {
			return url.Values{"client_id": {webappID}, "post_logout_redirect_uri": {webappLogout}, "state": {"st-5"}}
		}, "", http.StatusOK, false},
		{"oidcc-rp-initiated-logout-no-params (confirmation)", func(string) url.Values { return url.Values{} },
			"", http.StatusOK, false},
	}
	for _, tc := range tests {
		t.Run(tc.module, func(t *testing.T) {
			b := e.newBrowser()
			hint := hintOf(b)
			before := e.journey.signOutCount()
			res := b.get(e.issuer + pathEndSession + "?" + tc.params(hint).Encode())
			switch {
			case tc.want != "":
				if res.location == nil || res.location.String() != tc.want {
					t.Fatalf("ended at %v (%d), want %s", res.location, res.status, tc.want)
				}
			case res.location != nil || res.status != tc.status:
				t.Fatalf("got %d %v, want a page with status %d", res.status, res.location, tc.status)
			}
			if strings.Contains(res.body, "st-2") {
				t.Error("the signed-out page echoes a state it has nowhere to send")
			}
			if got := e.journey.signOutCount() == before+1; got != tc.signedOut {
				t.Errorf("signed out: %v, want %v", got, tc.signedOut)
			}
		})
	}
}
