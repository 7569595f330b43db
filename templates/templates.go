// Package templates holds every HTML page and mail template of Lanyard,
// embedded so the binary is self-contained, and the one way to render them:
// parse once at start (a missing or broken page fails start-up), render into a
// buffer, then write status and body.
//
// Pages are "layout.html" plus one page file that defines "title" and
// "content". Each page's data embeds Base. errors.go is the one path from an
// error to what its reader sees (Error, Classify, ServeError), shared by the
// journey and the provider's pages; headers.go is the one place the page
// security headers are set (SetPageHeaders, PageHeaders). No inline script
// or style may appear here: the CSP is script-src 'self' and style-src 'self'.
package templates

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"reflect"
	"slices"
	"strings"
	textTemplate "text/template"
)

//go:embed *.html mail
var files embed.FS

// Base is embedded in every page's data; the layout reads it.
type Base struct {
	Product     string // "Lanyard" or the configured display name
	Environment string // shown as a badge when set
	Title       string // the <title> and the page heading
	// Progress is shown on onboarding steps: "Step 2 of 4".
	Step, Steps int
	// Errors is the error summary at the top of the page (announced to screen readers).
	Errors []string
	// SignedIn shows the account and sign-out links.
	SignedIn bool
	// Page is the data-page marker of an admin console page (on <main>),
	// and Nav the console's navigation (the pages the admin's roles see).
	Page string
	Nav  []NavLink
}

// NavLink is one entry of the console's navigation.
type NavLink struct {
	Href, Label string
	Current     bool
}

// Set is the parsed pages and mail templates.
type Set struct {
	pages map[string]*template.Template
	mail  *textTemplate.Template
	html  *template.Template // HTML mail bodies
}

var funcs = template.FuncMap{
	"join":       strings.Join,
	"add":        func(a, b int) int { return a + b },
	"lower":      strings.ToLower,
	"errorField": errorField,
	// in reports whether s is one of the space-separated words of list.
	"in": func(s, list string) bool { return slices.Contains(strings.Fields(list), s) },
	// link pairs an address with its label, for the mails' button.
	"link": func(url, label string) struct{ URL, Label string } { return struct{ URL, Label string }{url, label} },
	// renameRemove is the account page's two forms for one sign-in method of
	// a kind ("passkey", "device") whose actions are under base.
	"renameRemove": func(kind, base, id, name, err string) struct{ Kind, Base, ID, Name, Err string } {
		return struct{ Kind, Base, ID, Name, Err string }{kind, base, id, name, err}
	},
}

// errorField names the field a message of the error summary is about, so the
// layout can link the message to it: the page data's Fields (field name →
// message), when the page has such a map. "" when it has none or no field
// has this message.
func errorField(data any, msg string) string {
	v := reflect.ValueOf(data)
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return ""
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return ""
	}
	f := v.FieldByName("Fields")
	if !f.IsValid() || f.Kind() != reflect.Map || f.Type().Key().Kind() != reflect.String || f.Type().Elem().Kind() != reflect.String {
		return ""
	}
	var names []string
	for _, k := range f.MapKeys() {
		if f.MapIndex(k).String() == msg {
			names = append(names, k.String())
		}
	}
	if len(names) == 0 {
		return ""
	}
	slices.Sort(names) // one message on two fields: always the same link
	return names[0]
}

// Parse parses every page with the layout and every mail template.
func Parse() (*Set, error) {
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(files, "layout.html")
	if err != nil {
		return nil, fmt.Errorf("parse layout: %w", err)
	}
	names, err := fs.Glob(files, "*.html")
	if err != nil {
		return nil, err
	}
	s := &Set{pages: map[string]*template.Template{}}
	for _, n := range names {
		if n == "layout.html" {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(files, n)
		if err != nil {
			return nil, fmt.Errorf("parse page %s: %w", n, err)
		}
		s.pages[strings.TrimSuffix(n, ".html")] = t
	}
	if s.mail, err = textTemplate.New("mail").ParseFS(files, "mail/*.txt"); err != nil {
		return nil, fmt.Errorf("parse mail text: %w", err)
	}
	if s.html, err = template.New("mail").Funcs(funcs).ParseFS(files, "mail/*.html"); err != nil {
		return nil, fmt.Errorf("parse mail html: %w", err)
	}
	return s, nil
}

// Has reports whether a page exists.
func (s *Set) Has(page string) bool { _, ok := s.pages[page]; return ok }

// Render executes page into a buffer, then writes status and body. On a
// template error nothing has been written and the error is returned.
func (s *Set) Render(w http.ResponseWriter, status int, page string, data any) error {
	t, ok := s.pages[page]
	if !ok {
		return fmt.Errorf("no page %q", page)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", data); err != nil {
		return fmt.Errorf("render %s: %w", page, err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, err := w.Write(buf.Bytes())
	return err
}

// Mail renders the text and HTML bodies of a mail template: mail/NAME.txt and
// mail/NAME.html. The text template's first line is "Subject: …".
func (s *Set) Mail(name string, data any) (subject, text, html string, err error) {
	var tb, hb bytes.Buffer
	if err = s.mail.ExecuteTemplate(&tb, name+".txt", data); err != nil {
		return "", "", "", fmt.Errorf("render mail %s: %w", name, err)
	}
	if err = s.html.ExecuteTemplate(&hb, name+".html", data); err != nil {
		return "", "", "", fmt.Errorf("render mail %s: %w", name, err)
	}
	text = tb.String()
	first, rest, _ := strings.Cut(text, "\n")
	subject, ok := strings.CutPrefix(first, "Subject: ")
	if !ok {
		return "", "", "", fmt.Errorf("mail %s: first line must be \"Subject: …\"", name)
	}
	return strings.TrimSpace(subject), strings.TrimLeft(rest, "\n"), hb.String(), nil
}
