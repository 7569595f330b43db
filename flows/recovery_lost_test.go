package flows

// Lost phone and lost onboarding email over HTTP.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/flows/approval"
	"github.com/lanyard-idp/lanyard/flows/password"
	"github.com/lanyard-idp/lanyard/provider/store"
)

// pairOldPhone stands for a phone paired with the approval app before it
// was lost.
func (e *recoveryEnv) pairOldPhone() *store.ApprovalDevice {
	e.t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		e.t.Fatal(err)
	}
	d := &store.ApprovalDevice{ID: "old-phone", UserID: e.o.user.ID, Name: "Old phone", PublicKey: pub, CreatedAt: e.clock.Now(), LastUsedAt: e.clock.Now()}
	if err := e.st.AddApprovalDevice(e.t.Context(), d); err != nil {
		e.t.Fatal(err)
	}
	return d
}

// TestLostPhone: "Lost your phone?" on the challenge page, a recovery code,
// every other session signed out, a new factor at once with fresh
// recovery codes, and the lost one removed.
func TestLostPhone(t *testing.T) {
	t.Parallel()
	e := newRecoveryEnv(t, func(c *config.Config) {
		c.Recovery.Helpdesk = "the IT service desk (6000 0000)"
		c.Recovery.HelpdeskAsks = []string{"Your staff number."}
	})
	ctx := t.Context()
	u := e.o.user
	e.pairOldPhone()
	other := e.signedInElsewhere()

	b := e.browser()
	r := laterSignIn(t, b, alicePw)
	mustStep(t, r, StepMFAChallenge)
	a := byID(r.doc, "lost-phone")
	if a == nil || attr(a, "href") != PathLostPhone {
		t.Fatalf("the challenge page has no Lost your phone? link: %s", text(r.doc))
	}
	r = b.get(PathLostPhone)
	mustStatus(t, r, http.StatusOK)
	mustStep(t, r, StepMFAChallenge)
	checkPage(t, r)
	txt := text(r.doc)
	for _, want := range []string{"recovery code", "the IT service desk (6000 0000)", "Your staff number."} {
		if !strings.Contains(txt, want) {
			t.Errorf("the lost page does not say %q: %s", want, txt)
		}
	}
	// A code from an app is not what this form takes (and is not charged).
	bad := b.submit(r, map[string]string{"code": "123456"})
	mustStatus(t, bad, http.StatusBadRequest)
	if bad.fieldError(t, "code") != msgLostEnterCode {
		t.Errorf("an app's code on the lost page: %q", bad.errorSummary())
	}
	if th, _ := e.st.GetThrottle(ctx, keyFactor+u.ID); th.Failures != 0 {
		t.Errorf("a code of the wrong kind was charged: %+v", th)
	}
	// A wrong recovery code is a wrong second factor.
	bad = b.submit(r, map[string]string{"code": "AAAA-BBBB-CCCC"})
	mustStatus(t, bad, http.StatusUnprocessableEntity)
	if th, _ := e.st.GetThrottle(ctx, keyFactor+u.ID); th.Failures != 1 {
		t.Errorf("a wrong recovery code was not charged: %+v", th)
	}

	r = b.follow(b.submit(r, map[string]string{"code": e.o.codes[0]}))
	mustStep(t, r, StepMFAEnrol)
	checkPage(t, r)
	if h1 := text(find(r.doc, func(n *html.Node) bool { return n.Data == "h1" })); h1 != "Set up a new second factor" {
		t.Errorf("the enrolment after a lost phone is titled %q", h1)
	}
	if byID(r.doc, "replace-later") == nil || !strings.Contains(r.notice(), "recovery code") {
		t.Errorf("no notice or Not now: %s", text(r.doc))
	}
	if !signedOut(other) {
		t.Error("the other session is still signed in")
	}
	if len(e.eventsOf(store.EventFactorLost)) != 1 {
		t.Error("mfa.lost is not audited")
	}
	// Until the new factor is in place, the journey goes nowhere else.
	mustRedirect(t, b.get(PathNext), PathMFAEnrol)

	// A new authenticator app (it replaces the lost one), then new codes.
	secret := text(byID(r.doc, "totp-secret"))
	if strings.ReplaceAll(secret, " ", "") == strings.ReplaceAll(e.o.secret, " ", "") {
		t.Fatal("the same secret again")
	}
	r = b.follow(b.submit(r, map[string]string{"code": codeAt(secret, e.clock.Now())}))
	mustStep(t, r, StepRecoveryCodes)
	var codes []string
	for _, n := range findAll(r.doc, func(n *html.Node) bool { return attr(n, "class") == "recovery-code" }) {
		codes = append(codes, n.FirstChild.Data)
	}
	if len(codes) == 0 || slices.Contains(codes, e.o.codes[1]) {
		t.Fatalf("fresh codes: %v", codes)
	}
	r = b.follow(b.submit(r, map[string]string{"accept": "yes"}))
	// The phone from before is offered for removal (the old app is gone).
	mustStep(t, r, StepLostFactor)
	checkPage(t, r)
	boxes := findAll(r.form(), func(n *html.Node) bool { return attr(n, "name") == "remove" })
	if len(boxes) != 1 || attr(boxes[0], "value") != factorPhone+":old-phone" {
		t.Fatalf("offered for removal: %s", text(r.doc))
	}
	bad = b.submit(r, map[string]string{"choice": "remove"})
	mustStatus(t, bad, http.StatusUnprocessableEntity)
	d := b.done(b.follow(b.submit(r, map[string]string{"choice": "remove", "remove": factorPhone + ":old-phone"})))
	if !d.SignedIn || d.UserID != u.ID {
		t.Fatalf("after the replacement: %+v", d)
	}
	if devs, _ := e.st.ApprovalDevices(ctx, u.ID); len(devs) != 0 {
		t.Fatalf("the lost phone is still paired: %+v", devs)
	}
	if n := len(e.eventsOf(store.EventDeviceRemove)); n != 1 {
		t.Errorf("%d phone removals audited", n)
	}
	e.h.Wait()
	var subjects []string
	for _, m := range e.mails(alice) {
		subjects = append(subjects, m.Subject)
	}
	for _, want := range []string{noticeLostPhone, noticeReplaced, noticeDeviceRemoved} {
		if !slices.ContainsFunc(subjects, func(s string) bool { return strings.Contains(s, want) }) {
			t.Errorf("no email %q among %v", want, subjects)
		}
	}

	// The old app, the used code and the old codes work no more; the new
	// ones do.
	b = e.browser()
	r = laterSignIn(t, b, alicePw)
	for _, c := range []string{codeAt(e.o.secret, e.clock.Now().Add(30*time.Second)), e.o.codes[0], e.o.codes[1]} {
		mustStatus(t, b.submit(r, map[string]string{"code": c}), http.StatusUnprocessableEntity)
	}
	e.clock.Advance(30 * time.Second)
	mustStatus(t, b.follow(b.submit(r, map[string]string{"code": codeAt(secret, e.clock.Now())})), http.StatusOK)
	b = e.browser()
	r = laterSignIn(t, b, alicePw)
	if d := b.done(b.follow(b.submit(r, map[string]string{"code": codes[0]}))); !d.SignedIn {
		t.Fatalf("a new recovery code: %+v", d)
	}
}

