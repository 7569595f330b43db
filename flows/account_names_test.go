package flows

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/provider/store"
)

// The account page's names, the permissions the officer gave, the
// security events it lists, and idle sessions ended for the relying
// parties' sake.

func TestAccountNames(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withoutMFA)
	u := e.seedReady(alice, alicePw)
	b := signInReady(t, e, alice, alicePw)
	r := b.open(PathAccount)
	checkPage(t, r)
	if f := accountForm(r, "names", ""); f == nil || attr(byID(f, "names-full"), "value") != "Alice Officer" {
		t.Fatalf("no names form with the current name: %s", text(r.doc))
	}

	// Each name too long or broken over lines: said at its field, nothing written.
	bad := b.submitAccount(r, "names", "", map[string]string{"name": "Alice\nMartin", "given_name": strings.Repeat("A", 201), "family_name": "Martin"})
	mustStatus(t, bad, http.StatusUnprocessableEntity)
	checkPage(t, bad)
	for _, f := range []string{"name", "given_name"} {
		if got := bad.fieldError(t, f); got != msgNameBad {
			t.Errorf("%s error %q", f, got)
		}
	}
	if got := e.user(u.ID); got.Name != "Alice Officer" || got.FamilyName != "" {
		t.Fatalf("a refused change was written: %+v", got)
	}
	empty := b.submitAccount(r, "names", "", map[string]string{"name": " ", "given_name": "", "family_name": ""})
	mustStatus(t, empty, http.StatusUnprocessableEntity)
	if got := empty.fieldError(t, "name"); got != msgNamesEmpty {
		t.Errorf("empty names: %q", got)
	}

	// Given and family names alone: the full name follows them.
	e.clock.Advance(time.Minute)
	mustRedirect(t, b.submitAccount(r, "names", "", map[string]string{"name": "", "given_name": "Alice", "family_name": "Martin"}), PathAccount)
	got := e.user(u.ID)
	if got.Name != "Alice Martin" || got.GivenName != "Alice" || got.FamilyName != "Martin" || !got.UpdatedAt.Equal(e.clock.Now()) {
		t.Fatalf("after the change: %+v", got)
	}
	if got.PasswordHash != u.PasswordHash {
		t.Fatal("changing the names touched the password")
	}
	ev, detail := e.lastEvent(store.EventNamesChange)
	if ev.ID == 0 || len(detail["fields"].([]any)) != 3 {
		t.Fatalf("names event %+v %v", ev, detail)
	}
	if r := b.open(PathAccount); !strings.Contains(text(r.doc), "Your name was changed") || !strings.Contains(text(r.doc), "Name changed") {
		t.Errorf("after the change the account page says: %s", text(r.doc))
	}
	// The same names again: nothing to record.
	mustRedirect(t, b.submitAccount(r, "names", "", map[string]string{"name": "Alice Martin", "given_name": "Alice", "family_name": "Martin"}), PathAccount)
	if n := e.countEvents(store.EventNamesChange); n != 1 {
		t.Errorf("%d names events after an unchanged save", n)
	}
	// Later, a change needs a fresh proof first.
	e.clock.Advance(reauthAfter + time.Minute)
	mustRedirect(t, b.submitAccount(r, "names", "", map[string]string{"name": "Mallory"}), PathReauth)
	if e.user(u.ID).Name != "Alice Martin" {
		t.Fatal("a change without a recent proof was written")
	}
}

// The recent security events: only what the officer understands, newest
// first, and a relying party retrying its logout or refreshing its tokens
// cannot push them out.
func TestAccountEventsOfficerOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withoutMFA)
	u := e.seedReady(alice, alicePw)
	b := signInReady(t, e, alice, alicePw)
	ctx := t.Context()
	for i := range 3 * eventsShown {
		for _, name := range []store.Event{store.EventLogoutBackchannel, store.EventTokenIssue} {
			detail, _ := json.Marshal(map[string]any{"result": "failed", "n": i})
			if err := e.st.AppendAudit(ctx, &store.AuditEvent{Event: name, UserID: u.ID, ClientID: "docs-portal-staging",
				At: e.clock.Now(), Detail: detail}); err != nil {
				t.Fatal(err)
			}
		}
	}
	detail, _ := json.Marshal(map[string]any{"by": "cli"})
	if err := e.st.AppendAudit(ctx, &store.AuditEvent{Event: store.EventUserUnlock, UserID: u.ID, At: e.clock.Now(), Detail: detail}); err != nil {
		t.Fatal(err)
	}
	r := b.open(PathAccount)
	var whats []string
	table := find(r.doc, func(n *html.Node) bool { return n.Data == "table" && attr(n, "class") == "events" })
	for _, tr := range findAll(table, func(n *html.Node) bool { return n.Data == "tr" }) {
		if tds := findAll(tr, func(n *html.Node) bool { return n.Data == "td" }); len(tds) == 3 {
			whats = append(whats, text(tds[1]))
		}
	}
	if len(whats) < 2 || whats[0] != "An administrator lifted the sign-in lock" || !contains(whats, "Signed in") {
		t.Fatalf("events shown: %q", whats)
	}
	for _, w := range whats {
		if strings.Contains(w, "logout") || strings.Contains(w, "token") || strings.Contains(w, ".") {
			t.Errorf("a protocol event on the account page: %q", w)
		}
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// Withdrawing a permission on the account page: the application's tokens
// of the officer end, the next request asks again, and it is audited.
func TestAccountConsentWithdraw(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withoutMFA)
	u := e.seedReady(alice, alicePw)
	b, r := signedInTo(t, e, "n=1&consent=required&scopes=openid+email")
	b.done(b.follow(b.submit(r, map[string]string{"accept": "yes"})))
	e.refreshToken("rt-docs", u.ID, "")
	r = b.open(PathAccount)
	li := find(r.doc, func(n *html.Node) bool { return attr(n, "data-consent") == "docs-portal-staging" })
	if li == nil || !strings.Contains(text(li), "Your email address") {
		t.Fatalf("the permission is not listed: %s", text(r.doc))
	}
	mustRedirect(t, b.submitAccount(r, "withdraw-consent", "docs-portal-staging", nil), PathAccount)
	if _, err := e.st.ConsentOf(t.Context(), u.ID, "docs-portal-staging"); err == nil {
		t.Fatal("the permission is still there")
	}
	if e.tokenActive("rt-docs") {
		t.Fatal("the application kept its refresh token")
	}
	if n := e.countEvents(store.EventConsentWithdraw); n != 1 {
		t.Errorf("%d withdraw events", n)
	}
	// Withdrawn twice (a second tab): said plainly, nothing more recorded.
	res := b.submitAccount(r, "withdraw-consent", "docs-portal-staging", nil)
	mustRedirect(t, res, PathAccount)
	if r := b.open(PathAccount); !strings.Contains(text(r.doc), msgConsentGone) {
		t.Errorf("a second withdrawal says: %s", text(r.doc))
	}
	if n := e.countEvents(store.EventConsentWithdraw); n != 1 {
		t.Errorf("%d withdraw events after a second withdrawal", n)
	}
	// Asked again.
	if r := b.open("/test/authorize?n=2&consent=required&scopes=openid"); r.step() != StepConsent {
		t.Fatalf("after withdrawal the request went to %q", r.step())
	}
}

