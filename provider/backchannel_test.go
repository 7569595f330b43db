package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/provider/store"
	"github.com/lanyard-idp/lanyard/templates"
)

// receiver is a relying party's back-channel logout endpoint: it records
// every logout token and answers with the status its script says.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	tokens []string
	script []int // statuses to answer, in order; then 200
}

func newReceiver(t testing.TB, script ...int) *receiver {
	rc := &receiver{script: script}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		_ = r.ParseForm()
		rc.mu.Lock()
		rc.tokens = append(rc.tokens, r.PostForm.Get("logout_token"))
		status := http.StatusOK
		if len(rc.script) > 0 {
			status, rc.script = rc.script[0], rc.script[1:]
		}
		rc.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) received() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.tokens...)
}

// withLogout gives a client back- and front-channel logout URIs.
func withLogout(id, backchannel, frontchannel string) envOption {
	return func(c *config.Config) {
		for i := range c.Clients {
			if c.Clients[i].ID == id {
				c.Clients[i].BackchannelLogoutURI = backchannel
				c.Clients[i].BackchannelLogoutSessionRequired = backchannel != ""
				c.Clients[i].FrontchannelLogoutURI = frontchannel
				c.Clients[i].FrontchannelLogoutSessionRequired = frontchannel != ""
			}
		}
	}
}

// signInAndOut signs alice in to the web app and out again through
// end_session; it returns the ID token's sid.
func (e *env) signInAndOut() string {
	e.t.Helper()
	b := e.newBrowser()
	hint, sid := e.signInWeb(b)
	res := b.get(e.issuer + pathEndSession + "?id_token_hint=" + url.QueryEscape(hint))
	if res.status != http.StatusOK {
		e.t.Fatalf("end_session: %d %s", res.status, truncate(res.body))
	}
	return sid
}

// signInWeb signs alice in to the web app in b; it returns the ID token and
// its sid.
func (e *env) signInWeb(b *browser) (idToken, sid string) {
	e.t.Helper()
	r := e.newRP(webappID, webappSecret, webappRedir)
	e.journey.setNext(alice())
	tok, idt := r.exchange(r.authorize(b))
	var c struct {
		SID string `json:"sid"`
	}
	if err := idt.Claims(&c); err != nil || c.SID == "" {
		e.t.Fatalf("ID token without sid: %v", err)
	}
	return tok.Extra("id_token").(string), c.SID
}

// logoutClaims verifies a logout token as a relying party must (Back-Channel
// Logout 1.0 §2.6): signature with the issuer's published keys, typ, iss,
// aud, iat/exp, events, no nonce.
func (e *env) logoutClaims(raw, audience string) map[string]any {
	e.t.Helper()
	ctx := oidc.ClientContext(context.Background(), e.srv.Client())
	keys := oidc.NewRemoteKeySet(ctx, e.issuer+pathJWKS)
	payload, err := keys.VerifySignature(ctx, raw)
	if err != nil {
		e.t.Fatalf("logout token signature: %v", err)
	}
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		e.t.Fatal(err)
	}
	if typ, _ := jws.Signatures[0].Protected.ExtraHeaders["typ"].(string); typ != "logout+jwt" {
		e.t.Errorf("typ = %q, want logout+jwt", typ)
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		e.t.Fatal(err)
	}
	now := float64(e.clock.Now().Unix())
	iat, _ := c["iat"].(float64)
	exp, _ := c["exp"].(float64)
	events, _ := c["events"].(map[string]any)
	_, hasEvent := events[backchannelEvent]
	_, hasNonce := c["nonce"]
	if c["iss"] != e.issuer || c["aud"] != audience || iat > now+5 || exp < now || exp > now+600 ||
		!hasEvent || hasNonce || c["jti"] == "" || c["sub"] != aliceID {
		e.t.Errorf("logout token claims = %v", c)
	}
	return c
}

