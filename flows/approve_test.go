package flows

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/flows/approval"
	"github.com/lanyard-idp/lanyard/flows/approval/pushtest"
	"github.com/lanyard-idp/lanyard/flows/mail/mailtest"
	"github.com/lanyard-idp/lanyard/provider/store"
	"github.com/lanyard-idp/lanyard/provider/store/storetest"
	"github.com/lanyard-idp/lanyard/templates"
)

// The approval app over HTTP: the signing-in browser is the harness's
// cookie-jar browser; the phone is a Go stand-in for static/approve/app.js
// that holds its own ECDSA P-256 key and makes the same signed calls; the
// browser vendor's push service is pushtest, which checks the VAPID
// signature and decrypts every push.

const phoneUA = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Mobile Safari/537.36"

// approvalEnv is a journey server whose push hosts include the test push
// service.
func approvalEnv(t *testing.T, tweak ...func(*config.Config)) (*env, *pushtest.Service) {
	t.Helper()
	push := pushtest.New()
	t.Cleanup(push.Close)
	e := newEnv(t, append([]func(*config.Config){func(c *config.Config) {
		c.Approval.PushHosts = []string{push.Host()}
	}}, tweak...)...)
	t.Cleanup(e.h.Wait)
	return e, push
}

// phone stands in for the app on one phone.
type phone struct {
	t      testing.TB
	e      *env
	base   string // the node it talks to
	key    *ecdsa.PrivateKey
	device string
	sub    *pushtest.Subscription
}

func (e *env) phone(push *pushtest.Service) *phone {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	p := &phone{t: e.t, e: e, base: e.srv.URL, key: k}
	if push != nil {
		p.sub = push.Subscribe()
	}
	return p
}

// call posts JSON as the app does and returns the status and the answer.
func (p *phone) call(path string, body any) (int, map[string]any) {
	p.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", p.base+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", phoneUA)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("POST %s: %v", path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		p.t.Fatalf("POST %s: status %d, not JSON: %s", path, res.StatusCode, raw)
	}
	return res.StatusCode, out
}

// phoneRequest is a request as the phone sees it.
type phoneRequest struct {
	ID, Kind, Account, Application, Browser, Address, Challenge string
}

func toRequest(m map[string]any) phoneRequest {
	s := func(k string) string { v, _ := m[k].(string); return v }
	return phoneRequest{ID: s("id"), Kind: s("kind"), Account: s("account"), Application: s("application"),
		Browser: s("browser"), Address: s("address"), Challenge: s("challenge")}
}

func (p *phone) publicKey() string {
	enc, err := approval.EncodePublicKey(&p.key.PublicKey)
	if err != nil {
		p.t.Fatal(err)
	}
	return enc
}

// pair opens a pairing link: the new key is registered, the request comes back.
func (p *phone) pair(link string) (int, phoneRequest, map[string]any) {
	p.t.Helper()
	_, token, ok := strings.Cut(link, "#pair=")
	if !ok {
		p.t.Fatalf("%q is not a pairing link", link)
	}
	status, out := p.call(PathApprovePair, map[string]any{"token": token, "public_key": p.publicKey()})
	return status, toRequest(out), out
}

// answerWith signs and sends an answer with key k (the phone's own, or
// another's).
func (p *phone) answerWith(k *ecdsa.PrivateKey, req phoneRequest, number string, d approval.Decision, extra map[string]any) (int, map[string]any) {
	p.t.Helper()
	sig, err := approval.Sign(k, approval.Message(req.ID, number, d, req.Challenge))
	if err != nil {
		p.t.Fatal(err)
	}
	body := map[string]any{"request": req.ID, "device": p.device, "number": number, "decision": string(d), "signature": sig}
	if req.Kind == store.ApprovalPairing {
		body["name"] = "Test phone"
		if p.sub != nil {
			body["push"] = map[string]string{"endpoint": p.sub.Endpoint, "p256dh": p.sub.P256dh, "auth": p.sub.Auth}
		}
	}
	for k, v := range extra {
		body[k] = v
	}
	return p.call(PathApproveAnswer, body)
}

func (p *phone) answer(req phoneRequest, number string, d approval.Decision) (int, map[string]any) {
	p.t.Helper()
	status, out := p.answerWith(p.key, req, number, d, nil)
	if req.Kind == store.ApprovalPairing && status == 200 {
		p.device, _ = out["device"].(string)
	}
	return status, out
}

// pending asks for the requests waiting, as the open app does.
func (p *phone) pending() (int, []phoneRequest, map[string]any) {
	p.t.Helper()
	at := p.e.clock.Now().UnixMilli()
	sig, _ := approval.Sign(p.key, approval.ListMessage(p.device, at))
	status, out := p.call(PathApprovePending, map[string]any{"device": p.device, "at": at, "signature": sig})
	var reqs []phoneRequest
	list, _ := out["requests"].([]any)
	for _, r := range list {
		reqs = append(reqs, toRequest(r.(map[string]any)))
	}
	return status, reqs, out
}

// onlyPending is the one request waiting for the phone.
func (p *phone) onlyPending() phoneRequest {
	p.t.Helper()
	status, reqs, out := p.pending()
	if status != 200 || len(reqs) != 1 {
		p.t.Fatalf("pending: status %d, %d requests (%v), want one", status, len(reqs), out)
	}
	return reqs[0]
}

// approvalStatus is what the waiting page's script reads.
func (b *browser) approvalStatus(path string) approvalView {
	b.t.Helper()
	r := b.get(path)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		b.t.Fatalf("GET %s: status %d %s: %s", path, r.status, r.header.Get("Content-Type"), r.body)
	}
	var v approvalView
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		b.t.Fatal(err)
	}
	return v
}

// startJSON is the waiting page's script starting a request.
func (b *browser) startJSON(path string) (int, approvalView) {
	b.t.Helper()
	b.header.Set("Accept", "application/json")
	defer b.header.Del("Accept")
	r := b.post(path, nil)
	var v approvalView
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		b.t.Fatalf("POST %s: status %d, not JSON: %s", path, r.status, r.body)
	}
	return r.status, v
}

