package main

// Tests of operating Lanyard: the admin commands run in-process through run()
// against the real SQLite database of a real server (startLanyard), the
// journey driven through its pages as an officer's browser would, and the
// server's operational surface: metrics, logs, readiness, reload, shutdown,
// backup and restore.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/flows/mail"
	"github.com/lanyard-idp/lanyard/provider/store"
)

// syncBuffer is a writer that goroutines (a server's log, a command's
// output) share with the test reading it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startOps starts Lanyard like startLanyard, on the data dir given ("" for a
// new one), logging as JSON to logw.
func startOps(t *testing.T, data string, logw io.Writer) *lanyard {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	issuer := "http://" + ts.Listener.Addr().String()
	if data == "" {
		data = t.TempDir()
	}
	l := &lanyard{t: t, issuer: issuer, data: data}
	l.env = env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }}
	c := common{dev: true, data: l.data, issuer: issuer, addr: ts.Listener.Addr().String()}
	cfg, err := c.load(l.env)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Log.Format = "json"
	d, err := open(t.Context(), cfg, l.env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	log := newLogger(cfg, logw)
	mailer, _, err := newMailer(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := newServer(t.Context(), d, mailer, log)
	if err != nil {
		t.Fatal(err)
	}
	l.srv = srv
	ts.Config.Handler = srv
	ts.Start()
	t.Cleanup(ts.Close)
	return l
}

// runCmd runs a lanyard command on this server's data and returns stdout,
// stderr and the error.
func (l *lanyard) runCmd(args ...string) (string, string, error) {
	var out, errb bytes.Buffer
	e := l.env
	e.stdout, e.stderr = &out, &errb
	args = append(args, "--dev", "--data", l.data, "--issuer", l.issuer)
	err := run(context.Background(), args, e)
	return out.String(), errb.String(), err
}

// mustCmd runs a command that must succeed.
func (l *lanyard) mustCmd(args ...string) string {
	l.t.Helper()
	out, errs, err := l.runCmd(args...)
	if err != nil {
		l.t.Fatalf("lanyard %s: %v\n%s%s", strings.Join(args, " "), err, out, errs)
	}
	return out
}

func (l *lanyard) store() *store.Store { return l.srv.d.store }

func (l *lanyard) user(username string) *store.User {
	l.t.Helper()
	u, err := l.store().UserByUsername(context.Background(), username)
	if err != nil {
		l.t.Fatalf("user %s: %v", username, err)
	}
	return u
}

// officer is an onboarded officer: what they know and hold.
type officer struct {
	email, password, secret string
	recovery                []string
	tok                     *oauth2.Token
	b                       *browser
	rp                      *relyingParty
}

const stagingCallback = "http://localhost:9001/"

func (l *lanyard) staging() *relyingParty {
	return newRP(l.t, l.issuer, "docs-portal-staging", "staging-secret", "http://localhost:9001/callback")
}

// onboard invites email and walks the whole first sign-in: password,
// authenticator app, recovery codes, new password, both policies, tokens.
func (l *lanyard) onboard(email string) *officer {
	t := l.t
	t.Helper()
	inv := l.invite(email)
	o := &officer{email: inv.Username, password: newPassword, b: newBrowser(t, l.issuer), rp: l.staging()}
	a := o.rp.start()
	p, _ := o.b.visit("GET", a.url, nil, stagingCallback)
	w := walkFirstSignIn(t, o.b, p, inv, stagingCallback, nil)
	o.secret, o.recovery = w.secret, w.recovery
	cb := w.cb
	o.tok, _ = o.rp.finish(t, a, cb)
	if len(o.recovery) < 4 {
		t.Fatalf("only %d recovery codes shown", len(o.recovery))
	}
	return o
}

// signIn starts a sign-in to the staging portal in a new browser and
// answers the pages it knows (identify, password, and the second factor with
// a recovery code when useRecovery); it stops at the first other page, or at
// the relying party. It returns the steps seen and where it stopped.
func (l *lanyard) signIn(o *officer, password string, useRecovery bool) ([]string, *page, *url.URL, authAttempt) {
	t := l.t
	t.Helper()
	b := newBrowser(t, l.issuer)
	a := o.rp.start()
	p, cb := b.visit("GET", a.url, nil, stagingCallback)
	var steps []string
	triedPassword := false
	for p != nil {
		steps = append(steps, p.step)
		var fields map[string]string
		switch {
		case p.step == "identify":
			fields = map[string]string{"username": o.email}
		case p.step == "password" && !triedPassword:
			triedPassword = true
			fields = map[string]string{"username": o.email, "password": password}
		case p.step == "mfa-challenge" && useRecovery:
			code := o.recovery[0]
			o.recovery = o.recovery[1:]
			fields = map[string]string{"code": code}
		default:
			return steps, p, nil, a
		}
		p, cb = b.submit(p, fields, stagingCallback)
	}
	return steps, nil, cb, a
}

// clientCredentials asks for a token as the dev ci-service.
func clientCredentials(issuer, id, secret string) (int, error) {
	req, _ := http.NewRequest("POST", issuer+"/token", strings.NewReader("grant_type=client_credentials&scope=docs%3Aread"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// snapshot is what "nothing changed" compares: every user row and the end
// of the audit trail.
func (l *lanyard) snapshot() string {
	l.t.Helper()
	ctx := context.Background()
	users, err := l.store().ListUsers(ctx, "", "")
	if err != nil {
		l.t.Fatal(err)
	}
	last, err := l.store().LastAuditID(ctx)
	if err != nil {
		l.t.Fatal(err)
	}
	var sb strings.Builder
	for _, u := range users {
		ss, _ := l.store().UserSessions(ctx, u.ID, time.Now())
		th, _ := l.store().GetThrottle(ctx, "acct:"+u.ID)
		fmt.Fprintf(&sb, "%+v sessions=%d throttle=%+v\n", u, len(ss), th)
	}
	fmt.Fprintf(&sb, "audit=%d", last)
	return sb.String()
}

func (l *lanyard) events(name store.Event) []store.AuditEvent {
	l.t.Helper()
	evs, err := l.store().Audit(context.Background(), store.AuditFilter{Event: string(name)})
	if err != nil {
		l.t.Fatal(err)
	}
	return evs
}

func TestUserDisableEnable(t *testing.T) {
	l := startOps(t, "", io.Discard)
	o := l.onboard("alice@agency.example")
	ctx := t.Context()

	// Refreshing works before: the test would pass for the wrong reason otherwise.
	fresh, err := o.rp.cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: o.tok.RefreshToken}).Token()
	if err != nil || fresh.RefreshToken == "" {
		t.Fatalf("refresh before disable: %v", err)
	}
	u := l.user(o.email)
	if ss, _ := l.store().UserSessions(ctx, u.ID, time.Now()); len(ss) != 1 {
		t.Fatalf("%d sessions before disable, want 1", len(ss))
	}

	out := l.mustCmd("user", "disable", "Alice@Agency.example", "--json")
	var res actionResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.State != store.UserDisabled || res.SessionsEnded != 1 {
		t.Fatalf("disable printed %s (%v)", out, err)
	}
	if _, err := o.rp.cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: fresh.RefreshToken}).Token(); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("refresh after disable: %v, want invalid_grant", err)
	}
	if ss, _ := l.store().UserSessions(ctx, u.ID, time.Now()); len(ss) != 0 {
		t.Fatalf("%d sessions after disable", len(ss))
	}
	// The browser's session is gone: the account page sends it to sign in.
	if p, _ := o.b.visit("GET", l.issuer+"/account", nil, ""); p == nil || p.step != "identify" {
		t.Fatalf("the disabled officer's browser still reaches %v", p)
	}
	// The right password no longer signs in.
	steps, p, _, _ := l.signIn(o, o.password, true)
	if p == nil || p.step != "password" || strings.Join(steps, ",") != "identify,password,password" {
		t.Fatalf("disabled sign-in went %v", steps)
	}
	ev := l.events(store.EventUserDisable)
	if len(ev) != 1 || ev[0].UserID != u.ID || !strings.Contains(string(ev[0].Detail), `"by":"cli"`) {
		t.Fatalf("audit %+v", ev)
	}

	// Twice: refused, nothing changes.
	before := l.snapshot()
	if _, _, err := l.runCmd("user", "disable", o.email); err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "already disabled") {
		t.Fatalf("second disable: %v", err)
	}
	if l.snapshot() != before {
		t.Fatal("a refused disable changed something")
	}

	out = l.mustCmd("user", "enable", o.email)
	if !strings.Contains(out, "enabled alice@agency.example (state active)") {
		t.Fatalf("enable printed %q", out)
	}
	if _, _, cb, a := l.signIn(o, o.password, true); cb == nil {
		t.Fatal("the enabled officer cannot sign in")
	} else {
		o.rp.finish(t, a, cb)
	}
	if len(l.events(store.EventUserEnable)) != 1 {
		t.Fatal("no admin.user.enable event")
	}
}