// Idle sessions end when the collector passes, and their relying parties
// are told then (back-channel logout), not at the absolute expiry.
func TestEndIdleSessions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withoutMFA)
	u := e.seedReady(alice, alicePw)
	idle := signInReady(t, e, alice, alicePw)
	ref := idle.sessionKey()
	ctx := context.Background()
	if err := e.st.RecordSessionClient(ctx, &store.SessionClient{SID: ref, ClientID: "docs-portal-staging", Subject: u.ID}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(40 * time.Minute)
	active := signInReady(t, e, alice, alicePw)
	e.clock.Advance(25 * time.Minute) // the first is 65 minutes idle, the second 25
	if n, err := e.h.EndIdleSessions(ctx); err != nil || n != 1 {
		t.Fatalf("EndIdleSessions = %d, %v; want 1", n, err)
	}
	if n, err := e.st.PendingLogouts(ctx); err != nil || n != 1 {
		t.Fatalf("logouts queued: %d, %v", n, err)
	}
	if r := idle.get(PathAccount); r.status != http.StatusSeeOther {
		t.Errorf("the idle session still works: %d", r.status)
	}
	if r := active.get(PathAccount); r.status != http.StatusOK {
		t.Errorf("the active session was ended: %d", r.status)
	}
}

// Lanyard's own Sign out (and Sign out everywhere) frames the front-channel
// logout address of each relying party of the browser's session, with iss
// and sid when the client asks for them, once; the page's CSP frames
// exactly those origins.
func TestSignOutFramesFrontChannel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withoutMFA, func(c *config.Config) {
		c.Clients = []config.Client{
			{ID: "docs-portal-staging", FrontchannelLogoutURI: "https://docs.agency.example/fcl", FrontchannelLogoutSessionRequired: true},
			{ID: "wiki", FrontchannelLogoutURI: "https://wiki.agency.example/logout"},
			{ID: "backchannel-only"},
		}
	})
	u := e.seedReady(alice, alicePw)
	for _, path := range []string{PathSignOut, PathAccountSignOutAll} {
		t.Run(path, func(t *testing.T) {
			b := signInReady(t, e, alice, alicePw)
			ref := b.sessionKey()
			for _, c := range []string{"docs-portal-staging", "wiki", "backchannel-only"} {
				if err := e.st.RecordSessionClient(t.Context(), &store.SessionClient{SID: ref, ClientID: c, Subject: u.ID}); err != nil {
					t.Fatal(err)
				}
			}
			mustRedirect(t, b.post(path, nil), PathSignIn+"?signed_out=1")
			r := b.get(PathSignIn + "?signed_out=1")
			mustStep(t, r, StepIdentify)
			var srcs []string
			for _, f := range findAll(r.doc, func(n *html.Node) bool { return n.Data == "iframe" }) {
				srcs = append(srcs, attr(f, "src"))
			}
			want := []string{"https://docs.agency.example/fcl?iss=" + url.QueryEscape(e.cfg.Issuer) + "&sid=" + ref, "https://wiki.agency.example/logout"}
			if strings.Join(srcs, " ") != strings.Join(want, " ") {
				t.Fatalf("framed %q, want %q", srcs, want)
			}
			if csp := r.header.Get("Content-Security-Policy"); !strings.HasSuffix(csp, "; frame-src https://docs.agency.example https://wiki.agency.example") {
				t.Errorf("CSP %q", csp)
			}
			if !strings.Contains(text(r.doc), "You are signed out") {
				t.Errorf("the page does not say so: %s", text(r.doc))
			}
			// Once: a reload frames nothing, and frames nothing more.
			r = b.get(PathSignIn + "?signed_out=1")
			if find(r.doc, func(n *html.Node) bool { return n.Data == "iframe" }) != nil || strings.Contains(r.header.Get("Content-Security-Policy"), "frame-src") {
				t.Errorf("the frames came back on reload")
			}
		})
	}
}
