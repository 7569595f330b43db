package flows

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/lanyard-idp/lanyard/config"
)

// FuzzPasskeyJSON posts arbitrary bodies to the passkey ceremonies' JSON
// endpoints (options and finish of the passwordless sign-in, the second
// factor and the enrolment), from a browser that has just been given a
// challenge: never a 5xx, always the JSON answer the script reads, and
// nothing stored. Its seeds run with the normal test command; to fuzz:
//
//	go test -run '^$' -fuzz=FuzzPasskeyJSON -fuzztime=1m ./flows
func FuzzPasskeyJSON(f *testing.F) {
	for _, s := range []string{
		`{}`,
		``,
		`{`,
		`[]`,
		`null`,
		`{"credential":null,"name":""}`,
		`{"credential":{},"name":"Laptop"}`,
		`{"credential":{"id":"AAAA","rawId":"AAAA","type":"public-key","response":{"clientDataJSON":"e30","authenticatorData":"AAAA","signature":"AAAA","userHandle":"dS1hbGljZQ"}}}`,
		`{"credential":{"id":"AAAA","rawId":"AAAA","type":"public-key","response":{"clientDataJSON":"eyJ0eXBlIjoid2ViYXV0aG4uY3JlYXRlIn0","attestationObject":"o2NmbXRkbm9uZQ"}},"name":"\u202eyek"}`,
		`{"credential":{"id":"` + strings.Repeat("A", 5000) + `"}}`,
		`{"credential":"` + strings.Repeat("[", 3000) + `"}`,
		strings.Repeat(`{"a":`, 2000),
		`{"name":"` + strings.Repeat("x", 200) + `"}`,
	} {
		for which := range uint8(3) {
			f.Add([]byte(s), which)
		}
	}
	// Every attempt is charged; the fuzzer must keep reaching the parsers.
	e := newEnv(f, func(c *config.Config) {
		manyTries(c)
		c.Throttle.MaxAccountFailures, c.Throttle.MaxAddressFailures = 1<<30, 1<<30
	})
	e.seedUser(alice, aliceFirst, true)
	paths := []string{PathPasskeySignIn, PathPasskeyChallenge, PathPasskeyEnrol}
	f.Fuzz(func(t *testing.T, body []byte, which uint8) {
		b := e.browser()
		b.t = t
		b.postJSON(PathPasskeySignIn+optionsSuffix, []byte("{}")) // a challenge in the session
		path := paths[int(which)%len(paths)]
		for _, p := range []string{path + optionsSuffix, path} {
			r := b.postJSON(p, body)
			if r.status >= 500 {
				t.Fatalf("POST %s: status %d: %.300s", p, r.status, r.body)
			}
			if r.status != http.StatusOK {
				var a jsonAnswer
				if !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") || json.Unmarshal([]byte(r.body), &a) != nil || a.Error == "" {
					t.Fatalf("POST %s: status %d without the JSON error the script shows: %.300s", p, r.status, r.body)
				}
			}
		}
		var n int
		if err := e.st.DB().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM webauthn_credentials`).Scan(&n); err != nil || n != 0 {
			t.Fatalf("%d passkeys stored (%v)", n, err)
		}
	})
}

// FuzzRecoveryForms posts arbitrary values in every field of the public
// recovery forms — "Forgot your password?", the emailed reset link's form
// and the fresh onboarding email — from a browser with no session: never a
// 5xx, always a page or a redirect, and the officers' passwords never
// change. Its seeds run with the normal test command; to fuzz:
//
//	go test -run '^$' -fuzz=FuzzRecoveryForms -fuzztime=1m ./flows
func FuzzRecoveryForms(f *testing.F) {
	for _, s := range []string{
		"",
		alice,
		strings.ToUpper(alice),
		" " + alice + "\t",
		"alice@agency.example\x00",
		"аlice@agency.example", // Cyrillic а
		"alice\u202e@agency.example",
		"%zz",
		strings.Repeat("a", 5000),
		strings.Repeat("A", 43),
		"Silver-maple-orchard-42",
	} {
		for which := range uint8(3) {
			f.Add(s, which)
		}
	}
	e := newEnv(f, manyTries)
	e.h.recoveryFloor = 0 // the floor is TestForgotSameAnswer's; here it only slows the fuzzer
	u := e.seedReady(alice, alicePw)
	paths := []string{PathForgot, PathReset, PathInvitation}
	f.Fuzz(func(t *testing.T, v string, which uint8) {
		b := e.browser()
		b.t = t
		form := url.Values{}
		for _, k := range []string{"username", "email", "token", "new_password", "confirm_password"} {
			form.Set(k, v)
		}
		p := paths[int(which)%len(paths)]
		r := b.post(p, form)
		if r.status >= 500 {
			t.Fatalf("POST %s: status %d: %.300s", p, r.status, r.body)
		}
		if r.status/100 != 3 && !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
			t.Fatalf("POST %s: status %d, %q: not a page", p, r.status, r.header.Get("Content-Type"))
		}
		now, err := e.st.UserByID(t.Context(), u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if now.PasswordHash != u.PasswordHash {
			t.Fatalf("POST %s with %q changed the password", p, v)
		}
	})
}