// TestUserDisableRace: 20 admins disabling at once: exactly one acts.
func TestUserDisableRace(t *testing.T) {
	l := startOps(t, "", io.Discard)
	l.invite("bob@agency.example")
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, _, errs[i] = l.runCmd("user", "disable", "bob@agency.example")
		}()
	}
	close(start)
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else if !strings.Contains(err.Error(), "already disabled") {
			t.Errorf("racing disable: %v", err)
		}
	}
	if ok != 1 || len(l.events(store.EventUserDisable)) != 1 {
		t.Fatalf("%d disables succeeded, %d audited; want exactly 1", ok, len(l.events(store.EventUserDisable)))
	}
}

func TestUserResetMFA(t *testing.T) {
	l := startOps(t, "", io.Discard)
	o := l.onboard("carol@agency.example")
	out := l.mustCmd("user", "reset-mfa", o.email, "--json")
	var res actionResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Removed == nil || !res.Removed.TOTP || res.Removed.RecoveryCodes != len(o.recovery) || res.SessionsEnded != 1 {
		t.Fatalf("reset-mfa printed %s (%v)", out, err)
	}
	u := l.user(o.email)
	if _, err := l.store().TOTPByUser(t.Context(), u.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("TOTP after reset: %v", err)
	}
	if n, _ := l.store().RecoveryCodesLeft(t.Context(), u.ID); n != 0 {
		t.Fatalf("%d recovery codes left after reset", n)
	}
	// The next sign-in asks for a new second factor, not for the old one.
	steps, p, _, _ := l.signIn(o, o.password, true)
	if p == nil || p.step != "mfa-enrol" {
		t.Fatalf("after reset-mfa the sign-in went %v", steps)
	}
	if ev := l.events(store.EventUserResetMFA); len(ev) != 1 || ev[0].UserID != u.ID {
		t.Fatalf("audit %+v", ev)
	}
}

func TestUserUnlock(t *testing.T) {
	l := startOps(t, "", io.Discard)
	o := l.onboard("dave@agency.example")
	u := l.user(o.email)
	// The lock flows sets after too many failures: on the account's key.
	if err := l.store().Lock(t.Context(), "acct:"+u.ID, time.Now().Add(time.Hour), 1); err != nil {
		t.Fatal(err)
	}
	if steps, p, _, _ := l.signIn(o, o.password, true); p == nil || p.step != "password" {
		t.Fatalf("a locked account signed in: %v", steps)
	}
	var rows []userRow
	if err := json.Unmarshal([]byte(l.mustCmd("user", "list", "--state", "locked", "--json")), &rows); err != nil || len(rows) != 1 || rows[0].Username != o.email || rows[0].LockedUntil == "" {
		t.Fatalf("user list --state locked: %+v, %v", rows, err)
	}
	out := l.mustCmd("user", "unlock", o.email)
	if !strings.Contains(out, "unlocked dave@agency.example") {
		t.Fatalf("unlock printed %q", out)
	}
	if _, _, cb, a := l.signIn(o, o.password, true); cb == nil {
		t.Fatal("still locked after unlock")
	} else {
		o.rp.finish(t, a, cb)
	}
	if err := json.Unmarshal([]byte(l.mustCmd("user", "list", "--state", "locked", "--json")), &rows); err != nil || len(rows) != 0 {
		t.Fatalf("still listed as locked: %+v", rows)
	}
	if ev := l.events(store.EventUserUnlock); len(ev) != 1 || !strings.Contains(string(ev[0].Detail), `"was_locked":true`) {
		t.Fatalf("audit %+v", ev)
	}
}

