package main

// The Lanyard approval app in the real browser (the guide's step 3.5), with
// two browser contexts: the computer, where the officer signs in, and the
// phone, where the app runs. The phone opens the pairing link; the test
// reads the number from the computer's page and types it on the phone,
// with the keyboard; the computer's page continues by itself. Then a later
// sign-in approved the same way, No with a report, three wrong numbers,
// expiry, a replayed approval, an approval signed by another key, and two
// approvals racing.
//
// Headless Chromium has no push service, so the phone refuses
// notifications here and the app works while open (polling): the Web Push
// path — VAPID signature, RFC 8291 encryption, 410 — is proven against the
// Go test push service in flows (approve_test.go).

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

const (
	approveOfficer = "noor.officer@agency.example"
	phoneUserAgent = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36"
	phoneWidth     = 390
)

// browserSkew moves the browser suite's Lanyard clock (startLanyardLocalhost
// reads it), so that a request can expire without a minute's wait.
var browserSkew atomic.Int64

// newPhone is the officer's phone: a browser context of its own, a phone's
// width and user agent, notifications refused.
func (s *browserSuite) newPhone(t *testing.T) *browserTab {
	t.Helper()
	p := s.newTab(t)
	ctx, cancel := context.WithTimeout(p.ctx, browserTimeout)
	defer cancel()
	if _, err := chromedp.Call(ctx, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{UserAgent: phoneUserAgent}); err != nil {
		t.Fatalf("phone user agent: %v", err)
	}
	if _, err := chromedp.CallBrowser(ctx, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
		Permission: &cdpbrowser.PermissionDescriptor{Name: "notifications"}, Setting: cdpbrowser.PermissionSettingDenied,
		Origin: s.l.issuer, BrowserContextID: chromedp.FromContext(p.ctx).BrowserContextID,
	}); err != nil {
		t.Fatalf("refuse notifications: %v", err)
	}
	p.do("phone viewport", chromedp.EmulateViewport(phoneWidth, 844))
	return p
}

// phoneCheck is check for the phone: the audit (axe, 320 px, labels), then
// the screenshot at the phone's own width.
func (p *browserTab) phoneCheck(name string) {
	p.t.Helper()
	p.audit(name)
	p.do("phone viewport", chromedp.EmulateViewport(phoneWidth, 844))
	p.screenshot(name)
}

// installable asserts what Chromium says about installing the page as an
// app (Page.getInstallabilityErrors): the manifest, its icons and the
// service worker are all there. A test's browser context is incognito-like,
// which Chromium names as a reason of its own: that one is not the page's.
func (b *browserTab) installable() {
	b.t.Helper()
	b.waitFor("the service worker in control", `!!navigator.serviceWorker.controller`)
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	res, err := chromedp.Call(ctx, cdppage.GetInstallabilityErrors, cdp.Empty{})
	if err != nil {
		b.t.Fatalf("Page.getInstallabilityErrors: %v", err)
	}
	for _, e := range res.InstallabilityErrors {
		if e.ErrorID == "in-incognito" {
			b.t.Logf("Chromium: %s (the test's browser context, not the page)", e.ErrorID)
			continue
		}
		var args []string
		for _, a := range e.ErrorArguments {
			args = append(args, a.Name+"="+a.Value)
		}
		b.t.Errorf("the approval app is not installable: %s %v", e.ErrorID, args)
	}
}

// visible reports whether the element with id is shown.
func (b *browserTab) visible(id string) bool {
	b.t.Helper()
	return evalJS[bool](b, fmt.Sprintf(`(() => { const e = document.getElementById(%q); return !!e && !e.hidden && !!(e.offsetWidth || e.offsetHeight) })()`, id))
}

func (b *browserTab) waitVisible(id string) {
	b.t.Helper()
	b.waitFor("#"+id, fmt.Sprintf(`(() => { const e = document.getElementById(%q); return !!e && !e.hidden && !!(e.offsetWidth || e.offsetHeight) })()`, id))
}

// mark tags the current document, so that waitLeft can tell when the
// browser has moved on to another.
func (b *browserTab) mark() { b.t.Helper(); evalJS[chromedp.Void](b, `window.__lanyardMark = true`) }

// waitLeft waits until the page marked has been replaced by a loaded one.
func (b *browserTab) waitLeft(what string) {
	b.t.Helper()
	b.waitFor(what, `!window.__lanyardMark && document.readyState === "complete"`)
	b.sane(what, nil)
}

