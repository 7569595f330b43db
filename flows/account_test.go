package flows

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/flows/mail"
	"github.com/lanyard-idp/lanyard/flows/mail/mailtest"
	"github.com/lanyard-idp/lanyard/provider/authn"
	"github.com/lanyard-idp/lanyard/provider/store"
)

// withMail gives the handler a real SMTP mailer on a test server.
func withMail(t *testing.T, e *env) *mailtest.Server {
	t.Helper()
	srv := mailtest.Start(t, mailtest.Options{})
	m, err := mail.NewSMTP(config.SMTP{Host: srv.Host, Port: srv.Port, TLS: "none", Timeout: config.Duration(5 * time.Second)}, "Lanyard <no-reply@agency.example>")
	if err != nil {
		t.Fatal(err)
	}
	e.h.mailer = m
	t.Cleanup(e.h.Wait)
	return srv
}

// accountForm finds a form of the account page by its data-account marker
// and, when match is set, by the value of one of its hidden inputs.
func accountForm(r *resp, kind, match string) *html.Node {
	return find(r.doc, func(n *html.Node) bool {
		if n.Data != "form" || attr(n, "data-account") != kind {
			return false
		}
		return match == "" || find(n, func(in *html.Node) bool { return in.Data == "input" && attr(in, "value") == match }) != nil
	})
}

// submitAccount posts an account form (its hidden inputs plus fields).
func (b *browser) submitAccount(r *resp, kind, match string, fields map[string]string) *resp {
	b.t.Helper()
	f := accountForm(r, kind, match)
	if f == nil {
		b.t.Fatalf("no %q form (status %d): %s", kind, r.status, text(r.doc))
	}
	vals := url.Values{}
	for _, in := range findAll(f, func(n *html.Node) bool { return n.Data == "input" && attr(n, "type") == "hidden" }) {
		vals.Set(attr(in, "name"), attr(in, "value"))
	}
	for k, v := range fields {
		vals.Set(k, v)
	}
	return b.post(attr(f, "action"), vals)
}

// signInReady signs an officer without a second factor in (withoutMFA).
func signInReady(t *testing.T, e *env, username, pw string) *browser {
	t.Helper()
	b := e.browser()
	r := b.open(PathSignIn)
	r = b.follow(b.submit(r, map[string]string{"username": username}))
	r = b.follow(b.submit(r, map[string]string{"password": pw}))
	if !strings.HasSuffix(r.url, PathAccount) {
		t.Fatalf("sign-in ended at %s: %s", r.url, text(r.doc))
	}
	return b
}

// refreshToken stores a refresh token issued to a session, as the provider
// would.
func (e *env) refreshToken(sig, userID, sessionKey string) {
	e.t.Helper()
	now := e.clock.Now()
	if err := e.st.CreateOAuth(e.t.Context(), &store.OAuthRow{Kind: store.KindRefresh, Signature: sig, RequestID: "req-" + sig,
		ClientID: "docs-portal-staging", Subject: userID, SessionID: sessionKey, Active: true,
		RequestedAt: now, ExpiresAt: now.Add(30 * 24 * time.Hour), Data: []byte("{}")}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) tokenActive(sig string) bool {
	e.t.Helper()
	row, err := e.st.GetOAuth(e.t.Context(), store.KindRefresh, sig)
	if err != nil {
		e.t.Fatal(err)
	}
	return row.Active
}

func TestAccountNeedsASession(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withoutMFA)
	e.seedReady(alice, alicePw)
	b := e.browser()
	mustRedirect(t, b.get(PathAccount), PathSignIn)
	for _, p := range []string{PathAccountSignOutAll, PathAccountTOTPRemove, PathAccountRecoveryCodes} {
		mustRedirect(t, b.post(p, url.Values{}), PathSignIn)
	}
	res := b.postJSON(PathAccountPasskey+optionsSuffix, []byte("{}"))
	if ans := res.answer(t); res.status != http.StatusConflict || ans.Redirect != PathSignIn {
		t.Errorf("passkey options without a session: %d %+v", res.status, ans)
	}
	// After the sign-in the officer is back on the account page.
	r := b.follow(b.get(PathAccount))
	r = b.follow(b.submit(r, map[string]string{"username": alice}))
	r = b.follow(b.submit(r, map[string]string{"password": alicePw}))
	if !strings.HasSuffix(r.url, PathAccount) {
		t.Fatalf("ended at %s", r.url)
	}
	checkPage(t, r)
	low := strings.ToLower(text(r.doc))
	for _, w := range []string{"passkey", "authenticator", "session", "recovery", "privacy policy: version 2026-01"} {
		if !strings.Contains(low, w) {
			t.Errorf("no %q on the account page", w)
		}
	}
}

