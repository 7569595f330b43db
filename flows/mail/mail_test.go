package mail

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/flows/mail/mailtest"
)

const from = "Lanyard <no-reply@agency.example>"

var msg = Message{
	To:      "Alex Officer <alex@agency.example>",
	Subject: "Your Lanyard account: finish setting up — ✓",
	Text:    "Hello Alex,\n\nYour initial password: k7q2m-x9d4r\n\nA long line " + strings.Repeat("word ", 40) + "\n",
	HTML:    "<p>Hello <strong>Alex</strong>,</p><p>Your initial password: <code>k7q2m-x9d4r</code></p>",
}

// checkMessage parses what the server received and checks every header and
// both parts.
func checkMessage(t *testing.T, r mailtest.Received) {
	t.Helper()
	if r.From != "no-reply@agency.example" || len(r.To) != 1 || r.To[0] != "alex@agency.example" {
		t.Fatalf("envelope from %q to %q", r.From, r.To)
	}
	p, err := mailtest.Parse(r.Data)
	if err != nil {
		t.Fatalf("%v\n%s", err, r.Data)
	}
	if p.Type != "multipart/alternative" {
		t.Errorf("Content-Type %q; want multipart/alternative", p.Type)
	}
	if p.Subject != msg.Subject {
		t.Errorf("Subject %q; want %q", p.Subject, msg.Subject)
	}
	if p.From.Address != "no-reply@agency.example" || p.From.Name != "Lanyard" {
		t.Errorf("From %v", p.From)
	}
	if len(p.To) != 1 || p.To[0].Address != "alex@agency.example" {
		t.Errorf("To %v", p.To)
	}
	if strings.ReplaceAll(p.Text, "\r\n", "\n") != msg.Text {
		t.Errorf("text part %q; want %q", p.Text, msg.Text)
	}
	if strings.TrimSpace(p.HTML) != msg.HTML {
		t.Errorf("HTML part %q; want %q", p.HTML, msg.HTML)
	}
	for _, h := range []string{"Date", "Message-Id", "Mime-Version"} {
		if p.Header.Get(h) == "" {
			t.Errorf("header %s missing", h)
		}
	}
	if d, err := p.Header.Date(); err != nil || time.Since(d) > time.Hour {
		t.Errorf("Date %v, %v", d, err)
	}
}

