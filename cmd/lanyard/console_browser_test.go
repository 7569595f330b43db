package main

// The browser suite's account request and admin console scenario: the
// guide's step 1 end to end (the request, the link from the outbox, an
// approver's approval in /admin, the onboarding email, the first sign-in
// to the docs portal), then a helpdesk admin resetting that officer's
// second factor and the officer enrolling again; and every console page
// checked like the journey's (axe, 320 px, labels), with screenshots.

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lanyard-idp/lanyard/config"
)

const (
	requester      = "noor.requester@agency.example"
	consoleAdmin   = "admin@agency.example" // every role, as in dev.yaml
	consoleApprove = "approver@agency.example"
	consoleDesk    = "helpdesk@agency.example"
	adminPassword  = "Copper-kettle-orchard-41"
)

// consoleAdmins are the admins of the browser suite: dev.yaml's, and one
// approver and one helpdesk of their own.
func consoleAdmins(cfg *config.Config) {
	cfg.Admins = append(cfg.Admins,
		config.Admin{Email: consoleApprove, Roles: []string{config.RoleApprover}},
		config.Admin{Email: consoleDesk, Roles: []string{config.RoleHelpdesk}})
}

var verifyLinkRE = regexp.MustCompile(`https?://\S+/request/verify\?token=[0-9a-f]+`)

// onboardAdmin invites an admin and walks their first sign-in in a tab of
// their own, starting at the console page path: the journey comes back to
// it. It returns the tab, on that page.
func (s *browserSuite) onboardAdmin(t *testing.T, email, path string) *browserTab {
	t.Helper()
	s.l.invite(email)
	initial, _ := s.invitation(t, email)
	b := s.newTab(t)
	b.open(s.l.issuer + path)
	b.firstSignIn(email, initial, adminPassword)
	if !strings.HasPrefix(b.url(), s.l.issuer+path) {
		t.Fatalf("%s's first sign-in ended at %s, not %s", email, b.url(), path)
	}
	return b
}

// firstSignIn answers the guide's first sign-in from the username page:
// username and initial password, an authenticator app, the recovery codes,
// a new password, the policies. It ends wherever the journey resumes, and
// returns what the officer keeps: the app's key and the recovery codes.
func (b *browserTab) firstSignIn(email, initial, newPassword string) (secret string, codes []string) {
	b.t.Helper()
	b.wantStep("identify")
	b.typeInto("#username", email)
	b.submit()
	b.typeInto("#password", initial)
	b.submit()
	secret, codes = b.enrolApp()
	b.newPasswordAndPolicies(initial, newPassword)
	return secret, codes
}

// newPasswordAndPolicies answers the first sign-in's last steps: the
// initial password replaced, the Privacy policy and the Terms of use
// accepted.
func (b *browserTab) newPasswordAndPolicies(initial, newPassword string) {
	b.t.Helper()
	b.wantStep("change-password")
	b.typeInto("#current_password", initial)
	b.typeInto("#new_password", newPassword)
	b.typeInto("#confirm_password", newPassword)
	b.submit()
	for _, doc := range []string{"privacy", "terms"} {
		b.wantStep(doc)
		b.tick("#accept")
		b.submit()
	}
}

// enrolApp sets up an authenticator app (the key typed by hand) and keeps
// the recovery codes; it returns both.
func (b *browserTab) enrolApp() (secret string, codes []string) {
	b.t.Helper()
	b.wantStep("mfa-enrol")
	secret = b.text("#totp-secret")
	freshStep(3 * time.Second)
	b.typeInto("#code", totpCode(b.t, secret, 0))
	b.submit()
	b.wantStep("recovery-codes")
	codes = evalJS[[]string](b, `[...document.querySelectorAll(".recovery-code")].map(e => e.innerText.trim())`)
	b.tick("#accept")
	b.submit()
	return secret, codes
}

// fill empties a field (an empty textarea too, which chromedp.Clear
// refuses) and types value into it.
func (b *browserTab) fill(sel, value string) {
	b.t.Helper()
	evalJS[chromedp.Void](b, fmt.Sprintf(`document.querySelector(%q).value = ""`, sel))
	b.do("type into "+sel, chromedp.SendKeys(chromedp.CSS(sel), value, chromedp.NodeVisible))
}

