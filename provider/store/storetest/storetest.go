// Package storetest is the conformance suite of provider/store: every backend
// (SQLite in a temporary file, PostgreSQL in a fresh schema) must pass Run
// unchanged. It uses real databases only; a behaviour that differs between
// backends is a bug in the store, not something to branch on here.
//
// The few checks that look at the schema itself (that a raw session id or
// fosite signature is never stored, that a tampered audit row is found) do so
// through Store.DB on purpose: they assert what a database reader would see.
package storetest

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanyard-idp/lanyard/provider/store"
)

// AuditKey is the audit key the stores under test must be opened with
// (OpenOptions.AuditKey): the suite checks the keyed chain against it.
var AuditKey = []byte("storetest audit key, 32 bytes!!!")

// Run runs the whole suite. open must return a new, empty, migrated store for
// each call (each subtest calls it once), opened with AuditKey, and arrange
// for it to be closed.
func Run(t *testing.T, open func(t *testing.T) *store.Store) {
	groups := []struct {
		name string
		fn   func(t *testing.T, open func(t *testing.T) *store.Store)
	}{
		{"Users", testUsers},
		{"TOTP", testTOTP},
		{"Recovery", testRecovery},
		{"WebAuthn", testWebAuthn},
		{"Approval", testApproval},
		{"Acceptances", testAcceptances},
		{"Sessions", testSessions},
		{"Throttle", testThrottle},
		{"Audit", testAudit},
		{"Keys", testKeys},
		{"Secrets", testSecrets},
		{"OAuth", testOAuth},
		{"Batch", testBatch},
		{"Retention", testRetention},
		{"AuthRequests", testAuthRequests},
		{"Consent", testConsent},
		{"Requests", testRequests},
		{"PasswordResets", testPasswordResets},
		{"Search", testSearch},
		{"GC", testGC},
		{"Logout", testLogout},
		{"Tx", testTx},
		{"Times", testTimes},
		{"Concurrency", testConcurrency},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) { g.fn(t, open) })
	}
}

// t0 is the suite's "now": deliberately not UTC and with nanoseconds, so every
// round trip checks the conversion to UTC and the truncation to microseconds.
var t0 = time.Date(2031, 3, 14, 15, 9, 26, 535897932, time.FixedZone("UTC+05:30", 5*3600+1800))

// at is t0 plus d.
func at(d time.Duration) time.Time { return t0.Add(d) }

// utc is what a time must look like after a round trip.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return time.UnixMicro(t.UnixMicro()).UTC()
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantErr fails unless err is (or wraps) want.
func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

// sameTime fails unless got is want in UTC to the microsecond, in UTC.
func sameTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	w := utc(want)
	if !got.Equal(w) || (!got.IsZero() && got.Location() != time.UTC) {
		t.Fatalf("%s = %v (%v), want %v (UTC)", what, got, got.Location(), w)
	}
}

// newUser creates an active user with a distinct id and username.
func newUser(t *testing.T, s *store.Store, name string) *store.User {
	t.Helper()
	u := &store.User{
		ID: "u-" + name, Username: name + "@agency.example", Email: name + "@agency.example",
		Name: "Officer " + name, State: store.UserActive, PasswordHash: "$argon2id$" + name,
		CreatedAt: t0, UpdatedAt: t0,
	}
	must(t, s.CreateUser(t.Context(), u))
	return u
}

// newSession creates a session of userID and returns its raw id.
func newSession(t *testing.T, s *store.Store, userID, name string, created, expires time.Time) string {
	t.Helper()
	id := "session-id-0123456789-" + name
	must(t, s.CreateSession(t.Context(), &store.Session{
		ID: id, UserID: userID, State: "authenticated", CreatedAt: created, LastSeenAt: created, ExpiresAt: expires,
	}))
	return id
}

// keyOf is the stable key (Session.SID) of the session with the raw id:
// what its tokens and logout records are bound to.
func keyOf(t *testing.T, s *store.Store, id string) string {
	t.Helper()
	x, err := s.SessionByID(t.Context(), id, t0)
	must(t, err)
	if x.SID == "" {
		t.Fatal("a session without a stable key")
	}
	return x.SID
}

// oauthRow is an active row of kind for a request, subject and session.
func oauthRow(kind, sig, requestID, subject, sessionKey string) *store.OAuthRow {
	return &store.OAuthRow{
		Kind: kind, Signature: sig, RequestID: requestID, ClientID: "docs-portal", Subject: subject,
		SessionID: sessionKey, Active: true, RequestedAt: t0, ExpiresAt: at(time.Hour),
		Data: []byte(`{"scopes":["openid"]}`),
	}
}

// count runs a COUNT(*) query with no parameters through the raw pool.
func count(t *testing.T, s *store.Store, query string) int {
	t.Helper()
	var n int
	must(t, s.DB().QueryRowContext(t.Context(), query).Scan(&n))
	return n
}

// race runs fn n times at once and returns the errors.
func race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = fn(i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// exactlyOnce fails unless exactly one error is nil and all the others are
// (or wrap) loser.
func exactlyOnce(t *testing.T, what string, errs []error, loser error) {
	t.Helper()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, loser):
			t.Fatalf("%s: unexpected error %v (want nil or %v)", what, err, loser)
		}
	}
	if wins != 1 {
		t.Fatalf("%s: %d of %d succeeded, want exactly 1", what, wins, len(errs))
	}
}

// quote makes a SQL string literal of test-generated text (hex, names), for
// the raw checks that bypass the store's placeholder rebinding.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