func TestUserSignOutAndResetPassword(t *testing.T) {
	l := startOps(t, "", io.Discard)
	o := l.onboard("erin@agency.example")
	ctx := t.Context()
	out := l.mustCmd("user", "sign-out", o.email)
	if !strings.Contains(out, "1 session(s) ended") {
		t.Fatalf("sign-out printed %q", out)
	}
	if _, err := o.rp.cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: o.tok.RefreshToken}).Token(); err == nil {
		t.Fatal("a refresh token survived sign-out")
	}
	if p, _ := o.b.visit("GET", l.issuer+"/account", nil, ""); p == nil || p.step != "identify" {
		t.Fatal("the browser is still signed in after sign-out")
	}
	if len(l.events(store.EventUserSignOut)) != 1 {
		t.Fatal("no admin.user.sign_out event")
	}

	// reset-password: a new initial password by email; the old one stops
	// working; the journey asks to change it after the second factor.
	outbox := filepath.Join(l.data, "outbox")
	os.RemoveAll(outbox)
	out = l.mustCmd("user", "reset-password", o.email)
	if !strings.Contains(out, "email written to") {
		t.Fatalf("reset-password printed %q", out)
	}
	mailText := readOutbox(t, outbox)
	m := regexp.MustCompile(`Initial password:\s+(\S+)`).FindStringSubmatch(mailText)
	if m == nil {
		t.Fatalf("no password in the reset email:\n%s", mailText)
	}
	if steps, p, _, _ := l.signIn(o, o.password, true); p == nil || p.step != "password" {
		t.Fatalf("the old password still works: %v", steps)
	}
	steps, p, _, _ := l.signIn(o, m[1], true)
	if p == nil || p.step != "change-password" || strings.Join(steps, ",") != "identify,password,mfa-challenge,change-password" {
		t.Fatalf("sign-in with the reset password went %v", steps)
	}
	if ev := l.events("admin.user.reset_password"); len(ev) != 1 || strings.Contains(string(ev[0].Detail), m[1]) {
		t.Fatalf("audit %+v", ev)
	}
}

func TestUserListAndShow(t *testing.T) {
	l := startOps(t, "", io.Discard)
	o := l.onboard("frank@agency.example")
	l.invite("grace@agency.example")

	var rows []userRow
	if err := json.Unmarshal([]byte(l.mustCmd("user", "list", "--json")), &rows); err != nil || len(rows) != 2 {
		t.Fatalf("user list: %+v, %v", rows, err)
	}
	if err := json.Unmarshal([]byte(l.mustCmd("user", "list", "--state", "invited", "--json")), &rows); err != nil || len(rows) != 1 || rows[0].Username != "grace@agency.example" || rows[0].InviteExpiresAt == "" {
		t.Fatalf("user list --state invited: %+v, %v", rows, err)
	}
	if err := json.Unmarshal([]byte(l.mustCmd("user", "list", "--search", "FRANK", "--json")), &rows); err != nil || len(rows) != 1 || rows[0].State != store.UserActive {
		t.Fatalf("user list --search: %+v, %v", rows, err)
	}
	table := l.mustCmd("user", "list")
	if !strings.Contains(table, "EMAIL") || !strings.Contains(table, "grace@agency.example") || !strings.Contains(table, "2 account(s)") {
		t.Fatalf("user list table:\n%s", table)
	}

	var d userDetail
	if err := json.Unmarshal([]byte(l.mustCmd("user", "show", o.email, "--json")), &d); err != nil {
		t.Fatal(err)
	}
	if d.State != store.UserActive || d.TOTP != "enrolled" || d.RecoveryCodes != len(o.recovery) || d.LastSignInAt == "" ||
		len(d.Sessions) != 1 || len(d.Documents) != 2 || !d.Documents[0].UpToDate || !d.Documents[1].UpToDate || d.PasswordInitial {
		t.Fatalf("user show: %+v", d)
	}
	text := l.mustCmd("user", "show", "grace@agency.example")
	for _, want := range []string{"state:            invited", "initial password: valid until", "authenticator:    none", "privacy: not accepted"} {
		if !strings.Contains(text, want) {
			t.Errorf("user show lacks %q:\n%s", want, text)
		}
	}
}

// lanyard invite passes the officer's names to the admin service: given
// and family names as given, or derived from a two-word --name; a resend
// with names replaces them.
func TestInviteNamesCommand(t *testing.T) {
	l := startOps(t, "", io.Discard)
	type names struct{ Name, GivenName, FamilyName string }
	invite := func(args ...string) names {
		t.Helper()
		var n struct {
			Name       string `json:"name"`
			GivenName  string `json:"given_name"`
			FamilyName string `json:"family_name"`
		}
		if err := json.Unmarshal([]byte(l.mustCmd(append([]string{"invite"}, append(args, "--json")...)...)), &n); err != nil {
			t.Fatal(err)
		}
		return names{n.Name, n.GivenName, n.FamilyName}
	}
	for _, c := range []struct {
		args []string
		want names
	}{
		{[]string{"maria@agency.example", "--name", "Maria de la Cruz", "--given-name", "Maria", "--family-name", "de la Cruz"}, names{"Maria de la Cruz", "Maria", "de la Cruz"}},
		{[]string{"jl@agency.example", "--given-name", "Jean-Luc", "--family-name", "Picard"}, names{"Jean-Luc Picard", "Jean-Luc", "Picard"}},
		{[]string{"alice@agency.example", "--name", "Alice Martin"}, names{"Alice Martin", "Alice", "Martin"}},
		{[]string{"alice@agency.example", "--resend", "--name", "Alice Martin-Lee"}, names{"Alice Martin-Lee", "Alice", "Martin-Lee"}},
	} {
		if got := invite(c.args...); got != c.want {
			t.Errorf("%q: %+v, want %+v", c.args, got, c.want)
		}
	}
	u, err := l.srv.d.store.UserByUsername(t.Context(), "maria@agency.example")
	if err != nil || u.GivenName != "Maria" || u.FamilyName != "de la Cruz" {
		t.Errorf("stored: %+v, %v", u, err)
	}
	for _, args := range [][]string{
		{"invite", "bob@agency.example", "--given-name", "Bob"},             // no family name, no full name
		{"invite", "--revoke", "maria@agency.example", "--given-name", "M"}, // --revoke takes no names
	} {
		if _, _, err := l.runCmd(args...); exitCode(err) != 2 {
			t.Errorf("%q: exit %d (%v), want a usage error", args, exitCode(err), err)
		}
	}
}

