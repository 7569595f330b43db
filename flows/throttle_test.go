package flows

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/flows/mail/mailtest"
	"github.com/lanyard-idp/lanyard/provider/store/storetest"
)

// The attacker's two positions of SECURITY.md against the throttle: with
// only the password (guess the second factor?) and with only the username
// (lock the officer out?).

// mailsTo waits for n messages and returns the parsed ones with subject.
func mailsWith(t *testing.T, smtp *mailtest.Server, n int, subject string) []*mailtest.Parsed {
	t.Helper()
	var out []*mailtest.Parsed
	for _, m := range smtp.Wait(t, n) {
		p, err := mailtest.Parse(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if p.Subject == subject {
			out = append(out, p)
		}
	}
	return out
}

// TestSecondFactorGuessingLocks: "correct password, three wrong codes" in
// fresh browsers, again and again. The correct password resets nothing, so
// the second factor locks at the fifth wrong code — the right code is then
// refused too from any browser the account does not know — the officer is
// told their password is known, and the event is audited. The officer's own
// browser still signs in, and its whole sign-in does not clear the lock.
func TestSecondFactorGuessingLocks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	smtp := withMail(t, e)
	e.seedUser(alice, aliceFirst, true)
	own := e.browser()
	o := firstLogin(t, e, own)
	u := o.user

	round := func(codes int) {
		t.Helper()
		b := e.browser()
		r := laterSignIn(t, b, alicePw)
		mustStep(t, r, StepMFAChallenge)
		for range codes {
			bad := b.submit(r, map[string]string{"code": wrongCode(o.secret, e.clock.Now())})
			if bad.status != http.StatusUnprocessableEntity && bad.status != http.StatusTooManyRequests {
				t.Fatalf("wrong code: status %d", bad.status)
			}
		}
	}
	round(3)
	if got := e.failures("mfa:" + u.ID); got != 3 {
		t.Fatalf("%d second-factor failures after three wrong codes", got)
	}
	round(0) // a correct password alone
	if got := e.failures("mfa:" + u.ID); got != 3 {
		t.Fatalf("a correct password changed the second-factor count to %d", got)
	}
	round(2)
	th, _ := e.st.GetThrottle(t.Context(), "mfa:"+u.ID)
	if !th.LockedUntil.Equal(e.clock.Now().Add(15 * time.Minute)) {
		t.Fatalf("the second factor is not locked after five wrong codes: %+v", th)
	}
	// The right code from a fresh browser: refused while locked.
	e.clock.Advance(30 * time.Second)
	b := e.browser()
	r := laterSignIn(t, b, alicePw)
	res := b.submit(r, map[string]string{"code": codeAt(o.secret, e.clock.Now())})
	mustStatus(t, res, http.StatusTooManyRequests)
	if res.fieldError(t, "code") != msgTooManyTries {
		t.Errorf("locked second factor: %q", res.errorSummary())
	}

	ev, det := e.lastEvent(evFactorGuessing)
	if ev.UserID != u.ID || det["after_password"] != true {
		t.Errorf("guessing audit: %s %v", ev.UserID, det)
	}
	alerts := mailsWith(t, smtp, 1, "Lanyard: "+alertFactorGuessedWhat)
	if len(alerts) != 1 || alerts[0].To[0].Address != alice {
		t.Fatalf("%d guessing alerts", len(alerts))
	}
	for _, want := range []string{"your password is known to someone else", "Change password", "ask your administrator to reset your password"} {
		if !strings.Contains(alerts[0].Text, want) || !strings.Contains(alerts[0].HTML, want) {
			t.Errorf("the alert does not say %q:\n%s", want, alerts[0].Text)
		}
	}

	// The officer's own browser is not subject to that lock.
	r = own.open("/test/authorize?force=1")
	r = own.follow(own.submit(r, map[string]string{"username": alice}))
	r = own.follow(own.submit(r, map[string]string{"password": alicePw}))
	mustStep(t, r, StepMFAChallenge)
	if d := own.done(own.follow(own.submit(r, map[string]string{"code": codeAt(o.secret, e.clock.Now())}))); !d.SignedIn {
		t.Fatalf("the officer's own browser: %+v", d)
	}
}

