package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestEveryResponseCarriesSecurityHeaders: whatever answers — a page, a
// redirect's body, a 404, a static file, an OAuth error page, JSON — it
// cannot be framed or sniffed and sends the CSP; /static/ lists nothing.
func TestEveryResponseCarriesSecurityHeaders(t *testing.T) {
	l := startOps(t, "", io.Discard)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, path := range []string{
		"/", // a redirect to /account, with an HTML body
		"/static/",
		"/static/lanyard.css",
		"/no-such-page",
		"/signin",
		"/authorize?client_id=nobody&response_type=code",
		"/end_session",
		"/.well-known/openid-configuration",
		"/healthz",
	} {
		resp, err := c.Get(l.issuer + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		h := resp.Header
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("GET %s: CSP %q", path, csp)
		}
		for k, want := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"} {
			if got := h.Get(k); got != want {
				t.Errorf("GET %s: %s = %q, want %q", path, k, got, want)
			}
		}
		if path == "/static/" && (resp.StatusCode != http.StatusNotFound || strings.Contains(string(body), "lanyard.css")) {
			t.Errorf("GET /static/: status %d, a directory listing: %.200s", resp.StatusCode, body)
		}
		if path == "/static/lanyard.css" && (resp.StatusCode != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/css")) {
			t.Errorf("GET %s: status %d %s", path, resp.StatusCode, h.Get("Content-Type"))
		}
	}
}