func TestInviteRevokeAndListCommands(t *testing.T) {
	l := startOps(t, "", io.Discard)
	l.onboard("hana@agency.example")
	inv := l.invite("ivan@agency.example")

	var list []invitationRow
	if err := json.Unmarshal([]byte(l.mustCmd("invite", "list", "--json")), &list); err != nil || len(list) != 2 {
		t.Fatalf("invite list: %+v, %v", list, err)
	}
	status := map[string]string{}
	for _, r := range list {
		status[r.Username] = r.Status
	}
	if status["hana@agency.example"] != "accepted" || status["ivan@agency.example"] != "pending" {
		t.Fatalf("statuses %v", status)
	}
	if out := l.mustCmd("invite", "list", "--status", "pending"); !strings.Contains(out, "ivan@agency.example") || strings.Contains(out, "hana@") {
		t.Fatalf("invite list --status pending:\n%s", out)
	}

	before := l.snapshot()
	if _, _, err := l.runCmd("invite", "--revoke", "hana@agency.example"); err == nil || exitCode(err) != 1 {
		t.Fatalf("revoking an accepted invitation: %v", err)
	}
	if l.snapshot() != before {
		t.Fatal("a refused revoke changed something")
	}
	l.mustCmd("invite", "--revoke", "ivan@agency.example")
	if _, err := l.store().UserByUsername(t.Context(), "ivan@agency.example"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the revoked account remains: %v", err)
	}
	// The initial password of the revoked invitation signs nobody in.
	o := &officer{email: inv.Username, rp: l.staging()}
	if steps, p, _, _ := l.signIn(o, inv.InitialPassword, false); p == nil || p.step != "password" {
		t.Fatalf("a revoked invitation's password went %v", steps)
	}
	if ev := l.events("invite.revoke"); len(ev) != 1 || !strings.Contains(string(ev[0].Detail), `"by":"cli"`) {
		t.Fatalf("audit %+v", ev)
	}
	// The audit of the deleted account is still found by its address.
	out := l.mustCmd("audit", "--user", "ivan@agency.example", "--json")
	if !strings.Contains(out, `"event":"invite"`) || !strings.Contains(out, `"event":"invite.revoke"`) {
		t.Fatalf("audit --user of a revoked invitation:\n%s", out)
	}
}

// TestAdminCommandsRefuseBadInput: each mistake gets one line on stderr, the
// right exit code, and changes nothing.
func TestAdminCommandsRefuseBadInput(t *testing.T) {
	l := startOps(t, "", io.Discard)
	l.onboard("judy@agency.example")
	l.invite("kim@agency.example")
	missing := filepath.Join(t.TempDir(), "missing.db")
	notDB := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(notDB, []byte("not a database\n"), 0o600)
	existing := filepath.Join(t.TempDir(), "exists.db")
	os.WriteFile(existing, []byte("x"), 0o600)
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"user"}, 2},
		{[]string{"user", "frobnicate", "judy@agency.example"}, 2},
		{[]string{"user", "show"}, 2},
		{[]string{"user", "show", "judy@agency.example", "extra"}, 2},
		{[]string{"user", "show", "not-an-address"}, 2},
		{[]string{"user", "show", "nobody@agency.example"}, 1},
		{[]string{"user", "disable", "nobody@agency.example"}, 1},
		{[]string{"user", "disable", "--bogus", "judy@agency.example"}, 2},
		{[]string{"user", "enable", "judy@agency.example"}, 1}, // not disabled
		{[]string{"user", "unlock", "judy@@agency.example"}, 2},
		{[]string{"user", "reset-mfa", "nobody@agency.example"}, 1},
		{[]string{"user", "reset-password", "kim@agency.example"}, 1}, // invited: use invite --resend
		{[]string{"user", "sign-out", ""}, 2},
		{[]string{"user", "list", "--state", "sleeping"}, 2},
		{[]string{"user", "list", "--search", "a\nb"}, 2},
		{[]string{"invite", "--revoke", "nobody@agency.example"}, 1},
		{[]string{"invite", "--revoke", "--resend", "kim@agency.example"}, 2},
		{[]string{"invite", "kim@agency.example", "--name", "Kim"}, 1}, // already invited
		{[]string{"invite", "someone@elsewhere.example", "--name", "X"}, 1},
		{[]string{"invite", "list", "--status", "maybe"}, 2},
		{[]string{"audit", "--since", "yesterday"}, 2},
		{[]string{"audit", "--event", "sign in"}, 2},
		{[]string{"audit", "--limit", "-1"}, 2},
		{[]string{"audit", "--user", "nope"}, 2},
		{[]string{"client", "remove"}, 2},
		{[]string{"backup"}, 2},
		{[]string{"backup", existing}, 1},
		{[]string{"backup", filepath.Join(missing, "sub", "x.db")}, 1},
		{[]string{"restore", missing}, 1},
		{[]string{"restore", notDB}, 1},
		{[]string{"frobnicate"}, 2},
	} {
		l.wantRefused(tc.args, tc.code)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("a refused restore created the database file")
	}
	if b, _ := os.ReadFile(existing); string(b) != "x" {
		t.Error("a refused backup overwrote a file")
	}
	// -h is not a mistake.
	if out, _, err := l.runCmd("user", "disable", "-h"); err != nil || !strings.Contains(out, "usage: lanyard user disable EMAIL") {
		t.Errorf("-h: %v\n%s", err, out)
	}
}

