package flows

// The console's and account requests' test harness: the journey's (a real
// Handler on a real SQLite store, a cookie-jar browser, an injected clock)
// with a real SMTP server, admins in the configuration, each with an
// authenticator app, and helpers that sign them in and read the mail.

import (
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/flows/mail"
	"github.com/lanyard-idp/lanyard/flows/mail/mailtest"
	"github.com/lanyard-idp/lanyard/flows/otp"
	"github.com/lanyard-idp/lanyard/provider/store"
)

// The console's cast: one of each role, a second helpdesk (an equal), and
// officers without a role.
const (
	bossAdmin  = "boss@agency.example"     // admin
	approver   = "approver@agency.example" // approver
	helpdesk   = "desk@agency.example"     // helpdesk
	helpdesk2  = "desk2@agency.example"    // helpdesk
	plainStaff = "staff@agency.example"    // no role
)

// consoleEnv is the journey's env with mail and the console's cast.
type consoleEnv struct {
	*env
	smtp    *mailtest.Server
	secrets map[string][]byte // each seeded officer's authenticator app
	users   map[string]*store.User
}

// withConsole is the configuration of the console's tests.
func withConsole(c *config.Config) {
	c.Invitations.AllowedDomains = []string{"agency.example", "partner.example"}
	c.Invitations.RefusedMailboxes = []string{"*@litemail.agency.example"}
	c.Admins = []config.Admin{
		{Email: bossAdmin, Roles: []string{config.RoleAdmin}},
		{Email: approver, Roles: []string{config.RoleApprover}},
		{Email: helpdesk, Roles: []string{config.RoleHelpdesk}},
		{Email: helpdesk2, Roles: []string{config.RoleHelpdesk}},
	}
	c.Requests.Domains = []config.DomainApproval{{Domain: "partner.example", Approval: config.ApprovalAutomatic}}
}

func newConsoleEnv(t *testing.T, tweak ...func(*config.Config)) *consoleEnv {
	t.Helper()
	e := &consoleEnv{env: newEnv(t, append([]func(*config.Config){withConsole}, tweak...)...),
		secrets: map[string][]byte{}, users: map[string]*store.User{}}
	e.smtp = withSMTP(e.env)
	for _, who := range []string{bossAdmin, approver, helpdesk, helpdesk2, plainStaff} {
		e.seedWithApp(who)
	}
	return e
}

// withSMTP gives the env's handler a real SMTP server for all its mail.
func withSMTP(e *env) *mailtest.Server {
	e.t.Helper()
	srv := mailtest.Start(e.t, mailtest.Options{})
	m, err := mail.NewSMTP(config.SMTP{Host: srv.Host, Port: srv.Port, TLS: "none", Timeout: config.Duration(5 * time.Second)}, "Lanyard <no-reply@agency.example>")
	if err != nil {
		e.t.Fatal(err)
	}
	e.h.mailer, e.h.auditedMailer = m, m
	e.t.Cleanup(e.h.Wait)
	return srv
}

// seedWithApp creates an active officer who has accepted the documents and
// has an authenticator app.
func (e *consoleEnv) seedWithApp(username string) *store.User {
	e.t.Helper()
	u := e.seedReady(username, alicePw)
	secret := []byte("12345678901234567890" + username)[:20]
	if err := e.st.PutTOTP(e.t.Context(), &store.TOTP{UserID: u.ID, Secret: e.box.Seal(secret, purposeTOTP), Confirmed: true, CreatedAt: e.clock.Now()}); err != nil {
		e.t.Fatal(err)
	}
	e.secrets[username], e.users[username] = secret, u
	return u
}

// code is the officer's authenticator code now, after moving the clock to
// a fresh time step (each step is accepted once).
func (e *consoleEnv) code(username string) string {
	e.clock.Advance(otp.Period * time.Second)
	return otp.Code(e.secrets[username], e.clock.Now())
}

// signIn signs the officer in with password and code, starting from path
// (a console page parks itself and the sign-in comes back to it), and
// returns the browser and the page it ended on.
func (e *consoleEnv) signIn(username, path string) (*browser, *resp) {
	e.t.Helper()
	b := e.browser()
	r := b.open(path)
	mustStep(e.t, r, StepIdentify)
	r = b.follow(b.submit(r, map[string]string{"username": username}))
	r = b.follow(b.submit(r, map[string]string{"password": alicePw}))
	mustStep(e.t, r, StepMFAChallenge)
	r = b.follow(b.submit(r, map[string]string{"code": e.code(username)}))
	return b, r
}

