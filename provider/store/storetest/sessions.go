package storetest

import (
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/lanyard-idp/lanyard/provider/store"
)

func testSessions(t *testing.T, open func(t *testing.T) *store.Store) {
	t.Run("CreateAndLoad", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		u := newUser(t, s, "alice")
		in := &store.Session{
			ID: "raw-session-id-aaaaaaaaaaaaaaaa", UserID: u.ID, State: "journey", AuthTime: at(time.Second),
			AMR: []string{"pwd", "otp"}, ACR: "urn:lanyard:mfa", Data: []byte(`{"step":"terms"}`),
			UserAgent: "Firefox", ClientAddr: "192.0.2.1", CreatedAt: t0, LastSeenAt: at(time.Minute),
			ExpiresAt: at(8 * time.Hour),
		}
		must(t, s.CreateSession(ctx, in))
		if in.Ref != store.SessionRef(in.ID) {
			t.Fatalf("Ref = %q, want SessionRef(ID)", in.Ref)
		}
		got, err := s.SessionByID(ctx, in.ID, at(time.Hour))
		must(t, err)
		if got.ID != in.ID || got.Ref != in.Ref || got.UserID != u.ID || got.State != "journey" ||
			!reflect.DeepEqual(got.AMR, in.AMR) || got.ACR != in.ACR || string(got.Data) != string(in.Data) ||
			got.UserAgent != "Firefox" || got.ClientAddr != "192.0.2.1" {
			t.Fatalf("loaded %+v", got)
		}
		sameTime(t, "AuthTime", got.AuthTime, in.AuthTime)
		sameTime(t, "CreatedAt", got.CreatedAt, t0)
		sameTime(t, "LastSeenAt", got.LastSeenAt, at(time.Minute))
		sameTime(t, "ExpiresAt", got.ExpiresAt, at(8*time.Hour))

		// Only the hash is stored.
		if n := count(t, s, "SELECT COUNT(*) FROM sessions WHERE id_hash = "+quote(in.ID)); n != 0 {
			t.Fatal("the raw session id is stored")
		}
		if n := count(t, s, "SELECT COUNT(*) FROM sessions WHERE id_hash = "+quote(store.SessionRef(in.ID))); n != 1 {
			t.Fatal("the session is not stored under SessionRef(id)")
		}

		wantErr(t, "duplicate id", s.CreateSession(ctx, &store.Session{ID: in.ID}), store.ErrConflict)
		wantErr(t, "short id", s.CreateSession(ctx, &store.Session{ID: "short"}), store.ErrInvalid)
		wantErr(t, "nil", s.CreateSession(ctx, nil), store.ErrInvalid)
	})

	t.Run("Expiry", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		id := newSession(t, s, "", "anon", t0, at(time.Hour))
		if _, err := s.SessionByID(ctx, id, at(time.Hour-time.Microsecond)); err != nil {
			t.Fatalf("just before expiry: %v", err)
		}
		_, err := s.SessionByID(ctx, id, at(time.Hour))
		wantErr(t, "at ExpiresAt", err, store.ErrNotFound)
		_, err = s.SessionByID(ctx, id, at(2*time.Hour))
		wantErr(t, "after ExpiresAt", err, store.ErrNotFound)
		_, err = s.SessionByID(ctx, "unknown-session-id-0000000000", t0)
		wantErr(t, "unknown", err, store.ErrNotFound)
	})

	t.Run("UpdateTouchDelete", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		u := newUser(t, s, "alice")
		id := newSession(t, s, "", "a", t0, at(time.Hour))
		x, err := s.SessionByID(ctx, id, t0)
		must(t, err)
		x.UserID, x.State, x.AMR, x.AuthTime = u.ID, "authenticated", []string{"pwd"}, at(time.Minute)
		x.CreatedAt = at(50 * time.Hour) // ignored
		must(t, s.UpdateSession(ctx, x))
		got, err := s.SessionByID(ctx, id, t0)
		must(t, err)
		if got.UserID != u.ID || got.State != "authenticated" || !reflect.DeepEqual(got.AMR, []string{"pwd"}) {
			t.Fatalf("after update %+v", got)
		}
		sameTime(t, "CreatedAt (unchanged)", got.CreatedAt, t0)

		must(t, s.TouchSession(ctx, id, at(30*time.Minute)))
		got, err = s.SessionByID(ctx, id, t0)
		must(t, err)
		sameTime(t, "LastSeenAt", got.LastSeenAt, at(30*time.Minute))

		missing := "missing-session-id-000000000"
		wantErr(t, "update unknown", s.UpdateSession(ctx, &store.Session{ID: missing}), store.ErrNotFound)
		wantErr(t, "touch unknown", s.TouchSession(ctx, missing, t0), store.ErrNotFound)
		must(t, s.DeleteSession(ctx, id))
		_, err = s.SessionByID(ctx, id, t0)
		wantErr(t, "after delete", err, store.ErrNotFound)
		must(t, s.DeleteSession(ctx, id)) // idempotent
	})

	t.Run("Rotate", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		u := newUser(t, s, "alice")
		oldID := newSession(t, s, u.ID, "old", t0, at(time.Hour))
		other := newSession(t, s, u.ID, "other", t0, at(time.Hour))
		key := keyOf(t, s, oldID)
		if key == keyOf(t, s, other) {
			t.Fatal("two sessions share a key")
		}
		must(t, s.CreateOAuth(ctx, oauthRow(store.KindRefresh, "rt", "req", u.ID, key)))
		newID := "rotated-session-id-1111111111"
		must(t, s.RotateSession(ctx, oldID, newID))
		_, err := s.SessionByID(ctx, oldID, t0)
		wantErr(t, "old id after rotation", err, store.ErrNotFound)
		got, err := s.SessionByID(ctx, newID, t0)
		must(t, err)
		if got.UserID != u.ID || got.Ref != store.SessionRef(newID) {
			t.Fatalf("rotated session %+v", got)
		}
		// The key stays, and the tokens bound to it end with the session.
		if got.SID != key {
			t.Fatalf("the stable key changed with the rotation: %q, was %q", got.SID, key)
		}
		// A token issued after the rotation (a refresh copies the key it
		// was issued under) is bound to the same key.
		must(t, s.CreateOAuth(ctx, oauthRow(store.KindRefresh, "rt-after", "req", u.ID, key)))
		must(t, s.RevokeOAuthBySession(ctx, got.SID))
		for _, sig := range []string{"rt", "rt-after"} {
			row, err := s.GetOAuth(ctx, store.KindRefresh, sig)
			must(t, err)
			if row.Active {
				t.Fatalf("%s survived the end of its rotated session", sig)
			}
		}
		wantErr(t, "rotate a dead id", s.RotateSession(ctx, oldID, "another-new-id-22222222222"), store.ErrNotFound)
		wantErr(t, "rotate onto an existing id", s.RotateSession(ctx, newID, other), store.ErrConflict)
		wantErr(t, "short new id", s.RotateSession(ctx, newID, "x"), store.ErrInvalid)
		if _, err := s.SessionByID(ctx, newID, t0); err != nil {
			t.Fatalf("refused rotation lost the session: %v", err)
		}
		// An update leaves the key alone.
		got.SID = "something-else"
		must(t, s.UpdateSession(ctx, got))
		if again, _ := s.SessionByID(ctx, newID, t0); again.SID != key {
			t.Fatalf("UpdateSession changed the key to %q", again.SID)
		}
	})

	t.Run("UserSessions", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
		a1 := newSession(t, s, alice.ID, "a1", t0, at(10*time.Hour))
		a2 := newSession(t, s, alice.ID, "a2", at(time.Hour), at(10*time.Hour))
		newSession(t, s, alice.ID, "expired", at(2*time.Hour), at(3*time.Hour))
		newSession(t, s, bob.ID, "b1", t0, at(10*time.Hour))
		got, err := s.UserSessions(ctx, alice.ID, at(4*time.Hour))
		must(t, err)
		if len(got) != 2 || got[0].Ref != store.SessionRef(a2) || got[1].Ref != store.SessionRef(a1) {
			t.Fatalf("UserSessions = %+v, want a2, a1", got)
		}
		if got[0].ID != "" {
			t.Fatalf("UserSessions returned a raw id %q", got[0].ID)
		}
		_, err = s.UserSessions(ctx, "", t0)
		wantErr(t, "empty user", err, store.ErrInvalid)
	})

	t.Run("DeleteUserSessions", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
		keep := newSession(t, s, alice.ID, "keep", t0, at(time.Hour))
		d1 := newSession(t, s, alice.ID, "d1", t0, at(time.Hour))
		d2 := newSession(t, s, alice.ID, "d2", t0, at(time.Hour))
		b := newSession(t, s, bob.ID, "b", t0, at(time.Hour))
		anon := newSession(t, s, "", "anon", t0, at(time.Hour))
		owner := map[string]string{keep: alice.ID, d1: alice.ID, d2: alice.ID, b: bob.ID}
		for sid, sub := range owner {
			key := keyOf(t, s, sid)
			must(t, s.CreateOAuth(ctx, oauthRow(store.KindAccess, "at-"+sid, "req-"+sid, sub, key)))
			must(t, s.CreateOAuth(ctx, oauthRow(store.KindRefresh, "rt-"+sid, "req-"+sid, sub, key)))
			must(t, s.CreateOAuth(ctx, oauthRow(store.KindCode, "code-"+sid, "req-"+sid, sub, key)))
		}
		// A refresh token of alice's from a session that is gone (expired,
		// or signed out before its tokens were bound to a stable key): no
		// session of hers may keep it alive.
		must(t, s.CreateOAuth(ctx, oauthRow(store.KindRefresh, "rt-gone", "req-gone", alice.ID, "a-session-long-gone")))
		refs, err := s.DeleteUserSessions(ctx, alice.ID, keep)
		must(t, err)
		sort.Strings(refs)
		want := []string{store.SessionRef(d1), store.SessionRef(d2)}
		sort.Strings(want)
		if !reflect.DeepEqual(refs, want) {
			t.Fatalf("DeleteUserSessions returned %v, want %v", refs, want)
		}
		for sid, alive := range map[string]bool{keep: true, d1: false, d2: false, b: true, anon: true} {
			_, err := s.SessionByID(ctx, sid, t0)
			if (err == nil) != alive {
				t.Errorf("session %s: err %v, want alive=%v", sid, err, alive)
			}
			if sid == anon {
				continue
			}
			for _, kind := range []string{store.KindAccess, store.KindRefresh, store.KindCode} {
				sig := map[string]string{store.KindAccess: "at-", store.KindRefresh: "rt-", store.KindCode: "code-"}[kind] + sid
				row, err := s.GetOAuth(ctx, kind, sig)
				must(t, err)
				if row.Active != alive {
					t.Errorf("%s of session %s: active %v, want %v", kind, sid, row.Active, alive)
				}
			}
		}
		if row, err := s.GetOAuth(ctx, store.KindRefresh, "rt-gone"); err != nil || row.Active {
			t.Errorf("a token of a session that is gone survived signing out the others: %+v, %v", row, err)
		}
		// Everywhere, including the current one.
		refs, err = s.DeleteUserSessions(ctx, alice.ID, "")
		must(t, err)
		if len(refs) != 1 || refs[0] != store.SessionRef(keep) {
			t.Fatalf("sign out everywhere returned %v", refs)
		}
		if row, _ := s.GetOAuth(ctx, store.KindRefresh, "rt-"+keep); row.Active {
			t.Error("sign out everywhere kept the current session's token")
		}
		_, err = s.DeleteUserSessions(ctx, "", "")
		wantErr(t, "empty user", err, store.ErrInvalid)
		if _, err := s.SessionByID(ctx, anon, t0); err != nil {
			t.Fatal("an anonymous session was deleted")
		}
	})

	t.Run("DeleteSessionByRef", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
		a := newSession(t, s, alice.ID, "a", t0, at(time.Hour))
		ref := store.SessionRef(a)
		must(t, s.CreateOAuth(ctx, oauthRow(store.KindRefresh, "rt", "req", alice.ID, keyOf(t, s, a))))
		wantErr(t, "another user's session", s.DeleteSessionByRef(ctx, bob.ID, ref), store.ErrNotFound)
		if _, err := s.SessionByID(ctx, a, t0); err != nil {
			t.Fatal("another user deleted the session")
		}
		must(t, s.DeleteSessionByRef(ctx, alice.ID, ref))
		_, err := s.SessionByID(ctx, a, t0)
		wantErr(t, "after delete", err, store.ErrNotFound)
		row, err := s.GetOAuth(ctx, store.KindRefresh, "rt")
		must(t, err)
		if row.Active {
			t.Fatal("the session's refresh token is still active")
		}
	})
}

