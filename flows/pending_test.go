package flows

import (
	"slices"
	"testing"

	"github.com/lanyard-idp/lanyard/provider/store"
)

// TestStepPending is the question the token endpoint asks before every
// grant: is a journey step waiting for this officer?
func TestStepPending(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	u := e.seedReady(alice, alicePw)
	admin, err := NewAdmin(Options{Config: e.cfg, Store: e.st})
	if err != nil {
		t.Fatal(err)
	}
	want := func(what, step string) {
		t.Helper()
		got, err := e.h.StepPending(ctx, u.ID)
		if err != nil || got != step {
			t.Fatalf("%s: StepPending = %q, %v; want %q", what, got, err, step)
		}
	}
	// No second factor yet, and the journey makes everyone enrol one.
	want("no second factor", StepMFAEnrol)
	if err := e.st.PutTOTP(ctx, &store.TOTP{UserID: u.ID, Secret: []byte("sealed"), Confirmed: true}); err != nil {
		t.Fatal(err)
	}
	want("ready", "")

	// A new version of the terms.
	cfg := *e.cfg
	cfg.Documents = slices.Clone(cfg.Documents)
	cfg.Documents[1].Version = "2026-02"
	if err := e.h.SetConfig(&cfg); err != nil {
		t.Fatal(err)
	}
	want("new terms", StepTerms)
	if err := e.st.Accept(ctx, store.Acceptance{UserID: u.ID, Document: StepTerms, Version: "2026-02", AcceptedAt: e.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	want("terms accepted", "")

	// An initial password to replace (an admin reset).
	got := e.user(u.ID)
	got.PasswordInitial = true
	if err := e.st.UpdateUser(ctx, got); err != nil {
		t.Fatal(err)
	}
	want("initial password", StepChangePassword)
	got.PasswordInitial = false
	if err := e.st.UpdateUser(ctx, got); err != nil {
		t.Fatal(err)
	}

	// Disabled, then gone.
	if _, err := admin.Disable(ctx, store.ActorCLI, alice); err != nil {
		t.Fatal(err)
	}
	want("disabled", StepPassword)
	if err := e.st.DeleteUser(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	want("deleted", StepPassword)
}
