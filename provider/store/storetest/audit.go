package storetest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lanyard-idp/lanyard/provider/store"
)

func testAudit(t *testing.T, open func(t *testing.T) *store.Store) {
	t.Run("Chain", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		bad, err := s.VerifyAudit(ctx)
		must(t, err)
		if bad != 0 {
			t.Fatalf("empty trail: bad id %d", bad)
		}
		events := []*store.AuditEvent{
			{At: t0, Event: "invite", UserID: "u1", Username: "alice@agency.example", Detail: []byte(`{"by":"admin"}`)},
			{At: at(time.Minute), Event: "signin.failure", UserID: "u1", ClientAddr: "192.0.2.1", UserAgent: "curl"},
			{At: at(2 * time.Minute), Event: "signin.success", UserID: "u1", ClientID: "docs-portal"},
			{At: at(3 * time.Minute), Event: "signin.success", UserID: "u2"},
			{At: at(4 * time.Minute), Event: "signinx", UserID: "u2"},
		}
		prev := ""
		var lastID int64
		for _, e := range events {
			must(t, s.AppendAudit(ctx, e))
			if e.ID <= lastID || e.PrevHash != prev || len(e.Hash) != 64 {
				t.Fatalf("appended %+v (previous id %d, hash %q)", e, lastID, prev)
			}
			lastID, prev = e.ID, e.Hash
		}
		sameTime(t, "At written back", events[0].At, t0)

		all, err := s.Audit(ctx, store.AuditFilter{})
		must(t, err)
		if len(all) != 5 || all[0].Event != "invite" || all[4].Event != "signinx" {
			t.Fatalf("Audit(all) = %+v", all)
		}
		a := all[0]
		if a.ID != events[0].ID || a.Username != "alice@agency.example" || string(a.Detail) != `{"by":"admin"}` ||
			a.Hash != events[0].Hash || a.PrevHash != "" {
			t.Fatalf("loaded %+v", a)
		}
		sameTime(t, "At", a.At, t0)
		if all[1].ClientAddr != "192.0.2.1" || all[1].UserAgent != "curl" || all[2].ClientID != "docs-portal" {
			t.Fatalf("fields lost: %+v %+v", all[1], all[2])
		}

		for _, tc := range []struct {
			name string
			f    store.AuditFilter
			want []string // events
		}{
			{"user", store.AuditFilter{UserID: "u2"}, []string{"signin.success", "signinx"}},
			{"exact event", store.AuditFilter{Event: "signin.success"}, []string{"signin.success", "signin.success"}},
			{"prefix", store.AuditFilter{Event: "signin."}, []string{"signin.failure", "signin.success", "signin.success"}},
			{"since", store.AuditFilter{Since: at(3 * time.Minute)}, []string{"signin.success", "signinx"}},
			{"after id", store.AuditFilter{AfterID: events[2].ID}, []string{"signin.success", "signinx"}},
			{"limit", store.AuditFilter{Limit: 2}, []string{"invite", "signin.failure"}},
			{"combined", store.AuditFilter{UserID: "u1", Event: "signin.", Limit: 1}, []string{"signin.failure"}},
			{"no match", store.AuditFilter{Event: "logout"}, nil},
			{"events", store.AuditFilter{Events: []store.Event{"invite", "signinx"}}, []string{"invite", "signinx"}},
			{"events and user", store.AuditFilter{UserID: "u1", Events: []store.Event{"invite", "signinx", "signin.success"}}, []string{"invite", "signin.success"}},
			{"newest", store.AuditFilter{Newest: true, Limit: 2}, []string{"signinx", "signin.success"}},
			{"newest of a user", store.AuditFilter{UserID: "u1", Newest: true}, []string{"signin.success", "signin.failure", "invite"}},
		} {
			got, err := s.Audit(ctx, tc.f)
			must(t, err)
			var names []string
			for _, e := range got {
				names = append(names, string(e.Event))
			}
			if len(names) != len(tc.want) {
				t.Errorf("%s: got %v, want %v", tc.name, names, tc.want)
				continue
			}
			for i := range names {
				if names[i] != tc.want[i] {
					t.Errorf("%s: got %v, want %v", tc.name, names, tc.want)
				}
			}
		}

		bad, err = s.VerifyAudit(ctx)
		must(t, err)
		if bad != 0 {
			t.Fatalf("intact chain reported bad id %d", bad)
		}

		// Refused input appends nothing.
		wantErr(t, "no event name", s.AppendAudit(ctx, &store.AuditEvent{UserID: "u1"}), store.ErrInvalid)
		wantErr(t, "detail not JSON", s.AppendAudit(ctx, &store.AuditEvent{Event: "x", Detail: []byte("{oops")}), store.ErrInvalid)
		if got, _ := s.Audit(ctx, store.AuditFilter{}); len(got) != 5 {
			t.Fatalf("refused events were appended: %d rows", len(got))
		}
	})

	t.Run("InTransaction", func(t *testing.T) {
		// An event appended in a transaction joins the chain when the
		// transaction commits — after whatever other transactions appended
		// meanwhile — and never if it rolls back.
		s := open(t)
		ctx := t.Context()
		tctx, err := s.BeginTx(ctx)
		must(t, err)
		mine := &store.AuditEvent{Event: "mine"}
		must(t, s.AppendAudit(tctx, mine))
		wantErr(t, "a malformed event in a transaction", s.AppendAudit(tctx, &store.AuditEvent{Event: "x", Detail: []byte("{")}), store.ErrInvalid)
		if mine.ID != 0 || mine.Hash != "" {
			t.Fatalf("filled before the commit: %+v", mine)
		}
		if s.Dialect() == store.DialectPostgres { // SQLite's transaction holds the only writer
			other := &store.AuditEvent{Event: "other"}
			must(t, s.AppendAudit(ctx, other))
			must(t, s.Commit(tctx))
			if mine.PrevHash != other.Hash || mine.ID <= other.ID {
				t.Fatalf("committed after %+v, chained as %+v", other, mine)
			}
		} else {
			must(t, s.Commit(tctx))
		}
		if mine.ID == 0 || len(mine.Hash) != 64 {
			t.Fatalf("not filled at commit: %+v", mine)
		}
		gone := &store.AuditEvent{Event: "gone"}
		tctx, err = s.BeginTx(ctx)
		must(t, err)
		must(t, s.AppendAudit(tctx, gone))
		must(t, s.Rollback(tctx))
		if got, _ := s.Audit(ctx, store.AuditFilter{Event: "gone"}); len(got) != 0 || gone.ID != 0 {
			t.Fatalf("a rolled-back event was stored: %+v", got)
		}
		bad, err := s.VerifyAudit(ctx)
		must(t, err)
		if bad != 0 {
			t.Fatalf("chain broken at #%d", bad)
		}
	})

	t.Run("DefaultTime", func(t *testing.T) {
		s := open(t)
		e := &store.AuditEvent{Event: "x"}
		must(t, s.AppendAudit(t.Context(), e))
		if e.At.IsZero() || e.At.Location() != time.UTC {
			t.Fatalf("At = %v, want now in UTC", e.At)
		}
	})

	t.Run("TamperDetected", func(t *testing.T) {
		for _, tc := range []struct{ name, set string }{
			{"field", "username = 'mallory'"},
			{"detail", "detail = NULL"},
			{"time", "at = at + 1"},
			{"rehashed", "prev_hash = 'x'"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s := open(t)
				ctx := t.Context()
				var ids []int64
				for i := range 4 {
					e := &store.AuditEvent{At: at(time.Duration(i) * time.Second), Event: "e", Username: "alice", Detail: []byte(`{}`)}
					must(t, s.AppendAudit(ctx, e))
					ids = append(ids, e.ID)
				}
				if _, err := s.DB().ExecContext(ctx, "UPDATE audit SET "+tc.set+" WHERE id = "+itoa(ids[2])); err != nil {
					t.Fatal(err)
				}
				bad, err := s.VerifyAudit(ctx)
				must(t, err)
				if bad != ids[2] {
					t.Fatalf("VerifyAudit = %d, want %d", bad, ids[2])
				}
			})
		}
		t.Run("deleted row", func(t *testing.T) {
			s := open(t)
			ctx := t.Context()
			var ids []int64
			for range 4 {
				e := &store.AuditEvent{Event: "e"}
				must(t, s.AppendAudit(ctx, e))
				ids = append(ids, e.ID)
			}
			if _, err := s.DB().ExecContext(ctx, "DELETE FROM audit WHERE id = "+itoa(ids[1])); err != nil {
				t.Fatal(err)
			}
			bad, err := s.VerifyAudit(ctx)
			must(t, err)
			if bad != ids[2] {
				t.Fatalf("VerifyAudit = %d, want %d (the row after the hole)", bad, ids[2])
			}
		})
	})
	t.Run("Keyed", func(t *testing.T) { testAuditKeyed(t, open) })
}