func TestBackchannelLogout(t *testing.T) {
	rc := newReceiver(t)
	e := newEnv(t, withLogout(webappID, "", ""))
	// The URI is known only now: set it on the running provider.
	e.p.SetClients(clientsWith(e.cfg.Clients, webappID, rc.srv.URL+"/bcl"))

	sid := e.signInAndOut()
	ctx := context.Background()
	if n, _ := e.st.PendingLogouts(ctx); n != 1 {
		t.Fatalf("%d logouts queued by end_session, want 1", n)
	}
	if got := e.p.deliverLogouts(ctx); got != 1 {
		t.Fatalf("delivered %d", got)
	}
	toks := rc.received()
	if len(toks) != 1 {
		t.Fatalf("the relying party received %d logout tokens", len(toks))
	}
	c := e.logoutClaims(toks[0], webappID)
	if c["sid"] != sid {
		t.Errorf("sid = %v, want the ID token's %s", c["sid"], sid)
	}
	// Settled: nothing left, nothing sent twice.
	if n, _ := e.st.PendingLogouts(ctx); n != 0 {
		t.Errorf("%d logouts still pending", n)
	}
	e.p.deliverLogouts(ctx)
	if len(rc.received()) != 1 {
		t.Error("delivered twice")
	}
	evs, _ := e.st.Audit(ctx, store.AuditFilter{Event: string(store.EventLogoutBackchannel)})
	if len(evs) != 1 || evs[0].ClientID != webappID || evs[0].UserID != aliceID || !strings.Contains(string(evs[0].Detail), `"result":"delivered"`) {
		t.Errorf("audit = %+v", evs)
	}
	// A logout token is no ID token: it is refused as id_token_hint.
	if _, err := e.p.verifyIDTokenHint(ctx, toks[0]); err == nil {
		t.Error("a logout token was accepted as id_token_hint")
	}
}

// clientsWith is cs with the back-channel URI of client id set.
func clientsWith(cs []config.Client, id, backchannel string) []config.Client {
	out := append([]config.Client(nil), cs...)
	for i := range out {
		if out[i].ID == id {
			out[i].BackchannelLogoutURI = backchannel
			out[i].BackchannelLogoutSessionRequired = true
		}
	}
	return out
}

func TestBackchannelLogoutRetries(t *testing.T) {
	ctx := context.Background()

	t.Run("retried with backoff until it succeeds", func(t *testing.T) {
		rc := newReceiver(t, http.StatusServiceUnavailable, http.StatusInternalServerError)
		e := newEnv(t)
		e.p.SetClients(clientsWith(e.cfg.Clients, webappID, rc.srv.URL))
		e.signInAndOut()
		e.p.deliverLogouts(ctx) // 503
		// Not due again before its backoff.
		e.clock.Advance(logoutBackoff(1) - time.Second)
		if n := e.p.deliverLogouts(ctx); n != 0 {
			t.Fatalf("retried %d before the backoff", n)
		}
		e.clock.Advance(2 * time.Second)
		e.p.deliverLogouts(ctx) // 500
		e.clock.Advance(logoutBackoff(2) + time.Second)
		e.p.deliverLogouts(ctx) // 200
		if n := len(rc.received()); n != 3 {
			t.Fatalf("%d attempts, want 3", n)
		}
		if n, _ := e.st.PendingLogouts(ctx); n != 0 {
			t.Errorf("%d pending after success", n)
		}
		evs, _ := e.st.Audit(ctx, store.AuditFilter{Event: string(store.EventLogoutBackchannel)})
		var results []string
		for _, ev := range evs {
			var d map[string]any
			json.Unmarshal(ev.Detail, &d)
			results = append(results, fmt.Sprint(d["result"], "/", d["status"]))
		}
		if strings.Join(results, " ") != "failed/503 failed/500 delivered/200" {
			t.Errorf("audit results = %v", results)
		}
	})

	t.Run("given up after the bound", func(t *testing.T) {
		script := make([]int, 50)
		for i := range script {
			script[i] = http.StatusBadGateway
		}
		rc := newReceiver(t, script...)
		e := newEnv(t)
		e.p.SetClients(clientsWith(e.cfg.Clients, webappID, rc.srv.URL))
		e.signInAndOut()
		for range 2 * maxLogoutAttempts {
			e.p.deliverLogouts(ctx)
			e.clock.Advance(maxLogoutBackoff + time.Second)
		}
		if n := len(rc.received()); n != maxLogoutAttempts {
			t.Fatalf("%d attempts, want %d", n, maxLogoutAttempts)
		}
		if n, _ := e.st.PendingLogouts(ctx); n != 0 {
			t.Errorf("%d pending after giving up", n)
		}
		evs, _ := e.st.Audit(ctx, store.AuditFilter{Event: string(store.EventLogoutBackchannel)})
		if len(evs) != maxLogoutAttempts || !strings.Contains(string(evs[len(evs)-1].Detail), `"result":"gave_up"`) {
			t.Errorf("last audit event = %s (of %d)", evs[len(evs)-1].Detail, len(evs))
		}
	})

	t.Run("redirects are not followed", func(t *testing.T) {
		elsewhere := newReceiver(t)
		redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, elsewhere.srv.URL, http.StatusTemporaryRedirect)
		}))
		t.Cleanup(redirector.Close)
		e := newEnv(t)
		e.p.SetClients(clientsWith(e.cfg.Clients, webappID, redirector.URL))
		e.signInAndOut()
		e.p.deliverLogouts(ctx)
		if n := len(elsewhere.received()); n != 0 {
			t.Fatalf("the logout token followed a redirect (%d received elsewhere)", n)
		}
		if n, _ := e.st.PendingLogouts(ctx); n != 1 {
			t.Errorf("a redirect counted as delivered (%d pending)", n)
		}
	})

	t.Run("a client without a back-channel gets nothing", func(t *testing.T) {
		rc := newReceiver(t)
		e := newEnv(t)
		e.signInAndOut()
		if n, _ := e.st.PendingLogouts(ctx); n != 1 {
			t.Fatalf("%d queued", n)
		}
		e.p.deliverLogouts(ctx)
		if n, _ := e.st.PendingLogouts(ctx); n != 0 || len(rc.received()) != 0 {
			t.Errorf("pending %d, received %d", n, len(rc.received()))
		}
		if evs, _ := e.st.Audit(ctx, store.AuditFilter{Event: string(store.EventLogoutBackchannel)}); len(evs) != 0 {
			t.Errorf("audited a delivery that was not made: %+v", evs)
		}
	})
}