// TestSecondFactorDailyCap: past the day's cap, the second factor is refused
// from unknown browsers until the day is over, and no sign-in resets it.
func TestSecondFactorDailyCap(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) {
		c.Throttle.MaxSecondFactorFailures, c.Throttle.SecondFactorDailyCap = 100, 6
	})
	e.seedUser(alice, aliceFirst, true)
	o := firstLogin(t, e, e.browser())
	guess := func() {
		b := e.browser()
		r := laterSignIn(t, b, alicePw)
		for range 3 {
			b.submit(r, map[string]string{"code": wrongCode(o.secret, e.clock.Now())})
		}
	}
	guess()
	// A whole sign-in in between clears the counters, not the cap.
	e.clock.Advance(30 * time.Second)
	b := e.browser()
	if d := b.done(b.follow(b.submit(laterSignIn(t, b, alicePw), map[string]string{"code": codeAt(o.secret, e.clock.Now())}))); !d.SignedIn {
		t.Fatalf("sign-in: %+v", d)
	}
	guess()
	e.clock.Advance(30 * time.Second)
	b = e.browser()
	res := b.submit(laterSignIn(t, b, alicePw), map[string]string{"code": codeAt(o.secret, e.clock.Now())})
	mustStatus(t, res, http.StatusTooManyRequests)
	if e.countEvents(evFactorGuessing) != 1 {
		t.Errorf("the cap was audited %d times", e.countEvents(evFactorGuessing))
	}
	// The next day.
	e.clock.Advance(24 * time.Hour)
	b = e.browser()
	if d := b.done(b.follow(b.submit(laterSignIn(t, b, alicePw), map[string]string{"code": codeAt(o.secret, e.clock.Now())}))); !d.SignedIn {
		t.Fatalf("the next day: %+v", d)
	}
}

// TestUsernameOnlyCannotLockOut: five wrong passwords from browsers the
// account does not know lock those browsers out, and the officer is told;
// the officer's own browser (its device cookie) still signs in, and its own
// mistakes lock only itself.
func TestUsernameOnlyCannotLockOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withoutMFA)
	smtp := withMail(t, e)
	u := e.seedReady(alice, alicePw)
	own := signInReady(t, e, alice, alicePw)
	ownKey := own.deviceKey(u.ID)

	for range 5 {
		b, r := atPassword(t, e, alice)
		b.submit(r, map[string]string{"password": "wrong-password-number"})
	}
	b, r := atPassword(t, e, alice)
	if res := b.submit(r, map[string]string{"password": alicePw}); res.fieldError(t, "password") != msgSignInFailed {
		t.Fatalf("an unknown browser signed in during the lock: %d", res.status)
	}
	alerts := mailsWith(t, smtp, 1, "Lanyard: "+alertLockedWhat)
	if len(alerts) != 1 || !strings.Contains(alerts[0].Text, "Browsers where you have signed in before, and your passkeys, still work") {
		t.Fatalf("lock alert: %d", len(alerts))
	}

	// The officer's browser: not locked by failures from elsewhere.
	r = own.open("/test/authorize?force=1")
	r = own.follow(own.submit(r, map[string]string{"username": alice}))
	if d := own.done(own.follow(own.submit(r, map[string]string{"password": alicePw}))); !d.SignedIn {
		t.Fatalf("the officer's own browser was locked out: %+v", d)
	}
	// ... and its whole sign-in leaves the others' lock alone.
	if th, _ := e.st.GetThrottle(t.Context(), "acct:"+u.ID); !th.LockedUntil.After(e.clock.Now()) {
		t.Errorf("the unknown browsers' lock was lifted by the known browser's sign-in: %+v", th)
	}

	// A known browser's own mistakes lock it alone.
	r = own.open("/test/authorize?force=1")
	r = own.follow(own.submit(r, map[string]string{"username": alice}))
	for range 5 {
		own.submit(r, map[string]string{"password": "wrong-password-number"})
	}
	if th, _ := e.st.GetThrottle(t.Context(), ownKey); !th.LockedUntil.After(e.clock.Now()) {
		t.Fatalf("the browser's own key is not locked: %+v", th)
	}
	if res := own.submit(r, map[string]string{"password": alicePw}); res.fieldError(t, "password") != msgSignInFailed {
		t.Fatalf("a browser locked on its own key signed in: %d", res.status)
	}
	if n := len(mailsWith(t, smtp, 1, "Lanyard: "+alertLockedWhat)); n != 1 {
		t.Errorf("%d lock alerts: a browser's own lock is not the account's", n)
	}

	// A tampered device cookie, or another account's, is no device cookie.
	other := e.browser()
	other.jar.SetCookies(mustURL(t, e.srv.URL), []*http.Cookie{{Name: deviceCookie(own).Name, Value: deviceCookie(own).Value + "x", Path: "/"}})
	req := httptest.NewRequest("GET", e.srv.URL, nil)
	for _, c := range other.jar.Cookies(mustURL(t, e.srv.URL)) {
		req.AddCookie(c)
	}
	if e.h.knownDevice(req, u.ID) != "" {
		t.Error("a tampered device cookie is trusted")
	}
	req = httptest.NewRequest("GET", e.srv.URL, nil)
	req.AddCookie(deviceCookie(own))
	if e.h.knownDevice(req, "someone-else") != "" {
		t.Error("a device cookie vouches for another account")
	}
	// It expires with throttle.device_cookie_for.
	e.clock.Advance(e.cfg.Throttle.DeviceCookieFor.D() + time.Second)
	if e.h.knownDevice(req, u.ID) != "" {
		t.Error("an expired device entry is trusted")
	}
}

