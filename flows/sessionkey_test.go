package flows

import (
	"fmt"
	"testing"
	"time"

	"github.com/lanyard-idp/lanyard/flows/internal/softauthn"
	"github.com/lanyard-idp/lanyard/provider/store"
)

// Tokens follow the session they came from: every rotation of the session's
// id (prompt=login, confirming it is you on the account page with a code or
// a passkey, a refused passkey ceremony, adding a passkey) keeps the key the
// provider binds tokens to, and every kind of sign-out then reaches both the
// tokens issued before the rotation and those a refresh issued after it
// (a refresh copies the sid claim it was issued under, so the provider binds
// the new tokens to the key the session had at the authorization).

// rotation rotates a signed-in browser's session id one way.
type rotation struct {
	name   string
	rotate func(t *testing.T, o *keyOfficer, b *browser)
}

// keyOfficer is an onboarded officer with a passkey and recovery codes.
type keyOfficer struct {
	e     *env
	a     *softauthn.Authenticator
	codes []string
}

var rotations = []rotation{
	{"prompt=login", func(t *testing.T, o *keyOfficer, b *browser) {
		r := b.open("/test/authorize?force=1")
		mustStep(t, r, StepIdentify)
		r = b.follow(b.submit(r, map[string]string{"username": alice}))
		r = b.follow(b.submit(r, map[string]string{"password": renewed(aliceFirst)}))
		mustStep(t, r, StepMFAChallenge)
		if d := b.done(b.mustGo(b.assert(PathPasskeyChallenge, o.a), PathNext)); !d.SignedIn {
			t.Fatalf("prompt=login: %+v", d)
		}
	}},
	{"confirm it is you with a recovery code", func(t *testing.T, o *keyOfficer, b *browser) {
		code := o.codes[0]
		o.codes = o.codes[1:]
		r := b.get(PathReauth)
		mustRedirect(t, b.submit(r, map[string]string{"code": code}), PathAccount)
	}},
	{"confirm it is you with a passkey", func(t *testing.T, o *keyOfficer, b *browser) {
		b.mustGo(b.assert(PathReauthPasskey, o.a), PathAccount)
	}},
	{"a refused passkey ceremony", func(t *testing.T, o *keyOfficer, b *browser) {
		b.options(PathReauthPasskey)
		if r := b.finish(PathReauthPasskey, []byte(`{"id":"bm90LWEta2V5","type":"public-key"}`), ""); r.status < 400 {
			t.Fatalf("a forged answer was accepted: %d", r.status)
		}
	}},
	{"adding a passkey", func(t *testing.T, o *keyOfficer, b *browser) {
		res, _ := b.register(PathAccountPasskey, o.e.authenticator(), "Spare key")
		b.mustGo(res, PathAccount)
	}},
}

// signOuts end the rotated browsers' sessions one way; other is a second
// signed-in browser of the officer, which survives the kinds that keep the
// current session.
var signOuts = []struct {
	name       string
	end        func(t *testing.T, o *keyOfficer, rotated []*browser, other *browser)
	otherLives bool
}{
	{"signing out", func(t *testing.T, o *keyOfficer, rotated []*browser, _ *browser) {
		for _, b := range rotated {
			mustRedirect(t, b.post(PathSignOut, nil), PathSignIn+"?signed_out=1")
		}
	}, true},
	{"signing out that session from another browser", func(t *testing.T, o *keyOfficer, rotated []*browser, other *browser) {
		for _, b := range rotated {
			r := other.get(PathAccount)
			mustRedirect(t, other.submitAccount(r, "sign-out-session", b.ref(), nil), PathAccount)
		}
	}, true},
	{"signing out the other sessions", func(t *testing.T, o *keyOfficer, _ []*browser, other *browser) {
		r := other.get(PathAccount)
		mustRedirect(t, other.submitAccount(r, "sign-out-others", "", nil), PathAccount)
	}, true},
	{"changing the password", func(t *testing.T, o *keyOfficer, _ []*browser, other *browser) {
		const next = "Copper-kettle-meadow-58"
		r := other.get(PathAccount)
		mustRedirect(t, other.submitAccount(r, "change-password", "", map[string]string{
			"current_password": renewed(aliceFirst), "new_password": next, "confirm_password": next}), PathAccount)
	}, true},
	{"signing out everywhere", func(t *testing.T, o *keyOfficer, _ []*browser, other *browser) {
		r := other.get(PathAccount)
		mustRedirect(t, other.submitAccount(r, "sign-out-everywhere", "", nil), PathSignIn+"?signed_out=1")
	}, false},
	{"an administrator signing the officer out", func(t *testing.T, o *keyOfficer, _ []*browser, _ *browser) {
		admin, err := NewAdmin(Options{Config: o.e.cfg, Store: o.e.st})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := admin.SignOutEverywhere(t.Context(), "cli", alice); err != nil {
			t.Fatal(err)
		}
	}, false},
}