// pairInJourney takes a first sign-in to mfa-enrol and pairs p there; it
// returns the browser at the recovery codes.
func pairInJourney(t *testing.T, e *env, b *browser, p *phone) *resp {
	t.Helper()
	r := b.open("/test/authorize?n=1")
	r = b.follow(b.submit(r, map[string]string{"username": alice}))
	r = b.follow(b.submit(r, map[string]string{"password": aliceFirst}))
	mustStep(t, r, StepMFAEnrol)
	offer := find(r.doc, func(n *html.Node) bool { return n.Data == "form" && attr(n, "action") == PathEnrolApprove })
	if offer == nil || !strings.Contains(text(offer), "Use the Lanyard approval app on your phone") {
		t.Fatalf("mfa-enrol offers no approval app: %s", text(r.doc))
	}
	r = b.post(PathEnrolApprove, nil)
	mustRedirect(t, r, PathEnrolApprove)
	r = b.get(PathEnrolApprove)
	mustStep(t, r, StepMFAEnrol)
	checkPage(t, r)
	link := text(byID(r.doc, "pairing-link"))
	if !strings.HasPrefix(link, e.srv.URL+PathApprove+"#pair=") {
		t.Fatalf("#pairing-link is %q", link)
	}
	if v := b.approvalStatus(PathEnrolApprove + approveStatus); v.State != "waiting" || v.Number != "" {
		t.Fatalf("before the phone opened the link: %+v (no number may show yet)", v)
	}
	status, req, out := p.pair(link)
	if status != 200 || req.Kind != store.ApprovalPairing || req.Account != alice || req.Challenge == "" {
		t.Fatalf("pair: %d %v", status, out)
	}
	if _, leaked := out["number"]; leaked {
		t.Fatalf("the phone was told the number: %v", out)
	}
	v := b.approvalStatus(PathEnrolApprove + approveStatus)
	if v.State != "number" || len(v.Number) != 2 {
		t.Fatalf("after the phone opened the link: %+v", v)
	}
	r = b.get(PathEnrolApprove)
	if got := text(byID(r.doc, "match-number")); got != v.Number {
		t.Fatalf("#match-number %q, status says %q", got, v.Number)
	}
	if status, out := p.answer(req, v.Number, approval.Approve); status != 200 || out["state"] != "approved" || p.device == "" {
		t.Fatalf("pairing approval: %d %v", status, out)
	}
	if v := b.approvalStatus(PathEnrolApprove + approveStatus); v.State != "approved" {
		t.Fatalf("after Yes: %+v", v)
	}
	r = b.follow(b.post(PathEnrolApprove+approveFinish, nil))
	mustStep(t, r, StepRecoveryCodes)
	return r
}

// onboardWithPhone completes a first sign-in with p as the second factor.
func onboardWithPhone(t *testing.T, e *env, b *browser, p *phone) done {
	t.Helper()
	e.seedUser(alice, aliceFirst, true)
	r := pairInJourney(t, e, b, p)
	r = b.follow(b.submit(r, map[string]string{"accept": "yes"}))
	r = b.follow(b.submit(r, map[string]string{"current_password": aliceFirst, "new_password": alicePw, "confirm_password": alicePw}))
	for r.step() == StepPrivacy || r.step() == StepTerms {
		r = b.follow(b.submit(r, map[string]string{"accept": "yes"}))
	}
	return b.done(r)
}

// TestApprovalPairing is the guide's step 3.5 at the first sign-in: the
// pairing link, the number the computer shows typed on the phone, Yes,
// then the recovery codes as for any first factor; the phone is the
// second factor from then on (amr swk, mfa).
func TestApprovalPairing(t *testing.T) {
	e, push := approvalEnv(t)
	b := e.browser()
	p := e.phone(push)
	d := onboardWithPhone(t, e, b, p)
	if !d.SignedIn || !slices.Contains(d.AMR, "swk") || !slices.Contains(d.AMR, "mfa") || !slices.Contains(d.AMR, "pwd") {
		t.Fatalf("after pairing: %+v", d.Browser)
	}
	u, _ := e.st.UserByUsername(t.Context(), alice)
	devs, err := e.st.ApprovalDevices(t.Context(), u.ID)
	if err != nil || len(devs) != 1 || devs[0].ID != p.device || devs[0].Name != "Test phone" || devs[0].Push.Endpoint != p.sub.Endpoint {
		t.Fatalf("stored devices: %+v (%v)", devs, err)
	}
	if n, _ := e.st.RecoveryCodesLeft(t.Context(), u.ID); n != 10 {
		t.Errorf("%d recovery codes after pairing, want 10", n)
	}
	for _, ev := range []store.Event{evApprovalRequest, evApprovalOpen, evApprovalApprove, evMFAEnrol} {
		if e.countEvents(ev) != 1 {
			t.Errorf("%d %s events, want 1: %v", e.countEvents(ev), ev, e.events(""))
		}
	}
}

