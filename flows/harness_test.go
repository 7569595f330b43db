package flows

// The journey's test harness: the real Handler on an httptest.Server with a
// real SQLite store in t.TempDir(), a cookie-jar client that does not follow
// redirects by itself (so every 303 can be asserted), an injected clock, and
// a minimal stand-in for the provider at /test/authorize (parks a request via
// SignIn) and /test/done (the resume URL: reports Browser as JSON).

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/flows/otp"
	"github.com/lanyard-idp/lanyard/flows/password"
	"github.com/lanyard-idp/lanyard/provider/authn"
	"github.com/lanyard-idp/lanyard/provider/store"
	"github.com/lanyard-idp/lanyard/provider/store/seal"
	"github.com/lanyard-idp/lanyard/templates"

	"net/http/httptest"
)

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	t     testing.TB
	h     *Handler
	st    *store.Store
	box   *seal.Box
	cfg   *config.Config
	srv   *httptest.Server
	clock *testClock

	mu     sync.Mutex
	delays []time.Duration
}

// newEnv starts a journey server. tweak adjusts the configuration before the
// handler is built.
func newEnv(t testing.TB, tweak ...func(*config.Config)) *env {
	t.Helper()
	return newEnvAt(t, filepath.Join(t.TempDir(), "lanyard.db"), tweak...)
}