// matchNumber waits for the computer's #match-number and reads it.
func (b *browserTab) matchNumber() string {
	b.t.Helper()
	b.waitFor("#match-number", `/^[0-9]{2}$/.test((document.getElementById("match-number") || {textContent: ""}).textContent.trim())`)
	return b.text("#match-number")
}

// wantFocus asserts the element with the focus.
func (b *browserTab) wantFocus(id string) {
	b.t.Helper()
	if got := evalJS[string](b, `document.activeElement.id`); got != id {
		b.t.Fatalf("the focus is on %q, not #%s\n%s", got, id, b.describe())
	}
}

// typeNumber types the number on the phone with the keyboard alone (Tab
// to the field when it lost the focus, as a screenshot makes it).
func (p *browserTab) typeNumber(n string) {
	p.t.Helper()
	for i := 0; evalJS[string](p, `document.activeElement.id`) != "number"; i++ {
		if i == 15 {
			p.t.Fatalf("Tab does not reach the number field\n%s", p.describe())
		}
		p.do("Tab", chromedp.KeyEvent("\t"))
	}
	p.do("clear the number", chromedp.Clear(chromedp.CSS("#number")))
	p.do("type the number", chromedp.KeyEvent(n))
}

// tap presses a button that changes the page without loading another.
func (b *browserTab) tap(sel string) {
	b.t.Helper()
	b.do("tap "+sel, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// yes presses Enter in the number field: the form's Yes.
func (p *browserTab) yes() { p.t.Helper(); p.do("Enter", chromedp.KeyEvent("\r")) }

// no reaches the No button with Tab from the number field and presses it.
func (p *browserTab) no() {
	p.t.Helper()
	for i := 0; evalJS[string](p, `document.activeElement.id`) != "approve-no"; i++ {
		if i == 4 {
			p.t.Fatalf("Tab does not reach the No button\n%s", p.describe())
		}
		p.do("Tab", chromedp.KeyEvent("\t"))
	}
	p.do("press No", chromedp.KeyEvent("\r"))
}

// recordAnswers makes the phone page keep what the app sends and gets, as a
// person with the browser's tools could see it.
func (p *browserTab) recordAnswers() {
	p.t.Helper()
	evalJS[chromedp.Void](p, `(() => {
		if (window.__recorded) return;
		window.__recorded = {answers: [], pending: null};
		const orig = window.fetch;
		window.fetch = async (url, init) => {
			const resp = await orig(url, init);
			if (String(url).endsWith("/approve/api/answer")) window.__recorded.answers.push(init.body);
			if (String(url).endsWith("/approve/api/pending")) {
				const copy = resp.clone();
				try { const j = await copy.json(); if (j.requests && j.requests.length) window.__recorded.pending = j.requests[0]; } catch (e) {}
			}
			return resp;
		};
	})()`)
}

// postAnswers posts bodies to the answer endpoint at once from the phone
// page and returns the statuses, sorted.
func (p *browserTab) postAnswers(bodies string) []int {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, browserTimeout)
	defer cancel()
	got, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](`Promise.all(`+bodies+`.map(b => fetch("/approve/api/answer", {method: "POST", headers: {"Content-Type": "application/json"}, body: b}).then(r => r.status))).then(s => s.sort())`, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("post answers: %v", err)
	}
	return got
}

// signInUntilApproval signs the officer in on the computer up to the
// approval page, the request sent, and returns the number it shows.
func (s *browserSuite) signInUntilApproval(t *testing.T, c *browserTab, pw string) string {
	t.Helper()
	c.open(stagingURL)
	c.click("#login")
	c.wantStep("identify")
	c.keyboardField("username", approveOfficer)
	c.keyboardField("password", pw)
	c.wantStep("mfa-challenge")
	if h1 := c.text("h1"); h1 != "Approve the sign-in on your phone" {
		t.Fatalf("the challenge page says %q", h1)
	}
	return c.matchNumber()
}