// A pairing link works once, only for its browser, and not after its time.
func TestApprovalPairingLink(t *testing.T) {
	e, _ := approvalEnv(t)
	e.seedUser(alice, aliceFirst, true)
	b := e.browser()
	r := b.open("/test/authorize?n=1")
	r = b.follow(b.submit(r, map[string]string{"username": alice}))
	b.follow(b.submit(r, map[string]string{"password": aliceFirst}))
	b.post(PathEnrolApprove, nil)
	link := text(byID(b.get(PathEnrolApprove).doc, "pairing-link"))

	first, second := e.phone(nil), e.phone(nil)
	if status, _, out := first.pair(link); status != 200 {
		t.Fatalf("first phone: %d %v", status, out)
	}
	if status, _, out := second.pair(link); status != http.StatusConflict {
		t.Fatalf("the link opened a second time: %d %v", status, out)
	}
	for _, bad := range []string{"#pair=" + approval.NewToken(), "#pair=short", "#pair="} {
		if status, _, _ := second.pair(bad); status != http.StatusNotFound {
			t.Errorf("link %q: status %d, want 404", bad, status)
		}
	}
	// The finish belongs to the browser that asked: another one of the same
	// officer, even signed in as far, has nothing to finish.
	other := e.browser()
	r = other.open("/test/authorize?n=2")
	r = other.follow(other.submit(r, map[string]string{"username": alice}))
	r = other.follow(other.submit(r, map[string]string{"password": aliceFirst}))
	r = other.post(PathEnrolApprove+approveFinish, nil)
	mustStatus(t, r, http.StatusUnprocessableEntity)
	if has, _ := e.h.hasSecondFactor(t.Context(), e.user("u-alice-agency-example").ID); has {
		t.Fatal("a browser without the pairing stored a factor")
	}

	// A new link withdraws the old one; it expires after pairing_timeout.
	b.post(PathEnrolApprove, nil)
	link2 := text(byID(b.get(PathEnrolApprove).doc, "pairing-link"))
	if link2 == link {
		t.Fatal("a new pairing link is the old one")
	}
	e.clock.Advance(5*time.Minute + time.Second)
	if status, _, _ := e.phone(nil).pair(link2); status != http.StatusConflict {
		t.Errorf("an expired link: status %d, want 409", status)
	}
	if v := b.approvalStatus(PathEnrolApprove + approveStatus); v.State != "expired" {
		t.Errorf("an expired pairing shows %+v", v)
	}
	r = b.get(PathEnrolApprove)
	if byID(r.doc, "pairing-link") != nil && text(byID(r.doc, "pairing-link")) != "" {
		t.Error("an expired pairing still shows its link")
	}
}

// signInToChallenge signs the paired officer in up to mfa-challenge.
func signInToChallenge(t *testing.T, b *browser) *resp {
	t.Helper()
	r := laterSignIn(t, b, alicePw)
	mustStep(t, r, StepMFAChallenge)
	return r
}

// TestApprovalSignIn: a later sign-in approved on the phone, with the app
// woken by Web Push; with JavaScript (the script's JSON) and without (the
// forms).
func TestApprovalSignIn(t *testing.T) {
	e, push := approvalEnv(t)
	p := e.phone(push)
	onboardWithPhone(t, e, e.browser(), p)

	b := e.browser()
	r := signInToChallenge(t, b)
	checkPage(t, r)
	if h1 := text(find(r.doc, func(n *html.Node) bool { return n.Data == "h1" })); h1 != "Approve the sign-in on your phone" {
		t.Errorf("the challenge page says %q", h1)
	}
	if f := r.form(); f == nil || attr(f, "action") != PathMFAChallenge {
		t.Error("the code form is not the page's journey form: the other methods must stay offered")
	}
	status, v := b.startJSON(PathChallengeApprove)
	if status != 200 || v.State != "number" || len(v.Number) != 2 {
		t.Fatalf("start: %d %+v", status, v)
	}
	// Starting again (a reload) keeps the request and its number.
	if _, again := b.startJSON(PathChallengeApprove); again.Number != v.Number {
		t.Errorf("a second start changed the number %s to %s", v.Number, again.Number)
	}

	m, ok := push.Wait(0, 10*time.Second)
	if !ok || m.Err != nil {
		t.Fatalf("the push service got no valid push: %v %+v", ok, m)
	}
	var payload approval.Payload
	if err := json.Unmarshal(m.Payload, &payload); err != nil {
		t.Fatal(err)
	}
	req := p.onlyPending()
	if payload.Request != req.ID || payload.Application != "Docs portal (staging)" || payload.Type != "request" {
		t.Errorf("push payload %+v, request %+v", payload, req)
	}
	// The request id is random and may hold the two digits by chance: the
	// rest of the payload must not.
	rest := strings.ReplaceAll(string(m.Payload), payload.Request, "")
	if strings.Contains(rest, v.Number) || strings.Contains(string(m.Payload), req.Challenge) {
		t.Errorf("the push carries the number or the challenge: %s", m.Payload)
	}
	if req.Application != "Docs portal (staging)" || req.Address != "127.0.0.1" || req.Browser != "a program" {
		t.Errorf("the phone sees %+v", req)
	}
	if status, out := p.answer(req, v.Number, approval.Approve); status != 200 || out["state"] != "approved" {
		t.Fatalf("approve: %d %v", status, out)
	}
	if got := b.approvalStatus(PathChallengeApprove + approveStatus); got.State != "approved" {
		t.Fatalf("the waiting page sees %+v", got)
	}
	before := b.rawSessionID()
	d := b.done(b.follow(b.post(PathChallengeApprove+approveFinish, nil)))
	if !d.SignedIn || !slices.Contains(d.AMR, "swk") || !slices.Contains(d.AMR, "mfa") || d.ACR != acrMFA {
		t.Fatalf("signed in with %+v", d.Browser)
	}
	if b.rawSessionID() == before {
		t.Error("the session id was not rotated after the second factor")
	}

	// Without JavaScript: the form sends the request, the page shows the
	// number, "I have approved" before the phone did says so.
	b2 := e.browser()
	r = signInToChallenge(t, b2)
	r = b2.post(PathChallengeApprove, nil)
	mustRedirect(t, r, PathMFAChallenge)
	r = b2.get(PathMFAChallenge)
	number := text(byID(r.doc, "match-number"))
	if len(number) != 2 {
		t.Fatalf("no number on the page: %s", text(r.doc))
	}
	r = b2.post(PathChallengeApprove+approveFinish, nil)
	mustStatus(t, r, http.StatusUnprocessableEntity)
	if !strings.Contains(r.errorSummary(), "not been approved") {
		t.Errorf("early finish says %q", r.errorSummary())
	}
	req = p.onlyPending()
	if status, _ := p.answer(req, number, approval.Approve); status != 200 {
		t.Fatalf("approve: %d", status)
	}
	if d := b2.done(b2.follow(b2.post(PathChallengeApprove+approveFinish, nil))); !d.SignedIn {
		t.Fatalf("no-script sign-in: %+v", d)
	}
	// The approval is used: finishing again (a replayed POST) gets nothing.
	if u, _ := e.st.ApprovalRequestByID(t.Context(), req.ID); u.State != store.ApprovalUsed {
		t.Errorf("the approval is %s after use", u.State)
	}
}