// TestLostPhoneOnce: a recovery code works once, on the lost page as
// anywhere (also when twenty browsers race with it).
func TestLostPhoneOnce(t *testing.T) {
	t.Parallel()
	e := newRecoveryEnv(t)
	var pages []*resp
	var bs []*browser
	for range 20 {
		b := e.browser()
		laterSignIn(t, b, alicePw)
		bs, pages = append(bs, b), append(pages, b.get(PathLostPhone))
	}
	// The winner signs the others out: a loser sees its code refused, or
	// its session gone.
	answers := racing(20, func(i int) string {
		r := bs[i].submit(pages[i], map[string]string{"code": e.o.codes[3]})
		return r.location
	})
	if c := countOf(answers, PathNext); c != 1 {
		t.Fatalf("%d of 20 racing uses of one recovery code went on: %v", c, answers)
	}
	if n := len(e.eventsOf(store.EventFactorLost)); n != 1 {
		t.Errorf("%d mfa.lost events", n)
	}
	// The used code is refused afterwards too. The losers' refusals were
	// wrong second factors from unknown browsers: as many as reached the
	// check (it depends on timing) count towards a lock, which an
	// administrator's unlock clears first.
	for _, k := range accountKeys(e.o.user) {
		if err := e.st.ResetThrottle(t.Context(), k); err != nil {
			t.Fatal(err)
		}
	}
	b := e.browser()
	laterSignIn(t, b, alicePw)
	r := b.get(PathLostPhone)
	mustStatus(t, b.submit(r, map[string]string{"code": e.o.codes[3]}), http.StatusUnprocessableEntity)
}