// TestPasskeyNotRefusedByPasswordLock: wrong passwords from elsewhere lock
// unknown browsers' passwords, never a passkey.
func TestPasskeyNotRefusedByPasswordLock(t *testing.T) {
	t.Parallel()
	e := newPasskeyEnv(t)
	o, a := syncedPasskeyOfficer(t, e)
	for range 5 {
		b, r := atPassword(t, e, alice)
		b.submit(r, map[string]string{"password": "wrong-password-number"})
	}
	if th, _ := e.st.GetThrottle(t.Context(), "acct:"+o.user.ID); !th.LockedUntil.After(e.clock.Now()) {
		t.Fatalf("not locked: %+v", th)
	}
	b := e.browser()
	mustStep(t, b.open("/test/authorize?n=2"), StepIdentify)
	if d := b.done(b.mustGo(b.assert(PathPasskeySignIn, a), PathNext)); !d.SignedIn || d.UserID != o.user.ID {
		t.Fatalf("passwordless sign-in during a password lock: %+v", d)
	}
}

// TestPasswordlessNoGlobalLock: junk posted to the passwordless endpoint is
// charged to the client address only; no officer's sign-in is locked.
func TestPasswordlessNoGlobalLock(t *testing.T) {
	t.Parallel()
	e := newPasskeyEnv(t, func(c *config.Config) { c.Throttle.MaxAddressFailures = 1000 })
	o, a := syncedPasskeyOfficer(t, e)
	before := e.failures("addr:127.0.0.1")
	junk := e.browser()
	mustStep(t, junk.open(PathSignIn), StepIdentify)
	for range 10 {
		junk.options(PathPasskeySignIn)
		junk.finish(PathPasskeySignIn, []byte(`{"id":"AAAA","type":"public-key"}`), "")
		e.browser().finish(PathPasskeySignIn, []byte(`{}`), "") // no session at all
	}
	if got := e.failures("addr:127.0.0.1"); got != before+20 {
		t.Errorf("address failures %d → %d, want +20", before, got)
	}
	for _, key := range []string{"acct:" + o.user.ID, "mfa:" + o.user.ID, "acct:passkey:unknown"} {
		if got := e.failures(key); got != 0 {
			t.Errorf("%s was charged %d failures", key, got)
		}
	}
	b := e.browser()
	mustStep(t, b.open("/test/authorize?n=2"), StepIdentify)
	if d := b.done(b.mustGo(b.assert(PathPasskeySignIn, a), PathNext)); !d.SignedIn {
		t.Fatalf("passwordless sign-in after junk from elsewhere: %+v", d)
	}
}

// TestLockDecay: locks double while failures keep coming, and each quiet
// lock_decay since the last one forgives a doubling.
func TestLockDecay(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withoutMFA)
	u := e.seedReady(alice, alicePw)
	lock := func() time.Duration {
		t.Helper()
		b, r := atPassword(t, e, alice)
		for range 5 {
			b.submit(r, map[string]string{"password": "wrong-password-number"})
		}
		th, _ := e.st.GetThrottle(t.Context(), "acct:"+u.ID)
		d := th.LockedUntil.Sub(e.clock.Now())
		e.clock.Advance(d)
		return d
	}
	for i, want := range []time.Duration{15 * time.Minute, 30 * time.Minute, time.Hour} {
		if got := lock(); got != want {
			t.Fatalf("lock %d lasted %v, want %v", i+1, got, want)
		}
	}
	// Two quiet days forgive two doublings: the fourth lock is 30 minutes,
	// not two hours.
	e.clock.Advance(2 * 24 * time.Hour)
	if got := lock(); got != 30*time.Minute {
		t.Fatalf("after two quiet days the lock lasted %v, want 30m", got)
	}
}

