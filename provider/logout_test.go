package provider

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite/token/jwt"

	"github.com/lanyard-idp/lanyard/provider/store"
	"github.com/lanyard-idp/lanyard/templates"
)

// idToken gets a real ID token for alice through the code flow, with the
// browser signed in.
func (e *env) idToken(b *browser) string {
	e.t.Helper()
	r := e.newRP(webappID, webappSecret, webappRedir)
	e.journey.setNext(alice())
	tok, _ := r.exchange(r.authorize(b))
	return tok.Extra("id_token").(string)
}

// signWith signs claims with an arbitrary RSA key under the given kid.
func signWith(t testing.TB, key *rsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	obj, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestEndSession(t *testing.T) {
	e := newEnv(t)

	t.Run("registered post_logout_redirect_uri", func(t *testing.T) {
		b := e.newBrowser()
		hint := e.idToken(b)
		before := e.journey.signOutCount()
		res := b.get(e.issuer + pathEndSession + "?" + url.Values{
			"id_token_hint": {hint}, "post_logout_redirect_uri": {webappLogout}, "state": {"bye-123"},
		}.Encode())
		if res.location == nil || res.location.String() != webappLogout+"?state=bye-123" {
			t.Fatalf("got %d %v", res.status, res.location)
		}
		if e.journey.signOutCount() != before+1 {
			t.Error("browser not signed out")
		}
		evs, err := e.st.Audit(context.Background(), store.AuditFilter{Event: "logout"})
		if err != nil || len(evs) == 0 || evs[len(evs)-1].UserID != aliceID || evs[len(evs)-1].ClientID != webappID {
			t.Errorf("audit = %+v %v", evs, err)
		}
	})

	t.Run("no redirect: signed-out page", func(t *testing.T) {
		b := e.newBrowser()
		hint := e.idToken(b)
		res := b.get(e.issuer + pathEndSession + "?id_token_hint=" + url.QueryEscape(hint))
		if res.status != http.StatusOK || res.location != nil || !strings.Contains(res.body, "You are signed out") {
			t.Fatalf("got %d %v %s", res.status, res.location, truncate(res.body))
		}
	})

	t.Run("expired hint is still a hint", func(t *testing.T) {
		b := e.signedInBrowser()
		hint, _, err := e.p.signer.Generate(context.Background(), jwt.MapClaims{
			"iss": e.issuer, "sub": aliceID, "aud": []string{webappID},
			"exp": time.Now().Add(-48 * time.Hour).Unix(), "iat": time.Now().Add(-49 * time.Hour).Unix(),
		}, &jwt.Headers{})
		if err != nil {
			t.Fatal(err)
		}
		res := b.get(e.issuer + pathEndSession + "?" + url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {webappLogout}}.Encode())
		if res.location == nil || res.location.String() != webappLogout {
			t.Fatalf("got %d %v %s", res.status, res.location, truncate(res.body))
		}
	})

	foreignKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	validClaims := func() map[string]any {
		return map[string]any{"iss": e.issuer, "sub": aliceID, "aud": []string{webappID},
			"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()}
	}
	kid := e.p.keys.snapshot(context.Background()).current[algRS256].kid

	// Each refusal names its own cause (the page's words, escaped).
	bad := []struct {
		name   string
		params func() url.Values
		cause  string
	}{
		{"unregistered post_logout_redirect_uri", func() url.Values {
			return url.Values{"id_token_hint": {e.idToken(e.newBrowser())}, "post_logout_redirect_uri": {"https://evil.example/"}}
		}, "an address it has not registered"},
		{"redirect registered for another client", func() url.Values {
			return url.Values{"client_id": {otherID}, "post_logout_redirect_uri": {webappLogout}}
		}, "an address it has not registered"},
		{"redirect without client", func() url.Values {
			return url.Values{"post_logout_redirect_uri": {webappLogout}}
		}, "does not say which application it comes from"},
		{"client_id not the hint's audience", func() url.Values {
			return url.Values{"id_token_hint": {e.idToken(e.newBrowser())}, "client_id": {otherID}}
		}, "names another application than its token"},
		{"hint signed by a foreign key", func() url.Values {
			return url.Values{"id_token_hint": {signWith(t, foreignKey, kid, validClaims())}}
		}, "did not issue"},
		{"hint with alg none", func() url.Values {
			h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"` + kid + `"}`))
			p, _ := json.Marshal(validClaims())
			return url.Values{"id_token_hint": {h + "." + base64.RawURLEncoding.EncodeToString(p) + "."}}
		}, "did not issue"},
		{"hint with a tampered payload", func() url.Values {
			parts := strings.Split(e.idToken(e.newBrowser()), ".")
			c := validClaims()
			c["sub"] = bobID
			p, _ := json.Marshal(c)
			return url.Values{"id_token_hint": {parts[0] + "." + base64.RawURLEncoding.EncodeToString(p) + "." + parts[2]}}
		}, "did not issue"},
		{"hint from another issuer", func() url.Values {
			c := validClaims()
			c["iss"] = "https://evil.example"
			hint, _, err := e.p.signer.Generate(context.Background(), jwt.MapClaims(c), &jwt.Headers{})
			if err != nil {
				t.Fatal(err)
			}
			return url.Values{"id_token_hint": {hint}}
		}, "did not issue"},
		{"hint is garbage", func() url.Values { return url.Values{"id_token_hint": {"not-a-jwt"}} }, "did not issue"},
		{"unknown client", func() url.Values { return url.Values{"client_id": {"nope"}} }, "is not registered with this sign-in service"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			params := tc.params()
			b := e.signedInBrowser()
			before := e.journey.signOutCount()
			res := b.get(e.issuer + pathEndSession + "?" + params.Encode())
			if res.status != http.StatusBadRequest || res.location != nil {
				t.Fatalf("got %d %v, want an error page", res.status, res.location)
			}
			if !strings.Contains(res.body, tc.cause) {
				t.Errorf("the page does not say %q:\n%s", tc.cause, truncate(res.body))
			}
			if tc.cause != "an address it has not registered" && strings.Contains(res.body, "not registered") && !strings.Contains(tc.cause, "not registered") {
				t.Errorf("the page blames an unregistered address for another cause")
			}
			if e.journey.signOutCount() != before {
				t.Error("signed out on a bad request")
			}
		})
	}

	t.Run("no hint: confirmation, same-origin POST only", func(t *testing.T) {
		b := e.signedInBrowser()
		before := e.journey.signOutCount()
		res := b.get(e.issuer + pathEndSession + "?" + url.Values{"client_id": {webappID}, "post_logout_redirect_uri": {webappLogout}, "state": {"s1"}}.Encode())
		if res.status != http.StatusOK || !strings.Contains(res.body, `method="post"`) || e.journey.signOutCount() != before {
			t.Fatalf("GET without hint: %d signOuts %d %s", res.status, e.journey.signOutCount()-before, truncate(res.body))
		}
		form := url.Values{"client_id": {webappID}, "post_logout_redirect_uri": {webappLogout}, "state": {"s1"}, "confirm": {"yes"}}

		// Cross-site POST: refused, nothing changes.
		req, _ := http.NewRequest(http.MethodPost, e.issuer+pathEndSession, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "https://evil.example")
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		resp, err := b.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || e.journey.signOutCount() != before {
			t.Fatalf("cross-site POST: %d", resp.StatusCode)
		}

		res = b.post(e.issuer+pathEndSession, form)
		if res.location == nil || res.location.String() != webappLogout+"?state=s1" || e.journey.signOutCount() != before+1 {
			t.Fatalf("confirmed POST: %d %v", res.status, res.location)
		}
	})

	t.Run("hint of another user asks first", func(t *testing.T) {
		hint, _, err := e.p.signer.Generate(context.Background(), jwt.MapClaims{
			"iss": e.issuer, "sub": bobID, "aud": []string{webappID}, "exp": time.Now().Add(time.Hour).Unix(),
		}, &jwt.Headers{})
		if err != nil {
			t.Fatal(err)
		}
		b := e.signedInBrowser() // alice
		before := e.journey.signOutCount()
		res := b.get(e.issuer + pathEndSession + "?id_token_hint=" + url.QueryEscape(hint))
		if res.status != http.StatusOK || !strings.Contains(res.body, `method="post"`) || e.journey.signOutCount() != before {
			t.Errorf("got %d, signOuts +%d", res.status, e.journey.signOutCount()-before)
		}
	})
}

// The provider's pages (its error page and the sign-out pages) send the
// headers every page of Lanyard sends, from the one place that sets them
// (templates.SetPageHeaders): the journey's CSP, no framing, no caching,
// and HSTS outside development.
func TestProviderPageHeaders(t *testing.T) {
	e := newEnv(t)
	b := e.newBrowser()
	pages := map[string]result{
		"authorize error":       b.get(e.issuer + pathAuthorize + "?" + url.Values{"client_id": {"nope"}, "response_type": {"code"}}.Encode()),
		"end_session error":     b.get(e.issuer + pathEndSession + "?" + url.Values{"client_id": {"nope"}}.Encode()),
		"sign-out confirmation": e.signedInBrowser().get(e.issuer + pathEndSession + "?" + url.Values{"client_id": {webappID}}.Encode()),
	}
	want := map[string]string{
		"Content-Security-Policy": templates.CSP,
		"X-Frame-Options":         "DENY",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		"Cache-Control":           "no-store",
	}
	for name, res := range pages {
		if res.status != http.StatusOK && res.status != http.StatusBadRequest {
			t.Errorf("%s: status %d", name, res.status)
		}
		for k, v := range want {
			if got := res.header.Get(k); got != v {
				t.Errorf("%s: %s = %q, want %q", name, k, got, v)
			}
		}
		if !strings.HasPrefix(res.header.Get("Strict-Transport-Security"), "max-age=") {
			t.Errorf("%s: no HSTS outside development", name)
		}
	}
}
