package flows

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/provider/authn"
	"github.com/lanyard-idp/lanyard/provider/store"
	"github.com/lanyard-idp/lanyard/provider/store/seal"
	"github.com/lanyard-idp/lanyard/templates"
)

// atPassword brings a fresh browser to the password page for username.
func atPassword(t *testing.T, e *env, username string) (*browser, *resp) {
	t.Helper()
	b := e.browser()
	r := b.open("/test/authorize")
	r = b.follow(b.submit(r, map[string]string{"username": username}))
	mustStep(t, r, StepPassword)
	return b, r
}

func TestThrottleLocksAndExpires(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withoutMFA)
	u := e.seedReady(alice, alicePw)
	b, r := atPassword(t, e, alice)
	acct := "acct:" + u.ID
	for i := 1; i <= 5; i++ {
		bad := b.submit(r, map[string]string{"password": "wrong-password-number"})
		if bad.fieldError(t, "password") != msgSignInFailed {
			t.Fatalf("attempt %d: %q", i, bad.errorSummary())
		}
	}
	th, err := e.st.GetThrottle(t.Context(), acct)
	if err != nil {
		t.Fatal(err)
	}
	if !th.LockedUntil.Equal(e.clock.Now().Add(15*time.Minute)) || th.Locks != 1 {
		t.Fatalf("after 5 failures: %+v", th)
	}
	if e.countEvents(evLock) != 1 || e.countEvents(evSigninFailure) != 5 {
		t.Errorf("audit: %v", e.events(""))
	}
	// A guesser waited longer and longer (min(2^(n-3) s, 5 s) from the 4th).
	e.mu.Lock()
	delays := slices.Clone(e.delays)
	e.mu.Unlock()
	if !slices.Equal(delays, []time.Duration{2 * time.Second, 4 * time.Second}) {
		t.Errorf("delays %v", delays)
	}
	// Locked: the right password reads exactly like a wrong one.
	bad := b.submit(r, map[string]string{"password": alicePw})
	mustStatus(t, bad, http.StatusUnprocessableEntity)
	if bad.fieldError(t, "password") != msgSignInFailed {
		t.Fatalf("locked account: %q", bad.errorSummary())
	}
	// An unknown account locks the same way.
	b2, r2 := atPassword(t, e, "nobody@agency.example")
	for range 6 {
		bad = b2.submit(r2, map[string]string{"password": "wrong-password-number"})
	}
	if th, _ := e.st.GetThrottle(t.Context(), "acct:nobody@agency.example"); !th.LockedUntil.After(e.clock.Now()) {
		t.Errorf("unknown account not locked: %+v", th)
	}
	if bad.fieldError(t, "password") != msgSignInFailed {
		t.Errorf("locked unknown account: %q", bad.errorSummary())
	}

	// The lock expires with the clock; the right password then works and
	// resets the account's counter.
	e.clock.Advance(15*time.Minute + time.Second)
	d := b.done(b.follow(b.submit(r, map[string]string{"password": alicePw})))
	if !d.SignedIn {
		t.Fatalf("after the lock: %+v", d)
	}
	if th, _ := e.st.GetThrottle(t.Context(), acct); th.Failures != 0 || !th.LockedUntil.IsZero() {
		t.Errorf("not reset after success: %+v", th)
	}
}

func TestThrottleSuccessResets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withoutMFA)
	u := e.seedReady(alice, alicePw)
	b, r := atPassword(t, e, alice)
	for range 3 {
		b.submit(r, map[string]string{"password": "wrong-password-number"})
	}
	if th, _ := e.st.GetThrottle(t.Context(), "acct:"+u.ID); th.Failures != 3 {
		t.Fatalf("failures %d", th.Failures)
	}
	b.done(b.follow(b.submit(r, map[string]string{"password": alicePw})))
	if th, _ := e.st.GetThrottle(t.Context(), "acct:"+u.ID); th.Failures != 0 {
		t.Fatalf("failures %d after success", th.Failures)
	}
	// Later failures start from one again: no lock after two more.
	b2, r2 := atPassword(t, e, alice)
	for range 2 {
		b2.submit(r2, map[string]string{"password": "wrong-password-number"})
	}
	if th, _ := e.st.GetThrottle(t.Context(), "acct:"+u.ID); th.Failures != 2 || !th.LockedUntil.IsZero() {
		t.Fatalf("%+v", th)
	}
}