// TestAccountMethodsWithStepUp walks the sign-in methods: confirm it is
// you after 10 minutes, add a passkey, rename it, remove the app, refuse
// removing the last method, make new recovery codes; each change audited
// and mailed.
func TestAccountMethodsWithStepUp(t *testing.T) {
	t.Parallel()
	e := newPasskeyEnv(t)
	smtp := withMail(t, e)
	e.seedUser(alice, aliceFirst, true)
	b := e.browser()
	o := firstLogin(t, e, b)
	u := o.user

	r := b.get(PathAccount)
	mustStatus(t, r, 200)
	checkPage(t, r)
	if accountForm(r, "remove-totp", "") == nil || byID(r.doc, "passkey-add") == nil {
		t.Fatalf("account page: %s", text(r.doc))
	}
	cur := find(r.doc, func(n *html.Node) bool { return n.Data == "tr" && attr(n, "data-current") == "true" })
	if cur == nil || !strings.Contains(text(cur), "this browser") || attr(cur, "data-session") != store.SessionRef(b.rawSessionID()) {
		t.Errorf("the current session is not listed")
	}
	if !strings.Contains(text(r.doc), "Set up a second factor: authenticator app") {
		t.Errorf("recent events missing: %s", text(r.doc))
	}

	// Eleven minutes on, a change asks to confirm it is you first.
	e.clock.Advance(11 * time.Minute)
	r = b.get(PathAccount)
	mustRedirect(t, b.submitAccount(r, "remove-totp", "", nil), PathReauth)
	res := b.postJSON(PathAccountPasskey+optionsSuffix, []byte("{}"))
	if ans := res.answer(t); res.status != http.StatusForbidden || ans.Redirect != PathReauth {
		t.Fatalf("passkey options without a recent proof: %d %+v", res.status, ans)
	}
	if _, err := e.st.TOTPByUser(t.Context(), u.ID); err != nil {
		t.Fatal("the app was removed without a recent proof")
	}
	r = b.get(PathReauth)
	mustStatus(t, r, 200)
	checkPage(t, r)
	mustStep(t, r, StepMFAChallenge)
	// The browser signed in: it is known to the account and counted on its
	// own key.
	own := b.deviceKey(u.ID)
	failures := e.failures(own)
	bad := b.submit(r, map[string]string{"code": wrongCode(o.secret, e.clock.Now())})
	mustStatus(t, bad, http.StatusUnprocessableEntity)
	if bad.fieldError(t, "code") != msgWrongCode || e.failures(own) != failures+1 {
		t.Errorf("wrong code at reauth: %q, failures %d", bad.errorSummary(), e.failures(own))
	}
	mustRedirect(t, b.submit(r, map[string]string{"code": codeAt(o.secret, e.clock.Now())}), PathAccount)
	r = b.get(PathAccount)
	if !strings.Contains(text(r.doc), msgConfirmed) {
		t.Errorf("no confirmation notice")
	}

	// Add a passkey with a name.
	a := e.authenticator()
	res, _ = b.register(PathAccountPasskey, a, "  Blue key ")
	r = b.mustGo(res, PathAccount)
	if !strings.Contains(text(r.doc), "Blue key") || e.countEvents(evPasskeyAdd) != 1 {
		t.Fatalf("passkey not added: %s", text(r.doc))
	}
	m, err := mailtest.Parse(smtp.Wait(t, 1)[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "Lanyard: "+noticePasskeyAdded || len(m.To) != 1 || m.To[0].Address != alice ||
		!strings.Contains(m.Text, "Passkey: Blue key") || !strings.Contains(m.HTML, "Blue key") {
		t.Errorf("notice: %q to %v: %s", m.Subject, m.To, m.Text)
	}
	id := b64.EncodeToString(a.Credentials()[0].ID)

	// Rename it; a bad name is refused on the page.
	bad = b.submitAccount(r, "rename-passkey", id, map[string]string{"name": strings.Repeat("x", 65)})
	mustStatus(t, bad, http.StatusUnprocessableEntity)
	if bad.errorSummary() == "" {
		t.Error("no error for a long name")
	}
	mustRedirect(t, b.submitAccount(r, "rename-passkey", id, map[string]string{"name": "Work key"}), PathAccount)
	if e.passkeys(u.ID)[0].Name != "Work key" {
		t.Errorf("not renamed")
	}

	// Remove the app: the passkey remains, so that is allowed.
	r = b.get(PathAccount)
	mustRedirect(t, b.submitAccount(r, "remove-totp", "", nil), PathAccount)
	if _, err := e.st.TOTPByUser(t.Context(), u.ID); err == nil {
		t.Fatal("the app was not removed")
	}
	// The last method cannot go while the journey requires one.
	r = b.get(PathAccount)
	bad = b.submitAccount(r, "remove-passkey", id, nil)
	mustStatus(t, bad, http.StatusConflict)
	if !strings.Contains(bad.errorSummary(), msgLastMethod) || len(e.passkeys(u.ID)) != 1 {
		t.Fatalf("last method: %q, %d passkeys", bad.errorSummary(), len(e.passkeys(u.ID)))
	}
	if e.countEvents(evPasskeyRemove) != 0 {
		t.Error("a refused removal was audited as done")
	}

	// New recovery codes: shown once by the journey's step, then back here.
	old := o.codes[0]
	r = b.follow(b.submitAccount(r, "recovery-codes", "", nil))
	mustStep(t, r, StepRecoveryCodes)
	codes := findAll(r.doc, func(n *html.Node) bool { return attr(n, "class") == "recovery-code" })
	if len(codes) != recoveryCodeCount {
		t.Fatalf("%d codes shown", len(codes))
	}
	r = b.follow(b.submit(r, map[string]string{"accept": "yes"}))
	if !strings.HasSuffix(r.url, PathAccount) {
		t.Fatalf("after the codes: %s", r.url)
	}
	norm, _ := normaliseRecoveryCode(old)
	if left, err := e.st.RecoveryCodeHashes(t.Context(), u.ID); err != nil || len(left) != recoveryCodeCount || e.h.recovery.match(u.ID, norm, left) != "" {
		t.Errorf("an old recovery code still works (%d codes, %v)", len(left), err)
	}
	msgs := smtp.Wait(t, 3)
	var subjects []string
	for _, raw := range msgs {
		m, err := mailtest.Parse(raw.Data)
		if err != nil {
			t.Fatal(err)
		}
		subjects = append(subjects, strings.TrimPrefix(m.Subject, "Lanyard: "))
	}
	for _, want := range []string{noticePasskeyAdded, noticeTOTPRemoved, noticeRecoveryRenewed} {
		if !slices.Contains(subjects, want) {
			t.Errorf("no %q notice in %q", want, subjects)
		}
	}
	for _, ev := range []store.Event{evAccountReauth, evPasskeyAdd, evPasskeyRename, evTOTPRemove, evRecoveryRenew} {
		if e.countEvents(ev) != 1 {
			t.Errorf("%d %s events", e.countEvents(ev), ev)
		}
	}

	// The step-up by passkey: eleven more minutes, then the passkey.
	e.clock.Advance(11 * time.Minute)
	r = b.get(PathAccount)
	mustRedirect(t, b.submitAccount(r, "recovery-codes", "", nil), PathReauth)
	r = b.get(PathReauth)
	if byID(r.doc, "passkey-reauth") == nil {
		t.Fatalf("no passkey on the reauth page: %s", text(r.doc))
	}
	b.mustGo(b.assert(PathReauthPasskey, a), PathAccount)
	r = b.get(PathAccount)
	mustRedirect(t, b.submitAccount(r, "rename-passkey", id, map[string]string{"name": "Key 2"}), PathAccount)
}

// TestAccountSessions: sign out one session, all others, everywhere; a
// removed session is anonymous and its refresh tokens are dead.
func TestAccountSessions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withoutMFA)
	u := e.seedReady(alice, alicePw)
	a := signInReady(t, e, alice, alicePw)
	b := signInReady(t, e, alice, alicePw)
	refB := store.SessionRef(b.rawSessionID())
	e.refreshToken("rt-a", u.ID, a.sessionKey())
	e.refreshToken("rt-b", u.ID, b.sessionKey())

	r := a.get(PathAccount)
	if n := len(findAll(r.doc, func(n *html.Node) bool { return n.Data == "tr" && attr(n, "data-session") != "" })); n != 2 {
		t.Fatalf("%d sessions listed", n)
	}
	// Not a ref of the user's: a clear error, nothing ended.
	bad := a.post(PathAccountSignOutSession, url.Values{"session": {"zz"}})
	mustStatus(t, bad, http.StatusBadRequest)
	if bad.errorSummary() == "" {
		t.Error("no error")
	}
	mustRedirect(t, a.submitAccount(r, "sign-out-session", refB, nil), PathAccount)
	mustRedirect(t, b.get(PathAccount), PathSignIn)
	if br := browserOf(t, e, b); br.UserID != "" || br.SignedIn {
		t.Errorf("the removed session still proves %+v", br)
	}
	if e.tokenActive("rt-b") || !e.tokenActive("rt-a") {
		t.Errorf("tokens: a %v, b %v", e.tokenActive("rt-a"), e.tokenActive("rt-b"))
	}
	// Again: it had already ended.
	mustRedirect(t, a.post(PathAccountSignOutSession, url.Values{"session": {refB}}), PathAccount)
	if !strings.Contains(text(a.get(PathAccount).doc), msgSessionEnded) {
		t.Error("no notice for a session already ended")
	}

	c := signInReady(t, e, alice, alicePw)
	d := signInReady(t, e, alice, alicePw)
	e.refreshToken("rt-c", u.ID, c.sessionKey())
	r = a.get(PathAccount)
	mustRedirect(t, a.submitAccount(r, "sign-out-others", "", nil), PathAccount)
	for _, x := range []*browser{c, d} {
		mustRedirect(t, x.get(PathAccount), PathSignIn)
	}
	if e.tokenActive("rt-c") || !e.tokenActive("rt-a") {
		t.Error("sign out of others: tokens")
	}
	if !strings.Contains(text(a.get(PathAccount).doc), "Signed out of 2 other sessions") {
		t.Error("no count of the sessions ended")
	}

	// Everywhere: this browser too, and tokens of sessions long gone.
	e.refreshToken("rt-orphan", u.ID, "")
	r = a.get(PathAccount)
	res := a.submitAccount(r, "sign-out-everywhere", "", nil)
	mustRedirect(t, res, PathSignIn+"?signed_out=1")
	mustRedirect(t, a.get(PathAccount), PathSignIn)
	if e.tokenActive("rt-a") || e.tokenActive("rt-orphan") {
		t.Error("sign out everywhere left a token active")
	}
	ss, err := e.st.UserSessions(t.Context(), u.ID, e.clock.Now())
	if err != nil || len(ss) != 0 {
		t.Errorf("%d sessions left (%v)", len(ss), err)
	}
	_, det := e.lastEvent(evSignOutSessions)
	if det["scope"] != "all" || det["sessions_ended"] != float64(1) {
		t.Errorf("audit %v", det)
	}
}

