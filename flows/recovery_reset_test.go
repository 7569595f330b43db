package flows

// Self-service recovery over HTTP: forgot your password, and the attacks on
// its link (used twice, after its time, after a newer one, from another
// browser, with a wrong second factor, by someone who has only the
// mailbox, in the middle of a journey, by wording or timing, racing).

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/flows/password"
	"github.com/lanyard-idp/lanyard/provider/store"
	"github.com/lanyard-idp/lanyard/templates"
)

const alicePw2 = "Copper-kettle-meadow-31"

// recoveryEnv is the console's env (real SMTP, the console's cast) with
// alice onboarded: an authenticator app and her recovery codes.
type recoveryEnv struct {
	*consoleEnv
	o onboarded
}

func newRecoveryEnv(t *testing.T, tweak ...func(*config.Config)) *recoveryEnv {
	t.Helper()
	e := newConsoleEnv(t, tweak...)
	e.h.recoveryFloor = 0 // TestForgotSameAnswer measures it
	// Every test's browsers come from one address: the address limit is
	// TestForgotSameAnswer's.
	e.h.recLimits.perAddress = 1000
	e.seedUser(alice, aliceFirst, true)
	return &recoveryEnv{consoleEnv: e, o: firstLogin(t, e.env, e.browser())}
}

// freshCode is alice's authenticator code at the next time step.
func (e *recoveryEnv) freshCode() string {
	e.clock.Advance(30 * time.Second)
	return codeAt(e.o.secret, e.clock.Now())
}

// forgot asks for a reset link for username from a fresh browser.
func (e *recoveryEnv) forgot(username string) *resp {
	e.t.Helper()
	return e.browser().post(PathForgot, url.Values{"username": {username}})
}

var resetLinkRE = regexp.MustCompile(`https?://\S+/signin/reset\?token=[0-9a-f]+`)

// resetLink asks for a link and returns it, read from the email.
func (e *recoveryEnv) resetLink() string {
	e.t.Helper()
	mustRedirect(e.t, e.forgot(alice), PathForgotSent)
	e.h.Wait()
	m := e.lastMail(alice)
	link := resetLinkRE.FindString(m.Text)
	if link == "" || !strings.Contains(m.HTML, link) {
		e.t.Fatalf("the newest email to %s has no reset link: %s\n%s", alice, m.Subject, m.Text)
	}
	return link
}

// openLink opens an emailed link and presses its button (unfollowed).
func (b *browser) openLink(link string) *resp {
	b.t.Helper()
	r := b.get(link)
	if r.status != http.StatusOK {
		return r
	}
	f := byID(r.doc, "reset-link")
	if f == nil {
		b.t.Fatalf("the link's page has no button: %s", text(r.doc))
	}
	tok := find(f, func(n *html.Node) bool { return attr(n, "name") == "token" })
	return b.post(attr(f, "action"), url.Values{"token": {attr(tok, "value")}})
}

// tokenOf is the token of a reset link.
func tokenOf(t testing.TB, link string) string {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("token")
}

// signedInElsewhere signs alice in in another browser and returns it.
func (e *recoveryEnv) signedInElsewhere() *browser {
	e.t.Helper()
	b := e.browser()
	r := laterSignIn(e.t, b, alicePw)
	mustStep(e.t, r, StepMFAChallenge)
	if d := b.done(b.follow(b.submit(r, map[string]string{"code": e.freshCode()}))); !d.SignedIn {
		e.t.Fatalf("not signed in: %+v", d)
	}
	return b
}

// signedOut reports whether the browser's session is gone.
func signedOut(b *browser) bool {
	r := b.get(PathAccount)
	return r.status == http.StatusSeeOther && r.location == PathSignIn
}