func TestAuditCommand(t *testing.T) {
	l := startOps(t, "", io.Discard)
	o := l.onboard("leo@agency.example")
	l.invite("mia@agency.example")

	out := l.mustCmd("audit", "--user", o.email, "--json")
	var events []auditLine
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var ev auditLine
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("audit --json line %q: %v", line, err)
		}
		events = append(events, ev)
	}
	names := []string{}
	for _, ev := range events {
		if ev.Username != o.email && ev.Event != "token.issue" {
			t.Errorf("--user %s printed an event of %q", o.email, ev.Username)
		}
		names = append(names, ev.Event)
	}
	for _, want := range []string{"invite", "signin.password", "mfa.enrol", "password.change", "policy.accept", "signin.success", "token.issue"} {
		if !strings.Contains(strings.Join(names, ","), want) {
			t.Errorf("the audit of %s lacks %s: %v", o.email, want, names)
		}
	}
	if out := l.mustCmd("audit", "--event", "signin."); strings.Contains(out, " invite ") || !strings.Contains(out, "signin.success") {
		t.Fatalf("audit --event signin.:\n%s", out)
	}
	if out := l.mustCmd("audit", "--since", "1h", "--event", "invite"); !strings.Contains(out, "mia@agency.example") {
		t.Fatalf("audit --since 1h:\n%s", out)
	}
	if out := l.mustCmd("audit", "--since", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)); !strings.Contains(out, "no events") {
		t.Fatalf("audit --since the future:\n%s", out)
	}

	// --follow prints what is written after it started, until stopped.
	followEvery = 20 * time.Millisecond
	defer func() { followEvery = 500 * time.Millisecond }()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var buf syncBuffer
	e := l.env
	e.stdout = &buf
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"audit", "--follow", "--event", "admin.", "--since", "all", "--dev", "--data", l.data, "--issuer", l.issuer}, e)
	}()
	time.Sleep(100 * time.Millisecond)
	l.mustCmd("user", "sign-out", o.email)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(buf.String(), "admin.user.sign_out") {
		if time.Now().After(deadline) {
			t.Fatalf("--follow did not print the new event:\n%s", buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("--follow ended with %v", err)
	}
	if strings.Count(buf.String(), "admin.user.sign_out") != 1 {
		t.Fatalf("--follow printed the event more than once:\n%s", buf.String())
	}
}

// TestAuditVerifyDetectsEditedRow edits the SQLite file behind the store's
// back, as someone covering their tracks would.
func TestAuditVerifyDetectsEditedRow(t *testing.T) {
	l := startOps(t, "", io.Discard)
	l.invite("nina@agency.example")
	l.invite("omar@agency.example")
	l.invite("pia@agency.example")
	if out := l.mustCmd("audit", "verify"); !strings.Contains(out, "intact") {
		t.Fatalf("audit verify on an intact trail: %q", out)
	}
	evs := l.events("invite")
	target := evs[0].ID
	db, err := sql.Open("sqlite", filepath.Join(l.data, "lanyard.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE audit SET username = 'someone-else@agency.example' WHERE id = ?`, target); err != nil {
		t.Fatal(err)
	}
	out, _, err := l.runCmd("audit", "verify", "--json")
	if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), fmt.Sprintf("#%d", target)) {
		t.Fatalf("audit verify after an edit: %v", err)
	}
	var res struct {
		Intact bool  `json:"intact"`
		Bad    int64 `json:"first_bad_id"`
	}
	if json.Unmarshal([]byte(out), &res); res.Intact || res.Bad != target {
		t.Fatalf("audit verify --json: %s", out)
	}

	// A deleted row is found too: the next event no longer chains.
	if _, err := db.Exec(`UPDATE audit SET username = 'nina@agency.example' WHERE id = ?`, target); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM audit WHERE id = ?`, evs[1].ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.runCmd("audit", "verify"); err == nil {
		t.Fatal("audit verify missed a deleted event")
	}
}

func TestClientList(t *testing.T) {
	l := startOps(t, "", io.Discard)
	var cs []clientInfo
	if err := json.Unmarshal([]byte(l.mustCmd("client", "list", "--json")), &cs); err != nil || len(cs) != 3 {
		t.Fatalf("client list: %+v, %v", cs, err)
	}
	if cs[0].ID != "docs-portal-staging" || cs[0].RedirectURIs[0] != "http://localhost:9001/callback" || !strings.Contains(cs[0].Source, "dev.yaml") || !strings.Contains(cs[0].Source, ":") {
		t.Fatalf("first client %+v", cs[0])
	}
	out := l.mustCmd("client", "list")
	for _, want := range []string{"ci-service", "client_credentials", "authorization_code,refresh_token"} {
		if !strings.Contains(out, want) {
			t.Errorf("client list lacks %q:\n%s", want, out)
		}
	}
}

// TestBackupUnderLoadRestores takes a backup while tokens are being issued,
// restores it into another data dir and signs in there.
func TestBackupUnderLoadRestores(t *testing.T) {
	l := startOps(t, "", io.Discard)
	o := l.onboard("pat@agency.example")

	stop := make(chan struct{})
	var issued, failed atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, err := clientCredentials(l.issuer, "ci-service", "ci-service-secret")
				if err != nil || code != http.StatusOK {
					failed.Add(1)
					continue
				}
				issued.Add(1)
			}
		}()
	}
	for issued.Load() < 20 {
		time.Sleep(5 * time.Millisecond)
	}
	file := filepath.Join(t.TempDir(), "lanyard-backup.db")
	out := l.mustCmd("backup", file)
	during := issued.Load()
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
	if !strings.Contains(out, "backup written to "+file) {
		t.Fatalf("backup printed %q", out)
	}
	if failed.Load() > 0 || issued.Load() <= during {
		t.Fatalf("serving during the backup: %d issued (%d before it ended), %d failed", issued.Load(), during, failed.Load())
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", fi, err)
	}
	if len(l.events(store.EventBackup)) != 1 {
		t.Fatal("no admin.backup event")
	}

	// Restore into a new data dir that has the same key-encryption key.
	data2 := t.TempDir()
	kek, err := os.ReadFile(filepath.Join(l.data, "kek"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data2, "kek"), kek, 0o600); err != nil {
		t.Fatal(err)
	}
	var rout bytes.Buffer
	e := l.env
	e.stdout = &rout
	restore := func() error { return run(t.Context(), []string{"restore", file, "--dev", "--data", data2}, e) }
	if err := restore(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	// Refused while a server holds the database.
	db2 := filepath.Join(data2, "lanyard.db")
	release, err := lockShared(db2)
	if err != nil {
		t.Fatal(err)
	}
	err = restore()
	release()
	if err == nil || !strings.Contains(err.Error(), "server is running") {
		t.Fatalf("restore under a running server: %v", err)
	}
	// Restoring again keeps the database it replaces.
	rout.Reset()
	if err := restore(); err != nil {
		t.Fatalf("second restore: %v", err)
	}
	m := regexp.MustCompile(`previous database is kept at (\S+)`).FindStringSubmatch(rout.String())
	if m == nil {
		t.Fatalf("restore printed %q", rout.String())
	}
	aside, err := store.Open(t.Context(), m[1])
	if err != nil {
		t.Fatalf("the database moved aside does not open: %v", err)
	}
	_, err = aside.UserByUsername(t.Context(), o.email)
	aside.Close()
	if err != nil {
		t.Fatalf("the database moved aside lost its officer: %v", err)
	}

	l2 := startOps(t, data2, io.Discard)
	if out := l2.mustCmd("audit", "verify"); !strings.Contains(out, "intact") {
		t.Fatalf("the restored trail: %s", out)
	}
	if len(l2.events(store.EventRestore)) != 1 {
		t.Fatal("the restore is not in the restored database's audit trail")
	}
	o.rp = l2.staging()
	steps, _, cb, a := l2.signIn(o, o.password, true)
	if cb == nil {
		t.Fatalf("sign-in on the restored database stopped after %v", steps)
	}
	o.rp.finish(t, a, cb)
}

func TestRestoreRefusesForeignDatabase(t *testing.T) {
	dir := t.TempDir()
	foreign := filepath.Join(dir, "other.db")
	db, err := sql.Open("sqlite", foreign)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE notes (x TEXT)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := inspectDatabase(t.Context(), foreign); err == nil || !strings.Contains(err.Error(), "not a Lanyard database") {
		t.Fatalf("a foreign SQLite file: %v", err)
	}
	newer := filepath.Join(dir, "newer.db")
	st, err := store.Open(t.Context(), newer)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	db, _ = sql.Open("sqlite", newer)
	db.Exec(`PRAGMA journal_mode=DELETE`)
	if _, err := db.Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES ('9999_future', 0)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := inspectDatabase(t.Context(), newer); err == nil || !strings.Contains(err.Error(), "newer Lanyard") {
		t.Fatalf("a database of a newer Lanyard: %v", err)
	}
}

// metricSample is one line of the Prometheus text format.
type metricSample struct {
	name   string
	labels map[string]string
	value  string
}

var (
	sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)`)
	labelPair  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
)

