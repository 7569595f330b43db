package provider

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/provider/authn"
	"github.com/lanyard-idp/lanyard/provider/store"
	"github.com/lanyard-idp/lanyard/provider/store/seal"
	"github.com/lanyard-idp/lanyard/templates"

	"net/http/httptest"
)

// Test fixtures: a confidential web app, a public SPA, a service, a second
// confidential app, one that posts its secret in the body and a resource
// server that may introspect every client's tokens.
const (
	webappID      = "webapp"
	webappSecret  = "webapp-secret-0123456789"
	webappRedir   = "https://rp.example/cb"
	webappLogout  = "https://rp.example/bye"
	spaID         = "spa"
	spaRedir      = "http://127.0.0.1:5555/cb"
	serviceID     = "service"
	serviceSecret = "service-secret-0123456789"
	otherID       = "other"
	otherSecret   = "other-secret-0123456789"
	otherRedir    = "https://other.example/cb"
	postID        = "poster"
	postSecret    = "poster-secret-0123456789"
	rsID          = "resource-server"
	rsSecret      = "resource-server-secret-0123"

	aliceID    = "u-alice"
	aliceEmail = "alice@agency.example"
	bobID      = "u-bob"
)

func mustHash(t testing.TB, secret string) string {
	t.Helper()
	h, err := config.HashSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// testClients are the relying parties of the tests, with the defaults the
// configuration gives them.
func testClients(t testing.TB) []config.Client {
	cfg := config.Config{Clients: []config.Client{
		{
			ID: webappID, Name: "Web app", SecretHash: mustHash(t, webappSecret),
			RedirectURIs:           []string{webappRedir, "https://rp.example/cb2"},
			PostLogoutRedirectURIs: []string{webappLogout},
			GrantTypes:             []string{"authorization_code", "refresh_token"},
			Scopes:                 []string{"openid", "email", "profile", "offline_access"},
		},
		{
			ID: spaID, Name: "Single-page app", Public: true,
			RedirectURIs: []string{spaRedir},
			GrantTypes:   []string{"authorization_code", "refresh_token"},
			Scopes:       []string{"openid", "email", "profile", "offline_access"},
		},
		{
			ID: serviceID, Name: "CI service", SecretHash: mustHash(t, serviceSecret),
			GrantTypes: []string{"client_credentials"},
			Scopes:     []string{"docs:read", "docs:write"},
		},
		{
			ID: otherID, Name: "Other app", SecretHash: mustHash(t, otherSecret),
			RedirectURIs: []string{otherRedir},
			GrantTypes:   []string{"authorization_code", "refresh_token"},
			Scopes:       []string{"openid", "email", "profile", "offline_access"},
		},
		{
			ID: postID, Name: "Poster", SecretHash: mustHash(t, postSecret),
			TokenEndpointAuthMethod: "client_secret_post",
			RedirectURIs:            []string{"https://poster.example/cb"},
			GrantTypes:              []string{"authorization_code", "client_credentials"},
			Scopes:                  []string{"openid", "docs:read"},
		},
		{
			ID: rsID, Name: "Docs API", SecretHash: mustHash(t, rsSecret),
			GrantTypes:    []string{"client_credentials"},
			Scopes:        []string{"docs:read"},
			Introspection: true,
		},
	}}
	cfg.ApplyDefaults()
	return cfg.Clients
}

// clock is the injected clock; tests move it forward.
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())).UTC() }
func (c *clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// env is a running provider on httptest.Server with a real SQLite store.
type env struct {
	t       testing.TB
	srv     *httptest.Server
	issuer  string
	p       *Provider
	st      *store.Store
	box     *seal.Box
	cfg     *config.Config
	journey *testJourney
	clock   *clock
}

type envOption func(*config.Config)

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	return newEnvOn(t, filepath.Join(t.TempDir(), "l.db"), opts...)
}