// newEnvAt is newEnv on the database at dbURL (a SQLite path or a
// postgres:// URL).
func newEnvAt(t testing.TB, dbURL string, tweak ...func(*config.Config)) *env {
	t.Helper()
	ctx := t.Context()
	box, err := seal.New(seal.NewKey())
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, dbURL, store.OpenOptions{AuditKey: box.Derive(store.AuditKeyPurpose)})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	pages, err := templates.Parse()
	if err != nil {
		t.Fatalf("parse templates: %v", err)
	}
	e := &env{t: t, st: st, box: box, clock: &testClock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}}
	mux := http.NewServeMux()
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)

	e.cfg = &config.Config{
		Issuer: e.srv.URL,
		Dev:    true,
		Documents: []config.Document{
			{ID: "privacy", Title: "Privacy policy", Version: "2026-01"},
			{ID: "terms", Title: "Terms of use", Version: "2026-01"},
		},
		Journey: config.Journey{DisplayName: "Lanyard", Environment: "Test"},
	}
	for _, f := range tweak {
		f(e.cfg)
	}
	e.cfg.ApplyDefaults()
	e.h, err = New(ctx, Options{Config: e.cfg, Store: st, Box: box, Pages: pages, Now: e.clock.Now})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	// The journey's tests look at every failure's own audit event; the
	// aggregation of a flood has its own tests (auditflood_test.go).
	e.h.failures = newFailureGate(1 << 30)
	// Keep the tests fast, but remember what a guesser would have waited.
	e.h.sleep = func(_ context.Context, d time.Duration) {
		e.mu.Lock()
		e.delays = append(e.delays, d)
		e.mu.Unlock()
	}
	e.h.Mount(mux)
	// The stand-in provider parks each request as the provider does (the
	// consent page records its answer there): consent=always|required,
	// scopes and claims (space-separated) and acr (acr_values, weakest
	// first) say what it asks besides a sign-in.
	mux.HandleFunc("GET /test/authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		id := "req-" + q.Get("n")
		now := e.clock.Now()
		if _, err := e.st.AuthRequestByID(r.Context(), id, now); err != nil {
			_ = e.st.DeleteAuthRequest(r.Context(), id) // expired
			if err := e.st.CreateAuthRequest(r.Context(), &store.AuthRequest{ID: id, ClientID: "docs-portal-staging",
				Query: "n=" + q.Get("n"), CreatedAt: now, ExpiresAt: now.Add(30 * time.Minute)}); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
		}
		e.h.SignIn(w, r, authn.SignInRequest{
			ResumeURL:       e.srv.URL + "/test/done?n=" + url.QueryEscape(q.Get("n")),
			RequestID:       id,
			ClientID:        "docs-portal-staging",
			ClientName:      "Docs portal (staging)",
			ForceLogin:      q.Get("force") == "1",
			LoginHint:       q.Get("hint"),
			RequestedAt:     now,
			Consent:         q.Get("consent") == "always",
			ConsentRequired: q.Get("consent") == "required",
			Scopes:          strings.Fields(q.Get("scopes")),
			Claims:          strings.Fields(q.Get("claims")),
			ACRValues:       strings.Fields(q.Get("acr")),
		})
	})
	mux.HandleFunc("GET /test/done", func(w http.ResponseWriter, r *http.Request) {
		b, err := e.h.Browser(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		d := done{Browser: b, N: r.URL.Query().Get("n")}
		if a, err := e.st.AuthRequestByID(r.Context(), "req-"+d.N, e.clock.Now()); err == nil {
			d.Decision, d.DecidedBy = a.Decision, a.DecidedBy
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(d)
	})
	return e
}

// done is what /test/done reports.
type done struct {
	authn.Browser
	N string
	// The consent page's answer recorded on the parked request.
	Decision, DecidedBy string
}

// seedUser creates a user with a password; state invited with an initial
// password unless active is set.
func (e *env) seedUser(username, pw string, invited bool) *store.User {
	e.t.Helper()
	hash, err := password.Hash(pw)
	if err != nil {
		e.t.Fatal(err)
	}
	now := e.clock.Now()
	u := &store.User{
		ID:           "u-" + strings.NewReplacer("@", "-", ".", "-").Replace(username),
		Username:     username,
		Email:        username,
		Name:         "Alice Officer",
		State:        store.UserActive,
		PasswordHash: hash,
		CreatedAt:    now,
		UpdatedAt:    now,
	}
	if invited {
		u.State, u.PasswordInitial, u.InviteExpiresAt = store.UserInvited, true, now.Add(30*24*time.Hour)
	}
	if err := e.st.CreateUser(e.t.Context(), u); err != nil {
		e.t.Fatalf("create user: %v", err)
	}
	return u
}

// withoutMFA is a journey with no enrolment step: a password alone signs
// in, which keeps tests about sessions and throttling short.
func withoutMFA(c *config.Config) {
	c.Journey.Steps = []string{StepChangePassword, StepPrivacy, StepTerms}
}

// seedReady creates an active user who has accepted the current documents.
func (e *env) seedReady(username, pw string) *store.User {
	e.t.Helper()
	u := e.seedUser(username, pw, false)
	for _, d := range e.cfg.Documents {
		if err := e.st.Accept(e.t.Context(), store.Acceptance{UserID: u.ID, Document: d.ID, Version: d.Version, AcceptedAt: e.clock.Now()}); err != nil {
			e.t.Fatal(err)
		}
	}
	return u
}

func (e *env) user(id string) *store.User {
	e.t.Helper()
	u, err := e.st.UserByID(e.t.Context(), id)
	if err != nil {
		e.t.Fatalf("load user: %v", err)
	}
	return u
}

func (e *env) events(prefix string) []string {
	e.t.Helper()
	evs, err := e.st.Audit(e.t.Context(), store.AuditFilter{Event: prefix})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, ev := range evs {
		out = append(out, string(ev.Event))
	}
	return out
}

func (e *env) countEvents(name store.Event) int {
	n := 0
	for _, ev := range e.events("") {
		if ev == string(name) {
			n++
		}
	}
	return n
}

// browser is one cookie jar.
type browser struct {
	t   testing.TB
	e   *env
	c   *http.Client
	jar http.CookieJar
	// header is added to every request.
	header http.Header
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: e.t, e: e, jar: jar, header: http.Header{}, c: &http.Client{
		Jar:           jar,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// resp is one answer, with the page parsed when it is HTML.
type resp struct {
	status   int
	location string
	header   http.Header
	body     string
	doc      *html.Node
	url      string
}

func (b *browser) do(method, path string, form url.Values) *resp {
	b.t.Helper()
	target := path
	if !strings.HasPrefix(path, "http") {
		target = b.e.srv.URL + path
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range b.header {
		req.Header[k] = v
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	r := &resp{status: res.StatusCode, location: res.Header.Get("Location"), header: res.Header, body: string(data), url: target}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		r.doc, err = html.Parse(strings.NewReader(r.body))
		if err != nil {
			b.t.Fatalf("parse HTML of %s: %v", path, err)
		}
	}
	return r
}

func (b *browser) get(path string) *resp { b.t.Helper(); return b.do("GET", path, nil) }

func (b *browser) post(path string, form url.Values) *resp {
	b.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	return b.do("POST", path, form)
}

// follow follows 303s (and other redirects) with GETs until a page or the
// resume endpoint answers.
func (b *browser) follow(r *resp) *resp {
	b.t.Helper()
	for i := 0; i < 20 && r.status >= 300 && r.status < 400; i++ {
		loc, err := url.Parse(r.url)
		if err != nil {
			b.t.Fatal(err)
		}
		next, err := loc.Parse(r.location)
		if err != nil {
			b.t.Fatal(err)
		}
		r = b.get(next.String())
	}
	return r
}

func (b *browser) open(path string) *resp { b.t.Helper(); return b.follow(b.get(path)) }

// step returns the data-step of the page's journey form ("" when none).
func (r *resp) step() string {
	if f := r.form(); f != nil {
		return attr(f, "data-step")
	}
	return ""
}

func (r *resp) form() *html.Node {
	if r.doc == nil {
		return nil
	}
	return find(r.doc, func(n *html.Node) bool { return n.Data == "form" && attr(n, "data-step") != "" })
}

// submit fills the page's journey form (hidden inputs plus fields) and posts
// it to its action, without following the answer.
func (b *browser) submit(r *resp, fields map[string]string) *resp {
	b.t.Helper()
	f := r.form()
	if f == nil {
		b.t.Fatalf("no journey form on the page (status %d): %s", r.status, text(r.doc))
	}
	vals := url.Values{}
	for _, in := range findAll(f, func(n *html.Node) bool { return n.Data == "input" && attr(n, "type") == "hidden" }) {
		vals.Set(attr(in, "name"), attr(in, "value"))
	}
	for k, v := range fields {
		vals.Set(k, v)
	}
	if attr(f, "method") != "post" {
		b.t.Fatalf("form method %q", attr(f, "method"))
	}
	return b.post(attr(f, "action"), vals)
}

// done reads the /test/done report.
func (b *browser) done(r *resp) done {
	b.t.Helper()
	if !strings.Contains(r.url, "/test/done") || r.status != 200 {
		b.t.Fatalf("not resumed: status %d at %s (step %q): %s", r.status, r.url, r.step(), text(r.doc))
	}
	var d done
	if err := json.Unmarshal([]byte(r.body), &d); err != nil {
		b.t.Fatal(err)
	}
	return d
}

func (b *browser) cookie() *http.Cookie {
	u, _ := url.Parse(b.e.srv.URL)
	for _, c := range b.jar.Cookies(u) {
		if c.Name == b.e.h.cookies.name {
			return c
		}
	}
	return nil
}

func (b *browser) setCookie(value string) {
	u, _ := url.Parse(b.e.srv.URL)
	b.jar.SetCookies(u, []*http.Cookie{{Name: b.e.h.cookies.name, Value: value, Path: "/"}})
}

// HTML helpers.

func attr(n *html.Node, k string) string {
	for _, a := range n.Attr {
		if a.Key == k {
			return a.Val
		}
	}
	return ""
}

func findAll(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && match(n) {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	if n != nil {
		walk(n)
	}
	return out
}

func find(n *html.Node, match func(*html.Node) bool) *html.Node {
	if all := findAll(n, match); len(all) > 0 {
		return all[0]
	}
	return nil
}

func byID(n *html.Node, id string) *html.Node {
	return find(n, func(n *html.Node) bool { return attr(n, "id") == id })
}

func text(n *html.Node) string {
	if n == nil {
		return ""
	}
	var sb strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			sb.WriteString(n.Data + " ")
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(sb.String()), " ")
}

// errorSummary is the text of the role=alert summary ("" when none).
func (r *resp) errorSummary() string {
	if r.doc == nil {
		return ""
	}
	return text(find(r.doc, func(n *html.Node) bool { return attr(n, "role") == "alert" }))
}

// fieldError is the message tied to a field by aria-describedby, checking
// that the field is marked invalid.
func (r *resp) fieldError(t *testing.T, name string) string {
	t.Helper()
	in := find(r.doc, func(n *html.Node) bool { return n.Data == "input" && attr(n, "name") == name })
	if in == nil {
		t.Fatalf("no field %q", name)
	}
	return r.errorAt(t, attr(in, "id"))
}

func (r *resp) buttonText() string {
	return text(find(r.form(), func(n *html.Node) bool { return n.Data == "button" }))
}

// checkPage asserts what every journey page promises: product and
// environment shown, one labelled control per input, the error summary as an
// alert when there are errors, and the security headers.
func checkPage(t testing.TB, r *resp) {
	t.Helper()
	if r.doc == nil {
		t.Fatalf("not a page: status %d", r.status)
	}
	if !strings.Contains(text(r.doc), "Lanyard") || !strings.Contains(text(r.doc), "Test") {
		t.Errorf("product or environment missing")
	}
	for _, in := range findAll(r.doc, func(n *html.Node) bool { return n.Data == "input" && attr(n, "type") != "hidden" }) {
		id := attr(in, "id")
		if id == "" || find(r.doc, func(n *html.Node) bool { return n.Data == "label" && attr(n, "for") == id }) == nil {
			t.Errorf("input %q has no label", attr(in, "name"))
		}
	}
	if r.status >= 400 && r.errorSummary() == "" {
		t.Errorf("status %d without an error summary", r.status)
	}
	if got := r.header.Get("Content-Security-Policy"); got != templates.CSP {
		t.Errorf("CSP = %q", got)
	}
	if got := r.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q", got)
	}
}

// codeAt is the authenticator app.
func codeAt(secret string, t time.Time) string {
	s, err := decodeSecret(secret)
	if err != nil {
		panic(err)
	}
	return otp.Code(s, t)
}

func decodeSecret(s string) ([]byte, error) {
	s = strings.ReplaceAll(strings.ToUpper(s), " ", "")
	return b32.DecodeString(s)
}

func mustStatus(t testing.TB, r *resp, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("status %d, want %d (location %q, step %q): %s", r.status, want, r.location, r.step(), text(r.doc))
	}
}

func mustRedirect(t testing.TB, r *resp, to string) {
	t.Helper()
	if r.status != http.StatusSeeOther || r.location != to {
		t.Fatalf("got %d to %q, want 303 to %q (%s)", r.status, r.location, to, text(r.doc))
	}
}

func mustStep(t testing.TB, r *resp, step string) {
	t.Helper()
	if got := r.step(); got != step {
		t.Fatalf("at step %q (status %d, %s), want %q: %s", got, r.status, r.url, step, text(r.doc))
	}
}

// wrongCode is a well-formed code that none of the accepted steps has.
func wrongCode(secret string, now time.Time) string {
	valid := map[string]bool{}
	for _, d := range []time.Duration{-30 * time.Second, 0, 30 * time.Second} {
		valid[codeAt(secret, now.Add(d))] = true
	}
	for i := 0; ; i++ {
		c := fmt.Sprintf("%06d", i*7919%1000000)
		if !valid[c] {
			return c
		}
	}
}

// frozen is a copy of the browser that sends its current cookie on every
// request and never takes a new one.
func (b *browser) frozen() *browser {
	c := b.cookie()
	f := &browser{t: b.t, e: b.e, jar: nil, header: http.Header{}, c: &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	f.header.Set("Cookie", c.Name+"="+c.Value)
	return f
}

// sessionKey is the stable key (store.Session.SID) of the browser's session:
// what the provider binds tokens to and gives as the sid claim.
func (b *browser) sessionKey() string {
	b.t.Helper()
	x, err := b.e.st.SessionByID(b.t.Context(), b.rawSessionID(), b.e.clock.Now())
	if err != nil {
		b.t.Fatalf("load the browser's session: %v", err)
	}
	return x.SID
}

// deviceKey is the throttle key of the browser's device cookie for the
// account userID, failing the test when the browser is not known to it.
func (b *browser) deviceKey(userID string) string {
	b.t.Helper()
	req, _ := http.NewRequest("GET", b.e.srv.URL, nil)
	u, _ := url.Parse(b.e.srv.URL)
	for _, c := range b.jar.Cookies(u) {
		req.AddCookie(c)
	}
	key := b.e.h.knownDevice(req, userID)
	if key == "" {
		b.t.Fatal("the browser is not known to the account (no device cookie)")
	}
	return key
}

// rawSessionID decodes the browser's cookie as the server would.
func (b *browser) rawSessionID() string {
	req, _ := http.NewRequest("GET", b.e.srv.URL, nil)
	if c := b.cookie(); c != nil {
		req.AddCookie(c)
	}
	return b.e.h.cookies.read(req)
}
