package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/lanyard-idp/lanyard/provider/store"
)

// testBatch is CreateOAuthBatch, the token endpoint's group commit: rows and
// their audit events together, all or nothing, chained in order.
func testBatch(t *testing.T, open func(t *testing.T) *store.Store) {
	batch := func(prefix string, n int) []store.OAuthWrite {
		ws := make([]store.OAuthWrite, n)
		for i := range ws {
			ws[i].Row = oauthRow(store.KindAccess, fmt.Sprintf("%s-%d", prefix, i), fmt.Sprintf("%s-req-%d", prefix, i), "", "")
			if i%3 != 2 { // some rows carry no event
				ws[i].Audit = &store.AuditEvent{At: at(time.Duration(i) * time.Second), Event: "token.issue",
					ClientID: "ci", ClientAddr: "192.0.2.7", Detail: []byte(`{"grant":"client_credentials"}`)}
			}
		}
		return ws
	}
	intact := func(t *testing.T, s *store.Store) {
		t.Helper()
		bad, err := s.VerifyAudit(t.Context())
		must(t, err)
		if bad != 0 {
			t.Fatalf("audit chain broken at #%d", bad)
		}
	}

	t.Run("Stored", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		first := &store.AuditEvent{Event: "invite"}
		must(t, s.AppendAudit(ctx, first))
		ws := batch("b", 7)
		must(t, s.CreateOAuthBatch(ctx, ws))
		prev, lastID := first.Hash, first.ID
		for i, w := range ws {
			got, err := s.GetOAuth(ctx, store.KindAccess, w.Row.Signature)
			must(t, err)
			if got.RequestID != w.Row.RequestID || !got.Active || string(got.Data) != string(w.Row.Data) {
				t.Fatalf("row %d loaded as %+v", i, got)
			}
			sameTime(t, "ExpiresAt", got.ExpiresAt, w.Row.ExpiresAt)
			if w.Audit == nil {
				continue
			}
			if w.Audit.ID <= lastID || w.Audit.PrevHash != prev || len(w.Audit.Hash) != 64 {
				t.Fatalf("event %d: id %d prev %q (want id > %d, prev %q)", i, w.Audit.ID, w.Audit.PrevHash, lastID, prev)
			}
			prev, lastID = w.Audit.Hash, w.Audit.ID
		}
		evs, err := s.Audit(ctx, store.AuditFilter{Event: "token.issue"})
		must(t, err)
		if len(evs) != 5 || evs[4].Hash != prev || evs[0].ClientAddr != "192.0.2.7" || string(evs[0].Detail) != `{"grant":"client_credentials"}` {
			t.Fatalf("stored events: %+v", evs)
		}
		sameTime(t, "event At", evs[1].At, at(time.Second))
		// An append after the batch chains to its last event.
		next := &store.AuditEvent{Event: "logout"}
		must(t, s.AppendAudit(ctx, next))
		if next.PrevHash != prev {
			t.Fatalf("append after the batch chains to %q, want %q", next.PrevHash, prev)
		}
		intact(t, s)
		must(t, s.CreateOAuthBatch(ctx, nil))
	})

	t.Run("AllOrNothing", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		must(t, s.CreateOAuth(ctx, oauthRow(store.KindAccess, "dup-3", "r", "", "")))
		ws := batch("dup", 6)
		wantErr(t, "batch with a duplicate", s.CreateOAuthBatch(ctx, ws), store.ErrConflict)
		if n := count(t, s, "SELECT COUNT(*) FROM oauth"); n != 1 {
			t.Fatalf("%d oauth rows after a failed batch, want 1", n)
		}
		if n := count(t, s, "SELECT COUNT(*) FROM audit"); n != 0 {
			t.Fatalf("%d audit events after a failed batch, want 0", n)
		}
		// The connection the failed batch used is usable (or discarded): the
		// next batches go through.
		for i := range 5 {
			must(t, s.CreateOAuthBatch(ctx, batch(fmt.Sprintf("ok%d", i), 3)))
		}
		if n := count(t, s, "SELECT COUNT(*) FROM audit"); n != 10 {
			t.Fatalf("%d audit events, want 10", n)
		}
		intact(t, s)
	})

	t.Run("BadInput", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		ws := batch("bad", 3)
		ws[2].Row.Kind = "nonsense"
		wantErr(t, "unknown kind", s.CreateOAuthBatch(ctx, ws), store.ErrInvalid)
		ws = batch("bad", 3)
		ws[1].Audit.Detail = []byte("{oops")
		wantErr(t, "detail not JSON", s.CreateOAuthBatch(ctx, ws), store.ErrInvalid)
		ws = batch("bad", 3)
		ws[0].Audit.Event = ""
		wantErr(t, "event without a name", s.CreateOAuthBatch(ctx, ws), store.ErrInvalid)
		if n := count(t, s, "SELECT COUNT(*) FROM oauth"); n != 0 {
			t.Fatalf("%d rows written by refused batches", n)
		}
	})

	t.Run("JoinsTx", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		boom := errors.New("boom")
		err := s.InTx(ctx, func(ctx context.Context) error {
			if err := s.CreateOAuthBatch(ctx, batch("tx", 3)); err != nil {
				return err
			}
			return boom
		})
		wantErr(t, "rolled back", err, boom)
		if n := count(t, s, "SELECT COUNT(*) FROM oauth") + count(t, s, "SELECT COUNT(*) FROM audit"); n != 0 {
			t.Fatalf("%d rows survived the rollback", n)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		// Batches and single appends racing keep one unbroken chain.
		s := open(t)
		errs := race(20, func(i int) error {
			if i%2 == 0 {
				return s.AppendAudit(t.Context(), &store.AuditEvent{Event: "signin.success"})
			}
			return s.CreateOAuthBatch(t.Context(), batch(fmt.Sprintf("c%d", i), 6))
		})
		for _, err := range errs {
			must(t, err)
		}
		if n := count(t, s, "SELECT COUNT(*) FROM audit"); n != 10+10*4 {
			t.Fatalf("%d events, want %d", n, 10+10*4)
		}
		if n := count(t, s, "SELECT COUNT(*) FROM oauth"); n != 60 {
			t.Fatalf("%d rows, want 60", n)
		}
		intact(t, s)
	})
}
