package storetest

import (
	"reflect"
	"testing"
	"time"

	"github.com/lanyard-idp/lanyard/provider/store"
)

func testUsers(t *testing.T, open func(t *testing.T) *store.Store) {
	t.Run("CreateAndLoad", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		u := &store.User{
			ID: "u1", Username: "alice@agency.example", Email: "alice@agency.example", Name: "Alice Ärger",
			GivenName: "Alice", FamilyName: "Ärger", State: store.UserInvited, PasswordHash: "$argon2id$v=19$x", PasswordInitial: true,
			InviteExpiresAt: at(30 * 24 * time.Hour), CreatedAt: t0, UpdatedAt: at(time.Second),
		}
		must(t, s.CreateUser(ctx, u))
		for _, load := range []func() (*store.User, error){
			func() (*store.User, error) { return s.UserByID(ctx, "u1") },
			func() (*store.User, error) { return s.UserByUsername(ctx, "alice@agency.example") },
		} {
			got, err := load()
			must(t, err)
			if got.ID != "u1" || got.Username != u.Username || got.Email != u.Email || got.Name != u.Name ||
				got.GivenName != "Alice" || got.FamilyName != "Ärger" || got.State != store.UserInvited || got.PasswordHash != u.PasswordHash || !got.PasswordInitial {
				t.Fatalf("loaded %+v, want %+v", got, u)
			}
			sameTime(t, "InviteExpiresAt", got.InviteExpiresAt, u.InviteExpiresAt)
			sameTime(t, "CreatedAt", got.CreatedAt, t0)
			sameTime(t, "UpdatedAt", got.UpdatedAt, at(time.Second))
			if !got.LastSignInAt.IsZero() {
				t.Fatalf("LastSignInAt = %v, want zero", got.LastSignInAt)
			}
		}
		// UpdateUser writes the names too.
		u.GivenName, u.FamilyName = "Alicia", "Ärger-Smith"
		must(t, s.UpdateUser(ctx, u))
		if got, err := s.UserByID(ctx, "u1"); err != nil || got.GivenName != "Alicia" || got.FamilyName != "Ärger-Smith" {
			t.Fatalf("after UpdateUser: %+v, %v", got, err)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		s := open(t)
		_, err := s.UserByID(t.Context(), "nobody")
		wantErr(t, "UserByID", err, store.ErrNotFound)
		_, err = s.UserByUsername(t.Context(), "nobody@agency.example")
		wantErr(t, "UserByUsername", err, store.ErrNotFound)
		err = s.UpdateUser(t.Context(), &store.User{ID: "nobody", Username: "x", State: store.UserActive})
		wantErr(t, "UpdateUser", err, store.ErrNotFound)
		wantErr(t, "DeleteUser", s.DeleteUser(t.Context(), "nobody"), store.ErrNotFound)
		wantErr(t, "ChangePassword", s.ChangePassword(t.Context(), "nobody", "a", "b", false), store.ErrNotFound)
	})

	t.Run("Duplicates", func(t *testing.T) {
		s := open(t)
		newUser(t, s, "alice")
		err := s.CreateUser(t.Context(), &store.User{ID: "u-other", Username: "alice@agency.example", State: store.UserActive})
		wantErr(t, "same username", err, store.ErrConflict)
		err = s.CreateUser(t.Context(), &store.User{ID: "u-alice", Username: "other@agency.example", State: store.UserActive})
		wantErr(t, "same id", err, store.ErrConflict)
		if _, err := s.UserByID(t.Context(), "u-other"); err == nil {
			t.Fatal("the refused user was stored")
		}
	})

	t.Run("Invalid", func(t *testing.T) {
		s := open(t)
		for name, u := range map[string]*store.User{
			"nil":         nil,
			"no id":       {Username: "a@agency.example", State: store.UserActive},
			"no name":     {ID: "u1", State: store.UserActive},
			"bad state":   {ID: "u1", Username: "a@agency.example", State: "superuser"},
			"empty state": {ID: "u1", Username: "a@agency.example"},
		} {
			wantErr(t, name, s.CreateUser(t.Context(), u), store.ErrInvalid)
		}
		users, err := s.ListUsers(t.Context(), "", "")
		must(t, err)
		if len(users) != 0 {
			t.Fatalf("invalid users were stored: %+v", users)
		}
	})

	t.Run("Update", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		u := newUser(t, s, "alice")
		newUser(t, s, "bob")
		u.Name, u.State, u.PasswordInitial = "Alice B.", store.UserDisabled, true
		u.LastSignInAt, u.UpdatedAt = at(time.Hour), at(time.Hour)
		u.CreatedAt = at(99 * time.Hour) // ignored
		must(t, s.UpdateUser(ctx, u))
		got, err := s.UserByID(ctx, u.ID)
		must(t, err)
		if got.Name != "Alice B." || got.State != store.UserDisabled || !got.PasswordInitial {
			t.Fatalf("after update: %+v", got)
		}
		sameTime(t, "LastSignInAt", got.LastSignInAt, at(time.Hour))
		sameTime(t, "CreatedAt (unchanged)", got.CreatedAt, t0)

		// Taking bob's username is a conflict and changes nothing.
		u2 := *got
		u2.Username, u2.Name = "bob@agency.example", "Changed"
		wantErr(t, "rename to a taken username", s.UpdateUser(ctx, &u2), store.ErrConflict)
		again, err := s.UserByID(ctx, u.ID)
		must(t, err)
		if again.Username != "alice@agency.example" || again.Name != "Alice B." {
			t.Fatalf("refused update changed the user: %+v", again)
		}
		u2.State = "bogus"
		wantErr(t, "bad state", s.UpdateUser(ctx, &u2), store.ErrInvalid)
	})

	t.Run("List", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		for _, u := range []store.User{
			{ID: "1", Username: "carol@agency.example", Name: "Carol Ünal", State: store.UserActive},
			{ID: "2", Username: "alice@agency.example", Name: "Alice", State: store.UserInvited},
			{ID: "3", Username: "bob@agency.example", Name: "Bob ÜNAL-Smith", State: store.UserDisabled},
		} {
			must(t, s.CreateUser(ctx, &u))
		}
		ids := func(us []store.User) []string {
			var out []string
			for _, u := range us {
				out = append(out, u.ID)
			}
			return out
		}
		for _, tc := range []struct {
			state, search string
			want          []string
		}{
			{"", "", []string{"2", "3", "1"}}, // ordered by username
			{store.UserActive, "", []string{"1"}},
			{store.UserInvited, "", []string{"2"}},
			{"locked", "", []string{"2", "3", "1"}},
			{"", "ünal", []string{"3", "1"}}, // name, Unicode case-insensitive
			{"", "BOB@", []string{"3"}},      // username
			{store.UserActive, "ünal", []string{"1"}},
			{"", "nobody", nil},
		} {
			got, err := s.ListUsers(ctx, tc.state, tc.search)
			must(t, err)
			if !reflect.DeepEqual(ids(got), tc.want) {
				t.Errorf("ListUsers(%q, %q) = %v, want %v", tc.state, tc.search, ids(got), tc.want)
			}
		}
		_, err := s.ListUsers(ctx, "superuser", "")
		wantErr(t, "unknown state", err, store.ErrInvalid)
	})

	t.Run("ChangePassword", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		u := newUser(t, s, "alice")
		must(t, s.ChangePassword(ctx, u.ID, u.PasswordHash, "$argon2id$new", false))
		got, err := s.UserByID(ctx, u.ID)
		must(t, err)
		if got.PasswordHash != "$argon2id$new" || got.PasswordInitial {
			t.Fatalf("after change: hash %q initial %v", got.PasswordHash, got.PasswordInitial)
		}
		// From a stale hash: conflict, nothing changes.
		wantErr(t, "stale old hash", s.ChangePassword(ctx, u.ID, u.PasswordHash, "$argon2id$other", true), store.ErrConflict)
		got, err = s.UserByID(ctx, u.ID)
		must(t, err)
		if got.PasswordHash != "$argon2id$new" || got.PasswordInitial {
			t.Fatalf("refused change wrote: hash %q initial %v", got.PasswordHash, got.PasswordInitial)
		}
		wantErr(t, "empty new hash", s.ChangePassword(ctx, u.ID, "$argon2id$new", "", false), store.ErrInvalid)
		// An admin reset back to an initial password.
		must(t, s.ChangePassword(ctx, u.ID, "$argon2id$new", "$argon2id$reset", true))
		got, err = s.UserByID(ctx, u.ID)
		must(t, err)
		if !got.PasswordInitial {
			t.Fatal("PasswordInitial not set by ChangePassword(initial=true)")
		}
	})

	t.Run("DeleteCascades", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
		for _, u := range []*store.User{alice, bob} {
			must(t, s.PutTOTP(ctx, &store.TOTP{UserID: u.ID, Secret: []byte("sealed")}))
			must(t, s.ReplaceRecoveryCodes(ctx, u.ID, []string{"h1-" + u.ID}))
			must(t, s.AddWebAuthnCredential(ctx, &store.WebAuthnCredential{ID: []byte("cred-" + u.ID), UserID: u.ID, PublicKey: []byte{1}}))
			must(t, s.Accept(ctx, store.Acceptance{UserID: u.ID, Document: "terms", Version: "1", AcceptedAt: t0}))
			sid := newSession(t, s, u.ID, u.ID, t0, at(time.Hour))
			must(t, s.CreateOAuth(ctx, oauthRow(store.KindAccess, "at-"+u.ID, "req-"+u.ID, u.ID, keyOf(t, s, sid))))
			must(t, s.AppendAudit(ctx, &store.AuditEvent{Event: "invite", UserID: u.ID}))
		}
		must(t, s.DeleteUser(ctx, alice.ID))

		if _, err := s.UserByID(ctx, alice.ID); !isNotFound(err) {
			t.Fatalf("user still there: %v", err)
		}
		if _, err := s.TOTPByUser(ctx, alice.ID); !isNotFound(err) {
			t.Fatalf("TOTP still there: %v", err)
		}
		if n, _ := s.RecoveryCodesLeft(ctx, alice.ID); n != 0 {
			t.Fatalf("%d recovery codes left", n)
		}
		if c, _ := s.WebAuthnCredentials(ctx, alice.ID); len(c) != 0 {
			t.Fatalf("credentials left: %d", len(c))
		}
		if a, _ := s.Acceptances(ctx, alice.ID); len(a) != 0 {
			t.Fatalf("acceptances left: %v", a)
		}
		if ss, _ := s.UserSessions(ctx, alice.ID, t0); len(ss) != 0 {
			t.Fatalf("sessions left: %d", len(ss))
		}
		row, err := s.GetOAuth(ctx, store.KindAccess, "at-"+alice.ID)
		must(t, err)
		if row.Active {
			t.Fatal("the deleted user's access token is still active")
		}
		if ev, _ := s.Audit(ctx, store.AuditFilter{UserID: alice.ID}); len(ev) != 1 {
			t.Fatalf("audit of the deleted user: %d events, want 1 (kept)", len(ev))
		}
		// Bob is untouched.
		if _, err := s.TOTPByUser(ctx, bob.ID); err != nil {
			t.Fatal(err)
		}
		if row, _ := s.GetOAuth(ctx, store.KindAccess, "at-"+bob.ID); row == nil || !row.Active {
			t.Fatal("another user's token was revoked")
		}
		wantErr(t, "empty id", s.DeleteUser(ctx, ""), store.ErrInvalid)
	})
}
