package storetest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanyard-idp/lanyard/provider/store"
)

// testLogout covers logout propagation: the session→client records, the way
// every session-ending method queues them, and the outbox claims.
func testLogout(t *testing.T, open func(t *testing.T) *store.Store) {
	// seed: alice with sessions a and b, bob with session c; docs-a and
	// docs-b received tokens in a, docs-a in b and c.
	seed := func(t *testing.T, s *store.Store) (alice, bob *store.User, a, b, c string) {
		t.Helper()
		alice, bob = newUser(t, s, "alice"), newUser(t, s, "bob")
		a = newSession(t, s, alice.ID, "a", t0, at(24*time.Hour))
		b = newSession(t, s, alice.ID, "b", t0, at(24*time.Hour))
		c = newSession(t, s, bob.ID, "c", t0, at(24*time.Hour))
		for _, r := range []struct{ sess, client, sub string }{
			{a, "docs-a", alice.ID}, {a, "docs-b", alice.ID}, {b, "docs-a", alice.ID}, {c, "docs-a", bob.ID},
		} {
			must(t, s.RecordSessionClient(t.Context(), &store.SessionClient{
				SID: keyOf(t, s, r.sess), ClientID: r.client, Subject: r.sub, CreatedAt: t0}))
		}
		return
	}
	// queued lists the outbox as "client sid-owner reason" lines.
	queued := func(t *testing.T, s *store.Store, names map[string]string) []string {
		t.Helper()
		ds, err := s.ClaimLogouts(t.Context(), at(time.Hour), time.Minute, 100)
		must(t, err)
		var out []string
		for _, d := range ds {
			out = append(out, d.ClientID+" "+names[d.SID]+" "+string(d.Reason))
		}
		sort.Strings(out)
		return out
	}
	wantQueued := func(t *testing.T, what string, got []string, want ...string) {
		t.Helper()
		sort.Strings(want)
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("%s: queued %q, want %q", what, got, want)
		}
	}
	// keys names the sessions' stable keys (the sid a logout carries).
	keys := func(t *testing.T, s *store.Store, a, b, c string) map[string]string {
		return map[string]string{keyOf(t, s, a): "a", keyOf(t, s, b): "b", keyOf(t, s, c): "c"}
	}

	t.Run("RecordAndList", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		alice, _, a, _, _ := seed(t, s)
		key := keyOf(t, s, a)
		// Idempotent: a second code for the same client adds nothing.
		must(t, s.RecordSessionClient(ctx, &store.SessionClient{SID: key, ClientID: "docs-a", Subject: alice.ID}))
		got, err := s.SessionClients(ctx, key)
		must(t, err)
		if len(got) != 2 || got[0].ClientID != "docs-a" || got[1].ClientID != "docs-b" || got[0].SID != key || got[0].Subject != alice.ID {
			t.Fatalf("SessionClients = %+v", got)
		}
		sameTime(t, "CreatedAt", got[0].CreatedAt, t0)
		wantErr(t, "no session", s.RecordSessionClient(ctx, &store.SessionClient{ClientID: "x", Subject: "u"}), store.ErrInvalid)
		wantErr(t, "no client", s.RecordSessionClient(ctx, &store.SessionClient{SID: key, Subject: "u"}), store.ErrInvalid)
		wantErr(t, "no subject", s.RecordSessionClient(ctx, &store.SessionClient{SID: key, ClientID: "x"}), store.ErrInvalid)
		wantErr(t, "nil", s.RecordSessionClient(ctx, nil), store.ErrInvalid)
		if n, err := s.PendingLogouts(ctx); err != nil || n != 0 {
			t.Fatalf("PendingLogouts = %d, %v before any session ended", n, err)
		}
		// A session that ended since the caller looked records nothing: no
		// sign-out would reach what the caller issues in it.
		must(t, s.DeleteSession(ctx, a))
		if n, err := s.PendingLogouts(ctx); err != nil || n != 2 {
			t.Fatalf("PendingLogouts = %d, %v after the session ended", n, err)
		}
		wantErr(t, "ended session", s.RecordSessionClient(ctx, &store.SessionClient{SID: key, ClientID: "docs-c", Subject: alice.ID}), store.ErrNotFound)
		if got, err := s.SessionClients(ctx, key); err != nil || len(got) != 0 {
			t.Fatalf("SessionClients of an ended session = %+v, %v", got, err)
		}
	})

	t.Run("SignOutEverywhereDuringAnAuthorization", func(t *testing.T) {
		// An authorization binds its code to a session in one transaction
		// (RecordSessionClient, then the code) while "sign out everywhere"
		// ends the officer's sessions: whichever commits first, the code
		// must not outlive the sign-out.
		s := open(t)
		ctx := t.Context()
		alice, _, a, _, _ := seed(t, s)
		key := keyOf(t, s, a)
		recorded, release := make(chan struct{}), make(chan struct{})
		authz := make(chan error, 1)
		go func() {
			authz <- s.InTx(ctx, func(ctx context.Context) error {
				if err := s.RecordSessionClient(ctx, &store.SessionClient{SID: key, ClientID: "docs-c", Subject: alice.ID}); err != nil {
					close(recorded)
					return err
				}
				close(recorded)
				<-release
				return s.CreateOAuth(ctx, oauthRow(store.KindCode, "code-in-flight", "req-in-flight", alice.ID, key))
			})
		}()
		<-recorded
		signedOut := make(chan error, 1)
		go func() {
			_, err := s.DeleteUserSessions(ctx, alice.ID, "")
			signedOut <- err
		}()
		time.Sleep(100 * time.Millisecond) // the sign-out reaches the sessions' rows (and waits, on PostgreSQL)
		close(release)
		must(t, <-authz)
		must(t, <-signedOut)
		row, err := s.GetOAuth(ctx, store.KindCode, "code-in-flight")
		must(t, err)
		if row.Active {
			t.Fatal("a code bound to a session while it was signed out everywhere is still active")
		}
	})

	t.Run("RotationKeepsSID", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		_, _, a, _, _ := seed(t, s)
		key := keyOf(t, s, a)
		rotated := "session-id-0123456789-a-rotated"
		must(t, s.RotateSession(ctx, a, rotated))
		got, err := s.SessionClients(ctx, keyOf(t, s, rotated))
		must(t, err)
		if len(got) != 2 || got[0].SID != key {
			t.Fatalf("after rotation: %+v (the sid the client was given must stay)", got)
		}
		must(t, s.DeleteSession(ctx, rotated))
		ds, err := s.ClaimLogouts(ctx, at(time.Hour), time.Minute, 10)
		must(t, err)
		if len(ds) != 2 || ds[0].SID != key {
			t.Fatalf("logouts after the rotated session ended: %+v", ds)
		}
	})

	// Every way a session ends queues the logouts of exactly its clients.
	ends := []struct {
		name string
		end  func(t *testing.T, s *store.Store, alice *store.User, a, b string)
		want []string
		once bool // a second call is an error (the session or user is gone)
	}{
		{"DeleteSession", func(t *testing.T, s *store.Store, _ *store.User, a, _ string) {
			must(t, s.DeleteSession(t.Context(), a))
		}, []string{"docs-a a session_ended", "docs-b a session_ended"}, false},
		{"RevokeOAuthBySession then DeleteSession (sign-out)", func(t *testing.T, s *store.Store, _ *store.User, a, _ string) {
			x, err := s.SessionByID(t.Context(), a, t0)
			if errors.Is(err, store.ErrNotFound) {
				return // signed out already
			}
			must(t, err)
			must(t, s.InTx(t.Context(), func(ctx context.Context) error {
				if err := s.RevokeOAuthBySession(ctx, x.SID); err != nil {
					return err
				}
				return s.DeleteSession(ctx, a)
			}))
		}, []string{"docs-a a session_ended", "docs-b a session_ended"}, false},
		{"DeleteSessionByRef", func(t *testing.T, s *store.Store, alice *store.User, _, b string) {
			must(t, s.DeleteSessionByRef(t.Context(), alice.ID, store.SessionRef(b)))
		}, []string{"docs-a b session_ended"}, true},
		{"DeleteUserSessions except one", func(t *testing.T, s *store.Store, alice *store.User, a, _ string) {
			_, err := s.DeleteUserSessions(t.Context(), alice.ID, a)
			must(t, err)
		}, []string{"docs-a b session_ended"}, false},
		{"DeleteUserSessions and RevokeOAuthBySubject (sign out everywhere)", func(t *testing.T, s *store.Store, alice *store.User, _, _ string) {
			must(t, s.InTx(t.Context(), func(ctx context.Context) error {
				if _, err := s.DeleteUserSessions(ctx, alice.ID, ""); err != nil {
					return err
				}
				return s.RevokeOAuthBySubject(ctx, alice.ID)
			}))
		}, []string{"docs-a a session_ended", "docs-b a session_ended", "docs-a b session_ended"}, false},
		{"RevokeOAuthBySubject alone (disable)", func(t *testing.T, s *store.Store, alice *store.User, _, _ string) {
			must(t, s.RevokeOAuthBySubject(t.Context(), alice.ID))
		}, []string{"docs-a a user_revoked", "docs-b a user_revoked", "docs-a b user_revoked"}, false},
		{"DeleteUser", func(t *testing.T, s *store.Store, alice *store.User, _, _ string) {
			must(t, s.DeleteUser(t.Context(), alice.ID))
		}, []string{"docs-a a user_revoked", "docs-b a user_revoked", "docs-a b user_revoked"}, true},
		{"DeleteExpired", func(t *testing.T, s *store.Store, alice *store.User, _, b string) {
			// Only b expires.
			must(t, s.UpdateSession(t.Context(), &store.Session{ID: b, UserID: alice.ID, State: "authenticated",
				LastSeenAt: t0, ExpiresAt: at(time.Minute)}))
			_, err := s.DeleteExpired(t.Context(), at(2*time.Minute))
			must(t, err)
		}, []string{"docs-a b session_expired"}, true},
		{"DeleteIdleSessions", func(t *testing.T, s *store.Store, alice *store.User, a, b string) {
			// Only b has been idle for an hour; a was seen just now, and a
			// sign-in in progress has its own, shorter limit.
			ctx := t.Context()
			must(t, s.TouchSession(ctx, a, at(50*time.Minute)))
			must(t, s.TouchSession(ctx, "session-id-0123456789-c", at(50*time.Minute))) // bob's
			must(t, s.CreateSession(ctx, &store.Session{ID: "session-id-0123456789-journey", UserID: alice.ID, State: "journey",
				CreatedAt: at(20 * time.Minute), LastSeenAt: at(20 * time.Minute), ExpiresAt: at(24 * time.Hour)}))
			n, err := s.DeleteIdleSessions(ctx, "authenticated", at(30*time.Minute), at(25*time.Minute), at(time.Hour))
			must(t, err)
			if n != 2 {
				t.Fatalf("DeleteIdleSessions ended %d sessions, want 2 (b and the idle sign-in)", n)
			}
			if _, err := s.SessionByID(ctx, a, at(time.Hour)); err != nil {
				t.Fatalf("an active session was ended: %v", err)
			}
			for _, id := range []string{b, "session-id-0123456789-journey"} {
				if _, err := s.SessionByID(ctx, id, at(time.Hour)); !isNotFound(err) {
					t.Fatalf("an idle session is still there: %v", err)
				}
			}
			wantErr(t, "no state", func() error { _, err := s.DeleteIdleSessions(ctx, "", t0, t0, t0); return err }(), store.ErrInvalid)
		}, []string{"docs-a b session_expired"}, true},
	}
	for _, tc := range ends {
		t.Run("Queue/"+tc.name, func(t *testing.T) {
			s := open(t)
			alice, _, a, b, c := seed(t, s)
			names := keys(t, s, a, b, c)
			tc.end(t, s, alice, a, b)
			wantQueued(t, tc.name, queued(t, s, names), tc.want...)
			// Bob's session is untouched, and queuing moved the records:
			// ending the same session again, or the garbage collector
			// passing by, queues nothing more.
			if got, _ := s.SessionClients(t.Context(), keyOf(t, s, c)); len(got) != 1 {
				t.Fatalf("bob's session clients = %+v", got)
			}
			if !tc.once {
				tc.end(t, s, alice, a, b)
			}
			if _, err := s.DeleteExpired(t.Context(), at(time.Minute)); err != nil {
				t.Fatal(err)
			}
			if n, err := s.PendingLogouts(t.Context()); err != nil || n != int64(len(tc.want)) {
				t.Fatalf("PendingLogouts after ending again = %d, %v; want %d", n, err, len(tc.want))
			}
		})
	}

	t.Run("RolledBackEndQueuesNothing", func(t *testing.T) {
		s := open(t)
		_, _, a, _, _ := seed(t, s)
		key := keyOf(t, s, a)
		boom := errors.New("boom")
		err := s.InTx(t.Context(), func(ctx context.Context) error {
			if err := s.DeleteSession(ctx, a); err != nil {
				return err
			}
			return boom
		})
		wantErr(t, "rolled back", err, boom)
		if n, _ := s.PendingLogouts(t.Context()); n != 0 {
			t.Fatalf("%d logouts queued by a rolled-back sign-out", n)
		}
		if got, _ := s.SessionClients(t.Context(), key); len(got) != 2 {
			t.Fatalf("session clients lost by a rolled-back sign-out: %+v", got)
		}
	})

	t.Run("ClaimFinishRetry", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		_, _, a, _, _ := seed(t, s)
		must(t, s.DeleteSession(ctx, a))
		// Not due before it was queued... it was queued at the store's now;
		// claim at a time well after.
		now := time.Now().Add(time.Minute)
		ds, err := s.ClaimLogouts(ctx, now, time.Minute, 1)
		must(t, err)
		if len(ds) != 1 || ds[0].Attempts != 1 || ds[0].Claim == "" || ds[0].Reason != store.ReasonSessionEnded {
			t.Fatalf("first claim = %+v", ds)
		}
		first := ds[0]
		// Claimed rows are not due again within the lease.
		ds, err = s.ClaimLogouts(ctx, now, time.Minute, 10)
		must(t, err)
		if len(ds) != 1 || ds[0].ID == first.ID {
			t.Fatalf("second claim = %+v, want only the other row", ds)
		}
		second := ds[0]
		if ds, _ := s.ClaimLogouts(ctx, now.Add(30*time.Second), time.Minute, 10); len(ds) != 0 {
			t.Fatalf("claimed within the lease: %+v", ds)
		}
		// Finish the first; a wrong claim is refused.
		wantErr(t, "finish with a wrong claim", s.FinishLogout(ctx, first.ID, "not-mine"), store.ErrConflict)
		must(t, s.FinishLogout(ctx, first.ID, first.Claim))
		wantErr(t, "finish twice", s.FinishLogout(ctx, first.ID, first.Claim), store.ErrNotFound)
		// Retry the second in 5 minutes: not due before, due after.
		must(t, s.RetryLogout(ctx, second.ID, second.Claim, now.Add(5*time.Minute), "status 503"))
		wantErr(t, "retry with the old claim", s.RetryLogout(ctx, second.ID, second.Claim, now, "x"), store.ErrConflict)
		if ds, _ := s.ClaimLogouts(ctx, now.Add(4*time.Minute), time.Minute, 10); len(ds) != 0 {
			t.Fatalf("due before its retry time: %+v", ds)
		}
		ds, err = s.ClaimLogouts(ctx, now.Add(5*time.Minute), time.Minute, 10)
		must(t, err)
		if len(ds) != 1 || ds[0].ID != second.ID || ds[0].Attempts != 2 || ds[0].LastError != "status 503" {
			t.Fatalf("retried claim = %+v", ds)
		}
		// A lease that runs out (a node died mid-delivery) makes the row
		// due again, and the dead node's claim no longer settles it.
		stale := ds[0]
		ds, err = s.ClaimLogouts(ctx, now.Add(7*time.Minute), time.Minute, 10)
		must(t, err)
		if len(ds) != 1 || ds[0].Attempts != 3 || ds[0].Claim == stale.Claim {
			t.Fatalf("claim after the lease ran out = %+v", ds)
		}
		wantErr(t, "finish with a lost lease", s.FinishLogout(ctx, stale.ID, stale.Claim), store.ErrConflict)
		must(t, s.FinishLogout(ctx, ds[0].ID, ds[0].Claim))
		if n, _ := s.PendingLogouts(ctx); n != 0 {
			t.Fatalf("PendingLogouts = %d after every delivery finished", n)
		}
		_, err = s.ClaimLogouts(ctx, now, 0, 1)
		wantErr(t, "zero lease", err, store.ErrInvalid)
	})

	t.Run("SurvivesReopen", func(t *testing.T) {
		// The outbox is a table: what one process queued, another claims.
		// (Run opens a fresh store per call, so this checks the rows are
		// in the database rather than in the Store value.)
		s := open(t)
		_, _, a, _, _ := seed(t, s)
		must(t, s.DeleteSession(t.Context(), a))
		if n := count(t, s, "SELECT COUNT(*) FROM logout_outbox"); n != 2 {
			t.Fatalf("%d rows in logout_outbox, want 2", n)
		}
	})
}

