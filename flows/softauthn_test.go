package flows

// Test helpers for the passkey ceremonies: a journey server whose issuer is
// http://localhost:PORT (an IP address cannot be a WebAuthn RP ID), JSON
// requests as static/webauthn.js makes them, and the software authenticator
// of flows/internal/softauthn answering them.

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/flows/internal/softauthn"
	"github.com/lanyard-idp/lanyard/provider/store"
)

// newPasskeyEnv is newEnv with the issuer on localhost.
func newPasskeyEnv(t *testing.T, tweak ...func(*config.Config)) *env {
	t.Helper()
	localhost := func(c *config.Config) { c.Issuer = strings.Replace(c.Issuer, "127.0.0.1", "localhost", 1) }
	e := newEnv(t, append([]func(*config.Config){localhost}, tweak...)...)
	e.srv.URL = e.cfg.Issuer
	if e.h.settings().wa == nil {
		t.Fatal("passkeys unavailable on the localhost issuer")
	}
	return e
}

// manyTries keeps the throttle out of the way of tests that fail on purpose.
func manyTries(c *config.Config) {
	c.Throttle.MaxAccountFailures, c.Throttle.MaxAddressFailures = 1000, 1000
	c.Throttle.MaxSecondFactorFailures, c.Throttle.SecondFactorDailyCap = 1000, 1000
}

func (e *env) authenticator() *softauthn.Authenticator { return softauthn.New(e.cfg.Issuer) }

