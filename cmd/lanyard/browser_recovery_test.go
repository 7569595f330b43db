package main

// The browser suite's self-service recovery scenario, in Chromium: an
// officer forgets the password (the link from the password page, the email
// in the outbox, the link's button, the code, a new password, back on the
// docs portal); a link opened in a second browser stops working in both;
// the officer loses the phone (a recovery code, a passkey instead, the lost
// app removed); an invited officer who lost the onboarding email gets a
// fresh one once an approver agrees. Every page is checked like the
// journey's, with the README's screenshots.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const (
	recoveryOfficer = "rose.officer@agency.example"
	lostInvitee     = "omar.officer@agency.example"
	resetPassword   = "Amber-lighthouse-cinnamon-58"
)

var resetLinkRE = regexp.MustCompile(`https?://\S+/signin/reset\?token=[0-9a-f]+`)

// outboxNames are the files in the dev outbox now.
func (s *browserSuite) outboxNames(t *testing.T) map[string]bool {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(s.l.data, "outbox"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, e := range ents {
		out[e.Name()] = true
	}
	return out
}

// newMail waits for an email to addr that was not in the outbox before
// (outboxNames) and matches re, and returns re's match in its text: the
// recovery emails go out in the background.
func (s *browserSuite) newMail(t *testing.T, before map[string]bool, addr string, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for name := range s.outboxNames(t) {
			if before[name] {
				continue
			}
			raw, err := os.ReadFile(filepath.Join(s.l.data, "outbox", name))
			if err != nil {
				continue
			}
			text := decodeMail(t, string(raw))
			if strings.Contains(string(raw), addr) {
				if m := re.FindStringSubmatch(text); m != nil {
					return m
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new email to %s matching %s", addr, re)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// toPasswordPage goes from the staging portal's Login to the password page.
func (b *browserTab) toPasswordPage(email string) {
	b.t.Helper()
	b.open(stagingURL)
	b.click("#login")
	b.wantStep("identify")
	b.typeInto("#username", email)
	b.submit()
	b.wantStep("password")
}

// recovery is the scenario.
func (s *browserSuite) recovery(t *testing.T) {
	s.l.invite(recoveryOfficer)
	initial, _ := s.invitation(t, recoveryOfficer)
	first := s.newTab(t)
	first.open(stagingURL)
	first.click("#login")
	secret, codes := first.firstSignIn(recoveryOfficer, initial, firstPassword)
	first.wantSignedIn(recoveryOfficer)

	// Forgot the password: from the password page, in a browser of its own.
	b := s.newTab(t)
	b.toPasswordPage(recoveryOfficer)
	b.click("#forgot-password")
	b.wantStep("forgot-password")
	if got := evalJS[string](b, `document.querySelector("#username").value`); got != recoveryOfficer {
		t.Errorf("the username is not carried over: %q", got)
	}
	b.check("40-forgot-password")
	before := s.outboxNames(t)
	b.submit()
	if !strings.Contains(b.text("h1"), "Check your email") {
		t.Fatalf("after asking for a link\n%s", b.describe())
	}
	b.audit("41-forgot-password-sent")
	link := s.newMail(t, before, recoveryOfficer, resetLinkRE)[0]

	b.open(link)
	if b.step() != "" || !strings.Contains(b.text("main"), recoveryOfficer) {
		t.Fatalf("the link's page\n%s", b.describe())
	}
	b.check("42-reset-link")
	b.click("#reset-link button")
	b.wantStep("mfa-challenge")
	// The new password's page is behind the code.
	b.open(s.l.issuer + "/signin/reset-password")
	b.wantStep("mfa-challenge")
	freshStep(3 * time.Second)
	b.typeInto("#code", totpCode(t, secret, 1))
	b.submit()
	b.wantStep("reset-password")
	b.check("43-reset-password")
	b.typeInto("#new_password", resetPassword)
	b.typeInto("#confirm_password", resetPassword+"!")
	b.submit()
	b.wantStep("reset-password")
	b.wantError("confirm_password", "The two new passwords are not the same")
	b.typeInto("#new_password", resetPassword)
	b.typeInto("#confirm_password", resetPassword)
	b.submit()
	// Back on the application the sign-in started from.
	if !strings.HasPrefix(b.url(), stagingURL) {
		t.Fatalf("the reset ended at %s, not the staging portal", b.url())
	}
	b.wantSignedIn(recoveryOfficer)
	// The first browser was signed out with the old password.
	first.open(s.l.issuer + "/account")
	first.wantStep("identify")
	// The link is used up.
	b.open(link)
	if !strings.Contains(b.text("main"), "already been used") {
		t.Errorf("a used link\n%s", b.describe())
	}

	// A link opened in a second browser stops working in both.
	c, d := s.newTab(t), s.newTab(t)
	c.toPasswordPage(recoveryOfficer)
	c.click("#forgot-password")
	before = s.outboxNames(t)
	c.submit()
	link = s.newMail(t, before, recoveryOfficer, resetLinkRE)[0]
	c.open(link)
	c.click("#reset-link button")
	c.wantStep("mfa-challenge")
	d.open(link)
	d.click("#reset-link button")
	if !strings.Contains(d.text("main"), "opened in two browsers") {
		t.Fatalf("the second browser\n%s", d.describe())
	}
	d.audit("44-reset-link-elsewhere")
	c.open(s.l.issuer + "/signin/mfa")
	if !strings.Contains(c.text("main"), "two browsers") {
		t.Fatalf("the first browser goes on\n%s", c.describe())
	}

	// Lost the phone: a recovery code, a passkey instead of the app, and
	// the lost app removed.
	p := s.newTab(t)
	p.toPasswordPage(recoveryOfficer)
	p.typeInto("#password", resetPassword)
	p.submit()
	p.wantStep("mfa-challenge")
	p.click("#lost-phone")
	p.wantStep("mfa-challenge")
	p.check("45-lost-phone")
	p.typeInto("#code", codes[0])
	p.submit()
	p.wantStep("mfa-enrol")
	if h1 := p.text("h1"); h1 != "Set up a new second factor" {
		t.Errorf("after the recovery code the page says %q", h1)
	}
	p.check("46-new-factor")
	auth := p.virtualAuthenticator()
	p.passkeyButton("#passkey-enrol", auth)
	p.wantStep("recovery-codes")
	p.tick("#accept")
	p.submit()
	p.wantStep("remove-lost-factor")
	p.check("47-remove-lost-factor")
	if got := evalJS[[]string](p, `[...document.querySelectorAll("input[name=remove]:checked")].map(e => e.value)`); len(got) != 1 || !strings.HasPrefix(got[0], "totp:") {
		t.Fatalf("offered for removal: %v", got)
	}
	p.click(`button[value=remove]`)
	if !strings.HasPrefix(p.url(), stagingURL) {
		t.Fatalf("the replacement ended at %s\n%s", p.url(), p.describe())
	}
	p.wantSignedIn(recoveryOfficer)
	// The lost app's codes work no more.
	q := s.newTab(t)
	q.toPasswordPage(recoveryOfficer)
	q.typeInto("#password", resetPassword)
	q.submit()
	q.wantStep("mfa-challenge")
	freshStep(3 * time.Second)
	q.typeInto("#code", totpCode(t, secret, 1))
	q.submit()
	q.wantError("code", "That code is not right")

	// Lost the onboarding email: a fresh one, once an approver agrees.
	s.l.invite(lostInvitee)
	old, _ := s.invitation(t, lostInvitee)
	o := s.newTab(t)
	o.open(s.l.issuer + "/signin")
	o.click(`a[href="/signin/invitation"]`)
	o.wantStep("lost-invitation")
	o.check("48-lost-invitation")
	o.typeInto("#email", lostInvitee)
	o.submit()
	if !strings.Contains(o.text("h1"), "Check your email") {
		t.Fatalf("after asking for an onboarding email\n%s", o.describe())
	}
	var reqs []struct {
		ID, Kind, Email, Status string
	}
	out, err := s.l.cmd("request", "list", "--status", "pending", "--json")
	if err != nil {
		t.Fatalf("request list: %v\n%s", err, out)
	}
	if err := json.Unmarshal([]byte(out), &reqs); err != nil {
		t.Fatalf("request list --json: %v\n%s", err, out)
	}
	id := ""
	for _, r := range reqs {
		if r.Email == lostInvitee && r.Kind == "invitation" {
			id = r.ID
		}
	}
	if id == "" {
		t.Fatalf("no request for a fresh onboarding email: %s", out)
	}
	before = s.outboxNames(t)
	if out, err := s.l.cmd("request", "approve", id); err != nil {
		t.Fatalf("request approve: %v\n%s", err, out)
	}
	fresh := s.newMail(t, before, lostInvitee, mailPassword)[1]
	if fresh == old {
		t.Fatal("the fresh onboarding email has the old initial password")
	}
	o.open(stagingURL)
	o.click("#login")
	o.typeInto("#username", lostInvitee)
	o.submit()
	o.typeInto("#password", old)
	o.submit()
	o.wantError("password", "The username or password is not right.")
	o.typeInto("#password", fresh)
	o.submit()
	o.wantStep("mfa-enrol")
}