func TestThrottleLockGrows(t *testing.T) {
	t.Parallel()
	if got := []time.Duration{lockDuration(15*time.Minute, 24*time.Hour, 0), lockDuration(15*time.Minute, 24*time.Hour, 1), lockDuration(15*time.Minute, 24*time.Hour, 3),
		lockDuration(15*time.Minute, 24*time.Hour, 40)}; !slices.Equal(got, []time.Duration{15 * time.Minute, 30 * time.Minute, 2 * time.Hour, 24 * time.Hour}) {
		t.Fatalf("lock durations %v", got)
	}
	e := newEnv(t, withoutMFA)
	u := e.seedReady(alice, alicePw)
	b, r := atPassword(t, e, alice)
	for lock := 1; lock <= 2; lock++ {
		for range 5 {
			b.submit(r, map[string]string{"password": "wrong-password-number"})
		}
		th, _ := e.st.GetThrottle(t.Context(), "acct:"+u.ID)
		want := e.clock.Now().Add(time.Duration(lock) * 15 * time.Minute)
		if !th.LockedUntil.Equal(want) {
			t.Fatalf("lock %d until %v, want %v", lock, th.LockedUntil, want)
		}
		e.clock.Advance(time.Duration(lock)*15*time.Minute + time.Second)
	}
}

func TestConcurrentFailuresAllCount(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) {
		c.Throttle.MaxAccountFailures, c.Throttle.MaxAddressFailures = 1000, 1000
	})
	u := e.seedUser(alice, alicePw, false)
	const n = 50
	bs := make([]*browser, n)
	rs := make([]*resp, n)
	for i := range bs {
		bs[i], rs[i] = atPassword(t, e, alice)
	}
	var wg sync.WaitGroup
	for i := range bs {
		wg.Go(func() {
			if r := bs[i].submit(rs[i], map[string]string{"password": "wrong-password-number"}); r.status != http.StatusUnprocessableEntity {
				t.Errorf("status %d", r.status)
			}
		})
	}
	wg.Wait()
	acct, _ := e.st.GetThrottle(t.Context(), "acct:"+u.ID)
	addr, _ := e.st.GetThrottle(t.Context(), "addr:127.0.0.1")
	if acct.Failures != n || addr.Failures != n {
		t.Fatalf("account %d, address %d failures; want %d each", acct.Failures, addr.Failures, n)
	}
	if got := e.countEvents(evSigninFailure); got != n {
		t.Fatalf("%d failures audited", got)
	}
}

func TestAddressLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withoutMFA, func(c *config.Config) { c.Throttle.MaxAddressFailures = 8 })
	e.seedReady(alice, alicePw)
	// Different accounts, one address: the address locks, alice too.
	for i := range 8 {
		b, r := atPassword(t, e, "user"+string(rune('a'+i))+"@agency.example")
		b.submit(r, map[string]string{"password": "wrong-password-number"})
	}
	b, r := atPassword(t, e, alice)
	bad := b.submit(r, map[string]string{"password": alicePw})
	if bad.fieldError(t, "password") != msgSignInFailed {
		t.Fatalf("address lock not applied: %d", bad.status)
	}
}

func TestSessionRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seedUser(alice, aliceFirst, true)
	o := firstLogin(t, e, e.browser())

	b := e.browser()
	r := b.open("/test/authorize")
	r = b.follow(b.submit(r, map[string]string{"username": alice}))
	id0, c0, key := b.rawSessionID(), b.cookie().Value, b.sessionKey()
	r = b.follow(b.submit(r, map[string]string{"password": alicePw}))
	mustStep(t, r, StepMFAChallenge)
	id1, c1 := b.rawSessionID(), b.cookie().Value
	if id1 == id0 || id1 == "" {
		t.Fatal("session id not rotated after the password")
	}
	e.clock.Advance(30 * time.Second)
	d := b.done(b.follow(b.submit(r, map[string]string{"code": codeAt(o.secret, e.clock.Now())})))
	id2 := b.rawSessionID()
	if id2 == id1 || !d.SignedIn {
		t.Fatal("session id not rotated after the second factor")
	}
	// The session's stable key (the sid its tokens are bound to) is the one
	// it had before either rotation.
	if d.SessionID != key || key == "" {
		t.Fatalf("the session's key changed with its id: %q, was %q", d.SessionID, key)
	}
	// The old cookies are dead: anonymous.
	for _, old := range []string{c0, c1} {
		stale := e.browser()
		stale.setCookie(old)
		if d := stale.done(stale.get("/test/done")); d.SignedIn || d.InProgress || d.SessionID != "" {
			t.Fatalf("old session cookie still works: %+v", d)
		}
		mustRedirect(t, stale.get(PathNext), PathSignIn)
	}
	if _, err := e.st.SessionByID(t.Context(), id0, e.clock.Now()); err == nil {
		t.Fatal("the first session id still exists")
	}
}

func TestTamperedCookieIsAnonymous(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withoutMFA)
	e.seedReady(alice, alicePw)
	b, r := atPassword(t, e, alice)
	b.done(b.follow(b.submit(r, map[string]string{"password": alicePw})))
	good := b.cookie().Value
	flip := []byte(good)
	flip[len(flip)/2] ^= 1
	if flip[len(flip)/2] == good[len(good)/2] {
		t.Fatal("no change")
	}
	for name, v := range map[string]string{
		"flipped":   string(flip),
		"truncated": good[:len(good)-5],
		"empty":     "",
		"garbage":   strings.Repeat("A", 5000),
	} {
		t.Run(name, func(t *testing.T) {
			x := e.browser()
			x.setCookie(v)
			d := x.done(x.get("/test/done"))
			if d.SignedIn || d.SessionID != "" {
				t.Fatalf("tampered cookie accepted: %+v", d)
			}
		})
	}
	// A cookie made with another deployment's keys.
	other := newEnv(t, withoutMFA)
	other.seedReady(alice, alicePw)
	ob, or := atPassword(t, other, alice)
	ob.done(ob.follow(ob.submit(or, map[string]string{"password": alicePw})))
	x := e.browser()
	x.setCookie(ob.cookie().Value)
	if d := x.done(x.get("/test/done")); d.SignedIn || d.SessionID != "" {
		t.Fatalf("other key's cookie accepted: %+v", d)
	}
	// The genuine one still works.
	if d := b.done(b.get("/test/done")); !d.SignedIn {
		t.Fatal("genuine cookie refused")
	}
}

