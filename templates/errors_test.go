package templates

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

func TestClassify(t *testing.T) {
	secret := errors.New("dial tcp 10.0.0.5:5432: password authentication failed")
	refusal := &Error{Status: http.StatusConflict, Title: "Changed", Message: "It changed.", Code: "x", Cause: secret}
	for _, tc := range []struct {
		name   string
		err    error
		status int
		msg    string
		title  string
	}{
		{"an Error", refusal, http.StatusConflict, "It changed.", "Changed"},
		{"a wrapped Error", fmt.Errorf("save: %w", refusal), http.StatusConflict, "It changed.", "Changed"},
		{"a body over its limit", fmt.Errorf("read: %w", &http.MaxBytesError{Limit: 10}), http.StatusRequestEntityTooLarge, ErrTooLarge.Message, ""},
		{"anything else", secret, http.StatusInternalServerError, msgServerFault, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := Classify(tc.err)
			if e.Status != tc.status || e.Message != tc.msg || e.Title != tc.title {
				t.Fatalf("Classify = %d %q %q, want %d %q %q", e.Status, e.Title, e.Message, tc.status, tc.title, tc.msg)
			}
			if !errors.Is(e, tc.err) {
				t.Fatal("the classified error does not keep its cause")
			}
		})
	}
}

// TestServeError: the page shows the plain sentence, the heading, the OAuth
// code and the request's reference, never the cause; the log has the cause
// at the level the status calls for.
func TestServeError(t *testing.T) {
	set, err := Parse()
	if err != nil {
		t.Fatal(err)
	}
	cause := errors.New("pq: relation \"users\" does not exist")
	for _, tc := range []struct {
		name              string
		err               error
		status            int
		title, msg, level string
	}{
		{"a fault of ours", fmt.Errorf("load user: %w", cause), 500, defaultErrorTitle, msgServerFault, "ERROR"},
		{"a refusal with a heading and a code", &Error{Status: 400, Title: "Unknown application", Message: "Not registered.", Code: "invalid_client", Cause: cause}, 400, "Unknown application", "Not registered.", "INFO"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			rec := httptest.NewRecorder()
			rec.Header().Set("X-Request-Id", "req-42")
			set.ServeError(rec, httptest.NewRequest("GET", "/x", nil), log, Base{Product: "TechPass"}, tc.err)
			if rec.Code != tc.status || rec.Header().Get("Cache-Control") != "no-store" {
				t.Fatalf("status %d, Cache-Control %q", rec.Code, rec.Header().Get("Cache-Control"))
			}
			body := rec.Body.String()
			doc, err := html.Parse(strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			h1 := all(doc, func(n *html.Node) bool { return n.Data == "h1" })
			if len(h1) != 1 || text(h1[0]) != tc.title {
				t.Errorf("heading %v, want %q", h1, tc.title)
			}
			for _, want := range []string{tc.msg, "req-42", "TechPass"} {
				if !strings.Contains(body, want) {
					t.Errorf("page lacks %q", want)
				}
			}
			if e, ok := tc.err.(*Error); ok && !strings.Contains(body, e.Code) {
				t.Errorf("page lacks the code %q", e.Code)
			}
			if strings.Contains(body, "relation") {
				t.Error("the cause reached the page")
			}
			if l := logs.String(); !strings.Contains(l, "level="+tc.level) || !strings.Contains(l, "relation") || !strings.Contains(l, "path=/x") {
				t.Errorf("log %q", l)
			}
		})
	}
}