func testThrottle(t *testing.T, open func(t *testing.T) *store.Store) {
	s := open(t)
	ctx := t.Context()
	const key = "acct:u1"
	zero, err := s.GetThrottle(ctx, key)
	must(t, err)
	if zero != (store.Throttle{Key: key}) {
		t.Fatalf("unknown key: %+v", zero)
	}
	w := 15 * time.Minute
	for i := 1; i <= 3; i++ {
		th, err := s.RecordFailure(ctx, key, at(time.Duration(i)*time.Minute), w)
		must(t, err)
		if th.Failures != i || th.Key != key {
			t.Fatalf("failure %d: %+v", i, th)
		}
		sameTime(t, "WindowStart", th.WindowStart, at(time.Minute))
	}
	// A failure after the window opens a new one.
	th, err := s.RecordFailure(ctx, key, at(time.Minute+w+time.Second), w)
	must(t, err)
	if th.Failures != 1 {
		t.Fatalf("after the window: %+v", th)
	}
	sameTime(t, "new WindowStart", th.WindowStart, at(time.Minute+w+time.Second))

	must(t, s.Lock(ctx, key, at(time.Hour), 1))
	th, err = s.GetThrottle(ctx, key)
	must(t, err)
	if th.Failures != 0 || th.Locks != 1 {
		t.Fatalf("after lock: %+v", th)
	}
	sameTime(t, "LockedUntil", th.LockedUntil, at(time.Hour))
	must(t, s.Lock(ctx, key, at(3*time.Hour), 2))
	must(t, s.Lock(ctx, "addr:192.0.2.1", at(time.Hour), 1)) // a key never seen
	th, err = s.GetThrottle(ctx, key)
	must(t, err)
	if th.Locks != 2 {
		t.Fatalf("Locks = %d, want 2", th.Locks)
	}
	sameTime(t, "LockedUntil", th.LockedUntil, at(3*time.Hour))
	// The count is what the caller says (a lock after a long quiet spell
	// counts fewer earlier locks), never less than one.
	must(t, s.Lock(ctx, "acct:decayed", at(time.Hour), 3))
	must(t, s.Lock(ctx, "acct:decayed", at(2*time.Hour), 1))
	if th, _ := s.GetThrottle(ctx, "acct:decayed"); th.Locks != 1 {
		t.Fatalf("Locks = %d after a lock counting 1", th.Locks)
	}
	wantErr(t, "no count", s.Lock(ctx, key, at(time.Hour), 0), store.ErrInvalid)
	// Failures still count while locked, and keep Locks.
	th, err = s.RecordFailure(ctx, key, at(2*time.Hour), w)
	must(t, err)
	if th.Failures != 1 || th.Locks != 2 {
		t.Fatalf("failure while locked: %+v", th)
	}

	must(t, s.ResetThrottle(ctx, key))
	th, err = s.GetThrottle(ctx, key)
	must(t, err)
	if th != (store.Throttle{Key: key}) {
		t.Fatalf("after reset: %+v", th)
	}
	other, err := s.GetThrottle(ctx, "addr:192.0.2.1")
	must(t, err)
	if other.Locks != 1 {
		t.Fatal("reset touched another key")
	}
	// Several keys at once (a whole sign-in forgets the account's counters
	// in one statement); the others stay.
	for _, k := range []string{"acct:m1", "acct:m2", "mfa:m1"} {
		_, err = s.RecordFailure(ctx, k, t0, w)
		must(t, err)
	}
	must(t, s.ResetThrottle(ctx, "acct:m1", "mfa:m1", "acct:never-seen"))
	for k, want := range map[string]int{"acct:m1": 0, "mfa:m1": 0, "acct:m2": 1} {
		if th, err := s.GetThrottle(ctx, k); err != nil || th.Failures != want {
			t.Fatalf("after resetting several keys, %s: %+v %v, want %d failures", k, th, err, want)
		}
	}
	must(t, s.ResetThrottle(ctx))
	if other, _ := s.GetThrottle(ctx, "addr:192.0.2.1"); other.Locks != 1 {
		t.Fatal("resetting no key touched a key")
	}
	_, err = s.RecordFailure(ctx, "", t0, w)
	wantErr(t, "empty key", err, store.ErrInvalid)
	_, err = s.RecordFailure(ctx, key, t0, 0)
	wantErr(t, "zero window", err, store.ErrInvalid)

	// A released failure is taken back from its own window only, and never
	// below zero.
	const rel = "mfa:u1"
	first, err := s.RecordFailure(ctx, rel, at(time.Minute), w)
	must(t, err)
	_, err = s.RecordFailure(ctx, rel, at(2*time.Minute), w)
	must(t, err)
	must(t, s.ReleaseFailure(ctx, rel, first.WindowStart))
	if th, _ := s.GetThrottle(ctx, rel); th.Failures != 1 {
		t.Fatalf("after a release: %+v", th)
	}
	must(t, s.ReleaseFailure(ctx, rel, at(time.Hour))) // another window
	if th, _ := s.GetThrottle(ctx, rel); th.Failures != 1 {
		t.Fatalf("a release of another window: %+v", th)
	}
	must(t, s.ReleaseFailure(ctx, rel, first.WindowStart))
	must(t, s.ReleaseFailure(ctx, rel, first.WindowStart))
	if th, _ := s.GetThrottle(ctx, rel); th.Failures != 0 {
		t.Fatalf("released below zero: %+v", th)
	}
}
