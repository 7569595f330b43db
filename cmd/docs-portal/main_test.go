package main

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/net/html"
	"golang.org/x/oauth2"
)

func TestParseFlags(t *testing.T) {
	cases := []struct {
		args []string
		want Config
	}{
		{nil, Config{Env: "staging", Issuer: "http://localhost:8080", Addr: ":9001", ClientID: "docs-portal-staging",
			ClientSecret: "staging-secret", RedirectURL: "http://localhost:9001/callback", PostLogoutURL: "http://localhost:9001/"}},
		{[]string{"--env", "production"}, Config{Env: "production", Issuer: "http://localhost:8080", Addr: ":9002", ClientID: "docs-portal-production",
			ClientSecret: "production-secret", RedirectURL: "http://localhost:9002/callback", PostLogoutURL: "http://localhost:9002/"}},
		{[]string{"--env=production", "--issuer", "https://id.agency.example/", "--addr", "127.0.0.1:7000",
			"--client-id", "portal", "--client-secret", "s3cret", "--redirect", "https://docs.agency.example/callback"},
			Config{Env: "production", Issuer: "https://id.agency.example", Addr: "127.0.0.1:7000", ClientID: "portal",
				ClientSecret: "s3cret", RedirectURL: "https://docs.agency.example/callback", PostLogoutURL: "https://docs.agency.example/"}},
	}
	for _, c := range cases {
		got, err := parseFlags(c.args, io.Discard)
		if err != nil {
			t.Fatalf("parseFlags(%q): %v", c.args, err)
		}
		if got != c.want {
			t.Errorf("parseFlags(%q) =\n%+v; want\n%+v", c.args, got, c.want)
		}
	}
	for _, bad := range [][]string{{"--env", "dev"}, {"--issuer", "localhost:8080"}, {"--redirect", "/callback"}, {"extra"}, {"--nope"}} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) accepted", bad)
		}
	}
}

// fakeOP is the edge of the world: just enough of an OpenID provider
// (discovery, authorize, token, JWKS, userinfo) to drive the portal. Lanyard
// itself is exercised against the portal by the end-to-end tests.
type fakeOP struct {
	srv *httptest.Server
	key *rsa.PrivateKey

	mu        sync.Mutex
	challenge string // from the last /authorize
	nonce     string
	badNonce  bool
	exchanged int
	refreshed int
}

func newFakeOP(t *testing.T) *fakeOP {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	op := &fakeOP{key: key}
	mux := http.NewServeMux()
	op.srv = httptest.NewServer(mux)
	t.Cleanup(op.srv.Close)
	iss := op.srv.URL
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{
			"issuer": iss, "authorization_endpoint": iss + "/authorize", "token_endpoint": iss + "/token",
			"jwks_uri": iss + "/jwks", "userinfo_endpoint": iss + "/userinfo", "end_session_endpoint": iss + "/logout",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		if !ok || id != "docs-portal-staging" || secret != "staging-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			writeJSON(w, map[string]string{"error": "invalid_client"})
			return
		}
		op.mu.Lock()
		defer op.mu.Unlock()
		switch r.PostFormValue("grant_type") {
		case "authorization_code":
			if r.PostFormValue("code") != "the-code" || oauth2.S256ChallengeFromVerifier(r.PostFormValue("code_verifier")) != op.challenge {
				w.WriteHeader(http.StatusBadRequest)
				writeJSON(w, map[string]string{"error": "invalid_grant"})
				return
			}
			op.exchanged++
		case "refresh_token":
			if r.PostFormValue("refresh_token") != "refresh-1" {
				w.WriteHeader(http.StatusBadRequest)
				writeJSON(w, map[string]string{"error": "invalid_grant"})
				return
			}
			op.refreshed++
		}
		nonce := op.nonce
		if op.badNonce {
			nonce = "someone-else's"
		}
		writeJSON(w, map[string]any{
			"access_token": "access-1", "token_type": "Bearer", "expires_in": 3600, "refresh_token": "refresh-1",
			"id_token": op.sign(t, map[string]any{
				"iss": iss, "sub": "user-1", "aud": "docs-portal-staging", "nonce": nonce,
				"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
				"name": "Alice Martin", "email": "alice@agency.example", "sid": "sid-1",
			}),
		})
	})
	mux.HandleFunc("GET /userinfo", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer access-1" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		writeJSON(w, map[string]any{"sub": "user-1", "name": "Alice Martin", "email": "alice@agency.example", "email_verified": true})
	})
	return op
}

func (op *fakeOP) sign(t *testing.T, claims map[string]any) string {
	return op.signAs(t, "JWT", op.key, claims)
}

