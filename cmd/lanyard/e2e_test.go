package main

// End-to-end tests: the real binary's wiring (newServer) on a real port with a
// real SQLite file, the real `lanyard invite` command, the real journey pages
// driven by their data-step markers and field names, and go-oidc as the
// relying party.

import (
	"bytes"
	"context"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/net/html"
	"golang.org/x/oauth2"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/flows/otp"
)

// lanyard is a running Lanyard for one test.
type lanyard struct {
	t      *testing.T
	issuer string
	data   string
	srv    *server
	env    env
}

func startLanyard(t *testing.T) *lanyard {
	t.Helper()
	return startLanyardWith(t, devFlags, nil)
}

// devFlags are the flags of `lanyard serve --dev` at issuer, listening on
// addr, with its data in data.
func devFlags(issuer, addr, data string) common {
	return common{dev: true, data: data, issuer: issuer, addr: addr}
}

// startLanyardWith starts Lanyard with the configuration the flags from
// flags give for its issuer, listen address and data dir, then changed by
// edit (when not nil).
func startLanyardWith(t *testing.T, flags func(issuer, addr, data string) common, edit func(*config.Config)) *lanyard {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	issuer := "http://" + ts.Listener.Addr().String()
	l := &lanyard{t: t, issuer: issuer, data: t.TempDir()}
	l.env = env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }}
	c := flags(issuer, ts.Listener.Addr().String(), l.data)
	cfg, err := c.load(l.env)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(cfg)
	}
	d, err := open(t.Context(), cfg, l.env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	log := newLogger(cfg, io.Discard)
	mailer, _, err := newMailer(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := newServer(t.Context(), d, mailer, log)
	if err != nil {
		t.Fatal(err)
	}
	l.srv = srv
	ts.Config.Handler = srv
	ts.Start()
	t.Cleanup(ts.Close)
	return l
}

// lanyardCmd runs a lanyard command in-process against this server's data.
func (l *lanyard) cmd(args ...string) (string, error) {
	var out, errb bytes.Buffer
	e := l.env
	e.stdout, e.stderr = &out, &errb
	args = append(args, "--dev", "--data", l.data, "--issuer", l.issuer)
	err := run(context.Background(), args, e)
	if err != nil {
		return out.String() + errb.String(), err
	}
	return out.String(), nil
}

type invitation struct {
	Username        string `json:"username"`
	InitialPassword string `json:"initial_password"`
	ExpiresAt       string `json:"expires_at"`
}

func (l *lanyard) invite(email string) invitation {
	l.t.Helper()
	out, err := l.cmd("invite", email, "--name", "Alex Officer", "--json", "--show-password")
	if err != nil {
		l.t.Fatalf("invite: %v\n%s", err, out)
	}
	var inv invitation
	if err := json.Unmarshal([]byte(out), &inv); err != nil {
		l.t.Fatalf("invite --json printed %q: %v", out, err)
	}
	return inv
}

// browser is an officer's browser: a cookie jar that does not follow
// redirects on its own, so the test sees each hop.
type browser struct {
	t      *testing.T
	c      *http.Client
	origin string
}

func newBrowser(t *testing.T, issuer string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, origin: issuer, c: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// page is a journey page the browser stopped on.
type page struct {
	url    *url.URL
	status int
	doc    *html.Node
	step   string
	form   *html.Node
}

// visit follows redirects from target until it reaches a page or a URL
// starting with stopPrefix (the relying party's callback).
func (b *browser) visit(method, target string, form url.Values, stopPrefix string) (*page, *url.URL) {
	b.t.Helper()
	for range 30 {
		var req *http.Request
		if method == http.MethodPost {
			req, _ = http.NewRequest(method, target, strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", b.origin)
		} else {
			req, _ = http.NewRequest(method, target, nil)
		}
		resp, err := b.c.Do(req)
		if err != nil {
			b.t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			b.t.Fatalf("%s %s: status %d: %s", method, target, resp.StatusCode, body)
		}
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
			if err != nil {
				b.t.Fatal(err)
			}
			if stopPrefix != "" && strings.HasPrefix(loc.String(), stopPrefix) {
				return nil, loc
			}
			method, target, form = http.MethodGet, loc.String(), nil
			continue
		}
		doc, err := html.Parse(bytes.NewReader(body))
		if err != nil {
			b.t.Fatal(err)
		}
		p := &page{url: resp.Request.URL, status: resp.StatusCode, doc: doc}
		p.form = find(doc, func(n *html.Node) bool { return n.Data == "form" && attr(n, "data-step") != "" })
		if p.form != nil {
			p.step = attr(p.form, "data-step")
		}
		return p, nil
	}
	b.t.Fatal("too many redirects")
	return nil, nil
}

// submit posts the page's journey form with its hidden fields plus fields.
func (b *browser) submit(p *page, fields map[string]string, stopPrefix string) (*page, *url.URL) {
	b.t.Helper()
	if p.form == nil {
		b.t.Fatalf("no journey form on %s: %s", p.url, text(p.doc))
	}
	vals := url.Values{}
	walk(p.form, func(n *html.Node) {
		if n.Data == "input" && attr(n, "type") == "hidden" && attr(n, "name") != "" {
			vals.Set(attr(n, "name"), attr(n, "value"))
		}
	})
	for k, v := range fields {
		vals.Set(k, v)
	}
	action, _ := p.url.Parse(attr(p.form, "action"))
	return b.visit(http.MethodPost, action.String(), vals, stopPrefix)
}

func walk(n *html.Node, f func(*html.Node)) {
	if n.Type == html.ElementNode {
		f(n)
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, f)
	}
}

func find(n *html.Node, match func(*html.Node) bool) (found *html.Node) {
	walk(n, func(c *html.Node) {
		if found == nil && match(c) {
			found = c
		}
	})
	return found
}

func attr(n *html.Node, k string) string {
	for _, a := range n.Attr {
		if a.Key == k {
			return a.Val
		}
	}
	return ""
}

func text(n *html.Node) string {
	var sb strings.Builder
	var rec func(*html.Node)
	rec = func(n *html.Node) {
		if n.Type == html.TextNode {
			sb.WriteString(n.Data + " ")
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			rec(c)
		}
	}
	rec(n)
	return strings.Join(strings.Fields(sb.String()), " ")
}

func byID(doc *html.Node, id string) string {
	n := find(doc, func(n *html.Node) bool { return attr(n, "id") == id })
	if n == nil {
		return ""
	}
	return strings.ReplaceAll(strings.Join(strings.Fields(text(n)+attr(n, "value")), ""), "-", "")
}

func byClass(doc *html.Node, class string) []string {
	var out []string
	walk(doc, func(n *html.Node) {
		if strings.Contains(" "+attr(n, "class")+" ", " "+class+" ") {
			out = append(out, strings.TrimSpace(text(n)))
		}
	})
	return out
}

// relyingParty is a go-oidc client of one of the dev clients.
type relyingParty struct {
	cfg      oauth2.Config
	verifier *oidc.IDTokenVerifier
	provider *oidc.Provider
}

func newRP(t *testing.T, issuer, id, secret, redirect string) *relyingParty {
	t.Helper()
	p, err := oidc.NewProvider(t.Context(), issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	return &relyingParty{provider: p, verifier: p.Verifier(&oidc.Config{ClientID: id}), cfg: oauth2.Config{
		ClientID: id, ClientSecret: secret, Endpoint: p.Endpoint(), RedirectURL: redirect,
		Scopes: []string{oidc.ScopeOpenID, "email", "profile", oidc.ScopeOfflineAccess}}}
}

type authAttempt struct{ url, state, nonce, verifier string }

func (rp *relyingParty) start(opts ...oauth2.AuthCodeOption) authAttempt {
	a := authAttempt{state: fmt.Sprint(time.Now().UnixNano()), nonce: fmt.Sprint("n", time.Now().UnixNano()), verifier: oauth2.GenerateVerifier()}
	opts = append([]oauth2.AuthCodeOption{oidc.Nonce(a.nonce), oauth2.S256ChallengeOption(a.verifier)}, opts...)
	a.url = rp.cfg.AuthCodeURL(a.state, opts...)
	return a
}

type idClaims struct {
	Email    string            `json:"email"`
	Name     string            `json:"name"`
	AuthTime int64             `json:"auth_time"`
	AMR      []string          `json:"amr"`
	ACR      string            `json:"acr"`
	Policies map[string]string `json:"lanyard_policies"`
}

func (rp *relyingParty) finish(t *testing.T, a authAttempt, cb *url.URL) (*oauth2.Token, idClaims) {
	t.Helper()
	if cb == nil {
		t.Fatal("the journey did not return to the relying party")
	}
	q := cb.Query()
	if q.Get("error") != "" {
		t.Fatalf("authorization error %s: %s", q.Get("error"), q.Get("error_description"))
	}
	if q.Get("state") != a.state {
		t.Fatalf("state %q, want %q", q.Get("state"), a.state)
	}
	tok, err := rp.cfg.Exchange(t.Context(), q.Get("code"), oauth2.VerifierOption(a.verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := rp.verifier.Verify(t.Context(), raw)
	if err != nil {
		t.Fatalf("verify id token: %v", err)
	}
	if idt.Nonce != a.nonce {
		t.Fatalf("nonce %q, want %q", idt.Nonce, a.nonce)
	}
	var c idClaims
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	return tok, c
}

const newPassword = "Quiet-harbour-lantern-97"

// TestFirstLoginJourney walks onboarding-guide.md end to end: invitation,
// the onboarding email, username, initial password, authenticator app,
// recovery codes, new password, Privacy policy, Terms of use, tokens; then a
// later sign-in with TOTP, single sign-on to the second portal, and a sign-in
// with a recovery code.
func TestFirstLoginJourney(t *testing.T) {
	l := startLanyard(t)
	inv := l.invite("Officer@Agency.example")
	if inv.Username != "officer@agency.example" || len(inv.InitialPassword) < 16 {
		t.Fatalf("invitation %+v", inv)
	}
	mailBody := readOutbox(t, filepath.Join(l.data, "outbox"))
	for _, want := range []string{inv.Username, inv.InitialPassword, l.issuer + "/signin"} {
		if !strings.Contains(mailBody, want) {
			t.Errorf("onboarding email lacks %q", want)
		}
	}

	staging := newRP(t, l.issuer, "docs-portal-staging", "staging-secret", "http://localhost:9001/callback")
	b := newBrowser(t, l.issuer)
	a := staging.start()
	steps, secret, recovery, cb := firstSignIn(t, b, inv, a.url, "http://localhost:9001/")
	want := "identify,password,mfa-enrol,recovery-codes,change-password,privacy,terms"
	if got := strings.Join(steps, ","); got != want {
		t.Fatalf("journey steps\n got %s\nwant %s", got, want)
	}
	if cb.Query().Get("iss") != l.issuer {
		t.Errorf("iss in authorization response = %q", cb.Query().Get("iss"))
	}
	if len(recovery) != 10 {
		t.Fatalf("%d recovery codes shown, want 10", len(recovery))
	}
	tok, c := staging.finish(t, a, cb)
	if c.Email != inv.Username || c.AuthTime == 0 || !contains(c.AMR, "pwd") || !contains(c.AMR, "otp") {
		t.Errorf("ID token claims %+v", c)
	}
	if c.Policies["privacy"] == "" || c.Policies["terms"] == "" {
		t.Errorf("accepted policy versions missing from the ID token: %+v", c.Policies)
	}
	ui, err := staging.provider.UserInfo(t.Context(), oauth2.StaticTokenSource(tok))
	if err != nil || ui.Email != inv.Username {
		t.Fatalf("userinfo %+v, %v", ui, err)
	}

	// Single sign-on: the production portal gets a code with no page shown.
	prod := newRP(t, l.issuer, "docs-portal-production", "production-secret", "http://localhost:9002/callback")
	a2 := prod.start()
	p, cb := b.visit("GET", a2.url, nil, "http://localhost:9002/")
	if p != nil {
		t.Fatalf("SSO showed a page: %s", p.step)
	}
	prod.finish(t, a2, cb)

	// Sign out everywhere from the account page: the SSO session ends and the
	// relying party's refresh token stops working.
	acct, _ := b.visit("GET", l.issuer+"/account", nil, "")
	form := find(acct.doc, func(n *html.Node) bool { return n.Data == "form" && attr(n, "data-account") == "sign-out-everywhere" })
	if form == nil {
		t.Fatalf("no sign-out-everywhere form on /account: %s", text(acct.doc))
	}
	action, _ := acct.url.Parse(attr(form, "action"))
	b.visit(http.MethodPost, action.String(), url.Values{}, "")
	if _, err := staging.cfg.TokenSource(t.Context(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("refresh after sign-out everywhere: %v, want invalid_grant", err)
	}
	if p, _ := b.visit("GET", staging.start().url, nil, "http://localhost:9001/"); p == nil || p.step != "identify" {
		t.Errorf("after sign-out everywhere the browser is still signed in")
	}

	// A later sign-in in a fresh browser: username, password, TOTP, nothing else.
	time.Sleep(time.Until(time.Now().Truncate(30 * time.Second).Add(30*time.Second + 100*time.Millisecond)))
	b2 := newBrowser(t, l.issuer)
	a3 := staging.start()
	p, _ = b2.visit("GET", a3.url, nil, "http://localhost:9001/")
	steps = nil
	for p != nil {
		steps = append(steps, p.step)
		switch p.step {
		case "identify":
			p, cb = b2.submit(p, map[string]string{"username": inv.Username}, "http://localhost:9001/")
		case "password":
			p, cb = b2.submit(p, map[string]string{"username": inv.Username, "password": newPassword}, "http://localhost:9001/")
		case "mfa-challenge":
			p, cb = b2.submit(p, map[string]string{"code": totpNow(t, secret)}, "http://localhost:9001/")
		default:
			t.Fatalf("unexpected step %q on a later sign-in", p.step)
		}
	}
	if got := strings.Join(steps, ","); got != "identify,password,mfa-challenge" {
		t.Fatalf("later sign-in steps %s", got)
	}
	staging.finish(t, a3, cb)

	// A recovery code works once as the second factor.
	for i, wantOK := range []bool{true, false} {
		b3 := newBrowser(t, l.issuer)
		a4 := staging.start()
		p, _ = b3.visit("GET", a4.url, nil, "http://localhost:9001/")
		p, _ = b3.submit(p, map[string]string{"username": inv.Username}, "")
		p, _ = b3.submit(p, map[string]string{"username": inv.Username, "password": newPassword}, "")
		if p == nil || p.step != "mfa-challenge" {
			t.Fatalf("attempt %d: expected the second-factor page", i)
		}
		p, cb = b3.submit(p, map[string]string{"code": recovery[0]}, "http://localhost:9001/")
		if wantOK {
			staging.finish(t, a4, cb)
		} else if cb != nil || p == nil || p.step != "mfa-challenge" {
			t.Fatalf("a used recovery code was accepted again")
		}
	}
}

// firstSignIn walks an invited officer's first sign-in from the
// authorization request at authURL to the relying party's callback (under
// prefix): the steps shown, the authenticator's secret, the recovery codes.
func firstSignIn(t *testing.T, b *browser, inv invitation, authURL, prefix string) (steps []string, secret string, recovery []string, cb *url.URL) {
	t.Helper()
	p, _ := b.visit("GET", authURL, nil, prefix)
	w := walkFirstSignIn(t, b, p, inv, prefix, nil)
	return w.steps, w.secret, w.recovery, w.cb
}

// firstWalk is what an officer's first sign-in showed.
type firstWalk struct {
	steps    []string
	secret   string   // the authenticator app's key, from #totp-secret
	recovery []string // the recovery codes shown once
	cb       *url.URL // where the browser left for the relying party
}

// walkFirstSignIn answers each journey page from p on as the invited
// officer would — the username, the initial password, the authenticator
// app, the recovery codes, a new password, every policy document — until
// the browser leaves for the relying party's callback under prefix. before,
// when set, runs before each answer is posted. It is the one first sign-in
// of the end-to-end tests.
func walkFirstSignIn(t *testing.T, b *browser, p *page, inv invitation, prefix string, before func(step string)) firstWalk {
	t.Helper()
	var w firstWalk
	for p != nil {
		w.steps = append(w.steps, p.step)
		if len(w.steps) > 12 {
			t.Fatalf("journey loops: %v", w.steps)
		}
		var fields map[string]string
		switch p.step {
		case "identify":
			fields = map[string]string{"username": inv.Username}
		case "password":
			fields = map[string]string{"username": inv.Username, "password": inv.InitialPassword}
		case "mfa-enrol":
			w.secret = byID(p.doc, "totp-secret")
			if w.secret == "" {
				t.Fatal("no #totp-secret on the enrolment page")
			}
			fields = map[string]string{"code": totpNow(t, w.secret)}
		case "recovery-codes":
			w.recovery = byClass(p.doc, "recovery-code")
			fields = map[string]string{"accept": "yes"}
		case "change-password":
			fields = map[string]string{"current_password": inv.InitialPassword, "new_password": newPassword, "confirm_password": newPassword}
		default:
			// The Privacy policy, the Terms of use, or a further policy
			// document's step, named by its id.
			if find(p.form, func(n *html.Node) bool { return n.Data == "input" && attr(n, "name") == "accept" }) == nil {
				t.Fatalf("unexpected page %q at %s: %s", p.step, p.url, text(p.doc))
			}
			fields = map[string]string{"accept": "yes"}
		}
		if before != nil {
			before(p.step)
		}
		p, w.cb = b.submit(p, fields, prefix)
	}
	return w
}

func totpNow(t *testing.T, secret string) string {
	t.Helper()
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(secret))
	if err != nil {
		t.Fatalf("decode #totp-secret %q: %v", secret, err)
	}
	return otp.Code(key, time.Now())
}

func readOutbox(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) == 0 {
		t.Fatalf("no mail in the outbox %s: %v", dir, err)
	}
	var all strings.Builder
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		all.WriteString(decodeMail(t, string(b)))
	}
	return all.String()
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// decodeMail returns the subject and the decoded text of every part of an
// RFC 5322 message.
func decodeMail(t *testing.T, raw string) string {
	t.Helper()
	msg, err := mail.ReadMessage(strings.NewReader(raw))
	if err != nil {
		t.Fatalf("outbox message does not parse: %v", err)
	}
	var out strings.Builder
	out.WriteString(msg.Header.Get("Subject") + "\n")
	decodePart(t, msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body, &out)
	return out.String()
}

func decodePart(t *testing.T, ctype, cte string, body io.Reader, out *strings.Builder) {
	mt, params, _ := mime.ParseMediaType(ctype)
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			part, err := mr.NextPart()
			if err != nil {
				return
			}
			decodePart(t, part.Header.Get("Content-Type"), part.Header.Get("Content-Transfer-Encoding"), part, out)
		}
	}
	switch strings.ToLower(cte) {
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, body)
	}
	b, _ := io.ReadAll(body)
	out.Write(b)
	out.WriteString("\n")
}
