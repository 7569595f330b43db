package flows

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/flows/mail"
	"github.com/lanyard-idp/lanyard/flows/mail/mailtest"
	"github.com/lanyard-idp/lanyard/flows/password"
	"github.com/lanyard-idp/lanyard/provider/store"
	"github.com/lanyard-idp/lanyard/provider/store/seal"
	"github.com/lanyard-idp/lanyard/templates"
)

// inviteFixture is the admin service on a real SQLite store in t.TempDir() and a
// real SMTP server, with a clock the test moves.
type inviteFixture struct {
	iv    *Admin
	store *store.Store
	smtp  *mailtest.Server
	logs  *syncBuffer
	now   time.Time
	mu    sync.Mutex
}

// syncBuffer is a log sink that concurrent Invite calls can share.
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

var inviteStart = time.Date(2026, 11, 26, 9, 30, 0, 0, time.UTC)

func newInviteFixture(t *testing.T) *inviteFixture {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "lanyard.db"), store.OpenOptions{AuditKey: seal.NewKey()})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	pages, err := templates.Parse()
	if err != nil {
		t.Fatal(err)
	}
	srv := mailtest.Start(t, mailtest.Options{})
	mailer, err := mail.NewSMTP(config.SMTP{Host: srv.Host, Port: srv.Port, TLS: "none", Timeout: config.Duration(5 * time.Second)}, "Lanyard <no-reply@agency.example>")
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{
		Issuer: "https://id.agency.example",
		Invitations: config.Invitations{
			ValidFor:         config.Duration(30 * 24 * time.Hour),
			AllowedDomains:   []string{"agency.example"},
			RefusedMailboxes: []string{"*@litemail.agency.example", "*.lite@agency.example"},
		},
		Journey: config.Journey{DisplayName: "Lanyard"},
	}
	cfg.ApplyDefaults()
	f := &inviteFixture{store: st, smtp: srv, logs: &syncBuffer{}, now: inviteStart}
	f.iv, err = NewAdmin(Options{
		Config: cfg, Store: st, Mailer: mailer, Pages: pages,
		Now:    f.clock,
		Logger: slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// invite is Invite, or Resend when resend is set, by the CLI.
func (f *inviteFixture) invite(ctx context.Context, email, name string, resend bool) (*Invitation, error) {
	if resend {
		return f.iv.Resend(ctx, store.ActorCLI, email, Names{Full: name})
	}
	return f.iv.Invite(ctx, store.ActorCLI, email, Names{Full: name})
}

func (f *inviteFixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *inviteFixture) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

// counts is the number of users and audit events: what "nothing written" compares.
func (f *inviteFixture) counts(t *testing.T) (users, events int) {
	t.Helper()
	us, err := f.store.ListUsers(t.Context(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	ev, err := f.store.Audit(t.Context(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return len(us), len(ev)
}

func (f *inviteFixture) events(t *testing.T, event store.Event) []store.AuditEvent {
	t.Helper()
	ev, err := f.store.Audit(t.Context(), store.AuditFilter{Event: string(event)})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func verifies(t *testing.T, hash, pw string) bool {
	t.Helper()
	ok, err := password.Verify(hash, pw)
	if err != nil {
		t.Fatalf("stored hash: %v", err)
	}
	return ok
}

func TestInvite(t *testing.T) {
	f := newInviteFixture(t)
	inv, err := f.iv.Invite(t.Context(), store.ActorCLI, "  Alice.Martin@AGENCY.example ", Names{Full: "Alice Martin"})
	if err != nil {
		t.Fatal(err)
	}
	if inv.MailErr != nil {
		t.Fatalf("MailErr: %v", inv.MailErr)
	}
	wantExp := inviteStart.Add(30 * 24 * time.Hour)
	if inv.Username != "alice.martin@agency.example" || inv.Name != "Alice Martin" || inv.Resent || !inv.ExpiresAt.Equal(wantExp) {
		t.Fatalf("invitation %+v", inv)
	}
	if err := (password.Policy{MinLength: 12, MaxLength: 128}).Check(inv.InitialPassword, inv.Username, ""); err != nil {
		t.Fatalf("initial password %q fails the policy: %v", inv.InitialPassword, err)
	}

	u, err := f.store.UserByUsername(t.Context(), "alice.martin@agency.example")
	if err != nil {
		t.Fatal(err)
	}
	if u.State != store.UserInvited || !u.PasswordInitial || !u.InviteExpiresAt.Equal(wantExp) || u.Name != "Alice Martin" || u.Email != u.Username {
		t.Fatalf("stored user %+v", u)
	}
	if len(u.ID) != 32 {
		t.Fatalf("user id %q is not 128 bits of hex", u.ID)
	}
	if !verifies(t, u.PasswordHash, inv.InitialPassword) {
		t.Fatal("the initial password does not verify against the stored hash")
	}

	ev := f.events(t, store.EventInvite)
	if len(ev) != 1 || ev[0].UserID != u.ID || ev[0].Username != u.Username {
		t.Fatalf("audit %+v", ev)
	}
	if bytes.Contains(ev[0].Detail, []byte(inv.InitialPassword)) {
		t.Fatal("the audit detail holds the initial password")
	}

	got := f.smtp.Wait(t, 1)
	if len(got[0].To) != 1 || got[0].To[0] != "alice.martin@agency.example" {
		t.Fatalf("mail sent to %v", got[0].To)
	}
	m, err := mailtest.Parse(got[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "Your Lanyard account: finish setting up" {
		t.Errorf("subject %q", m.Subject)
	}
	if m.To[0].Name != "Alice Martin" {
		t.Errorf("To %v", m.To[0])
	}
	for part, body := range map[string]string{"text": m.Text, "HTML": m.HTML} {
		for _, want := range []string{
			"Alice Martin", "alice.martin@agency.example", inv.InitialPassword,
			"https://id.agency.example/signin", "Saturday 26 December 2026",
			"authenticator app", "passkey", "Privacy policy", "Terms of use", "did not expect this email",
		} {
			if !strings.Contains(body, want) {
				t.Errorf("%s part lacks %q:\n%s", part, want, body)
			}
		}
	}
	if strings.Contains(f.logs.String(), inv.InitialPassword) {
		t.Fatalf("the initial password is in the log:\n%s", f.logs.String())
	}
}

func TestInviteRefused(t *testing.T) {
	f := newInviteFixture(t)
	// An active officer and a pending invitation already exist.
	if _, err := f.iv.Invite(t.Context(), store.ActorCLI, "bob@agency.example", Names{Full: "Bob"}); err != nil {
		t.Fatal(err)
	}
	if err := f.store.CreateUser(t.Context(), &store.User{
		ID: "00000000000000000000000000000001", Username: "carol@agency.example", Email: "carol@agency.example",
		Name: "Carol", State: store.UserActive, CreatedAt: inviteStart, UpdatedAt: inviteStart,
	}); err != nil {
		t.Fatal(err)
	}
	if err := f.store.CreateUser(t.Context(), &store.User{
		ID: "00000000000000000000000000000002", Username: "dave@agency.example", Email: "dave@agency.example",
		Name: "Dave", State: store.UserDisabled, CreatedAt: inviteStart, UpdatedAt: inviteStart,
	}); err != nil {
		t.Fatal(err)
	}
	f.smtp.Wait(t, 1)
	bob, _ := f.store.UserByUsername(t.Context(), "bob@agency.example")

	cases := []struct {
		name, email, fullName string
		resend                bool
		want                  error
		says                  string
	}{
		{"other domain", "alice@gmail.com", "Alice", false, ErrDomainNotAllowed, "gmail.com is not an allowed domain"},
		{"subdomain", "alice@sub.agency.example", "Alice", false, ErrDomainNotAllowed, "sub.agency.example is not an allowed domain"},
		{"look-alike domain", "alice@agency.example.evil.example", "Alice", false, ErrDomainNotAllowed, "not an allowed domain"},
		{"LiteMail", "alice@litemail.agency.example", "Alice", false, ErrRefusedMailbox, "LiteMail-style mailbox"},
		{"LiteMail upper case", "Alice@LiteMail.Agency.Example", "Alice", false, ErrRefusedMailbox, "standard mailbox"},
		{"LiteMail local pattern", "alice.lite@agency.example", "Alice", false, ErrRefusedMailbox, "LiteMail-style mailbox"},
		{"malformed", "alice at agency.example", "Alice", false, ErrBadUsername, ""},
		{"two addresses", "alice@agency.example, eve@agency.example", "Alice", false, ErrBadUsername, ""},
		{"display name form", "Alice <alice@agency.example>", "Alice", false, ErrBadUsername, ""},
		{"empty", "", "Alice", false, ErrBadUsername, ""},
		{"already active", "carol@agency.example", "Carol", false, ErrAlreadyActive, "already has an active account"},
		{"resend active", "carol@agency.example", "", true, ErrAlreadyActive, "active account"},
		{"disabled", "dave@agency.example", "Dave", false, ErrAccountDisabled, "disabled"},
		{"already invited", "bob@agency.example", "Bob", false, ErrAlreadyInvited, "--resend bob@agency.example"},
		{"already invited, case", "BOB@agency.example", "Bob", false, ErrAlreadyInvited, "--resend"},
		{"resend nobody", "erin@agency.example", "", true, ErrNoInvitation, "without --resend"},
		{"Cyrillic a in the local part", "\u0430lice@agency.example", "Alice", false, ErrLookAlike, "U+0430"},
		{"Greek omicron in the local part", "b\u03bfb@agency.example", "Bob", false, ErrLookAlike, "plain letters"},
		{"accented local part", "ren\u00e9@agency.example", "René", false, ErrLookAlike, "U+00E9"},
		{"Cyrillic a in the domain", "alice@\u0430gency.example", "Alice", false, ErrLookAlike, "mixes alphabets"},
		{"domain in its xn-- form", "alice@xn--bcher-kva.example", "Alice", false, ErrLookAlike, "b\u00fccher.example"},
		{"name with newline", "erin@agency.example", "Erin\r\nBcc: eve@evil.example", false, ErrBadName, ""},
		{"name with a right-to-left override", "erin@agency.example", "Erin \u202egnp.exe", false, ErrBadName, ""},
		{"name with a directional isolate", "erin@agency.example", "\u2067Erin\u2069", false, ErrBadName, ""},
		{"name too long", "erin@agency.example", strings.Repeat("E", 201), false, ErrBadName, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			users, events := f.counts(t)
			inv, err := f.invite(t.Context(), c.email, c.fullName, c.resend)
			if !errors.Is(err, c.want) || inv != nil {
				t.Fatalf("Invite(%q) = %v, %v; want %v", c.email, inv, err, c.want)
			}
			if !strings.Contains(err.Error(), c.says) {
				t.Errorf("error %q does not say %q", err, c.says)
			}
			if u2, e2 := f.counts(t); u2 != users || e2 != events {
				t.Fatalf("users %d→%d, audit events %d→%d: a refused invitation wrote something", users, u2, events, e2)
			}
			if n := len(f.smtp.Messages()); n != 1 {
				t.Fatalf("%d mails sent; a refused invitation sent one", n)
			}
		})
	}
	// Bob's invitation is untouched by the refused attempts.
	bob2, _ := f.store.UserByUsername(t.Context(), "bob@agency.example")
	if bob2.PasswordHash != bob.PasswordHash || !bob2.InviteExpiresAt.Equal(bob.InviteExpiresAt) {
		t.Fatal("a refused invitation changed an existing one")
	}
}

// TestInviteInternationalDomain: an internationalised domain has one
// spelling, its Unicode form, whichever form the operator allowed it in;
// a second spelling of the same address makes no second account.
func TestInviteInternationalDomain(t *testing.T) {
	f := newInviteFixture(t)
	f.iv.cfg.Invitations.AllowedDomains = []string{"agency.example", "xn--bcher-kva.example", "\u043f\u0440\u0438\u043c\u0435\u0440.example"}
	for _, email := range []string{"alice@b\u00fccher.example", "ivan@\u043f\u0440\u0438\u043c\u0435\u0440.example"} {
		if _, err := f.iv.Invite(t.Context(), store.ActorCLI, email, Names{Full: "Officer"}); err != nil {
			t.Fatalf("Invite(%q): %v", email, err)
		}
	}
	for _, email := range []string{"Alice@B\u00dcCHER.example", "alice@bu\u0308cher.example"} {
		if _, err := f.iv.Invite(t.Context(), store.ActorCLI, email, Names{Full: "Officer"}); !errors.Is(err, ErrAlreadyInvited) {
			t.Errorf("Invite(%q) = %v, want the existing invitation", email, err)
		}
	}
	if _, err := f.iv.Invite(t.Context(), store.ActorCLI, "alice@xn--bcher-kva.example", Names{Full: "Officer"}); !errors.Is(err, ErrLookAlike) {
		t.Errorf("the xn-- spelling: %v", err)
	}
	if users, _ := f.counts(t); users != 2 {
		t.Fatalf("%d accounts, want 2", users)
	}
}

func TestInviteNoAllowedDomains(t *testing.T) {
	f := newInviteFixture(t)
	f.iv.cfg.Invitations.AllowedDomains = nil
	_, err := f.iv.Invite(t.Context(), store.ActorCLI, "alice@agency.example", Names{Full: "Alice"})
	if !errors.Is(err, ErrDomainNotAllowed) || !strings.Contains(err.Error(), "invitations.allowed_domains") {
		t.Fatalf("no allowed domains: %v", err)
	}
}

func TestInviteBadConfig(t *testing.T) {
	f := newInviteFixture(t)
	for _, issuer := range []string{"", "id.agency.example", "ftp://id.agency.example", "https://id.agency.example/?x=1"} {
		f.iv.cfg.Issuer = issuer
		if _, err := f.iv.Invite(t.Context(), store.ActorCLI, "alice@agency.example", Names{Full: "Alice"}); err == nil || !strings.Contains(err.Error(), "issuer") {
			t.Errorf("issuer %q: %v", issuer, err)
		}
	}
	f.iv.cfg.Issuer = "https://id.agency.example"
	f.iv.cfg.Invitations.RefusedMailboxes = []string{"[unclosed@*"}
	if _, err := f.iv.Invite(t.Context(), store.ActorCLI, "alice@agency.example", Names{Full: "Alice"}); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Errorf("malformed pattern: %v", err)
	}
	if u, e := f.counts(t); u != 0 || e != 0 {
		t.Fatalf("%d users, %d events after configuration errors", u, e)
	}
}

func TestInviteLinkFromIssuerOnly(t *testing.T) {
	f := newInviteFixture(t)
	f.iv.cfg.Issuer = "https://id.agency.example/lanyard/"
	f.iv.cfg.Journey = config.Journey{DisplayName: "TechPass", Environment: "Staging"}
	if _, err := f.iv.Invite(t.Context(), store.ActorCLI, "alice@agency.example", Names{Full: "Alice"}); err != nil {
		t.Fatal(err)
	}
	m, err := mailtest.Parse(f.smtp.Wait(t, 1)[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "Your TechPass account: finish setting up" {
		t.Errorf("subject %q", m.Subject)
	}
	if !strings.Contains(m.Text, "https://id.agency.example/lanyard/signin") || !strings.Contains(m.HTML, `href="https://id.agency.example/lanyard/signin"`) {
		t.Errorf("link not built from the issuer:\n%s\n%s", m.Text, m.HTML)
	}
	if !strings.Contains(m.Text, "Staging") {
		t.Errorf("environment not named:\n%s", m.Text)
	}
}

func TestInviteHTMLEscapesName(t *testing.T) {
	f := newInviteFixture(t)
	if _, err := f.iv.Invite(t.Context(), store.ActorCLI, "alice@agency.example", Names{Full: `Alice <script>alert(1)</script> & "Co"`}); err != nil {
		t.Fatal(err)
	}
	m, err := mailtest.Parse(f.smtp.Wait(t, 1)[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(m.HTML, "<script>") || !strings.Contains(m.HTML, "&lt;script&gt;") {
		t.Fatalf("the name is not escaped in the HTML part:\n%s", m.HTML)
	}
}

func TestInviteResend(t *testing.T) {
	f := newInviteFixture(t)
	first, err := f.iv.Invite(t.Context(), store.ActorCLI, "alice@agency.example", Names{Full: "Alice Martin"})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := f.store.UserByUsername(t.Context(), "alice@agency.example")

	f.advance(10 * 24 * time.Hour)
	second, err := f.iv.Resend(t.Context(), store.ActorCLI, "Alice@agency.example", Names{Full: ""})
	if err != nil {
		t.Fatal(err)
	}
	if !second.Resent || second.MailErr != nil || second.Name != "Alice Martin" {
		t.Fatalf("resend %+v", second)
	}
	if second.InitialPassword == first.InitialPassword {
		t.Fatal("resend kept the initial password")
	}
	wantExp := inviteStart.Add(40 * 24 * time.Hour)
	if !second.ExpiresAt.Equal(wantExp) {
		t.Fatalf("new expiry %v; want %v", second.ExpiresAt, wantExp)
	}
	u, _ := f.store.UserByUsername(t.Context(), "alice@agency.example")
	if u.ID != before.ID || u.State != store.UserInvited || !u.PasswordInitial || !u.InviteExpiresAt.Equal(wantExp) || u.Name != "Alice Martin" {
		t.Fatalf("user after resend %+v", u)
	}
	if verifies(t, u.PasswordHash, first.InitialPassword) {
		t.Fatal("the old initial password still verifies after a resend")
	}
	if !verifies(t, u.PasswordHash, second.InitialPassword) {
		t.Fatal("the new initial password does not verify")
	}
	if ev := f.events(t, store.EventInviteResend); len(ev) != 1 || ev[0].UserID != u.ID {
		t.Fatalf("audit invite.resend: %+v", ev)
	}
	got := f.smtp.Wait(t, 2)
	m, err := mailtest.Parse(got[1].Data)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Text, second.InitialPassword) || strings.Contains(m.Text, first.InitialPassword) || !strings.Contains(m.Text, "Tuesday 5 January 2027") {
		t.Fatalf("resent mail:\n%s", m.Text)
	}

	// A resend may rename the officer.
	if _, err := f.iv.Resend(t.Context(), store.ActorCLI, "alice@agency.example", Names{Full: "Alice Martin-Lee"}); err != nil {
		t.Fatal(err)
	}
	if u, _ := f.store.UserByUsername(t.Context(), "alice@agency.example"); u.Name != "Alice Martin-Lee" {
		t.Fatalf("name after resend with --name: %q", u.Name)
	}
}

func TestInviteExpiredCanBeResent(t *testing.T) {
	f := newInviteFixture(t)
	if _, err := f.iv.Invite(t.Context(), store.ActorCLI, "alice@agency.example", Names{Full: "Alice"}); err != nil {
		t.Fatal(err)
	}
	f.advance(31 * 24 * time.Hour)
	_, err := f.iv.Invite(t.Context(), store.ActorCLI, "alice@agency.example", Names{Full: "Alice"})
	if !errors.Is(err, ErrAlreadyInvited) || !strings.Contains(err.Error(), "expired on Saturday 26 December 2026") {
		t.Fatalf("re-invite after expiry without --resend: %v", err)
	}
	inv, err := f.iv.Resend(t.Context(), store.ActorCLI, "alice@agency.example", Names{Full: ""})
	if err != nil || !inv.ExpiresAt.After(f.clock()) {
		t.Fatalf("resend after expiry: %+v, %v", inv, err)
	}
}

func TestInviteMailDown(t *testing.T) {
	f := newInviteFixture(t)
	f.smtp.Close()
	inv, err := f.iv.Invite(t.Context(), store.ActorCLI, "alice@agency.example", Names{Full: "Alice"})
	if err != nil {
		t.Fatalf("an SMTP failure must not fail the invitation: %v", err)
	}
	if inv.MailErr == nil || !strings.Contains(inv.MailErr.Error(), f.smtp.Addr()) {
		t.Fatalf("MailErr %v; want the relay's failure", inv.MailErr)
	}
	u, err := f.store.UserByUsername(t.Context(), "alice@agency.example")
	if err != nil || u.State != store.UserInvited {
		t.Fatalf("the invitation is not recorded: %+v, %v", u, err)
	}
	if !verifies(t, u.PasswordHash, inv.InitialPassword) {
		t.Fatal("the initial password does not verify")
	}
	if ev := f.events(t, store.EventInvite); len(ev) != 1 {
		t.Fatalf("invite events: %+v", ev)
	}
	ev := f.events(t, store.EventInviteMailFailed)
	if len(ev) != 1 || ev[0].UserID != u.ID || !bytes.Contains(ev[0].Detail, []byte("error")) {
		t.Fatalf("invite.mail_failed events: %+v", ev)
	}
	if strings.Contains(f.logs.String(), inv.InitialPassword) || bytes.Contains(ev[0].Detail, []byte(inv.InitialPassword)) {
		t.Fatal("the initial password leaked into the log or the audit")
	}
	if !strings.Contains(f.logs.String(), "onboarding email not sent") {
		t.Fatalf("no log line for the failure:\n%s", f.logs.String())
	}
}

func TestInviteMailRefused(t *testing.T) {
	f := newInviteFixture(t)
	srv := mailtest.Start(t, mailtest.Options{RefuseRcpt: func(string) error { return mailtest.Refuse550 }})
	m, err := mail.NewSMTP(config.SMTP{Host: srv.Host, Port: srv.Port, TLS: "none"}, "Lanyard <no-reply@agency.example>")
	if err != nil {
		t.Fatal(err)
	}
	f.iv.mailer = m
	inv, err := f.iv.Invite(t.Context(), store.ActorCLI, "alice@agency.example", Names{Full: "Alice"})
	if err != nil || inv.MailErr == nil || !strings.Contains(inv.MailErr.Error(), "550") {
		t.Fatalf("550 on RCPT: %+v, %v", inv, err)
	}
	if ev := f.events(t, store.EventInviteMailFailed); len(ev) != 1 {
		t.Fatalf("invite.mail_failed events: %+v", ev)
	}
}

func TestInviteConcurrent(t *testing.T) {
	f := newInviteFixture(t)
	const n = 20
	var wg sync.WaitGroup
	results := make([]error, n)
	invs := make([]*Invitation, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			invs[i], results[i] = f.iv.Invite(context.Background(), store.ActorCLI, "alice@agency.example", Names{Full: "Alice"})
		})
	}
	close(start)
	wg.Wait()
	var ok []*Invitation
	for i, err := range results {
		switch {
		case err == nil:
			ok = append(ok, invs[i])
		case !errors.Is(err, ErrAlreadyInvited):
			t.Errorf("racing invite %d: %v; want success or ErrAlreadyInvited", i, err)
		}
	}
	if len(ok) != 1 {
		t.Fatalf("%d of %d racing invitations succeeded; want exactly 1", len(ok), n)
	}
	if users, _ := f.counts(t); users != 1 {
		t.Fatalf("%d users; want 1", users)
	}
	if ev := f.events(t, store.EventInvite); len(ev) != 1 {
		t.Fatalf("%d invite events; want 1", len(ev))
	}
	u, _ := f.store.UserByUsername(t.Context(), "alice@agency.example")
	if !verifies(t, u.PasswordHash, ok[0].InitialPassword) {
		t.Fatal("the stored password is not the winner's")
	}
	if got := f.smtp.Wait(t, 1); len(got) != 1 {
		t.Fatalf("%d mails; want 1", len(got))
	}
	time.Sleep(100 * time.Millisecond) // a late second mail would show up by now
	if n := len(f.smtp.Messages()); n != 1 {
		t.Fatalf("%d mails; want 1", n)
	}
}

func TestInviteConcurrentResend(t *testing.T) {
	f := newInviteFixture(t)
	if _, err := f.iv.Invite(t.Context(), store.ActorCLI, "alice@agency.example", Names{Full: "Alice"}); err != nil {
		t.Fatal(err)
	}
	const n = 20
	var wg sync.WaitGroup
	invs := make([]*Invitation, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			invs[i], errs[i] = f.iv.Resend(context.Background(), store.ActorCLI, "alice@agency.example", Names{Full: ""})
		})
	}
	close(start)
	wg.Wait()
	// Resends are serialized by the transaction; whatever the interleaving,
	// the stored password is the one of the last successful resend's email,
	// and every success was audited.
	u, _ := f.store.UserByUsername(t.Context(), "alice@agency.example")
	succeeded, working := 0, 0
	for i := range n {
		if errs[i] != nil {
			if !errors.Is(errs[i], ErrAlreadyInvited) {
				t.Errorf("racing resend %d: %v", i, errs[i])
			}
			continue
		}
		succeeded++
		if verifies(t, u.PasswordHash, invs[i].InitialPassword) {
			working++
		}
	}
	if succeeded == 0 || working != 1 {
		t.Fatalf("%d resends succeeded, %d of their passwords work; want ≥1 and exactly 1", succeeded, working)
	}
	if ev := f.events(t, store.EventInviteResend); len(ev) != succeeded {
		t.Fatalf("%d invite.resend events for %d successful resends", len(ev), succeeded)
	}
}

// activate turns an invited user into an active one with a session and a
// refresh token, as a finished first sign-in leaves them.
func (f *inviteFixture) activate(t *testing.T, username string) (*store.User, string) {
	t.Helper()
	ctx := t.Context()
	u, err := f.store.UserByUsername(ctx, username)
	if err != nil {
		t.Fatal(err)
	}
	u.State, u.PasswordInitial, u.InviteExpiresAt, u.LastSignInAt = store.UserActive, false, time.Time{}, f.clock()
	if err := f.store.UpdateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	sess := &store.Session{ID: "session-" + u.ID, UserID: u.ID, State: "authenticated", ExpiresAt: f.clock().Add(time.Hour)}
	if err := f.store.CreateSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	sig := "refresh-" + u.ID
	if err := f.store.CreateOAuth(ctx, &store.OAuthRow{Kind: store.KindRefresh, Signature: sig, RequestID: "req-" + u.ID,
		ClientID: "docs-portal-staging", Subject: u.ID, SessionID: sess.Ref, Active: true,
		RequestedAt: f.clock(), ExpiresAt: f.clock().Add(24 * time.Hour), Data: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	return u, sig
}

func TestInviteList(t *testing.T) {
	f := newInviteFixture(t)
	for _, a := range []string{"pending@agency.example", "expired@agency.example", "accepted@agency.example", "disabled@agency.example"} {
		if _, err := f.iv.Invite(t.Context(), store.ActorCLI, a, Names{Full: "Officer"}); err != nil {
			t.Fatal(err)
		}
		if a == "expired@agency.example" {
			f.advance(20 * 24 * time.Hour)
		}
	}
	f.advance(11 * 24 * time.Hour) // the first two invitations are now older than 30 days
	if _, err := f.iv.Resend(t.Context(), store.ActorCLI, "pending@agency.example", Names{Full: ""}); err != nil {
		t.Fatal(err)
	}
	f.activate(t, "accepted@agency.example")
	u, _ := f.activate(t, "disabled@agency.example")
	u.State = store.UserDisabled
	if err := f.store.UpdateUser(t.Context(), u); err != nil {
		t.Fatal(err)
	}

	list, err := f.iv.Invitations(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, s := range list {
		got[s.Username] = s.Status
		if s.Status == InviteAccepted && !s.ExpiresAt.IsZero() {
			t.Errorf("%s: an accepted invitation shows an expiry", s.Username)
		}
	}
	want := map[string]string{
		"pending@agency.example": InvitePending, "expired@agency.example": InviteExpired,
		"accepted@agency.example": InviteAccepted, "disabled@agency.example": InviteDisabled,
	}
	if len(got) != len(want) {
		t.Fatalf("list %+v", list)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: status %q, want %q", k, got[k], v)
		}
	}
}

func TestInviteRevoke(t *testing.T) {
	f := newInviteFixture(t)
	inv, err := f.iv.Invite(t.Context(), store.ActorCLI, "alice@agency.example", Names{Full: "Alice"})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := f.store.UserByUsername(t.Context(), "alice@agency.example")
	got, err := f.iv.Revoke(t.Context(), store.ActorCLI, " Alice@Agency.example")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != u.ID {
		t.Fatalf("revoked %+v", got)
	}
	if _, err := f.store.UserByUsername(t.Context(), "alice@agency.example"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the revoked account still exists: %v", err)
	}
	ev := f.events(t, store.EventInviteRevoke)
	if len(ev) != 1 || ev[0].UserID != u.ID || !bytes.Contains(ev[0].Detail, []byte(`"by":"cli"`)) {
		t.Fatalf("audit invite.revoke: %+v", ev)
	}
	if bytes.Contains(ev[0].Detail, []byte(inv.InitialPassword)) {
		t.Fatal("the initial password is in the audit")
	}
	// The address can be invited afresh.
	if _, err := f.iv.Invite(t.Context(), store.ActorCLI, "alice@agency.example", Names{Full: "Alice"}); err != nil {
		t.Fatalf("invite after revoke: %v", err)
	}

	// Refused: an accepted account, no account, a malformed address. Nothing changes.
	f.activate(t, "alice@agency.example")
	users, events := f.counts(t)
	for _, tc := range []struct {
		email string
		want  error
	}{
		{"alice@agency.example", ErrNotInvited},
		{"nobody@agency.example", ErrNoInvitation},
		{"not an address", ErrBadUsername},
	} {
		if _, err := f.iv.Revoke(t.Context(), store.ActorCLI, tc.email); !errors.Is(err, tc.want) {
			t.Errorf("revoke %q: %v, want %v", tc.email, err, tc.want)
		}
	}
	if u2, e2 := f.counts(t); u2 != users || e2 != events {
		t.Fatalf("a refused revoke changed something: users %d→%d, events %d→%d", users, u2, events, e2)
	}
}

func TestInviteRevokeConcurrent(t *testing.T) {
	f := newInviteFixture(t)
	if _, err := f.iv.Invite(t.Context(), store.ActorCLI, "alice@agency.example", Names{Full: "Alice"}); err != nil {
		t.Fatal(err)
	}
	errs := make([]error, 20)
	atOnce(len(errs), func(i int) { _, errs[i] = f.iv.Revoke(t.Context(), store.ActorCLI, "alice@agency.example") })
	if ok := winners(t, errs, ErrNoInvitation); ok != 1 {
		t.Fatalf("%d revokes succeeded, want exactly 1", ok)
	}
	if ev := f.events(t, store.EventInviteRevoke); len(ev) != 1 {
		t.Fatalf("%d invite.revoke events, want 1", len(ev))
	}
}

func TestResetPassword(t *testing.T) {
	f := newInviteFixture(t)
	if _, err := f.iv.Invite(t.Context(), store.ActorCLI, "alice@agency.example", Names{Full: "Alice Martin"}); err != nil {
		t.Fatal(err)
	}
	u, refresh := f.activate(t, "alice@agency.example")
	oldHash := u.PasswordHash
	f.smtp.Wait(t, 1)

	inv, err := f.iv.ResetPassword(t.Context(), store.ActorCLI, "alice@agency.example")
	if err != nil || inv.MailErr != nil {
		t.Fatalf("reset: %+v, %v", inv, err)
	}
	got, _ := f.store.UserByID(t.Context(), u.ID)
	if got.State != store.UserActive || !got.PasswordInitial || got.PasswordHash == oldHash || !verifies(t, got.PasswordHash, inv.InitialPassword) {
		t.Fatalf("user after reset %+v", got)
	}
	if want := f.clock().Add(30 * 24 * time.Hour); !got.InviteExpiresAt.Equal(want) || !inv.ExpiresAt.Equal(want) {
		t.Fatalf("expiry %v / %v, want %v", got.InviteExpiresAt, inv.ExpiresAt, want)
	}
	if ss, err := f.store.UserSessions(t.Context(), u.ID, f.clock()); err != nil || len(ss) != 0 {
		t.Fatalf("sessions after reset: %d, %v", len(ss), err)
	}
	if row, err := f.store.GetOAuth(t.Context(), store.KindRefresh, refresh); err != nil || row.Active {
		t.Fatalf("refresh token after reset: %+v, %v", row, err)
	}
	ev := f.events(t, store.EventUserResetPassword)
	if len(ev) != 1 || ev[0].UserID != u.ID || !bytes.Contains(ev[0].Detail, []byte(`"by":"cli"`)) || bytes.Contains(ev[0].Detail, []byte(inv.InitialPassword)) {
		t.Fatalf("audit: %+v", ev)
	}
	msgs := f.smtp.Wait(t, 2)
	m, err := mailtest.Parse(msgs[1].Data)
	if err != nil {
		t.Fatal(err)
	}
	if msgs[1].To[0] != "alice@agency.example" || !strings.Contains(m.Text, inv.InitialPassword) || !strings.Contains(m.Text, "https://id.agency.example/signin") || !strings.Contains(m.Subject, "password") {
		t.Fatalf("reset mail to %v, subject %q:\n%s", msgs[1].To, m.Subject, m.Text)
	}
	if strings.Contains(f.logs.String(), inv.InitialPassword) {
		t.Fatal("the new password is in the log")
	}

	// Refused: invited, disabled, unknown, malformed. Nothing changes.
	if _, err := f.iv.Invite(t.Context(), store.ActorCLI, "bob@agency.example", Names{Full: "Bob"}); err != nil {
		t.Fatal(err)
	}
	got.State = store.UserDisabled
	if err := f.store.UpdateUser(t.Context(), got); err != nil {
		t.Fatal(err)
	}
	users, events := f.counts(t)
	for _, tc := range []struct {
		email string
		want  error
	}{
		{"bob@agency.example", ErrNotActive},
		{"alice@agency.example", ErrAccountDisabled},
		{"carol@agency.example", ErrNoAccount},
		{"bob", ErrBadUsername},
	} {
		if _, err := f.iv.ResetPassword(t.Context(), store.ActorCLI, tc.email); !errors.Is(err, tc.want) {
			t.Errorf("reset %q: %v, want %v", tc.email, err, tc.want)
		}
	}
	if u2, e2 := f.counts(t); u2 != users || e2 != events {
		t.Fatalf("a refused reset changed something")
	}
	if after, _ := f.store.UserByID(t.Context(), u.ID); after.PasswordHash != got.PasswordHash {
		t.Fatal("a refused reset changed the password")
	}
}

func TestResetPasswordMailDown(t *testing.T) {
	f := newInviteFixture(t)
	if _, err := f.iv.Invite(t.Context(), store.ActorCLI, "alice@agency.example", Names{Full: "Alice"}); err != nil {
		t.Fatal(err)
	}
	f.activate(t, "alice@agency.example")
	f.smtp.Close()
	inv, err := f.iv.ResetPassword(t.Context(), store.ActorCLI, "alice@agency.example")
	if err != nil || inv.MailErr == nil {
		t.Fatalf("reset with the relay down: %+v, %v", inv, err)
	}
	if ev := f.events(t, store.EventResetMailFailed); len(ev) != 1 {
		t.Fatalf("mail_failed events: %+v", ev)
	}
}

// atOnce runs fn(0) … fn(n-1) at once, released together, and waits for all.
func atOnce(n int, fn func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			fn(i)
		})
	}
	close(start)
	wg.Wait()
}

// winners counts the racers that succeeded; every other one must have been
// refused with loser.
func winners(t *testing.T, errs []error, loser error) int {
	t.Helper()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, loser):
			t.Errorf("a racer failed otherwise than %v: %v", loser, err)
		}
	}
	return ok
}

// Given and family names (OIDC given_name, family_name): given, or derived
// from a two-word full name, and never guessed from a longer one.
func TestInviteNames(t *testing.T) {
	f := newInviteFixture(t)
	cases := []struct {
		email          string
		names          Names
		full, giv, fam string
	}{
		{"a@agency.example", Names{Full: "Alice Martin"}, "Alice Martin", "Alice", "Martin"},
		{"b@agency.example", Names{Full: "Maria de la Cruz"}, "Maria de la Cruz", "", ""},
		{"c@agency.example", Names{Full: "Maria de la Cruz", Given: "Maria", Family: "de la Cruz"}, "Maria de la Cruz", "Maria", "de la Cruz"},
		{"d@agency.example", Names{Given: " Jean-Luc ", Family: "Picard"}, "Jean-Luc Picard", "Jean-Luc", "Picard"},
		{"e@agency.example", Names{Full: "Cher"}, "Cher", "", ""},
	}
	for _, c := range cases {
		inv, err := f.iv.Invite(t.Context(), store.ActorCLI, c.email, c.names)
		if err != nil {
			t.Fatalf("%+v: %v", c.names, err)
		}
		u, err := f.store.UserByUsername(t.Context(), c.email)
		if err != nil {
			t.Fatal(err)
		}
		if u.Name != c.full || u.GivenName != c.giv || u.FamilyName != c.fam || inv.GivenName != c.giv || inv.FamilyName != c.fam {
			t.Errorf("%+v: stored %q/%q/%q, want %q/%q/%q", c.names, u.Name, u.GivenName, u.FamilyName, c.full, c.giv, c.fam)
		}
	}
	if _, err := f.iv.Invite(t.Context(), store.ActorCLI, "x@agency.example", Names{Full: "X", Given: "a\nb"}); !errors.Is(err, ErrBadName) {
		t.Errorf("a given name with a line break: %v", err)
	}
}
