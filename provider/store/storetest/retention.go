package storetest

import (
	"testing"
	"time"

	"github.com/lanyard-idp/lanyard/provider/store"
)

// testRetention: the audit trail's archive and prune (AuditCut, EachAudit,
// PruneAudit, the anchor) and the bulk fixture that fills a database.
func testRetention(t *testing.T, open func(t *testing.T) *store.Store) {
	appendAt := func(t *testing.T, s *store.Store, d time.Duration) *store.AuditEvent {
		t.Helper()
		e := &store.AuditEvent{At: at(d), Event: "signin.success", Username: "alice@agency.example", Detail: []byte(`{"n":1}`)}
		must(t, s.AppendAudit(t.Context(), e))
		return e
	}
	verify := func(t *testing.T, s *store.Store, want int64) {
		t.Helper()
		bad, err := s.VerifyAudit(t.Context())
		must(t, err)
		if bad != want {
			t.Fatalf("VerifyAudit = %d, want %d", bad, want)
		}
	}

	t.Run("ExportPruneVerify", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		var evs []*store.AuditEvent
		for i := range 25 {
			evs = append(evs, appendAt(t, s, time.Duration(i)*time.Minute))
		}
		cut, err := s.AuditCut(ctx, at(10*time.Minute))
		must(t, err)
		if cut != evs[9].ID {
			t.Fatalf("AuditCut = %d, want %d (the last event before the date)", cut, evs[9].ID)
		}
		var archived []store.AuditEvent
		must(t, s.EachAudit(ctx, 0, cut, func(e *store.AuditEvent) error { archived = append(archived, *e); return nil }))
		if len(archived) != 10 || archived[0].ID != evs[0].ID || archived[9].Hash != evs[9].Hash {
			t.Fatalf("archived %d events", len(archived))
		}
		// The archive verifies on its own with AuditHash, from "".
		prev := ""
		for _, e := range archived {
			if e.PrevHash != prev || s.AuditHash(prev, &e) != e.Hash {
				t.Fatalf("archived event #%d does not verify", e.ID)
			}
			prev = e.Hash
		}

		wantErr(t, "prune with another hash", func() error { _, err := s.PruneAudit(ctx, cut, evs[8].Hash, t0); return err }(), store.ErrConflict)
		if n := count(t, s, "SELECT COUNT(*) FROM audit"); n != 25 {
			t.Fatalf("a refused prune removed events: %d left", n)
		}
		n, err := s.PruneAudit(ctx, cut, archived[9].Hash, at(time.Hour))
		must(t, err)
		if n != 10 || count(t, s, "SELECT COUNT(*) FROM audit") != 15 {
			t.Fatalf("pruned %d, %d left; want 10 and 15", n, count(t, s, "SELECT COUNT(*) FROM audit"))
		}
		a, err := s.GetAuditAnchor(ctx)
		must(t, err)
		if a.ThroughID != cut || a.Hash != evs[9].Hash || a.Events != 10 {
			t.Fatalf("anchor %+v", a)
		}
		sameTime(t, "PrunedAt", a.PrunedAt, at(time.Hour))
		verify(t, s, 0) // across the cut: the first remaining event chains to the anchor
		appendAt(t, s, time.Hour)
		verify(t, s, 0)
		// Pruning again moves the anchor on and adds up.
		cut2, err := s.AuditCut(ctx, at(20*time.Minute))
		must(t, err)
		n, err = s.PruneAudit(ctx, cut2, evs[19].Hash, at(2*time.Hour))
		must(t, err)
		if a, _ := s.GetAuditAnchor(ctx); n != 10 || a.Events != 20 || a.ThroughID != evs[19].ID {
			t.Fatalf("second prune: %d removed, anchor %+v", n, a)
		}
		verify(t, s, 0)
		_, err = s.PruneAudit(ctx, cut, evs[9].Hash, t0)
		wantErr(t, "pruning what is gone", err, store.ErrNotFound)

		// Removing the first remaining event, or moving the anchor, shows.
		if _, err := s.DB().ExecContext(ctx, "DELETE FROM audit WHERE id = "+itoa(evs[20].ID)); err != nil {
			t.Fatal(err)
		}
		verify(t, s, evs[21].ID)
	})

	t.Run("ForgedAnchor", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		var evs []*store.AuditEvent
		for i := range 5 {
			evs = append(evs, appendAt(t, s, time.Duration(i)*time.Minute))
		}
		_, err := s.PruneAudit(ctx, evs[1].ID, evs[1].Hash, t0)
		must(t, err)
		if _, err := s.DB().ExecContext(ctx, "UPDATE audit_anchor SET hash = "+quote(evs[0].Hash)); err != nil {
			t.Fatal(err)
		}
		verify(t, s, evs[2].ID)
	})

	t.Run("CutFollowsTheChain", func(t *testing.T) {
		// An event written with a late clock stays with those after it: the
		// cut is a prefix of the chain, never a hole in it.
		s := open(t)
		ctx := t.Context()
		e0 := appendAt(t, s, 0)
		appendAt(t, s, 5*time.Minute) // late clock
		appendAt(t, s, 2*time.Minute)
		cut, err := s.AuditCut(ctx, at(3*time.Minute))
		must(t, err)
		if cut != e0.ID {
			t.Fatalf("AuditCut = %d, want %d", cut, e0.ID)
		}
		cut, err = s.AuditCut(ctx, at(time.Hour))
		must(t, err)
		if last, _ := s.LastAuditID(ctx); cut != last {
			t.Fatalf("AuditCut after every event = %d, want the newest %d", cut, last)
		}
		if cut, _ := s.AuditCut(ctx, at(-time.Hour)); cut != 0 {
			t.Fatalf("AuditCut before every event = %d, want 0", cut)
		}
	})

	t.Run("FixtureAndBatches", func(t *testing.T) {
		// More events than one prune batch, made by the bulk fixture.
		s := open(t)
		ctx := t.Context()
		first := appendAt(t, s, -time.Hour)
		f := store.Fixture{Officers: 40, Tokens: 101, AuditEvents: 12_345, PasswordHash: "$argon2id$fixture",
			TOTPSecret: []byte("sealed"), Documents: map[string]string{"privacy": "1", "terms": "2"}, Now: t0}
		must(t, s.GenerateFixture(ctx, f))
		for table, want := range map[string]int{"users": 40, "totp": 40, "acceptances": 80, "oauth": 101, "audit": 12_346} {
			if n := count(t, s, "SELECT COUNT(*) FROM "+table); n != want {
				t.Errorf("%s: %d rows, want %d", table, n, want)
			}
		}
		u, err := s.UserByUsername(ctx, store.FixtureUsername(40))
		must(t, err)
		if u.ID != store.FixtureUserID(40) || u.State != store.UserActive || u.PasswordInitial || u.PasswordHash != f.PasswordHash {
			t.Fatalf("fixture officer %+v", u)
		}
		if acc, err := s.Acceptances(ctx, u.ID); err != nil || len(acc) != 2 {
			t.Fatalf("acceptances %v %v", acc, err)
		}
		if tt, err := s.TOTPByUser(ctx, u.ID); err != nil || !tt.Confirmed || string(tt.Secret) != "sealed" {
			t.Fatalf("totp %+v %v", tt, err)
		}
		// The console finds the fixture's officers as it finds any.
		if found, err := s.ListUsersPage(ctx, store.UserQuery{Search: "officer 40"}); err != nil || len(found) != 1 || found[0].ID != u.ID {
			t.Fatalf("searching the fixture's officer 40: %+v, %v", found, err)
		}
		verify(t, s, 0) // the fixture's events chain after the one before
		wantErr(t, "second fixture", s.GenerateFixture(ctx, f), store.ErrConflict)

		var through *store.AuditEvent
		i := 0
		must(t, s.EachAudit(ctx, first.ID, 0, func(e *store.AuditEvent) error {
			if i++; i == 11_000 {
				c := *e
				through = &c
			}
			return nil
		}))
		n, err := s.PruneAudit(ctx, through.ID, through.Hash, t0)
		must(t, err)
		if n != 11_001 {
			t.Fatalf("pruned %d events, want 11001", n)
		}
		verify(t, s, 0)
		if a, _ := s.GetAuditAnchor(ctx); a.Events != 11_001 || a.ThroughID != through.ID {
			t.Fatalf("anchor %+v", a)
		}
	})
}
