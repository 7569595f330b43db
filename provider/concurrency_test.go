package provider

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/lanyard-idp/lanyard/provider/store"
)

const racers = 20

// widenRaces delays the first conditional write of op (code invalidation,
// refresh rotation) so that every racer has read the grant as still valid
// before anyone uses it: only the conditional update can then keep the grant
// single-use.
func (e *env) widenRaces(op string) {
	var once sync.Once
	f := func(o string) error {
		if o == op {
			once.Do(func() { time.Sleep(200 * time.Millisecond) })
		}
		return nil
	}
	e.p.storage.fault.Store(&f)
	e.t.Cleanup(func() { e.p.storage.fault.Store(nil) })
}

// race runs fn in racers goroutines released together and returns the
// statuses.
func race(fn func() int) []int {
	var wg sync.WaitGroup
	start := make(chan struct{})
	out := make([]int, racers)
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out[i] = fn()
		}()
	}
	close(start)
	wg.Wait()
	return out
}

func (e *env) countRows(kind string, activeOnly bool) int {
	e.t.Helper()
	q := "SELECT COUNT(*) FROM oauth WHERE kind = '" + kind + "'" // a constant kind: no placeholder, which differs by dialect
	if activeOnly {
		q += " AND active = 1"
	}
	var n int
	if err := e.st.DB().QueryRowContext(context.Background(), q).Scan(&n); err != nil {
		e.t.Fatalf("count %s rows: %v", kind, err)
	}
	return n
}

func TestConcurrentCodeRedemption(t *testing.T) {
	// The losers lose differently: SQLite's single writer makes them find
	// the code used, PostgreSQL's conditional update makes them wait for
	// the winner's commit and change nothing.
	t.Run("sqlite", func(t *testing.T) { concurrentCodeRedemption(t, newEnv(t)) })
	t.Run("postgres", func(t *testing.T) { concurrentCodeRedemption(t, newEnvOn(t, postgresSchema(t))) })
}

func concurrentCodeRedemption(t *testing.T, e *env) {
	b := e.signedInBrowser()
	v := oauth2.GenerateVerifier()
	code := e.code(b, authParams(oauth2.S256ChallengeFromVerifier(v)))
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {webappRedir}, "code_verifier": {v}}
	e.widenRaces("invalidate")

	var mu sync.Mutex
	var issued []string
	statuses := race(func() int {
		resp, body := e.postForm(pathToken, form, webappID, webappSecret)
		if resp.StatusCode == http.StatusOK {
			mu.Lock()
			issued = append(issued, body["access_token"].(string), body["refresh_token"].(string))
			mu.Unlock()
		} else if body["error"] != "invalid_grant" {
			t.Errorf("loser got %d %v, want invalid_grant", resp.StatusCode, body)
		}
		return resp.StatusCode
	})
	ok := 0
	for _, s := range statuses {
		if s == http.StatusOK {
			ok++
		}
		if s >= 500 {
			t.Errorf("status %d", s)
		}
	}
	if ok != 1 {
		t.Fatalf("%d redemptions succeeded, want exactly 1 (statuses %v)", ok, statuses)
	}
	if n := e.countRows("code", true); n != 0 {
		t.Errorf("%d active codes after redemption", n)
	}
	// The other 19 reused the code: what the first redemption issued is
	// revoked (RFC 6749 §4.1.2), whichever moment each loser lost at.
	for _, tok := range issued {
		if e.active(tok) {
			t.Errorf("the winner's token %.12s… is still active after the code was reused", tok)
		}
	}
	evs, err := e.st.Audit(t.Context(), store.AuditFilter{Event: string(store.EventTokenReuse)})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != len(statuses)-1 {
		t.Errorf("%d token.reuse events, want one per loser (%d)", len(evs), len(statuses)-1)
	}
}

func TestConcurrentRefresh(t *testing.T) {
	e := newEnv(t)
	r := e.newRP(webappID, webappSecret, webappRedir)
	b := e.newBrowser()
	e.journey.setNext(alice())
	tok, _ := r.exchange(r.authorize(b))

	e.widenRaces("rotate")
	var mu sync.Mutex
	var issued []string
	statuses := race(func() int {
		resp, body := e.postForm(pathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, webappID, webappSecret)
		if resp.StatusCode == http.StatusOK {
			mu.Lock()
			issued = append(issued, body["refresh_token"].(string))
			mu.Unlock()
		} else if resp.StatusCode >= 500 || body["error"] == nil {
			t.Errorf("loser got %d %v", resp.StatusCode, body)
		}
		return resp.StatusCode
	})
	ok := 0
	for _, s := range statuses {
		if s == http.StatusOK {
			ok++
		}
	}
	if ok != 1 {
		t.Fatalf("%d refreshes succeeded, want exactly 1 (statuses %v)", ok, statuses)
	}
	// One live family at most: the presented token is dead, and at most one
	// refresh token is active (a late loser that saw the rotated token as
	// reused may have revoked the family, which is also safe).
	if e.active(tok.RefreshToken) {
		t.Error("the presented refresh token is still active")
	}
	if n := e.countRows("refresh", true); n > 1 {
		t.Errorf("%d active refresh tokens, want at most 1", n)
	}
	if n := e.countRows("access", true); n > 1 {
		t.Errorf("%d active access tokens, want at most 1", n)
	}
}