// TestApprovalRefusals: wrong numbers, No, expiry, a replayed answer, an
// answer signed by another key or from another account's phone, racing
// approvals, one waiting request per account and the hourly cap.
func TestApprovalRefusals(t *testing.T) {
	e, push := approvalEnv(t, func(c *config.Config) { c.Approval.HourlyLimit = 12 })
	smtp := withMail(t, e)
	p := e.phone(push)
	onboardWithPhone(t, e, e.browser(), p)
	u, _ := e.st.UserByUsername(t.Context(), alice)
	factorFailures := func() int {
		th, err := e.st.GetThrottle(t.Context(), "mfa:"+u.ID)
		if err != nil {
			t.Fatal(err)
		}
		return th.Failures
	}
	// Each case gets a browser waiting with a number.
	waiting := func(reuse ...*browser) (*browser, string, phoneRequest) {
		t.Helper()
		var b *browser
		if len(reuse) > 0 {
			b = reuse[0]
		} else {
			b = e.browser()
			signInToChallenge(t, b)
		}
		status, v := b.startJSON(PathChallengeApprove)
		if status != 200 || v.State != "number" {
			t.Fatalf("start: %d %+v", status, v)
		}
		return b, v.Number, p.onlyPending()
	}
	other := func(n string) string {
		x, _ := strconv.Atoi(n)
		return strconv.Itoa(10 + (x-10+1)%90)
	}

	t.Run("three wrong numbers deny", func(t *testing.T) {
		b, number, req := waiting()
		start := factorFailures()
		for i := 1; i <= 3; i++ {
			status, out := p.answer(req, other(number), approval.Approve)
			if status != http.StatusUnprocessableEntity || out["left"] != float64(3-i) {
				t.Fatalf("wrong number %d: %d %v", i, status, out)
			}
			if i == 3 && out["state"] != "denied" {
				t.Fatalf("the third wrong number left %v", out)
			}
		}
		if got := factorFailures() - start; got != 3 {
			t.Errorf("%d second-factor failures counted for 3 wrong numbers", got)
		}
		if status, _ := p.answer(req, number, approval.Approve); status != http.StatusConflict {
			t.Errorf("the right number after the denial: %d, want 409", status)
		}
		if v := b.approvalStatus(PathChallengeApprove + approveStatus); v.State != "denied" || !strings.Contains(v.Message, "three times") {
			t.Errorf("the browser sees %+v", v)
		}
		r := b.post(PathChallengeApprove+approveFinish, nil)
		mustStatus(t, r, http.StatusUnprocessableEntity)
		// Two more wrong numbers on a new request lock the second factor (five
		// failures) of browsers the account does not know: the phone takes
		// the right number (the lock is the browser's, not the phone's), but
		// this browser cannot take the approval while the lock lasts.
		_, number2, req2 := waiting(b)
		for range 2 {
			p.answer(req2, other(number2), approval.Approve)
		}
		if status, _ := p.answer(req2, number2, approval.Approve); status != 200 {
			t.Errorf("the right number: %d", status)
		}
		r = b.post(PathChallengeApprove+approveFinish, nil)
		mustStatus(t, r, http.StatusTooManyRequests)
		if err := e.st.ResetThrottle(t.Context(), "mfa:"+u.ID); err != nil {
			t.Fatal(err)
		}
		if d := b.done(b.follow(b.post(PathChallengeApprove+approveFinish, nil))); !d.SignedIn {
			t.Errorf("once unlocked: %+v", d)
		}
	})

	t.Run("no, it's not me, then report", func(t *testing.T) {
		other := signInReadyWithPhone(t, e, p) // another session of the officer
		b, _, req := waiting()
		sent := len(smtp.Messages())
		status, out := p.answer(req, "", approval.Deny)
		if status != 200 || out["state"] != "denied" || out["report"] != true {
			t.Fatalf("No: %d %v", status, out)
		}
		if v := b.approvalStatus(PathChallengeApprove + approveStatus); v.State != "denied" {
			t.Fatalf("the signing-in page sees %+v", v)
		}
		msgs := smtp.Wait(t, sent+1)
		m, _ := mailtest.Parse(msgs[sent].Data)
		if m.Subject != "Lanyard: "+noticeApprovalDenied || !strings.Contains(m.Text, "Docs portal (staging)") {
			t.Errorf("denial notice %q: %s", m.Subject, m.Text)
		}
		// Report it: every session ends, every token, and the officer is
		// told to change the password.
		e.refreshToken("rt-report", u.ID, other.ref)
		sig, _ := approval.Sign(p.key, approval.ReportMessage(req.ID, req.Challenge))
		status, out = p.call(PathApproveReport, map[string]any{"request": req.ID, "device": p.device, "signature": sig})
		if status != 200 || !strings.Contains(out["message"].(string), "Change your password") {
			t.Fatalf("report: %d %v", status, out)
		}
		if sessions, _ := e.st.UserSessions(t.Context(), u.ID, e.clock.Now()); len(sessions) != 0 {
			t.Errorf("%d sessions survive the report", len(sessions))
		}
		if e.tokenActive("rt-report") {
			t.Error("a refresh token survives the report")
		}
		msgs = smtp.Wait(t, sent+2)
		m, _ = mailtest.Parse(msgs[sent+1].Data)
		if !strings.Contains(m.Subject, "Change your password") {
			t.Errorf("report notice %q", m.Subject)
		}
		if status, _ := p.call(PathApproveReport, map[string]any{"request": req.ID, "device": p.device, "signature": sig}); status != http.StatusConflict {
			t.Errorf("a second report: %d", status)
		}
		if e.countEvents(evApprovalReport) != 1 {
			t.Errorf("%d report events", e.countEvents(evApprovalReport))
		}
	})

	t.Run("expiry", func(t *testing.T) {
		b, number, req := waiting()
		e.clock.Advance(61 * time.Second)
		if status, out := p.answer(req, number, approval.Approve); status != http.StatusGone {
			t.Fatalf("a late approval: %d %v", status, out)
		}
		if v := b.approvalStatus(PathChallengeApprove + approveStatus); v.State != "expired" {
			t.Fatalf("the browser sees %+v", v)
		}
		// A new request replaces it, with a new number.
		status, v := b.startJSON(PathChallengeApprove)
		if status != 200 || v.State != "number" || v.Number == number {
			t.Fatalf("a new request after expiry: %d %+v (old number %s)", status, v, number)
		}
		if status, _ := p.answer(p.onlyPending(), v.Number, approval.Approve); status != 200 {
			t.Fatalf("approving the new request: %d", status)
		}
		b.done(b.follow(b.post(PathChallengeApprove+approveFinish, nil)))
	})

	t.Run("replayed approval", func(t *testing.T) {
		b, number, req := waiting()
		sig, _ := approval.Sign(p.key, approval.Message(req.ID, number, approval.Approve, req.Challenge))
		body := map[string]any{"request": req.ID, "device": p.device, "number": number, "decision": "approve", "signature": sig}
		if status, _ := p.call(PathApproveAnswer, body); status != 200 {
			t.Fatalf("the approval: %d", status)
		}
		if status, out := p.call(PathApproveAnswer, body); status != http.StatusConflict {
			t.Fatalf("the replay: %d %v", status, out)
		}
		b.done(b.follow(b.post(PathChallengeApprove+approveFinish, nil)))
		if status, _ := p.call(PathApproveAnswer, body); status != http.StatusConflict {
			t.Fatalf("the replay after use: %d", status)
		}
	})

	t.Run("another key, another account's phone", func(t *testing.T) {
		b, number, req := waiting()
		start := factorFailures()
		stranger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if status, _ := p.answerWith(stranger, req, number, approval.Approve, nil); status != http.StatusForbidden {
			t.Fatalf("signed by another key: %d", status)
		}
		// Bob's paired phone cannot answer Alice's request.
		bob := e.seedReady("bob@agency.example", alicePw)
		bobPhone := e.phone(nil)
		bobPhone.device = approval.NewID()
		pub, _ := approval.ParsePublicKey(bobPhone.publicKey())
		if err := e.st.AddApprovalDevice(t.Context(), &store.ApprovalDevice{ID: bobPhone.device, UserID: bob.ID, Name: "Bob", PublicKey: pub}); err != nil {
			t.Fatal(err)
		}
		if status, _ := bobPhone.answerWith(bobPhone.key, req, number, approval.Approve, nil); status != http.StatusForbidden {
			t.Fatalf("another account's phone: %d", status)
		}
		// A signature made for another number or decision is not this one.
		if status, _ := p.answerWith(p.key, req, number, approval.Approve, map[string]any{"decision": "deny"}); status != http.StatusForbidden {
			t.Fatalf("a signature over another decision: %d", status)
		}
		if got := factorFailures() - start; got != 3 {
			t.Errorf("%d failures counted for three refused answers", got)
		}
		if v := b.approvalStatus(PathChallengeApprove + approveStatus); v.State != "number" {
			t.Fatalf("refused answers changed the request: %+v", v)
		}
		if status, _ := p.answer(req, number, approval.Approve); status != 200 {
			t.Fatal("the real phone could not approve after them")
		}
		b.done(b.follow(b.post(PathChallengeApprove+approveFinish, nil)))
		e.st.ResetThrottle(t.Context(), "mfa:"+u.ID)
	})

	t.Run("twenty racing approvals: one wins", func(t *testing.T) {
		b, number, req := waiting()
		sig, _ := approval.Sign(p.key, approval.Message(req.ID, number, approval.Approve, req.Challenge))
		body := map[string]any{"request": req.ID, "device": p.device, "number": number, "decision": "approve", "signature": sig}
		var mu sync.Mutex
		codes := map[int]int{}
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				status, _ := p.call(PathApproveAnswer, body)
				mu.Lock()
				codes[status]++
				mu.Unlock()
			})
		}
		wg.Wait()
		if codes[200] != 1 || codes[409] != 19 {
			t.Fatalf("answers: %v, want one 200 and nineteen 409", codes)
		}
		// And twenty racing finishes of the one browser: the approval is
		// taken once, by one of them.
		frozen := b.frozen()
		before := countAudit(e, evMFAChallenge, methodApproval)
		for range 20 {
			wg.Go(func() {
				if r := frozen.post(PathChallengeApprove+approveFinish, nil); r.status >= 500 {
					t.Errorf("a racing finish: status %d", r.status)
				}
			})
		}
		wg.Wait()
		if n := countAudit(e, evMFAChallenge, methodApproval) - before; n != 1 {
			t.Fatalf("%d second factors recorded for one approval, want 1", n)
		}
		if got, _ := e.st.ApprovalRequestByID(t.Context(), req.ID); got.State != store.ApprovalUsed {
			t.Fatalf("the approval is %s", got.State)
		}
	})

	t.Run("one waiting request per account", func(t *testing.T) {
		b1, _, _ := waiting()
		b2 := e.browser()
		signInToChallenge(t, b2)
		status, v := b2.startJSON(PathChallengeApprove)
		if status != http.StatusConflict || v.State != "refused" || !strings.Contains(v.Message, "Another request") {
			t.Fatalf("a second waiting request: %d %+v", status, v)
		}
		// The form says so on the page, beside the other methods.
		r := b2.post(PathChallengeApprove, nil)
		mustStatus(t, r, http.StatusConflict)
		if r.form() == nil || !strings.Contains(r.errorSummary(), "Another request") {
			t.Errorf("the refusal page: %s", text(r.doc))
		}
		_ = b1
		e.clock.Advance(61 * time.Second)
	})

	t.Run("hourly cap", func(t *testing.T) {
		e.clock.Advance(time.Hour)
		for i := 0; ; i++ {
			b := e.browser()
			signInToChallenge(t, b)
			status, v := b.startJSON(PathChallengeApprove)
			if status == http.StatusTooManyRequests {
				if i != 12 || !strings.Contains(v.Message, "last hour") {
					t.Fatalf("refused after %d requests (%+v), want after 12", i, v)
				}
				break
			}
			if status != 200 || i > 12 {
				t.Fatalf("request %d: %d %+v", i, status, v)
			}
			e.clock.Advance(61 * time.Second) // each expires unanswered
		}
	})
}

