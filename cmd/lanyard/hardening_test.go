package main

import (
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
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

// TestServeDevRefusesNonLoopback: --dev (plain-http cookies, published
// client secrets) serves this machine only. An issuer or a listen address
// beyond loopback is a usage error that says why and what to use instead,
// before anything is created.
func TestServeDevRefusesNonLoopback(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"every interface", []string{"--addr", "0.0.0.0:0"}, "--addr 0.0.0.0:0 listens beyond this machine"},
		{"empty host", []string{"--addr", ":0"}, "--addr :0 listens beyond this machine"},
		{"a LAN address", []string{"--addr", "192.0.2.10:0"}, "http://192.0.2.10:0 is not a loopback address"},
		{"a public issuer", []string{"--addr", "127.0.0.1:0", "--issuer", "https://id.agency.example"}, "the issuer https://id.agency.example is not a loopback address"},
		{"metrics everywhere", []string{"--addr", "127.0.0.1:0", "--metrics-listen", "[::]:0"}, "--metrics-listen [::]:0 listens beyond this machine"},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			e := env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }}
			err := run(t.Context(), append([]string{"serve", "--dev", "--data", data}, c.args...), e)
			var u usageError
			if !errors.As(err, &u) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "use --addr 127.0.0.1:PORT") {
				t.Fatalf("serve --dev %v: %v; want a usage error saying %q and what to use", c.args, err, c.want)
			}
			if _, err := os.Stat(data); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the refused server created its data dir: %v", err)
			}
		})
	}
}

// TestDataDirIsPrivate: the data dir (database, dev key, outbox) is created
// 0700, its database and key 0600; a data dir or key found readable by
// others is made private, with a warning on stderr.
func TestDataDirIsPrivate(t *testing.T) {
	invite := func(data, email string) string {
		t.Helper()
		var stderr strings.Builder
		e := env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: &stderr, getenv: func(string) string { return "" }}
		if err := run(t.Context(), []string{"invite", email, "--name", "Alex Officer", "--dev", "--data", data}, e); err != nil {
			t.Fatalf("invite: %v\n%s", err, stderr.String())
		}
		return stderr.String()
	}
	check := func(data string) {
		t.Helper()
		for p, want := range map[string]fs.FileMode{data: 0o700, filepath.Join(data, "kek"): 0o600, filepath.Join(data, "lanyard.db"): 0o600} {
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != want {
				t.Errorf("%s is %#o, want %#o", p, st.Mode().Perm(), want)
			}
		}
	}
	data := filepath.Join(t.TempDir(), "data")
	if logs := invite(data, "new@agency.example"); strings.Contains(logs, "made private") {
		t.Errorf("a new data dir needed tightening: %s", logs)
	}
	check(data)

	for p, m := range map[string]fs.FileMode{data: 0o755, filepath.Join(data, "kek"): 0o644, filepath.Join(data, "lanyard.db"): 0o644} {
		if err := os.Chmod(p, m); err != nil {
			t.Fatal(err)
		}
	}
	logs := invite(data, "second@agency.example")
	check(data)
	for _, p := range []string{data, filepath.Join(data, "kek"), filepath.Join(data, "lanyard.db")} {
		if !strings.Contains(logs, "made private") || !strings.Contains(logs, "path="+p+" ") {
			t.Errorf("no warning for %s: %s", p, logs)
		}
	}
}