// TestIPv6ClientsPerNetwork: an IPv6 client is counted by its /64 (the
// configured prefix), however many addresses it uses; IPv4 by address.
func TestIPv6ClientsPerNetwork(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	from := func(addr string) *http.Request {
		r := httptest.NewRequest("POST", e.srv.URL+PathPassword, nil)
		r.RemoteAddr = addr
		return r
	}
	for _, tc := range []struct{ remote, key string }{
		{"[2001:db8:1:2:aaaa::1]:4000", "addr:2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff:ffff:ffff:ffff]:4001", "addr:2001:db8:1:2::/64"},
		{"[2001:db8:1:3::1]:4000", "addr:2001:db8:1:3::/64"},
		{"[::ffff:192.0.2.7]:4000", "addr:::ffff:192.0.2.7"},
		{"192.0.2.7:4000", "addr:192.0.2.7"},
		{"192.0.2.8:4000", "addr:192.0.2.8"},
	} {
		if got := e.h.addressKey(from(tc.remote)); got != tc.key {
			t.Errorf("%s counts as %q, want %q", tc.remote, got, tc.key)
		}
	}
	// Failures from two addresses of one /64 are one client's.
	for _, remote := range []string{"[2001:db8:1:2::10]:1", "[2001:db8:1:2::20]:1"} {
		r := from(remote)
		if err := e.h.failed(t.Context(), r, nil, e.h.passwordKeys(r, "nobody@agency.example", nil), event{}); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.failures("addr:2001:db8:1:2::/64"); got != 2 {
		t.Fatalf("the /64 was charged %d failures, want 2", got)
	}
	// A /56 when configured.
	cfg := *e.cfg
	cfg.Throttle.IPv6Prefix = 56
	if err := e.h.SetConfig(&cfg); err != nil {
		t.Fatal(err)
	}
	if got := e.h.addressKey(from("[2001:db8:1:2ff::1]:1")); got != "addr:2001:db8:1:200::/56" {
		t.Errorf("with a /56: %q", got)
	}
	if got := e.failures("addr:2001:db8:1:2::10"); got != 0 {
		t.Errorf("a single IPv6 address was counted: %d", got)
	}
}

// TestDeviceCookie: outside dev the device cookie is __Host-, Secure,
// HttpOnly and SameSite=Lax, opaque, and read back only by its own name.
func TestDeviceCookie(t *testing.T) {
	t.Parallel()
	h, srv := productionHandler(t)
	rec := httptest.NewRecorder()
	if err := h.rememberDevice(rec, httptest.NewRequest("GET", srv.URL, nil), "u-1"); err != nil {
		t.Fatal(err)
	}
	cs := rec.Result().Cookies()
	if len(cs) != 1 {
		t.Fatalf("cookies %v", cs)
	}
	ck := cs[0]
	if ck.Name != "__Host-lanyard-device" || !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Domain != "" {
		t.Fatalf("device cookie %+v", ck)
	}
	if strings.Contains(ck.Value, "u-1") {
		t.Error("the device cookie shows the account in the clear")
	}
	req := httptest.NewRequest("GET", srv.URL, nil)
	req.AddCookie(ck)
	dev := h.knownDevice(req, "u-1")
	if !strings.HasPrefix(dev, "dev:") || len(dev) < 20 {
		t.Fatalf("device key %q", dev)
	}
	// Renewed at the next sign-in with the same key; a second account gets
	// its own.
	rec = httptest.NewRecorder()
	if err := h.rememberDevice(rec, req, "u-2"); err != nil {
		t.Fatal(err)
	}
	req = httptest.NewRequest("GET", srv.URL, nil)
	req.AddCookie(rec.Result().Cookies()[0])
	if h.knownDevice(req, "u-1") != dev || h.knownDevice(req, "u-2") == "" || h.knownDevice(req, "u-2") == dev {
		t.Error("a second account changed or shared the first one's device key")
	}
	// The session cookie's value under the device cookie's name is nothing.
	req = httptest.NewRequest("GET", srv.URL, nil)
	req.AddCookie(&http.Cookie{Name: h.cookies.name, Value: ck.Value})
	if h.cookies.read(req) != "" {
		t.Error("a device cookie reads as a session cookie")
	}
}

func mustURL(t testing.TB, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func deviceCookie(b *browser) *http.Cookie {
	for _, c := range b.jar.Cookies(mustURL(b.t, b.e.srv.URL)) {
		if c.Name == b.e.h.deviceCookies.name {
			return c
		}
	}
	return nil
}

// TestConcurrentWrongCodesMeetTheLimit: 40 wrong authenticator codes sent at
// once after a correct password are counted before they are checked, so at
// most the limit are checked at all and the rest are refused as locked. On
// both backends: PostgreSQL's row locks are where charges, give-backs and
// the sign-in's own transaction could deadlock.
func TestConcurrentWrongCodesMeetTheLimit(t *testing.T) {
	t.Parallel()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		testConcurrentWrongCodes(t, newEnv(t))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		testConcurrentWrongCodes(t, newEnvAt(t, storetest.FreshSchema(t, storetest.PostgresURL(t))))
	})
}

