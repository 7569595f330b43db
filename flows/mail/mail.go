// Package mail sends Lanyard's email (the onboarding message of an
// invitation): through an SMTP relay with STARTTLS, implicit TLS or, for a
// relay on the same host, plain SMTP; or, in development, into an outbox
// folder of .eml files that a developer (or a test) can open.
//
// Both Mailers build the same RFC 5322 multipart/alternative message (a text
// and an HTML part) with github.com/wneessen/go-mail. Rendering the bodies is
// the caller's job (templates.Set.Mail); nothing here knows what a message
// says, and no body is ever logged.
package mail

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	netmail "net/mail"
	"os"
	"path/filepath"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/lanyard-idp/lanyard/config"
)

// Message is one email to one recipient.
type Message struct {
	To      string // a bare address or "Name <address>"
	Subject string
	Text    string // the text/plain part (always sent)
	HTML    string // the text/html alternative ("" for text only)
}

// Mailer delivers a Message. Send returns only when the relay has accepted the
// message (or the file is written), so an error means it was not sent.
type Mailer interface {
	Send(ctx context.Context, m Message) error
}

// TLS modes of config.SMTP.TLS.
const (
	TLSStartTLS = "starttls" // mandatory STARTTLS: refuse a relay that does not offer it
	TLSImplicit = "tls"      // TLS from the first byte (SMTPS, port 465)
	TLSNone     = "none"     // plain SMTP, for a relay on the same host only when authenticating
)

const defaultTimeout = 30 * time.Second

// Option adjusts an SMTP Mailer.
type Option func(*smtpMailer)

// WithTLSConfig sets the TLS configuration used for STARTTLS and implicit
// TLS, e.g. to trust a private CA. ServerName defaults to the SMTP host.
func WithTLSConfig(c *tls.Config) Option {
	return func(s *smtpMailer) { s.tlsConfig = c }
}

type smtpMailer struct {
	host      string
	port      int
	mode      string
	username  string
	password  string
	timeout   time.Duration
	from      string
	tlsConfig *tls.Config
}