// approvalApp is the scenario.
func (s *browserSuite) approvalApp(t *testing.T) {
	s.l.invite(approveOfficer)
	initial, _ := s.invitation(t, approveOfficer)
	c := s.newTab(t)
	phone := s.newPhone(t)

	// Step 3 of the guide, with the approval app: the computer shows a
	// pairing link, the phone opens it.
	c.open(stagingURL)
	c.click("#login")
	c.keyboardField("username", approveOfficer)
	c.keyboardField("password", initial)
	c.wantStep("mfa-enrol")
	if txt := c.text("ol.steps"); !strings.Contains(txt, "Other account (Google, Facebook, etc.)") {
		t.Errorf("the authenticator-app steps do not tell Microsoft Authenticator users to choose Other account: %q", txt)
	}
	c.click("#approval-pair")
	c.wantStep("mfa-enrol")
	c.check("30-approval-pairing")
	link := c.text("#pairing-link")
	if !strings.HasPrefix(link, s.l.issuer+"/approve#pair=") {
		t.Fatalf("#pairing-link is %q", link)
	}
	phone.open(link)
	phone.waitVisible("app-request")
	phone.wantFocus("number") // the app puts the focus where the number goes
	if got := phone.url(); strings.Contains(got, "#pair=") {
		t.Errorf("the pairing token stays in the phone's address bar: %s", got)
	}
	phone.phoneCheck("31-approval-phone-pairing")

	// The computer now shows the number; typed on the phone, Yes.
	number := c.matchNumber()
	c.check("32-approval-pairing-number")
	c.mark()
	phone.typeNumber(number)
	phone.yes()
	phone.waitVisible("app-done")
	if msg := phone.text("#done-message"); !strings.Contains(msg, "paired") {
		t.Fatalf("the phone says %q", msg)
	}
	c.waitLeft("the computer continuing after the pairing")
	c.wantStep("recovery-codes")
	if n := evalJS[int](c, `document.querySelectorAll(".recovery-code").length`); n != 10 {
		t.Fatalf("%d recovery codes after the pairing", n)
	}
	c.tick("#accept")
	c.submit()
	c.newPasswordAndPolicies(initial, firstPassword)
	c.wantSignedIn(approveOfficer)
	if claims := c.text("#id-token-claims"); !strings.Contains(claims, "swk") {
		t.Errorf("the ID token's amr lacks swk:\n%s", claims)
	}

	// The phone's app, open, waiting.
	phone.tap("#done-ok")
	phone.waitVisible("app-idle")
	phone.waitFor("the account named", `document.getElementById("app-account").textContent !== ""`)
	if acct := phone.text("#app-account"); acct != approveOfficer {
		t.Errorf("the app is paired for %q", acct)
	}
	phone.phoneCheck("33-approval-phone-idle")
	phone.installable()
	phone.recordAnswers()

	// A later sign-in, approved the same way.
	c.signOut(stagingURL)
	number = s.signInUntilApproval(t, c, firstPassword)
	c.check("34-approval-sign-in")
	phone.waitVisible("app-request")
	if got := phone.text("#request-application"); got != "Docs portal (staging)" {
		t.Errorf("the phone shows application %q", got)
	}
	if got := phone.text("#request-browser"); !strings.Contains(got, "Chrome") {
		t.Errorf("the phone shows browser %q", got)
	}
	phone.phoneCheck("35-approval-phone-request")
	c.mark()
	phone.typeNumber(number)
	phone.yes()
	phone.waitVisible("app-done")
	c.waitLeft("the computer continuing after the approval")
	c.wantSignedIn(approveOfficer)

	// The approval replayed, as the phone sent it: refused.
	if got := phone.postAnswers(`[window.__recorded.answers[window.__recorded.answers.length - 1]]`); len(got) != 1 || got[0] != 409 {
		t.Errorf("a replayed approval answered %v, want 409", got)
	}
	phone.tap("#done-ok")
	phone.waitVisible("app-idle")

	// No, it's not me: the computer is told; the report signs out everywhere.
	c.signOut(stagingURL)
	s.signInUntilApproval(t, c, firstPassword)
	phone.waitVisible("app-request")
	phone.no()
	phone.waitVisible("app-denied")
	phone.phoneCheck("36-approval-phone-denied")
	c.waitFor("the computer told of the refusal", `document.querySelector("[data-approval]").dataset.state === "denied"`)
	if msg := c.text("[data-approval-message]"); !strings.Contains(msg, "refused on your phone") {
		t.Errorf("the computer says %q", msg)
	}
	c.audit("approval refused")
	phone.tap("#report")
	phone.waitVisible("app-done")
	if msg := phone.text("#done-message"); !strings.Contains(msg, "signed out everywhere") || !strings.Contains(msg, "Change your password") {
		t.Errorf("after the report the phone says %q", msg)
	}
	c.open(s.l.issuer + "/account")
	c.wantStep("identify")
	phone.tap("#done-ok")

	// Three wrong numbers deny the request.
	number = s.signInUntilApproval(t, c, firstPassword)
	phone.waitVisible("app-request")
	wrong := strconv.Itoa(10 + (mustAtoi(t, number)-10+7)%90)
	for i := 1; i <= 3; i++ {
		phone.typeNumber(wrong)
		phone.yes()
		if i < 3 {
			left := map[int]string{1: "2 tries left", 2: "1 try left"}[i]
			phone.waitFor("the wrong number said", fmt.Sprintf(`document.getElementById("number-error").textContent.includes(%q) && document.activeElement.id === "number"`, left))
			if i == 1 {
				phone.audit("approval wrong number")
				phone.do("phone viewport", chromedp.EmulateViewport(phoneWidth, 844))
			}
		}
	}
	phone.waitVisible("app-done")
	if msg := phone.text("#done-message"); !strings.Contains(msg, "three times") {
		t.Errorf("after three wrong numbers the phone says %q", msg)
	}
	c.waitFor("the computer told of the refusal", `document.querySelector("[data-approval]").dataset.state === "denied"`)
	phone.tap("#done-ok")

	// Expiry: a minute later the request is gone; a new one can be sent.
	c.click("[data-approval-restart] button")
	number = c.matchNumber()
	phone.waitVisible("app-request")
	browserSkew.Store(int64(61 * time.Second))
	c.waitFor("the computer told of the expiry", `document.querySelector("[data-approval]").dataset.state === "expired"`)
	phone.typeNumber(number)
	phone.yes()
	phone.waitVisible("app-done")
	if msg := phone.text("#done-message"); !strings.Contains(msg, "expired") {
		t.Errorf("a late approval: the phone says %q", msg)
	}
	browserSkew.Store(0)
	c.audit("approval expired")
	phone.tap("#done-ok")

	// An approval signed by another key (not this phone's), then two
	// approvals racing: one wins.
	c.click("[data-approval-restart] button")
	number = c.matchNumber()
	phone.waitVisible("app-request")
	phone.waitFor("the request recorded", `!!(window.__recorded && window.__recorded.pending)`)
	forged := fmt.Sprintf(`(async () => {
		const r = window.__recorded.pending;
		const db = await new Promise((ok, no) => { const q = indexedDB.open("lanyard-approve", 1); q.onsuccess = () => ok(q.result); q.onerror = () => no(q.error); });
		const dev = await new Promise((ok) => { const q = db.transaction("devices").objectStore("devices").getAll(); q.onsuccess = () => ok(q.result[0]); });
		const msg = (key) => crypto.subtle.sign({name: "ECDSA", hash: "SHA-256"}, key, new TextEncoder().encode(
			["lanyard-approval/1", "answer", "request=" + r.id, "number=%[1]s", "decision=approve", "challenge=" + r.challenge].join("\n")));
		const b64 = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
		const other = await crypto.subtle.generateKey({name: "ECDSA", namedCurve: "P-256"}, false, ["sign"]);
		const body = (sig) => JSON.stringify({request: r.id, device: dev.device, number: "%[1]s", decision: "approve", signature: b64(sig)});
		window.__forged = body(await msg(other.privateKey));
		window.__real = body(await msg(dev.key));
	})()`, number)
	ctx, cancel := context.WithTimeout(phone.ctx, browserTimeout)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](forged, chromedp.EvalAwaitPromise)); err != nil {
		cancel()
		t.Fatalf("sign the answers: %v", err)
	}
	cancel()
	if got := phone.postAnswers(`[window.__forged]`); len(got) != 1 || got[0] != 403 {
		t.Errorf("an approval signed by another key answered %v, want 403", got)
	}
	c.mark()
	if got := phone.postAnswers(`[window.__real, window.__real]`); len(got) != 2 || got[0] != 200 || got[1] != 409 {
		t.Errorf("two racing approvals answered %v, want one 200 and one 409", got)
	}
	c.waitLeft("the computer continuing after the raced approval")
	c.wantSignedIn(approveOfficer)

	// The account page lists the phone.
	c.open(s.l.issuer + "/account")
	if !evalJS[bool](c, `!!document.querySelector("li[data-device]")`) {
		t.Errorf("the account page lists no phone\n%s", c.describe())
	}
	c.audit("account with a paired phone")
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