func TestSMTPNoTLS(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	m, err := NewSMTP(config.SMTP{Host: srv.Host, Port: srv.Port, TLS: "none", Timeout: config.Duration(5 * time.Second)}, from)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Send(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	got := srv.Wait(t, 1)
	if got[0].TLS || got[0].AuthUser != "" {
		t.Errorf("TLS %v, auth %q; want neither", got[0].TLS, got[0].AuthUser)
	}
	checkMessage(t, got[0])
}

func TestSMTPAuthOnLoopback(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{Username: "relay-user", Password: "relay-pass"})
	cfg := config.SMTP{Host: srv.Host, Port: srv.Port, TLS: "none", Username: "relay-user", Password: "relay-pass"}
	m, err := NewSMTP(cfg, from)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Send(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	got := srv.Wait(t, 1)
	if got[0].AuthUser != "relay-user" {
		t.Fatalf("authenticated as %q", got[0].AuthUser)
	}
	checkMessage(t, got[0])

	cfg.Password = "wrong"
	m, _ = NewSMTP(cfg, from)
	err = m.Send(t.Context(), msg)
	if err == nil || !strings.Contains(err.Error(), "535") {
		t.Fatalf("wrong relay password: %v; want an error naming the 535 refusal", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Fatalf("the error reveals the password: %v", err)
	}
	if n := len(srv.Messages()); n != 1 {
		t.Fatalf("%d messages after a failed AUTH; want 1", n)
	}
}

func TestSMTPStartTLS(t *testing.T) {
	serverTLS, clientTLS := mailtest.SelfSigned(t)
	srv := mailtest.Start(t, mailtest.Options{TLS: serverTLS, Username: "relay-user", Password: "relay-pass"})
	cfg := config.SMTP{Host: srv.Host, Port: srv.Port, TLS: "starttls", Username: "relay-user", Password: "relay-pass"}
	m, err := NewSMTP(cfg, from, WithTLSConfig(clientTLS))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Send(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	got := srv.Wait(t, 1)
	if !got[0].TLS || got[0].AuthUser != "relay-user" {
		t.Fatalf("TLS %v, auth %q; want STARTTLS then AUTH", got[0].TLS, got[0].AuthUser)
	}
	checkMessage(t, got[0])

	// Without trusting the certificate, mandatory STARTTLS refuses to go on.
	m, _ = NewSMTP(cfg, from)
	if err := m.Send(t.Context(), msg); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted certificate: %v; want a certificate error", err)
	}
	if n := len(srv.Messages()); n != 1 {
		t.Fatalf("%d messages; the untrusted send must not deliver", n)
	}
}

func TestSMTPStartTLSMandatory(t *testing.T) {
	// A relay that does not offer STARTTLS (or an attacker who strips it)
	// gets nothing.
	srv := mailtest.Start(t, mailtest.Options{})
	m, err := NewSMTP(config.SMTP{Host: srv.Host, Port: srv.Port}, from) // default mode: starttls
	if err != nil {
		t.Fatal(err)
	}
	err = m.Send(t.Context(), msg)
	if err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Fatalf("relay without STARTTLS: %v; want an error naming STARTTLS", err)
	}
	if n := len(srv.Messages()); n != 0 {
		t.Fatalf("%d messages sent in clear", n)
	}
}

func TestSMTPImplicitTLS(t *testing.T) {
	serverTLS, clientTLS := mailtest.SelfSigned(t)
	srv := mailtest.Start(t, mailtest.Options{TLS: serverTLS, Implicit: true})
	m, err := NewSMTP(config.SMTP{Host: srv.Host, Port: srv.Port, TLS: "tls"}, from, WithTLSConfig(clientTLS))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Send(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	got := srv.Wait(t, 1)
	if !got[0].TLS {
		t.Fatal("implicit TLS: message not received over TLS")
	}
	checkMessage(t, got[0])
}

func TestSMTPRefusedRecipient(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{RefuseRcpt: func(string) error { return mailtest.Refuse550 }})
	m, err := NewSMTP(config.SMTP{Host: srv.Host, Port: srv.Port, TLS: "none"}, from)
	if err != nil {
		t.Fatal(err)
	}
	err = m.Send(t.Context(), msg)
	if err == nil {
		t.Fatal("a 550 on RCPT was reported as sent")
	}
	for _, want := range []string{"550", "alex@agency.example", srv.Addr()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if n := len(srv.Messages()); n != 0 {
		t.Fatalf("%d messages received", n)
	}
}

func TestSMTPDown(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	srv.Close()
	m, err := NewSMTP(config.SMTP{Host: srv.Host, Port: srv.Port, TLS: "none", Timeout: config.Duration(2 * time.Second)}, from)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := m.Send(t.Context(), msg); err == nil || !strings.Contains(err.Error(), srv.Addr()) {
		t.Fatalf("relay down: %v; want an error naming %s", err, srv.Addr())
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %v; the timeout is 2s", d)
	}
}

func TestSMTPCanceled(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	m, _ := NewSMTP(config.SMTP{Host: srv.Host, Port: srv.Port, TLS: "none"}, from)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := m.Send(ctx, msg); err == nil {
		t.Fatal("sent with a canceled context")
	}
}

func TestNewSMTPConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		c    config.SMTP
		from string
		want string
	}{
		{"no host", config.SMTP{}, from, "host is empty"},
		{"bad tls", config.SMTP{Host: "smtp.agency.example", TLS: "ssl"}, from, `tls is "ssl"`},
		{"bad port", config.SMTP{Host: "smtp.agency.example", Port: 70000}, from, "port 70000"},
		{"bad from", config.SMTP{Host: "smtp.agency.example"}, "not an address", "mail.from"},
		{"password in clear", config.SMTP{Host: "smtp.agency.example", TLS: "none", Username: "u", Password: "p"}, from, "in clear"},
		{"negative timeout", config.SMTP{Host: "smtp.agency.example", Timeout: -1}, from, "negative"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewSMTP(c.c, c.from)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("NewSMTP: %v; want an error containing %q", err, c.want)
			}
		})
	}
	// Every problem is reported at once.
	_, err := NewSMTP(config.SMTP{TLS: "ssl"}, "x")
	if err == nil || !strings.Contains(err.Error(), "host") || !strings.Contains(err.Error(), "tls") || !strings.Contains(err.Error(), "mail.from") {
		t.Fatalf("NewSMTP: %v; want every problem", err)
	}
	// Defaults: starttls on 587, implicit TLS on 465.
	m, err := NewSMTP(config.SMTP{Host: "smtp.agency.example"}, from)
	if err != nil {
		t.Fatal(err)
	}
	if s := m.(*smtpMailer); s.port != 587 || s.mode != TLSStartTLS || s.timeout != defaultTimeout {
		t.Fatalf("defaults: %+v", s)
	}
	m, _ = NewSMTP(config.SMTP{Host: "smtp.agency.example", TLS: "TLS"}, from)
	if s := m.(*smtpMailer); s.port != 465 || s.mode != TLSImplicit {
		t.Fatalf("implicit defaults: %+v", s)
	}
}