func (e *recoveryEnv) reset(link string) *store.PasswordReset {
	e.t.Helper()
	r, err := e.st.PasswordResetByToken(e.t.Context(), tokenOf(e.t, link))
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// TestForgotPassword: the whole path. The link from the password page,
// the email, a link that changes nothing until its button, the second
// factor before anything else, the new password under the policy, every
// other session and token gone, the notice, the audit trail, and the
// application the officer came from.
func TestForgotPassword(t *testing.T) {
	t.Parallel()
	e := newRecoveryEnv(t)
	ctx := t.Context()
	u := e.o.user
	other := e.signedInElsewhere()
	now := e.clock.Now()
	for _, row := range []*store.OAuthRow{
		{Kind: store.KindRefresh, Signature: "rt-other", RequestID: "req-other", SessionID: other.sessionKey()},
		{Kind: store.KindRefresh, Signature: "rt-gone", RequestID: "req-gone", SessionID: "a-session-long-gone"},
	} {
		row.ClientID, row.Subject, row.Active, row.RequestedAt, row.ExpiresAt, row.Data = "docs-portal-staging", u.ID, true, now, now.Add(time.Hour), []byte(`{}`)
		if err := e.st.CreateOAuth(ctx, row); err != nil {
			t.Fatal(err)
		}
	}
	// The other browser's tokens went to the staging portal: it is to be
	// told through back-channel logout.
	if err := e.st.RecordSessionClient(ctx, &store.SessionClient{SID: other.sessionKey(), ClientID: "docs-portal-staging", Subject: u.ID}); err != nil {
		t.Fatal(err)
	}

	b := e.browser()
	r := b.open("/test/authorize?n=7")
	r = b.follow(b.submit(r, map[string]string{"username": alice}))
	mustStep(t, r, StepPassword)
	a := byID(r.doc, "forgot-password")
	if a == nil || attr(a, "href") != PathForgot || text(a) != "Forgot your password?" {
		t.Fatalf("the password page has no Forgot your password? link: %s", text(r.doc))
	}
	r = b.get(PathForgot)
	mustStep(t, r, StepForgotPassword)
	checkPage(t, r)
	if in := byID(r.doc, "username"); attr(in, "value") != alice {
		t.Errorf("the username is not filled in: %q", attr(in, "value"))
	}
	r = b.submit(r, map[string]string{"username": " Alice@Agency.example "})
	mustRedirect(t, r, PathForgotSent)
	r = b.follow(r)
	checkPage(t, r)
	if !strings.Contains(text(r.doc), "Check your email") {
		t.Fatalf("after the form: %s", text(r.doc))
	}
	e.h.Wait()
	m := e.lastMail(alice)
	link := resetLinkRE.FindString(m.Text)
	if !strings.HasPrefix(link, e.srv.URL+PathReset+"?token=") || !strings.Contains(m.Subject, "Reset your Lanyard password") ||
		!strings.Contains(m.Text, "15 minutes") || !strings.Contains(m.Text, "only in the browser you open it in") {
		t.Fatalf("the email %q:\n%s", m.Subject, m.Text)
	}

	// The link shows who it is for and a button; following it changes nothing.
	r = b.get(link)
	mustStatus(t, r, http.StatusOK)
	checkPage(t, r)
	if !strings.Contains(text(r.doc), alice) || e.reset(link).Status != store.ResetSent {
		t.Fatalf("the link's page: %s (%+v)", text(r.doc), e.reset(link))
	}
	r = b.openLink(link)
	mustRedirect(t, r, PathNext)
	if got := e.reset(link); got.Status != store.ResetClaimed || got.ClaimedSID != b.sessionKey() {
		t.Fatalf("the link is not bound to the browser: %+v", got)
	}
	r = b.follow(r)
	mustStep(t, r, StepMFAChallenge)
	checkPage(t, r)

	// Nothing past the second factor: not the new password, not an enrolment.
	for _, p := range []string{PathResetPassword, PathMFAEnrol, PathEnrolApprove, PathChangePassword, PathAccount} {
		if got := b.get(p); got.status != http.StatusSeeOther || (got.location != PathMFAChallenge && got.location != PathNext) {
			t.Errorf("GET %s during a reset: %d to %q", p, got.status, got.location)
		}
	}
	mustRedirect(t, b.post(PathResetPassword, url.Values{"new_password": {alicePw2}, "confirm_password": {alicePw2}}), PathMFAChallenge)

	r = b.follow(b.submit(r, map[string]string{"code": e.freshCode()}))
	mustStep(t, r, StepResetPassword)
	checkPage(t, r)
	for _, f := range []string{"new_password", "confirm_password"} {
		if find(r.form(), func(n *html.Node) bool { return attr(n, "name") == f }) == nil {
			t.Errorf("no field %s", f)
		}
	}
	// The policy of change-password.
	bad := b.submit(r, map[string]string{"new_password": "short", "confirm_password": "short"})
	mustStatus(t, bad, http.StatusUnprocessableEntity)
	if bad.fieldError(t, "new_password") == "" {
		t.Error("a short password has no message at its field")
	}
	bad = b.submit(r, map[string]string{"new_password": alice, "confirm_password": alice})
	mustStatus(t, bad, http.StatusUnprocessableEntity)
	bad = b.submit(r, map[string]string{"new_password": alicePw2, "confirm_password": alicePw2 + "x"})
	mustStatus(t, bad, http.StatusUnprocessableEntity)
	if bad.fieldError(t, "confirm_password") != msgMismatch {
		t.Errorf("different passwords: %q", bad.errorSummary())
	}
	if ok, _ := password.Verify(e.user(u.ID).PasswordHash, alicePw); !ok {
		t.Fatal("a refused form changed the password")
	}

	d := b.done(b.follow(b.submit(r, map[string]string{"new_password": alicePw2, "confirm_password": alicePw2})))
	if !d.SignedIn || d.N != "7" || d.UserID != u.ID || !slices.Contains(d.AMR, "pwd") || !slices.Contains(d.AMR, "otp") {
		t.Fatalf("after the reset the sign-in does not go on to the application: %+v", d)
	}
	if ok, _ := password.Verify(e.user(u.ID).PasswordHash, alicePw2); !ok {
		t.Fatal("the new password is not stored")
	}
	// Every other session and every token.
	if !signedOut(other) {
		t.Error("the other browser is still signed in")
	}
	for _, sig := range []string{"rt-other", "rt-gone"} {
		if row, err := e.st.GetOAuth(ctx, store.KindRefresh, sig); err != nil || row.Active {
			t.Errorf("token %s survived the reset: %+v %v", sig, row, err)
		}
	}
	if n, err := e.st.PendingLogouts(ctx); err != nil || n != 1 {
		t.Errorf("%d back-channel logouts queued by the reset (%v), want the staging portal's", n, err)
	}
	if acct := b.get(PathAccount); acct.status != http.StatusOK || !strings.Contains(text(acct.doc), "Password reset with an emailed link") {
		t.Errorf("the account page does not show the reset: %d %s", acct.status, text(acct.doc))
	}
	// Told, and audited.
	e.h.Wait()
	if m := e.lastMail(alice); !strings.Contains(m.Subject, noticePasswordSet) || !strings.Contains(m.Text, "Sessions signed out: 2") {
		t.Errorf("the notice: %q\n%s", m.Subject, m.Text)
	}
	for _, ev := range []store.Event{store.EventResetRequest, store.EventResetOpen, store.EventResetDone} {
		if n := len(e.eventsOf(ev)); n != 1 {
			t.Errorf("%d %s events", n, ev)
		}
	}
	if got := e.reset(link); got.Status != store.ResetUsed {
		t.Errorf("the link after the reset: %+v", got)
	}
	// The old password is gone; the new one signs in.
	r = laterSignIn(t, e.browser(), alicePw)
	mustStatus(t, r, http.StatusUnprocessableEntity)
	mustStep(t, laterSignIn(t, e.browser(), alicePw2), StepMFAChallenge)
}

// TestResetLinkRefused: a link used twice, after its time, after a newer
// one, and opened in a second browser works nowhere; each says why and is
// audited. Opened twice in one browser, it goes on.
func TestResetLinkRefused(t *testing.T) {
	t.Parallel()
	e := newRecoveryEnv(t)
	e.h.recLimits.perAccount = 100
	refused := func(r *resp, want string) {
		t.Helper()
		mustStatus(t, r, http.StatusGone)
		if r.header.Get("Cache-Control") != "no-store" || r.header.Get("Content-Security-Policy") != templates.CSP {
			t.Error("a refused link's page lacks the page headers")
		}
		if !strings.Contains(text(r.doc), want) {
			t.Errorf("refusal %q, want %q", text(r.doc), want)
		}
		if find(r.doc, func(n *html.Node) bool { return n.Data == "a" && attr(n, "href") == PathForgot }) == nil {
			t.Error("a refused link does not lead to a new one")
		}
	}

	// After its time.
	late := e.resetLink()
	e.clock.Advance(15 * time.Minute)
	refused(e.browser().get(late), "expired")
	refused(e.browser().openLink(late+"x"), "does not work")
	b := e.browser()
	r := b.get(PathSignIn) // a session, so that the button can be pressed
	r = b.post(PathReset, url.Values{"token": {tokenOf(t, late)}})
	refused(r, "expired")

	// After a newer one.
	older, newer := e.resetLink(), e.resetLink()
	refused(e.browser().get(older), "newer link")
	refused(e.browser().openLink(newer+"0"), "does not work")
	if got := e.reset(older); got.Status != store.ResetVoid || got.VoidReason != store.ResetVoidReplaced {
		t.Fatalf("the older link: %+v", got)
	}

	// Opened twice in one browser (a second click, the email again): on.
	b = e.browser()
	mustRedirect(t, b.openLink(newer), PathNext)
	mustRedirect(t, b.get(newer), PathNext)
	mustRedirect(t, b.post(PathReset, url.Values{"token": {tokenOf(t, newer)}}), PathNext)
	mustStep(t, b.open(PathNext), StepMFAChallenge)

	// Then in a second browser: it sees the page (a GET changes nothing),
	// and its button stops the reset everywhere.
	intruder := e.browser()
	mustStatus(t, intruder.get(newer), http.StatusOK)
	if got := e.reset(newer); got.Status != store.ResetClaimed {
		t.Fatalf("opening the link in another browser changed it: %+v", got)
	}
	refused(intruder.openLink(newer), "opened in two browsers")
	if got := e.reset(newer); got.Status != store.ResetVoid || got.VoidReason != store.ResetVoidOtherBrowser {
		t.Fatalf("the link after a second browser: %+v", got)
	}
	r = b.get(PathMFAChallenge)
	mustStatus(t, r, http.StatusGone)
	if !strings.Contains(text(r.doc), "two browsers") {
		t.Errorf("the first browser is told %q", text(r.doc))
	}
	if !signedOut(b) {
		t.Error("the first browser's reset goes on")
	}
	e.h.Wait()
	if m := e.lastMail(alice); !strings.Contains(m.Subject, "password reset of your account was stopped") {
		t.Errorf("the officer is not told: %q", m.Subject)
	}

	// Used twice (this time with a recovery code as the second factor).
	link := e.resetLink()
	b = e.browser()
	r = b.follow(b.openLink(link))
	r = b.follow(b.submit(r, map[string]string{"code": e.o.codes[5]}))
	mustStep(t, r, StepResetPassword)
	// No application asked: the reset ends on the account page.
	if r = b.follow(b.submit(r, map[string]string{"new_password": alicePw2, "confirm_password": alicePw2})); !strings.HasSuffix(r.url, PathAccount) {
		t.Fatalf("reset ended at %s: %s", r.url, text(r.doc))
	}
	refused(e.browser().get(link), "already been used")
	refused(e.browser().openLink(link+"1"), "does not work")
	b2 := e.browser()
	b2.get(PathSignIn)
	refused(b2.post(PathReset, url.Values{"token": {tokenOf(t, link)}}), "already been used")
	// The same browser, again: nothing is reset twice.
	refused(b.post(PathReset, url.Values{"token": {tokenOf(t, link)}}), "already been used")

	reasons := map[string]int{}
	for _, ev := range e.eventsOf(store.EventResetLinkFailed) {
		for _, why := range []store.Reason{store.ReasonLinkExpired, store.ReasonLinkUsed, store.ReasonLinkUnknown} {
			if strings.Contains(string(ev.Detail), string(why)) {
				reasons[string(why)]++
			}
		}
	}
	if reasons[string(store.ReasonLinkExpired)] == 0 || reasons[string(store.ReasonLinkUsed)] == 0 {
		t.Errorf("refused links audited: %v", reasons)
	}
	if n := len(e.eventsOf(store.EventResetVoid)); n != 1 {
		t.Errorf("%d password_reset.void events, want 1 (the second browser)", n)
	}
}

// TestJunkLinksAreAggregated: anyone can post made-up reset links as fast
// as the server answers; like wrong passwords, an address's refusals are
// audited one by one up to a few a minute, then counted into one
// aggregate event.
func TestJunkLinksAreAggregated(t *testing.T) {
	t.Parallel()
	e := newRecoveryEnv(t)
	e.h.failures = newFailureGate(failuresAudited) // as served
	b := e.browser()
	b.get(PathSignIn) // a session, so that the button can be pressed
	const posts = 25
	for i := range posts {
		r := b.post(PathReset, url.Values{"token": {strings.Repeat("ab", 31) + string(rune('a'+i%6)) + "0"}})
		mustStatus(t, r, http.StatusGone)
	}
	if got := e.countEvents(store.EventResetLinkFailed); got != failuresAudited {
		t.Fatalf("%d junk links audited one by one in a minute, want %d", got, failuresAudited)
	}
	e.clock.Advance(failureWindow)
	e.h.FlushFailureAudit(t.Context(), false)
	agg, err := e.st.Audit(t.Context(), store.AuditFilter{Event: string(store.EventSigninFailureAggregated)})
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Count   int            `json:"count"`
		Reasons map[string]int `json:"reasons"`
	}
	if len(agg) != 1 || json.Unmarshal(agg[0].Detail, &d) != nil || d.Count != posts-failuresAudited ||
		d.Reasons[string(store.ReasonLinkUnknown)] != posts-failuresAudited {
		t.Fatalf("aggregates %+v", agg)
	}
}

