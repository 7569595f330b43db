package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/lanyard-idp/lanyard/provider/store"
)

func testOAuth(t *testing.T, open func(t *testing.T) *store.Store) {
	t.Run("CreateAndLoad", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		r := oauthRow(store.KindRefresh, "refresh-signature", "req-1", "u1", "session-ref")
		r.AccessSignature = "access-signature"
		must(t, s.CreateOAuth(ctx, r))
		got, err := s.GetOAuth(ctx, store.KindRefresh, "refresh-signature")
		must(t, err)
		sum := sha256.Sum256([]byte("access-signature"))
		if got.Kind != store.KindRefresh || got.Signature != "refresh-signature" || got.RequestID != "req-1" ||
			got.ClientID != "docs-portal" || got.Subject != "u1" || got.SessionID != "session-ref" || !got.Active ||
			string(got.Data) != string(r.Data) || got.AccessSignatureHash != hex.EncodeToString(sum[:]) || got.AccessSignature != "" {
			t.Fatalf("loaded %+v", got)
		}
		sameTime(t, "RequestedAt", got.RequestedAt, t0)
		sameTime(t, "ExpiresAt", got.ExpiresAt, at(time.Hour))

		// Stored under the hash only.
		for _, raw := range []string{"refresh-signature", "access-signature"} {
			if n := count(t, s, "SELECT COUNT(*) FROM oauth WHERE signature_hash = "+quote(raw)+
				" OR access_signature_hash = "+quote(raw)); n != 0 {
				t.Fatalf("raw %s is stored", raw)
			}
		}

		_, err = s.GetOAuth(ctx, store.KindAccess, "refresh-signature")
		wantErr(t, "same signature, other kind", err, store.ErrNotFound)
		_, err = s.GetOAuth(ctx, store.KindRefresh, "unknown")
		wantErr(t, "unknown signature", err, store.ErrNotFound)
		wantErr(t, "duplicate", s.CreateOAuth(ctx, oauthRow(store.KindRefresh, "refresh-signature", "req-2", "", "")), store.ErrConflict)
		// The same signature under another kind is another row.
		must(t, s.CreateOAuth(ctx, oauthRow(store.KindAccess, "refresh-signature", "req-1", "u1", "")))

		wantErr(t, "unknown kind", s.CreateOAuth(ctx, oauthRow("token", "x", "req", "", "")), store.ErrInvalid)
		wantErr(t, "no signature", s.CreateOAuth(ctx, oauthRow(store.KindCode, "", "req", "", "")), store.ErrInvalid)
		wantErr(t, "no request id", s.CreateOAuth(ctx, oauthRow(store.KindCode, "x", "", "", "")), store.ErrInvalid)
	})

	t.Run("DeactivateOnce", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		must(t, s.CreateOAuth(ctx, oauthRow(store.KindCode, "code", "req", "u1", "")))
		must(t, s.DeactivateOAuth(ctx, store.KindCode, "code"))
		wantErr(t, "second deactivation", s.DeactivateOAuth(ctx, store.KindCode, "code"), store.ErrConflict)
		wantErr(t, "unknown", s.DeactivateOAuth(ctx, store.KindCode, "nope"), store.ErrNotFound)
		got, err := s.GetOAuth(ctx, store.KindCode, "code")
		must(t, err)
		if got.Active || got.RequestID != "req" {
			t.Fatalf("inactive row: %+v", got)
		}
		must(t, s.DeleteOAuth(ctx, store.KindCode, "code"))
		_, err = s.GetOAuth(ctx, store.KindCode, "code")
		wantErr(t, "after delete", err, store.ErrNotFound)
		must(t, s.DeleteOAuth(ctx, store.KindCode, "code")) // idempotent
	})

	t.Run("ByRequestID", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		for _, r := range []*store.OAuthRow{
			oauthRow(store.KindAccess, "a1", "req-1", "u1", ""),
			oauthRow(store.KindAccess, "a2", "req-1", "u1", ""),
			oauthRow(store.KindRefresh, "r1", "req-1", "u1", ""),
			oauthRow(store.KindAccess, "a3", "req-2", "u1", ""),
		} {
			must(t, s.CreateOAuth(ctx, r))
		}
		must(t, s.DeactivateOAuthByRequestID(ctx, store.KindAccess, "req-1"))
		must(t, s.DeactivateOAuthByRequestID(ctx, store.KindAccess, "req-none"))
		active := func(kind, sig string) bool {
			t.Helper()
			r, err := s.GetOAuth(ctx, kind, sig)
			must(t, err)
			return r.Active
		}
		if active(store.KindAccess, "a1") || active(store.KindAccess, "a2") {
			t.Fatal("access tokens of req-1 still active")
		}
		if !active(store.KindRefresh, "r1") || !active(store.KindAccess, "a3") {
			t.Fatal("another kind or request was deactivated")
		}
		must(t, s.DeleteOAuthByRequestID(ctx, store.KindRefresh, "req-1"))
		if _, err := s.GetOAuth(ctx, store.KindRefresh, "r1"); !isNotFound(err) {
			t.Fatalf("refresh of req-1 after delete: %v", err)
		}
		if _, err := s.GetOAuth(ctx, store.KindAccess, "a1"); err != nil {
			t.Fatal("delete by request id removed another kind")
		}
	})

	t.Run("RevokeBySubjectAndSession", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		kinds := []string{store.KindCode, store.KindAccess, store.KindRefresh, store.KindPKCE, store.KindOIDC}
		for _, sub := range []string{"alice", "bob", ""} {
			for _, k := range kinds {
				must(t, s.CreateOAuth(ctx, oauthRow(k, k+"-"+sub, "req-"+sub, sub, "sess-"+sub)))
			}
		}
		check := func(sub string, revoked bool) {
			t.Helper()
			for _, k := range kinds {
				r, err := s.GetOAuth(ctx, k, k+"-"+sub)
				must(t, err)
				wantActive := !revoked || k == store.KindPKCE || k == store.KindOIDC
				if r.Active != wantActive {
					t.Errorf("%s of %q: active %v, want %v", k, sub, r.Active, wantActive)
				}
			}
		}
		must(t, s.RevokeOAuthBySubject(ctx, "alice"))
		check("alice", true)
		check("bob", false)
		check("", false)
		must(t, s.RevokeOAuthBySession(ctx, "sess-bob"))
		check("bob", true)
		check("", false)
		wantErr(t, "empty subject", s.RevokeOAuthBySubject(ctx, ""), store.ErrInvalid)
		wantErr(t, "empty session", s.RevokeOAuthBySession(ctx, ""), store.ErrInvalid)
		check("", false)
	})
}