func TestHeaderInjection(t *testing.T) {
	dir := t.TempDir()
	o := NewOutbox(dir, from, nil)
	for _, m := range []Message{
		{To: "alex@agency.example\r\nBcc: eve@evil.example", Subject: "s", Text: "t"},
		{To: "alex@agency.example", Subject: "hi\r\nBcc: eve@evil.example", Text: "t"},
		{To: "not an address", Subject: "s", Text: "t"},
		{To: "alex@agency.example", Subject: "  ", Text: "t"},
	} {
		if err := o.Send(t.Context(), m); err == nil {
			t.Errorf("Send(%q, %q) succeeded", m.To, m.Subject)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("%d files written for refused messages", len(ents))
	}
}

func TestOutbox(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	var logs bytes.Buffer
	o := NewOutbox(dir, from, slog.New(slog.NewTextHandler(&logs, nil)))
	if err := o.Send(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	if err := o.Send(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("outbox mode %v; want 0700", st.Mode().Perm())
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 2 {
		t.Fatalf("%d files in the outbox; want 2", len(ents))
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".eml") || strings.HasPrefix(e.Name(), ".") {
			t.Fatalf("outbox file %q", e.Name())
		}
		info, _ := e.Info()
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v; want 0600 (it holds an initial password)", e.Name(), info.Mode().Perm())
		}
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		checkMessage(t, mailtest.Received{From: "no-reply@agency.example", To: []string{"alex@agency.example"}, Data: raw})
		if !strings.Contains(logs.String(), e.Name()) {
			t.Errorf("log does not name %s:\n%s", e.Name(), logs.String())
		}
	}
	if !strings.Contains(logs.String(), "mail written to outbox") {
		t.Errorf("log: %s", logs.String())
	}
	if strings.Contains(logs.String(), "k7q2m") || strings.Contains(logs.String(), "Hello") {
		t.Errorf("the log holds the body: %s", logs.String())
	}
}

func TestOutboxUnwritable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	o := NewOutbox(filepath.Join(file, "outbox"), from, nil)
	if err := o.Send(t.Context(), msg); err == nil || !strings.Contains(err.Error(), "outbox") {
		t.Fatalf("Send into a path under a file: %v", err)
	}
}