// wideCheck is check for a console page, which must also fit the
// screenshots' width (800 px) without scrolling sideways: tables of seven
// columns become cards before they overflow.
func (b *browserTab) wideCheck(name string) {
	b.t.Helper()
	b.check(name)
	if w := evalJS[int](b, `Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)`); w > shotWidth {
		b.t.Errorf("%s: at %d px wide the page is %d px wide", name, shotWidth, w)
	}
}

// page is the console page's data-page.
func (b *browserTab) page() string {
	b.t.Helper()
	return evalJS[string](b, `(document.querySelector("main") || {dataset: {}}).dataset.page || ""`)
}

func (b *browserTab) wantPage(want string) {
	b.t.Helper()
	if got := b.page(); got != want {
		b.t.Fatalf("on console page %q, want %q\n%s", got, want, b.describe())
	}
}

// actions are the data-action markers of the page's forms.
func (b *browserTab) actions() []string {
	b.t.Helper()
	return evalJS[[]string](b, `[...document.querySelectorAll("form[data-action]")].map(f => f.dataset.action)`)
}

// keyboardTo presses Tab from the top of the page until sel has the focus
// (which must show), then Enter: a button pressed with the keyboard alone.
func (b *browserTab) keyboardTo(sel string) {
	b.t.Helper()
	evalJS[chromedp.Void](b, `document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)`)
	for i := 0; ; i++ {
		if i == 60 {
			b.t.Fatalf("60 presses of Tab did not reach %s", sel)
		}
		b.do("Tab", chromedp.KeyEvent("\t"))
		if evalJS[bool](b, fmt.Sprintf(`document.activeElement === document.querySelector(%q)`, sel)) {
			break
		}
	}
	if ring := evalJS[string](b, `(() => { const s = getComputedStyle(document.activeElement); return s.outlineStyle === "none" && s.boxShadow === "none" ? "" : s.outlineStyle })()`); ring == "" {
		b.t.Errorf("%s shows no focus ring when reached with Tab", sel)
	}
	b.navigation("press Enter on "+sel, chromedp.KeyEvent("\r"))
}