// ref is the reference of the browser's current session id (what the
// account page names it by).
func (b *browser) ref() string { return store.SessionRef(b.rawSessionID()) }

func TestTokensFollowTheSession(t *testing.T) {
	t.Parallel()
	for _, so := range signOuts {
		t.Run(so.name, func(t *testing.T) {
			t.Parallel()
			e := newPasskeyEnv(t, manyTries)
			e.seedUser(alice, aliceFirst, true)
			o := &keyOfficer{e: e, a: e.authenticator()}
			ob := firstLoginPasskey(t, e, e.browser(), alice, aliceFirst, o.a)
			o.codes = ob.codes
			uid := ob.user.ID

			signedIn := func() *browser {
				b, r := signInTo(t, e, alice, renewed(aliceFirst))
				mustStep(t, r, StepMFAChallenge)
				b.done(b.mustGo(b.assert(PathPasskeyChallenge, o.a), PathNext))
				return b
			}
			var rotated []*browser
			var tokens []string
			for i, rot := range rotations {
				b := signedIn()
				key := b.sessionKey()
				if got := browserOf(t, e, b).SessionID; got != key {
					t.Fatalf("the provider is told %q, the session's key is %q", got, key)
				}
				before := fmt.Sprintf("rt-%d-before", i)
				e.refreshToken(before, uid, key)
				id := b.rawSessionID()
				rot.rotate(t, o, b)
				if b.rawSessionID() == id {
					t.Fatalf("%s did not rotate the session id", rot.name)
				}
				if got := browserOf(t, e, b).SessionID; got != key {
					t.Fatalf("%s changed the session's key from %q to %q", rot.name, key, got)
				}
				// A refresh after the rotation binds its tokens to the key
				// the authorization gave.
				after := fmt.Sprintf("rt-%d-after", i)
				e.refreshToken(after, uid, key)
				rotated = append(rotated, b)
				tokens = append(tokens, before, after)
			}
			other := signedIn()
			e.refreshToken("rt-other", uid, other.sessionKey())

			so.end(t, o, rotated, other)
			for i, b := range rotated {
				if got := browserOf(t, e, b).SessionID; got != "" {
					t.Errorf("after %s, the browser rotated by %s still has a session", so.name, rotations[i].name)
				}
			}
			for i, sig := range tokens {
				if e.tokenActive(sig) {
					t.Errorf("after %s, %s survived (the browser was rotated by %s)", so.name, sig, rotations[i/2].name)
				}
			}
			if e.tokenActive("rt-other") != so.otherLives {
				t.Errorf("after %s, the current session's token active = %v, want %v", so.name, !so.otherLives, so.otherLives)
			}
		})
	}
}

// TestAnotherOfficerGetsAFreshKey: when prompt=login brings a second
// officer to a browser where the first is signed in, the first officer's
// session ends — her tokens are revoked and her relying parties told — and
// the second gets a key of his own, so his tokens never share her sid.
func TestAnotherOfficerGetsAFreshKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withoutMFA)
	a := e.seedReady(alice, alicePw)
	e.seedReady(bob, alicePw)
	b := signInReady(t, e, alice, alicePw)
	aliceKey := b.sessionKey()
	e.refreshToken("rt-alice", a.ID, aliceKey)
	if err := e.st.RecordSessionClient(t.Context(), &store.SessionClient{SID: aliceKey, ClientID: "docs-portal-staging", Subject: a.ID}); err != nil {
		t.Fatal(err)
	}

	r := b.open("/test/authorize?n=1&force=1")
	mustStep(t, r, StepIdentify)
	r = b.follow(b.submit(r, map[string]string{"username": bob}))
	r = b.follow(b.submit(r, map[string]string{"password": alicePw}))
	d := b.done(r)
	if !d.SignedIn || d.UserID != "u-bob-agency-example" {
		t.Fatalf("bob is not signed in: %+v", d)
	}
	if d.SessionID == aliceKey || b.sessionKey() == aliceKey {
		t.Fatalf("bob's session kept alice's key %q", aliceKey)
	}
	if e.tokenActive("rt-alice") {
		t.Error("alice's refresh token survived bob's sign-in")
	}
	got, err := e.st.ClaimLogouts(t.Context(), time.Now().Add(time.Hour), time.Minute, 10) // the store queues at its own clock
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].SID != aliceKey || got[0].Subject != a.ID {
		t.Errorf("logouts queued: %+v, want one for alice's session %q", got, aliceKey)
	}

	// The same officer signing in again keeps the key (prompt=login is no
	// sign-out).
	bobKey := b.sessionKey()
	r = b.open("/test/authorize?n=2&force=1")
	r = b.follow(b.submit(r, map[string]string{"username": bob}))
	b.done(b.follow(b.submit(r, map[string]string{"password": alicePw})))
	if k := b.sessionKey(); k != bobKey {
		t.Errorf("bob signing in again changed the key from %q to %q", bobKey, k)
	}
}