// testLogoutConcurrency: 20 workers claiming at once get every queued
// delivery exactly once between them.
func testLogoutConcurrency(t *testing.T, open func(t *testing.T) *store.Store) {
	const workers, sessions = 20, 30
	s := open(t)
	ctx := t.Context()
	u := newUser(t, s, "alice")
	for i := range sessions {
		id := newSession(t, s, u.ID, fmt.Sprint(i), t0, at(24*time.Hour))
		for _, c := range []string{"docs-a", "docs-b"} {
			must(t, s.RecordSessionClient(ctx, &store.SessionClient{SID: keyOf(t, s, id), ClientID: c, Subject: u.ID}))
		}
	}
	// Twenty concurrent "sign out everywhere": the records are queued once.
	errs := race(workers, func(int) error {
		return s.InTx(ctx, func(ctx context.Context) error {
			_, err := s.DeleteUserSessions(ctx, u.ID, "")
			return err
		})
	})
	for _, err := range errs {
		if err != nil && !errors.Is(err, store.ErrSerialization) {
			t.Fatalf("DeleteUserSessions: %v", err)
		}
	}
	if n, err := s.PendingLogouts(ctx); err != nil || n != 2*sessions {
		t.Fatalf("PendingLogouts = %d, %v; want %d (each record queued once)", n, err, 2*sessions)
	}
	now := time.Now().Add(time.Minute)
	var mu sync.Mutex
	seen := map[int64]int{}
	errs = race(workers, func(int) error {
		for {
			ds, err := s.ClaimLogouts(ctx, now, time.Hour, 3)
			if errors.Is(err, store.ErrSerialization) {
				continue // SQLite busy or a PostgreSQL conflict: try again
			}
			if err != nil || len(ds) == 0 {
				return err
			}
			for _, d := range ds {
				mu.Lock()
				seen[d.ID]++
				mu.Unlock()
				if err := s.FinishLogout(ctx, d.ID, d.Claim); err != nil {
					return err
				}
			}
		}
	})
	for _, err := range errs {
		if err != nil {
			t.Fatalf("worker: %v", err)
		}
	}
	if len(seen) != 2*sessions {
		t.Fatalf("%d deliveries claimed, want %d", len(seen), 2*sessions)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("delivery %d claimed %d times", id, n)
		}
	}
	if n, _ := s.PendingLogouts(ctx); n != 0 {
		t.Fatalf("PendingLogouts = %d after the workers finished", n)
	}
}