func testAuthRequests(t *testing.T, open func(t *testing.T) *store.Store) {
	s := open(t)
	ctx := t.Context()
	a := &store.AuthRequest{ID: "ar-1", ClientID: "docs-portal", Query: "response_type=code&client_id=docs-portal", CreatedAt: t0, ExpiresAt: at(10 * time.Minute)}
	must(t, s.CreateAuthRequest(ctx, a))
	got, err := s.AuthRequestByID(ctx, "ar-1", at(time.Minute))
	must(t, err)
	if got.ID != "ar-1" || got.ClientID != "docs-portal" || got.Query != a.Query {
		t.Fatalf("loaded %+v", got)
	}
	sameTime(t, "CreatedAt", got.CreatedAt, t0)
	sameTime(t, "ExpiresAt", got.ExpiresAt, at(10*time.Minute))
	_, err = s.AuthRequestByID(ctx, "ar-1", at(10*time.Minute))
	wantErr(t, "at expiry", err, store.ErrNotFound)
	_, err = s.AuthRequestByID(ctx, "nope", t0)
	wantErr(t, "unknown", err, store.ErrNotFound)
	wantErr(t, "duplicate", s.CreateAuthRequest(ctx, &store.AuthRequest{ID: "ar-1", ClientID: "x", ExpiresAt: at(time.Hour)}), store.ErrConflict)
	wantErr(t, "no expiry", s.CreateAuthRequest(ctx, &store.AuthRequest{ID: "ar-2", ClientID: "x"}), store.ErrInvalid)
	wantErr(t, "no client", s.CreateAuthRequest(ctx, &store.AuthRequest{ID: "ar-2", ExpiresAt: at(time.Hour)}), store.ErrInvalid)
	wantErr(t, "no id", s.CreateAuthRequest(ctx, &store.AuthRequest{ClientID: "x", ExpiresAt: at(time.Hour)}), store.ErrInvalid)
	_, err = s.AuthRequestByID(ctx, "ar-2", t0)
	wantErr(t, "refused request stored", err, store.ErrNotFound)
	must(t, s.DeleteAuthRequest(ctx, "ar-1"))
	_, err = s.AuthRequestByID(ctx, "ar-1", t0)
	wantErr(t, "after delete", err, store.ErrNotFound)
	must(t, s.DeleteAuthRequest(ctx, "ar-1"))
}

func testGC(t *testing.T, open func(t *testing.T) *store.Store) {
	t.Run("EveryKind", func(t *testing.T) { testGCEveryKind(t, open) })
	t.Run("Many", func(t *testing.T) {
		// More expired rows than one DELETE statement takes.
		s := open(t)
		ctx := t.Context()
		const n = 4321
		must(t, s.InTx(ctx, func(ctx context.Context) error {
			for i := range n {
				r := oauthRow(store.KindAccess, fmt.Sprintf("sig-%d", i), fmt.Sprintf("req-%d", i), "", "")
				r.ExpiresAt = at(time.Duration(i) * time.Millisecond)
				if err := s.CreateOAuth(ctx, r); err != nil {
					return err
				}
			}
			return nil
		}))
		must(t, s.CreateOAuth(ctx, oauthRow(store.KindRefresh, "live", "req", "", ""))) // expires at t0+1h
		got, err := s.DeleteExpired(ctx, at(time.Minute))
		must(t, err)
		if got != n {
			t.Fatalf("DeleteExpired removed %d rows, want %d", got, n)
		}
		if _, err := s.GetOAuth(ctx, store.KindRefresh, "live"); err != nil {
			t.Fatal("the unexpired row went too")
		}
	})
}

