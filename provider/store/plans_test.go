package store_test

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/lanyard-idp/lanyard/provider/store"
)

// hotQueries are the statements of the request paths, written as the store
// writes them (with literals for the parameters), that must find their rows
// through an index: with a million tokens and ten million audit events a full
// scan is seconds, not microseconds. The flat-cost benchmarks measure the
// result; this test keeps a new query, or a dropped index, from regressing it.
var hotQueries = []struct {
	name, query string
}{
	{"token by signature", `SELECT data FROM oauth WHERE kind = 'access' AND signature_hash = 'x'`},
	{"deactivate token", `UPDATE oauth SET active = 0 WHERE kind = 'refresh' AND signature_hash = 'x' AND active = 1`},
	{"deactivate family", `UPDATE oauth SET active = 0 WHERE kind = 'access' AND request_id = 'r' AND active = 1`},
	{"revoke a user's tokens", `UPDATE oauth SET active = 0 WHERE subject = 'u' AND subject <> '' AND active = 1 AND kind IN ('code', 'access', 'refresh')`},
	{"revoke a session's tokens", `UPDATE oauth SET active = 0 WHERE session_id = 's' AND session_id <> '' AND active = 1 AND kind IN ('code', 'access', 'refresh')`},
	{"expired tokens", `SELECT kind, signature_hash FROM oauth WHERE expires_at IS NOT NULL AND expires_at < 1 LIMIT 500`},
	{"user by username", `SELECT id FROM users WHERE username = 'a@agency.example'`},
	{"user by id", `SELECT username FROM users WHERE id = 'u'`},
	{"session", `SELECT user_id FROM sessions WHERE id_hash = 'h' AND (expires_at IS NULL OR expires_at > 1)`},
	{"a user's sessions", `SELECT id_hash FROM sessions WHERE user_id = 'u' AND (expires_at IS NULL OR expires_at > 1) ORDER BY created_at DESC, id_hash`},
	{"expired sessions", `SELECT id_hash FROM sessions WHERE expires_at IS NOT NULL AND expires_at < 1 LIMIT 500`},
	{"throttle", `SELECT failures FROM throttle WHERE key_name = 'acct:u'`},
	{"authenticator app", `SELECT secret FROM totp WHERE user_id = 'u'`},
	{"acceptances", `SELECT document, version FROM acceptances WHERE user_id = 'u' ORDER BY accepted_at, id`},
	{"audit chain head", `SELECT hash FROM audit ORDER BY id DESC LIMIT 1`},
	{"last audit id", `SELECT MAX(id) FROM audit`},
	{"audit of a user", `SELECT id FROM audit WHERE user_id = 'u' ORDER BY id`},
	{"audit of an event", `SELECT id FROM audit WHERE event = 'signin.failure' ORDER BY id`},
	{"audit since", `SELECT id FROM audit WHERE id >= (SELECT MIN(id) FROM audit WHERE at >= 1) AND at >= 1 ORDER BY id`},
	{"audit tail", `SELECT id FROM audit WHERE id > 5 ORDER BY id LIMIT 1000`},
	{"audit cut", `SELECT MIN(id) FROM audit WHERE at >= 1`},
	{"prune batch", `SELECT id, hash FROM audit WHERE id <= 9 ORDER BY id LIMIT 1 OFFSET 9999`},
}

// mustUse names the index a query's plan must use, where any index would not
// do: a token family keeps every row it ever had until they expire, and only
// its active ones are wanted.
var mustUse = map[string]string{"deactivate family": "oauth_request_active"}

// bigTables are the tables that grow with the deployment.
const bigTables = `oauth|audit|users|sessions|acceptances|totp|throttle`

func TestHotQueriesUseIndexes(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) {
		s := openSQLite(t)
		// A plain "SCAN t" reads the whole table; "SCAN t USING INDEX" or a
		// SEARCH does not. (The rowid order of audit, with a LIMIT or MAX,
		// reads one row: SQLite shows it as a SCAN, allowed below.)
		full := regexp.MustCompile(`^SCAN (` + bigTables + `)$`)
		for _, q := range hotQueries {
			plan := sqlitePlan(t, s, q.query)
			if slices.ContainsFunc(plan, full.MatchString) && !rowidOrder(q.query) {
				t.Errorf("%s reads the whole table:\n%s\n%s", q.name, q.query, strings.Join(plan, "\n"))
			}
			if ix := mustUse[q.name]; ix != "" && !strings.Contains(strings.Join(plan, "\n"), ix) {
				t.Errorf("%s does not use %s:\n%s\n%s", q.name, ix, q.query, strings.Join(plan, "\n"))
			}
		}
	})
	t.Run("PostgreSQL", func(t *testing.T) {
		s := openPostgres(t, postgresURL(t))
		conn, err := s.DB().Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		// Empty tables make a sequential scan the cheapest plan; forbidding
		// it shows whether an index could serve the query at all.
		if _, err := conn.ExecContext(t.Context(), `SET enable_seqscan = off`); err != nil {
			t.Fatal(err)
		}
		full := regexp.MustCompile(`Seq Scan on (` + bigTables + `)\b`)
		for _, q := range hotQueries {
			rows, err := conn.QueryContext(context.Background(), "EXPLAIN "+q.query)
			if err != nil {
				t.Fatalf("%s: %v", q.name, err)
			}
			var plan []string
			for rows.Next() {
				var line string
				rows.Scan(&line)
				plan = append(plan, line)
			}
			rows.Close()
			if full.MatchString(strings.Join(plan, "\n")) {
				t.Errorf("%s reads the whole table:\n%s\n%s", q.name, q.query, strings.Join(plan, "\n"))
			}
			if ix := mustUse[q.name]; ix != "" && !strings.Contains(strings.Join(plan, "\n"), ix) {
				t.Errorf("%s does not use %s:\n%s\n%s", q.name, ix, q.query, strings.Join(plan, "\n"))
			}
		}
	})
}

func sqlitePlan(t *testing.T, s *store.Store, q string) []string {
	t.Helper()
	rows, err := s.DB().QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	return plan
}

// rowidOrder: the audit chain's head and MAX(id) walk the rowid from its end.
func rowidOrder(q string) bool {
	return strings.Contains(q, "ORDER BY id DESC LIMIT 1") || strings.Contains(q, "MAX(id) FROM audit")
}