// TestMailboxAloneCannotTakeOver is the attacker who reads the officer's
// email and nothing else: they ask for a link, open it first, and try
// every way past the second factor. The account stays the officer's; the
// wrong codes count on the sign-in's own counters and lock them; the
// officer is told.
func TestMailboxAloneCannotTakeOver(t *testing.T) {
	t.Parallel()
	e := newRecoveryEnv(t)
	ctx := t.Context()
	u := e.o.user
	officer := e.signedInElsewhere()
	totpBefore, err := e.st.TOTPByUser(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}

	// Two wrong codes at an ordinary sign-in, from a browser the account
	// does not know…
	s := e.browser()
	r := laterSignIn(t, s, alicePw)
	for range 2 {
		mustStatus(t, s.submit(r, map[string]string{"code": wrongCode(e.o.secret, e.clock.Now())}), http.StatusUnprocessableEntity)
	}
	key := keyFactor + u.ID
	if th, _ := e.st.GetThrottle(ctx, key); th.Failures != 2 {
		t.Fatalf("sign-in failures on %s: %+v", key, th)
	}

	attacker := e.browser()
	link := e.resetLink()
	r = attacker.follow(attacker.openLink(link))
	mustStep(t, r, StepMFAChallenge)
	// Every way round the factor leads back to it.
	for _, p := range []string{PathResetPassword, PathMFAEnrol, PathEnrolApprove, PathRecoveryCodes, PathLostFactor, PathChangePassword, PathAccount, PathAccountTOTP} {
		got := attacker.get(p)
		if got.status != http.StatusSeeOther || (got.location != PathMFAChallenge && got.location != PathNext) {
			t.Errorf("GET %s: %d to %q", p, got.status, got.location)
		}
	}
	for _, p := range []string{PathResetPassword, PathMFAEnrol, PathLostFactor} {
		mustRedirect(t, attacker.post(p, url.Values{"new_password": {alicePw2}, "confirm_password": {alicePw2}, "code": {"123456"}, "later": {"1"}}), PathMFAChallenge)
	}
	// …and three through the link: the very same counter locks at five.
	for i := range 3 {
		got := attacker.submit(r, map[string]string{"code": wrongCode(e.o.secret, e.clock.Now())})
		mustStatus(t, got, http.StatusUnprocessableEntity)
		if i == 2 {
			if th, _ := e.st.GetThrottle(ctx, key); !th.LockedUntil.After(e.clock.Now()) {
				t.Fatalf("five wrong codes, sign-in and reset together, did not lock %s: %+v", key, th)
			}
		}
	}
	// Locked: even a right code (or a recovery code) is refused now.
	got := attacker.submit(r, map[string]string{"code": codeAt(e.o.secret, e.clock.Now().Add(30*time.Second))})
	mustStatus(t, got, http.StatusTooManyRequests)
	lost := attacker.get(PathLostPhone)
	mustStatus(t, lost, http.StatusOK)
	got = attacker.submit(lost, map[string]string{"code": e.o.codes[0]})
	mustStatus(t, got, http.StatusTooManyRequests)
	// Asking again for a link or an onboarding email gives nothing more.
	mustRedirect(t, attacker.post(PathInvitation, url.Values{"email": {alice}}), PathInvitationSent)

	// The account is as it was.
	now := e.user(u.ID)
	if ok, _ := password.Verify(now.PasswordHash, alicePw); !ok || now.State != store.UserActive {
		t.Fatal("the password changed")
	}
	if tt, err := e.st.TOTPByUser(ctx, u.ID); err != nil || string(tt.Secret) != string(totpBefore.Secret) {
		t.Fatal("the authenticator app changed")
	}
	if creds, _ := e.st.WebAuthnCredentials(ctx, u.ID); len(creds) != 0 {
		t.Fatal("a passkey was added")
	}
	if devs, _ := e.st.ApprovalDevices(ctx, u.ID); len(devs) != 0 {
		t.Fatal("a phone was paired")
	}
	if signedOut(officer) {
		t.Error("the officer's own session was ended")
	}
	if n := len(e.eventsOf(store.EventResetDone)); n != 0 {
		t.Fatalf("%d resets done", n)
	}
	// The officer is told what the guessing means.
	e.h.Wait()
	var alerted bool
	for _, m := range e.mails(alice) {
		alerted = alerted || strings.Contains(m.Subject, alertResetGuessedWhat)
	}
	if !alerted {
		t.Error("the officer is not told that someone with the link guessed codes")
	}
	evs := e.eventsOf(store.EventFactorGuessing)
	if len(evs) == 0 || !strings.Contains(string(evs[len(evs)-1].Detail), `"after_reset_link":true`) {
		t.Errorf("mfa.guessing: %+v", evs)
	}
	// The officer's own browser is not locked out by it.
	b := e.browser()
	b.jar.SetCookies(mustURL(t, e.srv.URL), officer.jar.Cookies(mustURL(t, e.srv.URL)))
	mustStatus(t, b.get(PathAccount), http.StatusOK)
}

