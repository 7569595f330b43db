package storetest

import (
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
}