func (s *browserSuite) requestAndConsole(t *testing.T) {
	// The guide's step 1: from the sign-in page, request an account.
	o := s.newTab(t)
	o.open(s.l.issuer + "/signin")
	o.click(`a[href="/request"]`)
	o.wantStep("request-access")
	o.check("50-request-account")
	o.typeInto("#email", "noor@litemail.agency.example")
	o.typeInto("#name", "Noor Requester")
	o.typeInto("#organisation", "Regional office")
	o.fill("#reason", "I write the release notes in the docs portal.")
	o.submit()
	o.wantStep("request-access")
	o.wantError("email", "LiteMail and similar addresses are refused")
	o.check("51-request-error")
	o.typeInto("#email", requester)
	o.submit()
	if !strings.Contains(o.text("main"), "Check your email") {
		t.Fatalf("after the request form\n%s", o.describe())
	}
	o.check("52-request-sent")

	// The link in the email: a page that asks for one click.
	link := verifyLinkRE.FindString(s.onboardingMail(t, requester))
	if link == "" {
		t.Fatalf("no verification link in the email to %s", requester)
	}
	o.open(link)
	o.wantStep("request-verify")
	o.check("53-request-confirm")
	o.submit()
	if !strings.Contains(o.text("main"), "waits for an approver") {
		t.Fatalf("after confirming\n%s", o.describe())
	}
	o.check("54-request-confirmed")

	// The approver is emailed a link to the request; they sign in (their
	// first time: the whole journey) and land on it.
	approverMail := s.onboardingMail(t, consoleApprove)
	reqLink := regexp.MustCompile(`https?://\S+/admin/requests/[0-9a-f]{16}`).FindString(approverMail)
	if reqLink == "" {
		t.Fatalf("the approver's email has no link to the request:\n%s", approverMail)
	}
	a := s.onboardAdmin(t, consoleApprove, strings.TrimPrefix(reqLink, s.l.issuer))
	a.wantPage("requests")
	if got := a.actions(); strings.Join(got, ",") != "approve,deny" {
		t.Fatalf("the approver's actions on the request: %v", got)
	}
	a.open(s.l.issuer + "/admin/requests")
	a.wantPage("requests")
	if nav := evalJS[[]string](a, `[...document.querySelectorAll("nav[aria-label='Admin console'] a")].map(a => a.textContent)`); strings.Join(nav, ",") != "Requests" {
		t.Errorf("an approver's console shows %v", nav)
	}
	a.wideCheck("60-console-requests")
	a.keyboardTo(`form[data-action=approve] button`)
	if n := a.text(".notice"); !strings.Contains(n, "Approved: "+requester) {
		t.Fatalf("after approving: %q\n%s", n, a.describe())
	}

	// The onboarding email, and the guide's journey to the docs portal.
	initial, _ := s.invitation(t, requester)
	o.open(stagingURL)
	o.click("#login")
	o.firstSignIn(requester, initial, firstPassword)
	o.wantSignedIn(requester)

	// The officer loses the phone: the helpdesk finds them and resets the
	// second factor.
	d := s.onboardAdmin(t, consoleDesk, "/admin/officers")
	d.wantPage("officers")
	// Two words, both to match: the approval app's scenario has another Noor.
	d.typeInto("#q", "noor requester")
	d.click(`form.search button[type=submit]`)
	d.wantPage("officers")
	if rows := evalJS[[]string](d, `[...document.querySelectorAll("tr[data-officer]")].map(r => r.dataset.officer)`); strings.Join(rows, ",") != requester {
		t.Fatalf("searching noor requester: %v", rows)
	}
	d.wideCheck("61-console-officers")
	d.click(`tr[data-officer="` + requester + `"] a`)
	d.wantPage("officer")
	if got := strings.Join(d.actions(), ","); got != "reset-mfa,reset-password,sign-out" {
		t.Errorf("the helpdesk's actions on an active officer: %s", got)
	}
	d.wideCheck("62-console-officer")
	d.keyboardTo(`form[data-action="reset-mfa"] button`)
	if n := d.text(".notice"); !strings.Contains(n, "second factors of "+requester+" are removed") {
		t.Fatalf("after the reset: %q\n%s", n, d.describe())
	}

	// Lanyard's session is over; the officer's next sign-in (on a new
	// phone, in a browser of its own) asks for a new authenticator app.
	o.open(s.l.issuer + "/account")
	o.wantStep("identify")
	o = s.newTab(t)
	o.open(stagingURL)
	o.click("#login")
	o.wantStep("identify")
	o.typeInto("#username", requester)
	o.submit()
	o.typeInto("#password", firstPassword)
	o.submit()
	o.enrolApp()
	o.wantSignedIn(requester)

	// The admin's other pages: invite (one, and a CSV with its preview),
	// the audit trail, the relying parties.
	m := s.onboardAdmin(t, consoleAdmin, "/admin/invite")
	m.wantPage("invite")
	m.wideCheck("63-console-invite")
	m.fill("#csv", "email,name\nrae.one@agency.example,Rae One\nnot-an-address,Nobody\nsid@litemail.agency.example,Sid\n"+requester+",Noor Again")
	m.click(`form[data-action=preview] button`)
	m.wantPage("invite")
	if ready := m.text(`form[data-action="invite-csv"] button`); ready != "Send 1 invitation" {
		t.Fatalf("the preview offers %q", ready)
	}
	m.wideCheck("64-console-invite-preview")
	m.click(`form[data-action="invite-csv"] button`)
	if n := m.text(".notice"); !strings.Contains(n, "1 of 4 officers invited") {
		t.Fatalf("after sending: %q", n)
	}
	m.open(s.l.issuer + "/admin/audit?verify=1")
	m.wantPage("audit")
	if chain := evalJS[string](m, `(document.querySelector("[data-chain]") || {dataset: {}}).dataset.chain || ""`); chain != "intact" {
		t.Fatalf("the audit chain: %q", chain)
	}
	m.wideCheck("65-console-audit")
	m.open(s.l.issuer + "/admin/clients")
	m.wantPage("clients")
	m.wideCheck("66-console-clients")
	m.open(s.l.issuer + "/admin/officers?state=active")
	m.wantPage("officers")
	m.audit("console officers (admin)")
}
