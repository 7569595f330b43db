package main

import (
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// logoutClaims is a valid logout token's claims for the fake OP's session
// sid-1 of user-1.
func logoutClaims(op *fakeOP, jti string) map[string]any {
	return map[string]any{
		"iss": op.srv.URL, "aud": "docs-portal-staging", "sub": "user-1", "sid": "sid-1",
		"iat": time.Now().Unix(), "exp": time.Now().Add(2 * time.Minute).Unix(), "jti": jti,
		"events": map[string]any{backchannelEvent: map[string]any{}},
	}
}

func postLogout(t *testing.T, ps string, token string) int {
	t.Helper()
	res, err := http.PostForm(ps+"/backchannel-logout", url.Values{"logout_token": {token}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control = %q", res.Header.Get("Cache-Control"))
	}
	return res.StatusCode
}

// signedIn signs a browser in to the portal and reports whether it still is.
func signedIn(t *testing.T, op *fakeOP, srv *httptest.Server, client *http.Client, fresh bool) bool {
	t.Helper()
	if fresh {
		cb := authorize(t, op, srv, client)
		if res, _ := get(t, client, srv.URL+"/callback?"+cb.Encode()); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("callback: %s", res.Status)
		}
	}
	_, home := get(t, client, srv.URL+"/")
	return strings.Contains(text(t, home), "Signed in as")
}

func TestBackchannelLogout(t *testing.T) {
	op := newFakeOP(t)
	srv, client := portal(t, op)
	ps := srv.URL
	if !signedIn(t, op, srv, client, true) {
		t.Fatal("not signed in")
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	bad := []struct {
		name  string
		token func() string
	}{
		{"not a JWT", func() string { return "garbage" }},
		{"signed by another key", func() string { return op.signAs(t, "logout+jwt", other, logoutClaims(op, "j1")) }},
		{"typ JWT (an ID token)", func() string { return op.signAs(t, "JWT", op.key, logoutClaims(op, "j2")) }},
		{"another audience", func() string {
			c := logoutClaims(op, "j3")
			c["aud"] = "docs-portal-production"
			return op.signAs(t, "logout+jwt", op.key, c)
		}},
		{"another issuer", func() string {
			c := logoutClaims(op, "j4")
			c["iss"] = "https://evil.example"
			return op.signAs(t, "logout+jwt", op.key, c)
		}},
		{"expired", func() string {
			c := logoutClaims(op, "j5")
			c["iat"], c["exp"] = time.Now().Add(-time.Hour).Unix(), time.Now().Add(-time.Minute).Unix()
			return op.signAs(t, "logout+jwt", op.key, c)
		}},
		{"issued long ago", func() string {
			c := logoutClaims(op, "j6")
			c["iat"] = time.Now().Add(-time.Hour).Unix()
			return op.signAs(t, "logout+jwt", op.key, c)
		}},
		{"no logout event", func() string {
			c := logoutClaims(op, "j7")
			c["events"] = map[string]any{"urn:other": map[string]any{}}
			return op.signAs(t, "logout+jwt", op.key, c)
		}},
		{"with a nonce", func() string {
			c := logoutClaims(op, "j8")
			c["nonce"] = "n"
			return op.signAs(t, "logout+jwt", op.key, c)
		}},
		{"neither sid nor sub", func() string {
			c := logoutClaims(op, "j9")
			delete(c, "sid")
			delete(c, "sub")
			return op.signAs(t, "logout+jwt", op.key, c)
		}},
		{"no jti", func() string {
			c := logoutClaims(op, "")
			delete(c, "jti")
			return op.signAs(t, "logout+jwt", op.key, c)
		}},
	}
	for _, tc := range bad {
		if code := postLogout(t, ps, tc.token()); code != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", tc.name, code)
		}
		if !signedIn(t, op, srv, client, false) {
			t.Fatalf("%s ended the session", tc.name)
		}
	}
	// A GET is not a logout.
	if res, _ := get(t, client, ps+"/backchannel-logout"); res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %s", res.Status)
	}

	// Another Lanyard session's sid ends nothing here, but is accepted.
	c := logoutClaims(op, "other-session")
	c["sid"] = "sid-2"
	if code := postLogout(t, ps, op.signAs(t, "logout+jwt", op.key, c)); code != http.StatusOK || !signedIn(t, op, srv, client, false) {
		t.Fatalf("another sid: %d", code)
	}
	// The session's own sid ends it; the same token again is a replay.
	valid := op.signAs(t, "logout+jwt", op.key, logoutClaims(op, "the-one"))
	if code := postLogout(t, ps, valid); code != http.StatusOK {
		t.Fatalf("valid logout token: %d", code)
	}
	if signedIn(t, op, srv, client, false) {
		t.Fatal("still signed in after the back-channel logout")
	}
	if code := postLogout(t, ps, valid); code != http.StatusBadRequest {
		t.Errorf("replayed logout token: %d", code)
	}

	// Without a sid, every session of the officer ends.
	if !signedIn(t, op, srv, client, true) {
		t.Fatal("not signed in again")
	}
	c = logoutClaims(op, "by-sub")
	delete(c, "sid")
	if code := postLogout(t, ps, op.signAs(t, "logout+jwt", op.key, c)); code != http.StatusOK || signedIn(t, op, srv, client, false) {
		t.Fatalf("logout by sub: %d", code)
	}
}