func scrape(t *testing.T, h http.Handler) []metricSample {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	var out []metricSample
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		m := sampleLine.FindStringSubmatch(line)
		if m == nil || strings.HasPrefix(line, "#") {
			continue
		}
		s := metricSample{name: m[1], labels: map[string]string{}, value: m[3]}
		for _, p := range labelPair.FindAllStringSubmatch(m[2], -1) {
			s.labels[p[1]] = p[2]
		}
		out = append(out, s)
	}
	return out
}

func value(samples []metricSample, name string, labels map[string]string) string {
	for _, s := range samples {
		if s.name != name {
			continue
		}
		ok := true
		for k, v := range labels {
			ok = ok && s.labels[k] == v
		}
		if ok {
			return s.value
		}
	}
	return ""
}

func TestMetrics(t *testing.T) {
	l := startOps(t, "", io.Discard)
	o := l.onboard("quinn@agency.example")
	if code, err := clientCredentials(l.issuer, "ci-service", "ci-service-secret"); err != nil || code != 200 {
		t.Fatalf("client credentials: %d %v", code, err)
	}
	// A second officer stops after the password: an abandoned journey.
	inv := l.invite("rosa@agency.example")
	ro := &officer{email: inv.Username, rp: l.staging()}
	if _, p, _, _ := l.signIn(ro, inv.InitialPassword, false); p == nil || p.step != "mfa-enrol" {
		t.Fatal("the second officer did not reach mfa-enrol")
	}
	// A wrong password, for the outcome label.
	l.signIn(o, "not-the-password-at-all", false)

	samples := scrape(t, l.srv.metrics.handler())
	families := map[string]bool{}
	for _, s := range samples {
		families[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(s.name, "_bucket"), "_sum"), "_count")] = true
		for k, v := range s.labels {
			if strings.Contains(v, "@") || strings.Contains(v, "quinn") || strings.Contains(v, "rosa") {
				t.Errorf("label %s=%q of %s carries user text", k, v, s.name)
			}
		}
	}
	for _, f := range []string{
		"lanyard_http_request_duration_seconds", "lanyard_tokens_issued_total", "lanyard_signins_total",
		"lanyard_journey_steps_completed_total", "lanyard_journey_abandoned_total", "lanyard_locks_total",
		"lanyard_mail_failures_total", "lanyard_config_reloads_total", "go_sql_open_connections", "go_sql_wait_count_total",
		"lanyard_password_hashes_running", "lanyard_password_hashes_waiting", "lanyard_password_hash_workers",
		"lanyard_password_hash_busy_total",
	} {
		if !families[f] {
			t.Errorf("/metrics lacks %s", f)
		}
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   string
	}{
		{"lanyard_tokens_issued_total", map[string]string{"grant": "authorization_code", "client": "docs-portal-staging"}, "1"},
		{"lanyard_tokens_issued_total", map[string]string{"grant": "client_credentials", "client": "ci-service"}, "1"},
		{"lanyard_signins_total", map[string]string{"outcome": "success"}, "1"},
		{"lanyard_signins_total", map[string]string{"outcome": "wrong_password"}, "1"},
		{"lanyard_journey_steps_completed_total", map[string]string{"step": "password"}, "2"},
		{"lanyard_journey_steps_completed_total", map[string]string{"step": "mfa-enrol"}, "1"},
		{"lanyard_journey_steps_completed_total", map[string]string{"step": "terms"}, "1"},
		{"lanyard_journey_abandoned_total", map[string]string{"last_step": "password"}, "0"},
		{"lanyard_http_request_duration_seconds_count", map[string]string{"route": "POST /token", "code": "200"}, "2"},
	} {
		if got := value(samples, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %q, want %s", c.name, c.labels, got, c.want)
		}
	}
	for _, s := range samples {
		if r, ok := s.labels["route"]; ok && r != "unmatched" && !regexp.MustCompile(`^[A-Z]+ /`).MatchString(r) {
			t.Errorf("route label %q is not a pattern", r)
		}
	}

	// Once the journey timeout has passed, the unfinished sign-in is abandoned.
	l.srv.metrics.now = func() time.Time { return time.Now().Add(31 * time.Minute) }
	samples = scrape(t, l.srv.metrics.handler())
	if got := value(samples, "lanyard_journey_abandoned_total", map[string]string{"last_step": "password"}); got != "1" {
		t.Errorf("abandoned at password = %q, want 1", got)
	}

	// Back-channel logout: an admin's sign-out queues one delivery (quinn
	// got tokens for the staging portal), which the outbox gauge shows; each
	// delivery's audit event is counted by result and client.
	u, err := l.srv.d.store.UserByUsername(t.Context(), o.email)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.srv.d.store.RevokeOAuthBySubject(t.Context(), u.ID); err != nil {
		t.Fatal(err)
	}
	if err := l.srv.d.store.AppendAudit(t.Context(), &store.AuditEvent{Event: store.EventLogoutBackchannel, UserID: u.ID,
		ClientID: "docs-portal-staging", Detail: []byte(`{"result":"delivered","attempt":1}`)}); err != nil {
		t.Fatal(err)
	}
	samples = scrape(t, l.srv.metrics.handler())
	if got := value(samples, "lanyard_backchannel_logout_outbox", nil); got != "1" {
		t.Errorf("logout outbox = %q, want 1", got)
	}
	if got := value(samples, "lanyard_backchannel_logouts_total", map[string]string{"result": "delivered", "client": "docs-portal-staging"}); got != "1" {
		t.Errorf("delivered back-channel logouts = %q, want 1", got)
	}
	if got := value(samples, "lanyard_backchannel_logouts_total", map[string]string{"result": "gave_up", "client": "docs-portal-production"}); got != "0" {
		t.Errorf("gave-up back-channel logouts = %q, want 0", got)
	}

	// The server's own mail (security notices) is counted when it fails: an
	// outbox that cannot be written.
	notDir := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notDir, nil, 0o600)
	m := l.srv.metrics.countMail(mail.NewOutbox(filepath.Join(notDir, "outbox"), "Lanyard <no-reply@agency.example>", slog.New(slog.DiscardHandler)))
	if err := m.Send(t.Context(), mail.Message{To: "x@agency.example", Subject: "s", Text: "t"}); err == nil {
		t.Fatal("an unwritable outbox accepted a message")
	}
	samples = scrape(t, l.srv.metrics.handler())
	if got := value(samples, "lanyard_mail_failures_total", map[string]string{"message": "notification"}); got != "1" {
		t.Errorf("notification mail failures = %q, want 1", got)
	}
}

