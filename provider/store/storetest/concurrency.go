package storetest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/lanyard-idp/lanyard/provider/store"
)

// testConcurrency races real goroutines against one store: every
// exactly-once operation must have exactly one winner, every counter must
// count every racer.
func testConcurrency(t *testing.T, open func(t *testing.T) *store.Store) {
	const n = 20

	t.Run("LogoutClaims", func(t *testing.T) { testLogoutConcurrency(t, open) })

	t.Run("DeactivateOAuth", func(t *testing.T) {
		s := open(t)
		must(t, s.CreateOAuth(t.Context(), oauthRow(store.KindCode, "code", "req", "u1", "")))
		errs := race(n, func(int) error { return s.DeactivateOAuth(t.Context(), store.KindCode, "code") })
		exactlyOnce(t, "DeactivateOAuth", errs, store.ErrConflict)
	})

	t.Run("CodeExchangeInTx", func(t *testing.T) {
		// The full redemption: one transaction per racer; one redeems, one
		// access token exists.
		s := open(t)
		must(t, s.CreateOAuth(t.Context(), oauthRow(store.KindCode, "code", "req", "u1", "")))
		errs := race(n, func(i int) error {
			return s.InTx(t.Context(), func(ctx context.Context) error {
				r, err := s.GetOAuth(ctx, store.KindCode, "code")
				if err != nil {
					return err
				}
				if !r.Active {
					return store.ErrConflict
				}
				if err := s.DeactivateOAuth(ctx, store.KindCode, "code"); err != nil {
					return err
				}
				return s.CreateOAuth(ctx, oauthRow(store.KindAccess, fmt.Sprintf("at-%d", i), "req", "u1", ""))
			})
		})
		wins := 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrSerialization):
			default:
				t.Fatalf("unexpected error %v", err)
			}
		}
		if wins != 1 {
			t.Fatalf("%d redemptions succeeded, want 1", wins)
		}
		tokens := 0
		for i := range n {
			if _, err := s.GetOAuth(t.Context(), store.KindAccess, fmt.Sprintf("at-%d", i)); err == nil {
				tokens++
			}
		}
		if tokens != 1 {
			t.Fatalf("%d access tokens issued, want 1", tokens)
		}
	})

	t.Run("UseTOTPStep", func(t *testing.T) {
		s := open(t)
		u := newUser(t, s, "alice")
		must(t, s.PutTOTP(t.Context(), &store.TOTP{UserID: u.ID, Secret: []byte("sealed"), Confirmed: true, LastStep: 1}))
		errs := race(n, func(int) error { return s.UseTOTPStep(t.Context(), u.ID, 2) })
		exactlyOnce(t, "UseTOTPStep", errs, store.ErrConflict)
	})

	t.Run("UseRecoveryCode", func(t *testing.T) {
		s := open(t)
		u := newUser(t, s, "alice")
		must(t, s.ReplaceRecoveryCodes(t.Context(), u.ID, []string{"h1", "h2"}))
		errs := race(n, func(int) error { return s.UseRecoveryCode(t.Context(), u.ID, "h1", t0) })
		exactlyOnce(t, "UseRecoveryCode", errs, store.ErrNotFound)
		if left, _ := s.RecoveryCodesLeft(t.Context(), u.ID); left != 1 {
			t.Fatalf("%d codes left, want 1", left)
		}
	})

	t.Run("RecordFailure", func(t *testing.T) {
		s := open(t)
		const failures = 50
		counts := make([]int, failures)
		errs := race(failures, func(i int) error {
			th, err := s.RecordFailure(t.Context(), "acct:u1", at(time.Second), time.Hour)
			counts[i] = th.Failures
			return err
		})
		for _, err := range errs {
			must(t, err)
		}
		th, err := s.GetThrottle(t.Context(), "acct:u1")
		must(t, err)
		if th.Failures != failures {
			t.Fatalf("Failures = %d, want %d", th.Failures, failures)
		}
		// Each racer saw a distinct count: 1..50.
		sort.Ints(counts)
		for i, c := range counts {
			if c != i+1 {
				t.Fatalf("returned counts %v, want 1..%d", counts, failures)
			}
		}
	})

	t.Run("ChangePassword", func(t *testing.T) {
		s := open(t)
		u := newUser(t, s, "alice")
		errs := race(n, func(i int) error {
			return s.ChangePassword(t.Context(), u.ID, u.PasswordHash, fmt.Sprintf("$argon2id$new-%d", i), false)
		})
		exactlyOnce(t, "ChangePassword", errs, store.ErrConflict)
		got, err := s.UserByID(t.Context(), u.ID)
		must(t, err)
		for i, err := range errs {
			if err == nil && got.PasswordHash != fmt.Sprintf("$argon2id$new-%d", i) {
				t.Fatalf("stored hash %q is not the winner's", got.PasswordHash)
			}
		}
	})

	t.Run("UpdateWebAuthnUse", func(t *testing.T) {
		s := open(t)
		u := newUser(t, s, "alice")
		must(t, s.AddWebAuthnCredential(t.Context(), &store.WebAuthnCredential{ID: []byte{1}, UserID: u.ID, PublicKey: []byte("k"), SignCount: 3}))
		errs := race(n, func(int) error { return s.UpdateWebAuthnUse(t.Context(), []byte{1}, 3, 4, t0) })
		exactlyOnce(t, "UpdateWebAuthnUse", errs, store.ErrConflict)
	})

	t.Run("PutSecretIfAbsent", func(t *testing.T) {
		s := open(t)
		got := make([]string, n)
		errs := race(n, func(i int) error {
			v, err := s.PutSecretIfAbsent(t.Context(), "cookie-keys", []byte(fmt.Sprintf("value-%d", i)))
			got[i] = string(v)
			return err
		})
		for _, err := range errs {
			must(t, err)
		}
		stored, err := s.GetSecret(t.Context(), "cookie-keys")
		must(t, err)
		for i, v := range got {
			if v != string(stored) {
				t.Fatalf("racer %d got %q, stored is %q", i, v, stored)
			}
		}
	})

	t.Run("AppendAudit", func(t *testing.T) {
		s := open(t)
		errs := race(n, func(i int) error {
			return s.AppendAudit(t.Context(), &store.AuditEvent{Event: "race", Detail: []byte(fmt.Sprintf(`{"i":%d}`, i))})
		})
		for _, err := range errs {
			must(t, err)
		}
		ev, err := s.Audit(t.Context(), store.AuditFilter{})
		must(t, err)
		if len(ev) != n {
			t.Fatalf("%d events, want %d", len(ev), n)
		}
		bad, err := s.VerifyAudit(t.Context())
		must(t, err)
		if bad != 0 {
			t.Fatalf("concurrent appends forked the chain at %d", bad)
		}
	})

	t.Run("ConfirmTOTP", func(t *testing.T) {
		s := open(t)
		u := newUser(t, s, "alice")
		must(t, s.PutTOTP(t.Context(), &store.TOTP{UserID: u.ID, Secret: []byte("sealed")}))
		errs := race(n, func(int) error { return s.ConfirmTOTP(t.Context(), u.ID, 9) })
		exactlyOnce(t, "ConfirmTOTP", errs, store.ErrConflict)
	})

	// Every node's housekeeping expires the due account requests, each
	// auditing what it expired: each request is expired, and audited, once.
	t.Run("ExpireAccountRequests", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		for _, id := range []string{"r1", "r2", "r3"} {
			must(t, s.CreateAccountRequest(ctx, &store.AccountRequest{ID: id, Email: id + "@agency.example", Name: "Kim",
				Token: "token-" + id, CreatedAt: t0, ExpiresAt: at(time.Hour)}))
		}
		var mu sync.Mutex
		seen := map[string]int{}
		errs := race(n, func(int) error {
			return s.InTx(ctx, func(ctx context.Context) error {
				due, err := s.ExpireAccountRequests(ctx, at(2*time.Hour), "")
				if err != nil {
					return err
				}
				for _, r := range due {
					if err := s.AppendAudit(ctx, &store.AuditEvent{At: at(2 * time.Hour), Event: store.EventRequestExpire,
						Username: r.Email, Detail: []byte(`{"request":"` + r.ID + `"}`)}); err != nil {
						return err
					}
				}
				mu.Lock()
				defer mu.Unlock()
				for _, r := range due {
					seen[r.ID]++
				}
				return nil
			})
		})
		for _, err := range errs {
			must(t, err)
		}
		if len(seen) != 3 || seen["r1"] != 1 || seen["r2"] != 1 || seen["r3"] != 1 {
			t.Fatalf("expired (request: times) %v, want each of r1, r2, r3 once", seen)
		}
		evs, err := s.Audit(ctx, store.AuditFilter{Event: string(store.EventRequestExpire)})
		must(t, err)
		if len(evs) != 3 {
			t.Fatalf("%d request.expire events, want 3", len(evs))
		}
	})
}
