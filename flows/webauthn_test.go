package flows

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/lanyard-idp/lanyard/flows/internal/softauthn"
	"github.com/lanyard-idp/lanyard/flows/passkey"
)

const (
	bob      = "bob@agency.example"
	bobFirst = "t8m2x-q4wz7-k9cpd-3hv6r"
)

// TestPasskeyEnrolmentInJourney: the officer enrols a security key instead
// of an app at the first login; it completes mfa-enrol like a confirmed
// code, brings recovery codes, and the sign-in is phishing-resistant.
func TestPasskeyEnrolmentInJourney(t *testing.T) {
	t.Parallel()
	e := newPasskeyEnv(t)
	u := e.seedUser(alice, aliceFirst, true)
	b := e.browser()
	r := b.open("/test/authorize?n=1")
	r = b.follow(b.submit(r, map[string]string{"username": alice}))
	r = b.follow(b.submit(r, map[string]string{"password": aliceFirst}))
	mustStep(t, r, StepMFAEnrol)
	checkPage(t, r)
	// The app stays the default (its form is the page's journey form);
	// the passkey is offered beside it.
	if byID(r.doc, "totp-secret") == nil || byID(r.doc, "code") == nil {
		t.Fatal("the authenticator app form is gone")
	}
	btn := byID(r.doc, "passkey-enrol")
	block := find(r.doc, func(n *html.Node) bool { return attr(n, "data-webauthn") == "register" })
	if btn == nil || block == nil || attr(block, "data-options") != PathPasskeyEnrol+optionsSuffix || attr(block, "data-finish") != PathPasskeyEnrol {
		t.Fatalf("no passkey choice on the enrolment page: %s", text(r.doc))
	}
	if find(r.doc, func(n *html.Node) bool { return n.Data == "script" && attr(n, "src") == "/static/webauthn.js" }) == nil {
		t.Error("the passkey script is not loaded")
	}
	if find(r.doc, func(n *html.Node) bool { return n.Data == "script" && attr(n, "src") == "" }) != nil {
		t.Error("inline script on the page")
	}

	// The options: this RP, a random user handle, a discoverable
	// credential preferred, verification preferred, no attestation.
	opts := b.options(PathPasskeyEnrol)
	var o struct {
		PublicKey struct {
			RP struct {
				ID, Name string
			} `json:"rp"`
			User struct {
				ID, Name, DisplayName string
			} `json:"user"`
			Challenge              string `json:"challenge"`
			AuthenticatorSelection struct {
				ResidentKey      string `json:"residentKey"`
				UserVerification string `json:"userVerification"`
			} `json:"authenticatorSelection"`
			Attestation string `json:"attestation"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal(opts, &o); err != nil {
		t.Fatal(err)
	}
	pk := o.PublicKey
	if pk.RP.ID != "localhost" || pk.RP.Name != "Lanyard" || pk.AuthenticatorSelection.ResidentKey != "preferred" ||
		pk.AuthenticatorSelection.UserVerification != "preferred" || pk.Attestation != "none" || pk.User.Name != alice {
		t.Errorf("registration options: %s", opts)
	}
	handle, err := e.st.WebAuthnHandle(t.Context(), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(handle) != 32 || bytes.Equal(handle, []byte(u.ID)) || bytes.Contains(handle, []byte("alice")) || pk.User.ID != b64.EncodeToString(handle) {
		t.Errorf("user handle %x (sent %q) is not a random handle", handle, pk.User.ID)
	}

	a := e.authenticator()
	cred, c, err := a.Create(opts)
	if err != nil {
		t.Fatal(err)
	}
	r = b.mustGo(b.finish(PathPasskeyEnrol, cred, ""), PathNext)
	mustStep(t, r, StepRecoveryCodes)
	if n := len(findAll(r.doc, func(n *html.Node) bool { return attr(n, "class") == "recovery-code" })); n != recoveryCodeCount {
		t.Errorf("%d recovery codes shown", n)
	}

	stored := e.passkeys(u.ID)
	if len(stored) != 1 {
		t.Fatalf("%d passkeys stored", len(stored))
	}
	s := stored[0]
	if !bytes.Equal(s.ID, c.ID) || s.Name != "Security key" || len(s.PublicKey) == 0 || s.SignCount != 0 ||
		!bytes.Equal(s.AAGUID, a.AAGUID[:]) || !slices.Equal(s.Transports, []string{"internal", "hybrid"}) ||
		!s.CreatedAt.Equal(e.clock.Now()) || !s.LastUsedAt.IsZero() || len(s.Data) == 0 {
		t.Errorf("stored credential: %+v", s)
	}
	if passkey.Synced(s) {
		t.Error("a device-bound key stored as synced")
	}
	if owner, err := e.st.UserByWebAuthnHandle(t.Context(), handle); err != nil || owner.ID != u.ID {
		t.Errorf("handle owner: %v %v", owner, err)
	}
	if _, err := e.st.TOTPByUser(t.Context(), u.ID); err == nil {
		t.Error("a TOTP secret was stored too")
	}
	if left, _ := e.st.RecoveryCodesLeft(t.Context(), u.ID); left != recoveryCodeCount {
		t.Errorf("%d recovery codes stored", left)
	}
	_, d := e.lastEvent(evMFAEnrol)
	if d["method"] != methodWebAuthn {
		t.Errorf("enrol audit: %v", d)
	}

	r = b.follow(b.submit(r, map[string]string{"accept": "yes"}))
	mustStep(t, r, StepChangePassword)
	r = b.follow(b.submit(r, map[string]string{"current_password": aliceFirst, "new_password": alicePw, "confirm_password": alicePw}))
	r = b.follow(b.submit(r, map[string]string{"accept": "yes"}))
	done := b.done(b.follow(b.submit(r, map[string]string{"accept": "yes"})))
	if !done.SignedIn || !slices.Equal(done.AMR, []string{"pwd", "hwk", "user", "mfa"}) || done.ACR != acrPhishingResistant {
		t.Fatalf("after a passkey enrolment: %+v", done)
	}
}

// TestPasskeySecondFactor: a later sign-in offers the passkey beside the
// code field; the assertion finishes the challenge with hwk or swk.
func TestPasskeySecondFactor(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		synced  bool
		uv      bool
		wantAMR []string
	}{
		{"security key with PIN", false, true, []string{"pwd", "hwk", "user", "mfa"}},
		{"security key, touch only", false, false, []string{"pwd", "hwk", "mfa"}},
		{"synced passkey", true, true, []string{"pwd", "swk", "user", "mfa"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newPasskeyEnv(t)
			e.seedUser(alice, aliceFirst, true)
			a := e.authenticator()
			a.Synced = tc.synced
			o := firstLoginPasskey(t, e, e.browser(), alice, aliceFirst, a)
			if tc.synced {
				// Synced passkeys report no counter.
				zero := uint32(0)
				a.Counter = &zero
			}

			a.UV = tc.uv
			b, r := signInTo(t, e, alice, renewed(aliceFirst))
			mustStep(t, r, StepMFAChallenge)
			checkPage(t, r)
			if byID(r.doc, "code") == nil || byID(r.doc, "passkey-challenge") == nil {
				t.Fatalf("the challenge offers no code field or no passkey: %s", text(r.doc))
			}
			opts := b.options(PathPasskeyChallenge)
			if !strings.Contains(string(opts), b64.EncodeToString(a.Credentials()[0].ID)) {
				t.Errorf("the credential is not allowed: %s", opts)
			}
			e.clock.Advance(time.Minute)
			cred, err := a.Get(opts, nil)
			if err != nil {
				t.Fatal(err)
			}
			d := b.done(b.mustGo(b.finish(PathPasskeyChallenge, cred, ""), PathNext))
			if !d.SignedIn || !slices.Equal(d.AMR, tc.wantAMR) || d.ACR != acrPhishingResistant {
				t.Fatalf("signed in with %+v, want amr %v", d, tc.wantAMR)
			}
			stored := e.passkeys(o.user.ID)[0]
			if !stored.LastUsedAt.Equal(e.clock.Now()) {
				t.Errorf("last use %v", stored.LastUsedAt)
			}
			if !tc.synced && stored.SignCount != a.Credentials()[0].SignCount {
				t.Errorf("sign count %d, authenticator %d", stored.SignCount, a.Credentials()[0].SignCount)
			}
			_, det := e.lastEvent(evMFAChallenge)
			if det["method"] != methodWebAuthn {
				t.Errorf("challenge audit %v", det)
			}
		})
	}
}

// TestPasskeyPasswordless: the username page offers "Sign in with a
// passkey" (and autofill); a verified passkey stands for both factors and
// any pending step follows.
func TestPasskeyPasswordless(t *testing.T) {
	t.Parallel()
	e := newPasskeyEnv(t)
	o, a := syncedPasskeyOfficer(t, e)

	// A new version of the terms: passwordless sign-in still goes through it.
	cfg := *e.cfg
	cfg.Documents = slices.Clone(cfg.Documents)
	cfg.Documents[1].Version = "2026-02"
	if err := e.h.SetConfig(&cfg); err != nil {
		t.Fatal(err)
	}

	b := e.browser()
	r := b.open("/test/authorize?n=3")
	mustStep(t, r, StepIdentify)
	checkPage(t, r)
	in := byID(r.doc, "username")
	if !strings.Contains(attr(in, "autocomplete"), "webauthn") || byID(r.doc, "passkey-signin") == nil {
		t.Fatalf("no passkey sign-in on the username page: %s", text(r.doc))
	}
	block := find(r.doc, func(n *html.Node) bool { return attr(n, "data-webauthn") == "authenticate" })
	if attr(block, "data-mediation") != "conditional" {
		t.Error("no conditional mediation")
	}
	res := b.postJSON(PathPasskeySignIn+optionsSuffix+"?mediation=conditional", []byte("{}"))
	mustStatus(t, res, 200)
	var opts struct {
		Mediation string `json:"mediation"`
		PublicKey struct {
			UserVerification string `json:"userVerification"`
			AllowCredentials []any  `json:"allowCredentials"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal([]byte(res.body), &opts); err != nil {
		t.Fatal(err)
	}
	if opts.Mediation != "conditional" || opts.PublicKey.UserVerification != "required" || len(opts.PublicKey.AllowCredentials) != 0 {
		t.Errorf("discoverable options: %s", res.body)
	}
	cred, err := a.Get([]byte(res.body), nil)
	if err != nil {
		t.Fatal(err)
	}
	r = b.mustGo(b.finish(PathPasskeySignIn, cred, ""), PathNext)
	mustStep(t, r, StepTerms)
	d := b.done(b.follow(b.submit(r, map[string]string{"accept": "yes"})))
	if !d.SignedIn || d.UserID != o.user.ID || !slices.Equal(d.AMR, []string{"swk", "user", "mfa"}) || d.ACR != acrPhishingResistant || d.N != "3" {
		t.Fatalf("passwordless: %+v", d)
	}
	if e.countEvents(evSigninPasskey) != 1 {
		t.Errorf("%d passkey sign-ins audited", e.countEvents(evSigninPasskey))
	}
	// No password was asked for.
	if n := e.countEvents(evSigninPassword); n != 1 { // the first login's
		t.Errorf("%d password events", n)
	}
}

// TestPasskeyChallengeRejections: every way an assertion can be wrong is
// refused with a clear error, stores nothing, is counted and audited.
func TestPasskeyChallengeRejections(t *testing.T) {
	t.Parallel()
	e := newPasskeyEnv(t, manyTries)
	e.seedUser(alice, aliceFirst, true)
	e.seedUser(bob, bobFirst, true)
	a := e.authenticator()
	o := firstLoginPasskey(t, e, e.browser(), alice, aliceFirst, a)
	firstLoginPasskey(t, e, e.browser(), bob, bobFirst, a)
	aliceCred, bobCred := a.Credentials()[0], a.Credentials()[1]
	u := o.user

	b, r := signInTo(t, e, alice, renewed(aliceFirst))
	mustStep(t, r, StepMFAChallenge)
	// One success first, so the stored sign count is above zero.
	b.mustGo(b.assert(PathPasskeyChallenge, a), PathNext)
	b, r = signInTo(t, e, alice, renewed(aliceFirst))
	mustStep(t, r, StepMFAChallenge)

	uint32p := func(v uint32) *uint32 { return &v }
	for _, tc := range []struct {
		name   string
		fault  func(a *softauthn.Authenticator)
		answer func(t *testing.T, opts []byte) []byte // default: a.Get(opts, aliceCred)
		status int
		msg    string
		reason string
	}{
		{name: "wrong origin", fault: func(a *softauthn.Authenticator) { a.Origin = "http://evil.example" },
			status: 422, msg: msgPasskeyFailed, reason: "origin"},
		{name: "wrong RP ID hash", fault: func(a *softauthn.Authenticator) { a.RPID = "evil.example" },
			status: 422, msg: msgPasskeyFailed, reason: "RP Hash mismatch"},
		{name: "user presence missing", fault: func(a *softauthn.Authenticator) { a.UP = false },
			status: 422, msg: msgPasskeyFailed, reason: "User presence required"},
		{name: "wrong ceremony type", fault: func(a *softauthn.Authenticator) { a.Type = "webauthn.create" },
			status: 422, msg: msgPasskeyFailed, reason: "assertion refused"},
		{name: "another challenge", fault: func(a *softauthn.Authenticator) {
			a.Challenge = make([]byte, 32)
			rand.Read(a.Challenge)
		}, status: 422, msg: msgPasskeyFailed, reason: "challenge"},
		{name: "another user's credential", answer: func(t *testing.T, opts []byte) []byte {
			c, err := a.Get(opts, bobCred)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}, status: 422, msg: msgPasskeyFailed, reason: "assertion refused"},
		{name: "sign count regression", fault: func(a *softauthn.Authenticator) { a.Counter = uint32p(1) },
			status: 422, msg: msgPasskeyClone, reason: "clone"},
		{name: "malformed CBOR", answer: func(t *testing.T, opts []byte) []byte {
			c, err := a.Get(opts, aliceCred)
			if err != nil {
				t.Fatal(err)
			}
			return tamper(t, c, "authenticatorData", b64.EncodeToString([]byte{0xff, 0x01, 0x02}))
		}, status: 422, msg: msgPasskeyMalformed, reason: "malformed"},
		{name: "not a credential", answer: func(t *testing.T, opts []byte) []byte {
			return []byte(`{"id":"AAAA","type":"public-key"}`)
		}, status: 422, msg: msgPasskeyMalformed, reason: "malformed"},
		{name: "expired challenge", fault: func(*softauthn.Authenticator) { e.clock.Advance(ceremonyTTL + time.Second) },
			status: 422, msg: msgPasskeyExpired, reason: "expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.passkeys(u.ID)[0]
			failures := e.failures("mfa:" + u.ID)
			addr := e.failures("addr:127.0.0.1")
			opts := b.options(PathPasskeyChallenge)
			saved := *a
			if tc.fault != nil {
				tc.fault(a)
			}
			var cred []byte
			if tc.answer != nil {
				cred = tc.answer(t, opts)
			} else {
				var err error
				if cred, err = a.Get(opts, aliceCred); err != nil {
					t.Fatal(err)
				}
			}
			a.Origin, a.RPID, a.UP, a.Type, a.Challenge, a.Counter = saved.Origin, saved.RPID, saved.UP, saved.Type, saved.Challenge, saved.Counter
			res := b.finish(PathPasskeyChallenge, cred, "")
			ans := res.answer(t)
			if res.status != tc.status || ans.Error != tc.msg || ans.Redirect != "" {
				t.Fatalf("status %d, answer %+v; want %d %q", res.status, ans, tc.status, tc.msg)
			}
			after := e.passkeys(u.ID)[0]
			if after.SignCount != before.SignCount || !after.LastUsedAt.Equal(before.LastUsedAt) {
				t.Errorf("the credential changed: %d→%d", before.SignCount, after.SignCount)
			}
			if got := e.failures("mfa:" + u.ID); got != failures+1 {
				t.Errorf("second-factor failures %d → %d", failures, got)
			}
			if got := e.failures("addr:127.0.0.1"); got != addr+1 {
				t.Errorf("address failures %d → %d", addr, got)
			}
			ev, d := e.lastEvent(evSigninFailure)
			if ev.UserID != u.ID || d["factor"] != methodWebAuthn || !strings.Contains(strings.ToLower(d["reason"].(string)), strings.ToLower(tc.reason)) {
				t.Errorf("failure audit: %s %v", ev.UserID, d)
			}
			mustRedirect(t, b.get(PathNext), PathMFAChallenge)
			// The challenge is gone: the same answer again is a replay.
			res = b.finish(PathPasskeyChallenge, cred, "")
			if ans := res.answer(t); res.status != 422 || ans.Error != msgPasskeyExpired {
				t.Errorf("replay: status %d, %+v", res.status, ans)
			}
			_, d = e.lastEvent(evSigninFailure)
			if !strings.Contains(d["reason"].(string), "no challenge") {
				t.Errorf("replay audit: %v", d)
			}
		})
	}
	if n := e.countEvents(evWebAuthnClone); n != 1 {
		t.Errorf("%d clone warnings audited", n)
	}

	t.Run("oversized", func(t *testing.T) {
		failures := e.failures("mfa:" + u.ID)
		b.options(PathPasskeyChallenge)
		big := []byte(`{"credential":"` + strings.Repeat("A", 70<<10) + `"}`)
		res := b.postJSON(PathPasskeyChallenge, big)
		if ans := res.answer(t); res.status != http.StatusRequestEntityTooLarge || ans.Error == "" {
			t.Fatalf("oversized: %d %+v", res.status, ans)
		}
		if got := e.failures("mfa:" + u.ID); got != failures+1 {
			t.Errorf("oversized not counted: %d → %d", failures, got)
		}
	})

	// After all that, the right answer still works.
	e.clock.Advance(time.Minute)
	d := b.done(b.mustGo(b.assert(PathPasskeyChallenge, a), PathNext))
	if !d.SignedIn {
		t.Fatalf("%+v", d)
	}
}

// TestPasskeyEnrolmentRejections: a refused registration stores no
// credential and no codes, and the officer stays at the enrolment.
func TestPasskeyEnrolmentRejections(t *testing.T) {
	t.Parallel()
	e := newPasskeyEnv(t, manyTries)
	u := e.seedUser(alice, aliceFirst, true)
	b := e.browser()
	r := b.open("/test/authorize")
	r = b.follow(b.submit(r, map[string]string{"username": alice}))
	r = b.follow(b.submit(r, map[string]string{"password": aliceFirst}))
	mustStep(t, r, StepMFAEnrol)

	for _, tc := range []struct {
		name   string
		fault  func(a *softauthn.Authenticator)
		edit   func(t *testing.T, cred []byte) []byte
		msg    string
		reason string
	}{
		{name: "wrong origin", fault: func(a *softauthn.Authenticator) { a.Origin = "https://localhost.evil.example" }, msg: msgPasskeyFailed, reason: "origin"},
		{name: "wrong RP ID hash", fault: func(a *softauthn.Authenticator) { a.RPID = "example.com" }, msg: msgPasskeyFailed, reason: "registration refused"},
		{name: "user presence missing", fault: func(a *softauthn.Authenticator) { a.UP = false }, msg: msgPasskeyFailed, reason: "registration refused"},
		{name: "get instead of create", fault: func(a *softauthn.Authenticator) { a.Type = "webauthn.get" }, msg: msgPasskeyFailed, reason: "registration refused"},
		{name: "malformed CBOR", edit: func(t *testing.T, cred []byte) []byte {
			return tamper(t, cred, "attestationObject", b64.EncodeToString([]byte{0xa3, 0x63, 0x66, 0x6d}))
		}, msg: msgPasskeyMalformed, reason: "malformed"},
		{name: "expired", fault: func(*softauthn.Authenticator) { e.clock.Advance(ceremonyTTL + time.Second) }, msg: msgPasskeyExpired, reason: "expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := e.authenticator()
			failures := e.failures("acct:" + u.ID)
			opts := b.options(PathPasskeyEnrol)
			if tc.fault != nil {
				tc.fault(a)
			}
			cred, _, err := a.Create(opts)
			if err != nil {
				t.Fatal(err)
			}
			if tc.edit != nil {
				cred = tc.edit(t, cred)
			}
			res := b.finish(PathPasskeyEnrol, cred, "")
			if ans := res.answer(t); res.status != 422 || ans.Error != tc.msg {
				t.Fatalf("status %d, %+v", res.status, ans)
			}
			if n := len(e.passkeys(u.ID)); n != 0 {
				t.Fatalf("%d passkeys stored", n)
			}
			if left, _ := e.st.RecoveryCodesLeft(t.Context(), u.ID); left != 0 {
				t.Errorf("%d recovery codes stored", left)
			}
			if got := e.failures("acct:" + u.ID); got != failures+1 {
				t.Errorf("failures %d → %d", failures, got)
			}
			_, d := e.lastEvent(evSigninFailure)
			if !strings.Contains(strings.ToLower(d["reason"].(string)), strings.ToLower(tc.reason)) {
				t.Errorf("audit %v", d)
			}
			mustRedirect(t, b.get(PathNext), PathMFAEnrol)
		})
	}
	if n := e.countEvents(evMFAEnrol); n != 0 {
		t.Errorf("%d enrolments audited", n)
	}
	// The ceremony endpoints keep to the step: the challenge's are refused
	// here, with where to go.
	res := b.postJSON(PathPasskeyChallenge+optionsSuffix, []byte("{}"))
	if ans := res.answer(t); res.status != http.StatusConflict || ans.Redirect != PathMFAEnrol {
		t.Errorf("challenge options at enrolment: %d %+v", res.status, ans)
	}
	res = b.postJSON(PathPasskeySignIn+optionsSuffix, []byte("{}"))
	if ans := res.answer(t); res.status != http.StatusConflict || ans.Redirect != PathMFAEnrol {
		t.Errorf("passwordless options past the password: %d %+v", res.status, ans)
	}
}

