package main

// The full-journey benchmark, on both backends: officers invited beforehand
// (`lanyard invite`, in-process) each walk the whole first sign-in through
// the real server on a real port — authorize, username, initial password,
// authenticator-app enrolment, recovery codes, new password, Privacy policy,
// Terms of use — and the relying party redeems the code for tokens. Several
// officers at once, as on a Monday morning.
//
//	go test -run '^$' -bench FirstLoginJourney -benchtime 60x ./cmd/lanyard/
//
// (PostgreSQL with LANYARD_TEST_POSTGRES_URL set.) The figure is dominated by
// argon2id, on purpose: the initial password is checked at sign-in and on the
// change-password page, and the new one is hashed.

import (
	"bytes"
	"context"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/html"
	"golang.org/x/oauth2"

	"github.com/lanyard-idp/lanyard/flows/otp"
	"github.com/lanyard-idp/lanyard/provider/store/seal"
	"github.com/lanyard-idp/lanyard/provider/store/storetest"
)

func BenchmarkFirstLoginJourneySQLite(b *testing.B) {
	benchFirstLogin(b, func(string) string { return "" })
}

func BenchmarkFirstLoginJourneyPostgres(b *testing.B) {
	benchFirstLogin(b, postgresBenchEnv(b))
}

// postgresBenchEnv is the environment of a server on a fresh schema of
// LANYARD_TEST_POSTGRES_URL, with a new key-encryption key.
func postgresBenchEnv(b *testing.B) func(string) string {
	dbURL := storetest.FreshSchema(b, postgresBenchURL(b))
	kek := encodeKey(seal.NewKey())
	return func(k string) string {
		switch k {
		case "LANYARD_DATABASE_URL":
			return dbURL
		case "LANYARD_ENCRYPTION_KEY":
			return kek
		}
		return ""
	}
}

func postgresBenchURL(b *testing.B) string {
	b.Helper()
	u := lookupPostgresURL()
	if u == "" {
		b.Skip("LANYARD_TEST_POSTGRES_URL is not set (e.g. postgres://lanyard:lanyard@127.0.0.1/lanyard_test)")
	}
	return u
}

func benchFirstLogin(b *testing.B, getenv func(string) string) {
	srv := startBenchServer(b, getenv)
	// Officers are invited before the clock starts: the benchmark is the
	// officers' side.
	invites := make(chan invitation, b.N)
	for i := range b.N {
		invites <- srv.invite(fmt.Sprintf("officer-%d-%d@agency.example", time.Now().UnixNano(), i))
	}
	close(invites)
	rp := srv.stagingRP("openid", "email", "profile", "offline_access")
	var failed atomic.Pointer[string]
	// 4 × GOMAXPROCS officers at once.
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := benchJourney(srv.issuer, rp, firstLoginPages(<-invites)); err != nil {
				msg := err.Error()
				failed.CompareAndSwap(nil, &msg)
				return
			}
		}
	})
	b.StopTimer()
	if msg := failed.Load(); msg != nil {
		b.Fatal(*msg)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "journeys/s")
}

// benchServer is the real server (newServer) on a real port, as
// startLanyard builds it, on the database getenv names.
type benchServer struct {
	b      *testing.B
	issuer string
	data   string
	env    env
	d      *deps
}

func startBenchServer(b *testing.B, getenv func(string) string) *benchServer {
	b.Helper()
	ts := httptest.NewUnstartedServer(nil)
	s := &benchServer{b: b, issuer: "http://" + ts.Listener.Addr().String(), data: b.TempDir()}
	s.env = env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, getenv: getenv}
	c := common{dev: true, data: s.data, issuer: s.issuer, addr: ts.Listener.Addr().String()}
	cfg, err := c.load(s.env)
	if err != nil {
		b.Fatal(err)
	}
	d, err := open(b.Context(), cfg, s.env)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	s.d = d
	log := newLogger(cfg, io.Discard)
	mailer, _, err := newMailer(cfg, log)
	if err != nil {
		b.Fatal(err)
	}
	h, err := newServer(b.Context(), d, mailer, log)
	if err != nil {
		b.Fatal(err)
	}
	ts.Config.Handler = h
	ts.Start()
	b.Cleanup(ts.Close)
	return s
}

// stagingRP is the dev configuration's staging documentation portal as a
// relying party of this server, asking for scopes.
func (s *benchServer) stagingRP(scopes ...string) oauth2.Config {
	var disc struct {
		Authorization string `json:"authorization_endpoint"`
		Token         string `json:"token_endpoint"`
	}
	getJSON(s.b, s.issuer+"/.well-known/openid-configuration", &disc)
	return oauth2.Config{
		ClientID: "docs-portal-staging", ClientSecret: "staging-secret",
		RedirectURL: "http://localhost:9001/callback",
		Endpoint:    oauth2.Endpoint{AuthURL: disc.Authorization, TokenURL: disc.Token, AuthStyle: oauth2.AuthStyleInHeader},
		Scopes:      scopes,
	}
}