// signAs signs claims with typ and key under the OP's kid.
func (op *fakeOP) signAs(t *testing.T, typ string, key *rsa.PrivateKey, claims map[string]any) string {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// portal runs the App for the staging client against op on httptest.
func portal(t *testing.T, op *fakeOP) (*httptest.Server, *http.Client) {
	t.Helper()
	cfg, err := parseFlags([]string{"--issuer", op.srv.URL}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	app := New(cfg)
	ps := httptest.NewServer(app.Handler())
	t.Cleanup(ps.Close)
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return ps, client
}

func TestLoginRedirect(t *testing.T) {
	op := newFakeOP(t)
	ps, client := portal(t, op)
	res, err := client.Get(ps.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusFound {
		t.Fatalf("/login: %s", res.Status)
	}
	loc, err := url.Parse(res.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != op.srv.URL+"/authorize" {
		t.Fatalf("redirected to %s; want the authorization endpoint", got)
	}
	q := loc.Query()
	want := map[string]string{
		"response_type": "code", "client_id": "docs-portal-staging",
		"redirect_uri": "http://localhost:9001/callback", "code_challenge_method": "S256",
	}
	for k, v := range want {
		if q.Get(k) != v {
			t.Errorf("%s = %q; want %q", k, q.Get(k), v)
		}
	}
	if !strings.Contains(" "+q.Get("scope")+" ", " openid ") {
		t.Errorf("scope %q lacks openid", q.Get("scope"))
	}
	if len(q.Get("code_challenge")) != 43 || len(q.Get("state")) < 32 || len(q.Get("nonce")) < 32 || q.Get("state") == q.Get("nonce") {
		t.Errorf("challenge %q, state %q, nonce %q", q.Get("code_challenge"), q.Get("state"), q.Get("nonce"))
	}
	var login *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == "docs_portal_staging_login" {
			login = c
		}
	}
	if login == nil || !login.HttpOnly || login.SameSite != http.SameSiteLaxMode || strings.Contains(login.Value, q.Get("state")) {
		t.Fatalf("login cookie %+v", login)
	}

	if q.Has("prompt") {
		t.Errorf("a plain /login sends prompt=%q", q.Get("prompt"))
	}

	// A second /login gets a fresh state, nonce and challenge.
	res2, _ := client.Get(ps.URL + "/login")
	res2.Body.Close()
	q2, _ := url.ParseQuery(strings.SplitN(res2.Header.Get("Location"), "?", 2)[1])
	if q2.Get("state") == q.Get("state") || q2.Get("nonce") == q.Get("nonce") || q2.Get("code_challenge") == q.Get("code_challenge") {
		t.Fatal("state, nonce or challenge reused across logins")
	}

	// prompt=consent and prompt=login are passed on; other values are not.
	for in, want := range map[string]string{"consent": "consent", "login": "login", "none": "", "consent login": ""} {
		res, _ := client.Get(ps.URL + "/login?prompt=" + url.QueryEscape(in))
		res.Body.Close()
		q, _ := url.ParseQuery(strings.SplitN(res.Header.Get("Location"), "?", 2)[1])
		if q.Get("prompt") != want {
			t.Errorf("/login?prompt=%s sent prompt=%q, want %q", in, q.Get("prompt"), want)
		}
	}
}

// authorize follows /login to the fake OP and returns the callback URL the
// OP would send the browser to.
func authorize(t *testing.T, op *fakeOP, ps *httptest.Server, client *http.Client) url.Values {
	t.Helper()
	res, err := client.Get(ps.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	loc, _ := url.Parse(res.Header.Get("Location"))
	q := loc.Query()
	op.mu.Lock()
	op.challenge, op.nonce = q.Get("code_challenge"), q.Get("nonce")
	op.mu.Unlock()
	return url.Values{"code": {"the-code"}, "state": {q.Get("state")}, "iss": {op.srv.URL}}
}

func get(t *testing.T, client *http.Client, u string) (*http.Response, string) {
	t.Helper()
	res, err := client.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func post(t *testing.T, client *http.Client, u string, hdr map[string]string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", u, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res
}

// text is the visible text of an HTML page.
func text(t *testing.T, page string) string {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return strings.Join(strings.Fields(b.String()), " ")
}

func TestSignInRefreshSignOut(t *testing.T) {
	op := newFakeOP(t)
	ps, client := portal(t, op)

	_, home := get(t, client, ps.URL+"/")
	if txt := text(t, home); !strings.Contains(txt, "Docs portal — staging environment") || !strings.Contains(txt, "Login") {
		t.Fatalf("home page: %s", txt)
	}

	cb := authorize(t, op, ps, client)
	res, _ := get(t, client, ps.URL+"/callback?"+cb.Encode())
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/" {
		t.Fatalf("callback: %s → %s", res.Status, res.Header.Get("Location"))
	}
	_, home = get(t, client, ps.URL+"/")
	txt := text(t, home)
	for _, want := range []string{"Signed in as Alice Martin (alice@agency.example)", "ID token claims", "nonce", "user-1", "Userinfo", "email_verified", "Refresh tokens", "Sign out"} {
		if !strings.Contains(txt, want) {
			t.Errorf("signed-in page lacks %q: %s", want, txt)
		}
	}

	// The code is good once: replaying the callback fails without a second exchange.
	res, _ = get(t, client, ps.URL+"/callback?"+cb.Encode())
	if res.StatusCode != http.StatusBadRequest || op.exchanged != 1 {
		t.Fatalf("replayed callback: %s, %d exchanges", res.Status, op.exchanged)
	}

	// Cross-site POSTs are refused.
	if res := post(t, client, ps.URL+"/refresh", map[string]string{"Sec-Fetch-Site": "cross-site"}); res.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site refresh: %s", res.Status)
	}
	if res := post(t, client, ps.URL+"/refresh", map[string]string{"Sec-Fetch-Site": "same-origin"}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("refresh: %s", res.Status)
	}
	_, home = get(t, client, ps.URL+"/")
	if txt := text(t, home); !strings.Contains(txt, "Tokens refreshed. The new access token expires at") || op.refreshed != 1 {
		t.Fatalf("after refresh (%d refreshes): %s", op.refreshed, txt)
	}

	res = post(t, client, ps.URL+"/logout", map[string]string{"Sec-Fetch-Site": "same-origin"})
	loc, _ := url.Parse(res.Header.Get("Location"))
	if res.StatusCode != http.StatusSeeOther || loc.Scheme+"://"+loc.Host+loc.Path != op.srv.URL+"/logout" {
		t.Fatalf("logout: %s → %s", res.Status, loc)
	}
	q := loc.Query()
	if q.Get("id_token_hint") == "" || q.Get("post_logout_redirect_uri") != "http://localhost:9001/" || q.Get("state") == "" {
		t.Fatalf("end-session query %v", q)
	}
	_, home = get(t, client, ps.URL+"/?state="+url.QueryEscape(q.Get("state")))
	if txt := text(t, home); !strings.Contains(txt, "You are signed out.") || strings.Contains(txt, "Signed in as") {
		t.Fatalf("after sign-out: %s", txt)
	}
}

func TestCallbackRefusals(t *testing.T) {
	op := newFakeOP(t)
	cases := map[string]func(url.Values){
		"wrong state":    func(v url.Values) { v.Set("state", "forged") },
		"missing state":  func(v url.Values) { v.Del("state") },
		"other issuer":   func(v url.Values) { v.Set("iss", "https://evil.example") },
		"error response": func(v url.Values) { v.Del("code"); v.Set("error", "access_denied") },
		"wrong code":     func(v url.Values) { v.Set("code", "stolen") },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			ps, client := portal(t, op)
			cb := authorize(t, op, ps, client)
			mutate(cb)
			res, body := get(t, client, ps.URL+"/callback?"+cb.Encode())
			if res.StatusCode < 400 {
				t.Fatalf("callback accepted: %s", res.Status)
			}
			if !strings.Contains(text(t, body), "Sign-in problem") {
				t.Fatalf("no error page: %s", body)
			}
			_, home := get(t, client, ps.URL+"/")
			if strings.Contains(text(t, home), "Signed in") {
				t.Fatal("signed in after a refused callback")
			}
		})
	}
	t.Run("nonce mismatch", func(t *testing.T) {
		ps, client := portal(t, op)
		cb := authorize(t, op, ps, client)
		op.mu.Lock()
		op.badNonce = true
		op.mu.Unlock()
		defer func() { op.mu.Lock(); op.badNonce = false; op.mu.Unlock() }()
		res, body := get(t, client, ps.URL+"/callback?"+cb.Encode())
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(body, "nonce") {
			t.Fatalf("nonce mismatch: %s %s", res.Status, text(t, body))
		}
	})
	t.Run("no login cookie", func(t *testing.T) {
		ps, client := portal(t, op)
		cb := authorize(t, op, ps, client)
		fresh := &http.Client{CheckRedirect: client.CheckRedirect}
		res, _ := get(t, fresh, ps.URL+"/callback?"+cb.Encode())
		if res.StatusCode != http.StatusBadRequest {
			t.Fatalf("callback without the login cookie: %s", res.Status)
		}
	})
}

func TestIssuerDown(t *testing.T) {
	cfg, _ := parseFlags([]string{"--issuer", "http://127.0.0.1:1"}, io.Discard)
	ps := httptest.NewServer(New(cfg).Handler())
	defer ps.Close()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, body := get(t, client, ps.URL+"/login")
	if res.StatusCode != http.StatusBadGateway || !strings.Contains(body, "not reachable") {
		t.Fatalf("/login with the issuer down: %s %s", res.Status, body)
	}
}