// TestPasskeyPasswordlessRejections: without user verification, with an
// unknown handle, or with another user's credential under one's handle, a
// passwordless attempt signs nobody in.
func TestPasskeyPasswordlessRejections(t *testing.T) {
	t.Parallel()
	e := newPasskeyEnv(t, manyTries)
	e.seedUser(alice, aliceFirst, true)
	e.seedUser(bob, bobFirst, true)
	a := e.authenticator()
	o := firstLoginPasskey(t, e, e.browser(), alice, aliceFirst, a)
	firstLoginPasskey(t, e, e.browser(), bob, bobFirst, a)
	aliceCred, bobCred := a.Credentials()[0], a.Credentials()[1]
	sessions := func() int {
		ss, err := e.st.UserSessions(t.Context(), o.user.ID, e.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		return len(ss)
	}
	before := sessions()

	b := e.browser()
	r := b.open(PathSignIn)
	mustStep(t, r, StepIdentify)
	for _, tc := range []struct {
		name    string
		get     func(opts []byte) ([]byte, error)
		msg     string
		reason  string
		account string
	}{
		{"no user verification", func(opts []byte) ([]byte, error) {
			a.UV = false
			defer func() { a.UV = true }()
			return a.Get(opts, aliceCred)
		}, msgPasskeyNoUV, "user verification", "mfa:" + o.user.ID},
		{"another user's credential under this handle", func(opts []byte) ([]byte, error) {
			a.UserHandle = aliceCred.UserHandle
			defer func() { a.UserHandle = nil }()
			return a.Get(opts, bobCred)
		}, msgPasskeyFailed, "assertion refused", "mfa:" + o.user.ID},
		{"unknown user handle", func(opts []byte) ([]byte, error) {
			a.UserHandle = []byte("nobody-has-this-handle")
			defer func() { a.UserHandle = nil }()
			return a.Get(opts, aliceCred)
		}, msgPasskeyFailed, "unknown user handle", "addr:127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			failures := e.failures(tc.account)
			cred, err := tc.get(b.options(PathPasskeySignIn))
			if err != nil {
				t.Fatal(err)
			}
			res := b.finish(PathPasskeySignIn, cred, "")
			if ans := res.answer(t); res.status != 422 || ans.Error != tc.msg {
				t.Fatalf("status %d, %+v", res.status, ans)
			}
			if got := e.failures(tc.account); got != failures+1 {
				t.Errorf("%s failures %d → %d", tc.account, failures, got)
			}
			_, d := e.lastEvent(evSigninFailure)
			if !strings.Contains(d["reason"].(string), tc.reason) {
				t.Errorf("audit %v", d)
			}
			if n := sessions(); n != before {
				t.Errorf("alice has %d sessions, had %d", n, before)
			}
			if b.rawSessionID() == "" {
				t.Fatal("no session")
			}
			r := b.get(PathNext)
			mustRedirect(t, r, PathSignIn)
		})
	}
	if n := e.countEvents(evSigninPasskey); n != 0 {
		t.Errorf("%d passkey sign-ins", n)
	}
	// Bob's own passkey under his own handle works, and signs in Bob.
	b.options(PathPasskeySignIn) // a fresh challenge replaces the old one
	cred, err := a.Get(b.options(PathPasskeySignIn), bobCred)
	if err != nil {
		t.Fatal(err)
	}
	r = b.mustGo(b.finish(PathPasskeySignIn, cred, ""), PathNext)
	if !strings.HasSuffix(r.url, PathAccount) || !strings.Contains(text(r.doc), bob) {
		t.Fatalf("bob's passwordless sign-in ended at %s: %s", r.url, text(r.doc))
	}
	// A browser with no session has no challenge to answer.
	anon := e.browser()
	res := anon.finish(PathPasskeySignIn, cred, "")
	if ans := res.answer(t); res.status != 422 || ans.Error != msgPasskeyExpired {
		t.Errorf("no session: %d %+v", res.status, ans)
	}
}

