package storetest

import (
	"bytes"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lanyard-idp/lanyard/provider/store"
)

func testTOTP(t *testing.T, open func(t *testing.T) *store.Store) {
	t.Run("PutAndLoad", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		u := newUser(t, s, "alice")
		must(t, s.PutTOTP(ctx, &store.TOTP{UserID: u.ID, Secret: []byte("sealed-1"), CreatedAt: t0}))
		got, err := s.TOTPByUser(ctx, u.ID)
		must(t, err)
		if string(got.Secret) != "sealed-1" || got.Confirmed || got.LastStep != 0 {
			t.Fatalf("loaded %+v", got)
		}
		sameTime(t, "CreatedAt", got.CreatedAt, t0)
		// Put replaces (a new enrolment).
		must(t, s.PutTOTP(ctx, &store.TOTP{UserID: u.ID, Secret: []byte("sealed-2"), Confirmed: true, LastStep: 7, CreatedAt: at(time.Hour)}))
		got, err = s.TOTPByUser(ctx, u.ID)
		must(t, err)
		if string(got.Secret) != "sealed-2" || !got.Confirmed || got.LastStep != 7 {
			t.Fatalf("after replace %+v", got)
		}
		must(t, s.DeleteTOTP(ctx, u.ID))
		_, err = s.TOTPByUser(ctx, u.ID)
		wantErr(t, "after delete", err, store.ErrNotFound)
		must(t, s.DeleteTOTP(ctx, u.ID)) // idempotent
	})

	t.Run("Refused", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		_, err := s.TOTPByUser(ctx, "nobody")
		wantErr(t, "TOTPByUser", err, store.ErrNotFound)
		wantErr(t, "unknown user", s.PutTOTP(ctx, &store.TOTP{UserID: "nobody", Secret: []byte("x")}), store.ErrNotFound)
		u := newUser(t, s, "alice")
		wantErr(t, "empty secret", s.PutTOTP(ctx, &store.TOTP{UserID: u.ID}), store.ErrInvalid)
		wantErr(t, "no user", s.PutTOTP(ctx, &store.TOTP{Secret: []byte("x")}), store.ErrInvalid)
		_, err = s.TOTPByUser(ctx, u.ID)
		wantErr(t, "nothing stored", err, store.ErrNotFound)
		wantErr(t, "ConfirmTOTP without secret", s.ConfirmTOTP(ctx, u.ID, 5), store.ErrNotFound)
		wantErr(t, "UseTOTPStep without secret", s.UseTOTPStep(ctx, u.ID, 5), store.ErrNotFound)
	})

	t.Run("ConfirmOnce", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		u := newUser(t, s, "alice")
		must(t, s.PutTOTP(ctx, &store.TOTP{UserID: u.ID, Secret: []byte("sealed")}))
		must(t, s.ConfirmTOTP(ctx, u.ID, 100))
		got, err := s.TOTPByUser(ctx, u.ID)
		must(t, err)
		if !got.Confirmed || got.LastStep != 100 {
			t.Fatalf("after confirm %+v", got)
		}
		wantErr(t, "second confirm", s.ConfirmTOTP(ctx, u.ID, 101), store.ErrConflict)
		// The enrolment code's step is used: signing in with it is a replay.
		wantErr(t, "enrolment step replayed", s.UseTOTPStep(ctx, u.ID, 100), store.ErrConflict)
	})

	t.Run("StepOnce", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		u := newUser(t, s, "alice")
		must(t, s.PutTOTP(ctx, &store.TOTP{UserID: u.ID, Secret: []byte("sealed"), Confirmed: true, LastStep: 10}))
		must(t, s.UseTOTPStep(ctx, u.ID, 11))
		wantErr(t, "same step", s.UseTOTPStep(ctx, u.ID, 11), store.ErrConflict)
		wantErr(t, "earlier step", s.UseTOTPStep(ctx, u.ID, 10), store.ErrConflict)
		must(t, s.UseTOTPStep(ctx, u.ID, 13))
		got, err := s.TOTPByUser(ctx, u.ID)
		must(t, err)
		if got.LastStep != 13 {
			t.Fatalf("LastStep = %d, want 13", got.LastStep)
		}
	})
}