func testGCEveryKind(t *testing.T, open func(t *testing.T) *store.Store) {
	s := open(t)
	ctx := t.Context()
	now := at(24 * time.Hour)
	u := newUser(t, s, "alice")

	// Expired at now: 2 oauth rows, 1 session, 1 auth request, 1 throttle row.
	old := oauthRow(store.KindAccess, "old", "req-old", u.ID, "")
	old.ExpiresAt = now.Add(-time.Second)
	must(t, s.CreateOAuth(ctx, old))
	must(t, s.CreateOAuth(ctx, oauthRow(store.KindAccess, "lapsed", "req", u.ID, ""))) // expires at t0+1h
	fresh := oauthRow(store.KindRefresh, "fresh-rt", "req", u.ID, "")
	fresh.ExpiresAt = now.Add(time.Hour)
	must(t, s.CreateOAuth(ctx, fresh))
	forever := oauthRow(store.KindPKCE, "no-expiry", "req", u.ID, "")
	forever.ExpiresAt = time.Time{}
	must(t, s.CreateOAuth(ctx, forever))

	deadSession := newSession(t, s, u.ID, "dead", t0, now.Add(-time.Minute))
	liveSession := newSession(t, s, u.ID, "live", t0, now.Add(time.Minute))
	must(t, s.CreateAuthRequest(ctx, &store.AuthRequest{ID: "old", ClientID: "c", ExpiresAt: now.Add(-time.Minute)}))
	must(t, s.CreateAuthRequest(ctx, &store.AuthRequest{ID: "new", ClientID: "c", ExpiresAt: now.Add(time.Minute)}))

	// Throttle (retention 24h by default): a window started 25h ago with no
	// lock goes; one started 25h ago but locked past now stays; a recent one stays.
	_, err := s.RecordFailure(ctx, "stale", now.Add(-25*time.Hour), time.Minute)
	must(t, err)
	_, err = s.RecordFailure(ctx, "stale-locked", now.Add(-25*time.Hour), time.Minute)
	must(t, err)
	must(t, s.Lock(ctx, "stale-locked", now.Add(time.Hour), 1))
	_, err = s.RecordFailure(ctx, "recent", now.Add(-time.Hour), time.Minute)
	must(t, err)

	// Used recovery codes are kept.
	must(t, s.ReplaceRecoveryCodes(ctx, u.ID, []string{"h1", "h2"}))
	must(t, s.UseRecoveryCode(ctx, u.ID, "h1", t0))

	n, err := s.DeleteExpired(ctx, now)
	must(t, err)
	if n != 5 {
		t.Fatalf("DeleteExpired removed %d rows, want 5", n)
	}
	for _, c := range []struct {
		kind, sig string
		kept      bool
	}{
		{store.KindAccess, "old", false}, {store.KindAccess, "lapsed", false},
		{store.KindRefresh, "fresh-rt", true}, {store.KindPKCE, "no-expiry", true},
	} {
		_, err := s.GetOAuth(ctx, c.kind, c.sig)
		if (err == nil) != c.kept {
			t.Errorf("oauth %s/%s: err %v, want kept=%v", c.kind, c.sig, err, c.kept)
		}
	}
	if _, err := s.SessionByID(ctx, liveSession, t0); err != nil {
		t.Error("live session deleted")
	}
	if _, err := s.SessionByID(ctx, deadSession, t0); !isNotFound(err) {
		t.Errorf("dead session kept: %v", err)
	}
	if _, err := s.AuthRequestByID(ctx, "new", t0); err != nil {
		t.Error("live auth request deleted")
	}
	if _, err := s.AuthRequestByID(ctx, "old", t0); !isNotFound(err) {
		t.Errorf("expired auth request kept: %v", err)
	}
	for key, kept := range map[string]bool{"stale": false, "stale-locked": true, "recent": true} {
		th, err := s.GetThrottle(ctx, key)
		must(t, err)
		if (th.Failures > 0 || th.Locks > 0) != kept {
			t.Errorf("throttle %s: %+v, want kept=%v", key, th, kept)
		}
	}
	if n := count(t, s, "SELECT COUNT(*) FROM recovery_codes"); n != 2 {
		t.Errorf("%d recovery codes left, want 2 (used ones kept)", n)
	}
	n, err = s.DeleteExpired(ctx, now)
	must(t, err)
	if n != 0 {
		t.Fatalf("second sweep removed %d rows", n)
	}
}