// TestLostPhoneNothingLeft: without recovery codes the page explains the
// helpdesk and takes no code; "Not now" after a recovery code goes on with
// the factors the officer has.
func TestLostPhoneNothingLeft(t *testing.T) {
	t.Parallel()
	e := newRecoveryEnv(t)
	u := e.o.user

	b := e.browser()
	laterSignIn(t, b, alicePw)
	r := b.follow(b.submit(b.get(PathLostPhone), map[string]string{"code": e.o.codes[0]}))
	mustStep(t, r, StepMFAEnrol)
	r = b.post(PathMFAEnrol, url.Values{"later": {"1"}})
	mustRedirect(t, r, PathNext)
	r = b.follow(r)
	if !strings.Contains(text(r.doc), "Set up a new second factor on your account page soon") {
		t.Errorf("after Not now: %s", text(r.doc))
	}
	if tt, err := e.st.TOTPByUser(t.Context(), u.ID); err != nil || !tt.Confirmed {
		t.Fatal("Not now changed the factors")
	}

	if err := e.st.DeleteRecoveryCodes(t.Context(), u.ID); err != nil {
		t.Fatal(err)
	}
	b = e.browser()
	laterSignIn(t, b, alicePw)
	r = b.get(PathLostPhone)
	mustStatus(t, r, http.StatusOK)
	checkPage(t, r)
	if r.form() != nil {
		t.Error("a code is asked of an officer who has none")
	}
	txt := text(r.doc)
	for _, want := range append([]string{"no recovery codes left", config.DefaultHelpdesk}, config.DefaultHelpdeskAsks...) {
		if !strings.Contains(txt, want) {
			t.Errorf("the page does not say %q: %s", want, txt)
		}
	}
	// A browser not at the challenge has no lost page.
	mustRedirect(t, e.browser().get(PathLostPhone), PathSignIn)
}

var onboardingPwRE = regexp.MustCompile(`(?m)^\s*Initial password:\s*(\S+)`)

// initialPassword reads the initial password of the newest onboarding
// email to addr.
func (e *recoveryEnv) initialPassword(addr string) string {
	e.t.Helper()
	e.h.Wait()
	m := e.lastMail(addr)
	pw := onboardingPwRE.FindStringSubmatch(m.Text)
	if pw == nil {
		e.t.Fatalf("no initial password in %q:\n%s", m.Subject, m.Text)
	}
	return pw[1]
}