func TestRequestLogs(t *testing.T) {
	var logs syncBuffer
	l := startOps(t, "", &logs)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(l.issuer + "/authorize?client_id=docs-portal-staging&response_type=code&state=SECRET-STATE-123&redirect_uri=http%3A%2F%2Flocalhost%3A9001%2Fcallback&scope=openid")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	id := resp.Header.Get("X-Request-Id")
	if len(id) != 16 {
		t.Fatalf("X-Request-Id %q", id)
	}
	found := false
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "SECRET-STATE-123") {
			t.Errorf("a query string reached the log: %s", line)
		}
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["request_id"] != id {
			continue
		}
		if rec["msg"] == "request" {
			found = true
			if rec["route"] != "GET /authorize" || rec["method"] != "GET" || rec["status"] == nil || rec["duration_ms"] == nil {
				t.Errorf("access log line %s", line)
			}
		}
	}
	if !found {
		t.Fatalf("no access log line with request_id %s:\n%s", id, logs.String())
	}

	// readyz: the database answers and a signing key is current.
	resp, err = http.Get(l.issuer + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("readyz: %v %v", resp, err)
	}
	resp.Body.Close()
	l.store().Close()
	resp, err = http.Get(l.issuer + "/readyz")
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz with the database closed: %v %v", resp, err)
	}
	resp.Body.Close()
	if resp, err := http.Get(l.issuer + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
}