func TestRestartKeepsSessions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withoutMFA)
	e.seedReady(alice, alicePw)
	b, r := atPassword(t, e, alice)
	b.done(b.follow(b.submit(r, map[string]string{"password": alicePw})))
	// A second handler on the same store (a restart, or another node)
	// reads the same cookie keys.
	pages, _ := templates.Parse()
	h2, err := New(t.Context(), Options{Config: e.cfg, Store: e.st, Box: e.box, Pages: pages, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/", nil)
	req.AddCookie(b.cookie())
	got, err := h2.Browser(req)
	if err != nil || !got.SignedIn {
		t.Fatalf("after a restart: %+v %v", got, err)
	}
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.browser().get(PathSignIn)
	want := map[string]string{
		"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; manifest-src 'self'; worker-src 'self'; base-uri 'none'; frame-ancestors 'none'",
		"X-Frame-Options":         "DENY",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		"Cache-Control":           "no-store",
	}
	for k, v := range want {
		if got := r.header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if strings.Contains(r.header.Get("Content-Security-Policy"), "form-action") {
		t.Error("form-action would block the redirect to the relying party")
	}
	if r.header.Get("Strict-Transport-Security") != "" {
		t.Error("HSTS in dev")
	}
	// Outside dev: HSTS too.
	rec := httptest.NewRecorder()
	templates.PageHeaders(false, http.NotFoundHandler()).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if !strings.HasPrefix(rec.Header().Get("Strict-Transport-Security"), "max-age=") || rec.Header().Get("Content-Security-Policy") != templates.CSP {
		t.Errorf("headers outside dev: %v", rec.Header())
	}
}

// productionHandler is the journey outside dev, on a TLS test server.
func productionHandler(t *testing.T) (*Handler, *httptest.Server) {
	t.Helper()
	st, err := store.Open(t.Context(), t.TempDir()+"/l.db", store.OpenOptions{AuditKey: seal.NewKey()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := httptest.NewTLSServer(nil)
	t.Cleanup(srv.Close)
	cfg := &config.Config{Issuer: srv.URL, Documents: []config.Document{
		{ID: "privacy", Title: "Privacy policy", Version: "1"}, {ID: "terms", Title: "Terms of use", Version: "1"}}}
	cfg.ApplyDefaults()
	box, _ := seal.New(seal.NewKey())
	pages, _ := templates.Parse()
	h, err := New(t.Context(), Options{Config: cfg, Store: st, Box: box, Pages: pages})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Mount(mux)
	srv.Config.Handler = mux
	return h, srv
}

func TestProductionCookie(t *testing.T) {
	t.Parallel()
	h, srv := productionHandler(t)
	c := srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, err := c.PostForm(srv.URL+PathSignIn, url.Values{"username": {alice}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	cookies := res.Cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies %v", cookies)
	}
	ck := cookies[0]
	if ck.Name != "__Host-lanyard" || !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Domain != "" {
		t.Fatalf("cookie %+v", ck)
	}
	if !strings.HasPrefix(res.Header.Get("Strict-Transport-Security"), "max-age=") {
		t.Error("no HSTS")
	}
	// The cookie carries an opaque value, not the session id.
	req := httptest.NewRequest("GET", "/", nil)
	req.AddCookie(ck)
	raw := h.cookies.read(req)
	if len(raw) < 22 || strings.Contains(ck.Value, raw) {
		t.Fatalf("session id %q (cookie %q)", raw, ck.Value)
	}
}

func TestCrossOriginPostRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withoutMFA)
	u := e.seedReady(alice, alicePw)
	b, r := atPassword(t, e, alice)
	for name, h := range map[string][2]string{
		"origin":         {"Origin", "https://evil.example"},
		"sec-fetch-site": {"Sec-Fetch-Site", "cross-site"},
	} {
		t.Run(name, func(t *testing.T) {
			evil := e.browser()
			evil.jar = b.jar
			evil.c.Jar = b.jar
			evil.header.Set(h[0], h[1])
			res := evil.submit(r, map[string]string{"password": alicePw})
			mustStatus(t, res, http.StatusForbidden)
			if res.doc == nil || !strings.Contains(text(res.doc), "another website") {
				t.Errorf("refusal page: %s", res.body)
			}
			// Nothing changed: still at the password, nothing recorded.
			mustRedirect(t, b.get(PathNext), PathPassword)
			res = evil.post(PathSignIn, url.Values{"username": {"mallory@agency.example"}})
			mustStatus(t, res, http.StatusForbidden)
		})
	}
	if th, _ := e.st.GetThrottle(t.Context(), "acct:"+u.ID); th.Failures != 0 {
		t.Errorf("refused posts were counted")
	}
	if evs := e.events(""); len(evs) != 0 {
		t.Errorf("audit events %v", evs)
	}
	// Same origin (as a browser sends it) is fine.
	b.header.Set("Origin", e.srv.URL)
	b.header.Set("Sec-Fetch-Site", "same-origin")
	if d := b.done(b.follow(b.submit(r, map[string]string{"password": alicePw}))); !d.SignedIn {
		t.Fatal("same-origin post refused")
	}
}

// signedInWithoutMFA is a browser signed in as alice, where no second
// factor is asked, and its raw session id.
func signedInWithoutMFA(t *testing.T) (*env, *browser, string) {
	e := newEnv(t, withoutMFA)
	e.seedReady(alice, alicePw)
	b, r := atPassword(t, e, alice)
	b.done(b.follow(b.submit(r, map[string]string{"password": alicePw})))
	return e, b, b.rawSessionID()
}

// A page of a session seen moments ago does not write its last-seen time
// (a write transaction on every page of a sign-in); one seen longer ago
// than the resolution (a minute, or a thirtieth of the idle limit) does, so
// activity keeps the session alive and it expires idle at most a minute
// early.
func TestLastSeenResolution(t *testing.T) {
	t.Parallel()
	e, b, raw := signedInWithoutMFA(t)
	seen := func() time.Time {
		t.Helper()
		x, err := e.st.SessionByID(t.Context(), raw, e.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		return x.LastSeenAt
	}
	t0 := seen()
	e.clock.Advance(50 * time.Second)
	if d := b.done(b.get("/test/done")); !d.SignedIn {
		t.Fatal("signed out")
	}
	if got := seen(); !got.Equal(t0) {
		t.Fatalf("last seen written 50 s after the last write: %v → %v", t0, got)
	}
	e.clock.Advance(20 * time.Second)
	b.done(b.get("/test/done"))
	if got := seen(); !got.Equal(e.clock.Now().Truncate(time.Microsecond)) {
		t.Fatalf("last seen %v after 70 s, want now (%v)", got, e.clock.Now())
	}
	if got, want := touchEvery(30*time.Minute), time.Minute; got != want {
		t.Errorf("touchEvery(30m) = %v, want %v", got, want)
	}
	if got, want := touchEvery(time.Minute), 2*time.Second; got != want {
		t.Errorf("touchEvery(1m) = %v, want %v", got, want)
	}
}

func TestTimeouts(t *testing.T) {
	t.Parallel()
	e, b, raw := signedInWithoutMFA(t)
	// Activity keeps the session alive...
	e.clock.Advance(50 * time.Minute)
	if d := b.done(b.get("/test/done")); !d.SignedIn {
		t.Fatal("signed out while active")
	}
	// ...an hour of idleness ends it, server-side.
	e.clock.Advance(61 * time.Minute)
	if d := b.done(b.get("/test/done")); d.SignedIn || d.SessionID != "" {
		t.Fatalf("idle session still signed in: %+v", d)
	}
	if _, err := e.st.SessionByID(t.Context(), raw, e.clock.Now()); err == nil {
		t.Fatal("idle session not deleted")
	}

	// A sign-in in progress expires after 30 minutes of inactivity.
	b, _ = atPassword(t, e, alice)
	e.clock.Advance(31 * time.Minute)
	mustRedirect(t, b.get(PathPassword), PathSignIn)

	// The absolute limit holds even for an active session.
	b, r := atPassword(t, e, alice)
	b.done(b.follow(b.submit(r, map[string]string{"password": alicePw})))
	for range 25 {
		e.clock.Advance(59 * time.Minute)
		b.get("/test/done")
	}
	if d := b.done(b.get("/test/done")); d.SignedIn {
		t.Fatal("session outlived the absolute timeout")
	}
}

func TestHugeInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withoutMFA)
	e.seedReady(alice, alicePw)
	b := e.browser()
	// Over the body limit: a clear page, no 5xx, no session.
	r := b.post(PathSignIn, url.Values{"username": {strings.Repeat("a", 100<<10)}})
	mustStatus(t, r, http.StatusRequestEntityTooLarge)
	if !strings.Contains(text(r.doc), "longer than anything this form needs") {
		t.Errorf("page: %s", text(r.doc))
	}
	if b.cookie() != nil {
		t.Error("session created")
	}
	// Within the limit but absurd in every field.
	big := strings.Repeat("9", 60<<10)
	r = b.post(PathSignIn, url.Values{"username": {big}})
	mustStatus(t, r, http.StatusBadRequest)
	b, pr := atPassword(t, e, alice)
	r = b.submit(pr, map[string]string{"password": big})
	mustStatus(t, r, http.StatusUnprocessableEntity)
	// Malformed form encoding.
	r = b.do("POST", PathPassword, nil)
	if r.status >= 500 {
		t.Fatalf("status %d", r.status)
	}
}

func TestForceLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seedUser(alice, aliceFirst, true)
	b := e.browser()
	o := firstLogin(t, e, b)
	first := o.done.AuthTime
	id := b.rawSessionID()
	// prompt=login: the password and the second factor again.
	e.clock.Advance(10 * time.Minute)
	r := b.open("/test/authorize?n=9&force=1")
	mustStep(t, r, StepIdentify)
	if v := attr(find(r.doc, func(n *html.Node) bool { return attr(n, "name") == "username" }), "value"); v != alice {
		t.Errorf("username not pre-filled: %q", v)
	}
	if d := b.done(b.get("/test/done")); d.SignedIn {
		t.Fatal("still signed in during a forced sign-in")
	}
	r = b.follow(b.submit(r, map[string]string{"username": alice}))
	r = b.follow(b.submit(r, map[string]string{"password": alicePw}))
	mustStep(t, r, StepMFAChallenge)
	d := b.done(b.follow(b.submit(r, map[string]string{"code": codeAt(o.secret, e.clock.Now())})))
	if !d.SignedIn || !d.AuthTime.After(first) || d.N != "9" {
		t.Fatalf("after prompt=login: %+v (first auth %v)", d, first)
	}
	if b.rawSessionID() == id {
		t.Fatal("no new session id")
	}
}

func TestSignOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withoutMFA)
	e.seedReady(alice, alicePw)
	b, r := atPassword(t, e, alice)
	b.done(b.follow(b.submit(r, map[string]string{"password": alicePw})))
	raw, old := b.rawSessionID(), b.cookie().Value
	acct := b.get(PathAccount)
	mustStatus(t, acct, 200)
	form := find(acct.doc, func(n *html.Node) bool { return n.Data == "form" && attr(n, "action") == PathSignOut })
	if form == nil {
		t.Fatal("no sign-out form")
	}
	res := b.post(PathSignOut, nil)
	mustRedirect(t, res, PathSignIn+"?signed_out=1")
	if !strings.Contains(res.header.Get("Set-Cookie"), "Max-Age=0") {
		t.Errorf("cookie not cleared: %q", res.header.Get("Set-Cookie"))
	}
	if _, err := e.st.SessionByID(t.Context(), raw, e.clock.Now()); err == nil {
		t.Fatal("server-side session survived sign-out")
	}
	if e.countEvents(evLogout) != 1 {
		t.Error("logout not audited")
	}
	// Replaying the old cookie gets nothing.
	x := e.browser()
	x.setCookie(old)
	if d := x.done(x.get("/test/done")); d.SignedIn {
		t.Fatal("old cookie still signed in")
	}
	page := b.get("/signin?signed_out=1")
	if !strings.Contains(text(page.doc), "You are signed out") {
		t.Errorf("no signed-out notice")
	}
}