// TestLostInvitation: "Didn't get your onboarding email, or has it
// expired?" sends a fresh one at once where requests.approval is
// automatic: a new initial password and expiry, the old one useless.
func TestLostInvitation(t *testing.T) {
	t.Parallel()
	e := newRecoveryEnv(t)
	ctx := t.Context()
	const kim = "kim@partner.example" // automatic
	inv, err := e.h.admin().Invite(ctx, store.ActorCLI, kim, Names{Full: "Kim Partner"})
	if err != nil {
		t.Fatal(err)
	}
	first := e.initialPassword(kim)
	if first != inv.InitialPassword {
		t.Fatal("the onboarding email's password is not the invitation's")
	}

	for _, page := range []string{PathSignIn, PathRequest} {
		r := e.browser().open(page)
		if find(r.doc, func(n *html.Node) bool { return n.Data == "a" && attr(n, "href") == PathInvitation }) == nil {
			t.Errorf("%s has no link to %s", page, PathInvitation)
		}
	}
	e.clock.Advance(31 * 24 * time.Hour) // the invitation has expired
	b := e.browser()
	r := b.get(PathInvitation)
	mustStep(t, r, StepLostInvitation)
	checkPage(t, r)
	mustStatus(t, b.submit(r, map[string]string{"email": "not an address"}), http.StatusBadRequest)
	r = b.submit(r, map[string]string{"email": " Kim@Partner.example "})
	mustRedirect(t, r, PathInvitationSent)
	checkPage(t, b.follow(r))
	fresh := e.initialPassword(kim)
	if fresh == first {
		t.Fatal("the fresh onboarding email has the old password")
	}
	u, err := e.st.UserByUsername(ctx, kim)
	if err != nil || u.State != store.UserInvited || !u.InviteExpiresAt.Equal(e.clock.Now().Add(30*24*time.Hour)) || u.Name != "Kim Partner" {
		t.Fatalf("after the fresh email: %+v, %v", u, err)
	}
	if ok, _ := password.Verify(u.PasswordHash, first); ok {
		t.Fatal("the old initial password still works")
	}
	if ok, _ := password.Verify(u.PasswordHash, fresh); !ok {
		t.Fatal("the new initial password does not work")
	}
	for _, ev := range []store.Event{store.EventInviteAsk, store.EventInviteResend} {
		if len(e.eventsOf(ev)) != 1 {
			t.Errorf("%s not audited once", ev)
		}
	}
	// It signs in to the onboarding journey.
	b = e.browser()
	r = b.open(PathSignIn)
	r = b.follow(b.submit(r, map[string]string{"username": kim}))
	mustStep(t, b.follow(b.submit(r, map[string]string{"password": fresh})), StepMFAEnrol)

	// Twenty racing asks (ten minutes later) send one email.
	e.clock.Advance(11 * time.Minute)
	before := len(e.mails(kim))
	statuses := racing(20, func(int) int {
		return e.browser().post(PathInvitation, url.Values{"email": {kim}}).status
	})
	if c := countOf(statuses, http.StatusSeeOther); c != 20 {
		t.Errorf("racing asks: %v", statuses)
	}
	e.h.Wait()
	if n := len(e.mails(kim)) - before; n != 1 {
		t.Errorf("%d onboarding emails for 20 racing asks", n)
	}
	// Three a day.
	e.clock.Advance(11 * time.Minute)
	mustRedirect(t, e.browser().post(PathInvitation, url.Values{"email": {kim}}), PathInvitationSent)
	e.clock.Advance(11 * time.Minute)
	r = e.browser().post(PathInvitation, url.Values{"email": {kim}})
	mustStatus(t, r, http.StatusTooManyRequests)
	if r.fieldError(t, "email") != msgInviteAskDaily {
		t.Errorf("the fourth in a day: %q", r.errorSummary())
	}
}

// TestLostInvitationApproved: where requests.approval is manual, the fresh
// email waits for an approver, who sees what is asked in the console; the
// old password works until then, and not after.
func TestLostInvitationApproved(t *testing.T) {
	t.Parallel()
	e := newRecoveryEnv(t)
	ctx := t.Context()
	const lee = "lee@agency.example" // manual
	if _, err := e.h.admin().Invite(ctx, store.ActorCLI, lee, Names{Full: "Lee Officer"}); err != nil {
		t.Fatal(err)
	}
	first := e.initialPassword(lee)
	mustRedirect(t, e.browser().post(PathInvitation, url.Values{"email": {lee}}), PathInvitationSent)
	e.h.Wait()
	reqs := e.requests()
	if len(reqs) != 1 || reqs[0].Kind != store.RequestKindInvitation || reqs[0].Status != store.RequestPending || reqs[0].Email != lee {
		t.Fatalf("requests: %+v", reqs)
	}
	if m := e.lastMail(approver); !strings.Contains(m.Subject, "New onboarding email for Lee Officer") || !strings.Contains(m.Text, "/admin/requests/"+reqs[0].ID) {
		t.Fatalf("the approver's email %q:\n%s", m.Subject, m.Text)
	}
	if u, _ := e.st.UserByUsername(ctx, lee); !mustVerify(u, first) {
		t.Fatal("the old password stopped working before the approval")
	}
	// Asking again (ten minutes later) adds nothing to decide.
	e.clock.Advance(11 * time.Minute)
	mustRedirect(t, e.browser().post(PathInvitation, url.Values{"email": {lee}}), PathInvitationSent)
	if n := len(e.requests()); n != 1 {
		t.Fatalf("%d requests after asking twice", n)
	}

	ab, r := e.signIn(approver, "/admin/requests/"+reqs[0].ID)
	if !strings.Contains(text(r.doc), "A new onboarding email") {
		t.Errorf("the console does not say what is asked: %s", text(r.doc))
	}
	mustRedirect(t, ab.submitAction(r, "approve", 0, nil), PathAdminRequests)
	fresh := e.initialPassword(lee)
	u, _ := e.st.UserByUsername(ctx, lee)
	if fresh == first || mustVerify(u, first) || !mustVerify(u, fresh) || u.Name != "Lee Officer" {
		t.Fatal("the approval did not send a fresh initial password")
	}
	if got := e.requests()[0]; got.Status != store.RequestApproved {
		t.Fatalf("the request after approval: %+v", got)
	}

	// A denial tells the officer in its own words.
	e.clock.Advance(11 * time.Minute)
	mustRedirect(t, e.browser().post(PathInvitation, url.Values{"email": {lee}}), PathInvitationSent)
	e.h.Wait()
	var open store.AccountRequest
	for _, q := range e.requests() {
		if q.Status == store.RequestPending {
			open = q
		}
	}
	if _, err := e.h.admin().DenyRequest(ctx, store.ActorCLI, open.ID, "Your contract has ended."); err != nil {
		t.Fatal(err)
	}
	if m := e.lastMail(lee); !strings.Contains(m.Subject, "new onboarding email was not approved") || !strings.Contains(m.Text, "Your contract has ended.") {
		t.Errorf("the denial %q:\n%s", m.Subject, m.Text)
	}
}