// TestResetMidJourney: an account still in its onboarding journey gets no
// link (the email says to ask for a new onboarding email); an account
// without a second factor cannot use one (the page says whom to ask); a
// browser part-way through a sign-in cannot reach the new password without
// a link.
func TestResetMidJourney(t *testing.T) {
	t.Parallel()
	e := newRecoveryEnv(t)
	ctx := t.Context()
	const ivan = "ivan@agency.example"
	e.seedUser(ivan, aliceFirst, true)

	mustRedirect(t, e.forgot(ivan), PathForgotSent)
	e.h.Wait()
	m := e.lastMail(ivan)
	if !strings.Contains(m.Subject, "not set up yet") || resetLinkRE.MatchString(m.Text) || !strings.Contains(m.Text, e.srv.URL+PathInvitation) {
		t.Fatalf("an invited officer's email %q:\n%s", m.Subject, m.Text)
	}
	if n := countRows(t, e.st, `SELECT COUNT(*) FROM password_resets`); n != 0 {
		t.Fatalf("%d links for an invitation", n)
	}

	// Alice's second factor is reset by the helpdesk after her link was
	// sent: the link works no more, and the page says whom to ask.
	link := e.resetLink()
	if _, err := e.h.admin().ResetMFA(ctx, store.ActorCLI, alice); err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	r := b.openLink(link)
	mustStatus(t, r, http.StatusConflict)
	if txt := text(r.doc); !strings.Contains(txt, "no second factor") || !strings.Contains(txt, config.DefaultHelpdesk) || r.step() != "" {
		t.Fatalf("no factor: %s", txt)
	}
	if got := e.reset(link); got.Status != store.ResetVoid {
		t.Fatalf("the link of an account without a factor: %+v", got)
	}

	// A browser at the challenge (the password typed) tries the reset's
	// step without a link.
	e2 := newRecoveryEnv(t)
	b = e2.browser()
	r = laterSignIn(t, b, alicePw)
	mustStep(t, r, StepMFAChallenge)
	mustRedirect(t, b.post(PathResetPassword, url.Values{"new_password": {alicePw2}, "confirm_password": {alicePw2}}), PathMFAChallenge)
	mustRedirect(t, b.get(PathResetPassword), PathMFAChallenge)
	mustStatus(t, b.post(PathReset, url.Values{"token": {"00"}}), http.StatusGone)
	if ok, _ := password.Verify(e2.user(e2.o.user.ID).PasswordHash, alicePw); !ok {
		t.Fatal("the password changed")
	}
	// A reset started in the middle of a sign-in replaces it: the link's
	// second factor is asked again.
	link = e2.resetLink()
	r = b.follow(b.openLink(link))
	mustStep(t, r, StepMFAChallenge)
}