func testRecovery(t *testing.T, open func(t *testing.T) *store.Store) {
	t.Run("UseOnce", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
		must(t, s.ReplaceRecoveryCodes(ctx, alice.ID, []string{"h1", "h2", "h3"}))
		must(t, s.ReplaceRecoveryCodes(ctx, bob.ID, []string{"hb"}))
		left := func(id string, want int) {
			t.Helper()
			n, err := s.RecoveryCodesLeft(ctx, id)
			must(t, err)
			if n != want {
				t.Fatalf("RecoveryCodesLeft(%s) = %d, want %d", id, n, want)
			}
		}
		left(alice.ID, 3)
		must(t, s.UseRecoveryCode(ctx, alice.ID, "h2", t0))
		left(alice.ID, 2)
		wantErr(t, "reuse", s.UseRecoveryCode(ctx, alice.ID, "h2", at(time.Minute)), store.ErrNotFound)
		wantErr(t, "unknown hash", s.UseRecoveryCode(ctx, alice.ID, "nope", t0), store.ErrNotFound)
		wantErr(t, "another user's code", s.UseRecoveryCode(ctx, alice.ID, "hb", t0), store.ErrNotFound)
		left(bob.ID, 1)
		left(alice.ID, 2)

		// Replacing starts over, used codes included.
		must(t, s.ReplaceRecoveryCodes(ctx, alice.ID, []string{"n1", "n2"}))
		left(alice.ID, 2)
		wantErr(t, "old code after replace", s.UseRecoveryCode(ctx, alice.ID, "h1", t0), store.ErrNotFound)

		// Bad input is refused and keeps the old codes.
		wantErr(t, "duplicate hashes", s.ReplaceRecoveryCodes(ctx, alice.ID, []string{"x", "x"}), store.ErrInvalid)
		wantErr(t, "empty hash", s.ReplaceRecoveryCodes(ctx, alice.ID, []string{"x", ""}), store.ErrInvalid)
		left(alice.ID, 2)
		wantErr(t, "unknown user", s.ReplaceRecoveryCodes(ctx, "nobody", []string{"x"}), store.ErrNotFound)

		must(t, s.DeleteRecoveryCodes(ctx, alice.ID))
		left(alice.ID, 0)
		left(bob.ID, 1)
	})
	t.Run("HashesAndRekey", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
		must(t, s.ReplaceRecoveryCodes(ctx, alice.ID, []string{"old1", "old2", "k$a3"}))
		must(t, s.ReplaceRecoveryCodes(ctx, bob.ID, []string{"oldb"}))
		must(t, s.UseRecoveryCode(ctx, alice.ID, "old2", t0))
		hashes := func(id string) string {
			t.Helper()
			hs, err := s.RecoveryCodeHashes(ctx, id)
			must(t, err)
			return strings.Join(hs, ",")
		}
		if got := hashes(alice.ID); got != "k$a3,old1" {
			t.Fatalf("RecoveryCodeHashes = %s, want the unused ones", got)
		}
		var seen []string
		n, err := s.RekeyRecoveryCodes(ctx, "k$", func(user, h string) string {
			seen = append(seen, user+":"+h)
			return "k$" + user + "-" + h
		})
		must(t, err)
		// The used code is rekeyed too (nothing stays in the old form); a
		// keyed one is left alone; one user's rows come together.
		if n != 3 || len(seen) != 3 || !slices.Contains(seen, alice.ID+":old2") || strings.Contains(strings.Join(seen, ","), "k$a3") {
			t.Fatalf("rekeyed %d: %v", n, seen)
		}
		changes := 0
		for i := 1; i < len(seen); i++ {
			if strings.SplitN(seen[i], ":", 2)[0] != strings.SplitN(seen[i-1], ":", 2)[0] {
				changes++
			}
		}
		if changes != 1 {
			t.Errorf("one user's rows are not together: %v", seen)
		}
		if got := hashes(alice.ID); got != "k$a3,k$"+alice.ID+"-old1" {
			t.Errorf("after rekey: %s", got)
		}
		wantErr(t, "used code after rekey", s.UseRecoveryCode(ctx, alice.ID, "k$"+alice.ID+"-old2", t0), store.ErrNotFound)
		must(t, s.UseRecoveryCode(ctx, bob.ID, "k$"+bob.ID+"-oldb", t0))
		if n, err := s.RekeyRecoveryCodes(ctx, "k$", func(string, string) string { t.Error("rekey called twice"); return "" }); err != nil || n != 0 {
			t.Errorf("second rekey: %d, %v", n, err)
		}
	})
}