func mustVerify(u *store.User, pw string) bool {
	ok, _ := password.Verify(u.PasswordHash, pw)
	return ok
}

// TestLostInvitationSameAnswer: the page and its time are the same for an
// invitation, an account already set up (emailed so), a disabled account
// and no account; the limit is per address too.
func TestLostInvitationSameAnswer(t *testing.T) {
	t.Parallel()
	e := newRecoveryEnv(t)
	const (
		kim    = "kim@partner.example"
		dora   = "dora@agency.example"
		nobody = "nobody@agency.example"
	)
	if _, err := e.h.admin().Invite(t.Context(), store.ActorCLI, kim, Names{Full: "Kim"}); err != nil {
		t.Fatal(err)
	}
	e.seedDisabled(dora)
	e.h.Wait()
	before := len(e.smtp.Messages())
	e.sameAnswer(PathInvitation, "email", PathInvitationSent, kim, alice, dora, nobody)
	e.h.Wait()
	if n := len(e.smtp.Messages()) - before; n != 2 {
		t.Errorf("%d emails, want 2 (kim's onboarding, alice's already set up)", n)
	}
	if m := e.lastMail(alice); !strings.Contains(m.Subject, "already set up") || !strings.Contains(m.Text, e.srv.URL+PathForgot) {
		t.Errorf("an active account's email %q:\n%s", m.Subject, m.Text)
	}
	outcomes := map[string]string{}
	for _, ev := range e.eventsOf(store.EventInviteAsk) {
		outcomes[ev.Username] = string(ev.Detail)
	}
	for who, want := range map[string]store.InvitationOutcome{kim: store.InvitationResent, alice: store.InvitationActive, dora: store.InvitationNone, nobody: store.InvitationNone} {
		if !strings.Contains(outcomes[who], `"outcome":"`+string(want)+`"`) {
			t.Errorf("%s: %s, want %s", who, outcomes[who], want)
		}
	}

	// Time: every answer waits for the floor, whatever it found. Each
	// ask comes a day after the last (three a day per mailbox), once the
	// previous one's background work is done.
	e.h.recoveryFloor = 200 * time.Millisecond
	took := func(who string) time.Duration {
		e.h.Wait()
		e.clock.Advance(25 * time.Hour)
		start := time.Now()
		mustRedirect(t, e.browser().post(PathInvitation, url.Values{"email": {who}}), PathInvitationSent)
		return time.Since(start)
	}
	var invited, none []time.Duration
	for range 5 {
		invited, none = append(invited, took(kim)), append(none, took(nobody))
	}
	sameTiming(t, e.h.recoveryFloor, "an invitation", invited, none)
	e.h.recoveryFloor = 0

	e.h.recLimits.perAddress = 1
	e.clock.Advance(2 * time.Hour)
	mustRedirect(t, e.browser().post(PathInvitation, url.Values{"email": {"someone@agency.example"}}), PathInvitationSent)
	mustStatus(t, e.browser().post(PathInvitation, url.Values{"email": {"someone.else@agency.example"}}), http.StatusTooManyRequests)
}