// An attacker with a copy of the database (and no key-encryption key) can
// compute the unkeyed SHA-256 chain of older Lanyards, or an HMAC under a key
// of their own. These helpers do what they would: rewrite rows, recompute
// the chain from there, and write it back.

func unkeyedHash(prev string, e *store.AuditEvent) string {
	canon, _ := json.Marshal([]string{strconv.FormatInt(e.At.UnixMicro(), 10), string(e.Event), e.UserID, e.Username,
		e.ClientID, e.ClientAddr, e.UserAgent, string(e.Detail)})
	sum := sha256.Sum256(append([]byte(prev), canon...))
	return hex.EncodeToString(sum[:])
}

func hmacHash(key []byte) func(string, *store.AuditEvent) string {
	return func(prev string, e *store.AuditEvent) string {
		canon, _ := json.Marshal([]string{strconv.FormatInt(e.At.UnixMicro(), 10), string(e.Event), e.UserID, e.Username,
			e.ClientID, e.ClientAddr, e.UserAgent, string(e.Detail)})
		m := hmac.New(sha256.New, key)
		m.Write([]byte(prev))
		m.Write(canon)
		return hex.EncodeToString(m.Sum(nil))
	}
}

// rechain recomputes prev_hash and hash of every event from id from on with
// hash, as the rows now read, and writes them back.
func rechain(t *testing.T, s *store.Store, from int64, hash func(string, *store.AuditEvent) string) {
	t.Helper()
	all, err := s.Audit(t.Context(), store.AuditFilter{})
	must(t, err)
	prev := ""
	for i := range all {
		e := &all[i]
		if e.ID >= from {
			e.PrevHash, e.Hash = prev, hash(prev, e)
			sqlExec(t, s, "UPDATE audit SET prev_hash = '"+e.PrevHash+"', hash = '"+e.Hash+"' WHERE id = "+itoa(e.ID))
		}
		prev = e.Hash
	}
}