// newEnvOn is newEnv with the store at dbURL (SQLite file or PostgreSQL).
func newEnvOn(t testing.TB, dbURL string, opts ...envOption) *env {
	t.Helper()
	ctx := context.Background()
	box, err := seal.New(testKEK(t))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, dbURL, store.OpenOptions{MaxConnections: benchMaxConnections(t), AuditKey: box.Derive(store.AuditKeyPurpose)})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	pages, err := templates.Parse()
	if err != nil {
		t.Fatal(err)
	}

	var handler atomic.Pointer[http.ServeMux]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handler.Load().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	cfg := &config.Config{
		Issuer:  srv.URL,
		Clients: testClients(t),
	}
	cfg.Keys.Algorithms = []string{"RS256", "ES256"}
	for _, o := range opts {
		o(cfg)
	}
	cfg.ApplyDefaults()
	e := &env{t: t, srv: srv, issuer: srv.URL, st: st, box: box, cfg: cfg, clock: &clock{}}
	e.journey = newTestJourney(srv.URL)
	e.journey.st = st
	logs := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("provider log:\n%s", logs.String())
		}
	})
	p, err := New(ctx, Options{
		Config: cfg, Store: st, Box: box, Journey: e.journey, Pages: pages, Now: e.clock.Now,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.p = p
	mux := http.NewServeMux()
	p.Mount(mux)
	mux.HandleFunc("GET /test/login", e.journey.handleLogin)
	handler.Store(mux)

	if _, err := st.UserByID(ctx, aliceID); err == nil && os.Getenv("LANYARD_BENCH_SQLITE")+os.Getenv("LANYARD_BENCH_POSTGRES") != "" {
		return e // a benchmark's full database, seeded by an earlier run
	}
	e.seedUser(aliceID, aliceEmail, "Alice Example")
	e.seedUser(bobID, "bob@agency.example", "Bob Example")
	return e
}

func (e *env) seedUser(id, email, name string) {
	e.t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	if err := e.st.CreateUser(ctx, &store.User{
		ID: id, Username: email, Email: email, Name: name, State: store.UserActive,
		PasswordHash: "x", CreatedAt: now, UpdatedAt: now,
	}); err != nil {
		e.t.Fatalf("create user: %v", err)
	}
	for _, doc := range []string{"privacy", "terms"} {
		if err := e.st.Accept(ctx, store.Acceptance{UserID: id, Document: doc, Version: "2026-01", AcceptedAt: now}); err != nil {
			e.t.Fatalf("accept: %v", err)
		}
	}
}

// testJourney stands in for package flows at the authn seam: SignIn sends the
// browser to /test/login, which signs it in as whoever the test named in
// next (or shows a "sign-in page" when nobody is named) and redirects to the
// resume URL.
type testJourney struct {
	issuer string
	// st: SignOut revokes the session's tokens as flows does, which queues
	// its back-channel logouts.
	st *store.Store

	mu       sync.Mutex
	sessions map[string]authn.Browser
	// pending names a journey step pending for a user id (StepPending).
	pending  map[string]string
	next     *authn.Browser
	signIns  []authn.SignInRequest
	signOuts int
	// answer is what the stand-in answers on the consent page of a
	// request that asks for it (Consent or ConsentRequired), recorded
	// against the parked request as the journey does: store.ConsentGranted
	// (the default), store.ConsentDeclined, or "none" to resume without
	// an answer (a journey that skipped the page).
	answer string
	// consents counts the consent pages answered.
	consents int
}

const testCookie = "testsess"

func newTestJourney(issuer string) *testJourney {
	return &testJourney{issuer: issuer, sessions: map[string]authn.Browser{}, pending: map[string]string{}}
}

func (j *testJourney) StepPending(_ context.Context, userID string) (string, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.pending[userID], nil
}

// setPending makes step pending for the user ("" for none).
func (j *testJourney) setPending(userID, step string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.pending[userID] = step
}

func (j *testJourney) Browser(r *http.Request) (authn.Browser, error) {
	c, err := r.Cookie(testCookie)
	if err != nil {
		return authn.Browser{}, nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.sessions[c.Value], nil
}

func (j *testJourney) SignIn(w http.ResponseWriter, r *http.Request, req authn.SignInRequest) {
	j.mu.Lock()
	j.signIns = append(j.signIns, req)
	j.mu.Unlock()
	http.Redirect(w, r, "/test/login?resume="+url.QueryEscape(req.ResumeURL), http.StatusSeeOther)
}

// request is the SignIn request whose resume URL is resume.
func (j *testJourney) request(resume string) (authn.SignInRequest, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for i := len(j.signIns) - 1; i >= 0; i-- {
		if j.signIns[i].ResumeURL == resume {
			return j.signIns[i], true
		}
	}
	return authn.SignInRequest{}, false
}

// setAnswer sets what the consent page answers (see testJourney.answer).
func (j *testJourney) setAnswer(a string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.answer = a
}

func (j *testJourney) consentCount() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.consents
}

// consent answers the request's consent page when it has one, as the
// journey does: a remembered decision that covers the request stands for
// a page under ConsentRequired; an answer is recorded against the parked
// request, and a grant is remembered.
func (j *testJourney) consent(r *http.Request, req authn.SignInRequest, userID string) error {
	if !req.Consent && !req.ConsentRequired || j.st == nil || userID == "" {
		return nil
	}
	ctx := r.Context()
	if !req.Consent {
		c, err := j.st.ConsentOf(ctx, userID, req.ClientID)
		if err == nil && c.Covers(req.Scopes, req.Claims) {
			return nil
		}
	}
	j.mu.Lock()
	answer := cmp.Or(j.answer, store.ConsentGranted)
	if answer != "none" {
		j.consents++
	}
	j.mu.Unlock()
	if answer == "none" {
		return nil
	}
	if err := j.st.DecideAuthRequest(ctx, req.RequestID, userID, answer, time.Now()); err != nil {
		return err
	}
	if answer == store.ConsentGranted {
		return j.st.RememberConsent(ctx, store.Consent{UserID: userID, ClientID: req.ClientID, Scopes: req.Scopes, Claims: req.Claims})
	}
	return nil
}

func (j *testJourney) SignOut(w http.ResponseWriter, r *http.Request) (string, error) {
	c, err := r.Cookie(testCookie)
	if err != nil {
		return "", nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	b := j.sessions[c.Value]
	delete(j.sessions, c.Value)
	j.signOuts++
	http.SetCookie(w, &http.Cookie{Name: testCookie, Value: "", Path: "/", MaxAge: -1})
	if j.st != nil && b.SessionID != "" {
		if err := j.st.DeleteSession(r.Context(), c.Value); err != nil {
			return "", err
		}
		if err := j.st.RevokeOAuthBySession(r.Context(), b.SessionID); err != nil {
			return "", err
		}
	}
	return b.UserID, nil
}

// setNext names who the next visit to /test/login signs in (nil: nobody).
func (j *testJourney) setNext(b *authn.Browser) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.next = b
}

func (j *testJourney) lastSignIn() authn.SignInRequest {
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.signIns) == 0 {
		return authn.SignInRequest{}
	}
	return j.signIns[len(j.signIns)-1]
}

