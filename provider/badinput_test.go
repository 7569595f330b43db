package provider

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

func b64url(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

func clientCredentials(e *env, id, secret string, scopes ...string) *clientcredentials.Config {
	return &clientcredentials.Config{
		ClientID: id, ClientSecret: secret, TokenURL: e.issuer + pathToken, Scopes: scopes,
		AuthStyle: oauth2.AuthStyleInHeader,
	}
}

// signedInBrowser returns a browser already signed in as alice.
func (e *env) signedInBrowser() *browser {
	e.t.Helper()
	b := e.newBrowser()
	e.journey.setNext(alice())
	b.get(e.issuer + "/test/login?resume=" + url.QueryEscape(e.issuer+"/nowhere"))
	return b
}

// authParams is a valid authorization request for the web app.
func authParams(challenge string) url.Values {
	return url.Values{
		"response_type":         {"code"},
		"client_id":             {webappID},
		"redirect_uri":          {webappRedir},
		"scope":                 {"openid email offline_access"},
		"state":                 {"state-123456789"},
		"nonce":                 {"nonce-123456789"},
		"code_challenge":        {challenge},
		"code_challenge_method": {"S256"},
	}
}

// code runs an authorization request in a signed-in browser and returns the code.
func (e *env) code(b *browser, q url.Values) string {
	e.t.Helper()
	res := b.get(e.issuer + pathAuthorize + "?" + q.Encode())
	if res.location == nil || res.location.Query().Get("code") == "" {
		e.t.Fatalf("no code: %d %v %s", res.status, res.location, truncate(res.body))
	}
	return res.location.Query().Get("code")
}

func TestAuthorizeBadInput(t *testing.T) {
	e := newEnv(t)
	b := e.signedInBrowser()
	challenge := oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())

	type want struct {
		page     bool   // an error page, never a redirect
		code     string // the OAuth error code (query of the redirect, or on the page)
		redirect string // the registered redirect URI the error goes to
	}
	pageErr := func(code string) want { return want{page: true, code: code} }
	redirErr := func(code string) want { return want{code: code, redirect: webappRedir} }

	cases := []struct {
		name   string
		mutate func(url.Values)
		raw    string // a raw query instead of authParams
		want   want
	}{
		{"redirect: host case", func(v url.Values) { v.Set("redirect_uri", "https://RP.example/cb") }, "", pageErr("invalid_request")},
		{"redirect: path case", func(v url.Values) { v.Set("redirect_uri", "https://rp.example/CB") }, "", pageErr("invalid_request")},
		{"redirect: trailing slash", func(v url.Values) { v.Set("redirect_uri", "https://rp.example/cb/") }, "", pageErr("invalid_request")},
		{"redirect: added port", func(v url.Values) { v.Set("redirect_uri", "https://rp.example:8443/cb") }, "", pageErr("invalid_request")},
		{"redirect: added query", func(v url.Values) { v.Set("redirect_uri", "https://rp.example/cb?next=x") }, "", pageErr("invalid_request")},
		{"redirect: fragment", func(v url.Values) { v.Set("redirect_uri", "https://rp.example/cb#x") }, "", pageErr("invalid_request")},
		{"redirect: user@host", func(v url.Values) { v.Set("redirect_uri", "https://rp.example@evil.example/cb") }, "", pageErr("invalid_request")},
		{"redirect: encoded path", func(v url.Values) { v.Set("redirect_uri", "https://rp.example/%63b") }, "", pageErr("invalid_request")},
		{"redirect: dot-dot", func(v url.Values) { v.Set("redirect_uri", "https://rp.example/x/../cb") }, "", pageErr("invalid_request")},
		{"redirect: http downgrade", func(v url.Values) { v.Set("redirect_uri", "http://rp.example/cb") }, "", pageErr("invalid_request")},
		{"redirect: unregistered", func(v url.Values) { v.Set("redirect_uri", "https://evil.example/cb") }, "", pageErr("invalid_request")},
		{"redirect: missing with two registered", func(v url.Values) { v.Del("redirect_uri") }, "", pageErr("invalid_request")},
		{"redirect: loopback other port", func(v url.Values) {
			v.Set("client_id", spaID)
			v.Set("redirect_uri", "http://127.0.0.1:6666/cb")
		}, "", pageErr("invalid_request")},
		{"redirect: loopback swap", func(v url.Values) {
			v.Set("client_id", spaID)
			v.Set("redirect_uri", "http://localhost:5555/cb")
		}, "", pageErr("invalid_request")},
		{"redirect: duplicated", nil, "response_type=code&client_id=webapp&redirect_uri=" + url.QueryEscape(webappRedir) +
			"&redirect_uri=" + url.QueryEscape("https://evil.example/cb") + "&scope=openid&state=state-123456789", pageErr("invalid_request")},
		{"client: unknown", func(v url.Values) { v.Set("client_id", "nope") }, "", pageErr("invalid_client")},
		{"client: empty", func(v url.Values) { v.Set("client_id", "") }, "", pageErr("invalid_client")},
		{"client: missing", func(v url.Values) { v.Del("client_id") }, "", pageErr("invalid_client")},
		{"client: huge", func(v url.Values) { v.Set("client_id", strings.Repeat("a", 12000)) }, "", pageErr("invalid_client")},
		{"client: markup", func(v url.Values) { v.Set("client_id", "<script>alert(1)</script>") }, "", pageErr("invalid_client")},
		{"client: duplicated", nil, "response_type=code&client_id=webapp&client_id=other&scope=openid&state=state-123456789", pageErr("invalid_request")},

		{"pkce: missing for public client", func(v url.Values) {
			v.Set("client_id", spaID)
			v.Set("redirect_uri", spaRedir)
			v.Del("code_challenge")
			v.Del("code_challenge_method")
		}, "", want{code: "invalid_request", redirect: spaRedir}},
		{"pkce: plain", func(v url.Values) { v.Set("code_challenge_method", "plain") }, "", redirErr("invalid_request")},
		{"pkce: no method", func(v url.Values) { v.Del("code_challenge_method") }, "", redirErr("invalid_request")},
		{"duplicated parameter", func(v url.Values) { v.Add("scope", "openid profile") }, "", redirErr("invalid_request")},
		{"request object", func(v url.Values) { v.Set("request", "eyJhbGciOiJub25lIn0.eyJzY29wZSI6Im9wZW5pZCJ9.") }, "", redirErr("request_not_supported")},
		{"request_uri elsewhere", func(v url.Values) { v.Set("request_uri", "https://evil.example/req.jwt") }, "", redirErr("request_uri_not_supported")},
		{"response_mode fragment", func(v url.Values) { v.Set("response_mode", "fragment") }, "", redirErr("unsupported_response_mode")},
		{"response_mode form_post", func(v url.Values) { v.Set("response_mode", "form_post") }, "", redirErr("unsupported_response_mode")},
		{"response_type token", func(v url.Values) { v.Set("response_type", "token") }, "", redirErr("unsupported_response_type")},
		// Found by FuzzAuthorizeQuery: fosite answered the first with
		// server_error, the second in the fragment.
		{"response_type in capitals", func(v url.Values) { v.Set("response_type", "Code") }, "", redirErr("unsupported_response_type")},
		{"response_type in capitals, no state", func(v url.Values) { v.Set("response_type", "Code"); v.Del("state") }, "", redirErr("unsupported_response_type")},
		{"response_type code twice", func(v url.Values) { v.Set("response_type", "code code") }, "", redirErr("unsupported_response_type")},
		{"scope not allowed", func(v url.Values) { v.Set("scope", "openid docs:write") }, "", redirErr("invalid_scope")},
		{"prompt unknown", func(v url.Values) { v.Set("prompt", "consent popup") }, "", redirErr("invalid_request")},
		{"prompt none with consent", func(v url.Values) { v.Set("prompt", "none consent") }, "", redirErr("invalid_request")},
		{"prompt none with login", func(v url.Values) { v.Set("prompt", "none login") }, "", redirErr("invalid_request")},
		{"max_age not a number", func(v url.Values) { v.Set("max_age", "soon") }, "", redirErr("invalid_request")},
		{"max_age overflowing", func(v url.Values) { v.Set("max_age", "9223372036854775807") }, "", redirErr("invalid_request")},
		{"state CR/LF", func(v url.Values) { v.Set("state", "abcdefgh\r\nSet-Cookie: x=y") }, "", redirErr("invalid_state")},
		{"state NUL", func(v url.Values) { v.Set("state", "abcdefgh\x00") }, "", redirErr("invalid_state")},
		{"nonce CR/LF", func(v url.Values) { v.Set("nonce", "abcdefgh\r\n<b>x</b>") }, "", redirErr("invalid_request")},
		{"claims not JSON", func(v url.Values) { v.Set("claims", `{"id_token":`) }, "", redirErr("invalid_request")},
		{"claims not an object", func(v url.Values) { v.Set("claims", `["email"]`) }, "", redirErr("invalid_request")},
		{"claims member not an object", func(v url.Values) { v.Set("claims", `{"userinfo":"email"}`) }, "", redirErr("invalid_request")},
		{"id_token_hint forged", func(v url.Values) { v.Set("id_token_hint", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1LWFsaWNlIn0.") }, "", redirErr("invalid_request")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.raw
			if q == "" {
				v := authParams(challenge)
				tc.mutate(v)
				q = v.Encode()
			}
			res := b.get(e.issuer + pathAuthorize + "?" + q)
			if res.status >= 500 {
				t.Fatalf("status %d", res.status)
			}
			if tc.want.page {
				if res.location != nil {
					t.Fatalf("redirected to %s, want an error page", res.location)
				}
				if res.status < 400 || !strings.Contains(res.body, tc.want.code) {
					t.Fatalf("page %d does not show %s: %s", res.status, tc.want.code, truncate(res.body))
				}
				if strings.Contains(res.body, "<script>alert") {
					t.Fatal("markup from the request reflected raw on the page")
				}
				return
			}
			if res.location == nil {
				t.Fatalf("no redirect: %d %s", res.status, truncate(res.body))
			}
			loc := res.location
			if got := loc.Scheme + "://" + loc.Host + loc.Path; got != tc.want.redirect {
				t.Fatalf("redirected to %s, want %s", loc, tc.want.redirect)
			}
			if loc.Fragment != "" {
				t.Fatalf("the error went in the fragment: %s", loc)
			}
			if qq := loc.Query(); qq.Get("error") != tc.want.code || qq.Get("code") != "" || qq.Get("iss") != e.issuer {
				t.Fatalf("redirect query = %v, want error %s with iss", qq, tc.want.code)
			}
			rawLoc := res.header.Get("Location")
			if strings.ContainsAny(rawLoc, "\r\n<>\x00") {
				t.Fatalf("Location carries raw control characters or markup: %q", rawLoc)
			}
		})
	}
}

func TestAuthorizeReflection(t *testing.T) {
	e := newEnv(t)
	// Not signed in + prompt=none: the error redirect echoes state, encoded.
	b := e.newBrowser()
	v := authParams(oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier()))
	v.Set("state", `"><script>alert(1)</script>`)
	v.Set("prompt", "none")
	res := b.get(e.issuer + pathAuthorize + "?" + v.Encode())
	if res.location == nil {
		t.Fatalf("no redirect: %d", res.status)
	}
	raw := res.header.Get("Location")
	if strings.Contains(raw, "<script>") || strings.Contains(raw, `"`) {
		t.Errorf("state reflected raw: %q", raw)
	}
	if res.location.Query().Get("state") != `"><script>alert(1)</script>` || res.location.Query().Get("error") != "login_required" {
		t.Errorf("redirect = %v", res.location)
	}
}

