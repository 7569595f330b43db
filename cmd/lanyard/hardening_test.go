package main

import (
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/lanyard-idp/lanyard/provider/store"
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

// unkeyedRechain does what someone with a copy of the database but not the
// key-encryption key can: recompute the chain (the unkeyed SHA-256 of older
// Lanyards) from event from on, after rewriting rows.
func unkeyedRechain(t *testing.T, db *sql.DB, from int64) {
	t.Helper()
	rows, err := db.Query(`SELECT id, at, event, user_id, username, client_id, client_addr, user_agent, COALESCE(detail, ''), hash FROM audit ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	type ev struct {
		id         int64
		fields     []string
		hash, prev string
	}
	var evs []ev
	for rows.Next() {
		var e ev
		var at int64
		f := make([]string, 7)
		if err := rows.Scan(&e.id, &at, &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &e.hash); err != nil {
			t.Fatal(err)
		}
		e.fields = append([]string{strconv.FormatInt(at, 10)}, f...)
		evs = append(evs, e)
	}
	rows.Close()
	prev := ""
	for _, e := range evs {
		if e.id >= from {
			canon, _ := json.Marshal(e.fields)
			sum := sha256.Sum256(append([]byte(prev), canon...))
			e.hash = hex.EncodeToString(sum[:])
			if _, err := db.Exec(`UPDATE audit SET prev_hash = ?, hash = ? WHERE id = ?`, prev, e.hash, e.id); err != nil {
				t.Fatal(err)
			}
		}
		prev = e.hash
	}
}

// TestAuditVerifyHeadAndAnchor: audit verify prints the head (id:hash) for
// the operator to keep outside the database; --expect-head later catches a
// trail cut short (which a chain alone cannot show) and one rewritten
// before the head. A rewrite with the chain recomputed without the key is
// caught with no anchor at all.
func TestAuditVerifyHeadAndAnchor(t *testing.T) {
	l := startOps(t, "", io.Discard)
	for _, who := range []string{"nina", "omar", "pia"} {
		l.invite(who + "@agency.example")
	}
	out := l.mustCmd("audit", "verify")
	m := regexp.MustCompile(`(?m)^head: ([0-9]+):([0-9a-f]{64})$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("audit verify printed no head: %q", out)
	}
	headID, _ := strconv.ParseInt(m[1], 10, 64)
	last, err := l.store().Audit(t.Context(), store.AuditFilter{AfterID: headID - 1})
	if err != nil || len(last) != 1 || last[0].Hash != m[2] {
		t.Fatalf("the printed head %s is not the newest event %+v (%v)", m[0], last, err)
	}
	anchor := m[1] + ":" + m[2]

	l.invite("quinn@agency.example") // the trail grows: the anchor still holds
	if out := l.mustCmd("audit", "verify", "--expect-head", anchor); !strings.Contains(out, "still has the expected hash") {
		t.Fatalf("verify against the anchor: %q", out)
	}
	if _, _, err := l.runCmd("audit", "verify", "--expect-head", "12:nothex"); exitCode(err) != 2 {
		t.Errorf("a malformed --expect-head: %v, want a usage error", err)
	}

	db, err := sql.Open("sqlite", filepath.Join(l.data, "lanyard.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	// Cut short below the anchor: the chain alone still checks, the anchor
	// does not.
	if _, err := db.Exec(`DELETE FROM audit WHERE id >= ?`, headID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.runCmd("audit", "verify"); err != nil {
		t.Fatalf("a truncated chain should still chain: %v", err)
	}
	_, _, err = l.runCmd("audit", "verify", "--expect-head", anchor)
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "removed from its end") {
		t.Fatalf("verify of a truncated trail against the anchor: %v", err)
	}

	// Rewritten and recomputed without the key: found at the rewritten event.
	evs := l.events(store.EventInvite)
	if _, err := db.Exec(`UPDATE audit SET username = 'mallory@agency.example' WHERE id = ?`, evs[1].ID); err != nil {
		t.Fatal(err)
	}
	unkeyedRechain(t, db, evs[1].ID)
	_, _, err = l.runCmd("audit", "verify")
	if exitCode(err) != 1 || !strings.Contains(err.Error(), fmt.Sprintf("#%d", evs[1].ID)) {
		t.Fatalf("verify after a rewrite recomputed without the key: %v", err)
	}
}

// TestFailureFloodServed: through the real server, the failures of one
// address beyond the few audited one by one become one aggregate event,
// and the sign-in metric still counts every failure.
func TestFailureFloodServed(t *testing.T) {
	l := startOps(t, "", io.Discard)
	inv := l.invite("sam@agency.example")
	o := &officer{email: inv.Username, rp: l.staging()}
	const n = 15
	for range n {
		l.signIn(o, "not-the-initial-password", false)
	}
	if got := len(l.events(store.EventSigninFailure)); got != 10 {
		t.Fatalf("%d failures audited one by one, want 10", got)
	}
	l.srv.flows.FlushFailureAudit(t.Context(), true)
	agg := l.events(store.EventSigninFailureAggregated)
	if len(agg) != 1 || !strings.Contains(string(agg[0].Detail), `"summary":"5 more failures from 127.0.0.1"`) {
		t.Fatalf("aggregates: %+v", agg)
	}
	// Wrong passwords, then the lock's answers: every one is counted.
	failures := 0.0
	for _, s := range scrape(t, l.srv.metrics.handler()) {
		if s.name == "lanyard_signins_total" && s.labels["outcome"] != "success" {
			v, _ := strconv.ParseFloat(s.value, 64)
			failures += v
		}
	}
	if failures != n {
		t.Errorf("lanyard_signins_total counts %v failures, want %d", failures, n)
	}
}
