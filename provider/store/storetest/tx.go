package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lanyard-idp/lanyard/provider/store"
)

func testTx(t *testing.T, open func(t *testing.T) *store.Store) {
	t.Run("RollbackEveryKind", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		existing := newUser(t, s, "existing")
		tctx, err := s.BeginTx(ctx)
		must(t, err)
		writeEveryKind(t, s, tctx, existing.ID)
		// The transaction sees its own writes.
		if _, err := s.UserByID(tctx, "u-tx"); err != nil {
			t.Fatalf("read own write in the transaction: %v", err)
		}
		must(t, s.Rollback(tctx))
		must(t, s.Rollback(tctx)) // a second rollback is a no-op
		assertNoneOfEveryKind(t, s, ctx, existing.ID)
	})

	t.Run("CommitEveryKind", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		existing := newUser(t, s, "existing")
		tctx, err := s.BeginTx(ctx)
		must(t, err)
		writeEveryKind(t, s, tctx, existing.ID)
		must(t, s.Commit(tctx))
		must(t, s.Rollback(tctx)) // rollback after commit is a no-op
		if err := s.Commit(tctx); err == nil {
			t.Fatal("second commit succeeded")
		}
		if _, err := s.UserByID(ctx, "u-tx"); err != nil {
			t.Fatalf("committed user: %v", err)
		}
		if _, err := s.GetOAuth(ctx, store.KindAccess, "tx-access"); err != nil {
			t.Fatalf("committed token: %v", err)
		}
		if ev, _ := s.Audit(ctx, store.AuditFilter{Event: "tx.test"}); len(ev) != 1 {
			t.Fatalf("committed audit: %d", len(ev))
		}
		// The finished transaction's context works like a plain one again.
		if _, err := s.UserByID(tctx, "u-tx"); err != nil {
			t.Fatalf("read with a finished transaction's context: %v", err)
		}
	})

	t.Run("NoNesting", func(t *testing.T) {
		s := open(t)
		tctx, err := s.BeginTx(t.Context())
		must(t, err)
		defer s.Rollback(tctx)
		_, err = s.BeginTx(tctx)
		wantErr(t, "BeginTx inside a transaction", err, store.ErrTxInProgress)
		// InTx inside a transaction joins it.
		must(t, s.InTx(tctx, func(ctx context.Context) error {
			return s.CreateUser(ctx, &store.User{ID: "u", Username: "u", State: store.UserActive})
		}))
		must(t, s.Rollback(tctx))
		if _, err := s.UserByID(t.Context(), "u"); !isNotFound(err) {
			t.Fatalf("a joined InTx committed on its own: %v", err)
		}
	})

	t.Run("NoTransaction", func(t *testing.T) {
		s := open(t)
		if err := s.Commit(t.Context()); err == nil {
			t.Fatal("Commit without a transaction succeeded")
		}
		if err := s.Rollback(t.Context()); err == nil {
			t.Fatal("Rollback without a transaction succeeded")
		}
	})

	t.Run("InTx", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		create := func(id string) func(ctx context.Context) error {
			return func(ctx context.Context) error {
				return s.CreateUser(ctx, &store.User{ID: id, Username: id, State: store.UserActive})
			}
		}
		must(t, s.InTx(ctx, create("committed")))
		if _, err := s.UserByID(ctx, "committed"); err != nil {
			t.Fatal(err)
		}
		boom := errors.New("boom")
		err := s.InTx(ctx, func(ctx context.Context) error {
			must(t, create("rolled-back")(ctx))
			return boom
		})
		wantErr(t, "InTx error", err, boom)
		if _, err := s.UserByID(ctx, "rolled-back"); !isNotFound(err) {
			t.Fatalf("InTx committed despite the error: %v", err)
		}

		func() {
			defer func() {
				if p := recover(); p != "panic!" {
					t.Fatalf("recovered %v, want the re-panic", p)
				}
			}()
			s.InTx(ctx, func(ctx context.Context) error {
				must(t, create("panicked")(ctx))
				panic("panic!")
			})
		}()
		if _, err := s.UserByID(ctx, "panicked"); !isNotFound(err) {
			t.Fatalf("InTx committed despite the panic: %v", err)
		}
		// The store still works (the connection went back to the pool).
		must(t, s.InTx(ctx, create("after-panic")))
	})

	t.Run("CodeExchange", func(t *testing.T) {
		// What fosite does to redeem a code: invalidate it and issue tokens in
		// one transaction. A failure after the invalidation must leave the
		// code usable and no token behind.
		s := open(t)
		ctx := t.Context()
		must(t, s.CreateOAuth(ctx, oauthRow(store.KindCode, "code", "req", "u1", "")))
		err := s.InTx(ctx, func(ctx context.Context) error {
			if err := s.DeactivateOAuth(ctx, store.KindCode, "code"); err != nil {
				return err
			}
			if err := s.CreateOAuth(ctx, oauthRow(store.KindAccess, "at", "req", "u1", "")); err != nil {
				return err
			}
			return s.CreateOAuth(ctx, oauthRow(store.KindAccess, "at", "req", "u1", "")) // duplicate: fails
		})
		wantErr(t, "failed exchange", err, store.ErrConflict)
		code, err := s.GetOAuth(ctx, store.KindCode, "code")
		must(t, err)
		if !code.Active {
			t.Fatal("the code was consumed by a rolled-back exchange")
		}
		if _, err := s.GetOAuth(ctx, store.KindAccess, "at"); !isNotFound(err) {
			t.Fatalf("a token of the rolled-back exchange exists: %v", err)
		}
	})

	t.Run("CanceledContext", func(t *testing.T) {
		s := open(t)
		cctx, cancel := context.WithCancel(t.Context())
		tctx, err := s.BeginTx(cctx)
		must(t, err)
		must(t, s.CreateUser(tctx, &store.User{ID: "u", Username: "u", State: store.UserActive}))
		cancel()
		if err := s.Commit(tctx); err == nil {
			t.Fatal("commit of a canceled transaction succeeded")
		}
		s.Rollback(tctx)
		if _, err := s.UserByID(t.Context(), "u"); !isNotFound(err) {
			t.Fatalf("a canceled transaction committed: %v", err)
		}
		// And the store is usable afterwards.
		must(t, s.CreateUser(t.Context(), &store.User{ID: "v", Username: "v", State: store.UserActive}))
	})
}