func (j *testJourney) signOutCount() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.signOuts
}

func (j *testJourney) signInCount() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.signIns)
}

func (j *testJourney) handleLogin(w http.ResponseWriter, r *http.Request) {
	resume := r.URL.Query().Get("resume")
	if !strings.HasPrefix(resume, j.issuer+"/") {
		http.Error(w, "resume URL not under the issuer", http.StatusBadRequest)
		return
	}
	j.mu.Lock()
	next := j.next
	j.mu.Unlock()
	if next == nil {
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "sign-in page")
		return
	}
	b := *next
	if b.AuthTime.IsZero() && b.SignedIn {
		b.AuthTime = time.Now().UTC()
	}
	id := randomHex()
	if b.SessionID == "" && b.SignedIn {
		sum := sha256.Sum256([]byte(id))
		b.SessionID = hex.EncodeToString(sum[:])
	}
	if j.st != nil && b.SessionID != "" {
		// The session's row, as flows keeps it: the provider records the
		// relying parties of a session only while it exists.
		err := j.st.CreateSession(r.Context(), &store.Session{ID: id, SID: b.SessionID, UserID: b.UserID, State: "signed-in"})
		if err != nil && !errors.Is(err, store.ErrConflict) {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	}
	j.mu.Lock()
	j.sessions[id] = b
	j.mu.Unlock()
	if req, ok := j.request(resume); ok {
		if err := j.consent(r, req, b.UserID); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	}
	http.SetCookie(w, &http.Cookie{Name: testCookie, Value: id, Path: "/"})
	http.Redirect(w, r, resume, http.StatusSeeOther)
}

var hexCounter atomic.Int64

func randomHex() string {
	sum := sha256.Sum256([]byte(time.Now().String() + string(rune(hexCounter.Add(1)))))
	return hex.EncodeToString(sum[:16])
}

func alice(amr ...string) *authn.Browser {
	if len(amr) == 0 {
		amr = []string{"pwd", "otp", "mfa"}
	}
	return &authn.Browser{SignedIn: true, UserID: aliceID, AMR: amr, ACR: "urn:lanyard:acr:mfa"}
}

// browser is a cookie-keeping user agent that follows redirects only within
// the issuer, so a test sees where Lanyard sends it (relying party, error).
type browser struct {
	t      testing.TB
	e      *env
	client *http.Client
}

func (e *env) newBrowser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: e.t, e: e, client: &http.Client{
		Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
		Timeout: 30 * time.Second,
	}}
}

// result is where the browser ended up: a page (status, body) or a redirect
// leaving the issuer (Location).
type result struct {
	status   int
	body     string
	location *url.URL
	header   http.Header
}

func (b *browser) get(rawURL string) result {
	b.t.Helper()
	return b.do(http.MethodGet, rawURL, nil)
}

func (b *browser) post(rawURL string, form url.Values) result {
	b.t.Helper()
	return b.do(http.MethodPost, rawURL, form)
}

