package templates

import (
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// passwordData has what password.html and the layout read, as a journey
// page's data does (flows' page types are unexported).
type passwordData struct {
	Base
	DataStep, Action, Notice, Username string
	Fields                             map[string]string
}

func render(t *testing.T, page string, data any) *html.Node {
	t.Helper()
	set, err := Parse()
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	if err := set.Render(rec, 422, page, data); err != nil {
		t.Fatal(err)
	}
	if rec.Code != 422 {
		t.Fatalf("status %d", rec.Code)
	}
	doc, err := html.Parse(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func all(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && match(n) {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return out
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func text(n *html.Node) string {
	var sb strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			sb.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(sb.String()), " ")
}

func hasClass(class string) func(*html.Node) bool {
	return func(n *html.Node) bool {
		v, _ := attr(n, "class")
		return strings.Contains(" "+v+" ", " "+class+" ")
	}
}

// TestErrorSummary: the summary is an alert that takes the focus instead of
// the field, says "Error:" in the title, and links each message to its field.
func TestErrorSummary(t *testing.T) {
	const msg = "The username or password is not right."
	doc := render(t, "password", passwordData{
		Base:     Base{Product: "Lanyard", Environment: "Staging", Title: "Enter your password", Errors: []string{msg, "Something without a field."}},
		DataStep: "password", Action: "/signin/password", Username: "a@agency.example",
		Fields: map[string]string{"password": msg},
	})
	sums := all(doc, hasClass("error-summary"))
	if len(sums) != 1 {
		t.Fatalf("%d error summaries", len(sums))
	}
	s := sums[0]
	if role, _ := attr(s, "role"); role != "alert" {
		t.Errorf("summary role %q", role)
	}
	if _, ok := attr(s, "autofocus"); !ok {
		t.Error("the summary does not take the focus")
	}
	links := all(s, func(n *html.Node) bool { return n.Data == "a" })
	if len(links) != 1 || text(links[0]) != msg {
		t.Fatalf("summary links %d, want one for %q", len(links), msg)
	}
	if href, _ := attr(links[0], "href"); href != "#password" {
		t.Errorf("the message links to %q, want #password", href)
	}
	if !strings.Contains(text(s), "Something without a field.") {
		t.Error("a message without a field is missing from the summary")
	}
	for _, in := range all(doc, func(n *html.Node) bool { return n.Data == "input" }) {
		if _, ok := attr(in, "autofocus"); ok {
			t.Errorf("input %v also has autofocus: two elements compete for the focus", in.Attr)
		}
	}
	title := all(doc, func(n *html.Node) bool { return n.Data == "title" })
	if len(title) != 1 || !strings.HasPrefix(text(title[0]), "Error: Enter your password") || !strings.Contains(text(title[0]), "Staging") {
		t.Errorf("title %q", text(title[0]))
	}
}

// TestProgress: onboarding steps say where the officer is, with the step's
// name for screen readers; other pages say nothing.
func TestProgress(t *testing.T) {
	data := passwordData{Base: Base{Product: "Lanyard", Title: "Choose a new password", Step: 3, Steps: 5}, Fields: map[string]string{}}
	p := all(render(t, "password", data), hasClass("progress"))
	if len(p) != 1 || text(p[0]) != "Step 3 of 5: Choose a new password" {
		t.Fatalf("progress %v", p)
	}
	bar := all(p[0], func(n *html.Node) bool { return n.Data == "progress" })
	if len(bar) != 1 {
		t.Fatal("no progress bar")
	}
	if v, _ := attr(bar[0], "value"); v != "3" {
		t.Errorf("bar value %q", v)
	}
	data.Step, data.Steps = 0, 0
	if p := all(render(t, "password", data), hasClass("progress")); len(p) != 0 {
		t.Errorf("a page outside onboarding shows progress")
	}
}

// TestErrorFieldWithoutFields: pages whose data has no Fields map (the error
// page) still render a summary, unlinked.
func TestErrorFieldWithoutFields(t *testing.T) {
	doc := render(t, "error", ErrorPage{Base: Base{Product: "Lanyard", Title: "There is a problem", Errors: []string{"Plain."}}, Message: "Plain."})
	if s := all(doc, hasClass("error-summary")); len(s) != 1 || len(all(s[0], func(n *html.Node) bool { return n.Data == "a" })) != 0 {
		t.Fatal("want one summary without links")
	}
	for _, tc := range []struct {
		data any
		want string
	}{
		{nil, ""},
		{42, ""},
		{&passwordData{Fields: map[string]string{"b": "m", "a": "m"}}, "a"},
		{struct{ Fields map[string]int }{map[string]int{"x": 1}}, ""},
	} {
		if got := errorField(tc.data, "m"); got != tc.want {
			t.Errorf("errorField(%#v) = %q, want %q", tc.data, got, tc.want)
		}
	}
}