// page is the data-page of a console page ("" when none).
func (r *resp) page() string {
	if r.doc == nil {
		return ""
	}
	if m := find(r.doc, func(n *html.Node) bool { return n.Data == "main" }); m != nil {
		return attr(m, "data-page")
	}
	return ""
}

// actions are the data-action markers of the page's forms.
func (r *resp) actions() []string {
	var out []string
	for _, f := range findAll(r.doc, func(n *html.Node) bool { return n.Data == "form" && attr(n, "data-action") != "" }) {
		out = append(out, attr(f, "data-action"))
	}
	return out
}

// submitAction posts the page's form marked data-action=action (the n-th,
// 0-based, when there are several) with its hidden inputs plus fields.
func (b *browser) submitAction(r *resp, action string, n int, fields map[string]string) *resp {
	b.t.Helper()
	forms := findAll(r.doc, func(f *html.Node) bool { return f.Data == "form" && attr(f, "data-action") == action })
	if len(forms) <= n {
		b.t.Fatalf("no form %d with data-action=%q (status %d, page %q): %s", n, action, r.status, r.page(), text(r.doc))
	}
	vals := url.Values{}
	for _, in := range findAll(forms[n], func(i *html.Node) bool { return i.Data == "input" && attr(i, "type") == "hidden" }) {
		vals.Set(attr(in, "name"), attr(in, "value"))
	}
	for k, v := range fields {
		vals.Set(k, v)
	}
	return b.post(attr(forms[n], "action"), vals)
}

// notice is the page's status message ("" when none).
func (r *resp) notice() string {
	return text(find(r.doc, func(n *html.Node) bool { return attr(n, "role") == "status" }))
}

// mails returns the messages to addr received so far, parsed.
func (e *consoleEnv) mails(addr string) []*mailtest.Parsed {
	e.t.Helper()
	var out []*mailtest.Parsed
	for _, m := range e.smtp.Messages() {
		if len(m.To) != 1 || !strings.EqualFold(m.To[0], addr) {
			continue
		}
		p, err := mailtest.Parse(m.Data)
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// lastMail is the newest message to addr; it fails when there is none.
func (e *consoleEnv) lastMail(addr string) *mailtest.Parsed {
	e.t.Helper()
	ms := e.mails(addr)
	if len(ms) == 0 {
		e.t.Fatalf("no email to %s", addr)
	}
	return ms[len(ms)-1]
}

var verifyLinkRE = regexp.MustCompile(`https?://\S+/request/verify\?token=[0-9a-f]+`)

// verifyLink is the verification link of the newest email to addr.
func (e *consoleEnv) verifyLink(addr string) string {
	e.t.Helper()
	m := e.lastMail(addr)
	link := verifyLinkRE.FindString(m.Text)
	if link == "" {
		e.t.Fatalf("the newest email to %s has no verification link: %s\n%s", addr, m.Subject, m.Text)
	}
	return link
}

// requestForm is a filled-in request form.
func requestForm(email, name, reason string) url.Values {
	return url.Values{"email": {email}, "name": {name}, "organisation": {""}, "reason": {reason}}
}

// request submits the request form from a fresh browser.
func (e *consoleEnv) request(email, name string) *resp {
	e.t.Helper()
	return e.browser().post(PathRequest, requestForm(email, name, "I maintain the docs portal."))
}

// eventsOf are the audit events named ev.
func (e *env) eventsOf(ev store.Event) []store.AuditEvent {
	e.t.Helper()
	evs, err := e.st.Audit(e.t.Context(), store.AuditFilter{Event: string(ev)})
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

// requests are the stored requests of every status, oldest first.
func (e *env) requests() []store.AccountRequest {
	e.t.Helper()
	rs, err := e.st.ListAccountRequests(e.t.Context(), store.RequestQuery{})
	if err != nil {
		e.t.Fatal(err)
	}
	return rs
}

// errorAt is the message tied to the control with id (an input, a select
// or a textarea) by aria-describedby; "" when the control is not marked
// invalid, and a failure when it is but no message is tied to it.
func (r *resp) errorAt(t *testing.T, id string) string {
	t.Helper()
	el := byID(r.doc, id)
	if el == nil {
		t.Fatalf("no control #%s", id)
	}
	if attr(el, "aria-invalid") != "true" {
		return ""
	}
	for _, d := range strings.Fields(attr(el, "aria-describedby")) {
		if m := byID(r.doc, d); m != nil && strings.Contains(attr(m, "class"), "error-message") {
			return strings.TrimPrefix(text(m), "Error: ")
		}
	}
	t.Fatalf("#%s is invalid but no error message is tied to it", id)
	return ""
}
