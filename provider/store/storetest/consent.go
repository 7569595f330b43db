package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/lanyard-idp/lanyard/provider/store"
)

// testConsent covers the remembered consents and the consent page's answer
// on a parked request.
func testConsent(t *testing.T, open func(t *testing.T) *store.Store) {
	t.Run("Remember", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		alice := newUser(t, s, "alice")
		_, err := s.ConsentOf(ctx, alice.ID, "docs")
		wantErr(t, "none yet", err, store.ErrNotFound)
		must(t, s.RememberConsent(ctx, store.Consent{UserID: alice.ID, ClientID: "docs",
			Scopes: []string{"openid", "email", "openid"}, GrantedAt: t0}))
		c, err := s.ConsentOf(ctx, alice.ID, "docs")
		must(t, err)
		if !slices.Equal(c.Scopes, []string{"email", "openid"}) || len(c.Claims) != 0 || c.UserID != alice.ID || c.ClientID != "docs" {
			t.Fatalf("remembered %+v", c)
		}
		sameTime(t, "GrantedAt", c.GrantedAt, t0)
		// A later grant adds to the earlier one.
		must(t, s.RememberConsent(ctx, store.Consent{UserID: alice.ID, ClientID: "docs",
			Scopes: []string{"profile"}, Claims: []string{"email_verified"}, GrantedAt: at(time.Hour)}))
		c, err = s.ConsentOf(ctx, alice.ID, "docs")
		must(t, err)
		if !slices.Equal(c.Scopes, []string{"email", "openid", "profile"}) || !slices.Equal(c.Claims, []string{"email_verified"}) {
			t.Fatalf("after a second grant %+v", c)
		}
		sameTime(t, "GrantedAt", c.GrantedAt, at(time.Hour))
		for _, tc := range []struct {
			scopes, claims []string
			want           bool
		}{
			{[]string{"openid"}, nil, true},
			{[]string{"openid", "email", "profile"}, []string{"email_verified"}, true},
			{[]string{"openid", "offline_access"}, nil, false},
			{[]string{"openid"}, []string{"name"}, false},
		} {
			if got := c.Covers(tc.scopes, tc.claims); got != tc.want {
				t.Errorf("Covers(%v, %v) = %v", tc.scopes, tc.claims, got)
			}
		}
		if (*store.Consent)(nil).Covers(nil, nil) {
			t.Error("no consent covers something")
		}
		must(t, s.RememberConsent(ctx, store.Consent{UserID: alice.ID, ClientID: "wiki", Scopes: []string{"openid"}}))
		list, err := s.Consents(ctx, alice.ID)
		must(t, err)
		if len(list) != 2 || list[0].ClientID != "docs" || list[1].ClientID != "wiki" {
			t.Fatalf("Consents = %+v", list)
		}
		// Withdrawn without revoking: the client keeps its tokens; with:
		// its codes and tokens of the officer (only) are deactivated.
		for _, r := range []*store.OAuthRow{
			oauthRow(store.KindRefresh, "rt-docs", "req-docs", alice.ID, ""),
			oauthRow(store.KindAccess, "at-docs", "req-docs", alice.ID, ""),
			oauthRow(store.KindRefresh, "rt-bob", "req-bob", "u-bob", ""),
		} {
			r.ClientID = "docs"
			must(t, s.CreateOAuth(ctx, r))
		}
		other := oauthRow(store.KindRefresh, "rt-wiki", "req-wiki", alice.ID, "")
		other.ClientID = "wiki"
		must(t, s.CreateOAuth(ctx, other))
		must(t, s.WithdrawConsent(ctx, alice.ID, "wiki", false))
		must(t, s.RememberConsent(ctx, store.Consent{UserID: alice.ID, ClientID: "wiki", Scopes: []string{"openid"}}))
		if r, _ := s.GetOAuth(ctx, store.KindRefresh, "rt-wiki"); !r.Active {
			t.Fatal("a withdrawal without revoke deactivated a token")
		}
		must(t, s.WithdrawConsent(ctx, alice.ID, "docs", true))
		for sig, want := range map[string]bool{"rt-docs": false, "rt-bob": true, "rt-wiki": true} {
			if r, err := s.GetOAuth(ctx, store.KindRefresh, sig); err != nil || r.Active != want {
				t.Fatalf("after withdrawing docs, %s active = %v (%v), want %v", sig, r != nil && r.Active, err, want)
			}
		}
		if r, _ := s.GetOAuth(ctx, store.KindAccess, "at-docs"); r.Active {
			t.Fatal("the withdrawn client's access token is still active")
		}
		wantErr(t, "withdrawn twice", s.WithdrawConsent(ctx, alice.ID, "docs", true), store.ErrNotFound)
		wantErr(t, "no client", s.WithdrawConsent(ctx, alice.ID, "", true), store.ErrInvalid)
		_, err = s.ConsentOf(ctx, alice.ID, "docs")
		wantErr(t, "after withdrawal", err, store.ErrNotFound)

		// Bad input writes nothing.
		wantErr(t, "no user", s.RememberConsent(ctx, store.Consent{ClientID: "x"}), store.ErrInvalid)
		wantErr(t, "no client", s.RememberConsent(ctx, store.Consent{UserID: alice.ID}), store.ErrInvalid)
		wantErr(t, "a scope with a space", s.RememberConsent(ctx, store.Consent{UserID: alice.ID, ClientID: "x",
			Scopes: []string{"a b"}}), store.ErrInvalid)
		wantErr(t, "unknown user", s.RememberConsent(ctx, store.Consent{UserID: "u-nobody", ClientID: "x"}), store.ErrNotFound)
		if list, _ := s.Consents(ctx, alice.ID); len(list) != 1 {
			t.Fatalf("refused consents stored: %+v", list)
		}
		// Deleting the officer deletes their consents.
		must(t, s.DeleteUser(ctx, alice.ID))
		if list, _ := s.Consents(ctx, alice.ID); len(list) != 0 {
			t.Fatalf("consents outlived their officer: %+v", list)
		}
	})

	t.Run("Decide", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		park := func(id string) {
			must(t, s.CreateAuthRequest(ctx, &store.AuthRequest{ID: id, ClientID: "docs", Query: "q", CreatedAt: t0, ExpiresAt: at(30 * time.Minute)}))
		}
		park("ar-1")
		a, err := s.AuthRequestByID(ctx, "ar-1", t0)
		must(t, err)
		if a.Decision != "" || a.DecidedBy != "" || !a.DecidedAt.IsZero() {
			t.Fatalf("a fresh request is decided: %+v", a)
		}
		must(t, s.DecideAuthRequest(ctx, "ar-1", "u-alice", store.ConsentGranted, at(time.Minute)))
		a, err = s.AuthRequestByID(ctx, "ar-1", at(time.Minute))
		must(t, err)
		if a.Decision != store.ConsentGranted || a.DecidedBy != "u-alice" {
			t.Fatalf("decided %+v", a)
		}
		sameTime(t, "DecidedAt", a.DecidedAt, at(time.Minute))
		// Once per officer; another officer's answer may be replaced.
		wantErr(t, "answered twice", s.DecideAuthRequest(ctx, "ar-1", "u-alice", store.ConsentDeclined, at(2*time.Minute)), store.ErrConflict)
		must(t, s.DecideAuthRequest(ctx, "ar-1", "u-bob", store.ConsentDeclined, at(2*time.Minute)))
		a, _ = s.AuthRequestByID(ctx, "ar-1", at(2*time.Minute))
		if a.Decision != store.ConsentDeclined || a.DecidedBy != "u-bob" {
			t.Fatalf("replaced %+v", a)
		}
		wantErr(t, "unknown request", s.DecideAuthRequest(ctx, "nope", "u-alice", store.ConsentGranted, t0), store.ErrNotFound)
		park("ar-2")
		wantErr(t, "expired request", s.DecideAuthRequest(ctx, "ar-2", "u-alice", store.ConsentGranted, at(30*time.Minute)), store.ErrNotFound)
		wantErr(t, "bad decision", s.DecideAuthRequest(ctx, "ar-2", "u-alice", "maybe", t0), store.ErrInvalid)
		wantErr(t, "no user", s.DecideAuthRequest(ctx, "ar-2", "", store.ConsentGranted, t0), store.ErrInvalid)
		if a, _ := s.AuthRequestByID(ctx, "ar-2", t0); a.Decision != "" {
			t.Fatalf("a refused answer was stored: %+v", a)
		}
	})

	// Twenty racing answers to one consent page: exactly one is taken.
	t.Run("DecideRace", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		must(t, s.CreateAuthRequest(ctx, &store.AuthRequest{ID: "ar-race", ClientID: "docs", Query: "q", CreatedAt: t0, ExpiresAt: at(30 * time.Minute)}))
		errs := race(20, func(i int) error {
			d := store.ConsentGranted
			if i%2 == 1 {
				d = store.ConsentDeclined
			}
			return s.DecideAuthRequest(ctx, "ar-race", "u-alice", d, at(time.Minute))
		})
		exactlyOnce(t, "DecideAuthRequest", serializationAsConflict(errs), store.ErrConflict)
	})
}