// postJSON posts body as the script does (same-origin fetch, JSON).
func (b *browser) postJSON(path string, body []byte) *resp {
	b.t.Helper()
	req, err := http.NewRequest("POST", b.e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range b.header {
		req.Header[k] = v
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("POST %s: %v", path, err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return &resp{status: res.StatusCode, location: res.Header.Get("Location"), header: res.Header, body: string(data), url: b.e.srv.URL + path}
}

// answer decodes a ceremony endpoint's JSON answer.
func (r *resp) answer(t testing.TB) jsonAnswer {
	t.Helper()
	var a jsonAnswer
	if !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("status %d, not JSON (%s): %.300s", r.status, r.header.Get("Content-Type"), r.body)
	}
	if err := json.Unmarshal([]byte(r.body), &a); err != nil {
		t.Fatalf("answer %q: %v", r.body, err)
	}
	return a
}

// options starts a ceremony and returns the options JSON.
func (b *browser) options(path string) []byte {
	b.t.Helper()
	r := b.postJSON(path+optionsSuffix, []byte("{}"))
	if r.status != http.StatusOK {
		b.t.Fatalf("options %s: status %d: %s", path, r.status, r.body)
	}
	return []byte(r.body)
}

// finish posts an authenticator's answer as the script does.
func (b *browser) finish(path string, credential []byte, name string) *resp {
	b.t.Helper()
	body, err := json.Marshal(map[string]any{"credential": json.RawMessage(credential), "name": name})
	if err != nil {
		b.t.Fatal(err)
	}
	return b.postJSON(path, body)
}

// register runs a whole registration at path and returns the answer.
func (b *browser) register(path string, a *softauthn.Authenticator, name string) (*resp, *softauthn.Credential) {
	b.t.Helper()
	cred, c, err := a.Create(b.options(path))
	if err != nil {
		b.t.Fatalf("create: %v", err)
	}
	return b.finish(path, cred, name), c
}

// assert runs a whole assertion at path with the authenticator's first
// allowed credential.
func (b *browser) assert(path string, a *softauthn.Authenticator) *resp {
	b.t.Helper()
	cred, err := a.Get(b.options(path), nil)
	if err != nil {
		b.t.Fatalf("get: %v", err)
	}
	return b.finish(path, cred, "")
}

// mustGo asserts a successful ceremony and follows its redirect.
func (b *browser) mustGo(r *resp, to string) *resp {
	b.t.Helper()
	a := r.answer(b.t)
	if r.status != http.StatusOK || a.Redirect != to || a.Error != "" {
		b.t.Fatalf("ceremony: status %d, answer %+v, want a redirect to %s", r.status, a, to)
	}
	return b.open(a.Redirect)
}

// firstLoginPasskey is firstLogin with a passkey enrolled instead of an app.
func firstLoginPasskey(t *testing.T, e *env, b *browser, username, pw string, a *softauthn.Authenticator) onboarded {
	t.Helper()
	var o onboarded
	r := b.open("/test/authorize?n=1")
	newPw := pw + "-renewed-Q7"
	for i := 0; i < 12; i++ {
		step := r.step()
		if step == "" {
			break
		}
		mustStatus(t, r, 200)
		o.steps = append(o.steps, step)
		var fields map[string]string
		switch step {
		case StepIdentify:
			fields = map[string]string{"username": username}
		case StepPassword:
			fields = map[string]string{"password": pw}
		case StepMFAEnrol:
			res, _ := b.register(PathPasskeyEnrol, a, "")
			r = b.mustGo(res, PathNext)
			continue
		case StepRecoveryCodes:
			for _, n := range findAll(r.doc, func(n *html.Node) bool { return attr(n, "class") == "recovery-code" }) {
				o.codes = append(o.codes, n.FirstChild.Data)
			}
			fields = map[string]string{"accept": "yes"}
		case StepChangePassword:
			fields = map[string]string{"current_password": pw, "new_password": newPw, "confirm_password": newPw}
		case StepPrivacy, StepTerms:
			fields = map[string]string{"accept": "yes"}
		default:
			t.Fatalf("unexpected step %q", step)
		}
		r = b.follow(b.submit(r, fields))
	}
	o.done = b.done(r)
	o.user = e.user("u-" + strings.NewReplacer("@", "-", ".", "-").Replace(username))
	return o
}

// syncedPasskeyOfficer onboards alice with a synced passkey (which reports
// no sign counter) and returns her and the authenticator.
func syncedPasskeyOfficer(t *testing.T, e *env) (onboarded, *softauthn.Authenticator) {
	t.Helper()
	e.seedUser(alice, aliceFirst, true)
	a := e.authenticator()
	a.Synced = true
	o := firstLoginPasskey(t, e, e.browser(), alice, aliceFirst, a)
	zero := uint32(0)
	a.Counter = &zero
	return o, a
}

// renewed is the password firstLoginPasskey chose.
func renewed(pw string) string { return pw + "-renewed-Q7" }

// signInTo brings a new browser of an onboarded officer to the challenge.
func signInTo(t *testing.T, e *env, username, pw string) (*browser, *resp) {
	t.Helper()
	b := e.browser()
	r := b.open("/test/authorize?n=2")
	r = b.follow(b.submit(r, map[string]string{"username": username}))
	r = b.follow(b.submit(r, map[string]string{"password": pw}))
	return b, r
}

func (e *env) passkeys(userID string) []store.WebAuthnCredential {
	e.t.Helper()
	cs, err := e.st.WebAuthnCredentials(e.t.Context(), userID)
	if err != nil {
		e.t.Fatal(err)
	}
	return cs
}

func (e *env) failures(key string) int {
	e.t.Helper()
	th, err := e.st.GetThrottle(e.t.Context(), key)
	if err != nil {
		e.t.Fatal(err)
	}
	return th.Failures
}

// lastEvent is the newest audit event of a name.
func (e *env) lastEvent(name store.Event) (store.AuditEvent, map[string]any) {
	e.t.Helper()
	evs, err := e.st.Audit(e.t.Context(), store.AuditFilter{Event: string(name)})
	if err != nil {
		e.t.Fatal(err)
	}
	if len(evs) == 0 {
		e.t.Fatalf("no %s event", name)
	}
	ev := evs[len(evs)-1]
	var d map[string]any
	if len(ev.Detail) > 0 {
		if err := json.Unmarshal(ev.Detail, &d); err != nil {
			e.t.Fatal(err)
		}
	}
	return ev, d
}

// tamper rewrites a field of a credential's response JSON.
func tamper(t *testing.T, credential []byte, field, value string) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(credential, &m); err != nil {
		t.Fatal(err)
	}
	m["response"].(map[string]any)[field] = value
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
