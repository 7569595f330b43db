package storetest

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lanyard-idp/lanyard/provider/store"
)

// testApproval: the approval app's devices and requests.
func testApproval(t *testing.T, open func(t *testing.T) *store.Store) {
	t.Run("Devices", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		u, other := newUser(t, s, "ada"), newUser(t, s, "bob")
		d := &store.ApprovalDevice{ID: "dev-1", UserID: u.ID, Name: "Phone", PublicKey: []byte{1, 2, 3},
			Push: store.PushSubscription{Endpoint: "https://push.example/1", P256dh: "p", Auth: "a"}, CreatedAt: t0}
		must(t, s.AddApprovalDevice(ctx, d))
		wantErr(t, "duplicate id", s.AddApprovalDevice(ctx, d), store.ErrConflict)
		wantErr(t, "no such user", s.AddApprovalDevice(ctx, &store.ApprovalDevice{ID: "dev-x", UserID: "nobody", PublicKey: []byte{1}}), store.ErrNotFound)
		wantErr(t, "no key", s.AddApprovalDevice(ctx, &store.ApprovalDevice{ID: "dev-y", UserID: u.ID}), store.ErrInvalid)
		must(t, s.AddApprovalDevice(ctx, &store.ApprovalDevice{ID: "dev-2", UserID: u.ID, Name: "Tablet", PublicKey: []byte{4}, CreatedAt: at(time.Minute)}))

		got, err := s.ApprovalDeviceByID(ctx, "dev-1")
		must(t, err)
		if got.Name != "Phone" || string(got.PublicKey) != "\x01\x02\x03" || got.Push != d.Push {
			t.Fatalf("device round trip: %+v", got)
		}
		sameTime(t, "CreatedAt", got.CreatedAt, t0)
		list, err := s.ApprovalDevices(ctx, u.ID)
		must(t, err)
		if len(list) != 2 || list[0].ID != "dev-1" || list[1].ID != "dev-2" {
			t.Fatalf("devices oldest first: %+v", list)
		}

		wantErr(t, "rename another user's", s.RenameApprovalDevice(ctx, other.ID, "dev-1", "Mine"), store.ErrNotFound)
		must(t, s.RenameApprovalDevice(ctx, u.ID, "dev-1", "Work phone"))
		must(t, s.UseApprovalDevice(ctx, "dev-1", at(time.Hour)))
		// A push service that says the subscription is gone: it is dropped,
		// unless the device has subscribed anew meanwhile.
		must(t, s.ForgetApprovalPush(ctx, "dev-1", "https://push.example/old"))
		got, _ = s.ApprovalDeviceByID(ctx, "dev-1")
		if got.Push.Endpoint == "" {
			t.Fatal("a stale endpoint's answer dropped the current subscription")
		}
		must(t, s.ForgetApprovalPush(ctx, "dev-1", d.Push.Endpoint))
		got, _ = s.ApprovalDeviceByID(ctx, "dev-1")
		if got.Name != "Work phone" || got.Push != (store.PushSubscription{}) {
			t.Fatalf("after rename and a gone subscription: %+v", got)
		}
		sameTime(t, "LastUsedAt", got.LastUsedAt, at(time.Hour))
		must(t, s.SetApprovalPush(ctx, "dev-1", d.Push))

		wantErr(t, "delete another user's", s.DeleteApprovalDevice(ctx, other.ID, "dev-1"), store.ErrNotFound)
		must(t, s.DeleteApprovalDevice(ctx, u.ID, "dev-2"))
		wantErr(t, "delete twice", s.DeleteApprovalDevice(ctx, u.ID, "dev-2"), store.ErrNotFound)
		n, err := s.DeleteApprovalDevices(ctx, u.ID)
		must(t, err)
		if n != 1 {
			t.Fatalf("DeleteApprovalDevices removed %d, want 1", n)
		}
		_, err = s.ApprovalDeviceByID(ctx, "dev-1")
		wantErr(t, "after DeleteApprovalDevices", err, store.ErrNotFound)
	})

	t.Run("Requests", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		u := newUser(t, s, "ada")
		r := signInRequest(u.ID, "r1", t0)
		must(t, s.CreateApprovalRequest(ctx, r))
		got, err := s.ApprovalRequestByID(ctx, "r1")
		must(t, err)
		if got.State != store.ApprovalPending || got.Number != 42 || got.Application != "Docs portal" || !got.Live(at(time.Second)) || got.Live(at(time.Minute)) {
			t.Fatalf("request round trip: %+v", got)
		}
		sameTime(t, "ExpiresAt", got.ExpiresAt, at(time.Minute))

		// One waiting request per account; a pairing may wait beside it.
		wantErr(t, "a second pending request", s.CreateApprovalRequest(ctx, signInRequest(u.ID, "r2", at(time.Second))), store.ErrConflict)
		p := &store.ApprovalRequest{ID: "p1", UserID: u.ID, Kind: store.ApprovalPairing, Number: 17, Challenge: "c",
			TokenHash: "hash-1", CreatedAt: t0, ExpiresAt: at(5 * time.Minute)}
		must(t, s.CreateApprovalRequest(ctx, p))
		wantErr(t, "the same token twice", s.CreateApprovalRequest(ctx, &store.ApprovalRequest{ID: "p2", UserID: u.ID,
			Kind: store.ApprovalPairing, Number: 17, Challenge: "c", TokenHash: "hash-1", CreatedAt: t0, ExpiresAt: at(time.Minute)}), store.ErrConflict)
		for name, bad := range map[string]*store.ApprovalRequest{
			"kind":       {ID: "b", UserID: u.ID, Kind: "other", Number: 42, Challenge: "c", CreatedAt: t0, ExpiresAt: at(time.Minute)},
			"number":     {ID: "b", UserID: u.ID, Kind: store.ApprovalSignIn, Number: 7, Challenge: "c", CreatedAt: t0, ExpiresAt: at(time.Minute)},
			"expiry":     {ID: "b", UserID: u.ID, Kind: store.ApprovalSignIn, Number: 42, Challenge: "c", CreatedAt: t0, ExpiresAt: t0},
			"no token":   {ID: "b", UserID: u.ID, Kind: store.ApprovalPairing, Number: 42, Challenge: "c", CreatedAt: t0, ExpiresAt: at(time.Minute)},
			"no user id": {ID: "b", Kind: store.ApprovalSignIn, Number: 42, Challenge: "c", CreatedAt: t0, ExpiresAt: at(time.Minute)},
		} {
			wantErr(t, "bad request: "+name, s.CreateApprovalRequest(ctx, bad), store.ErrInvalid)
		}
		if n := count(t, s, "SELECT COUNT(*) FROM approval_requests"); n != 2 {
			t.Fatalf("%d requests stored after the refusals, want 2", n)
		}

		// Pairing: the link's token finds it; one phone claims it.
		got, err = s.PairingByToken(ctx, "hash-1")
		must(t, err)
		if got.ID != "p1" {
			t.Fatalf("PairingByToken found %q", got.ID)
		}
		_, err = s.PairingByToken(ctx, "hash-unknown")
		wantErr(t, "unknown token", err, store.ErrNotFound)
		must(t, s.ClaimPairing(ctx, "p1", []byte("key-1"), at(time.Second)))
		wantErr(t, "claim twice", s.ClaimPairing(ctx, "p1", []byte("key-2"), at(2*time.Second)), store.ErrConflict)
		got, _ = s.ApprovalRequestByID(ctx, "p1")
		if string(got.PublicKey) != "key-1" {
			t.Fatalf("the second claim replaced the key: %q", got.PublicKey)
		}

		// Wrong numbers: the third denies.
		for i := 1; i <= 3; i++ {
			wrong, denied, err := s.WrongApprovalNumber(ctx, "r1", 3, "wrong numbers", at(time.Duration(i)*time.Second))
			must(t, err)
			if wrong != i || denied != (i == 3) {
				t.Fatalf("wrong number %d: count %d, denied %v", i, wrong, denied)
			}
		}
		_, _, err = s.WrongApprovalNumber(ctx, "r1", 3, "wrong numbers", at(4*time.Second))
		wantErr(t, "a wrong number after the denial", err, store.ErrConflict)
		wantErr(t, "an approval after the denial", s.AnswerApproval(ctx, "r1", store.ApprovalAnswer{State: store.ApprovalApproved, DeviceID: "d", At: at(5 * time.Second)}), store.ErrConflict)
		got, _ = s.ApprovalRequestByID(ctx, "r1")
		if got.State != store.ApprovalDenied || got.Reason != "wrong numbers" {
			t.Fatalf("after three wrong numbers: %+v", got)
		}
		must(t, s.ReportApproval(ctx, "r1"))
		wantErr(t, "report twice", s.ReportApproval(ctx, "r1"), store.ErrConflict)

		// The account may have another request now; approved, it is used once.
		must(t, s.CreateApprovalRequest(ctx, signInRequest(u.ID, "r3", at(10*time.Second))))
		wantErr(t, "use before the approval", s.UseApproval(ctx, "r3"), store.ErrConflict)
		must(t, s.AnswerApproval(ctx, "r3", store.ApprovalAnswer{State: store.ApprovalApproved, DeviceID: "dev-1", At: at(11 * time.Second)}))
		wantErr(t, "answer twice", s.AnswerApproval(ctx, "r3", store.ApprovalAnswer{State: store.ApprovalDenied, DeviceID: "dev-1", At: at(12 * time.Second)}), store.ErrConflict)
		wantErr(t, "report an approval", s.ReportApproval(ctx, "r3"), store.ErrConflict)
		must(t, s.UseApproval(ctx, "r3"))
		wantErr(t, "use twice", s.UseApproval(ctx, "r3"), store.ErrConflict)
		wantErr(t, "use an unknown request", s.UseApproval(ctx, "nope"), store.ErrNotFound)
		got, _ = s.ApprovalRequestByID(ctx, "r3")
		if got.State != store.ApprovalUsed || got.DeviceID != "dev-1" {
			t.Fatalf("after use: %+v", got)
		}
		sameTime(t, "DecidedAt", got.DecidedAt, at(11*time.Second))

		// Expiry: no answer once past it, and a stale request does not block
		// a new one.
		must(t, s.CreateApprovalRequest(ctx, signInRequest(u.ID, "r4", at(20*time.Second))))
		pending, err := s.PendingApprovals(ctx, u.ID, at(30*time.Second))
		must(t, err)
		if len(pending) != 1 || pending[0].ID != "r4" {
			t.Fatalf("pending: %+v", pending)
		}
		late := at(20*time.Second + time.Minute)
		wantErr(t, "an answer after expiry", s.AnswerApproval(ctx, "r4", store.ApprovalAnswer{State: store.ApprovalApproved, DeviceID: "d", At: late}), store.ErrConflict)
		if pending, _ := s.PendingApprovals(ctx, u.ID, late); len(pending) != 0 {
			t.Fatalf("an expired request is still pending: %+v", pending)
		}
		must(t, s.CreateApprovalRequest(ctx, signInRequest(u.ID, "r5", late)))
		got, _ = s.ApprovalRequestByID(ctx, "r4")
		if got.State != store.ApprovalExpired {
			t.Fatalf("the stale request is %s, want expired", got.State)
		}
		must(t, s.CancelApprovalRequest(ctx, "r5"))
		must(t, s.ExpireApprovalRequest(ctx, "r5", late)) // not pending: nothing
		if got, _ := s.ApprovalRequestByID(ctx, "r5"); got.State != store.ApprovalCancelled {
			t.Fatalf("cancelled request is %s", got.State)
		}
		n, err := s.CountApprovalRequests(ctx, u.ID, at(15*time.Second))
		must(t, err)
		if n != 2 {
			t.Fatalf("%d requests since 15 s, want 2", n)
		}
		// Deleting the user deletes the requests.
		must(t, s.DeleteUser(ctx, u.ID))
		if n := count(t, s, "SELECT COUNT(*) FROM approval_requests"); n != 0 {
			t.Fatalf("%d requests outlived their user", n)
		}
	})

	t.Run("GC", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		u := newUser(t, s, "ada")
		must(t, s.CreateApprovalRequest(ctx, signInRequest(u.ID, "old", t0)))
		must(t, s.CancelApprovalRequest(ctx, "old"))
		must(t, s.CreateApprovalRequest(ctx, signInRequest(u.ID, "recent", at(2*time.Hour))))
		if _, err := s.DeleteExpired(ctx, at(2*time.Hour+30*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ApprovalRequestByID(ctx, "old"); !isNotFound(err) {
			t.Fatalf("a request expired two hours ago survived GC: %v", err)
		}
		if _, err := s.ApprovalRequestByID(ctx, "recent"); err != nil {
			t.Fatalf("a request of the last hour was collected: %v", err)
		}
	})

	t.Run("Races", func(t *testing.T) {
		const n = 20
		s := open(t)
		ctx := t.Context()
		u := newUser(t, s, "ada")
		// Twenty racing requests for one account: one waits.
		errs := race(n, func(i int) error {
			return s.CreateApprovalRequest(ctx, signInRequest(u.ID, fmt.Sprintf("c%d", i), t0))
		})
		exactlyOnce(t, "CreateApprovalRequest", serializationAsConflict(errs), store.ErrConflict)
		pending, err := s.PendingApprovals(ctx, u.ID, at(time.Second))
		must(t, err)
		if len(pending) != 1 {
			t.Fatalf("%d pending requests after the race, want 1", len(pending))
		}
		id := pending[0].ID
		// Twenty racing approvals of it: one wins.
		errs = race(n, func(i int) error {
			return s.AnswerApproval(ctx, id, store.ApprovalAnswer{State: store.ApprovalApproved, DeviceID: fmt.Sprintf("d%d", i), At: at(time.Second)})
		})
		exactlyOnce(t, "AnswerApproval", serializationAsConflict(errs), store.ErrConflict)
		// Twenty racing uses of the approval: one browser takes it.
		errs = race(n, func(int) error { return s.UseApproval(ctx, id) })
		exactlyOnce(t, "UseApproval", serializationAsConflict(errs), store.ErrConflict)
		// Twenty racing wrong numbers all count; the third denies.
		must(t, s.CreateApprovalRequest(ctx, signInRequest(u.ID, "w", at(time.Second))))
		var denials atomic.Int32
		counted := 0
		errs = race(n, func(int) error {
			_, denied, err := s.WrongApprovalNumber(ctx, "w", 3, "wrong numbers", at(2*time.Second))
			if err == nil && denied {
				denials.Add(1)
			}
			return err
		})
		for _, err := range errs {
			switch {
			case err == nil:
				counted++
			case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrSerialization):
			default:
				t.Fatalf("wrong number: %v", err)
			}
		}
		got, _ := s.ApprovalRequestByID(ctx, "w")
		if got.State != store.ApprovalDenied || counted != 3 || got.WrongNumbers != 3 || denials.Load() != 1 {
			t.Fatalf("after %d racing wrong numbers: %d counted, %d denials, state %s, count %d; want 3 counted, 1 denial, denied, 3",
				n, counted, denials.Load(), got.State, got.WrongNumbers)
		}
	})
}

func signInRequest(userID, id string, created time.Time) *store.ApprovalRequest {
	return &store.ApprovalRequest{ID: id, UserID: userID, Kind: store.ApprovalSignIn, Number: 42, Challenge: "challenge-" + id,
		Application: "Docs portal", Browser: "Firefox on Windows", ClientAddr: "192.0.2.1",
		CreatedAt: created, ExpiresAt: created.Add(time.Minute)}
}

// serializationAsConflict counts a transaction the database aborted for a
// racing one as a loser like a lost conditional update.
func serializationAsConflict(errs []error) []error {
	out := make([]error, len(errs))
	for i, err := range errs {
		if errors.Is(err, store.ErrSerialization) {
			err = store.ErrConflict
		}
		out[i] = err
	}
	return out
}
