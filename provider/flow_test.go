package provider

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/provider/authn"
	"github.com/lanyard-idp/lanyard/provider/store"
)

func TestDiscovery(t *testing.T) {
	e := newEnv(t)
	resp, err := e.srv.Client().Get(e.issuer + pathDiscovery)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if got := resp.Header.Get("Cache-Control"); got != "public, max-age=300" {
		t.Errorf("Cache-Control = %q", got)
	}
	var meta map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&meta); err != nil {
		t.Fatal(err)
	}
	wantURL := map[string]string{
		"issuer":                                "",
		"authorization_endpoint":                pathAuthorize,
		"token_endpoint":                        pathToken,
		"userinfo_endpoint":                     pathUserinfo,
		"jwks_uri":                              pathJWKS,
		"end_session_endpoint":                  pathEndSession,
		"introspection_endpoint":                pathIntrospect,
		"revocation_endpoint":                   pathRevoke,
		"pushed_authorization_request_endpoint": pathPAR,
	}
	for k, path := range wantURL {
		if meta[k] != e.issuer+path {
			t.Errorf("%s = %v, want %s", k, meta[k], e.issuer+path)
		}
	}
	wantList := map[string][]string{
		"response_types_supported":              {"code"},
		"response_modes_supported":              {"query"},
		"subject_types_supported":               {"public"},
		"id_token_signing_alg_values_supported": {"RS256", "ES256"},
		"code_challenge_methods_supported":      {"S256"},
		"prompt_values_supported":               {"none", "login", "consent", "select_account"},
		"acr_values_supported":                  {"urn:lanyard:acr:pwd", "urn:lanyard:acr:mfa", "urn:lanyard:acr:phr"},
		"grant_types_supported":                 {"authorization_code", "refresh_token", "client_credentials"},
	}
	for k, want := range wantList {
		if got := strList(meta[k]); !slices.Equal(got, want) {
			t.Errorf("%s = %v, want %v", k, got, want)
		}
	}
	for k, want := range map[string]bool{
		"authorization_response_iss_parameter_supported": true,
		"request_parameter_supported":                    false,
		"request_uri_parameter_supported":                false,
		"claims_parameter_supported":                     true,
		"backchannel_logout_supported":                   true,
		"backchannel_logout_session_supported":           true,
		"frontchannel_logout_supported":                  true,
		"frontchannel_logout_session_supported":          true,
	} {
		if meta[k] != want {
			t.Errorf("%s = %v, want %v", k, meta[k], want)
		}
	}

	// A forged Host or X-Forwarded-Host changes nothing.
	req, _ := http.NewRequest(http.MethodGet, e.issuer+pathDiscovery, nil)
	req.Host = "evil.example"
	req.Header.Set("X-Forwarded-Host", "evil.example")
	req.Header.Set("X-Forwarded-Proto", "https")
	resp2, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	if strings.Contains(string(data), "evil.example") {
		t.Error("discovery reflects the request's Host")
	}

	// JWKS: current RS256 and ES256 keys, cacheable.
	resp3, err := e.srv.Client().Get(e.issuer + pathJWKS)
	if err != nil {
		t.Fatal(err)
	}
	defer resp3.Body.Close()
	if got := resp3.Header.Get("Cache-Control"); got != "public, max-age=300" {
		t.Errorf("JWKS Cache-Control = %q", got)
	}
	var set struct {
		Keys []struct {
			Kid, Alg, Use, Kty string
			D                  string `json:"d"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp3.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	var algs []string
	for _, k := range set.Keys {
		algs = append(algs, k.Alg)
		if k.D != "" {
			t.Errorf("JWKS publishes a private key (kid %s)", k.Kid)
		}
		if k.Use != "sig" || k.Kid == "" {
			t.Errorf("key %+v: want use=sig and a kid", k)
		}
	}
	slices.Sort(algs)
	if !slices.Equal(algs, []string{"ES256", "RS256"}) {
		t.Errorf("JWKS algorithms = %v", algs)
	}

	// The relying party library accepts the metadata.
	e.newRP(webappID, webappSecret, webappRedir)
}

func strList(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func TestCodeFlow(t *testing.T) {
	e := newEnv(t)
	r := e.newRP(webappID, webappSecret, webappRedir)
	b := e.newBrowser()
	e.journey.setNext(alice())

	run := r.authorize(b)
	req := e.journey.lastSignIn()
	if req.ClientID != webappID || req.ClientName != "Web app" || req.ForceLogin {
		t.Errorf("SignIn request = %+v", req)
	}
	if !strings.HasPrefix(req.ResumeURL, e.issuer+pathResume+"?id=") {
		t.Errorf("ResumeURL = %q", req.ResumeURL)
	}
	tok, idt := r.exchange(run)

	var claims struct {
		Sub               string            `json:"sub"`
		AuthTime          int64             `json:"auth_time"`
		AMR               []string          `json:"amr"`
		ACR               string            `json:"acr"`
		SID               string            `json:"sid"`
		Email             string            `json:"email"`
		EmailVerified     bool              `json:"email_verified"`
		Name              string            `json:"name"`
		PreferredUsername string            `json:"preferred_username"`
		Policies          map[string]string `json:"lanyard_policies"`
	}
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if idt.Issuer != e.issuer || claims.Sub != aliceID || !slices.Contains(idt.Audience, webappID) {
		t.Errorf("iss/sub/aud = %s/%s/%v", idt.Issuer, claims.Sub, idt.Audience)
	}
	if claims.AuthTime == 0 || time.Since(time.Unix(claims.AuthTime, 0)) > time.Minute {
		t.Errorf("auth_time = %d", claims.AuthTime)
	}
	if !slices.Equal(claims.AMR, []string{"pwd", "otp", "mfa"}) || claims.ACR != "urn:lanyard:acr:mfa" {
		t.Errorf("amr/acr = %v/%s", claims.AMR, claims.ACR)
	}
	// OIDC Core §5.4: claims about the officer are at userinfo, not in the
	// ID token (this client lists no id_token_claims and sent no claims
	// parameter); nor does fosite's rat leak into it.
	if claims.SID == "" || claims.Email != "" || claims.EmailVerified || claims.Name != "" ||
		claims.PreferredUsername != "" || claims.Policies != nil {
		t.Errorf("claims = %+v", claims)
	}
	var all map[string]any
	idt.Claims(&all)
	if _, ok := all["rat"]; ok {
		t.Errorf("ID token carries rat: %v", all)
	}
	if idt.AccessTokenHash == "" {
		t.Error("no at_hash")
	}
	if hdrKID(t, tok.Extra("id_token").(string)) == "" {
		t.Error("ID token without kid")
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token although offline_access was granted")
	}
	// Every stored token expires as configured (fosite sets the expiry on the
	// session between two reads of the code: it must survive them).
	for kind, want := range map[string]time.Duration{"access": time.Hour, "refresh": 720 * time.Hour} {
		var exp sql.NullInt64
		if err := e.st.DB().QueryRow(`SELECT expires_at FROM oauth WHERE kind = ?`, kind).Scan(&exp); err != nil {
			t.Fatal(err)
		}
		got := time.Until(time.UnixMicro(exp.Int64))
		if !exp.Valid || got < want-time.Minute || got > want+time.Minute {
			t.Errorf("%s token expires in %v, want %v", kind, got, want)
		}
	}
	if in := e.introspect(tok.RefreshToken); in["active"] != true {
		t.Errorf("refresh token introspection = %v", in)
	}

	// Userinfo.
	ui, err := r.provider.UserInfo(r.ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	var uic map[string]any
	if err := ui.Claims(&uic); err != nil {
		t.Fatal(err)
	}
	if uic["sub"] != aliceID || uic["email"] != aliceEmail || uic["preferred_username"] != aliceEmail ||
		uic["name"] != "Alice Example" || uic["email_verified"] != true || uic["updated_at"] == nil {
		t.Errorf("userinfo = %v", uic)
	}
	if pol, _ := uic["lanyard_policies"].(map[string]any); pol["privacy"] != "2026-01" || pol["terms"] != "2026-01" {
		t.Errorf("userinfo lanyard_policies = %v", uic["lanyard_policies"])
	}

	// Introspection sees the access token.
	in := e.introspect(tok.AccessToken)
	if in["active"] != true || in["client_id"] != webappID || in["sub"] != aliceID {
		t.Errorf("introspection = %v", in)
	}

	// Refresh rotates: the new pair works, the old refresh token is dead.
	tok2, err := r.oauth.TokenSource(r.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if tok2.RefreshToken == "" || tok2.RefreshToken == tok.RefreshToken {
		t.Fatal("refresh token not rotated")
	}
	if raw, _ := tok2.Extra("id_token").(string); raw == "" {
		t.Error("no ID token on refresh")
	} else if _, err := r.verifier.Verify(r.ctx, raw); err != nil {
		t.Errorf("refreshed ID token: %v", err)
	}
	if e.active(tok.RefreshToken) || e.active(tok.AccessToken) {
		t.Error("old tokens still active after rotation")
	}
	if !e.active(tok2.RefreshToken) || !e.active(tok2.AccessToken) {
		t.Error("new tokens not active")
	}

	// Audit: token.issue for the code and the refresh.
	evs, err := e.st.Audit(context.Background(), store.AuditFilter{Event: "token.issue"})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].ClientID != webappID || evs[0].UserID != aliceID ||
		!strings.Contains(string(evs[0].Detail), "authorization_code") || !strings.Contains(string(evs[1].Detail), "refresh_token") {
		t.Errorf("audit = %+v", evs)
	}
}

func hdrKID(t testing.TB, jwt string) string {
	t.Helper()
	h, _, _ := strings.Cut(jwt, ".")
	data, err := b64url(h)
	if err != nil {
		t.Fatal(err)
	}
	var hdr struct{ Kid, Alg string }
	if err := json.Unmarshal(data, &hdr); err != nil {
		t.Fatal(err)
	}
	return hdr.Kid
}

func TestSSOAcrossClients(t *testing.T) {
	e := newEnv(t)
	b := e.newBrowser()
	e.journey.setNext(alice())
	r1 := e.newRP(webappID, webappSecret, webappRedir)
	r1.exchange(r1.authorize(b))
	if n := e.journey.signInCount(); n != 1 {
		t.Fatalf("sign-ins = %d", n)
	}
	// Second relying party, same browser: no new sign-in.
	e.journey.setNext(nil)
	r2 := e.newRP(otherID, otherSecret, otherRedir)
	_, idt := r2.exchange(r2.authorize(b))
	if n := e.journey.signInCount(); n != 1 {
		t.Errorf("second client asked for a sign-in (%d)", n)
	}
	if idt.Subject != aliceID {
		t.Errorf("sub = %s", idt.Subject)
	}
}

func TestScopesLimitClaims(t *testing.T) {
	e := newEnv(t)
	r := e.newRP(webappID, webappSecret, webappRedir, "openid")
	b := e.newBrowser()
	e.journey.setNext(alice())
	tok, idt := r.exchange(r.authorize(b))
	var c map[string]any
	idt.Claims(&c)
	for _, k := range []string{"email", "name", "preferred_username"} {
		if _, ok := c[k]; ok {
			t.Errorf("ID token has %s without its scope", k)
		}
	}
	if tok.RefreshToken != "" {
		t.Error("refresh token issued without offline_access")
	}
	ui, err := r.provider.UserInfo(r.ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatal(err)
	}
	var uic map[string]any
	ui.Claims(&uic)
	if _, ok := uic["email"]; ok || uic["sub"] != aliceID {
		t.Errorf("userinfo = %v", uic)
	}
}

func TestPublicClientPKCE(t *testing.T) {
	e := newEnv(t)
	r := e.newRP(spaID, "", spaRedir)
	b := e.newBrowser()
	e.journey.setNext(alice())
	tok, _ := r.exchange(r.authorize(b))
	if tok.AccessToken == "" {
		t.Fatal("no access token")
	}
}

func TestPromptNone(t *testing.T) {
	e := newEnv(t)
	r := e.newRP(webappID, webappSecret, webappRedir)

	cases := []struct {
		name    string
		browser *authn.Browser
		want    string
	}{
		{"no session", nil, "login_required"},
		{"journey in progress", &authn.Browser{InProgress: true, UserID: aliceID}, "interaction_required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := e.newBrowser()
			if tc.browser != nil {
				// Get a session cookie in the given state via the stand-in login.
				e.journey.setNext(tc.browser)
				b.get(e.issuer + "/test/login?resume=" + url.QueryEscape(e.issuer+"/nowhere"))
			}
			before := e.journey.signInCount()
			res := b.get(r.oauth.AuthCodeURL("state-123456789", oauth2.SetAuthURLParam("prompt", "none"),
				oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
			if res.location == nil {
				t.Fatalf("no redirect: %d %s", res.status, truncate(res.body))
			}
			q := res.location.Query()
			if q.Get("error") != tc.want || q.Get("iss") != e.issuer || q.Get("state") != "state-123456789" {
				t.Errorf("redirect = %s", res.location)
			}
			if !strings.HasPrefix(res.location.String(), webappRedir+"?") {
				t.Errorf("redirected to %s", res.location)
			}
			if e.journey.signInCount() != before {
				t.Error("prompt=none showed a sign-in")
			}
		})
	}

	t.Run("signed in", func(t *testing.T) {
		b := e.newBrowser()
		e.journey.setNext(alice())
		r.exchange(r.authorize(b))
		e.journey.setNext(nil)
		run := r.authorize(b, oauth2.SetAuthURLParam("prompt", "none"))
		r.exchange(run)

		// max_age=0 asks for a sign-in now (OIDC Core §3.1.2.1: like
		// prompt=login), which prompt=none forbids showing.
		before := e.journey.signInCount()
		res := b.get(r.oauth.AuthCodeURL("state-123456789", oauth2.SetAuthURLParam("prompt", "none"),
			oauth2.SetAuthURLParam("max_age", "0"), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		if res.location == nil || res.location.Query().Get("error") != "login_required" || res.location.Query().Has("code") {
			t.Errorf("prompt=none&max_age=0 on a signed-in browser: %d %v, want login_required", res.status, res.location)
		}
		if e.journey.signInCount() != before {
			t.Error("prompt=none showed a sign-in")
		}
	})
}

func TestPromptLoginAndMaxAge(t *testing.T) {
	e := newEnv(t)
	r := e.newRP(webappID, webappSecret, webappRedir)
	old := alice()
	old.AuthTime = time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Second)

	// Without prompt or max_age the old sign-in is good enough.
	b := e.newBrowser()
	e.journey.setNext(old)
	_, idt := r.exchange(r.authorize(b))
	if got := authTimeOf(t, idt.Claims); got != old.AuthTime.Unix() {
		t.Fatalf("auth_time = %d, want %d", got, old.AuthTime.Unix())
	}

	for _, tc := range []struct {
		name  string
		param oauth2.AuthCodeOption
	}{
		{"prompt=login", oauth2.SetAuthURLParam("prompt", "login")},
		{"max_age exceeded", oauth2.SetAuthURLParam("max_age", "60")},
		{"max_age=0", oauth2.SetAuthURLParam("max_age", "0")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := e.newBrowser()
			e.journey.setNext(old)
			b.get(e.issuer + "/test/login?resume=" + url.QueryEscape(e.issuer+"/nowhere"))

			// Nobody signs in: the browser must land on the sign-in page, not
			// get a code from the old sign-in.
			e.journey.setNext(nil)
			n := e.journey.signInCount()
			v := oauth2.GenerateVerifier()
			res := b.get(r.oauth.AuthCodeURL("state-123456789", tc.param, oidcNonce("nonce-123456789"), oauth2.S256ChallengeOption(v)))
			if res.location != nil || res.body != "sign-in page" {
				t.Fatalf("expected the sign-in page, got %d %v", res.status, res.location)
			}
			req := e.journey.lastSignIn()
			if e.journey.signInCount() != n+1 || !req.ForceLogin {
				t.Fatalf("SignIn = %+v", req)
			}

			// Resuming while the browser still has the old sign-in goes back to
			// the sign-in; it does not issue a code.
			res = b.get(req.ResumeURL)
			if res.location != nil || e.journey.signInCount() != n+2 || !e.journey.lastSignIn().ForceLogin {
				t.Fatalf("resume with a stale sign-in: %d %v", res.status, res.location)
			}

			// A new sign-in satisfies it (no loop), and auth_time moves.
			e.journey.setNext(alice())
			res = b.get(req.ResumeURL)
			if res.location == nil || res.location.Query().Get("code") == "" {
				t.Fatalf("no code after the new sign-in: %d %s %v", res.status, truncate(res.body), res.location)
			}
			_, idt := r.exchange(authRun{state: "state-123456789", nonce: "nonce-123456789", verifier: v, callback: res.location})
			if got := authTimeOf(t, idt.Claims); got <= old.AuthTime.Unix() || time.Since(time.Unix(got, 0)) > time.Minute {
				t.Errorf("auth_time = %d, want the new sign-in", got)
			}
		})
	}

	t.Run("prompt=none with max_age exceeded", func(t *testing.T) {
		b := e.newBrowser()
		e.journey.setNext(old)
		b.get(e.issuer + "/test/login?resume=" + url.QueryEscape(e.issuer+"/nowhere"))
		res := b.get(r.oauth.AuthCodeURL("state-123456789", oauth2.SetAuthURLParam("prompt", "none"),
			oauth2.SetAuthURLParam("max_age", "60"), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		if res.location == nil || res.location.Query().Get("error") != "login_required" {
			t.Errorf("got %d %v", res.status, res.location)
		}
	})
}

func authTimeOf(t testing.TB, claims func(any) error) int64 {
	t.Helper()
	var c struct {
		AuthTime int64 `json:"auth_time"`
	}
	if err := claims(&c); err != nil {
		t.Fatal(err)
	}
	return c.AuthTime
}

func oidcNonce(n string) oauth2.AuthCodeOption { return oauth2.SetAuthURLParam("nonce", n) }

func TestResumeUnknown(t *testing.T) {
	e := newEnv(t)
	b := e.newBrowser()
	for _, id := range []string{"", "nope", strings.Repeat("x", 500)} {
		res := b.get(e.issuer + pathResume + "?id=" + url.QueryEscape(id))
		if res.status != http.StatusBadRequest || res.location != nil || !strings.Contains(res.body, "sign in again") {
			t.Errorf("resume %q: %d %s", id, res.status, truncate(res.body))
		}
	}
	// Expired: park, then move the clock past the journey timeout.
	r := e.newRP(webappID, webappSecret, webappRedir)
	e.journey.setNext(nil)
	b.get(r.oauth.AuthCodeURL("state-123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	resume := e.journey.lastSignIn().ResumeURL
	e.clock.Advance(31 * time.Minute)
	e.journey.setNext(alice())
	res := b.get(resume)
	if res.status != http.StatusBadRequest || res.location != nil {
		t.Errorf("expired resume: %d %v", res.status, res.location)
	}
}

func TestClientCredentials(t *testing.T) {
	e := newEnv(t)
	cc := clientCredentials(e, serviceID, serviceSecret, "docs:read")
	tok, err := cc.Token(context.Background())
	if err != nil {
		t.Fatalf("client_credentials: %v", err)
	}
	if tok.Extra("scope") != "docs:read" || tok.RefreshToken != "" {
		t.Errorf("token = %+v scope %v", tok, tok.Extra("scope"))
	}
	in := e.introspect(tok.AccessToken)
	if in["active"] != true || in["client_id"] != serviceID || in["scope"] != "docs:read" {
		t.Errorf("introspection = %v", in)
	}
	if _, ok := in["sub"]; ok {
		t.Errorf("client_credentials token has a subject: %v", in)
	}
	evs, err := e.st.Audit(context.Background(), store.AuditFilter{Event: "token.issue"})
	if err != nil || len(evs) != 1 || evs[0].ClientID != serviceID || evs[0].UserID != "" ||
		!strings.Contains(string(evs[0].Detail), "client_credentials") {
		t.Errorf("audit = %+v %v", evs, err)
	}

	// Not a scope of the client.
	if _, err := clientCredentials(e, serviceID, serviceSecret, "openid").Token(context.Background()); err == nil ||
		!strings.Contains(err.Error(), "invalid_scope") {
		t.Errorf("foreign scope: %v", err)
	}
	// A client without the grant.
	if _, err := clientCredentials(e, webappID, webappSecret, "openid").Token(context.Background()); err == nil {
		t.Error("webapp got a client_credentials token")
	}
	// Userinfo refuses a token without a user.
	req, _ := http.NewRequest(http.MethodGet, e.issuer+pathUserinfo, nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("userinfo with a service token: %d", resp.StatusCode)
	}

	// client_secret_post works for a client registered for it.
	resp2, body := e.postForm(pathToken, url.Values{"grant_type": {"client_credentials"}, "client_id": {postID},
		"client_secret": {postSecret}, "scope": {"docs:read"}}, "", "")
	if resp2.StatusCode != http.StatusOK {
		t.Errorf("client_secret_post: %d %v", resp2.StatusCode, body)
	}
	if resp2.Header.Get("Cache-Control") != "no-store" || resp2.Header.Get("Pragma") != "no-cache" {
		t.Errorf("token response headers: %v", resp2.Header)
	}
}

func TestRevocation(t *testing.T) {
	e := newEnv(t)
	r := e.newRP(webappID, webappSecret, webappRedir)
	b := e.newBrowser()
	e.journey.setNext(alice())
	tok, _ := r.exchange(r.authorize(b))

	// Another client cannot revoke it.
	resp, _ := e.postForm(pathRevoke, url.Values{"token": {tok.RefreshToken}}, otherID, otherSecret)
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusBadRequest {
		t.Errorf("foreign revoke status %d", resp.StatusCode)
	}
	if !e.active(tok.RefreshToken) {
		t.Fatal("another client revoked the token")
	}

	resp, _ = e.postForm(pathRevoke, url.Values{"token": {tok.RefreshToken}, "token_type_hint": {"refresh_token"}}, webappID, webappSecret)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	if e.active(tok.RefreshToken) || e.active(tok.AccessToken) {
		t.Error("revoked tokens still active")
	}
	e.mustAudit(store.EventTokenRevoke, webappID, alice().UserID, "refresh_token")
	if _, err := r.oauth.TokenSource(r.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
		t.Error("revoked refresh token still refreshes")
	}
	// Unknown tokens: 200 as RFC 7009 says.
	resp, _ = e.postForm(pathRevoke, url.Values{"token": {"nonsense"}}, webappID, webappSecret)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("revoke unknown: %d", resp.StatusCode)
	}
	// Wrong credentials: 401 with WWW-Authenticate.
	resp, _ = e.postForm(pathRevoke, url.Values{"token": {"nonsense"}}, webappID, "wrong")
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("revoke with a wrong secret: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

func TestRevokeStoreDown(t *testing.T) {
	e := newEnv(t)
	tok, err := clientCredentials(e, serviceID, serviceSecret, "docs:read").Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	e.st.Close()
	resp, body := e.postForm(pathRevoke, url.Values{"token": {tok.AccessToken}}, serviceID, serviceSecret)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("revoke with the store down: %d %v, want 503", resp.StatusCode, body)
	}
}

func TestRefreshReuseRevokesFamily(t *testing.T) {
	e := newEnv(t)
	r := e.newRP(webappID, webappSecret, webappRedir)
	b := e.newBrowser()
	e.journey.setNext(alice())
	tok1, _ := r.exchange(r.authorize(b))
	tok2, err := r.oauth.TokenSource(r.ctx, &oauth2.Token{RefreshToken: tok1.RefreshToken}).Token()
	if err != nil {
		t.Fatal(err)
	}
	// Reuse of the rotated token: refused, and the whole family dies.
	_, err = r.oauth.TokenSource(r.ctx, &oauth2.Token{RefreshToken: tok1.RefreshToken}).Token()
	if err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("reuse: %v", err)
	}
	if e.active(tok2.RefreshToken) || e.active(tok2.AccessToken) {
		t.Error("family still alive after reuse")
	}
	e.mustAudit(store.EventTokenReuse, webappID, alice().UserID, "refresh_token")
	if _, err := r.oauth.TokenSource(r.ctx, &oauth2.Token{RefreshToken: tok2.RefreshToken}).Token(); err == nil {
		t.Error("the successor still refreshes after reuse")
	}
}

// TestCodeReuse: a used code is always refused, and every replay revokes
// what the first redemption issued (RFC 6749 §4.1.2, the conformance suite's
// oidcc-codereuse-30seconds) — the issuing client's own retry with the right
// verifier included: whoever replays it may hold the verifier too.
func TestCodeReuse(t *testing.T) {
	cases := []struct {
		name     string
		client   func(e *env) *rp
		verifier func(first string) string
	}{
		{"own retry with the right verifier", func(e *env) *rp { return e.newRP(webappID, webappSecret, webappRedir) },
			func(v string) string { return v }},
		{"no verifier", func(e *env) *rp { return e.newRP(webappID, webappSecret, webappRedir) },
			func(string) string { return "" }},
		{"wrong verifier", func(e *env) *rp { return e.newRP(webappID, webappSecret, webappRedir) },
			func(string) string { return oauth2.GenerateVerifier() }},
		{"another client with the verifier", func(e *env) *rp { return e.newRP(otherID, otherSecret, webappRedir) },
			func(v string) string { return v }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			r := e.newRP(webappID, webappSecret, webappRedir)
			b := e.newBrowser()
			e.journey.setNext(alice())
			run := r.authorize(b)
			tok, _ := r.exchange(run)
			var opts []oauth2.AuthCodeOption
			if v := c.verifier(run.verifier); v != "" {
				opts = append(opts, oauth2.VerifierOption(v))
			}
			replayer := c.client(e)
			_, err := replayer.oauth.Exchange(replayer.ctx, run.callback.Query().Get("code"), opts...)
			if err == nil || !strings.Contains(err.Error(), "invalid_grant") {
				t.Fatalf("second redemption: %v", err)
			}
			if e.active(tok.AccessToken) || e.active(tok.RefreshToken) {
				t.Error("the tokens of the first redemption are still active after the replay")
			}
			e.mustAudit(store.EventTokenReuse, webappID, alice().UserID, "authorization_code")
		})
	}
}

// mustAudit requires exactly one event ev, about the client's grant of
// the subject (the "grant" of its detail), with the token's request id.
func (e *env) mustAudit(ev store.Event, clientID, subject, grant string) {
	e.t.Helper()
	evs, err := e.st.Audit(e.t.Context(), store.AuditFilter{Event: string(ev)})
	if err != nil {
		e.t.Fatal(err)
	}
	if len(evs) != 1 {
		e.t.Fatalf("%d %s events, want 1: %+v", len(evs), ev, evs)
	}
	var d struct{ Grant, Request string }
	_ = json.Unmarshal(evs[0].Detail, &d)
	if evs[0].ClientID != clientID || evs[0].UserID != subject || d.Grant != grant || d.Request == "" {
		e.t.Errorf("%s event: client %q, user %q, detail %s; want client %q, user %q, grant %q and the request id",
			ev, evs[0].ClientID, evs[0].UserID, evs[0].Detail, clientID, subject, grant)
	}
}

func TestDisabledUser(t *testing.T) {
	e := newEnv(t)
	r := e.newRP(webappID, webappSecret, webappRedir)
	b := e.newBrowser()
	e.journey.setNext(alice())
	tok, _ := r.exchange(r.authorize(b))

	ctx := context.Background()
	u, err := e.st.UserByID(ctx, aliceID)
	if err != nil {
		t.Fatal(err)
	}
	u.State = store.UserDisabled
	if err := e.st.UpdateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	_, err = r.oauth.TokenSource(r.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("refresh for a disabled user: %v", err)
	}
	req, _ := http.NewRequest(http.MethodGet, e.issuer+pathUserinfo, nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Errorf("userinfo for a disabled user: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	// And no new code either.
	res := b.get(r.oauth.AuthCodeURL("state-123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if res.location == nil || res.location.Query().Get("code") != "" || res.location.Query().Get("error") != "access_denied" {
		t.Errorf("authorize for a disabled user: %d %v", res.status, res.location)
	}
}

// TestNoTokenWhileStepPending: while the journey has a step for the officer
// (a new policy version, a second factor or a password to set), neither a
// refresh nor a code issued before answers with tokens; once the step is
// done, the refresh works again and its ID token says what is current.
func TestNoTokenWhileStepPending(t *testing.T) {
	e := newEnv(t)
	r := e.newRP(webappID, webappSecret, webappRedir)
	b := e.newBrowser()
	e.journey.setNext(alice())
	policies := oauth2.SetAuthURLParam("claims", `{"id_token":{"lanyard_policies":null}}`)
	tok, _ := r.exchange(r.authorize(b, policies))
	run := r.authorize(b) // a code, redeemed only after the step appears

	for _, step := range []string{"terms", "mfa-enrol", "change-password"} {
		e.journey.setPending(aliceID, step)
		_, err := r.oauth.TokenSource(r.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
		if err == nil || !strings.Contains(err.Error(), "invalid_grant") {
			t.Fatalf("refresh with %s pending: %v, want invalid_grant", step, err)
		}
	}
	if _, err := r.oauth.Exchange(r.ctx, run.callback.Query().Get("code"), oauth2.VerifierOption(run.verifier)); err == nil ||
		!strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("code exchange with a step pending: %v, want invalid_grant", err)
	}

	// The officer accepts the new terms at a sign-in: the refresh token
	// (refused, not revoked) works again, with the version now accepted.
	if err := e.st.Accept(context.Background(), store.Acceptance{UserID: aliceID, Document: "terms", Version: "2026-02", AcceptedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	e.journey.setPending(aliceID, "")
	fresh, err := r.oauth.TokenSource(r.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil {
		t.Fatalf("refresh once nothing is pending: %v", err)
	}
	raw, _ := fresh.Extra("id_token").(string)
	idt, err := r.verifier.Verify(r.ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Policies map[string]string `json:"lanyard_policies"`
	}
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	if c.Policies["terms"] != "2026-02" {
		t.Errorf("the refreshed ID token states terms %q", c.Policies["terms"])
	}
}

func TestUserinfoBadToken(t *testing.T) {
	e := newEnv(t)
	for _, auth := range []string{"Bearer nonsense", "Bearer ", "Basic abc"} {
		req, _ := http.NewRequest(http.MethodGet, e.issuer+pathUserinfo, nil)
		req.Header.Set("Authorization", auth)
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%q: %d %q", auth, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	req, _ := http.NewRequest(http.MethodGet, e.issuer+pathUserinfo, nil)
	req.Header.Set("Authorization", "Bearer nonsense")
	resp, _ := e.srv.Client().Do(req)
	resp.Body.Close()
	if !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Errorf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
	}
}

func TestPAR(t *testing.T) {
	e := newEnv(t)
	r := e.newRP(webappID, webappSecret, webappRedir)
	verifier := oauth2.GenerateVerifier()
	form := url.Values{
		"response_type":         {"code"},
		"client_id":             {webappID},
		"redirect_uri":          {webappRedir},
		"scope":                 {"openid email"},
		"state":                 {"state-par-123456"},
		"nonce":                 {"nonce-par-123456"},
		"code_challenge":        {oauth2.S256ChallengeFromVerifier(verifier)},
		"code_challenge_method": {"S256"},
	}
	resp, body := e.postForm(pathPAR, form, webappID, webappSecret)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("par: %d %v", resp.StatusCode, body)
	}
	uri, _ := body["request_uri"].(string)
	if !strings.HasPrefix(uri, parPrefix) || body["expires_in"].(float64) > 90 {
		t.Fatalf("par response = %v", body)
	}

	b := e.newBrowser()
	e.journey.setNext(nil) // the browser must sign in: the pushed request is parked and resumed
	authURL := e.issuer + pathAuthorize + "?" + url.Values{"client_id": {webappID}, "request_uri": {uri}}.Encode()
	res := b.get(authURL)
	if res.body != "sign-in page" {
		t.Fatalf("par authorize: %d %v %s", res.status, res.location, truncate(res.body))
	}
	e.journey.setNext(alice())
	res = b.get(e.journey.lastSignIn().ResumeURL)
	if res.location == nil || res.location.Query().Get("code") == "" || res.location.Query().Get("state") != "state-par-123456" ||
		res.location.Query().Get("iss") != e.issuer || !strings.HasPrefix(res.location.String(), webappRedir+"?") {
		t.Fatalf("par callback: %d %v", res.status, res.location)
	}
	tok, err := r.oauth.Exchange(r.ctx, res.location.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	idt, err := r.verifier.Verify(r.ctx, tok.Extra("id_token").(string))
	if err != nil || idt.Nonce != "nonce-par-123456" {
		t.Fatalf("id token: %v %v", err, idt)
	}

	// The request_uri works once.
	res = b.get(authURL)
	if res.location != nil || res.status != http.StatusBadRequest {
		t.Errorf("second use of the request_uri: %d %v", res.status, res.location)
	}

	// PAR refuses what /authorize refuses.
	for name, mutate := range map[string]func(url.Values){
		"unregistered redirect": func(v url.Values) { v.Set("redirect_uri", "https://evil.example/cb") },
		"request object":        func(v url.Values) { v.Set("request", "eyJhbGciOiJub25lIn0.e30.") },
		"plain pkce":            func(v url.Values) { v.Set("code_challenge_method", "plain") },
		"wrong secret":          nil,
	} {
		v := url.Values{}
		for k, x := range form {
			v[k] = x
		}
		secret := webappSecret
		if mutate == nil {
			secret = "wrong"
		} else {
			mutate(v)
		}
		resp, body := e.postForm(pathPAR, v, webappID, secret)
		if resp.StatusCode < 400 || resp.StatusCode >= 500 || body["error"] == nil {
			t.Errorf("par %s: %d %v", name, resp.StatusCode, body)
		}
	}
}

func TestPARExpires(t *testing.T) {
	e := newEnv(t)
	form := url.Values{
		"response_type": {"code"}, "client_id": {webappID}, "redirect_uri": {webappRedir}, "scope": {"openid"},
		"state": {"state-par-123456"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())},
		"code_challenge_method": {"S256"},
	}
	resp, body := e.postForm(pathPAR, form, webappID, webappSecret)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("par: %d %v", resp.StatusCode, body)
	}
	e.clock.Advance(91 * time.Second)
	b := e.newBrowser()
	e.journey.setNext(alice())
	res := b.get(e.issuer + pathAuthorize + "?" + url.Values{"client_id": {webappID}, "request_uri": {body["request_uri"].(string)}}.Encode())
	if res.location != nil || res.status != http.StatusBadRequest {
		t.Errorf("expired request_uri: %d %v", res.status, res.location)
	}
}

func TestSetClients(t *testing.T) {
	e := newEnv(t)
	if _, err := clientCredentials(e, serviceID, serviceSecret, "docs:read").Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	cs := testClients(t)
	cs[2].ID = "service2"
	e.p.SetClients(cs)
	if _, err := clientCredentials(e, serviceID, serviceSecret, "docs:read").Token(context.Background()); err == nil {
		t.Error("removed client still gets tokens")
	}
	if _, err := clientCredentials(e, "service2", serviceSecret, "docs:read").Token(context.Background()); err != nil {
		t.Errorf("added client: %v", err)
	}
}

func TestExpiry(t *testing.T) {
	e := newEnv(t, func(cfg *config.Config) {
		cfg.Tokens.AuthorizeCode = config.Duration(time.Second)
		cfg.Tokens.AccessToken = config.Duration(2 * time.Second)
	})
	b := e.signedInBrowser()
	v := oauth2.GenerateVerifier()
	stale := e.code(b, authParams(oauth2.S256ChallengeFromVerifier(v)))
	v2 := oauth2.GenerateVerifier()
	fresh := e.code(b, authParams(oauth2.S256ChallengeFromVerifier(v2)))
	_, body := e.postForm(pathToken, url.Values{"grant_type": {"authorization_code"}, "code": {fresh},
		"redirect_uri": {webappRedir}, "code_verifier": {v2}}, webappID, webappSecret)
	access, _ := body["access_token"].(string)
	if access == "" {
		t.Fatalf("exchange: %v", body)
	}

	time.Sleep(3100 * time.Millisecond) // fosite rounds expiry to the second
	resp, body := e.postForm(pathToken, url.Values{"grant_type": {"authorization_code"}, "code": {stale},
		"redirect_uri": {webappRedir}, "code_verifier": {v}}, webappID, webappSecret)
	if resp.StatusCode != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Errorf("expired code: %d %v", resp.StatusCode, body)
	}
	if e.active(access) {
		t.Error("expired access token still active")
	}
	req, _ := http.NewRequest(http.MethodGet, e.issuer+pathUserinfo, nil)
	req.Header.Set("Authorization", "Bearer "+access)
	uresp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	uresp.Body.Close()
	if uresp.StatusCode != http.StatusUnauthorized {
		t.Errorf("userinfo with an expired token: %d", uresp.StatusCode)
	}
}

// TestIntrospectionOwnTokensOnly: a client learns about its own tokens; a
// resource server (introspection: true) about every client's; any other
// client gets active:false for a live token of another client — the same
// answer as for a dead one — and the attempt is audited.
func TestIntrospectionOwnTokensOnly(t *testing.T) {
	e := newEnv(t)
	r := e.newRP(webappID, webappSecret, webappRedir)
	b := e.newBrowser()
	e.journey.setNext(alice())
	tok, _ := r.exchange(r.authorize(b))
	svc, err := clientCredentials(e, serviceID, serviceSecret, "docs:read").Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	introspect := func(token, id, secret string) map[string]any {
		t.Helper()
		resp, body := e.postForm(pathIntrospect, url.Values{"token": {token}}, id, secret)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("introspect as %s: status %d %v", id, resp.StatusCode, body)
		}
		return body
	}
	cases := []struct {
		name, token, id, secret string
		want                    bool
	}{
		{"own access token", tok.AccessToken, webappID, webappSecret, true},
		{"own refresh token", tok.RefreshToken, webappID, webappSecret, true},
		{"service's own token", svc.AccessToken, serviceID, serviceSecret, true},
		{"resource server, the web app's token", tok.AccessToken, rsID, rsSecret, true},
		{"resource server, the service's token", svc.AccessToken, rsID, rsSecret, true},
		{"another app, the web app's access token", tok.AccessToken, otherID, otherSecret, false},
		{"another app, the web app's refresh token", tok.RefreshToken, otherID, otherSecret, false},
		{"the service, the web app's token", tok.AccessToken, serviceID, serviceSecret, false},
		{"the web app, the service's token", svc.AccessToken, webappID, webappSecret, false},
	}
	for _, c := range cases {
		in := introspect(c.token, c.id, c.secret)
		if in["active"] != c.want {
			t.Errorf("%s: active = %v, want %v", c.name, in["active"], c.want)
		}
		if !c.want && len(in) != 1 {
			t.Errorf("%s: the inactive answer says more than active: %v", c.name, in)
		}
	}

	// Authenticated by a bearer token instead: the bearer's client is the caller.
	other := e.newRP(otherID, otherSecret, otherRedir)
	e.journey.setNext(alice())
	otherTok, _ := other.exchange(other.authorize(e.newBrowser()))
	req, _ := http.NewRequest(http.MethodPost, e.issuer+pathIntrospect, strings.NewReader(url.Values{"token": {tok.RefreshToken}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+otherTok.AccessToken)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var in map[string]any
	json.NewDecoder(resp.Body).Decode(&in)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || in["active"] != false {
		t.Errorf("another client's bearer: status %d %v, want active false", resp.StatusCode, in)
	}

	evs, err := e.st.Audit(t.Context(), store.AuditFilter{Event: string(store.EventIntrospectRefused)})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 5 {
		t.Fatalf("%d refusals audited, want 5", len(evs))
	}
	if evs[0].ClientID != otherID || !strings.Contains(string(evs[0].Detail), `"owner":"`+webappID+`"`) {
		t.Errorf("audit event = %+v", evs[0])
	}
}

// TestPARClaims: the claims parameter is accepted at /par (discovery says
// claims_parameter_supported) and it is the pushed request's that counts:
// at /authorize with a request_uri the browser URL's other parameters are
// ignored (RFC 9126 §4), so a claims request (or a prompt) added to the URL
// changes nothing.
func TestPARClaims(t *testing.T) {
	e := newEnv(t)
	r := e.newRP(webappID, webappSecret, webappRedir)
	verifier := oauth2.GenerateVerifier()
	form := url.Values{
		"response_type": {"code"}, "client_id": {webappID}, "redirect_uri": {webappRedir}, "scope": {"openid"},
		"state": {"state-par-123456"}, "nonce": {"nonce-par-123456"}, "claims": {`{"id_token":{"email":null}}`},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"},
	}
	resp, body := e.postForm(pathPAR, form, webappID, webappSecret)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("par with claims: %d %v", resp.StatusCode, body)
	}
	uri, _ := body["request_uri"].(string)
	b := e.newBrowser()
	e.journey.setNext(alice())
	r.exchange(r.authorize(b)) // signed in: only a prompt=login would show a sign-in
	e.journey.setNext(nil)
	before := e.journey.signInCount()
	res := b.get(e.issuer + pathAuthorize + "?" + url.Values{"client_id": {webappID}, "request_uri": {uri},
		"claims": {`{"id_token":{"name":null}}`}, "prompt": {"login"}}.Encode())
	if res.location == nil || res.location.Query().Get("code") == "" {
		t.Fatalf("par authorize: %d %v %s", res.status, res.location, truncate(res.body))
	}
	if e.journey.signInCount() != before {
		t.Error("the browser URL's prompt=login was obeyed next to a request_uri")
	}
	tok, err := r.oauth.Exchange(r.ctx, res.location.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	idt, err := r.verifier.Verify(r.ctx, tok.Extra("id_token").(string))
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	if c["email"] != aliceEmail {
		t.Errorf("the pushed claims request was not honoured: email = %v", c["email"])
	}
	if _, ok := c["name"]; ok {
		t.Errorf("the browser URL's claims request was honoured: name = %v", c["name"])
	}

	// A malformed claims parameter is refused when it is pushed.
	form.Set("claims", "[1]")
	if resp, body := e.postForm(pathPAR, form, webappID, webappSecret); resp.StatusCode != http.StatusBadRequest || body["error"] != "invalid_request" {
		t.Errorf("par with malformed claims: %d %v", resp.StatusCode, body)
	}
}

// TestNoCodeForAnEndedSession: a browser whose session ended after the
// provider looked it up (signed out on another tab, another node) gets no
// code bound to the dead session: the authorization fails with
// login_required and records nothing.
func TestNoCodeForAnEndedSession(t *testing.T) {
	e := newEnv(t)
	r := e.newRP(webappID, webappSecret, webappRedir)
	b := e.newBrowser()
	e.journey.setNext(alice())
	r.exchange(r.authorize(b))
	e.journey.setNext(nil)
	// The stand-in journey still vouches for the browser, as flows would
	// between its lookup and the provider's transaction; the row is gone.
	e.journey.mu.Lock()
	var sid string
	for id, sb := range e.journey.sessions {
		sid = sb.SessionID
		if err := e.st.DeleteSession(t.Context(), id); err != nil {
			t.Fatal(err)
		}
	}
	e.journey.mu.Unlock()
	res := b.get(r.oauth.AuthCodeURL("state-123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if res.location == nil || res.location.Query().Get("error") != "login_required" || res.location.Query().Has("code") {
		t.Fatalf("authorize on an ended session: %d %v, want login_required", res.status, res.location)
	}
	if got, err := e.st.SessionClients(t.Context(), sid); err != nil || len(got) != 0 {
		t.Errorf("the ended session has relying parties again: %+v %v", got, err)
	}
	if n := e.countRows("code", true); n != 0 {
		t.Errorf("%d active codes for the ended session", n)
	}
}