func TestAuthorizeOversized(t *testing.T) {
	e := newEnv(t)
	b := e.newBrowser()
	v := authParams("x")
	v.Set("state", strings.Repeat("s", 20<<10))
	start := time.Now()
	res := b.get(e.issuer + pathAuthorize + "?" + v.Encode())
	if res.status < 400 || res.status >= 500 || res.location != nil {
		t.Errorf("oversized query: %d %v", res.status, res.location)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("oversized query took %v", d)
	}
	// An oversized POST body too.
	res = b.post(e.issuer+pathAuthorize, v)
	if res.status < 400 || res.status >= 500 || res.location != nil {
		t.Errorf("oversized form: %d %v", res.status, res.location)
	}
}

func TestTokenBadInput(t *testing.T) {
	e := newEnv(t)
	b := e.signedInBrowser()

	// newCode returns a fresh code with its verifier.
	newCode := func(q url.Values, verifier string) string {
		return e.code(b, q)
	}
	fresh := func() (string, string) {
		v := oauth2.GenerateVerifier()
		return newCode(authParams(oauth2.S256ChallengeFromVerifier(v)), v), v
	}
	exchange := func(code, verifier, redirect, user, pass string, extra url.Values) (*http.Response, map[string]any) {
		f := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}}
		if verifier != "" {
			f.Set("code_verifier", verifier)
		}
		for k, v := range extra {
			f[k] = v
		}
		return e.postForm(pathToken, f, user, pass)
	}

	type check struct {
		status int
		code   string
	}
	cases := []struct {
		name string
		run  func() (*http.Response, map[string]any)
		want check
	}{
		{"wrong client secret", func() (*http.Response, map[string]any) {
			c, v := fresh()
			return exchange(c, v, webappRedir, webappID, "wrong-secret", nil)
		}, check{401, "invalid_client"}},
		{"unknown client", func() (*http.Response, map[string]any) {
			c, v := fresh()
			return exchange(c, v, webappRedir, "nope", "x", nil)
		}, check{401, "invalid_client"}},
		{"credentials in header and body", func() (*http.Response, map[string]any) {
			c, v := fresh()
			return exchange(c, v, webappRedir, webappID, webappSecret, url.Values{"client_secret": {webappSecret}})
		}, check{400, "invalid_request"}},
		{"mismatched client ids", func() (*http.Response, map[string]any) {
			c, v := fresh()
			return exchange(c, v, webappRedir, webappID, webappSecret, url.Values{"client_id": {otherID}})
		}, check{401, "invalid_client"}},
		{"malformed Basic", func() (*http.Response, map[string]any) {
			req, _ := http.NewRequest(http.MethodPost, e.issuer+pathToken, strings.NewReader("grant_type=client_credentials"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Authorization", "Basic !!!not-base64")
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp, map[string]any{"error": "invalid_client"}
		}, check{401, "invalid_client"}},
		{"code redeemed by another client", func() (*http.Response, map[string]any) {
			c, v := fresh()
			return exchange(c, v, webappRedir, otherID, otherSecret, nil)
		}, check{400, "invalid_grant"}},
		{"wrong redirect_uri", func() (*http.Response, map[string]any) {
			c, v := fresh()
			return exchange(c, v, "https://rp.example/cb2", webappID, webappSecret, nil)
		}, check{400, "invalid_grant"}},
		{"missing verifier", func() (*http.Response, map[string]any) {
			c, _ := fresh()
			return exchange(c, "", webappRedir, webappID, webappSecret, nil)
		}, check{400, "invalid_grant"}},
		{"malformed verifier", func() (*http.Response, map[string]any) {
			c, _ := fresh()
			return exchange(c, "short", webappRedir, webappID, webappSecret, nil)
		}, check{400, "invalid_grant"}},
		{"PKCE downgrade: no challenge, then a verifier", func() (*http.Response, map[string]any) {
			q := authParams("")
			q.Del("code_challenge")
			q.Del("code_challenge_method")
			c := newCode(q, "")
			return exchange(c, oauth2.GenerateVerifier(), webappRedir, webappID, webappSecret, nil)
		}, check{400, "invalid_grant"}},
		{"unknown code", func() (*http.Response, map[string]any) {
			return exchange("nonsense.code", oauth2.GenerateVerifier(), webappRedir, webappID, webappSecret, nil)
		}, check{400, "invalid_grant"}},
		{"unsupported grant type", func() (*http.Response, map[string]any) {
			return e.postForm(pathToken, url.Values{"grant_type": {"password"}, "username": {"a"}, "password": {"b"}}, webappID, webappSecret)
		}, check{400, ""}},
		{"empty body", func() (*http.Response, map[string]any) {
			return e.postForm(pathToken, url.Values{}, webappID, webappSecret)
		}, check{400, "invalid_request"}},
		{"duplicated parameter", func() (*http.Response, map[string]any) {
			c, v := fresh()
			return exchange(c, v, webappRedir, webappID, webappSecret, url.Values{"code": {c, "other"}})
		}, check{400, "invalid_request"}},
		{"refresh: unknown token", func() (*http.Response, map[string]any) {
			return e.postForm(pathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"nonsense"}}, webappID, webappSecret)
		}, check{400, "invalid_grant"}},
		{"refresh: scope widening", func() (*http.Response, map[string]any) {
			c, v := fresh()
			_, body := exchange(c, v, webappRedir, webappID, webappSecret, nil)
			rt, _ := body["refresh_token"].(string)
			resp, body := e.postForm(pathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "scope": {"openid profile"}}, webappID, webappSecret)
			if resp.StatusCode == http.StatusOK && strings.Contains(body["scope"].(string), "profile") {
				t.Errorf("refresh widened the scope: %v", body)
			}
			return resp, body
		}, check{0, ""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := tc.run()
			if resp.StatusCode >= 500 {
				t.Fatalf("status %d %v", resp.StatusCode, body)
			}
			if tc.want.status != 0 && resp.StatusCode != tc.want.status {
				t.Errorf("status = %d, want %d (%v)", resp.StatusCode, tc.want.status, body)
			}
			if tc.want.code != "" && body["error"] != tc.want.code {
				t.Errorf("error = %v, want %s", body["error"], tc.want.code)
			}
			if resp.StatusCode == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q", cc)
			}
		})
	}

	t.Run("wrong verifier then no verifier", func(t *testing.T) {
		c, v := fresh()
		resp, body := exchange(c, oauth2.GenerateVerifier(), webappRedir, webappID, webappSecret, nil)
		if resp.StatusCode != http.StatusBadRequest || body["error"] != "invalid_grant" {
			t.Fatalf("wrong verifier: %d %v", resp.StatusCode, body)
		}
		resp, body = exchange(c, "", webappRedir, webappID, webappSecret, nil)
		if resp.StatusCode != http.StatusBadRequest || body["error"] != "invalid_grant" {
			t.Fatalf("then no verifier (PKCE downgrade): %d %v", resp.StatusCode, body)
		}
		// The right verifier still works: failed attempts did not consume the code.
		resp, body = exchange(c, v, webappRedir, webappID, webappSecret, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("right verifier: %d %v", resp.StatusCode, body)
		}
	})

	t.Run("GET is not allowed", func(t *testing.T) {
		resp, err := e.srv.Client().Get(e.issuer + pathToken)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("GET /token: %d", resp.StatusCode)
		}
	})

	t.Run("introspect without credentials", func(t *testing.T) {
		resp, _ := e.postForm(pathIntrospect, url.Values{"token": {"x"}}, "", "")
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("introspect: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
		resp, _ = e.postForm(pathIntrospect, url.Values{"token": {"x"}}, webappID, "wrong")
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("introspect with a wrong secret: %d", resp.StatusCode)
		}
		resp, body := e.postForm(pathIntrospect, url.Values{"token": {"x"}}, webappID, webappSecret)
		if resp.StatusCode != http.StatusOK || body["active"] != false {
			t.Errorf("introspect unknown token: %d %v", resp.StatusCode, body)
		}
	})
}