func (b *browser) do(method, rawURL string, form url.Values) result {
	b.t.Helper()
	for range 20 {
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequest(method, rawURL, body)
		if err != nil {
			b.t.Fatalf("request %s: %v", rawURL, err)
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", b.e.issuer)
		}
		resp, err := b.client.Do(req)
		if err != nil {
			b.t.Fatalf("%s %s: %v", method, rawURL, err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 300 || resp.StatusCode >= 400 {
			return result{status: resp.StatusCode, body: string(data), header: resp.Header}
		}
		loc, err := resp.Location()
		if err != nil {
			b.t.Fatalf("redirect without Location from %s", rawURL)
		}
		if !strings.HasPrefix(loc.String(), b.e.issuer+"/") {
			return result{status: resp.StatusCode, location: loc, header: resp.Header, body: string(data)}
		}
		method, rawURL, form = http.MethodGet, loc.String(), nil
	}
	b.t.Fatalf("too many redirects from %s", rawURL)
	return result{}
}

// rp is a relying party built on go-oidc and x/oauth2, as real ones are.
type rp struct {
	e        *env
	ctx      context.Context
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
	oauth    oauth2.Config
}

func (e *env) newRP(clientID, secret, redirect string, scopes ...string) *rp {
	e.t.Helper()
	ctx := oidc.ClientContext(context.Background(), e.srv.Client())
	ctx = context.WithValue(ctx, oauth2.HTTPClient, e.srv.Client())
	prov, err := oidc.NewProvider(ctx, e.issuer)
	if err != nil {
		e.t.Fatalf("discovery: %v", err)
	}
	if len(scopes) == 0 {
		scopes = []string{oidc.ScopeOpenID, "email", "profile", oidc.ScopeOfflineAccess}
	}
	ep := prov.Endpoint()
	if secret == "" {
		ep.AuthStyle = oauth2.AuthStyleInParams
	} else {
		ep.AuthStyle = oauth2.AuthStyleInHeader
	}
	return &rp{
		e: e, ctx: ctx, provider: prov,
		verifier: prov.Verifier(&oidc.Config{ClientID: clientID}),
		oauth: oauth2.Config{
			ClientID: clientID, ClientSecret: secret, Endpoint: ep,
			RedirectURL: redirect, Scopes: scopes,
		},
	}
}

// login is the happy path: authorize with PKCE and a nonce, sign in as who,
// and return the callback (code, state, iss).
type authRun struct {
	state, nonce, verifier string
	callback               *url.URL
}

func (r *rp) authorize(b *browser, extra ...oauth2.AuthCodeOption) authRun {
	r.e.t.Helper()
	run := authRun{state: randomHex(), nonce: randomHex(), verifier: oauth2.GenerateVerifier()}
	opts := append([]oauth2.AuthCodeOption{oidc.Nonce(run.nonce), oauth2.S256ChallengeOption(run.verifier)}, extra...)
	res := b.get(r.oauth.AuthCodeURL(run.state, opts...))
	if res.location == nil {
		r.e.t.Fatalf("authorize did not return to the relying party: status %d body %q", res.status, truncate(res.body))
	}
	run.callback = res.location
	q := res.location.Query()
	if q.Get("error") != "" {
		r.e.t.Fatalf("authorize error: %s (%s)", q.Get("error"), q.Get("error_description"))
	}
	if q.Get("state") != run.state {
		r.e.t.Fatalf("state = %q, want %q", q.Get("state"), run.state)
	}
	if q.Get("iss") != r.e.issuer {
		r.e.t.Fatalf("iss = %q, want %q (RFC 9207)", q.Get("iss"), r.e.issuer)
	}
	return run
}

func (r *rp) exchange(run authRun) (*oauth2.Token, *oidc.IDToken) {
	r.e.t.Helper()
	tok, err := r.oauth.Exchange(r.ctx, run.callback.Query().Get("code"), oauth2.VerifierOption(run.verifier))
	if err != nil {
		r.e.t.Fatalf("exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := r.verifier.Verify(r.ctx, raw)
	if err != nil {
		r.e.t.Fatalf("verify id token: %v", err)
	}
	if idt.Nonce != run.nonce {
		r.e.t.Fatalf("nonce = %q, want %q", idt.Nonce, run.nonce)
	}
	return tok, idt
}

// postForm sends a form to an endpoint with optional Basic credentials.
func (e *env) postForm(path string, form url.Values, user, pass string) (*http.Response, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.issuer+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var body map[string]any
	_ = json.Unmarshal(data, &body)
	return resp, body
}

// introspect asks as the resource server, which may see every client's
// tokens.
func (e *env) introspect(token string) map[string]any {
	e.t.Helper()
	resp, body := e.postForm(pathIntrospect, url.Values{"token": {token}}, rsID, rsSecret)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("introspect: status %d %v", resp.StatusCode, body)
	}
	return body
}

func (e *env) active(token string) bool {
	e.t.Helper()
	a, _ := e.introspect(token)["active"].(bool)
	return a
}

// syncBuffer collects the provider's log; it is shown when a test fails.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func truncate(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}