// signInReadyWithPhone is another signed-in session of the officer (by
// code: a recovery code would do as well; here the phone approves it).
type session2 struct {
	b   *browser
	ref string
}

func signInReadyWithPhone(t *testing.T, e *env, p *phone) session2 {
	t.Helper()
	b := e.browser()
	signInToChallenge(t, b)
	_, v := b.startJSON(PathChallengeApprove)
	if status, out := p.answer(p.onlyPending(), v.Number, approval.Approve); status != 200 {
		t.Fatalf("approve the second session: %d %v", status, out)
	}
	b.done(b.follow(b.post(PathChallengeApprove+approveFinish, nil)))
	return session2{b: b, ref: store.SessionRef(b.rawSessionID())}
}

func countAudit(e *env, name store.Event, method string) int {
	evs, _ := e.st.Audit(e.t.Context(), store.AuditFilter{Event: string(name)})
	n := 0
	for _, ev := range evs {
		var d map[string]any
		json.Unmarshal(ev.Detail, &d)
		if d["method"] == method {
			n++
		}
	}
	return n
}

// TestApprovalPushGone: a push service answering 410 has dropped the
// subscription, and Lanyard forgets it; the phone stays paired.
func TestApprovalPushGone(t *testing.T) {
	e, push := approvalEnv(t)
	p := e.phone(push)
	onboardWithPhone(t, e, e.browser(), p)
	push.Gone(p.sub, http.StatusGone)
	b := e.browser()
	signInToChallenge(t, b)
	b.startJSON(PathChallengeApprove)
	e.h.pushWG.Wait()
	if m, ok := push.Wait(0, time.Second); !ok || m.Err != nil {
		t.Fatalf("the push did not arrive intact before its 410: %+v", m)
	}
	d, err := e.st.ApprovalDeviceByID(t.Context(), p.device)
	if err != nil || d.Push.Endpoint != "" {
		t.Fatalf("after a 410 the device is %+v (%v)", d, err)
	}
	if e.countEvents(evApprovalGone) != 1 {
		t.Errorf("%d push-gone events", e.countEvents(evApprovalGone))
	}
	// Still paired: the open app sees the request.
	p.onlyPending()
}