// browserOf asks the journey what b's cookie proves.
func browserOf(t *testing.T, e *env, b *browser) authn.Browser {
	t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL, nil)
	if c := b.cookie(); c != nil {
		req.AddCookie(c)
	}
	br, err := e.h.Browser(req)
	if err != nil {
		t.Fatal(err)
	}
	return br
}

// TestAccountChangePassword: the journey's policy, counted guesses, other
// sessions signed out, a notice.
func TestAccountChangePassword(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withoutMFA)
	smtp := withMail(t, e)
	u := e.seedReady(alice, alicePw)
	a := signInReady(t, e, alice, alicePw)
	other := signInReady(t, e, alice, alicePw)
	r := a.get(PathAccount)
	const next = "Silver-maple-orchard-42"
	for _, tc := range []struct {
		name, cur, next, confirm, field string
		status                          int
	}{
		{"empty", "", "", "", "current_password", 400},
		{"too short", alicePw, "short", "short", "new_password", 422},
		{"the username", alicePw, alice, alice, "new_password", 422},
		{"mismatch", alicePw, next, next + "x", "confirm_password", 422},
		{"wrong current", "not-the-password", next, next, "current_password", 422},
	} {
		t.Run(tc.name, func(t *testing.T) {
			own := a.deviceKey(u.ID) // a signed-in browser is counted on its own key
			failures := e.failures(own)
			res := a.submitAccount(r, "change-password", "", map[string]string{"current_password": tc.cur, "new_password": tc.next, "confirm_password": tc.confirm})
			mustStatus(t, res, tc.status)
			checkPage(t, res)
			if res.fieldError(t, tc.field) == "" {
				t.Errorf("no error on %s: %s", tc.field, res.errorSummary())
			}
			wantFailures := failures
			if tc.name == "wrong current" {
				wantFailures++
			}
			if got := e.failures(own); got != wantFailures {
				t.Errorf("failures %d → %d", failures, got)
			}
			if e.user(u.ID).PasswordHash != u.PasswordHash {
				t.Fatal("the password changed")
			}
		})
	}
	mustRedirect(t, a.submitAccount(r, "change-password", "", map[string]string{"current_password": alicePw, "new_password": next, "confirm_password": next}), PathAccount)
	mustRedirect(t, other.get(PathAccount), PathSignIn)
	mustStatus(t, a.get(PathAccount), 200)
	signInReady(t, e, alice, next)
	m, err := mailtest.Parse(smtp.Wait(t, 1)[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "Lanyard: "+noticePasswordChanged || !strings.Contains(m.Text, "Sessions signed out: 1") {
		t.Errorf("notice %q: %s", m.Subject, m.Text)
	}
	_, det := e.lastEvent(evPasswordChange)
	if det["where"] != "account" {
		t.Errorf("audit %v", det)
	}
}

// TestAccountRacingRemovals: 10 removals of the app and 10 of the passkey
// at once never leave the officer without a second factor.
func TestAccountRacingRemovals(t *testing.T) {
	t.Parallel()
	e := newPasskeyEnv(t, manyTries)
	e.seedUser(alice, aliceFirst, true)
	b := e.browser()
	firstLogin(t, e, b)
	u := e.user("u-alice-agency-example")
	a := e.authenticator()
	res, _ := b.register(PathAccountPasskey, a, "")
	r := b.mustGo(res, PathAccount)
	id := b64.EncodeToString(a.Credentials()[0].ID)

	frozen := b.frozen()
	results := make([]*resp, 20)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			if i%2 == 0 {
				results[i] = frozen.submitAccount(r, "remove-totp", "", nil)
			} else {
				results[i] = frozen.submitAccount(r, "remove-passkey", id, nil)
			}
		})
	}
	wg.Wait()
	for _, res := range results {
		if res.status >= 500 {
			t.Errorf("status %d: %s", res.status, text(res.doc))
		}
	}
	has, err := e.h.hasSecondFactor(context.Background(), u.ID)
	if err != nil || !has {
		t.Fatalf("no second factor left (%v)", err)
	}
	if n := e.countEvents(evTOTPRemove) + e.countEvents(evPasskeyRemove); n != 1 {
		t.Errorf("%d removals audited", n)
	}
}

// TestSignOutEverywhere is the function the admin CLI calls.
func TestSignOutEverywhere(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withoutMFA)
	u := e.seedReady(alice, alicePw)
	other := e.seedReady(bob, alicePw)
	a := signInReady(t, e, alice, alicePw)
	c := signInReady(t, e, bob, alicePw)
	e.refreshToken("rt-a", u.ID, a.sessionKey())
	e.refreshToken("rt-old", u.ID, "")
	e.refreshToken("rt-bob", other.ID, c.sessionKey())

	if _, err := SignOutEverywhere(t.Context(), e.st, "", ""); err == nil {
		t.Error("no user: no error")
	}
	n, err := SignOutEverywhere(t.Context(), e.st, u.ID, "")
	if err != nil || n != 1 {
		t.Fatalf("ended %d (%v)", n, err)
	}
	mustRedirect(t, a.get(PathAccount), PathSignIn)
	if e.tokenActive("rt-a") || e.tokenActive("rt-old") || !e.tokenActive("rt-bob") {
		t.Error("tokens: alice's must be dead, bob's alive")
	}
	mustStatus(t, c.get(PathAccount), 200)
}
