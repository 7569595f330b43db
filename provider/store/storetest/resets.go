package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/lanyard-idp/lanyard/provider/store"
)

// testPasswordResets: a link is stored hashed, claimed once by one browser,
// finished once by that browser, voided by a newer link, and gone a day
// after its expiry.
func testPasswordResets(t *testing.T, open func(t *testing.T) *store.Store) {
	reset := func(id, userID string) *store.PasswordReset {
		return &store.PasswordReset{ID: id, UserID: userID, Token: "token-" + id, ClientAddr: "192.0.2.7",
			CreatedAt: t0, ExpiresAt: at(15 * time.Minute)}
	}
	t.Run("Lifecycle", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		u := newUser(t, s, "reset")
		must(t, s.CreatePasswordReset(ctx, reset("p1", u.ID)))
		if n := count(t, s, `SELECT COUNT(*) FROM password_resets WHERE token_hash = 'token-p1'`); n != 0 {
			t.Fatal("the reset token is stored in the clear")
		}
		got, err := s.PasswordResetByToken(ctx, "token-p1")
		must(t, err)
		if got.ID != "p1" || got.UserID != u.ID || got.Status != store.ResetSent || !got.Live() || got.Token != "" || got.ClientAddr != "192.0.2.7" {
			t.Fatalf("loaded %+v", got)
		}
		sameTime(t, "ExpiresAt", got.ExpiresAt, at(15*time.Minute))
		_, err = s.PasswordResetByToken(ctx, "token-p2")
		wantErr(t, "unknown token", err, store.ErrNotFound)
		_, err = s.PasswordResetByToken(ctx, "")
		wantErr(t, "empty token", err, store.ErrNotFound)

		// Finishing needs a claim; a claim needs time left.
		wantErr(t, "finish unclaimed", s.FinishPasswordReset(ctx, "p1", "sid-a", at(time.Minute)), store.ErrConflict)
		wantErr(t, "claim after expiry", s.ClaimPasswordReset(ctx, "p1", "sid-a", at(15*time.Minute)), store.ErrConflict)
		must(t, s.ClaimPasswordReset(ctx, "p1", "sid-a", at(time.Minute)))
		wantErr(t, "second claim", s.ClaimPasswordReset(ctx, "p1", "sid-b", at(2*time.Minute)), store.ErrConflict)
		wantErr(t, "claim of nothing", s.ClaimPasswordReset(ctx, "nope", "sid-b", at(2*time.Minute)), store.ErrNotFound)
		got, err = s.PasswordResetByID(ctx, "p1")
		must(t, err)
		if got.Status != store.ResetClaimed || got.ClaimedSID != "sid-a" {
			t.Fatalf("claimed %+v", got)
		}
		sameTime(t, "ClaimedAt", got.ClaimedAt, at(time.Minute))
		wantErr(t, "finish by another browser", s.FinishPasswordReset(ctx, "p1", "sid-b", at(3*time.Minute)), store.ErrConflict)
		must(t, s.FinishPasswordReset(ctx, "p1", "sid-a", at(3*time.Minute)))
		wantErr(t, "finish twice", s.FinishPasswordReset(ctx, "p1", "sid-a", at(4*time.Minute)), store.ErrConflict)
		wantErr(t, "void a used one", s.VoidPasswordReset(ctx, "p1", store.ResetVoidOtherBrowser), store.ErrConflict)
		got, err = s.PasswordResetByToken(ctx, "token-p1")
		must(t, err)
		if got.Status != store.ResetUsed || got.Live() {
			t.Fatalf("used %+v", got)
		}
		sameTime(t, "DoneAt", got.DoneAt, at(3*time.Minute))

		// Bad input writes nothing.
		wantErr(t, "no token", s.CreatePasswordReset(ctx, &store.PasswordReset{ID: "p9", UserID: u.ID, ExpiresAt: at(time.Hour)}), store.ErrInvalid)
		wantErr(t, "no expiry", s.CreatePasswordReset(ctx, &store.PasswordReset{ID: "p9", UserID: u.ID, Token: "t"}), store.ErrInvalid)
		wantErr(t, "claim without a browser", s.ClaimPasswordReset(ctx, "p1", "", t0), store.ErrInvalid)
		wantErr(t, "void without a reason", s.VoidPasswordReset(ctx, "p1", ""), store.ErrInvalid)
		if n := count(t, s, `SELECT COUNT(*) FROM password_resets`); n != 1 {
			t.Fatalf("%d rows after refused input", n)
		}
	})

	t.Run("NewerLinkVoidsOlder", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		u, other := newUser(t, s, "first"), newUser(t, s, "other")
		must(t, s.CreatePasswordReset(ctx, reset("p1", u.ID)))
		must(t, s.ClaimPasswordReset(ctx, "p1", "sid-a", at(time.Minute)))
		must(t, s.CreatePasswordReset(ctx, reset("o1", other.ID)))
		must(t, s.CreatePasswordReset(ctx, reset("p2", u.ID)))
		old, err := s.PasswordResetByID(ctx, "p1")
		must(t, err)
		if old.Status != store.ResetVoid || old.VoidReason != store.ResetVoidReplaced {
			t.Fatalf("the older link after a newer one: %+v", old)
		}
		wantErr(t, "finish the replaced one", s.FinishPasswordReset(ctx, "p1", "sid-a", at(2*time.Minute)), store.ErrConflict)
		if o, _ := s.PasswordResetByID(ctx, "o1"); o.Status != store.ResetSent {
			t.Fatalf("another account's link was touched: %+v", o)
		}
		must(t, s.VoidPasswordReset(ctx, "p2", store.ResetVoidOtherBrowser))
		wantErr(t, "claim a void one", s.ClaimPasswordReset(ctx, "p2", "sid-a", at(time.Minute)), store.ErrConflict)
		// Deleting the account deletes its links.
		must(t, s.DeleteUser(ctx, u.ID))
		if n := count(t, s, `SELECT COUNT(*) FROM password_resets WHERE user_id = `+quote(u.ID)); n != 0 {
			t.Fatalf("%d links of a deleted account", n)
		}
	})

	t.Run("GC", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		u := newUser(t, s, "gc")
		must(t, s.CreatePasswordReset(ctx, reset("p1", u.ID)))
		_, err := s.DeleteExpired(ctx, at(15*time.Minute+23*time.Hour))
		must(t, err)
		if _, err := s.PasswordResetByID(ctx, "p1"); err != nil {
			t.Fatalf("a link was collected within a day of its expiry: %v", err)
		}
		_, err = s.DeleteExpired(ctx, at(15*time.Minute+25*time.Hour))
		must(t, err)
		_, err = s.PasswordResetByID(ctx, "p1")
		wantErr(t, "after a day", err, store.ErrNotFound)
	})

	t.Run("Races", func(t *testing.T) {
		const n = 20
		s := open(t)
		ctx := t.Context()
		u := newUser(t, s, "race")
		// Racing new links: every request stores one eventually (a loser
		// retries), and one link is live at the end.
		errs := race(n, func(i int) error {
			for range 50 {
				err := s.CreatePasswordReset(ctx, reset(fmt.Sprintf("r%02d", i), u.ID))
				if !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrSerialization) {
					return err
				}
				time.Sleep(time.Millisecond)
			}
			return errors.New("never stored")
		})
		for _, err := range errs {
			must(t, err)
		}
		if live := count(t, s, `SELECT COUNT(*) FROM password_resets WHERE status IN ('sent', 'claimed')`); live != 1 {
			t.Fatalf("%d live links after racing requests, want 1", live)
		}
		var id string
		must(t, s.DB().QueryRowContext(ctx, `SELECT id FROM password_resets WHERE status = 'sent'`).Scan(&id))
		// Racing claims from 20 browsers: one wins.
		exactlyOnce(t, "ClaimPasswordReset", race(n, func(i int) error {
			return s.ClaimPasswordReset(ctx, id, fmt.Sprintf("sid-%d", i), t0)
		}), store.ErrConflict)
		r, err := s.PasswordResetByID(ctx, id)
		must(t, err)
		// Racing finishes from the winner: one wins.
		exactlyOnce(t, "FinishPasswordReset", race(n, func(int) error {
			return s.InTx(ctx, func(ctx context.Context) error { return s.FinishPasswordReset(ctx, id, r.ClaimedSID, t0) })
		}), store.ErrConflict)
	})
}
