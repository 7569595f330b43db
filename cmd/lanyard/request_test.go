package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/lanyard-idp/lanyard/provider/store"
)

// requestAccount submits the request form as an officer does and confirms
// the emailed link; it returns the request's id.
func (l *lanyard) requestAccount(email, name string) string {
	l.t.Helper()
	b := newBrowser(l.t, l.issuer)
	p, _ := b.visit("GET", l.issuer+"/request", nil, "")
	if p.step != "request-access" {
		l.t.Fatalf("/request: step %q", p.step)
	}
	p, _ = b.submit(p, map[string]string{"email": email, "name": name, "reason": "I maintain the docs portal."}, "")
	if !strings.Contains(text(p.doc), "Check your email") {
		l.t.Fatalf("after the request form: %s", text(p.doc))
	}
	link := regexp.MustCompile(`https?://\S+/request/verify\?token=[0-9a-f]+`).FindString(l.newestMail(email))
	if link == "" {
		l.t.Fatalf("no verification link in the email to %s", email)
	}
	p, _ = b.visit("GET", link, nil, "")
	p, _ = b.submit(p, nil, "")
	if !strings.Contains(text(p.doc), "confirmed") {
		l.t.Fatalf("after confirming: %s", text(p.doc))
	}
	var rows []requestRow
	if err := json.Unmarshal([]byte(l.mustCmd("request", "list", "--json")), &rows); err != nil {
		l.t.Fatal(err)
	}
	for _, r := range rows {
		if r.Email == email {
			return r.ID
		}
	}
	l.t.Fatalf("no request of %s in %+v", email, rows)
	return ""
}

// newestMail is the decoded text of the newest email to addr in the outbox.
func (l *lanyard) newestMail(addr string) string {
	l.t.Helper()
	dir := filepath.Join(l.data, "outbox")
	ents, err := os.ReadDir(dir)
	if err != nil {
		l.t.Fatal(err)
	}
	found := ""
	for _, e := range ents { // names start with the time: the last one wins
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			l.t.Fatal(err)
		}
		if strings.Contains(string(raw), "To: "+addr) || strings.Contains(string(raw), "<"+addr+">") {
			found = decodeMail(l.t, string(raw))
		}
	}
	if found == "" {
		l.t.Fatalf("no email to %s in %s", addr, dir)
	}
	return found
}

// TestRequestCommands: list, show, approve and deny, as tables and JSON,
// with the admin commands' exit codes, on requests made through the pages.
func TestRequestCommands(t *testing.T) {
	l := startOps(t, "", io.Discard)
	approveID := l.requestAccount("nadia@agency.example", "Nadia Noor")
	denyID := l.requestAccount("omar@agency.example", "Omar Odell")

	var rows []requestRow
	if err := json.Unmarshal([]byte(l.mustCmd("request", "list", "--status", "pending", "--json")), &rows); err != nil || len(rows) != 2 {
		t.Fatalf("request list --status pending: %+v, %v", rows, err)
	}
	if rows[0].Status != store.RequestPending || rows[0].VerifiedAt == "" || rows[0].ExpiresAt == "" || rows[0].Reason != "I maintain the docs portal." {
		t.Fatalf("a pending request: %+v", rows[0])
	}
	table := l.mustCmd("request", "list")
	if !strings.Contains(table, "ID") || !strings.Contains(table, approveID) || !strings.Contains(table, "2 request(s)") {
		t.Fatalf("request list:\n%s", table)
	}
	show := l.mustCmd("request", "show", approveID)
	for _, want := range []string{"request " + approveID + ": pending", "nadia@agency.example", "Nadia Noor", "I maintain the docs portal."} {
		if !strings.Contains(show, want) {
			t.Errorf("request show lacks %q:\n%s", want, show)
		}
	}

	var approved map[string]any
	if err := json.Unmarshal([]byte(l.mustCmd("request", "approve", approveID, "--json")), &approved); err != nil {
		t.Fatal(err)
	}
	if approved["username"] != "nadia@agency.example" || approved["mail_sent"] != true || approved["initial_password"] != nil {
		t.Fatalf("request approve --json: %v", approved)
	}
	if u := l.user("nadia@agency.example"); u.State != store.UserInvited {
		t.Fatalf("after approve: %+v", u)
	}
	if !strings.Contains(l.newestMail("nadia@agency.example"), "Initial password:") {
		t.Fatal("no onboarding email after approve")
	}
	if ev := l.events(store.EventRequestApprove); len(ev) != 1 || !strings.Contains(string(ev[0].Detail), `"by":"cli"`) {
		t.Fatalf("approve audited as %+v", ev)
	}

	out := l.mustCmd("request", "deny", denyID, "--reason", "Contractors are invited by their agency.")
	if !strings.Contains(out, "denied request "+denyID) {
		t.Fatalf("request deny: %s", out)
	}
	if !strings.Contains(l.newestMail("omar@agency.example"), "Contractors are invited by their agency.") {
		t.Fatal("the denial email lacks the reason")
	}
	var shown requestRow
	if err := json.Unmarshal([]byte(l.mustCmd("request", "show", denyID, "--json")), &shown); err != nil || shown.Status != store.RequestDenied ||
		shown.DecidedBy != "cli" || shown.DenyReason != "Contractors are invited by their agency." {
		t.Fatalf("request show after deny: %+v, %v", shown, err)
	}

	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"request"}, 2},
		{[]string{"request", "frobnicate"}, 2},
		{[]string{"request", "list", "--status", "maybe"}, 2},
		{[]string{"request", "show"}, 2},
		{[]string{"request", "show", "not-an-id"}, 2},
		{[]string{"request", "show", "0123456789abcdef"}, 1},
		{[]string{"request", "approve", approveID}, 1}, // already approved
		{[]string{"request", "approve", denyID}, 1},    // denied
		{[]string{"request", "deny", approveID, "--reason", "x"}, 1},
		{[]string{"request", "deny", denyID}, 2}, // no reason
		{[]string{"request", "deny", denyID, "--reason", strings.Repeat("x", 501)}, 2},
		{[]string{"request", "approve", "0123456789abcdef"}, 1},
	} {
		l.wantRefused(tc.args, tc.code)
	}
}

// wantRefused runs a command that must be refused: exit code code, one
// line, nothing else on stderr, nothing changed.
func (l *lanyard) wantRefused(args []string, code int) {
	t := l.t
	t.Helper()
	name := strings.Join(args, " ")
	before := l.snapshot()
	out, errs, err := l.runCmd(args...)
	if err == nil {
		t.Errorf("lanyard %s: accepted\n%s", name, out)
		return
	}
	if got := exitCode(err); got != code {
		t.Errorf("lanyard %s: exit %d, want %d (%v)", name, got, code, err)
	}
	if msg := err.Error(); strings.Contains(msg, "\n") || msg == "" {
		t.Errorf("lanyard %s: not one line: %q", name, msg)
	}
	if strings.TrimSpace(errs) != "" {
		t.Errorf("lanyard %s: wrote to stderr besides the error: %q", name, errs)
	}
	if l.snapshot() != before {
		t.Errorf("lanyard %s: changed something although refused", name)
	}
}