// TestApprovalAccount: the account page lists, renames and removes paired
// phones (never the last factor), pairs another, and confirms it is you
// with an approval; reset-mfa removes them all.
func TestApprovalAccount(t *testing.T) {
	e, push := approvalEnv(t)
	smtp := withMail(t, e)
	p := e.phone(push)
	b := e.browser()
	onboardWithPhone(t, e, b, p)
	u, _ := e.st.UserByUsername(t.Context(), alice)

	r := b.get(PathAccount)
	checkPage(t, r)
	li := find(r.doc, func(n *html.Node) bool { return attr(n, "data-device") == p.device })
	if li == nil || !strings.Contains(text(li), "Test phone") {
		t.Fatalf("the account page does not list the phone: %s", text(r.doc))
	}
	r = b.submitAccount(r, "rename-device", p.device, map[string]string{"name": "Work phone"})
	mustRedirect(t, r, PathAccount)
	r = b.get(PathAccount)
	r = b.submitAccount(r, "remove-device", p.device, nil)
	mustStatus(t, r, http.StatusConflict)
	if !strings.Contains(r.errorSummary(), "only way") {
		t.Errorf("removing the last factor: %s", r.errorSummary())
	}

	// A second phone, from the account page.
	r = b.submitAccount(r, "pair-device", "", nil)
	mustRedirect(t, r, PathAccountApprove)
	r = b.get(PathAccountApprove)
	checkPage(t, r)
	p2 := e.phone(nil)
	_, req, _ := p2.pair(text(byID(r.doc, "pairing-link")))
	v := b.approvalStatus(PathAccountApprove + approveStatus)
	if status, _ := p2.answer(req, v.Number, approval.Approve); status != 200 {
		t.Fatal("second pairing refused")
	}
	mustRedirect(t, b.post(PathAccountApprove+approveFinish, nil), PathAccount)
	devs, _ := e.st.ApprovalDevices(t.Context(), u.ID)
	if len(devs) != 2 || !slices.ContainsFunc(devs, func(d store.ApprovalDevice) bool { return d.ID == p.device && d.Name == "Work phone" }) ||
		!slices.ContainsFunc(devs, func(d store.ApprovalDevice) bool { return d.ID == p2.device }) {
		t.Fatalf("devices: %+v", devs)
	}
	// Now the first can go.
	r = b.submitAccount(b.get(PathAccount), "remove-device", p.device, nil)
	mustRedirect(t, r, PathAccount)
	if _, err := e.st.ApprovalDeviceByID(t.Context(), p.device); err == nil {
		t.Fatal("the removed phone is still paired")
	}
	var subjects []string
	for _, raw := range smtp.Wait(t, 2) {
		m, _ := mailtest.Parse(raw.Data)
		subjects = append(subjects, strings.TrimPrefix(m.Subject, "Lanyard: "))
	}
	if !slices.Contains(subjects, noticeDeviceAdded) || !slices.Contains(subjects, noticeDeviceRemoved) {
		t.Errorf("notices: %v", subjects)
	}
	// The removed phone is told it is no longer paired.
	if status, _, out := p.pending(); status != http.StatusNotFound || out["unpaired"] != true {
		t.Errorf("the removed phone lists: %d %v", status, out)
	}

	// Ten minutes later a change needs a fresh proof: the phone gives it.
	e.clock.Advance(11 * time.Minute)
	r = b.submitAccount(b.get(PathAccount), "rename-device", p2.device, map[string]string{"name": "Spare"})
	mustRedirect(t, r, PathReauth)
	r = b.get(PathReauth)
	if find(r.doc, func(n *html.Node) bool { return hasAttr(n, "data-approval") }) == nil {
		t.Fatalf("the confirm page offers no approval: %s", text(r.doc))
	}
	_, v = b.startJSON(PathReauthApprove)
	rq := p2.onlyPending()
	if rq.Kind != store.ApprovalReauth {
		t.Errorf("the phone sees a %q request", rq.Kind)
	}
	if status, _ := p2.answer(rq, v.Number, approval.Approve); status != 200 {
		t.Fatal("reauth approval refused")
	}
	mustRedirect(t, b.post(PathReauthApprove+approveFinish, nil), PathAccount)
	r = b.submitAccount(b.get(PathAccount), "rename-device", p2.device, map[string]string{"name": "Spare"})
	mustRedirect(t, r, PathAccount)

	// reset-mfa removes the phones with every other factor.
	a, err := NewAdmin(Options{Config: e.cfg, Store: e.st})
	if err != nil {
		t.Fatal(err)
	}
	c, err := a.ResetMFA(t.Context(), store.ActorCLI, alice)
	if err != nil || c.Removed.Devices != 1 {
		t.Fatalf("reset-mfa: %+v %v", c, err)
	}
	if devs, _ := e.st.ApprovalDevices(t.Context(), u.ID); len(devs) != 0 {
		t.Fatalf("%d phones survive reset-mfa", len(devs))
	}
}

