package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lanyard-idp/lanyard/provider/store"
)

// TestAuditRetention is the retention an operator runs: export the events
// before a date to an archive, prune them, and verify the chain across the
// cut — from the database alone and together with the archives. A changed
// archive, the wrong archive, or events removed behind Lanyard's back are
// refused or reported, and a refused prune removes nothing.
func TestAuditRetention(t *testing.T) {
	l := startOps(t, "", io.Discard)
	ctx := context.Background()
	st := l.store()
	// A year of events (bulk, like `lanyard fixture`), then today's.
	if err := st.GenerateFixture(ctx, store.Fixture{AuditEvents: 730, Now: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	l.invite("ria@agency.example")
	total := countAudit(t, st)
	dir := t.TempDir()
	a1 := filepath.Join(dir, "audit-1.jsonl")

	out := l.mustCmd("audit", "export", "--until", "180d", "--out", a1)
	if !strings.Contains(out, "lanyard audit prune --until 180d --archive "+a1) {
		t.Fatalf("export says:\n%s", out)
	}
	lines := archiveLines(t, a1)
	if n := len(lines); n < 350 || n > 380 {
		t.Fatalf("%d events before 180 days ago, want about half of 730", n)
	}
	if fi, _ := os.Stat(a1); fi.Mode().Perm() != 0o600 {
		t.Errorf("archive mode %v, want 0600", fi.Mode().Perm())
	}
	if _, errs, err := l.runCmd("audit", "export", "--until", "180d", "--out", a1); err == nil || !strings.Contains(err.Error()+errs, "already exists") {
		t.Fatalf("export over an existing archive: %v", err)
	}
	// Standard output gets the same lines.
	if stdout := l.mustCmd("audit", "export", "--until", "180d"); stdout != readFile(t, a1) {
		t.Fatal("export to standard output differs from the file")
	}

	// A changed archive, or one for another date, prunes nothing.
	bad := filepath.Join(dir, "changed.jsonl")
	changed := strings.Replace(readFile(t, a1), `"event":"signin.failure"`, `"event":"signin.success"`, 1)
	writeFile(t, bad, changed)
	if _, _, err := l.runCmd("audit", "prune", "--until", "180d", "--archive", bad); err == nil || !strings.Contains(err.Error(), "does not match its hash") {
		t.Fatalf("prune with a changed archive: %v", err)
	}
	if _, _, err := l.runCmd("audit", "prune", "--until", "100d", "--archive", a1); err == nil || !strings.Contains(err.Error(), "export again") {
		t.Fatalf("prune with the archive of another date: %v", err)
	}
	if _, _, err := l.runCmd("audit", "prune", "--until", "180d"); exitCode(err) != 2 {
		t.Fatalf("prune without --archive: %v (exit %d), want a usage error", err, exitCode(err))
	}
	if got := countAudit(t, st); got != total {
		t.Fatalf("refused prunes removed %d events", total-got)
	}

	out = l.mustCmd("audit", "prune", "--until", "180d", "--archive", a1)
	if !strings.Contains(out, "removed "+strconv.Itoa(len(lines))+" events") {
		t.Fatalf("prune says:\n%s", out)
	}
	if got := countAudit(t, st); got != total-len(lines)+1 { // +1: the prune's own event
		t.Fatalf("%d events left, want %d", got, total-len(lines)+1)
	}
	if out := l.mustCmd("audit", "verify"); !strings.Contains(out, "intact from event #") {
		t.Fatalf("verify after the prune:\n%s", out)
	}
	if out := l.mustCmd("audit", "verify", "--archive", a1); !strings.Contains(out, "one chain") {
		t.Fatalf("verify with the archive:\n%s", out)
	}
	if _, _, err := l.runCmd("audit", "verify", "--archive", bad); err == nil {
		t.Fatal("verify accepted a changed archive")
	}
	prune := l.events(evAuditPrune)
	if len(prune) != 1 || !strings.Contains(string(prune[0].Detail), `"by":"cli"`) {
		t.Fatalf("prune events: %+v", prune)
	}

	// A second period: archives verify oldest first, none missing.
	a2 := filepath.Join(dir, "audit-2.jsonl")
	l.mustCmd("audit", "export", "--until", "30d", "--out", a2)
	l.mustCmd("audit", "prune", "--until", "30d", "--archive", a2)
	var report struct {
		Intact   bool             `json:"intact"`
		Archives []archiveSummary `json:"archives"`
	}
	if err := json.Unmarshal([]byte(l.mustCmd("audit", "verify", "--archive", a1, "--archive", a2, "--json")), &report); err != nil ||
		!report.Intact || len(report.Archives) != 2 || report.Archives[1].Prev != report.Archives[0].Head {
		t.Fatalf("verify with both archives: %+v %v", report, err)
	}
	if _, _, err := l.runCmd("audit", "verify", "--archive", a2, "--archive", a1); err == nil {
		t.Fatal("archives out of order verified")
	}
	if _, _, err := l.runCmd("audit", "verify", "--archive", a1); err == nil || !strings.Contains(err.Error(), "not one chain") {
		t.Fatalf("the first archive alone no longer meets the database: %v", err)
	}

	// Events removed outside `audit prune`, with the anchor moved to hide
	// the hole: the chain verifies, but no prune event vouches for the cut.
	db, err := sql.Open("sqlite", filepath.Join(l.data, "lanyard.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var id int64
	var hash string
	if err := db.QueryRow(`SELECT id, hash FROM audit ORDER BY id LIMIT 1 OFFSET 5`).Scan(&id, &hash); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM audit WHERE id <= ?`, id); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE audit_anchor SET through_id = ?, hash = ?`, id, hash); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.runCmd("audit", "verify"); err == nil || !strings.Contains(err.Error(), "no admin.audit.prune event records that prune") {
		t.Fatalf("verify after a hand-made cut: %v", err)
	}
}

func countAudit(t *testing.T, st *store.Store) int {
	t.Helper()
	var n int
	if err := st.DB().QueryRow(`SELECT COUNT(*) FROM audit`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func archiveLines(t *testing.T, path string) []archiveLine {
	t.Helper()
	var out []archiveLine
	for _, line := range strings.Split(strings.TrimSpace(readFile(t, path)), "\n") {
		var l archiveLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("archive line %q: %v", line, err)
		}
		out = append(out, l)
	}
	return out
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}
