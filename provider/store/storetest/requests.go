package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/lanyard-idp/lanyard/provider/store"
)

func testRequests(t *testing.T, open func(t *testing.T) *store.Store) {
	req := func(id, email string) *store.AccountRequest {
		return &store.AccountRequest{ID: id, Email: email, Name: "Kim Ärger", Organisation: "HQ", Reason: "docs\nportal",
			Token: "token-" + id, ClientAddr: "192.0.2.1", CreatedAt: t0, ExpiresAt: at(24 * time.Hour)}
	}
	t.Run("InvitationKind", func(t *testing.T) {
		// A request for a fresh onboarding email waits for an approver at
		// once: no token, no verification.
		s := open(t)
		ctx := t.Context()
		r := &store.AccountRequest{ID: "i1", Kind: store.RequestKindInvitation, Email: "kim@agency.example", Name: "Kim",
			ClientAddr: "192.0.2.1", CreatedAt: t0, ExpiresAt: at(14 * 24 * time.Hour)}
		must(t, s.CreateAccountRequest(ctx, r))
		got, err := s.AccountRequestByID(ctx, "i1")
		must(t, err)
		if got.Kind != store.RequestKindInvitation || got.Status != store.RequestPending {
			t.Fatalf("loaded %+v", got)
		}
		sameTime(t, "VerifiedAt", got.VerifiedAt, t0)
		must(t, s.DecideAccountRequest(ctx, "i1", store.RequestApproved, "cli", "", at(time.Hour)))
		// An account request is of kind account when not said.
		must(t, s.CreateAccountRequest(ctx, req("r1", "lee@agency.example")))
		if got, _ := s.AccountRequestByID(ctx, "r1"); got.Kind != store.RequestKindAccount {
			t.Fatalf("default kind %q", got.Kind)
		}
		wantErr(t, "an invitation's request with a token", s.CreateAccountRequest(ctx, &store.AccountRequest{ID: "i2",
			Kind: store.RequestKindInvitation, Email: "x@agency.example", Token: "t", ExpiresAt: at(time.Hour)}), store.ErrInvalid)
		wantErr(t, "an unknown kind", s.CreateAccountRequest(ctx, &store.AccountRequest{ID: "i3",
			Kind: "upgrade", Email: "y@agency.example", Token: "t", ExpiresAt: at(time.Hour)}), store.ErrInvalid)
	})
	t.Run("Lifecycle", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		must(t, s.CreateAccountRequest(ctx, req("r1", "kim@agency.example")))
		got, err := s.AccountRequestByToken(ctx, "token-r1")
		must(t, err)
		if got.ID != "r1" || got.Status != store.RequestUnverified || got.Reason != "docs\nportal" || got.Name != "Kim Ärger" || got.Token != "" {
			t.Fatalf("loaded %+v", got)
		}
		sameTime(t, "ExpiresAt", got.ExpiresAt, at(24*time.Hour))
		if n := count(t, s, `SELECT COUNT(*) FROM account_requests WHERE token_hash = 'token-r1'`); n != 0 {
			t.Fatal("the verification token is stored in the clear")
		}
		open, err := s.OpenAccountRequest(ctx, "kim@agency.example")
		must(t, err)
		if open.ID != "r1" {
			t.Fatalf("open request %+v", open)
		}
		// A new token replaces the old one.
		must(t, s.RenewRequestToken(ctx, "r1", "token-r1b", at(25*time.Hour)))
		_, err = s.AccountRequestByToken(ctx, "token-r1")
		wantErr(t, "old token", err, store.ErrNotFound)
		// Verification: once, before expiry.
		wantErr(t, "verify after expiry", s.VerifyAccountRequest(ctx, "r1", at(26*time.Hour), at(40*time.Hour)), store.ErrConflict)
		must(t, s.VerifyAccountRequest(ctx, "r1", at(time.Hour), at(14*24*time.Hour)))
		wantErr(t, "verify twice", s.VerifyAccountRequest(ctx, "r1", at(time.Hour), at(14*24*time.Hour)), store.ErrConflict)
		wantErr(t, "verify unknown", s.VerifyAccountRequest(ctx, "nope", at(time.Hour), at(2*time.Hour)), store.ErrNotFound)
		_, err = s.AccountRequestByToken(ctx, "token-r1b")
		wantErr(t, "token after verification", err, store.ErrNotFound)
		wantErr(t, "renew a verified one", s.RenewRequestToken(ctx, "r1", "token-x", at(2*time.Hour)), store.ErrConflict)
		// Decision: once, by someone.
		wantErr(t, "decide without who", s.DecideAccountRequest(ctx, "r1", store.RequestApproved, "", "", at(2*time.Hour)), store.ErrInvalid)
		wantErr(t, "decide to expired", s.DecideAccountRequest(ctx, "r1", store.RequestExpired, "cli", "", at(2*time.Hour)), store.ErrInvalid)
		must(t, s.DecideAccountRequest(ctx, "r1", store.RequestDenied, "cli", "no", at(2*time.Hour)))
		wantErr(t, "decide twice", s.DecideAccountRequest(ctx, "r1", store.RequestApproved, "cli", "", at(2*time.Hour)), store.ErrConflict)
		got, err = s.AccountRequestByID(ctx, "r1")
		must(t, err)
		if got.Status != store.RequestDenied || got.DenyReason != "no" || got.DecidedBy != "cli" {
			t.Fatalf("decided %+v", got)
		}
		sameTime(t, "VerifiedAt", got.VerifiedAt, at(time.Hour))
		sameTime(t, "DecidedAt", got.DecidedAt, at(2*time.Hour))
		// A decided request is not open: the mailbox may ask again.
		_, err = s.OpenAccountRequest(ctx, "kim@agency.example")
		wantErr(t, "open after the decision", err, store.ErrNotFound)
		must(t, s.CreateAccountRequest(ctx, req("r2", "kim@agency.example")))
	})

	t.Run("OneOpenPerMailbox", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		wantErr(t, "no token", s.CreateAccountRequest(ctx, &store.AccountRequest{ID: "x", Email: "a@agency.example", ExpiresAt: t0}), store.ErrInvalid)
		errs := race(20, func(i int) error {
			return s.CreateAccountRequest(ctx, req(fmt.Sprintf("race%02d", i), "racer@agency.example"))
		})
		exactlyOnce(t, "racing requests of one mailbox", errs, store.ErrConflict)
		if n := count(t, s, `SELECT COUNT(*) FROM account_requests`); n != 1 {
			t.Fatalf("%d rows", n)
		}
	})

	t.Run("RacingDecisions", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		must(t, s.CreateAccountRequest(ctx, req("r1", "kim@agency.example")))
		errs := race(20, func(int) error { return s.VerifyAccountRequest(ctx, "r1", at(time.Hour), at(48*time.Hour)) })
		exactlyOnce(t, "racing verifications", errs, store.ErrConflict)
		errs = race(20, func(i int) error {
			to := store.RequestApproved
			if i%2 == 1 {
				to = store.RequestDenied
			}
			return s.DecideAccountRequest(ctx, "r1", to, "cli", "", at(2*time.Hour))
		})
		exactlyOnce(t, "racing decisions", errs, store.ErrConflict)
	})

	t.Run("ExpireAndList", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		for i := range 5 {
			r := req(fmt.Sprintf("r%d", i), fmt.Sprintf("kim%d@agency.example", i))
			r.CreatedAt = at(time.Duration(i) * time.Minute)
			r.ExpiresAt = at(time.Duration(i+1) * time.Hour)
			must(t, s.CreateAccountRequest(ctx, r))
		}
		must(t, s.VerifyAccountRequest(ctx, "r4", at(time.Minute), at(100*time.Hour)))
		// One mailbox only, then all: each due one once, as it was.
		due, err := s.ExpireAccountRequests(ctx, at(3*time.Hour), "kim1@agency.example")
		must(t, err)
		if len(due) != 1 || due[0].ID != "r1" || due[0].Status != store.RequestUnverified {
			t.Fatalf("expired %+v", due)
		}
		due, err = s.ExpireAccountRequests(ctx, at(3*time.Hour), "")
		must(t, err)
		if len(due) != 2 || due[0].ID != "r0" || due[1].ID != "r2" {
			t.Fatalf("expired %+v", due)
		}
		due, err = s.ExpireAccountRequests(ctx, at(3*time.Hour), "")
		must(t, err)
		if len(due) != 0 {
			t.Fatalf("expired twice: %+v", due)
		}
		list := func(q store.RequestQuery) []string {
			rs, err := s.ListAccountRequests(ctx, q)
			must(t, err)
			var ids []string
			for _, r := range rs {
				ids = append(ids, r.ID)
			}
			return ids
		}
		if got := list(store.RequestQuery{Status: store.RequestExpired}); !slices.Equal(got, []string{"r0", "r1", "r2"}) {
			t.Fatalf("expired: %v", got)
		}
		if got := list(store.RequestQuery{}); !slices.Equal(got, []string{"r0", "r1", "r2", "r3", "r4"}) {
			t.Fatalf("all: %v", got)
		}
		// A page at a time, by cursor.
		first, err := s.ListAccountRequests(ctx, store.RequestQuery{Limit: 2})
		must(t, err)
		if got := list(store.RequestQuery{After: first[1].Cursor(), Limit: 2}); !slices.Equal(got, []string{"r2", "r3"}) {
			t.Fatalf("second page: %v", got)
		}
		_, err = s.ListAccountRequests(ctx, store.RequestQuery{Status: "sleeping"})
		wantErr(t, "unknown status", err, store.ErrInvalid)
		_, err = s.ListAccountRequests(ctx, store.RequestQuery{After: "garbage"})
		wantErr(t, "bad cursor", err, store.ErrInvalid)
	})
}