// countRows runs a COUNT(*) query.
func countRows(t *testing.T, st *store.Store, q string) int {
	t.Helper()
	var n int
	if err := st.DB().QueryRowContext(t.Context(), q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestForgotSameAnswer: an active account, an invitation, a disabled
// account and no account at all get the same page, after the same time;
// only the email differs. The limits count the username typed, existing
// or not, and the address.
func TestForgotSameAnswer(t *testing.T) {
	t.Parallel()
	e := newRecoveryEnv(t)
	const (
		ivan   = "ivan@agency.example"
		dora   = "dora@agency.example"
		nobody = "nobody@agency.example"
	)
	e.seedUser(ivan, aliceFirst, true)
	e.seedDisabled(dora)
	e.sameAnswer(PathForgot, "username", PathForgotSent, alice, ivan, dora, nobody)
	e.h.Wait()
	if len(e.mails(dora)) != 0 || len(e.mails(nobody)) != 0 {
		t.Error("a disabled or unknown account was emailed")
	}
	sent := map[string]string{}
	for _, ev := range e.eventsOf(store.EventResetRequest) {
		sent[ev.Username] = string(ev.Detail)
	}
	for who, want := range map[string]store.ResetMail{alice: store.ResetMailLink, ivan: store.ResetMailInvitation, dora: store.ResetMailNothing, nobody: store.ResetMailNothing} {
		if !strings.Contains(sent[who], `"sent":"`+string(want)+`"`) {
			t.Errorf("%s: audited %s, want sent %s", who, sent[who], want)
		}
	}

	// Time: every answer waits for the floor, whatever it found.
	e.h.recoveryFloor = 200 * time.Millisecond
	e.h.recLimits.perAccount = 100
	took := func(who string) time.Duration {
		start := time.Now()
		mustRedirect(t, e.browser().post(PathForgot, url.Values{"username": {who}}), PathForgotSent)
		return time.Since(start)
	}
	var known, unknown []time.Duration
	for range 7 {
		known, unknown = append(known, took(alice)), append(unknown, took(nobody))
	}
	sameTiming(t, e.h.recoveryFloor, "an account", known, unknown)
	e.h.recoveryFloor = 0

	// Three links an hour per username typed, existing or not.
	e.h.recLimits.perAccount = 3
	e.clock.Advance(2 * time.Hour)
	for _, who := range []string{alice, nobody} {
		for range 3 {
			mustRedirect(t, e.forgot(who), PathForgotSent)
		}
		r := e.forgot(who)
		mustStatus(t, r, http.StatusTooManyRequests)
		if r.fieldError(t, "username") != msgForgotAccount {
			t.Errorf("%s over the limit: %q", who, r.errorSummary())
		}
	}
	// Per address.
	e.clock.Advance(2 * time.Hour)
	e.h.recLimits.perAddress = 2
	for i := range 3 {
		r := e.forgot(nobody)
		if i < 2 {
			mustRedirect(t, r, PathForgotSent)
		} else {
			mustStatus(t, r, http.StatusTooManyRequests)
		}
	}
	if len(e.eventsOf(store.EventResetRefused)) == 0 {
		t.Error("refusals are not audited")
	}
}

// seedDisabled creates a disabled account.
func (e *recoveryEnv) seedDisabled(username string) {
	e.t.Helper()
	u := e.seedReady(username, alicePw)
	u.State = store.UserDisabled
	if err := e.st.UpdateUser(e.t.Context(), u); err != nil {
		e.t.Fatal(err)
	}
}

// sameAnswer posts the form at path with field set to each address from
// a fresh browser, and fails unless every answer is a redirect to sent and
// the same page there.
func (e *recoveryEnv) sameAnswer(path, field, sent string, addrs ...string) {
	e.t.Helper()
	var pages []string
	for _, a := range addrs {
		b := e.browser()
		r := b.post(path, url.Values{field: {a}})
		mustRedirect(e.t, r, sent)
		pages = append(pages, text(b.follow(r).doc))
	}
	for i, p := range pages[1:] {
		if p != pages[0] {
			e.t.Errorf("the page for %s differs from %s's:\n%s\n%s", addrs[i+1], addrs[0], p, pages[0])
		}
	}
}

// TestResetRaces: twenty racing requests for links leave one live link
// (and only three pass the limit); twenty racing clicks of a link's button
// in one browser bind it once and all go on; twenty racing new passwords
// reset it once.
func TestResetRaces(t *testing.T) {
	t.Parallel()
	e := newRecoveryEnv(t)
	const n = 20
	statuses := racing(n, func(int) int { return e.forgot(alice).status })
	if c := countOf(statuses, http.StatusSeeOther); c != 3 {
		t.Errorf("%d of %d racing requests passed the limit of 3: %v", c, n, statuses)
	}
	if live := countRows(t, e.st, `SELECT COUNT(*) FROM password_resets WHERE status IN ('sent', 'claimed')`); live != 1 {
		t.Fatalf("%d live links after racing requests", live)
	}
	e.h.Wait()
	var link string
	for _, m := range e.mails(alice) {
		if l := resetLinkRE.FindString(m.Text); l != "" && e.reset(l).Live() {
			link = l
		}
	}
	if link == "" {
		t.Fatal("no email carries the live link")
	}

	b := e.browser()
	r := b.get(link)
	mustStatus(t, r, http.StatusOK)
	f := b.frozen()
	statuses = racing(n, func(int) int {
		return f.post(PathReset, url.Values{"token": {tokenOf(t, link)}}).status
	})
	if c := countOf(statuses, http.StatusSeeOther); c != n {
		t.Errorf("racing clicks in one browser: %v", statuses)
	}
	if c := len(e.eventsOf(store.EventResetOpen)); c != 1 {
		t.Errorf("%d claims recorded", c)
	}
	if got := e.reset(link); got.Status != store.ResetClaimed || got.ClaimedSID != b.sessionKey() {
		t.Fatalf("after racing clicks: %+v", got)
	}
	r = b.follow(b.get(PathNext))
	r = b.follow(b.submit(r, map[string]string{"code": e.freshCode()}))
	mustStep(t, r, StepResetPassword)
	f = b.frozen()
	statuses = racing(n, func(i int) int {
		return f.post(PathResetPassword, url.Values{"new_password": {alicePw2}, "confirm_password": {alicePw2}}).status
	})
	if c := len(e.eventsOf(store.EventResetDone)); c != 1 {
		t.Errorf("%d resets done by %d racing forms: %v", c, n, statuses)
	}
	if c := len(e.eventsOf(store.EventPasswordChange)) + len(e.eventsOf(store.EventResetDone)); c != 2 {
		// firstLogin changed it once.
		t.Errorf("%d password changes", c)
	}
	if ok, _ := password.Verify(e.user(e.o.user.ID).PasswordHash, alicePw2); !ok {
		t.Fatal("the new password is not stored")
	}
}

// racing runs fn n times at once.
func racing[T any](n int, fn func(i int) T) []T {
	out := make([]T, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			out[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return out
}

func countOf[T comparable](s []T, v T) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

// median is the middle of durations measured.
// sameTiming asserts that answers about something (found, the times
// answers took when what was asked about exists) and about nothing (none)
// all waited the floor, and that their medians are too close to tell
// apart. Medians, not every answer: a loaded machine delays single
// answers of either kind.
func sameTiming(t *testing.T, floor time.Duration, what string, found, none []time.Duration) {
	t.Helper()
	for _, ds := range [][]time.Duration{found, none} {
		if slices.Min(ds) < floor {
			t.Errorf("an answer came before the floor: %v", ds)
		}
	}
	t.Logf("floor %v: median %v for %s, %v for none (of %d each)", floor, median(found), what, median(none), len(found))
	if diff := (median(found) - median(none)).Abs(); diff > 50*time.Millisecond {
		t.Errorf("median %v for %s, %v for none: they tell them apart", median(found), what, median(none))
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestResetLinkOnAnotherOfficersBrowser: alice's reset link opened in a
// browser where another officer is signed in ends that officer's session
// key, as another officer's sign-in does (TestAnotherOfficerGetsAFreshKey):
// his tokens are revoked, his relying parties told, and alice's reset does
// not share his key.
func TestResetLinkOnAnotherOfficersBrowser(t *testing.T) {
	t.Parallel()
	e := newRecoveryEnv(t)
	b, _ := e.signIn(helpdesk, PathAdmin)
	deskKey := b.sessionKey()
	desk := e.users[helpdesk]
	e.refreshToken("rt-desk", desk.ID, deskKey)
	if err := e.st.RecordSessionClient(t.Context(), &store.SessionClient{SID: deskKey, ClientID: "docs-portal-staging", Subject: desk.ID}); err != nil {
		t.Fatal(err)
	}
	mustRedirect(t, b.openLink(e.resetLink()), PathNext)
	if k := b.sessionKey(); k == deskKey {
		t.Fatalf("alice's reset kept the helpdesk's session key %q", deskKey)
	}
	if e.tokenActive("rt-desk") {
		t.Error("the helpdesk's refresh token survived alice's reset link in his browser")
	}
	got, err := e.st.ClaimLogouts(t.Context(), time.Now().Add(time.Hour), time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].SID != deskKey || got[0].Subject != desk.ID {
		t.Errorf("logouts queued: %+v, want one for the helpdesk's session %q", got, deskKey)
	}
}