// TestBackchannelLogoutNodes: several nodes on one database, each running
// its delivery loop, deliver every logout token exactly once.
func TestBackchannelLogoutNodes(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			var e *env
			if backend == "postgres" {
				e = newEnvOn(t, postgresSchema(t))
			} else {
				e = newEnv(t)
			}
			var hits atomic.Int64
			seen := sync.Map{}
			var dup atomic.Int64
			rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_ = r.ParseForm()
				c := e.logoutClaims(r.PostForm.Get("logout_token"), webappID)
				if _, loaded := seen.LoadOrStore(c["sid"], true); loaded {
					dup.Add(1)
				}
				hits.Add(1)
				time.Sleep(20 * time.Millisecond) // a relying party that takes its time
			}))
			t.Cleanup(rcv.Close)
			cs := clientsWith(e.cfg.Clients, webappID, rcv.URL)
			e.p.SetClients(cs)

			const sessions = 12
			for range sessions {
				e.signInAndOut()
			}
			pages, _ := templates.Parse()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var wg sync.WaitGroup
			for range 3 {
				p, err := New(ctx, Options{Config: e.cfg, Store: e.st, Box: e.box, Journey: e.journey, Pages: pages, Now: e.clock.Now})
				if err != nil {
					t.Fatal(err)
				}
				p.SetClients(cs)
				wg.Go(func() { p.RunLogoutDelivery(ctx) })
			}
			deadline := time.Now().Add(20 * time.Second)
			for hits.Load() < sessions && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(300 * time.Millisecond) // any duplicate would arrive now
			cancel()
			wg.Wait()
			if hits.Load() != sessions || dup.Load() != 0 {
				t.Fatalf("%d deliveries (%d duplicates) for %d sessions", hits.Load(), dup.Load(), sessions)
			}
			if n, _ := e.st.PendingLogouts(context.Background()); n != 0 {
				t.Errorf("%d pending", n)
			}
		})
	}
}

func TestFrontchannelLogout(t *testing.T) {
	e := newEnv(t, withLogout(webappID, "", "https://rp.example/fcl?x=1"))
	b := e.newBrowser()
	hint, sid := e.signInWeb(b)
	res := b.get(e.issuer + pathEndSession + "?" + url.Values{
		"id_token_hint": {hint}, "post_logout_redirect_uri": {webappLogout}, "state": {"s1"},
	}.Encode())
	if res.status != http.StatusOK {
		t.Fatalf("end_session with a front-channel client: %d %v", res.status, res.location)
	}
	want := "https://rp.example/fcl?" + url.Values{"iss": {e.issuer}, "sid": {sid}, "x": {"1"}}.Encode()
	if !strings.Contains(res.body, `src="`+strings.ReplaceAll(want, "&", "&amp;")+`"`) {
		t.Errorf("no iframe for %s in:\n%s", want, res.body)
	}
	// The page's CSP is every page's, plus exactly the framed origins.
	if csp := res.header.Get("Content-Security-Policy"); csp != templates.CSP+"; frame-src https://rp.example" {
		t.Errorf("CSP = %q", csp)
	}
	// Then on to the registered address, with the state.
	if !strings.Contains(res.body, `href="`+webappLogout+`?state=s1"`) || !strings.Contains(res.body, `http-equiv="refresh"`) {
		t.Errorf("no way on to the application:\n%s", res.body)
	}
	// A sign-out with no front-channel client frames nothing.
	e2 := newEnv(t)
	b2 := e2.newBrowser()
	hint2 := e2.idToken(b2)
	res2 := b2.get(e2.issuer + pathEndSession + "?id_token_hint=" + url.QueryEscape(hint2))
	if strings.Contains(res2.body, "<iframe") || res2.header.Get("Content-Security-Policy") != templates.CSP {
		t.Errorf("frames without front-channel clients: %s", res2.header.Get("Content-Security-Policy"))
	}
}
