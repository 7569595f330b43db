package flows

import (
	"encoding/base32"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/flows/password"
	"github.com/lanyard-idp/lanyard/provider/store"
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

const (
	alice      = "alice@agency.example"
	alicePw    = "Quiet-harbour-lantern-97"
	aliceFirst = "vh3kq-8wz2m-c7xtp-4rj9d" // an initial password of Generate's shape
)

// onboarded is what a completed first sign-in leaves the officer with.
type onboarded struct {
	user   *store.User
	secret string
	codes  []string
	steps  []string
	done   done
}

// firstLogin walks the guide: identify, password, mfa-enrol,
// recovery-codes, change-password, privacy, terms (every configured
// document's step), then the resume.
func firstLogin(t *testing.T, e *env, b *browser) onboarded {
	t.Helper()
	var o onboarded
	r := b.open("/test/authorize?n=1")
	for i := 0; i < 12; i++ {
		step := r.step()
		if step == "" {
			break
		}
		checkPage(t, r)
		mustStatus(t, r, 200)
		o.steps = append(o.steps, step)
		var fields map[string]string
		switch step {
		case StepIdentify:
			fields = map[string]string{"username": alice}
		case StepPassword:
			fields = map[string]string{"password": aliceFirst}
		case StepMFAEnrol:
			o.secret = text(byID(r.doc, "totp-secret"))
			fields = map[string]string{"code": codeAt(o.secret, e.clock.Now())}
		case StepRecoveryCodes:
			for _, n := range findAll(r.doc, func(n *html.Node) bool { return attr(n, "class") == "recovery-code" }) {
				o.codes = append(o.codes, n.FirstChild.Data)
			}
			fields = map[string]string{"accept": "yes"}
		case StepChangePassword:
			fields = map[string]string{"current_password": aliceFirst, "new_password": alicePw, "confirm_password": alicePw}
		default:
			if _, ok := e.cfg.Document(step); !ok {
				t.Fatalf("unexpected step %q", step)
			}
			fields = map[string]string{"accept": "yes"}
		}
		r = b.follow(b.submit(r, fields))
	}
	o.done = b.done(r)
	o.user = e.user(o.done.UserID)
	return o
}

func TestFirstLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.seedUser(alice, aliceFirst, true)
	b := e.browser()

	// Look at each page on the way, as the guide describes it.
	r := b.open("/test/authorize?n=1")
	mustStep(t, r, StepIdentify)
	checkPage(t, r)
	if got := r.buttonText(); got != "Next" {
		t.Errorf("identify button %q", got)
	}
	r = b.follow(b.submit(r, map[string]string{"username": " Alice@Agency.Example "}))
	mustStep(t, r, StepPassword)
	checkPage(t, r)
	if got := r.buttonText(); got != "Sign in" {
		t.Errorf("password button %q", got)
	}
	if find(r.doc, func(n *html.Node) bool {
		return n.Data == "a" && attr(n, "href") == PathSignIn && text(n) == "Not you?"
	}) == nil {
		t.Errorf("no \"Not you?\" link")
	}
	if !strings.Contains(text(r.doc), alice) {
		t.Errorf("password page does not show the canonical username")
	}
	r = b.follow(b.submit(r, map[string]string{"password": aliceFirst}))
	mustStep(t, r, StepMFAEnrol)
	checkPage(t, r)
	if !strings.Contains(text(r.doc), "Step 1 of 5") {
		t.Errorf("enrolment progress: %s", text(find(r.doc, func(n *html.Node) bool { return attr(n, "class") == "progress" })))
	}
	img := find(r.doc, func(n *html.Node) bool { return n.Data == "img" })
	if img == nil || !strings.HasPrefix(attr(img, "src"), "data:image/png;base64,") || attr(img, "alt") != "QR code for your authenticator app" {
		t.Fatalf("QR code image missing or wrong")
	}
	if !strings.Contains(text(r.doc), "Lanyard (alice@agency.example)") {
		t.Errorf("issuer/account label missing")
	}
	if !strings.Contains(strings.ToLower(text(r.doc)), "passkey") {
		t.Errorf("the enrolment page does not mention passkeys")
	}
	secret := text(byID(r.doc, "totp-secret"))
	// A reload shows the same secret.
	if again := b.get(PathMFAEnrol); text(byID(again.doc, "totp-secret")) != secret {
		t.Fatalf("the secret changed on reload")
	}
	// A wrong code: same page, same secret, the guide's message.
	bad := b.submit(r, map[string]string{"code": wrongCode(secret, e.clock.Now())})
	mustStatus(t, bad, http.StatusUnprocessableEntity)
	checkPage(t, bad)
	if got := bad.fieldError(t, "code"); got != msgWrongEnrolCode {
		t.Errorf("wrong code message %q", got)
	}
	if text(byID(bad.doc, "totp-secret")) != secret {
		t.Errorf("the secret changed after a wrong code")
	}
	if _, err := e.st.TOTPByUser(t.Context(), u.ID); err == nil {
		t.Fatalf("a TOTP secret was stored before a correct code")
	}
	r = b.follow(b.submit(r, map[string]string{"code": codeAt(secret, e.clock.Now())}))
	mustStep(t, r, StepRecoveryCodes)
	checkPage(t, r)
	if !strings.Contains(text(r.doc), "Step 2 of 5") {
		t.Errorf("recovery codes progress missing")
	}
	codes := findAll(r.doc, func(n *html.Node) bool { return attr(n, "class") == "recovery-code" })
	if len(codes) != 10 {
		t.Fatalf("%d recovery codes shown", len(codes))
	}
	// Not confirming: same page, an error, codes still there.
	bad = b.submit(r, nil)
	mustStatus(t, bad, http.StatusUnprocessableEntity)
	if bad.fieldError(t, "accept") != msgSaveCodes {
		t.Errorf("recovery confirm message missing")
	}
	r = b.follow(b.submit(r, map[string]string{"accept": "yes"}))
	mustStep(t, r, StepChangePassword)
	checkPage(t, r)
	if got := r.buttonText(); got != "Sign in" {
		t.Errorf("change-password button %q", got)
	}
	// Shown once: the codes are gone from the session.
	if got := b.get(PathRecoveryCodes); got.status != http.StatusSeeOther || got.location != PathChangePassword {
		t.Errorf("recovery codes page reachable again: %d %q", got.status, got.location)
	}
	r = b.follow(b.submit(r, map[string]string{"current_password": aliceFirst, "new_password": alicePw, "confirm_password": alicePw}))
	mustStep(t, r, StepPrivacy)
	checkPage(t, r)
	if got := r.buttonText(); got != "Accept" {
		t.Errorf("privacy button %q", got)
	}
	if !strings.Contains(text(r.doc), "Privacy policy") {
		t.Errorf("privacy document missing")
	}
	bad = b.submit(r, nil)
	mustStatus(t, bad, http.StatusUnprocessableEntity)
	if got := bad.fieldError(t, "accept"); !strings.HasPrefix(got, "Tick the box to accept the Privacy policy") {
		t.Errorf("missing accept message %q", got)
	}
	r = b.follow(b.submit(r, map[string]string{"accept": "yes"}))
	mustStep(t, r, StepTerms)
	checkPage(t, r)
	if !strings.Contains(text(r.doc), "Step 5 of 5") {
		t.Errorf("terms progress missing")
	}
	r = b.follow(b.submit(r, map[string]string{"accept": "yes"}))
	d := b.done(r)
	if !d.SignedIn || d.InProgress || d.UserID != u.ID || d.N != "1" {
		t.Fatalf("resumed with %+v", d)
	}
	if !slices.Contains(d.AMR, "otp") || !slices.Contains(d.AMR, "pwd") || !slices.Contains(d.AMR, "mfa") || d.ACR != acrMFA {
		t.Errorf("amr %v acr %q", d.AMR, d.ACR)
	}
	if d.SessionID == "" || d.SessionID != b.sessionKey() || d.SessionID == store.SessionRef(b.rawSessionID()) {
		t.Errorf("session id %q", d.SessionID)
	}
	if !d.AuthTime.Equal(e.clock.Now()) {
		t.Errorf("auth time %v", d.AuthTime)
	}

	// What the store now holds.
	got := e.user(u.ID)
	if got.State != store.UserActive || got.PasswordInitial || got.LastSignInAt.IsZero() {
		t.Errorf("user after onboarding: %+v", got)
	}
	if ok, _ := password.Verify(got.PasswordHash, alicePw); !ok {
		t.Errorf("new password not stored")
	}
	totp, err := e.st.TOTPByUser(t.Context(), u.ID)
	if err != nil || !totp.Confirmed || totp.LastStep == 0 {
		t.Fatalf("TOTP: %+v %v", totp, err)
	}
	if plain, err := e.box.Open(totp.Secret, purposeTOTP); err != nil || b32.EncodeToString(plain) != strings.ReplaceAll(secret, " ", "") {
		t.Errorf("stored TOTP secret not sealed or not the one shown")
	}
	if n, _ := e.st.RecoveryCodesLeft(t.Context(), u.ID); n != 10 {
		t.Errorf("%d recovery codes stored", n)
	}
	acc, _ := e.st.Acceptances(t.Context(), u.ID)
	if len(acc) != 2 {
		t.Errorf("acceptances: %+v", acc)
	}
	want := []string{"signin.password", "signin.failure", "mfa.enrol", "password.change", "policy.accept", "policy.accept", "signin.success"}
	if evs := e.events(""); !slices.Equal(evs, want) {
		t.Errorf("audit trail %v, want %v", evs, want)
	}
}

func TestFirstLoginOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seedUser(alice, aliceFirst, true)
	o := firstLogin(t, e, e.browser())
	want := []string{"identify", "password", "mfa-enrol", "recovery-codes", "change-password", "privacy", "terms"}
	if !slices.Equal(o.steps, want) {
		t.Fatalf("steps %v, want %v", o.steps, want)
	}
	if !o.done.SignedIn {
		t.Fatal("not signed in")
	}
}

// TestADocumentIsAStep: a code of conduct is configuration only. Each of
// three documents is a step of its own, named by its id, in the configured
// order, counted in "Step N of M", recorded once; a reload adds a fourth
// whose page exists at once.
func TestADocumentIsAStep(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	conduct := filepath.Join(dir, "conduct.md")
	if err := os.WriteFile(conduct, []byte("# Code of conduct\n\nTreat everyone with respect.\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *config.Config) {
		c.Documents = append(c.Documents, config.Document{ID: "code-of-conduct", Title: "Code of conduct", Version: "2026-02", File: conduct})
		c.Journey.Steps = []string{"mfa-enrol", "code-of-conduct", "change-password", "privacy", "terms"}
	})
	u := e.seedUser(alice, aliceFirst, true)
	b := e.browser()

	r := laterSignIn(t, b, aliceFirst)
	mustStep(t, r, StepMFAEnrol)
	if !strings.Contains(text(r.doc), "Step 1 of 6") {
		t.Errorf("a third document is not counted: %s", text(find(r.doc, func(n *html.Node) bool { return attr(n, "class") == "progress" })))
	}
	secret := text(byID(r.doc, "totp-secret"))
	r = b.follow(b.submit(r, map[string]string{"code": codeAt(secret, e.clock.Now())}))
	mustStep(t, r, StepRecoveryCodes)
	// A later document's page is not reachable before its turn.
	mustRedirect(t, b.get("/signin/code-of-conduct"), PathRecoveryCodes)
	r = b.follow(b.submit(r, map[string]string{"accept": "yes"}))

	mustStep(t, r, "code-of-conduct")
	checkPage(t, r)
	if !strings.HasSuffix(r.url, "/signin/code-of-conduct") || attr(r.form(), "action") != "/signin/code-of-conduct" {
		t.Errorf("code of conduct at %s, form action %q", r.url, attr(r.form(), "action"))
	}
	if h1 := text(find(r.doc, func(n *html.Node) bool { return n.Data == "h1" })); h1 != "Code of conduct" {
		t.Errorf("heading %q", h1)
	}
	for _, want := range []string{"Treat everyone with respect.", "Version 2026-02", "Step 3 of 6"} {
		if !strings.Contains(text(r.doc), want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	r = b.follow(b.submit(r, map[string]string{}))
	mustStatus(t, r, http.StatusUnprocessableEntity)
	if got := r.fieldError(t, "accept"); !strings.Contains(got, "Code of conduct") {
		t.Errorf("unticked box: %q", got)
	}
	var steps []string
	for r = b.follow(b.submit(r, map[string]string{"accept": "yes"})); r.step() != ""; {
		steps = append(steps, r.step())
		fields := map[string]string{"accept": "yes"}
		if r.step() == StepChangePassword {
			fields = map[string]string{"current_password": aliceFirst, "new_password": alicePw, "confirm_password": alicePw}
		}
		r = b.follow(b.submit(r, fields))
	}
	if got := strings.Join(steps, ","); got != "change-password,privacy,terms" {
		t.Fatalf("after the code of conduct: %s", got)
	}
	if d := b.done(r); !d.SignedIn {
		t.Fatalf("not signed in: %+v", d)
	}
	acc, err := e.st.Acceptances(t.Context(), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range acc {
		got = append(got, a.Document+"@"+a.Version)
	}
	slices.Sort(got)
	if want := []string{"code-of-conduct@2026-02", "privacy@2026-01", "terms@2026-01"}; !slices.Equal(got, want) {
		t.Errorf("acceptances %v, want %v", got, want)
	}
	if n := e.countEvents(evPolicyAccept); n != 3 {
		t.Errorf("%d acceptances audited, want 3", n)
	}

	// A reload adds a document: its page exists at once, and the next
	// authorization goes through it.
	rules := filepath.Join(dir, "rules.md")
	if err := os.WriteFile(rules, []byte("Lock your screen.\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := *e.cfg
	cfg.Documents = append(slices.Clone(e.cfg.Documents), config.Document{ID: "security-rules", Title: "Security rules", Version: "1", File: rules})
	cfg.Journey.Steps = append(slices.Clone(e.cfg.Journey.Steps), "security-rules")
	if err := e.h.SetConfig(&cfg); err != nil {
		t.Fatal(err)
	}
	r = b.open("/test/authorize?n=3")
	mustStep(t, r, "security-rules")
	if !strings.Contains(text(r.doc), "Lock your screen.") {
		t.Errorf("the new document: %s", text(r.doc))
	}
	if d := b.done(b.follow(b.submit(r, map[string]string{"accept": "yes"}))); !d.SignedIn || d.N != "3" {
		t.Fatalf("after the new document: %+v", d)
	}
	// A page for no document is not found.
	mustStatus(t, b.get("/signin/no-such-document"), http.StatusNotFound)
	// A reload cannot give a document the name of a step or page.
	bad := cfg
	bad.Documents = append(slices.Clone(cfg.Documents), config.Document{ID: "next", Title: "Next", Version: "1", File: rules})
	if err := e.h.SetConfig(&bad); err == nil || !strings.Contains(err.Error(), `"next" is taken`) {
		t.Errorf("a document named next: %v", err)
	}
}

// laterSignIn signs in an officer up to the first step after the password
// (the challenge, for an onboarded one).
func laterSignIn(t testing.TB, b *browser, pw string) *resp {
	t.Helper()
	r := b.open("/test/authorize?n=2")
	mustStep(t, r, StepIdentify)
	r = b.follow(b.submit(r, map[string]string{"username": alice}))
	mustStep(t, r, StepPassword)
	return b.follow(b.submit(r, map[string]string{"password": pw}))
}

func TestLaterSignInWithTOTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seedUser(alice, aliceFirst, true)
	o := firstLogin(t, e, e.browser())

	b := e.browser()
	r := laterSignIn(t, b, alicePw)
	mustStep(t, r, StepMFAChallenge)
	checkPage(t, r)
	if r.header.Get("Content-Security-Policy") == "" {
		t.Fatal("no CSP")
	}
	// The code used at enrolment is the same time step: refused.
	bad := b.submit(r, map[string]string{"code": codeAt(o.secret, e.clock.Now())})
	mustStatus(t, bad, http.StatusUnprocessableEntity)
	if bad.fieldError(t, "code") != msgWrongCode {
		t.Errorf("replayed enrolment code: %q", bad.errorSummary())
	}
	e.clock.Advance(30 * time.Second)
	code := codeAt(o.secret, e.clock.Now())
	d := b.done(b.follow(b.submit(r, map[string]string{"code": code})))
	if !d.SignedIn || !slices.Contains(d.AMR, "otp") || d.ACR != acrMFA || d.N != "2" {
		t.Fatalf("later sign-in: %+v", d)
	}

	// The same code from another browser: refused (a replay).
	b2 := e.browser()
	r = laterSignIn(t, b2, alicePw)
	mustStep(t, r, StepMFAChallenge)
	bad = b2.submit(r, map[string]string{"code": code})
	mustStatus(t, bad, http.StatusUnprocessableEntity)
	// Wrong formats are refused cleanly.
	for _, c := range []string{"12345", "1234567", "１２３４５６", strings.Repeat("9", 60000), "12 34 56", "<script>"} {
		bad = b2.submit(r, map[string]string{"code": c})
		if bad.status < 400 || bad.status >= 500 || bad.step() != StepMFAChallenge {
			t.Errorf("code %.10q: status %d", c, bad.status)
		}
	}
}

// atChallenges signs n browsers in as alice with her password, each to
// the second-factor challenge, and returns them and their pages.
func atChallenges(t *testing.T, e *env, n int) ([]*browser, []*resp) {
	t.Helper()
	bs, rs := make([]*browser, n), make([]*resp, n)
	for i := range bs {
		bs[i] = e.browser()
		rs[i] = laterSignIn(t, bs[i], alicePw)
		mustStep(t, rs[i], StepMFAChallenge)
	}
	return bs, rs
}

// racingChallenges signs twenty browsers in to the second-factor challenge
// as alice, posts code from all of them at once and returns how many were
// accepted; every other answer must be a refusal.
func racingChallenges(t *testing.T, e *env, code string) (accepted int) {
	t.Helper()
	const n = 20
	browsers, pages := atChallenges(t, e, n)
	var wg sync.WaitGroup
	results := make([]*resp, n)
	for i := range browsers {
		wg.Go(func() { results[i] = browsers[i].submit(pages[i], map[string]string{"code": code}) })
	}
	wg.Wait()
	for _, r := range results {
		switch {
		case r.status == http.StatusSeeOther && r.location == PathNext:
			accepted++
		case r.status == http.StatusUnprocessableEntity:
		default:
			t.Errorf("status %d location %q", r.status, r.location)
		}
	}
	return accepted
}

func TestTOTPReplayConcurrent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, manyTries)
	e.seedUser(alice, aliceFirst, true)
	o := firstLogin(t, e, e.browser())
	e.clock.Advance(30 * time.Second)
	code := codeAt(o.secret, e.clock.Now())

	// Twenty browsers at the challenge post the same code at once.
	if ok := racingChallenges(t, e, code); ok != 1 {
		t.Fatalf("%d racing requests accepted the same code, want 1", ok)
	}

	// One browser, one code, twenty racing posts: one wins.
	e.clock.Advance(30 * time.Second)
	code = codeAt(o.secret, e.clock.Now())
	b := e.browser()
	r := laterSignIn(t, b, alicePw)
	before := e.countEvents(evMFAChallenge)
	// Every request carries the same cookie: a shared jar would hand the
	// winner's new cookie to the stragglers.
	frozen := b.frozen()
	var wg sync.WaitGroup
	results := make([]*resp, 20)
	for i := range results {
		wg.Go(func() { results[i] = frozen.submit(r, map[string]string{"code": code}) })
	}
	wg.Wait()
	ok := 0
	for _, r := range results {
		if r.status == http.StatusSeeOther && r.location == PathNext {
			ok++
		} else if r.status >= 500 {
			t.Errorf("status %d: %s", r.status, text(r.doc))
		}
	}
	if ok != 1 {
		t.Fatalf("same session: %d accepted, want 1", ok)
	}
	if n := e.countEvents(evMFAChallenge) - before; n != 1 {
		t.Fatalf("same session: %d challenges passed, want 1", n)
	}
}

func TestRecoveryCode(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.seedUser(alice, aliceFirst, true)
	o := firstLogin(t, e, e.browser())

	b := e.browser()
	r := laterSignIn(t, b, alicePw)
	mustStep(t, r, StepMFAChallenge)
	// Typed loosely: upper case, spaces instead of dashes.
	typed := strings.ToUpper(strings.ReplaceAll(o.codes[0], "-", " "))
	d := b.done(b.follow(b.submit(r, map[string]string{"code": typed})))
	if !d.SignedIn || d.ACR != acrMFA {
		t.Fatalf("recovery code sign-in: %+v", d)
	}
	if n, _ := e.st.RecoveryCodesLeft(t.Context(), u.ID); n != 9 {
		t.Errorf("%d codes left", n)
	}
	if e.countEvents(evRecoveryUse) != 1 {
		t.Errorf("no %s audit event", evRecoveryUse)
	}
	// The same code again: refused.
	b2 := e.browser()
	r = laterSignIn(t, b2, alicePw)
	bad := b2.submit(r, map[string]string{"code": o.codes[0]})
	mustStatus(t, bad, http.StatusUnprocessableEntity)
	if bad.fieldError(t, "code") != msgWrongCode {
		t.Errorf("reused recovery code: %q", bad.errorSummary())
	}
	// A made-up code of the right shape: refused too.
	bad = b2.submit(r, map[string]string{"code": "abcd-efgh-jk"})
	mustStatus(t, bad, http.StatusUnprocessableEntity)

	// Down to three codes left: the officer is told before resuming.
	for _, c := range o.codes[1:7] {
		b := e.browser()
		r := laterSignIn(t, b, alicePw)
		r = b.follow(b.submit(r, map[string]string{"code": c}))
		if strings.Contains(r.url, "/test/done") {
			continue
		}
		if !strings.Contains(text(r.doc), "recovery codes left") {
			t.Fatalf("stopped without a notice: %s", text(r.doc))
		}
		cont := find(r.doc, func(n *html.Node) bool { return n.Data == "a" && text(n) == "Continue" })
		if cont == nil || !strings.HasPrefix(attr(cont, "href"), e.srv.URL+"/test/done") {
			t.Fatalf("no Continue link to the relying party")
		}
	}
	if n, _ := e.st.RecoveryCodesLeft(t.Context(), u.ID); n != 3 {
		t.Errorf("%d codes left, want 3", n)
	}
}

// The policy documents' pages: their URLs are a public contract, so the
// tests spell them out rather than derive them.
const (
	PathPrivacy = "/signin/privacy"
	PathTerms   = "/signin/terms"
)

func TestBypassesLandOnThePendingStep(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.seedUser(alice, aliceFirst, true)
	b := e.browser()

	// Before any sign-in every step leads to the start.
	for _, p := range []string{PathPassword, PathMFAEnrol, PathChangePassword, PathTerms, PathNext, PathAccount} {
		mustRedirect(t, b.get(p), PathSignIn)
	}
	r := b.open("/test/authorize?n=1")
	r = b.follow(b.submit(r, map[string]string{"username": alice}))
	mustStep(t, r, StepPassword)
	// Identified only: the later steps send back to the password.
	for _, p := range []string{PathMFAEnrol, PathMFAChallenge, PathRecoveryCodes, PathPrivacy, PathNext} {
		mustRedirect(t, b.get(p), PathPassword)
	}
	r = b.follow(b.submit(r, map[string]string{"password": aliceFirst}))
	mustStep(t, r, StepMFAEnrol)

	// Now at mfa-enrol. A later step's URL, GET or POST, lands back here and
	// changes nothing.
	for _, p := range []string{PathChangePassword, PathPrivacy, PathTerms, PathRecoveryCodes, PathMFAChallenge, PathPassword} {
		mustRedirect(t, b.get(p), PathMFAEnrol)
	}
	mustRedirect(t, b.post(PathPrivacy, url.Values{"accept": {"yes"}}), PathMFAEnrol)
	mustRedirect(t, b.post(PathTerms, url.Values{"accept": {"yes"}}), PathMFAEnrol)
	mustRedirect(t, b.post(PathChangePassword, url.Values{"current_password": {aliceFirst}, "new_password": {alicePw}, "confirm_password": {alicePw}}), PathMFAEnrol)
	mustRedirect(t, b.post(PathMFAChallenge, url.Values{"code": {"123456"}}), PathMFAEnrol)
	mustRedirect(t, b.post(PathRecoveryCodes, url.Values{"accept": {"yes"}}), PathMFAEnrol)
	mustRedirect(t, b.post(PathSignIn, url.Values{"username": {"mallory@agency.example"}}), PathMFAEnrol)
	if acc, _ := e.st.Acceptances(t.Context(), u.ID); len(acc) != 0 {
		t.Fatalf("an acceptance was stored out of order: %+v", acc)
	}
	if got := e.user(u.ID); !got.PasswordInitial {
		t.Fatalf("the password was changed out of order")
	}
	// The dispatcher never resumes while anything is pending.
	mustRedirect(t, b.get(PathNext), PathMFAEnrol)
	// The provider sees a sign-in in progress, not a signed-in browser.
	d := b.done(b.get("/test/done"))
	if d.SignedIn || !d.InProgress {
		t.Fatalf("mid-journey browser: %+v", d)
	}
	// A new authorization request mid-journey lands on the pending step...
	r = b.open("/test/authorize?n=2")
	mustStep(t, r, StepMFAEnrol)
	// ...and the journey resumes the newer request at the end.
	secret := text(byID(r.doc, "totp-secret"))
	r = b.follow(b.submit(r, map[string]string{"code": codeAt(secret, e.clock.Now())}))
	mustStep(t, r, StepRecoveryCodes)
	// Back button: the enrolment page is behind us.
	mustRedirect(t, b.get(PathMFAEnrol), PathRecoveryCodes)
	mustRedirect(t, b.post(PathMFAEnrol, url.Values{"code": {codeAt(secret, e.clock.Now())}}), PathRecoveryCodes)
	r = b.follow(b.submit(r, map[string]string{"accept": "yes"}))
	r = b.follow(b.submit(r, map[string]string{"current_password": aliceFirst, "new_password": alicePw, "confirm_password": alicePw}))
	r = b.follow(b.submit(r, map[string]string{"accept": "yes"}))
	mustStep(t, r, StepTerms)
	// A captured POST of the privacy step, replayed now: back to terms, and
	// still one privacy acceptance.
	mustRedirect(t, b.post(PathPrivacy, url.Values{"accept": {"yes"}}), PathTerms)
	d = b.done(b.follow(b.submit(r, map[string]string{"accept": "yes"})))
	if !d.SignedIn || d.N != "2" {
		t.Fatalf("resumed %+v, want the newer request (n=2)", d)
	}
	if e.countEvents(evPolicyAccept) != 2 {
		t.Errorf("%d acceptances audited, want 2", e.countEvents(evPolicyAccept))
	}
	// Signed in: the dispatcher has nothing to resume and goes to the account.
	mustRedirect(t, b.get(PathNext), PathAccount)
	r = b.get(PathAccount)
	mustStatus(t, r, 200)
	if !strings.Contains(text(r.doc), "You are signed in") {
		t.Errorf("account page: %s", text(r.doc))
	}
}

func TestExpiredInvitation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.seedUser(alice, aliceFirst, true)
	e.clock.Advance(31 * 24 * time.Hour)
	b := e.browser()
	r := b.open("/test/authorize?n=1")
	r = b.follow(b.submit(r, map[string]string{"username": alice}))
	mustStep(t, r, StepPassword)
	// A wrong password gets the generic failure: nothing about the invitation.
	bad := b.submit(r, map[string]string{"password": "not-the-initial-password"})
	mustStatus(t, bad, http.StatusUnprocessableEntity)
	if got := bad.fieldError(t, "password"); got != msgSignInFailed {
		t.Fatalf("wrong password on an expired invitation: %q", got)
	}
	// The correct initial password: the plain message, and no sign-in.
	bad = b.submit(r, map[string]string{"password": aliceFirst})
	mustStatus(t, bad, http.StatusUnprocessableEntity)
	checkPage(t, bad)
	if got := bad.fieldError(t, "password"); got != msgInviteExpired {
		t.Fatalf("expired invitation message: %q", got)
	}
	mustRedirect(t, b.get(PathNext), PathPassword)
	if d := b.done(b.get("/test/done")); d.SignedIn || d.InProgress || d.UserID != "" {
		t.Fatalf("expired invitation signed in: %+v", d)
	}
	if got := e.user(u.ID); got.State != store.UserInvited {
		t.Fatalf("state %q", got.State)
	}
}

func TestNoEnumeration(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seedUser(alice, aliceFirst, false)
	dis := e.seedUser("dora@agency.example", alicePw, false)
	dis.State = store.UserDisabled
	if err := e.st.UpdateUser(t.Context(), dis); err != nil {
		t.Fatal(err)
	}
	attempt := func(username, pw string) *resp {
		b := e.browser()
		r := b.open("/test/authorize")
		r = b.follow(b.submit(r, map[string]string{"username": username}))
		mustStep(t, r, StepPassword)
		checkPage(t, r)
		return b.submit(r, map[string]string{"password": pw})
	}
	known := attempt(alice, "wrong password here")
	unknown := attempt("nobody@agency.example", "wrong password here")
	disabled := attempt("dora@agency.example", alicePw) // the right password
	for name, r := range map[string]*resp{"known": known, "unknown": unknown, "disabled": disabled} {
		if r.status != known.status || r.errorSummary() != known.errorSummary() || r.fieldError(t, "password") != msgSignInFailed {
			t.Errorf("%s user: status %d, %q", name, r.status, r.errorSummary())
		}
	}
	// A malformed username is a format problem on the first page, not a probe.
	b := e.browser()
	r := b.open(PathSignIn)
	bad := b.submit(r, map[string]string{"username": "not an email"})
	mustStatus(t, bad, http.StatusBadRequest)
	checkPage(t, bad)
	if bad.fieldError(t, "username") != msgBadUsernameFmt {
		t.Errorf("bad username message: %q", bad.errorSummary())
	}
	if b.cookie() != nil {
		t.Errorf("a session was created for a malformed username")
	}
}

func TestPasswordPolicyRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.seedUser(alice, aliceFirst, true)
	b := e.browser()
	r := b.open("/test/authorize")
	r = b.follow(b.submit(r, map[string]string{"username": alice}))
	r = b.follow(b.submit(r, map[string]string{"password": aliceFirst}))
	secret := text(byID(r.doc, "totp-secret"))
	r = b.follow(b.submit(r, map[string]string{"code": codeAt(secret, e.clock.Now())}))
	r = b.follow(b.submit(r, map[string]string{"accept": "yes"}))
	mustStep(t, r, StepChangePassword)

	tests := []struct {
		name, cur, next, confirm, field, want string
		status                                int
	}{
		{"no current", "", alicePw, alicePw, "current_password", msgEnterCurrent, 400},
		{"wrong current", "wrong-initial-password", alicePw, alicePw, "current_password", msgCurrentWrong, 422},
		{"short", aliceFirst, "short-pw", "short-pw", "new_password", "Use at least 12 characters.", 422},
		{"common", aliceFirst, "password1234", "password1234", "new_password", password.ReasonCommon, 422},
		{"contains username", aliceFirst, "alice-quiet-harbour-lantern", "alice-quiet-harbour-lantern", "new_password", password.ReasonUsername, 422},
		{"equals initial", aliceFirst, aliceFirst, aliceFirst, "new_password", password.ReasonInitial, 422},
		{"too long", aliceFirst, strings.Repeat("x7-", 50), strings.Repeat("x7-", 50), "new_password", "Use at most 128 characters.", 422},
		{"mismatch", aliceFirst, alicePw, alicePw + "x", "confirm_password", msgMismatch, 422},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := b.submit(r, map[string]string{"current_password": tt.cur, "new_password": tt.next, "confirm_password": tt.confirm})
			mustStatus(t, bad, tt.status)
			mustStep(t, bad, StepChangePassword)
			checkPage(t, bad)
			if got := bad.fieldError(t, tt.field); got != tt.want {
				t.Errorf("%s: %q, want %q", tt.field, got, tt.want)
			}
			if seen[tt.want] {
				t.Errorf("message %q not distinct", tt.want)
			}
			seen[tt.want] = true
			if got := e.user(u.ID); got.PasswordHash != u.PasswordHash || !got.PasswordInitial {
				t.Errorf("the password changed")
			}
		})
	}
	r = b.follow(b.submit(r, map[string]string{"current_password": aliceFirst, "new_password": alicePw, "confirm_password": alicePw}))
	mustStep(t, r, StepPrivacy)
	if e.countEvents(evPasswordChange) != 1 {
		t.Errorf("password change not audited once")
	}
}