func testConcurrentWrongCodes(t *testing.T, e *env) {
	u := e.seedUser(alice, aliceFirst, true)
	o := firstLogin(t, e, e.browser())
	const n = 40
	bs, rs := atChallenges(t, e, n)
	code := wrongCode(o.secret, e.clock.Now())
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := range bs {
		wg.Go(func() { statuses[i] = bs[i].submit(rs[i], map[string]string{"code": code}).status })
	}
	wg.Wait()
	checked, refused := 0, 0
	for _, s := range statuses {
		switch s {
		case http.StatusUnprocessableEntity:
			checked++
		case http.StatusTooManyRequests:
			refused++
		default:
			t.Errorf("status %d", s)
		}
	}
	limit := e.h.settings().cfg.Throttle.MaxSecondFactorFailures
	if checked > limit || checked+refused != n {
		t.Fatalf("%d codes checked, %d refused; the limit is %d", checked, refused, limit)
	}
	if got := e.countEvents(evSigninFailure); got != checked {
		t.Errorf("%d failures audited, %d checked", got, checked)
	}
	if day, _ := e.st.GetThrottle(t.Context(), keyFactorPerDay+u.ID); day.Failures != checked {
		t.Errorf("the daily cap counted %d, %d were checked", day.Failures, checked)
	}
}

// TestConcurrentRightAndWrongCodes: one officer's correct code sent from 10
// browsers at once, among 10 wrong ones: the code signs in exactly one
// browser (a code is good once), no request fails for a reason of ours, and
// the counters hold what was charged and kept — each wrong or replayed code
// once, nothing for the code that was accepted, whose sign-in then clears
// the account's counter.
func TestConcurrentRightAndWrongCodes(t *testing.T) {
	t.Parallel()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		testRightAndWrongCodes(t, newEnv(t, manyTries))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		testRightAndWrongCodes(t, newEnvAt(t, storetest.FreshSchema(t, storetest.PostgresURL(t)), manyTries))
	})
}

func testRightAndWrongCodes(t *testing.T, e *env) {
	u := e.seedUser(alice, aliceFirst, true)
	o := firstLogin(t, e, e.browser())
	e.clock.Advance(time.Minute) // the enrolment's code is spent
	const n = 20
	bs, rs := atChallenges(t, e, n)
	right, wrong := codeAt(o.secret, e.clock.Now()), wrongCode(o.secret, e.clock.Now())
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := range bs {
		code := wrong
		if i%2 == 0 {
			code = right
		}
		wg.Go(func() { statuses[i] = bs[i].submit(rs[i], map[string]string{"code": code}).status })
	}
	wg.Wait()
	in, refused := 0, 0
	for i, s := range statuses {
		switch {
		case s == http.StatusSeeOther && i%2 == 0:
			in++
		case s == http.StatusUnprocessableEntity:
			refused++
		default:
			t.Errorf("browser %d (right code: %v): status %d", i, i%2 == 0, s)
		}
	}
	if in != 1 || refused != n-1 {
		t.Fatalf("%d signed in, %d refused; want 1 and %d", in, refused, n-1)
	}
	if day, _ := e.st.GetThrottle(t.Context(), keyFactorPerDay+u.ID); day.Failures != n-1 {
		t.Errorf("the daily cap counted %d, want %d (every wrong or replayed code, not the accepted one)", day.Failures, n-1)
	}
}