func testWebAuthn(t *testing.T, open func(t *testing.T) *store.Store) {
	t.Run("Credentials", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
		c1 := &store.WebAuthnCredential{
			ID: []byte{1, 2, 3}, UserID: alice.ID, Name: "YubiKey", PublicKey: []byte("cose"), SignCount: 5,
			AAGUID: []byte("aaguid-16-bytes!"), Transports: []string{"usb", "nfc"}, Data: []byte(`{"flags":1}`),
			CreatedAt: t0,
		}
		must(t, s.AddWebAuthnCredential(ctx, c1))
		must(t, s.AddWebAuthnCredential(ctx, &store.WebAuthnCredential{ID: []byte{4}, UserID: alice.ID, Name: "Phone", PublicKey: []byte("k"), CreatedAt: at(time.Hour)}))
		must(t, s.AddWebAuthnCredential(ctx, &store.WebAuthnCredential{ID: []byte{5}, UserID: bob.ID, PublicKey: []byte("k"), CreatedAt: t0}))

		got, err := s.WebAuthnCredentialByID(ctx, []byte{1, 2, 3})
		must(t, err)
		if got.UserID != alice.ID || got.Name != "YubiKey" || string(got.PublicKey) != "cose" || got.SignCount != 5 ||
			!bytes.Equal(got.AAGUID, c1.AAGUID) || !reflect.DeepEqual(got.Transports, []string{"usb", "nfc"}) ||
			string(got.Data) != `{"flags":1}` {
			t.Fatalf("loaded %+v", got)
		}
		sameTime(t, "CreatedAt", got.CreatedAt, t0)
		list, err := s.WebAuthnCredentials(ctx, alice.ID)
		must(t, err)
		if len(list) != 2 || list[0].Name != "YubiKey" || list[1].Name != "Phone" || list[1].Transports != nil {
			t.Fatalf("list = %+v", list)
		}

		err = s.AddWebAuthnCredential(ctx, &store.WebAuthnCredential{ID: []byte{1, 2, 3}, UserID: bob.ID, PublicKey: []byte("k")})
		wantErr(t, "same credential id for another user", err, store.ErrConflict)
		err = s.AddWebAuthnCredential(ctx, &store.WebAuthnCredential{ID: []byte{9}, UserID: "nobody", PublicKey: []byte("k")})
		wantErr(t, "unknown user", err, store.ErrNotFound)
		err = s.AddWebAuthnCredential(ctx, &store.WebAuthnCredential{UserID: alice.ID, PublicKey: []byte("k")})
		wantErr(t, "no id", err, store.ErrInvalid)
		_, err = s.WebAuthnCredentialByID(ctx, []byte{9})
		wantErr(t, "unknown credential", err, store.ErrNotFound)

		// Sign count moves forward once from a given value.
		must(t, s.UpdateWebAuthnUse(ctx, []byte{1, 2, 3}, 5, 6, at(time.Minute)))
		wantErr(t, "stale count", s.UpdateWebAuthnUse(ctx, []byte{1, 2, 3}, 5, 7, at(time.Minute)), store.ErrConflict)
		wantErr(t, "unknown credential", s.UpdateWebAuthnUse(ctx, []byte{9}, 0, 1, t0), store.ErrNotFound)
		got, err = s.WebAuthnCredentialByID(ctx, []byte{1, 2, 3})
		must(t, err)
		if got.SignCount != 6 {
			t.Fatalf("SignCount = %d, want 6", got.SignCount)
		}
		sameTime(t, "LastUsedAt", got.LastUsedAt, at(time.Minute))

		// Rename and delete only one's own credentials.
		wantErr(t, "rename another user's", s.RenameWebAuthnCredential(ctx, bob.ID, []byte{1, 2, 3}, "mine"), store.ErrNotFound)
		must(t, s.RenameWebAuthnCredential(ctx, alice.ID, []byte{1, 2, 3}, "Work key"))
		wantErr(t, "delete another user's", s.DeleteWebAuthnCredential(ctx, bob.ID, []byte{1, 2, 3}), store.ErrNotFound)
		got, err = s.WebAuthnCredentialByID(ctx, []byte{1, 2, 3})
		must(t, err)
		if got.Name != "Work key" {
			t.Fatalf("Name = %q", got.Name)
		}
		must(t, s.DeleteWebAuthnCredential(ctx, alice.ID, []byte{1, 2, 3}))
		_, err = s.WebAuthnCredentialByID(ctx, []byte{1, 2, 3})
		wantErr(t, "after delete", err, store.ErrNotFound)
		wantErr(t, "delete twice", s.DeleteWebAuthnCredential(ctx, alice.ID, []byte{1, 2, 3}), store.ErrNotFound)
	})

	t.Run("MaxSignCount", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		u := newUser(t, s, "alice")
		must(t, s.AddWebAuthnCredential(ctx, &store.WebAuthnCredential{ID: []byte{1}, UserID: u.ID, PublicKey: []byte("k"), SignCount: 1<<32 - 2}))
		must(t, s.UpdateWebAuthnUse(ctx, []byte{1}, 1<<32-2, 1<<32-1, t0))
		got, err := s.WebAuthnCredentialByID(ctx, []byte{1})
		must(t, err)
		if got.SignCount != 1<<32-1 {
			t.Fatalf("SignCount = %d", got.SignCount)
		}
	})

	t.Run("Handle", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
		_, err := s.WebAuthnHandle(ctx, alice.ID)
		wantErr(t, "no handle yet", err, store.ErrNotFound)
		_, err = s.WebAuthnHandle(ctx, "nobody")
		wantErr(t, "unknown user", err, store.ErrNotFound)
		must(t, s.SetWebAuthnHandle(ctx, alice.ID, []byte("handle-a")))
		h, err := s.WebAuthnHandle(ctx, alice.ID)
		must(t, err)
		if string(h) != "handle-a" {
			t.Fatalf("handle = %q", h)
		}
		u, err := s.UserByWebAuthnHandle(ctx, []byte("handle-a"))
		must(t, err)
		if u.ID != alice.ID {
			t.Fatalf("UserByWebAuthnHandle = %s", u.ID)
		}
		wantErr(t, "another user's handle", s.SetWebAuthnHandle(ctx, bob.ID, []byte("handle-a")), store.ErrConflict)
		wantErr(t, "unknown user", s.SetWebAuthnHandle(ctx, "nobody", []byte("h")), store.ErrNotFound)
		wantErr(t, "empty handle", s.SetWebAuthnHandle(ctx, bob.ID, nil), store.ErrInvalid)
		_, err = s.UserByWebAuthnHandle(ctx, []byte("nope"))
		wantErr(t, "unknown handle", err, store.ErrNotFound)
		_, err = s.UserByWebAuthnHandle(ctx, nil)
		wantErr(t, "empty handle lookup", err, store.ErrNotFound)
	})
}