// configFile writes a dev configuration file for a server on addr with the
// given extra client YAML, and returns its path.
func configFile(t *testing.T, dir, addr, extra string) string {
	t.Helper()
	body := fmt.Sprintf(`issuer: http://%s
listen: %s
dev: true
data_dir: %s
metrics:
  listen: "127.0.0.1:0"
log:
  format: json
invitations:
  allowed_domains: [agency.example]
documents:
  - id: privacy
    title: Privacy policy
    version: "2026-01"
  - id: terms
    title: Terms of use
    version: "2026-01"
clients:
  - id: ci-service
    name: CI service
    secret_hash: "$lanyard-hmac-sha256$_v8igPggLUna9lUjwU5wtw$cO-FYXL5FzqS3PzC1ADt_RRwIRekaOR9uwlPOq052jw"
    grant_types: [client_credentials]
    scopes: ["docs:read"]
%s`, addr, addr, dir, extra)
	path := filepath.Join(dir, "lanyard.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func secondClient(t *testing.T) (string, string) {
	secret := "another-service-secret-Zq8vR3kT9wL2"
	h, err := config.HashSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	return secret, fmt.Sprintf(`  - id: report-service
    name: Reports
    secret_hash: %q
    grant_types: [client_credentials]
    scopes: ["docs:read"]
`, h)
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestReloadKeepsServingOnBrokenConfig calls the reload directly.
func TestReloadKeepsServingOnBrokenConfig(t *testing.T) {
	var logs syncBuffer
	l := startOps(t, "", &logs)
	dir := t.TempDir()
	path := configFile(t, dir, strings.TrimPrefix(l.issuer, "http://"), "")
	load := func() (*config.Config, error) {
		c := common{configFile: path}
		return c.load(l.env)
	}
	secret, extra := secondClient(t)
	if code, _ := clientCredentials(l.issuer, "report-service", secret); code != http.StatusUnauthorized {
		t.Fatalf("an unknown client got %d", code)
	}
	// A valid file that adds a client and changes the documents.
	configFile(t, dir, strings.TrimPrefix(l.issuer, "http://"), extra)
	if err := l.srv.reload(load); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if code, _ := clientCredentials(l.issuer, "report-service", secret); code != 200 {
		t.Fatalf("the added client got %d after reload", code)
	}
	if code, _ := clientCredentials(l.issuer, "ci-service", "ci-service-secret"); code != 200 {
		t.Fatalf("the kept client got %d after reload", code)
	}
	// docs-portal-staging was not in the file: it is gone.
	if _, ok := l.srv.config().Client("docs-portal-staging"); ok {
		t.Fatal("the reloaded configuration still has the removed client")
	}

	// Broken files: refused as a whole, the previous configuration stays.
	for name, body := range map[string]string{
		"syntax":      "clients: [\n",
		"unknown key": strings.Replace(readFile(t, path), "dev: true", "dev: true\nfrobnicate: 1", 1),
		"bad client":  strings.Replace(readFile(t, path), "grant_types: [client_credentials]", "grant_types: [teleport]", 1),
		"issuer":      strings.Replace(readFile(t, path), "issuer: http://", "issuer: http://other.", 1),
	} {
		good := readFile(t, path)
		os.WriteFile(path, []byte(body), 0o600)
		if err := l.srv.reload(load); err == nil {
			t.Errorf("%s: the broken configuration was accepted", name)
		}
		os.WriteFile(path, []byte(good), 0o600)
		if code, _ := clientCredentials(l.issuer, "report-service", secret); code != 200 {
			t.Errorf("%s: the previous clients stopped working (%d)", name, code)
		}
	}
	if !strings.Contains(logs.String(), "configuration reload refused") {
		t.Error("no log line says why the reload was refused")
	}
	samples := scrape(t, l.srv.metrics.handler())
	if got := value(samples, "lanyard_config_reloads_total", map[string]string{"result": "failure"}); got != "4" {
		t.Errorf("reload failures counted %q, want 4", got)
	}
	if len(l.events(store.EventConfigReload)) != 1 {
		t.Error("the successful reload is not in the audit trail")
	}
}

func readFile(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestServeReloadAndDrain runs `lanyard serve` in-process: a reload signal
// applies a new client, a broken file is refused, and stopping the process
// lets a request in flight finish.
func TestServeReloadAndDrain(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	path := configFile(t, dir, addr, "")
	issuer := "http://" + addr
	var out, logs syncBuffer
	reload := make(chan struct{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	e := env{stdin: strings.NewReader(""), stdout: &out, stderr: &logs, getenv: func(string) string { return "" }, reload: reload}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve", "--config", path}, e) }()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "metrics on") {
		select {
		case err := <-done:
			t.Fatalf("serve stopped: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start:\n%s\n%s", out.String(), logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	metricsAddr := regexp.MustCompile(`metrics on (\S+)`).FindStringSubmatch(out.String())[1]
	if code, err := clientCredentials(issuer, "ci-service", "ci-service-secret"); err != nil || code != 200 {
		t.Fatalf("token: %d %v", code, err)
	}
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("metrics listener: %v %v", resp, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `lanyard_tokens_issued_total{client="ci-service",grant="client_credentials"} 1`) {
		t.Fatalf("metrics after one grant:\n%s", body)
	}
	if resp, err := http.Get(issuer + "/metrics"); err == nil && resp.StatusCode == 200 {
		t.Fatal("/metrics is served on the main listener too")
	}

	secret, extra := secondClient(t)
	configFile(t, dir, addr, extra)
	reload <- struct{}{}
	waitFor(t, func() bool { c, _ := clientCredentials(issuer, "report-service", secret); return c == 200 }, "the reloaded client")
	os.WriteFile(path, []byte("clients: [\n"), 0o600)
	reload <- struct{}{}
	waitFor(t, func() bool { return strings.Contains(logs.String(), "configuration reload refused") }, "the refusal in the log")
	if code, _ := clientCredentials(issuer, "report-service", secret); code != 200 {
		t.Fatalf("after a broken reload the client got %d", code)
	}

	// A request in flight when the process is told to stop is answered.
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", issuer+"/token", pr)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("ci-service", "ci-service-secret")
	respc := make(chan *http.Response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("the request in flight failed: %v", err)
			respc <- nil
			return
		}
		respc <- resp
	}()
	io.WriteString(pw, "grant_type=client_credentials")
	time.Sleep(100 * time.Millisecond) // the handler is reading the body
	cancel()
	waitFor(t, func() bool { return strings.Contains(logs.String(), "draining") }, "the shutdown to start")
	select {
	case err := <-done:
		t.Fatalf("serve returned before the request in flight finished: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	io.WriteString(pw, "&scope=docs%3Aread")
	pw.Close()
	if resp := <-respc; resp == nil || resp.StatusCode != 200 {
		t.Fatalf("the request in flight got %v", resp)
	}
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if _, err := clientCredentials(issuer, "ci-service", "ci-service-secret"); err == nil {
		t.Fatal("the server still answers after stopping")
	}
	if strings.Contains(logs.String(), "ci-service-secret") || strings.Contains(logs.String(), "access_token") {
		t.Fatal("a secret reached the log")
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