func testSearch(t *testing.T, open func(t *testing.T) *store.Store) {
	t.Run("PagesAndSearch", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		names := map[string]string{
			"alice.martin":   "Alice Martín",
			"bob.smith":      "Bob Smith",
			"carol.martinez": "Carol Martinez",
			"dan.o-brien":    "Dan O'Brien",
			"eve":            "Ève Durand-Smith",
		}
		for local, name := range names {
			must(t, s.CreateUser(ctx, &store.User{ID: "u-" + local, Username: local + "@agency.example", Email: local + "@agency.example",
				Name: name, State: store.UserActive, CreatedAt: t0}))
		}
		search := func(q string) []string {
			us, err := s.ListUsersPage(ctx, store.UserQuery{Search: q})
			must(t, err)
			var out []string
			for _, u := range us {
				out = append(out, u.Username)
			}
			return out
		}
		for _, tc := range []struct {
			q    string
			want []string
		}{
			{"martin", []string{"alice.martin@agency.example", "carol.martinez@agency.example"}},
			{"MARTÍN", []string{"alice.martin@agency.example", "carol.martinez@agency.example"}},
			{"smith", []string{"bob.smith@agency.example", "eve@agency.example"}},
			{"eve durand", []string{"eve@agency.example"}},
			{"brien", []string{"dan.o-brien@agency.example"}},
			{"bob.smith@agency", []string{"bob.smith@agency.example"}},
			{"agency", nil}, // the domain is not a term
			{"alice smith", nil},
			{"", []string{"alice.martin@agency.example", "bob.smith@agency.example", "carol.martinez@agency.example", "dan.o-brien@agency.example", "eve@agency.example"}},
		} {
			if got := search(tc.q); !slices.Equal(got, tc.want) {
				t.Errorf("search %q: %v, want %v", tc.q, got, tc.want)
			}
		}
		// Renaming moves the terms; deleting removes them.
		u, err := s.UserByUsername(ctx, "bob.smith@agency.example")
		must(t, err)
		u.Name = "Robert Jones"
		must(t, s.UpdateUser(ctx, u))
		if got := search("smith"); !slices.Equal(got, []string{"bob.smith@agency.example", "eve@agency.example"}) {
			t.Errorf("after the rename, smith: %v (the address still has it)", got)
		}
		if got := search("jones"); !slices.Equal(got, []string{"bob.smith@agency.example"}) {
			t.Errorf("after the rename, jones: %v", got)
		}
		must(t, s.DeleteUser(ctx, "u-eve"))
		if got := search("durand"); got != nil {
			t.Errorf("a deleted user is still found: %v", got)
		}
		// Keyset pages and state filters.
		page, err := s.ListUsersPage(ctx, store.UserQuery{Limit: 2})
		must(t, err)
		next, err := s.ListUsersPage(ctx, store.UserQuery{Limit: 2, After: page[1].Username})
		must(t, err)
		if len(next) != 2 || next[0].Username != "carol.martinez@agency.example" {
			t.Fatalf("second page %v", next)
		}
		next, err = s.ListUsersPage(ctx, store.UserQuery{Search: "martin", Limit: 1, After: "alice.martin@agency.example"})
		must(t, err)
		if len(next) != 1 || next[0].Username != "carol.martinez@agency.example" {
			t.Fatalf("second page of a search %v", next)
		}
		c, err := s.UserByUsername(ctx, "carol.martinez@agency.example")
		must(t, err)
		c.State, c.PasswordInitial, c.InviteExpiresAt = store.UserInvited, true, at(time.Hour)
		must(t, s.UpdateUser(ctx, c))
		for _, tc := range []struct {
			q    store.UserQuery
			want int
		}{
			{store.UserQuery{State: store.UserInvited}, 1},
			{store.UserQuery{State: store.UserInvited, Search: "alice"}, 0},
			{store.UserQuery{State: store.UserActive, Search: "martin"}, 1},
			{store.UserQuery{InviteExpiredAt: at(30 * time.Minute)}, 0},
			{store.UserQuery{InviteExpiredAt: at(2 * time.Hour)}, 1},
			{store.UserQuery{InviteExpiredAt: at(2 * time.Hour), Search: "carol"}, 1},
		} {
			us, err := s.ListUsersPage(ctx, tc.q)
			must(t, err)
			if len(us) != tc.want {
				t.Errorf("%+v: %d users, want %d", tc.q, len(us), tc.want)
			}
		}
		_, err = s.ListUsersPage(ctx, store.UserQuery{State: "sleeping"})
		wantErr(t, "unknown state", err, store.ErrInvalid)
	})

	t.Run("LockedKeysAndAuditPages", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		must(t, s.Lock(ctx, "acct:u1", at(time.Hour), 1))
		must(t, s.Lock(ctx, "acct:u2", at(-time.Hour), 1))
		must(t, s.Lock(ctx, "addr:192.0.2.1", at(time.Hour), 1))
		keys, err := s.LockedKeys(ctx, "acct:", t0)
		must(t, err)
		if len(keys) != 1 || !keys["acct:u1"].Equal(utc(at(time.Hour))) {
			t.Fatalf("locked keys %v", keys)
		}
		for i := range 7 {
			ev := store.Event("admin.user.unlock")
			if i%2 == 1 {
				ev = "signin.success"
			}
			must(t, s.AppendAudit(ctx, &store.AuditEvent{At: at(time.Duration(i) * time.Hour), Event: ev, UserID: "u1", Username: "kim@agency.example"}))
		}
		must(t, s.AppendAudit(ctx, &store.AuditEvent{At: at(time.Hour), Event: "request.submit", Username: "new@agency.example"}))
		page := func(q store.AuditQuery) []int64 {
			evs, err := s.AuditPage(ctx, q)
			must(t, err)
			var ids []int64
			for _, e := range evs {
				ids = append(ids, e.ID)
			}
			return ids
		}
		all := page(store.AuditQuery{})
		if len(all) != 8 || all[0] < all[7] {
			t.Fatalf("newest first: %v", all)
		}
		if got := page(store.AuditQuery{UserID: "u1", Event: "admin.", Limit: 2}); len(got) != 2 || got[0] != all[1] {
			t.Fatalf("admin events of u1: %v (all %v)", got, all)
		}
		if got := page(store.AuditQuery{UserID: "u1", Event: "admin.", BeforeID: all[3]}); len(got) != 2 {
			t.Fatalf("older admin events: %v", got)
		}
		if got := page(store.AuditQuery{Username: "new@agency.example"}); len(got) != 1 {
			t.Fatalf("by address: %v", got)
		}
		if got := page(store.AuditQuery{Since: at(2 * time.Hour), Until: at(4 * time.Hour), Event: "signin.success"}); len(got) != 1 {
			t.Fatalf("a window: %v", got)
		}
	})
}