// NewSMTP returns a Mailer that sends through the relay c describes. The
// configuration is checked here, so a mistake is reported at start-up rather
// than at the first invitation.
func NewSMTP(c config.SMTP, from string, opts ...Option) (Mailer, error) {
	s := &smtpMailer{
		host:     strings.TrimSpace(c.Host),
		port:     c.Port,
		mode:     strings.ToLower(strings.TrimSpace(c.TLS)),
		username: c.Username,
		password: c.Password.Value(),
		timeout:  c.Timeout.D(),
		from:     from,
	}
	for _, o := range opts {
		o(s)
	}
	var problems []string
	if s.host == "" {
		problems = append(problems, "mail.smtp.host is empty")
	}
	switch s.mode {
	case "":
		s.mode = TLSStartTLS
	case TLSStartTLS, TLSImplicit, TLSNone:
	default:
		problems = append(problems, fmt.Sprintf("mail.smtp.tls is %q; use starttls, tls or none", c.TLS))
	}
	if s.port == 0 {
		s.port = 587
		if s.mode == TLSImplicit {
			s.port = 465
		}
	}
	if s.port < 1 || s.port > 65535 {
		problems = append(problems, fmt.Sprintf("mail.smtp.port %d is not a port number", c.Port))
	}
	if s.timeout < 0 {
		problems = append(problems, "mail.smtp.timeout is negative")
	} else if s.timeout == 0 {
		s.timeout = defaultTimeout
	}
	if _, err := netmail.ParseAddress(from); err != nil {
		problems = append(problems, fmt.Sprintf("mail.from %q is not an address like \"Lanyard <no-reply@agency.example>\"", from))
	}
	// Without TLS the password would cross the network in clear; allow it
	// only to a relay on this host (go-mail's PLAIN refuses it otherwise, but
	// only at the first send).
	if s.username != "" && s.mode == TLSNone && !isLoopback(s.host) {
		problems = append(problems, "mail.smtp.tls is none but a username is set: the password would be sent in clear; use starttls or tls")
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("mail: %s", strings.Join(problems, "; "))
	}
	return s, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Send delivers m. Each Send uses its own connection: invitations are rare,
// and a fresh go-mail client per message keeps concurrent sends independent.
func (s *smtpMailer) Send(ctx context.Context, m Message) error {
	msg, err := build(s.from, m)
	if err != nil {
		return err
	}
	opts := []gomail.Option{
		gomail.WithPort(s.port),
		gomail.WithTimeout(s.timeout),
	}
	tc := &tls.Config{ServerName: s.host, MinVersion: tls.VersionTLS12}
	if s.tlsConfig != nil {
		tc = s.tlsConfig.Clone()
		if tc.ServerName == "" {
			tc.ServerName = s.host
		}
	}
	switch s.mode {
	case TLSStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory), gomail.WithTLSConfig(tc))
	case TLSImplicit:
		opts = append(opts, gomail.WithSSL(), gomail.WithTLSConfig(tc))
	case TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if s.username != "" {
		opts = append(opts,
			gomail.WithOpportunisticSMTPAuth(gomail.SMTPAuthPlain, gomail.SMTPAuthLogin),
			gomail.WithUsername(s.username), gomail.WithPassword(s.password))
	}
	client, err := gomail.NewClient(s.host, opts...)
	if err != nil {
		return fmt.Errorf("mail: SMTP client for %s: %w", s.addr(), err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		return fmt.Errorf("mail: send to %s via %s (%s): %w", recipient(m.To), s.addr(), s.mode, err)
	}
	return nil
}

func (s *smtpMailer) addr() string { return net.JoinHostPort(s.host, fmt.Sprint(s.port)) }

// build turns m into a go-mail message: From, To, Subject, Date, Message-ID,
// a text part and, when there is one, an HTML alternative.
func build(from string, m Message) (*gomail.Msg, error) {
	// Header values come from templates and admin input: a line break in
	// them would let the text forge headers.
	for name, v := range map[string]string{"recipient": m.To, "subject": m.Subject} {
		if strings.ContainsAny(v, "\r\n") {
			return nil, fmt.Errorf("mail: the %s contains a line break", name)
		}
	}
	if strings.TrimSpace(m.Subject) == "" {
		return nil, errors.New("mail: the subject is empty")
	}
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := msg.From(from); err != nil {
		return nil, fmt.Errorf("mail: sender %q: %w", from, err)
	}
	if err := msg.To(m.To); err != nil {
		return nil, fmt.Errorf("mail: recipient %q: %w", m.To, err)
	}
	msg.Subject(m.Subject)
	msg.SetDate()
	msg.SetMessageID()
	// RFC 3834: an automatic message; out-of-office replies should not answer it.
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	return msg, nil
}

// recipient is the address alone, for error messages.
func recipient(to string) string {
	if a, err := netmail.ParseAddress(to); err == nil {
		return a.Address
	}
	return fmt.Sprintf("%q", to)
}

type outbox struct {
	dir  string
	from string
	log  *slog.Logger
}

// NewOutbox returns a Mailer that writes each message to dir as
// "<UTC time>-<random>.eml", a complete RFC 5322 message any mail client
// opens, and logs the path. For development: the messages hold initial
// passwords, so the folder is created 0700 and each file 0600.
func NewOutbox(dir, from string, log *slog.Logger) Mailer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &outbox{dir: dir, from: from, log: log}
}

func (o *outbox) Send(ctx context.Context, m Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	msg, err := build(o.from, m)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		return fmt.Errorf("mail: create outbox: %w", err)
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	// The file name only orders the outbox for a human; the wall clock is
	// what they expect to see there.
	name := time.Now().UTC().Format("20060102T150405.000000000Z") + "-" + hex.EncodeToString(rnd[:]) + ".eml"
	path := filepath.Join(o.dir, name)
	// Write under a hidden name (CreateTemp makes it 0600) and rename, so
	// whoever watches the folder never opens half a message.
	tmp, err := os.CreateTemp(o.dir, ".writing-*")
	if err != nil {
		return fmt.Errorf("mail: write outbox: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := msg.WriteTo(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("mail: write outbox: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("mail: write outbox: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("mail: write outbox: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("mail: write outbox: %w", err)
	}
	o.log.InfoContext(ctx, "mail written to outbox", "path", path, "to", recipient(m.To), "subject", m.Subject)
	return nil
}