// TestRecoveryWithPasskeys: an officer whose second factor is a passkey
// resets the password with it, then loses it: a recovery code, a new
// passkey, and the lost one removed.
func TestRecoveryWithPasskeys(t *testing.T) {
	t.Parallel()
	e := newConsoleEnv(t, func(c *config.Config) { c.Issuer = strings.Replace(c.Issuer, "127.0.0.1", "localhost", 1) })
	e.srv.URL = e.cfg.Issuer
	e.h.recoveryFloor = 0
	o, a := syncedPasskeyOfficer(t, e.env)
	re := &recoveryEnv{consoleEnv: e, o: o}

	b := e.browser()
	r := b.follow(b.openLink(re.resetLink()))
	mustStep(t, r, StepMFAChallenge)
	if byID(r.doc, "passkey-challenge") == nil {
		t.Fatal("the passkey is not offered during the reset")
	}
	r = b.mustGo(b.assert(PathPasskeyChallenge, a), PathNext)
	mustStep(t, r, StepResetPassword)
	r = b.follow(b.submit(r, map[string]string{"new_password": alicePw2, "confirm_password": alicePw2}))
	if !strings.HasSuffix(r.url, PathAccount) || !mustVerify(e.user(o.user.ID), alicePw2) {
		t.Fatalf("the reset with a passkey ended at %s", r.url)
	}

	// The passkey is lost.
	old := e.passkeys(o.user.ID)[0]
	b, r = signInTo(t, e.env, alice, alicePw2)
	mustStep(t, r, StepMFAChallenge)
	r = b.follow(b.submit(b.get(PathLostPhone), map[string]string{"code": o.codes[0]}))
	mustStep(t, r, StepMFAEnrol)
	fresh := e.authenticator()
	res, _ := b.register(PathPasskeyEnrol, fresh, "")
	r = b.mustGo(res, PathNext)
	mustStep(t, r, StepRecoveryCodes)
	r = b.follow(b.submit(r, map[string]string{"accept": "yes"}))
	mustStep(t, r, StepLostFactor)
	key := factorPasskey + ":" + b64.EncodeToString(old.ID)
	if find(r.form(), func(n *html.Node) bool { return attr(n, "value") == key }) == nil {
		t.Fatalf("the lost passkey is not offered: %s", text(r.doc))
	}
	b.done(b.follow(b.submit(r, map[string]string{"choice": "remove", "remove": key})))
	left := e.passkeys(o.user.ID)
	if len(left) != 1 || string(left[0].ID) == string(old.ID) {
		t.Fatalf("passkeys after the replacement: %+v", left)
	}
	// The lost one signs in no more; the new one does.
	b, r = signInTo(t, e.env, alice, alicePw2)
	if _, err := a.Get(b.options(PathPasskeyChallenge), nil); err == nil {
		t.Fatal("the removed passkey is still asked for")
	}
	b.mustGo(b.assert(PathPasskeyChallenge, fresh), PathNext)
}

// TestResetWithApprovalApp: the approval on the paired phone is the
// second factor of a reset too.
func TestResetWithApprovalApp(t *testing.T) {
	t.Parallel()
	e, push := approvalEnv(t)
	e.h.recoveryFloor = 0
	p := e.phone(push)
	onboardWithPhone(t, e, e.browser(), p)
	re := &recoveryEnv{consoleEnv: &consoleEnv{env: e, smtp: withSMTP(e)}}

	b := e.browser()
	r := b.follow(b.openLink(re.resetLink()))
	mustStep(t, r, StepMFAChallenge)
	status, v := b.startJSON(PathChallengeApprove)
	if status != http.StatusOK || v.State != "number" {
		t.Fatalf("start: %d %+v", status, v)
	}
	req := p.onlyPending()
	if status, out := p.answer(req, v.Number, approval.Approve); status != http.StatusOK || out["state"] != "approved" {
		t.Fatalf("approve: %d %v", status, out)
	}
	r = b.follow(b.post(PathChallengeApprove+approveFinish, nil))
	mustStep(t, r, StepResetPassword)
	r = b.follow(b.submit(r, map[string]string{"new_password": alicePw2, "confirm_password": alicePw2}))
	if !strings.HasSuffix(r.url, PathAccount) || !mustVerify(e.user("u-alice-agency-example"), alicePw2) {
		t.Fatalf("the reset with the approval app ended at %s: %s", r.url, text(r.doc))
	}
}