// writeEveryKind writes one row of every kind through ctx.
func writeEveryKind(t *testing.T, s *store.Store, ctx context.Context, existingUser string) {
	t.Helper()
	must(t, s.CreateUser(ctx, &store.User{ID: "u-tx", Username: "tx@agency.example", State: store.UserActive}))
	must(t, s.PutTOTP(ctx, &store.TOTP{UserID: existingUser, Secret: []byte("sealed")}))
	must(t, s.ReplaceRecoveryCodes(ctx, existingUser, []string{"h1"}))
	must(t, s.AddWebAuthnCredential(ctx, &store.WebAuthnCredential{ID: []byte("tx-cred"), UserID: existingUser, PublicKey: []byte("k")}))
	must(t, s.SetWebAuthnHandle(ctx, existingUser, []byte("tx-handle")))
	must(t, s.Accept(ctx, store.Acceptance{UserID: existingUser, Document: "terms", Version: "1"}))
	must(t, s.CreateSession(ctx, &store.Session{ID: "tx-session-id-000000000", UserID: existingUser, ExpiresAt: at(time.Hour)}))
	must(t, s.CreateOAuth(ctx, oauthRow(store.KindAccess, "tx-access", "tx-req", existingUser, "")))
	must(t, s.AppendAudit(ctx, &store.AuditEvent{Event: "tx.test", UserID: existingUser}))
	_, err := s.PutSecretIfAbsent(ctx, "tx-secret", []byte("v"))
	must(t, err)
	must(t, s.AddSigningKey(ctx, &store.SigningKey{KID: "tx-kid", Alg: "RS256", Private: []byte("sealed")}))
	must(t, s.CreateAuthRequest(ctx, &store.AuthRequest{ID: "tx-ar", ClientID: "c", ExpiresAt: at(time.Hour)}))
	_, err = s.RecordFailure(ctx, "tx-throttle", t0, time.Minute)
	must(t, err)
	must(t, s.Lock(ctx, "tx-lock", at(time.Hour), 1))
	must(t, s.ChangePassword(ctx, existingUser, "$argon2id$existing", "$argon2id$changed", false))
}