func TestRecoveryCodeFormat(t *testing.T) {
	t.Parallel()
	rh := recoveryHasher{key: seal.NewKey()}
	codes, hashes := rh.newRecoveryCodes("u1")
	if len(codes) != 10 || len(hashes) != 10 {
		t.Fatal("not ten codes")
	}
	seen := map[string]bool{}
	for i, c := range codes {
		if len(c) != 12 || c[4] != '-' || c[9] != '-' {
			t.Errorf("code %q not xxxx-xxxx-xx", c)
		}
		n, ok := normaliseRecoveryCode(c)
		if !ok || rh.match("u1", n, hashes) != hashes[i] || seen[n] {
			t.Errorf("code %q does not round-trip", c)
		}
		seen[n] = true
	}
	for in, want := range map[string]string{
		"abcd-efgh-jk":   "abcdefghjk",
		" ABCD EFGH JK ": "abcdefghjk",
		"o0il-1234-56":   "0011123456",
	} {
		if got, ok := normaliseRecoveryCode(in); !ok || got != want {
			t.Errorf("normalise(%q) = %q %v", in, got, ok)
		}
	}
	for _, bad := range []string{"", "abcd-efgh-j", "abcd-efgh-jkm", "abcd-efgh-ju", "ａｂｃｄ-efgh-jk", strings.Repeat("a", 1000)} {
		if _, ok := normaliseRecoveryCode(bad); ok {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestLoginHintAndPasswordOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withoutMFA)
	e.seedReady(alice, alicePw)
	b := e.browser()
	r := b.open("/test/authorize?hint=" + url.QueryEscape(" Alice@agency.example"))
	mustStep(t, r, StepIdentify)
	if v := attr(find(r.doc, func(n *html.Node) bool { return attr(n, "name") == "username" }), "value"); v != alice {
		t.Fatalf("login_hint not pre-filled: %q", v)
	}
	if !strings.Contains(text(r.doc), "Docs portal (staging)") {
		t.Errorf("the relying party's name is not shown")
	}
	r = b.follow(b.submit(r, map[string]string{"username": alice}))
	d := b.done(b.follow(b.submit(r, map[string]string{"password": alicePw})))
	if !d.SignedIn || !slices.Equal(d.AMR, []string{"pwd"}) || d.ACR != acrPassword {
		t.Fatalf("password-only sign-in: %+v", d)
	}
	// A direct visit, without a relying party, ends on the account page.
	b2 := e.browser()
	r = b2.open(PathSignIn)
	r = b2.follow(b2.submit(r, map[string]string{"username": alice}))
	r = b2.follow(b2.submit(r, map[string]string{"password": alicePw}))
	if !strings.HasSuffix(r.url, PathAccount) || !strings.Contains(text(r.doc), "You are signed in") {
		t.Fatalf("direct sign-in ended at %s: %s", r.url, text(r.doc))
	}
}

func TestSignInRefusesForeignResumeURL(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, u := range []string{"https://evil.example/cb", "//evil.example/x", "/relative", e.srv.URL + "@evil.example/",
		strings.Replace(e.srv.URL, "http:", "https:", 1) + "/x", "javascript:alert(1)", ""} {
		rec := httptest.NewRecorder()
		e.h.SignIn(rec, httptest.NewRequest("GET", "/authorize", nil), authn.SignInRequest{ResumeURL: u})
		if rec.Code != http.StatusBadRequest || rec.Header().Get("Location") != "" || rec.Header().Get("Set-Cookie") != "" {
			t.Errorf("%q: status %d, location %q", u, rec.Code, rec.Header().Get("Location"))
		}
	}
	rec := httptest.NewRecorder()
	e.h.SignIn(rec, httptest.NewRequest("GET", "/authorize", nil), authn.SignInRequest{ResumeURL: e.srv.URL + "/authorize/resume?id=x"})
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != PathSignIn {
		t.Errorf("good resume URL: %d %q", rec.Code, rec.Header().Get("Location"))
	}
}