func (s *benchServer) invite(email string) invitation {
	var out bytes.Buffer
	e := s.env
	e.stdout = &out
	args := []string{"invite", email, "--name", "Bench Officer", "--json", "--show-password", "--dev", "--data", s.data, "--issuer", s.issuer}
	if err := run(context.Background(), args, e); err != nil {
		s.b.Fatalf("invite: %v", err)
	}
	var inv invitation
	if err := json.Unmarshal(out.Bytes(), &inv); err != nil {
		s.b.Fatalf("invite --json: %v", err)
	}
	return inv
}

// benchTransport keeps its connections open between requests, as officers'
// browsers and a relying party's HTTP client do (net/http's default keeps
// two idle connections per host, so 32 officers would mostly open a new
// connection per request).
var benchTransport = &http.Transport{MaxIdleConnsPerHost: 128, IdleConnTimeout: 90 * time.Second}

// benchJourney is one officer's sign-in, from the relying party's redirect to
// the tokens: fill answers each journey page (its data-step, the page, the
// form with its hidden fields). It returns an error rather than failing: it
// runs on RunParallel's goroutines.
func benchJourney(issuer string, rp oauth2.Config, fill func(step string, doc *html.Node, form url.Values) error) error {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second, Transport: benchTransport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	verifier := oauth2.GenerateVerifier()
	target := rp.AuthCodeURL("bench-state", oauth2.S256ChallengeOption(verifier))
	method, form := http.MethodGet, url.Values(nil)
	for range 40 {
		req, _ := http.NewRequest(method, target, strings.NewReader(form.Encode()))
		if method == http.MethodPost {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", issuer)
		}
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && resp.StatusCode == http.StatusServiceUnavailable {
			// The password pool is full: an officer waits and sends the
			// form again, and so does the benchmark (counted in busy).
			busyAnswers.Add(1)
			time.Sleep(time.Duration(ra) * time.Second)
			continue
		}
		if loc := resp.Header.Get("Location"); resp.StatusCode/100 == 3 {
			u, err := resp.Request.URL.Parse(loc)
			if err != nil {
				return err
			}
			if strings.HasPrefix(u.String(), rp.RedirectURL) {
				code := u.Query().Get("code")
				if code == "" {
					return fmt.Errorf("back at the relying party without a code: %s", u.RawQuery)
				}
				ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: benchTransport})
				tok, err := rp.Exchange(ctx, code, oauth2.VerifierOption(verifier))
				if err != nil {
					return fmt.Errorf("exchange: %w", err)
				}
				if tok.Extra("id_token") == nil {
					return fmt.Errorf("no ID token")
				}
				return nil
			}
			method, target, form = http.MethodGet, u.String(), nil
			continue
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s %s: status %d", method, target, resp.StatusCode)
		}
		doc, err := html.Parse(bytes.NewReader(body))
		if err != nil {
			return err
		}
		f := find(doc, func(n *html.Node) bool { return n.Data == "form" && attr(n, "data-step") != "" })
		if f == nil {
			return fmt.Errorf("no journey form at %s: %.300s", target, text(doc))
		}
		form = url.Values{}
		walk(f, func(n *html.Node) {
			if n.Data == "input" && attr(n, "type") == "hidden" && attr(n, "name") != "" {
				form.Set(attr(n, "name"), attr(n, "value"))
			}
		})
		if err := fill(attr(f, "data-step"), doc, form); err != nil {
			return err
		}
		action, err := resp.Request.URL.Parse(attr(f, "action"))
		if err != nil {
			return err
		}
		method, target = http.MethodPost, action.String()
	}
	return fmt.Errorf("the journey did not end")
}

// firstLoginPages answers the pages of an invited officer's first sign-in.
func firstLoginPages(inv invitation) func(step string, doc *html.Node, form url.Values) error {
	return func(step string, doc *html.Node, form url.Values) error {
		switch step {
		case "identify":
			form.Set("username", inv.Username)
		case "password":
			form.Set("username", inv.Username)
			form.Set("password", inv.InitialPassword)
		case "mfa-enrol":
			key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(byID(doc, "totp-secret")))
			if err != nil {
				return fmt.Errorf("#totp-secret: %w", err)
			}
			form.Set("code", otp.Code(key, time.Now()))
		case "recovery-codes", "privacy", "terms":
			form.Set("accept", "yes")
		case "change-password":
			form.Set("current_password", inv.InitialPassword)
			form.Set("new_password", newPassword)
			form.Set("confirm_password", newPassword)
		default:
			return fmt.Errorf("unexpected step %q: %.300s", step, text(doc))
		}
		return nil
	}
}

// busyAnswers counts the 503 answers benchJourney waited out.
var busyAnswers atomic.Int64

func getJSON(b *testing.B, u string, v any) {
	b.Helper()
	resp, err := http.Get(u)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		b.Fatalf("%s: %v", u, err)
	}
}