// TestPasskeyRacingAnswers: 20 copies of one answer posted at once take
// effect once.
func TestPasskeyRacingAnswers(t *testing.T) {
	t.Parallel()
	e := newPasskeyEnv(t, manyTries)
	u := e.seedUser(alice, aliceFirst, true)
	a := e.authenticator()
	b := e.browser()
	r := b.open("/test/authorize")
	r = b.follow(b.submit(r, map[string]string{"username": alice}))
	r = b.follow(b.submit(r, map[string]string{"password": aliceFirst}))
	mustStep(t, r, StepMFAEnrol)

	raceJSON := func(b *browser, path string, body []byte) (ok int) {
		frozen := b.frozen()
		results := make([]*resp, 20)
		var wg sync.WaitGroup
		for i := range results {
			wg.Go(func() { results[i] = frozen.finish(path, body, "") })
		}
		wg.Wait()
		for _, res := range results {
			if res.status >= 500 {
				t.Errorf("status %d: %s", res.status, res.body)
			}
			if res.status == http.StatusOK {
				ok++
			}
		}
		return ok
	}

	cred, _, err := a.Create(b.options(PathPasskeyEnrol))
	if err != nil {
		t.Fatal(err)
	}
	if n := raceJSON(b, PathPasskeyEnrol, cred); n != 1 {
		t.Fatalf("enrolment: %d successes", n)
	}
	if n := len(e.passkeys(u.ID)); n != 1 {
		t.Fatalf("%d passkeys stored", n)
	}
	if n := e.countEvents(evMFAEnrol); n != 1 {
		t.Fatalf("%d enrolments audited", n)
	}

	// The winner's new cookie went to one of the racers: sign in afresh,
	// up to the challenge, and race one assertion.
	b, r = signInTo(t, e, alice, aliceFirst)
	mustStep(t, r, StepMFAChallenge)
	got, err := a.Get(b.options(PathPasskeyChallenge), nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := raceJSON(b, PathPasskeyChallenge, got); n != 1 {
		t.Fatalf("challenge: %d successes", n)
	}
	if n := e.countEvents(evMFAChallenge); n != 1 {
		t.Fatalf("%d challenges audited", n)
	}
	if c := e.passkeys(u.ID)[0]; c.SignCount != 1 || c.LastUsedAt.IsZero() {
		t.Errorf("credential after the race: count %d, used %v", c.SignCount, c.LastUsedAt)
	}
}

// TestPasskeyEndpointsRefuseCrossOrigin: the JSON endpoints are behind the
// same cross-origin protection as every form.
func TestPasskeyEndpointsRefuseCrossOrigin(t *testing.T) {
	t.Parallel()
	e := newPasskeyEnv(t)
	b := e.browser()
	b.open(PathSignIn)
	b.header.Set("Sec-Fetch-Site", "cross-site")
	b.header.Set("Origin", "https://evil.example")
	for _, p := range []string{PathPasskeySignIn + optionsSuffix, PathPasskeySignIn, PathPasskeyChallenge, PathAccountPasskey} {
		if res := b.postJSON(p, []byte("{}")); res.status != http.StatusForbidden {
			t.Errorf("%s cross-site: %d", p, res.status)
		}
	}
}

// TestPasskeysUnavailableOnIPHost: an issuer on an IP address cannot have
// passkeys (no browser accepts one as RP ID): the pages say so and offer
// no button, and the endpoints answer plainly.
func TestPasskeysUnavailableOnIPHost(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.browser()
	r := b.open(PathSignIn)
	if byID(r.doc, "passkey-signin") != nil || !strings.Contains(text(r.doc), "passkey") {
		t.Errorf("identify page: %s", text(r.doc))
	}
	res := b.postJSON(PathPasskeySignIn+optionsSuffix, []byte("{}"))
	if ans := res.answer(t); res.status != http.StatusNotFound || ans.Error != msgPasskeyUnavailable {
		t.Errorf("options: %d %+v", res.status, ans)
	}
}