func sqlExec(t *testing.T, s *store.Store, q string) {
	t.Helper()
	if _, err := s.DB().ExecContext(t.Context(), q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func appendN(t *testing.T, s *store.Store, n int) []int64 {
	t.Helper()
	var ids []int64
	for i := range n {
		e := &store.AuditEvent{At: at(time.Duration(i) * time.Second), Event: "signin.success", Username: "alice", Detail: []byte(`{"n":` + strconv.Itoa(i) + `}`)}
		must(t, s.AppendAudit(t.Context(), e))
		ids = append(ids, e.ID)
	}
	return ids
}

func check(t *testing.T, s *store.Store) store.AuditCheck {
	t.Helper()
	c, err := s.CheckAudit(t.Context())
	must(t, err)
	return c
}

func testAuditKeyed(t *testing.T, open func(t *testing.T) *store.Store) {
	t.Run("HeadAndKey", func(t *testing.T) {
		s := open(t)
		ids := appendN(t, s, 3)
		all, err := s.Audit(t.Context(), store.AuditFilter{})
		must(t, err)
		for i := range all {
			if want := hmacHash(AuditKey)(all[i].PrevHash, &all[i]); all[i].Hash != want {
				t.Fatalf("event #%d hash %s, want the HMAC under the audit key", all[i].ID, all[i].Hash)
			}
			if s.AuditHash(all[i].PrevHash, &all[i]) != all[i].Hash {
				t.Fatal("AuditHash disagrees with the stored hash")
			}
		}
		c := check(t, s)
		if c.BadID != 0 || c.Events != 3 || c.HeadID != ids[2] || c.HeadHash != all[2].Hash || c.UnkeyedThrough != 0 {
			t.Fatalf("CheckAudit = %+v", c)
		}
	})

	// Rewriting an event and recomputing the chain after it — the unkeyed
	// way, or keyed under a key of one's own — is found at the rewritten
	// event; so is truncating the tail and recomputing.
	for _, tc := range []struct {
		name string
		hash func(string, *store.AuditEvent) string
	}{
		{"recomputed unkeyed", unkeyedHash},
		{"recomputed under another key", hmacHash([]byte("mallory's own key, 32 bytes long"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			ids := appendN(t, s, 5)
			sqlExec(t, s, "UPDATE audit SET username = 'mallory' WHERE id = "+itoa(ids[2]))
			rechain(t, s, ids[2], tc.hash)
			if c := check(t, s); c.BadID != ids[2] || c.Problem == "" {
				t.Fatalf("CheckAudit = %+v, want broken at #%d", c, ids[2])
			}
		})
		t.Run(tc.name+" from the start", func(t *testing.T) {
			s := open(t)
			ids := appendN(t, s, 4)
			sqlExec(t, s, "DELETE FROM audit WHERE id = "+itoa(ids[0]))
			rechain(t, s, 0, tc.hash)
			if c := check(t, s); c.BadID == 0 {
				t.Fatalf("a trail recomputed from its first event checks: %+v", c)
			}
		})
	}

	// A trail written by an older Lanyard (unkeyed): it still verifies, up to
	// the keyed event the upgrade's migration appends, which vouches for it.
	t.Run("Upgrade", func(t *testing.T) {
		s := open(t)
		ids := appendN(t, s, 4)
		// As an older Lanyard wrote them, before the migration that keys.
		rechain(t, s, 0, unkeyedHash)
		sqlExec(t, s, "DELETE FROM schema_migrations WHERE version = '0008_audit_keyed'")
		if c := check(t, s); c.BadID != ids[3] || !strings.Contains(c.Problem, "not keyed") {
			t.Fatalf("an unkeyed trail before the upgrade: %+v, want its head reported unkeyed", c)
		}
		applied, err := s.Migrate(t.Context())
		must(t, err)
		if len(applied) != 1 || applied[0] != "0008_audit_keyed" {
			t.Fatalf("upgrade applied %v", applied)
		}
		if again, err := s.Migrate(t.Context()); err != nil || len(again) != 0 {
			t.Fatalf("second migrate: %v %v", again, err)
		}
		keyed, err := s.Audit(t.Context(), store.AuditFilter{Event: string(store.EventAuditKeyed)})
		must(t, err)
		if len(keyed) != 1 || string(keyed[0].Detail) != `{"unkeyed_through":`+itoa(ids[3])+`}` {
			t.Fatalf("keyed events: %+v", keyed)
		}
		more := appendN(t, s, 2)
		c := check(t, s)
		if c.BadID != 0 || c.UnkeyedThrough != ids[3] || c.HeadID != more[1] || c.Events != 7 {
			t.Fatalf("CheckAudit after the upgrade = %+v", c)
		}

		// The unkeyed part cannot be rewritten either: the keyed event holds
		// its last hash.
		sqlExec(t, s, "UPDATE audit SET username = 'mallory' WHERE id = "+itoa(ids[1]))
		rechain(t, s, ids[1], func(prev string, e *store.AuditEvent) string {
			if e.ID <= ids[3] {
				return unkeyedHash(prev, e)
			}
			return e.Hash
		})
		if c := check(t, s); c.BadID != keyed[0].ID {
			t.Fatalf("rewritten unkeyed events: %+v, want broken at the keyed event #%d", c, keyed[0].ID)
		}
	})

	// A rolling upgrade: nodes of the older version, still running, write
	// unkeyed events after the upgrade keyed the chain. They are accepted in
	// the upgrade's first store.UpgradeGrace, and only there; changing one
	// is found at the keyed event after it.
	// upgraded returns a store whose unkeyed trail the audit-keying
	// migration keyed just now, and a writer of the events after it:
	// keyed, or unkeyed as a node of the older version chains them.
	upgraded := func(t *testing.T) (*store.Store, func(after time.Duration, unkeyed bool) int64) {
		s := open(t)
		appendN(t, s, 2)
		rechain(t, s, 0, unkeyedHash)
		sqlExec(t, s, "DELETE FROM schema_migrations WHERE version = '0008_audit_keyed'")
		_, err := s.Migrate(t.Context())
		must(t, err)
		keyed, err := s.Audit(t.Context(), store.AuditFilter{Event: string(store.EventAuditKeyed)})
		must(t, err)
		if len(keyed) != 1 {
			t.Fatalf("%d keyed events", len(keyed))
		}
		at := keyed[0].At
		return s, func(after time.Duration, unkeyed bool) int64 {
			t.Helper()
			e := &store.AuditEvent{At: at.Add(after), Event: "signin.success", Username: "alice"}
			must(t, s.AppendAudit(t.Context(), e))
			if unkeyed {
				rechain(t, s, e.ID, unkeyedHash)
			}
			return e.ID
		}
	}
	t.Run("RollingUpgrade", func(t *testing.T) {
		s, write := upgraded(t)
		old := write(time.Hour, true)
		write(2*time.Hour, false)
		// Nodes' clocks and transactions overlap a little: an older node's
		// event may be dated a moment before the event chained before it.
		write(2*time.Hour-time.Second, true)
		if c := check(t, s); c.BadID != 0 || c.UnkeyedDuringUpgrade != 2 {
			t.Fatalf("an older node's events during the upgrade: %+v", c)
		}
		late := write(store.UpgradeGrace+time.Hour, true)
		if c := check(t, s); c.BadID != late {
			t.Fatalf("an unkeyed event a day after the upgrade: %+v, want broken at #%d", c, late)
		}
		sqlExec(t, s, "DELETE FROM audit WHERE id = "+itoa(late))
		sqlExec(t, s, "UPDATE audit SET username = 'mallory' WHERE id = "+itoa(old))
		rechain(t, s, old, func(prev string, e *store.AuditEvent) string {
			if e.ID == old {
				return unkeyedHash(prev, e)
			}
			return e.Hash
		})
		if c := check(t, s); c.BadID != old+1 {
			t.Fatalf("a rewritten event of the older node: %+v, want broken at the keyed event after it", c)
		}
	})

	// The upgrade's window is closed by the chain, not by the date an event
	// claims: a database writer appending an unkeyed event dated in the
	// window, at any later time, is found.
	t.Run("RollingUpgradeForgedLater", func(t *testing.T) {
		s, write := upgraded(t)
		for day := range 90 {
			write(time.Duration(day)*24*time.Hour+time.Minute, false)
		}
		forged := write(time.Hour, true)
		if c := check(t, s); c.BadID != forged {
			t.Fatalf("an unkeyed event dated in the upgrade, appended 90 days later: %+v, want broken at #%d", c, forged)
		}
	})
	t.Run("RollingUpgradeForgedBackdated", func(t *testing.T) {
		s, write := upgraded(t)
		write(20*time.Hour, false)
		forged := write(time.Hour, true)
		if c := check(t, s); c.BadID != forged {
			t.Fatalf("an unkeyed event dated hours before the event before it: %+v, want broken at #%d", c, forged)
		}
	})

	// Turning the keyed tail into unkeyed events (a downgrade) is found:
	// unkeyed after keyed, or an unkeyed head; and the next keyed append
	// does not vouch for a trail rewritten unkeyed, since only the upgrade's
	// own event may follow unkeyed ones.
	t.Run("Downgrade", func(t *testing.T) {
		s := open(t)
		ids := appendN(t, s, 5)
		sqlExec(t, s, "UPDATE audit SET username = 'mallory' WHERE id = "+itoa(ids[3]))
		rechain(t, s, ids[3], unkeyedHash)
		if c := check(t, s); c.BadID != ids[3] {
			t.Fatalf("unkeyed events after keyed ones: %+v", c)
		}
		rechain(t, s, 0, unkeyedHash)
		if c := check(t, s); c.BadID != ids[4] || !strings.Contains(c.Problem, "not keyed") {
			t.Fatalf("a wholly unkeyed trail: %+v", c)
		}
		if applied, err := s.Migrate(t.Context()); err != nil || len(applied) != 0 {
			t.Fatalf("migrate after the rewrite: %v %v", applied, err)
		}
		next := appendN(t, s, 1)
		if c := check(t, s); c.BadID != next[0] || !strings.Contains(c.Problem, "not vouched for") {
			t.Fatalf("a keyed event after a rewritten unkeyed trail: %+v", c)
		}
	})
}
