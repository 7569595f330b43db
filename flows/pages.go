package flows

import (
	"html/template"
	"net/http"
	"strings"

	"github.com/lanyard-idp/lanyard/templates"
)

// Page data: one typed struct per page, each embedding page (which embeds
// templates.Base for the layout).

// page is what every journey page shares: its form's data-step and action,
// and the errors of its fields. Fields maps a field name to its message so
// the template can set aria-invalid and aria-describedby on that input.
type page struct {
	templates.Base
	DataStep string
	Action   string
	Fields   map[string]string
	Notice   string
}

// fail adds an error to the summary and, when field is set, to that field.
func (p *page) fail(field, msg string) {
	p.Errors = append(p.Errors, msg)
	if field != "" {
		if p.Fields == nil {
			p.Fields = map[string]string{}
		}
		if _, ok := p.Fields[field]; !ok {
			p.Fields[field] = msg
		}
	}
}

func (h *Handler) page(f *flow, step, title string) page {
	p := page{Base: h.base(title), DataStep: step, Action: stepPath(step)}
	if f != nil {
		if f.current() == step {
			p.Base.Step, p.Base.Steps = f.progress()
		}
		p.Notice = f.s.j.Notice
	}
	return p
}

type identifyPage struct {
	page
	Username   string
	ClientName string
	SignedOut  bool
	// FrontChannel are the relying parties' front-channel logout
	// addresses to frame right after a sign-out.
	FrontChannel []string
	Passkey      passkeyUI // "Sign in with a passkey"
}

type passwordPage struct {
	page
	Username string
}

type enrolPage struct {
	page
	QR      template.URL // a data: URL we generated
	Label   string       // "Lanyard (alice@agency.example)"
	Secret  string       // base32, grouped by four for reading
	Account string
	Passkey passkeyUI // the other choice: a passkey or security key
	// Approval is where the third choice starts: pairing the Lanyard
	// approval app ("" on pages that do not offer it).
	Approval string
	// Replacing: after "Lost your phone?", the new factor replaces the
	// lost one, and "Not now" is offered.
	Replacing bool
}

type recoveryPage struct {
	page
	Codes []string
}

type challengePage struct {
	page
	Passkey  passkeyUI    // offered when the officer has one
	Approval approvalView // first, when the officer has a paired phone
	// PasskeyOnly: a step-up for ClientName, which asks for the
	// phishing-resistant level: the passkey, or going on without it.
	PasskeyOnly bool
	ClientName  string
}

type changePasswordPage struct {
	page
	MinLength, MaxLength int
	// FocusNew: the new password is the page's first field.
	FocusNew bool
}

type policyPage struct {
	page
	Doc document
}

type signedInPage struct {
	page
	Username, Name string
	Continue       string
	HasTOTP        bool
	RecoveryLeft   int
	Passkeys       int
	Sessions       int
}

// groupSecret writes a base32 secret in groups of four, which is how people
// copy it by hand (authenticator apps ignore the spaces).
func groupSecret(s string) string {
	var sb strings.Builder
	for i, r := range s {
		if i > 0 && i%4 == 0 {
			sb.WriteByte(' ')
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

// show renders a page with a status (200 for a page, 4xx for a form
// re-rendered with its errors).
func (h *Handler) show(w http.ResponseWriter, status int, name string, data any) error {
	return h.pages.Render(w, status, name, data)
}