// assertNoneOfEveryKind checks that nothing writeEveryKind wrote exists.
func assertNoneOfEveryKind(t *testing.T, s *store.Store, ctx context.Context, existingUser string) {
	t.Helper()
	notFound := func(what string, err error) {
		t.Helper()
		if !isNotFound(err) {
			t.Errorf("%s after rollback: err %v, want ErrNotFound", what, err)
		}
	}
	_, err := s.UserByID(ctx, "u-tx")
	notFound("user", err)
	_, err = s.TOTPByUser(ctx, existingUser)
	notFound("TOTP", err)
	if n, _ := s.RecoveryCodesLeft(ctx, existingUser); n != 0 {
		t.Errorf("recovery codes after rollback: %d", n)
	}
	_, err = s.WebAuthnCredentialByID(ctx, []byte("tx-cred"))
	notFound("WebAuthn credential", err)
	_, err = s.WebAuthnHandle(ctx, existingUser)
	notFound("WebAuthn handle", err)
	if a, _ := s.Acceptances(ctx, existingUser); len(a) != 0 {
		t.Errorf("acceptances after rollback: %v", a)
	}
	_, err = s.SessionByID(ctx, "tx-session-id-000000000", t0)
	notFound("session", err)
	_, err = s.GetOAuth(ctx, store.KindAccess, "tx-access")
	notFound("oauth row", err)
	if ev, _ := s.Audit(ctx, store.AuditFilter{}); len(ev) != 0 {
		t.Errorf("audit after rollback: %d events", len(ev))
	}
	_, err = s.GetSecret(ctx, "tx-secret")
	notFound("secret", err)
	if k, _ := s.SigningKeys(ctx); len(k) != 0 {
		t.Errorf("signing keys after rollback: %d", len(k))
	}
	_, err = s.AuthRequestByID(ctx, "tx-ar", t0)
	notFound("auth request", err)
	for _, key := range []string{"tx-throttle", "tx-lock"} {
		if th, _ := s.GetThrottle(ctx, key); th != (store.Throttle{Key: key}) {
			t.Errorf("throttle %s after rollback: %+v", key, th)
		}
	}
	u, err := s.UserByID(ctx, existingUser)
	must(t, err)
	if u.PasswordHash != "$argon2id$existing" {
		t.Errorf("password after rollback: %q", u.PasswordHash)
	}
	// Still empty after a rollback, the audit chain restarts cleanly.
	must(t, s.AppendAudit(ctx, &store.AuditEvent{Event: "after"}))
	if bad, err := s.VerifyAudit(ctx); err != nil || bad != 0 {
		t.Errorf("VerifyAudit after rollback: %d, %v", bad, err)
	}
}

func testTimes(t *testing.T, open func(t *testing.T) *store.Store) {
	s := open(t)
	ctx := t.Context()
	// Non-UTC zones with sub-microsecond parts, around a DST change and far
	// from the epoch; each must come back UTC and equal to the microsecond.
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		ny = time.FixedZone("EST", -5*3600)
	}
	for i, tm := range []time.Time{
		t0,
		time.Date(2026, 3, 8, 2, 30, 0, 999, ny),
		time.Date(1999, 12, 31, 23, 59, 59, 999999999, time.FixedZone("X", -12*3600)),
		time.Date(2262, 1, 1, 0, 0, 0, 1000, time.UTC),
	} {
		id := string(rune('a'+i)) + "-user"
		must(t, s.CreateUser(ctx, &store.User{ID: id, Username: id, State: store.UserActive, CreatedAt: tm, UpdatedAt: tm, LastSignInAt: tm, InviteExpiresAt: tm}))
		u, err := s.UserByID(ctx, id)
		must(t, err)
		for what, got := range map[string]time.Time{"CreatedAt": u.CreatedAt, "UpdatedAt": u.UpdatedAt, "LastSignInAt": u.LastSignInAt, "InviteExpiresAt": u.InviteExpiresAt} {
			sameTime(t, what, got, tm)
			if got.Nanosecond()%1000 != 0 {
				t.Fatalf("%s kept sub-microsecond digits: %v", what, got)
			}
		}
	}
	// The zero time is "not set" and comes back zero.
	must(t, s.CreateUser(ctx, &store.User{ID: "z", Username: "z", State: store.UserActive, CreatedAt: t0}))
	u, err := s.UserByID(ctx, "z")
	must(t, err)
	if !u.LastSignInAt.IsZero() || !u.InviteExpiresAt.IsZero() {
		t.Fatalf("zero times came back as %v, %v", u.LastSignInAt, u.InviteExpiresAt)
	}
}