func testAcceptances(t *testing.T, open func(t *testing.T) *store.Store) {
	s := open(t)
	ctx := t.Context()
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	none, err := s.Acceptances(ctx, alice.ID)
	must(t, err)
	if len(none) != 0 {
		t.Fatalf("acceptances before any: %v", none)
	}
	must(t, s.Accept(ctx, store.Acceptance{UserID: alice.ID, Document: "privacy", Version: "2024-01", AcceptedAt: t0, ClientAddr: "192.0.2.1"}))
	must(t, s.Accept(ctx, store.Acceptance{UserID: alice.ID, Document: "terms", Version: "3", AcceptedAt: at(time.Minute)}))
	must(t, s.Accept(ctx, store.Acceptance{UserID: alice.ID, Document: "privacy", Version: "2025-06", AcceptedAt: at(time.Hour), ClientAddr: "192.0.2.9"}))
	must(t, s.Accept(ctx, store.Acceptance{UserID: bob.ID, Document: "privacy", Version: "old", AcceptedAt: at(2 * time.Hour)}))
	got, err := s.Acceptances(ctx, alice.ID)
	must(t, err)
	if len(got) != 2 || got[0].Document != "privacy" || got[0].Version != "2025-06" || got[0].ClientAddr != "192.0.2.9" ||
		got[1].Document != "terms" || got[1].Version != "3" {
		t.Fatalf("Acceptances = %+v", got)
	}
	sameTime(t, "AcceptedAt", got[0].AcceptedAt, at(time.Hour))
	if got[0].UserID != alice.ID {
		t.Fatalf("UserID = %q", got[0].UserID)
	}
	wantErr(t, "unknown user", s.Accept(ctx, store.Acceptance{UserID: "nobody", Document: "terms", Version: "1"}), store.ErrNotFound)
	wantErr(t, "no version", s.Accept(ctx, store.Acceptance{UserID: alice.ID, Document: "terms"}), store.ErrInvalid)
	wantErr(t, "no document", s.Accept(ctx, store.Acceptance{UserID: alice.ID, Version: "1"}), store.ErrInvalid)
	got, err = s.Acceptances(ctx, alice.ID)
	must(t, err)
	if len(got) != 2 || got[1].Version != "3" {
		t.Fatalf("refused acceptance changed the result: %+v", got)
	}
}
