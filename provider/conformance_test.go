package provider

// What the OpenID Foundation's conformance suite checks in the modules of
// the basic, config, RP-initiated-logout and back-channel-logout plans that
// Lanyard once failed or warned on, checked here the way the suite's
// conditions judge them (conformance-suite, src/main/java/net/openid/
// conformance/openid and its condition classes).

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/lanyard-idp/lanyard/config"
)

// idTokenOwnClaims are the claims the suite's ValidateIdTokenStandardClaims
// sets aside as the ID token's own (not about the user), plus sid, which
// Back-Channel Logout 1.0 §2.1 puts in the ID token for logout.
var idTokenOwnClaims = []string{"iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp",
	"c_hash", "at_hash", "s_hash", "jti", "nbf", "sid"}

// scopeClaims is the suite's SCOPE_STANDARD_CLAIMS (AbstractVerifyScopes-
// ReturnedInClaims), limited to the claims Lanyard holds: it does not store
// middle_name, nickname, profile, picture, website, gender, birthdate,
// zoneinfo or locale, and invents none.
var scopeClaims = map[string][]string{
	"openid":  {"sub"},
	"profile": {"name", "given_name", "family_name", "preferred_username", "updated_at"},
	"email":   {"email", "email_verified"},
}

// claimsOf returns every claim of an ID token.
func claimsOf(t *testing.T, idt *oidc.IDToken) map[string]any {
	t.Helper()
	var m map[string]any
	if err := idt.Claims(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// identityClaims is ValidateIdTokenStandardClaims' view: the ID token's
// claims minus its own.
func identityClaims(m map[string]any) []string {
	var out []string
	for k := range m {
		if !slices.Contains(idTokenOwnClaims, k) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func (r *rp) userinfo(t *testing.T, tok *oauth2.Token) map[string]any {
	t.Helper()
	ui, err := r.provider.UserInfo(r.ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	var m map[string]any
	if err := ui.Claims(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// oidcc-server: an ID token for scope=openid carries no claims about the
// officer (EnsureIdTokenDoesNotContainName; the port also flagged
// lanyard_policies and rat), and the code is long and random enough.
func TestConformanceServer(t *testing.T) {
	e := newEnv(t)
	r := e.newRP(webappID, webappSecret, webappRedir, oidc.ScopeOpenID)
	b := e.newBrowser()
	e.journey.setNext(alice())
	run := r.authorize(b)
	if code := run.callback.Query().Get("code"); len(code) < 22 {
		t.Errorf("code %q is shorter than 128 bits of base64", code)
	}
	_, idt := r.exchange(run)
	m := claimsOf(t, idt)
	if got := identityClaims(m); !slices.Equal(got, []string{"sub"}) {
		t.Errorf("ID token for scope=openid carries %v, want only sub beyond the ID token's own claims", got)
	}
	if _, ok := m["rat"]; ok {
		t.Error("ID token carries rat")
	}
}

// scopeRun is the oidcc-scope-* modules' flow for scope "openid <scope>":
// the ID token carries no claim about the officer, userinfo every claim of
// the scope (VerifyScopesReturnedInUserInfoClaims). It returns userinfo.
func scopeRun(t *testing.T, e *env, scope string) map[string]any {
	t.Helper()
	r := e.newRP(webappID, webappSecret, webappRedir, oidc.ScopeOpenID, scope)
	e.journey.setNext(alice())
	tok, idt := r.exchange(r.authorize(e.newBrowser()))
	if got := identityClaims(claimsOf(t, idt)); !slices.Equal(got, []string{"sub"}) {
		t.Errorf("ID token carries %v", got)
	}
	ui := r.userinfo(t, tok)
	for _, c := range append(scopeClaims["openid"], scopeClaims[scope]...) {
		if _, ok := ui[c]; !ok {
			t.Errorf("userinfo lacks %s: %v", c, ui)
		}
	}
	return ui
}

// oidcc-scope-email: the email is at userinfo (VerifyScopesReturnedIn-
// UserInfoClaims), not in the ID token, since an access token was issued.
func TestConformanceScopeEmail(t *testing.T) {
	ui := scopeRun(t, newEnv(t), "email")
	if ui["email"] != aliceEmail || ui["email_verified"] != true {
		t.Errorf("userinfo = %v", ui)
	}
	if _, ok := ui["name"]; ok {
		t.Error("userinfo has name without the profile scope")
	}
}

// oidcc-scope-profile: userinfo has every profile claim Lanyard holds, of
// the right types (ValidateUserInfoStandardClaims: updated_at a number).
func TestConformanceScopeProfile(t *testing.T) {
	e := newEnv(t)
	u, err := e.st.UserByID(context.Background(), aliceID)
	if err != nil {
		t.Fatal(err)
	}
	u.GivenName, u.FamilyName = "Alice", "Example"
	if err := e.st.UpdateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	ui := scopeRun(t, e, "profile")
	if ui["name"] != "Alice Example" || ui["given_name"] != "Alice" || ui["family_name"] != "Example" || ui["preferred_username"] != aliceEmail {
		t.Errorf("userinfo = %v", ui)
	}
	if _, ok := ui["updated_at"].(float64); !ok {
		t.Errorf("updated_at = %#v, want a number", ui["updated_at"])
	}
	if _, ok := ui["email"]; ok {
		t.Error("userinfo has email without the email scope")
	}
}

// oidcc-claims-essential: name requested as essential at userinfo with
// scope=openid: the request succeeds, userinfo has name, the ID token does
// not (EnsureUserInfoContainsName, EnsureIdTokenDoesNotContainName). The
// request is kept with the grant: it still holds after a refresh.
func TestConformanceClaimsEssential(t *testing.T) {
	e := newEnv(t)
	r := e.newRP(webappID, webappSecret, webappRedir, oidc.ScopeOpenID, oidc.ScopeOfflineAccess)
	b := e.newBrowser()
	e.journey.setNext(alice())
	claims := `{"userinfo":{"name":{"essential":true},"shoe_size":null},"id_token":{"email":null,"favourite_colour":{"essential":true}},"vp_token":{}}`
	tok, idt := r.exchange(r.authorize(b, oauth2.SetAuthURLParam("claims", claims)))
	m := claimsOf(t, idt)
	if _, ok := m["name"]; ok {
		t.Error("ID token carries name, requested at userinfo only")
	}
	if m["email"] != aliceEmail {
		t.Errorf("ID token lacks the email its claims member asked for: %v", m)
	}
	ui := r.userinfo(t, tok)
	if ui["name"] != "Alice Example" {
		t.Errorf("userinfo lacks the essential name: %v", ui)
	}
	if _, ok := ui["shoe_size"]; ok {
		t.Error("an unknown claim was answered")
	}

	// Refresh: the new ID token and access token keep to the request.
	time.Sleep(1100 * time.Millisecond) // iat must differ (CompareIdTokenClaims)
	tok2, err := r.oauth.TokenSource(r.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	idt2, err := r.verifier.Verify(r.ctx, tok2.Extra("id_token").(string))
	if err != nil {
		t.Fatal(err)
	}
	m2 := claimsOf(t, idt2)
	if m2["email"] != aliceEmail || m2["name"] != nil {
		t.Errorf("refreshed ID token = %v", m2)
	}
	if ui2 := r.userinfo(t, tok2); ui2["name"] != "Alice Example" {
		t.Errorf("userinfo after refresh = %v", ui2)
	}

	// A client is not given, through the claims parameter, a claim of a
	// scope it is not registered for.
	r2 := e.newRP(postID, postSecret, "https://poster.example/cb", oidc.ScopeOpenID)
	r2.oauth.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	e.journey.setNext(alice())
	tok3, idt3 := r2.exchange(r2.authorize(e.newBrowser(), oauth2.SetAuthURLParam("claims", `{"id_token":{"email":null},"userinfo":{"name":null}}`)))
	if m3 := claimsOf(t, idt3); m3["email"] != nil {
		t.Errorf("a client without the email scope got email: %v", m3)
	}
	if ui3 := r2.userinfo(t, tok3); ui3["name"] != nil {
		t.Errorf("a client without the profile scope got name: %v", ui3)
	}
}

// id_token_claims: a relying party that reads the ID token alone gets the
// claims it lists, each only when its scope was granted.
func TestIDTokenClaimsOption(t *testing.T) {
	e := newEnv(t, func(c *config.Config) {
		c.Clients[0].IDTokenClaims = []string{"email", "name", "lanyard_policies"}
	})
	r := e.newRP(webappID, webappSecret, webappRedir, oidc.ScopeOpenID, "email")
	e.journey.setNext(alice())
	_, idt := r.exchange(r.authorize(e.newBrowser()))
	m := claimsOf(t, idt)
	pol, _ := m["lanyard_policies"].(map[string]any)
	if m["email"] != aliceEmail || pol["terms"] != "2026-01" {
		t.Errorf("ID token = %v", m)
	}
	if _, ok := m["name"]; ok {
		t.Error("name released without the profile scope")
	}
}

// oidcc-refresh-token: with offline_access the suite adds prompt=consent;
// the refresh (with scope, as AddScopeToTokenEndpointRequest sends it)
// rotates the token and returns an ID token that CompareIdTokenClaims
// accepts; client 2's refresh token is refused to client 1.
func TestConformanceRefreshToken(t *testing.T) {
	e := newEnv(t)
	b := e.newBrowser()
	r1 := e.newRP(webappID, webappSecret, webappRedir, oidc.ScopeOpenID, oidc.ScopeOfflineAccess)
	r2 := e.newRP(otherID, otherSecret, otherRedir, oidc.ScopeOpenID, oidc.ScopeOfflineAccess)
	e.journey.setNext(alice())
	consent := oauth2.SetAuthURLParam("prompt", "consent")
	tok1, idt1 := r1.exchange(r1.authorize(b, consent))
	if req := e.journey.lastSignIn(); !req.Consent || !slices.Contains(req.Scopes, oidc.ScopeOfflineAccess) {
		t.Errorf("prompt=consent did not reach the journey: %+v", req)
	}
	// A signed-in browser: prompt=consent still goes through the journey.
	before := e.journey.signInCount()
	tok2, _ := r2.exchange(r2.authorize(b, consent))
	if e.journey.signInCount() != before+1 {
		t.Error("prompt=consent on a signed-in browser skipped the journey")
	}
	if tok1.RefreshToken == "" || tok2.RefreshToken == "" {
		t.Fatal("no refresh token with offline_access")
	}

	time.Sleep(1100 * time.Millisecond)
	refresh := func(client, secret, rt string) (*http.Response, map[string]any) {
		return e.postForm(pathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt},
			"scope": {"openid offline_access"}}, client, secret)
	}
	resp, body := refresh(webappID, webappSecret, tok1.RefreshToken)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("refresh: %d %v", resp.StatusCode, body)
	}
	if body["refresh_token"] == tok1.RefreshToken || body["token_type"] != "bearer" && body["token_type"] != "Bearer" {
		t.Errorf("refresh response = %v", body)
	}
	idt2, err := r1.verifier.Verify(r1.ctx, body["id_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	c1, c2 := claimsOf(t, idt1), claimsOf(t, idt2)
	for _, k := range []string{"iss", "sub", "auth_time"} {
		if c1[k] != c2[k] {
			t.Errorf("%s changed on refresh: %v → %v", k, c1[k], c2[k])
		}
	}
	if c1["iat"] == c2["iat"] {
		t.Error("the refreshed ID token has the first one's iat")
	}
	if !slices.Equal(idt1.Audience, idt2.Audience) || c1["azp"] != c2["azp"] {
		t.Errorf("aud/azp changed: %v/%v → %v/%v", idt1.Audience, c1["azp"], idt2.Audience, c2["azp"])
	}
	// The rotated token is dead.
	if resp, _ := refresh(webappID, webappSecret, tok1.RefreshToken); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a rotated refresh token still works: %d", resp.StatusCode)
	}
	// Client 2's refresh token, presented by client 1: refused, and still
	// good for client 2.
	resp, body = refresh(webappID, webappSecret, tok2.RefreshToken)
	if resp.StatusCode != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Errorf("another client's refresh token: %d %v", resp.StatusCode, body)
	}
	if resp, body := refresh(otherID, otherSecret, tok2.RefreshToken); resp.StatusCode != http.StatusOK {
		t.Errorf("client 2's own refresh after client 1 tried it: %d %v", resp.StatusCode, body)
	}
}

// oidcc-backchannel-logout-discovery-endpoint-verification: the metadata
// advertises back-channel logout with sessions, an end_session_endpoint,
// and every *_endpoint is https when the issuer is.
func TestConformanceBackchannelDiscovery(t *testing.T) {
	e := newEnv(t)
	cfg := *e.cfg
	cfg.Issuer = "https://id.agency.example"
	p, err := New(context.Background(), Options{Config: &cfg, Store: e.st, Box: e.box, Journey: e.journey, Pages: e.p.pages})
	if err != nil {
		t.Fatal(err)
	}
	var meta map[string]any
	if err := json.Unmarshal(p.discoveryJSON, &meta); err != nil {
		t.Fatal(err)
	}
	if meta["backchannel_logout_supported"] != true || meta["backchannel_logout_session_supported"] != true {
		t.Errorf("back-channel metadata: %v %v", meta["backchannel_logout_supported"], meta["backchannel_logout_session_supported"])
	}
	if meta["end_session_endpoint"] != "https://id.agency.example/end_session" {
		t.Errorf("end_session_endpoint = %v", meta["end_session_endpoint"])
	}
	for k, v := range meta {
		if strings.HasSuffix(k, "_endpoint") {
			if s, _ := v.(string); !strings.HasPrefix(s, "https://") {
				t.Errorf("%s = %v is not https", k, v)
			}
		}
	}
}

// acr_values (OIDC Core §3.1.2.1) and an essential acr (§5.5.1.1): the ID
// token never states an acr the sign-in did not achieve.
func TestACR(t *testing.T) {
	e := newEnv(t)
	r := e.newRP(webappID, webappSecret, webappRedir)
	b := e.newBrowser()
	e.journey.setNext(alice()) // signs in with acr urn:lanyard:acr:mfa
	r.exchange(r.authorize(b))
	acrOf := func(idt *oidc.IDToken) string { s, _ := claimsOf(t, idt)["acr"].(string); return s }

	// Every advertised value (oidcc-ensure-request-with-acr-values-succeeds):
	// no detour, the session's acr.
	before := e.journey.signInCount()
	_, idt := r.exchange(r.authorize(b, oauth2.SetAuthURLParam("acr_values", strings.Join(acrValues, " "))))
	if acrOf(idt) != "urn:lanyard:acr:mfa" || e.journey.signInCount() != before {
		t.Errorf("all values: acr %q, sign-ins +%d", acrOf(idt), e.journey.signInCount()-before)
	}
	// A weaker value than achieved: that value (true, and one asked for).
	_, idt = r.exchange(r.authorize(b, oauth2.SetAuthURLParam("acr_values", "urn:lanyard:acr:pwd")))
	if acrOf(idt) != "urn:lanyard:acr:pwd" {
		t.Errorf("pwd asked of an mfa session: acr %q", acrOf(idt))
	}
	// A stronger one: through the journey for a step-up; when the officer
	// comes back with mfa still, the ID token says mfa.
	_, idt = r.exchange(r.authorize(b, oauth2.SetAuthURLParam("acr_values", "urn:lanyard:acr:phr")))
	if req := e.journey.lastSignIn(); !slices.Equal(req.ACRValues, []string{"urn:lanyard:acr:phr"}) || req.ACREssential {
		t.Errorf("step-up request = %+v", req)
	}
	if acrOf(idt) != "urn:lanyard:acr:mfa" {
		t.Errorf("phr asked, mfa achieved: acr %q", acrOf(idt))
	}
	// Essential and not achieved: refused, never claimed.
	essential := oauth2.SetAuthURLParam("claims", `{"id_token":{"acr":{"essential":true,"values":["urn:lanyard:acr:phr"]}}}`)
	res := b.get(r.oauth.AuthCodeURL("state-acr-1", oidc.Nonce("nonce-acr-1"), essential,
		oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if res.location == nil || res.location.Query().Get("error") != "access_denied" {
		t.Errorf("essential phr not achieved: %v %d", res.location, res.status)
	}
	// With prompt=none: interaction_required.
	res = b.get(r.oauth.AuthCodeURL("state-acr-2", oidc.Nonce("nonce-acr-2"), essential,
		oauth2.SetAuthURLParam("prompt", "none"), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if res.location == nil || res.location.Query().Get("error") != "interaction_required" {
		t.Errorf("essential phr with prompt=none: %v", res.location)
	}
	// Essential and achieved: the value asked for.
	_, idt = r.exchange(r.authorize(b, oauth2.SetAuthURLParam("claims", `{"id_token":{"acr":{"essential":true,"value":"urn:lanyard:acr:mfa"}}}`)))
	if acrOf(idt) != "urn:lanyard:acr:mfa" {
		t.Errorf("essential mfa: acr %q", acrOf(idt))
	}
	// Unknown values alone are ignored (acr_values is voluntary).
	_, idt = r.exchange(r.authorize(b, oauth2.SetAuthURLParam("acr_values", "1 2")))
	if acrOf(idt) != "urn:lanyard:acr:mfa" {
		t.Errorf("unknown acr_values: acr %q", acrOf(idt))
	}
}

// The session→client record that back-channel logout relies on is written
// with the code, for each client of the session.
func TestSessionClientsRecorded(t *testing.T) {
	e := newEnv(t)
	b := e.newBrowser()
	r1 := e.newRP(webappID, webappSecret, webappRedir)
	r2 := e.newRP(otherID, otherSecret, otherRedir)
	e.journey.setNext(alice())
	_, idt := r1.exchange(r1.authorize(b))
	r2.exchange(r2.authorize(b))
	sid, _ := claimsOf(t, idt)["sid"].(string)
	recs, err := e.st.SessionClients(context.Background(), sid)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, rec := range recs {
		ids = append(ids, rec.ClientID)
		if rec.Subject != aliceID || rec.SID != sid {
			t.Errorf("record %+v", rec)
		}
	}
	sort.Strings(ids)
	if !slices.Equal(ids, []string{otherID, webappID}) {
		t.Errorf("session clients = %v", ids)
	}
	// A client_credentials grant has no session and records nothing.
	if _, err := clientCredentials(e, serviceID, serviceSecret, "docs:read").Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	var n int
	e.st.DB().QueryRow(`SELECT COUNT(*) FROM session_clients`).Scan(&n)
	if n != 2 {
		t.Errorf("%d session_clients rows, want 2", n)
	}
}
