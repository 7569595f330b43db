package flows

import (
	"net/http"
	"sync"
	"testing"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/flows/password"
)

// race posts the same form n times at once with the browser's current
// cookie and returns how many were sent on to the dispatcher, and how many
// of those were given a new session cookie (a rotation).
func race(t *testing.T, b *browser, r *resp, fields map[string]string) (next, rotated int) {
	t.Helper()
	const n = 20
	frozen := b.frozen()
	results := make([]*resp, n)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() { results[i] = frozen.submit(r, fields) })
	}
	wg.Wait()
	for _, res := range results {
		if res.status >= 500 {
			t.Errorf("status %d: %s", res.status, text(res.doc))
		}
		if res.status == http.StatusSeeOther && res.location == PathNext {
			next++
			if res.header.Get("Set-Cookie") != "" {
				rotated++
			}
		}
	}
	return next, rotated
}

// TestRacingStepsTakeEffectOnce posts each onboarding step's form 20 times at
// once from one browser: each takes effect exactly once.
func TestRacingStepsTakeEffectOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) {
		c.Throttle.MaxAccountFailures, c.Throttle.MaxAddressFailures = 1000, 1000
	})
	u := e.seedUser(alice, aliceFirst, true)
	b := e.browser()
	r := b.open("/test/authorize")
	r = b.follow(b.submit(r, map[string]string{"username": alice}))
	r = b.follow(b.submit(r, map[string]string{"password": aliceFirst}))
	mustStep(t, r, StepMFAEnrol)

	// Enrolment: one factor, one set of codes, one rotation.
	secret := text(byID(r.doc, "totp-secret"))
	// Losers may be sent to the dispatcher too (with their dead cookie),
	// but only the winner gets a new session.
	if _, n := race(t, b, r, map[string]string{"code": codeAt(secret, e.clock.Now())}); n != 1 {
		t.Fatalf("enrolment: %d winners", n)
	}
	if n := e.countEvents(evMFAEnrol); n != 1 {
		t.Fatalf("%d enrolments audited", n)
	}
	// The racing requests never got the winner's cookie; this browser's own
	// session is the old, dead one. Start over: a new sign-in with a factor.
	b = e.browser()
	r = b.open("/test/authorize")
	r = b.follow(b.submit(r, map[string]string{"username": alice}))
	r = b.follow(b.submit(r, map[string]string{"password": aliceFirst}))
	mustStep(t, r, StepMFAChallenge)
	e.clock.Advance(30e9)
	r = b.follow(b.submit(r, map[string]string{"code": codeAt(secret, e.clock.Now())}))
	mustStep(t, r, StepChangePassword)

	if n, _ := race(t, b, r, map[string]string{"current_password": aliceFirst, "new_password": alicePw, "confirm_password": alicePw}); n != 1 {
		t.Fatalf("password change: %d winners", n)
	}
	if n := e.countEvents(evPasswordChange); n != 1 {
		t.Fatalf("%d password changes audited", n)
	}
	if ok, _ := password.Verify(e.user(u.ID).PasswordHash, alicePw); !ok {
		t.Fatal("new password not stored")
	}
	r = b.open(PathNext)
	mustStep(t, r, StepPrivacy)
	race(t, b, r, map[string]string{"accept": "yes"})
	if n := e.countEvents(evPolicyAccept); n != 1 {
		t.Fatalf("%d privacy acceptances audited", n)
	}
	r = b.open(PathNext)
	mustStep(t, r, StepTerms)
	race(t, b, r, map[string]string{"accept": "yes"})
	if n := e.countEvents(evPolicyAccept); n != 2 {
		t.Fatalf("%d acceptances audited", n)
	}
	// Racing dispatchers finish the sign-in once.
	frozen := b.frozen()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { frozen.get(PathNext) })
	}
	wg.Wait()
	if n := e.countEvents(evSigninSuccess); n != 1 {
		t.Fatalf("%d sign-in successes audited", n)
	}
	if d := b.done(b.get("/test/done")); !d.SignedIn {
		t.Fatalf("%+v", d)
	}
}