// TestApprovalTwoNodes: the browser waits on one node, the phone answers
// another; the request is in the database, so the first sees the approval.
// On a shared SQLite file and, with LANYARD_TEST_POSTGRES_URL, on
// PostgreSQL.
func TestApprovalTwoNodes(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		testApprovalTwoNodes(t, filepath.Join(t.TempDir(), "lanyard.db"))
	})
	t.Run("postgres", func(t *testing.T) {
		testApprovalTwoNodes(t, storetest.FreshSchema(t, storetest.PostgresURL(t)))
	})
}

func testApprovalTwoNodes(t *testing.T, dbURL string) {
	push := pushtest.New()
	t.Cleanup(push.Close)
	e := newEnvAt(t, dbURL, func(c *config.Config) { c.Approval.PushHosts = []string{push.Host()} })
	t.Cleanup(e.h.Wait)
	p := e.phone(push)
	onboardWithPhone(t, e, e.browser(), p)

	pages, err := templates.Parse()
	if err != nil {
		t.Fatal(err)
	}
	nodeB, err := New(t.Context(), Options{Config: e.cfg, Store: e.st, Box: e.box, Pages: pages, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nodeB.Wait)
	if nodeB.vapid != e.h.vapid {
		t.Fatal("the second node made its own VAPID key")
	}
	mux := http.NewServeMux()
	nodeB.Mount(mux)
	srvB := httptest.NewServer(mux)
	defer srvB.Close()

	b := e.browser() // on node A
	signInToChallenge(t, b)
	_, v := b.startJSON(PathChallengeApprove)
	p.base = srvB.URL // the phone reaches node B
	if status, _ := p.answer(p.onlyPending(), v.Number, approval.Approve); status != 200 {
		t.Fatal("node B refused the approval")
	}
	if got := b.approvalStatus(PathChallengeApprove + approveStatus); got.State != "approved" {
		t.Fatalf("node A sees %+v", got)
	}
	if d := b.done(b.follow(b.post(PathChallengeApprove+approveFinish, nil))); !d.SignedIn {
		t.Fatalf("%+v", d)
	}
}

// The app's own files: the page, its manifest (installable: name, start
// URL, scope, standalone, icons of 192 and 512 px) and the service worker,
// allowed the app's scope.
func TestApprovalAppFiles(t *testing.T) {
	e, _ := approvalEnv(t)
	b := e.browser()
	r := b.get(PathApprove)
	mustStatus(t, r, 200)
	checkPage(t, r)
	manifest := find(r.doc, func(n *html.Node) bool { return n.Data == "link" && attr(n, "rel") == "manifest" })
	if manifest == nil || attr(manifest, "href") != PathApproveManifest {
		t.Fatal("the app page links no manifest")
	}
	app := byID(r.doc, "app")
	if attr(app, "data-vapid-key") != e.h.vapid.Public {
		t.Error("the page does not carry the VAPID public key")
	}
	if in := byID(r.doc, "number"); in == nil || attr(in, "name") != "number" {
		t.Error("no number field")
	}
	if byID(r.doc, "approve-yes") == nil || !strings.HasPrefix(text(byID(r.doc, "approve-no")), "No") {
		t.Error("no Yes and No buttons")
	}
	for _, s := range findAll(r.doc, func(n *html.Node) bool { return n.Data == "script" }) {
		if src := attr(s, "src"); !strings.HasPrefix(src, "/static/") || s.FirstChild != nil {
			t.Errorf("a script that is not Lanyard's own file: %q", src)
		}
	}
	m := b.get(PathApproveManifest)
	if m.status != 200 || m.header.Get("Content-Type") != "application/manifest+json" {
		t.Fatalf("manifest: %d %s", m.status, m.header.Get("Content-Type"))
	}
	var mf struct {
		Name, StartURL, Scope, Display string
		Icons                          []struct{ Src, Sizes string }
	}
	raw := strings.NewReplacer(`"start_url"`, `"StartURL"`).Replace(m.body)
	if err := json.Unmarshal([]byte(raw), &mf); err != nil {
		t.Fatal(err)
	}
	sizes := map[string]bool{}
	for _, ic := range mf.Icons {
		sizes[ic.Sizes] = true
		if r := b.get(ic.Src); r.status != 404 {
			// icons are served by cmd/lanyard's /static/ handler, not this mux
			t.Logf("icon %s: %d", ic.Src, r.status)
		}
	}
	if mf.Name == "" || mf.StartURL != PathApprove || mf.Scope != PathApprove || mf.Display != "standalone" || !sizes["192x192"] || !sizes["512x512"] {
		t.Errorf("manifest %+v", mf)
	}
	sw := b.get(PathApproveWorker)
	if sw.status != 200 || !strings.HasPrefix(sw.header.Get("Content-Type"), "text/javascript") || sw.header.Get("Service-Worker-Allowed") != PathApprove {
		t.Errorf("service worker: %d %s %q", sw.status, sw.header.Get("Content-Type"), sw.header.Get("Service-Worker-Allowed"))
	}
	if got := r.header.Get("Content-Security-Policy"); !strings.Contains(got, "manifest-src 'self'") || !strings.Contains(got, "script-src 'self'") {
		t.Errorf("CSP %q", got)
	}
	// Junk is refused plainly, and nothing is written.
	before := len(e.events(""))
	for _, body := range []string{"", "{", `{"token": 5}`, strings.Repeat("x", 70<<10)} {
		req, _ := http.NewRequest("POST", e.srv.URL+PathApprovePair, strings.NewReader(body))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode < 400 || res.StatusCode >= 500 {
			t.Errorf("junk %.10q: status %d", body, res.StatusCode)
		}
	}
	if len(e.events("")) != before {
		t.Error("junk wrote audit events")
	}
}

func hasAttr(n *html.Node, k string) bool {
	for _, a := range n.Attr {
		if a.Key == k {
			return true
		}
	}
	return false
}

// ownToChallenge takes the officer's own browser (known to the account
// since its first sign-in) through a new sign-in to the challenge.
func ownToChallenge(t *testing.T, own *browser) {
	t.Helper()
	r := own.open("/test/authorize?force=1")
	r = own.follow(own.submit(r, map[string]string{"username": alice}))
	r = own.follow(own.submit(r, map[string]string{"password": alicePw}))
	mustStep(t, r, StepMFAChallenge)
}

// TestApprovalPasswordOnlyCannotSwitchOffThePhone: someone with only the
// password locks the second factor of unknown browsers with wrong codes,
// and uses up the hour's requests to the phone; the officer's own browser
// still signs in with the phone, and its start replaces the request an
// unknown browser left waiting.
func TestApprovalPasswordOnlyCannotSwitchOffThePhone(t *testing.T) {
	t.Run("locked by wrong codes", func(t *testing.T) {
		e, push := approvalEnv(t)
		p := e.phone(push)
		own := e.browser()
		onboardWithPhone(t, e, own, p)
		attacker := e.browser()
		r := signInToChallenge(t, attacker)
		for range 5 {
			r = attacker.submit(r, map[string]string{"code": "123456"})
		}
		if status, _ := attacker.startJSON(PathChallengeApprove); status != http.StatusTooManyRequests {
			t.Fatalf("the locked browser started a request: %d", status)
		}
		ownToChallenge(t, own)
		status, v := own.startJSON(PathChallengeApprove)
		if status != 200 || v.State != "number" {
			t.Fatalf("the officer's start: %d %+v", status, v)
		}
		if status, out := p.answer(p.onlyPending(), v.Number, approval.Approve); status != 200 {
			t.Fatalf("the officer's phone said Yes with the right number: %d %v", status, out)
		}
		if d := own.done(own.follow(own.post(PathChallengeApprove+approveFinish, nil))); !d.SignedIn {
			t.Fatalf("the officer's browser: %+v", d)
		}
	})
	t.Run("hourly cap and a waiting request", func(t *testing.T) {
		// Five an hour: the pairing at the first sign-in was one.
		e, push := approvalEnv(t, func(c *config.Config) { c.Approval.HourlyLimit = 5 })
		p := e.phone(push)
		own := e.browser()
		onboardWithPhone(t, e, own, p)
		var left *browser
		for i := range 5 {
			if i > 0 && i < 4 {
				e.clock.Advance(61 * time.Second) // the earlier one expired unanswered
			}
			b := e.browser()
			signInToChallenge(t, b)
			status, v := b.startJSON(PathChallengeApprove)
			switch {
			case i == 4 && (status != http.StatusTooManyRequests || !strings.Contains(v.Message, "last hour")):
				t.Fatalf("the fifth request from unknown browsers: %d %+v", status, v)
			case i < 4 && status != 200:
				t.Fatalf("request %d: %d %+v", i, status, v)
			case i < 4:
				left = b
			}
		}
		waitingID := p.onlyPending().ID
		ownToChallenge(t, own)
		status, v := own.startJSON(PathChallengeApprove)
		if status != 200 || v.State != "number" {
			t.Fatalf("the officer's start after an unknown browser's hour: %d %+v", status, v)
		}
		req := p.onlyPending()
		if req.ID == waitingID {
			t.Fatal("the unknown browser's request still waits")
		}
		if got := left.approvalStatus(PathChallengeApprove + approveStatus); got.State == "number" || got.State == "approved" {
			t.Errorf("the replaced request is still %s", got.State)
		}
		if status, out := p.answer(req, v.Number, approval.Approve); status != 200 {
			t.Fatalf("approve: %d %v", status, out)
		}
		if d := own.done(own.follow(own.post(PathChallengeApprove+approveFinish, nil))); !d.SignedIn {
			t.Fatalf("the officer's browser: %+v", d)
		}
	})
}