// TestExchangeRollsBack shows that fosite runs the code exchange inside the
// Storage's transaction: when storing the refresh token fails, the code's
// invalidation and the access token roll back with it.
func TestExchangeRollsBack(t *testing.T) {
	e := newEnv(t)
	b := e.signedInBrowser()
	v := oauth2.GenerateVerifier()
	code := e.code(b, authParams(oauth2.S256ChallengeFromVerifier(v)))
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {webappRedir}, "code_verifier": {v}}

	fail := func(kind string) error {
		if kind == "refresh" {
			return errors.New("disk full")
		}
		return nil
	}
	e.p.storage.fault.Store(&fail)
	resp, body := e.postForm(pathToken, form, webappID, webappSecret)
	e.p.storage.fault.Store(nil)
	if resp.StatusCode == http.StatusOK {
		t.Fatalf("exchange succeeded despite the failure: %v", body)
	}
	if n := e.countRows("access", false); n != 0 {
		t.Fatalf("%d access tokens stored by a failed exchange", n)
	}
	if n := e.countRows("code", true); n != 1 {
		t.Fatalf("the code is no longer active after a failed exchange (%d active)", n)
	}
	if n := e.countIssueEvents(); n != 0 {
		t.Fatalf("%d token.issue audit events for a failed exchange", n)
	}

	// The code was not consumed: it can be redeemed now, once.
	resp, body = e.postForm(pathToken, form, webappID, webappSecret)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("retry: %d %v", resp.StatusCode, body)
	}
	if n := e.countRows("access", true); n != 1 {
		t.Errorf("%d access tokens after the retry, want 1", n)
	}
	if n := e.countRows("refresh", true); n != 1 {
		t.Errorf("%d refresh tokens after the retry, want 1", n)
	}
	if n := e.countRows("code", true); n != 0 {
		t.Errorf("code still active after the exchange")
	}
	if n := e.countRows("pkce", true); n != 0 {
		t.Errorf("PKCE record still active after the code was used")
	}
	if n := e.countIssueEvents(); n != 1 {
		t.Errorf("%d token.issue audit events, want 1", n)
	}
}

func (e *env) countIssueEvents() int {
	e.t.Helper()
	evs, err := e.st.Audit(context.Background(), store.AuditFilter{Event: "token.issue"})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(evs)
}

func TestConcurrentPAR(t *testing.T) {
	e := newEnv(t)
	form := authParams(oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier()))
	resp, body := e.postForm(pathPAR, form, webappID, webappSecret)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("par: %d %v", resp.StatusCode, body)
	}
	authURL := e.issuer + pathAuthorize + "?" + url.Values{"client_id": {webappID}, "request_uri": {body["request_uri"].(string)}}.Encode()
	browsers := make([]*browser, racers)
	for i := range browsers {
		browsers[i] = e.signedInBrowser()
	}
	var mu sync.Mutex
	next := 0
	codes := 0
	race(func() int {
		mu.Lock()
		b := browsers[next]
		next++
		mu.Unlock()
		res := b.get(authURL)
		if res.location != nil && res.location.Query().Get("code") != "" {
			mu.Lock()
			codes++
			mu.Unlock()
		} else if res.status >= 500 {
			t.Errorf("status %d", res.status)
		}
		return res.status
	})
	if codes != 1 {
		t.Errorf("%d codes from one request_uri, want 1", codes)
	}
}

// Concurrent client_credentials grants share commits (group commit): every
// grant still gets its own token and its own audit event, and the audit chain
// stays intact.
func TestConcurrentClientCredentials(t *testing.T) {
	e := newEnv(t)
	tokens := make(chan string, racers)
	race(func() int {
		resp, body := e.postForm(pathToken, url.Values{"grant_type": {"client_credentials"}, "scope": {"docs:read"}}, serviceID, serviceSecret)
		if resp.StatusCode == http.StatusOK {
			tokens <- body["access_token"].(string)
		} else {
			t.Errorf("grant: %d %v", resp.StatusCode, body)
		}
		return resp.StatusCode
	})
	close(tokens)
	seen := map[string]bool{}
	for tok := range tokens {
		if seen[tok] || !e.active(tok) {
			t.Errorf("token duplicated or inactive")
		}
		seen[tok] = true
	}
	if len(seen) != racers || e.countRows("access", true) != racers || e.countIssueEvents() != racers {
		t.Errorf("tokens %d, rows %d, audit events %d; want %d each", len(seen), e.countRows("access", true), e.countIssueEvents(), racers)
	}
	if bad, err := e.st.VerifyAudit(context.Background()); err != nil || bad != 0 {
		t.Errorf("audit chain broken at %d: %v", bad, err)
	}
}