func TestVersionBumpForcesReacceptance(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.seedUser(alice, aliceFirst, true)
	first := e.browser()
	o := firstLogin(t, e, first)

	cfg := *e.cfg
	cfg.Documents = slices.Clone(e.cfg.Documents)
	cfg.Documents[1].Version = "2026-07"
	if err := e.h.SetConfig(&cfg); err != nil {
		t.Fatal(err)
	}
	// The signed-in browser is no longer "signed in" for the provider.
	if d := first.done(first.get("/test/done")); d.SignedIn || !d.InProgress {
		t.Fatalf("after a version bump: %+v", d)
	}
	// Its next authorization goes through terms only.
	r := first.open("/test/authorize?n=3")
	mustStep(t, r, StepTerms)
	if d := first.done(first.follow(first.submit(r, map[string]string{"accept": "yes"}))); !d.SignedIn || d.N != "3" {
		t.Fatalf("%+v", d)
	}
	// A new sign-in: password, challenge, terms.
	e.clock.Advance(30 * time.Second)
	b := e.browser()
	cfg2 := cfg
	cfg2.Documents = slices.Clone(cfg.Documents)
	cfg2.Documents[0].Version = "2026-08"
	if err := e.h.SetConfig(&cfg2); err != nil {
		t.Fatal(err)
	}
	r = laterSignIn(t, b, alicePw)
	mustStep(t, r, StepMFAChallenge)
	r = b.follow(b.submit(r, map[string]string{"code": codeAt(o.secret, e.clock.Now())}))
	mustStep(t, r, StepPrivacy)
	if !strings.Contains(text(r.doc), "2026-08") {
		t.Errorf("the new version is not shown")
	}
	d := b.done(b.follow(b.submit(r, map[string]string{"accept": "yes"})))
	if !d.SignedIn {
		t.Fatal("not signed in")
	}
	acc, _ := e.st.Acceptances(t.Context(), u.ID)
	vers := map[string]string{}
	for _, a := range acc {
		vers[a.Document] = a.Version
	}
	if vers["privacy"] != "2026-08" || vers["terms"] != "2026-07" {
		t.Errorf("acceptances %v", vers)
	}
	// A bad reload changes nothing.
	bad := cfg2
	bad.Journey.Steps = []string{"mfa-enrol", "bogus"}
	if err := e.h.SetConfig(&bad); err == nil {
		t.Fatal("a bad journey was accepted")
	}
	if e.h.settings().cfg != &cfg2 {
		t.Fatal("a refused reload replaced the settings")
	}
}
