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
	"time"

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

// unkeyedHash is the chain's hash as older Lanyards computed it, which
// anyone can: what someone with a copy of the database (or an archive) but
// not the key-encryption key would recompute after rewriting events.
func unkeyedHash(prev string, e *store.AuditEvent) string {
	canon, _ := json.Marshal([]string{strconv.FormatInt(e.At.UnixMicro(), 10), string(e.Event), e.UserID, e.Username,
		e.ClientID, e.ClientAddr, e.UserAgent, string(e.Detail)})
	sum := sha256.Sum256(append([]byte(prev), canon...))
	return hex.EncodeToString(sum[:])
}

// unkeyedRechain recomputes the chain in the database the unkeyed way from
// event from on.
func unkeyedRechain(t *testing.T, db *sql.DB, from int64) {
	t.Helper()
	rows, err := db.Query(`SELECT id, at, event, user_id, username, client_id, client_addr, user_agent, COALESCE(detail, ''), hash FROM audit ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var evs []store.AuditEvent
	for rows.Next() {
		var e store.AuditEvent
		var at int64
		var detail string
		if err := rows.Scan(&e.ID, &at, &e.Event, &e.UserID, &e.Username, &e.ClientID, &e.ClientAddr, &e.UserAgent, &detail, &e.Hash); err != nil {
			t.Fatal(err)
		}
		e.At, e.Detail = time.UnixMicro(at), []byte(detail)
		evs = append(evs, e)
	}
	rows.Close()
	prev := ""
	for _, e := range evs {
		if e.ID >= from {
			e.Hash = unkeyedHash(prev, &e)
			if _, err := db.Exec(`UPDATE audit SET prev_hash = ?, hash = ? WHERE id = ?`, prev, e.Hash, e.ID); err != nil {
				t.Fatal(err)
			}
		}
		prev = e.Hash
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
	// Refused reset links share the aggregate; they are not sign-ins.
	if err := l.store().AppendAudit(t.Context(), &store.AuditEvent{Event: store.EventSigninFailureAggregated, ClientAddr: "127.0.0.1",
		Detail: []byte(`{"count":7,"reasons":{"` + string(store.ReasonLinkUnknown) + `":4,"` + string(store.ReasonWrongPassword) + `":3}}`)}); err != nil {
		t.Fatal(err)
	}
	after := 0.0
	for _, s := range scrape(t, l.srv.metrics.handler()) {
		if s.name == "lanyard_signins_total" && s.labels["outcome"] != "success" {
			v, _ := strconv.ParseFloat(s.value, 64)
			after += v
		}
	}
	if after != n+3 {
		t.Errorf("after an aggregate of 4 refused links and 3 wrong passwords, lanyard_signins_total counts %v failures, want %d", after, n+3)
	}
}

// TestAuditArchivesUnderTheKey: archives of pruned events are checked under
// the deployment's key too — an archive rewritten and recomputed without
// it is found at the rewritten event — and --expect-head accepts a head
// that has since been pruned when its archive is given.
func TestAuditArchivesUnderTheKey(t *testing.T) {
	l := startOps(t, "", io.Discard)
	if err := l.store().GenerateFixture(t.Context(), store.Fixture{AuditEvents: 60, Now: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	l.invite("ria@agency.example")
	archive := filepath.Join(t.TempDir(), "audit.jsonl")
	l.mustCmd("audit", "export", "--until", "180d", "--out", archive)
	lines := archiveLines(t, archive)
	l.mustCmd("audit", "prune", "--until", "180d", "--archive", archive)

	old := lines[2] // a head written down before the prune
	expect := strconv.FormatInt(old.ID, 10) + ":" + old.Hash
	if _, _, err := l.runCmd("audit", "verify", "--expect-head", expect); err == nil || !strings.Contains(err.Error(), "give the archive") {
		t.Fatalf("a pruned head without its archive: %v", err)
	}
	if out := l.mustCmd("audit", "verify", "--archive", archive, "--expect-head", expect); !strings.Contains(out, "still has the expected hash") {
		t.Fatalf("a pruned head with its archive:\n%s", out)
	}
	if _, _, err := l.runCmd("audit", "verify", "--archive", archive, "--expect-head", strconv.FormatInt(old.ID, 10)+":"+lines[3].Hash); err == nil {
		t.Fatal("a pruned head with another hash was accepted")
	}

	// The archive rewritten, its chain recomputed the unkeyed way.
	var out strings.Builder
	prev := lines[0].PrevHash
	for i, line := range lines {
		e, err := line.event()
		if err != nil {
			t.Fatal(err)
		}
		if i == 4 {
			e.Username = "mallory@agency.example"
		}
		if i >= 4 {
			e.PrevHash, e.Hash = prev, unkeyedHash(prev, &e)
		}
		prev = e.Hash
		b, _ := json.Marshal(toArchive(&e))
		out.Write(append(b, '\n'))
	}
	forged := filepath.Join(t.TempDir(), "forged.jsonl")
	writeFile(t, forged, out.String())
	_, _, err := l.runCmd("audit", "verify", "--archive", forged)
	if err == nil || !strings.Contains(err.Error(), "#"+strconv.FormatInt(lines[4].ID, 10)) || !strings.Contains(err.Error(), "key") {
		t.Fatalf("verify with a rewritten archive: %v", err)
	}
}
