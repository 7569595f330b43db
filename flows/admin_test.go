package flows

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/provider/store"
)

// TestAdminChanges walks the account changes of the admin service as the
// console would make them: each is recorded with its actor, takes effect at
// once (sessions and tokens end), and a refused one writes nothing.
func TestAdminChanges(t *testing.T) {
	f := newInviteFixture(t)
	ctx := t.Context()
	if _, err := f.iv.Invite(ctx, store.ActorCLI, "alice@agency.example", Names{Full: "Alice"}); err != nil {
		t.Fatal(err)
	}
	u, refresh := f.activate(t, "alice@agency.example")
	const admin = store.Actor("5f2a9c0e41d7b36a8e1f0c2d4b6a8e10") // an admin's user id

	c, err := f.iv.Disable(ctx, admin, " Alice@Agency.example")
	if err != nil {
		t.Fatal(err)
	}
	if c.User.ID != u.ID || c.User.State != store.UserDisabled || c.SessionsEnded != 1 {
		t.Fatalf("disable: %+v", c)
	}
	if row, err := f.store.GetOAuth(ctx, store.KindRefresh, refresh); err != nil || row.Active {
		t.Fatalf("the refresh token survived the disable: %+v, %v", row, err)
	}
	ev := f.events(t, store.EventUserDisable)
	if len(ev) != 1 || ev[0].UserID != u.ID || !bytes.Contains(ev[0].Detail, []byte(`"by":"`+string(admin)+`"`)) {
		t.Fatalf("disable audited as %+v", ev)
	}

	// Refused, with the sentinel and a sentence, and nothing written.
	users, events := f.counts(t)
	for _, tc := range []struct {
		name   string
		change func(context.Context, store.Actor, string) (*AccountChange, error)
		by     store.Actor
		email  string
		want   error
		says   string
	}{
		{"disable twice", f.iv.Disable, admin, "alice@agency.example", ErrAlreadyDisabled, "alice@agency.example is already disabled"},
		{"unknown account", f.iv.Unlock, admin, "nobody@agency.example", ErrNoAccount, "there is no account for nobody@agency.example"},
		{"not an address", f.iv.ResetMFA, admin, "not an address", ErrBadUsername, ""},
		{"no actor", f.iv.Enable, "", "alice@agency.example", errNoActor, ""},
	} {
		c, err := tc.change(ctx, tc.by, tc.email)
		if !errors.Is(err, tc.want) || c != nil {
			t.Errorf("%s: %+v, %v; want %v", tc.name, c, err, tc.want)
			continue
		}
		if tc.says != "" && err.Error() != tc.says {
			t.Errorf("%s: says %q, want %q", tc.name, err, tc.says)
		}
	}
	if _, err := f.iv.Revoke(ctx, "", "alice@agency.example"); !errors.Is(err, errNoActor) {
		t.Errorf("revoke without an actor: %v", err)
	}
	if _, err := f.iv.ResetPassword(ctx, "", "alice@agency.example"); !errors.Is(err, errNoActor) {
		t.Errorf("reset password without an actor: %v", err)
	}
	if u2, e2 := f.counts(t); u2 != users || e2 != events {
		t.Fatalf("a refused change wrote something: users %d→%d, events %d→%d", users, u2, events, e2)
	}

	c, err = f.iv.Enable(ctx, admin, "alice@agency.example")
	if err != nil || c.User.State != store.UserActive {
		t.Fatalf("enable: %+v, %v", c, err)
	}
	if _, err := f.iv.Enable(ctx, admin, "alice@agency.example"); !errors.Is(err, ErrNotDisabled) {
		t.Fatalf("enable an active account: %v", err)
	}
}

// TestAdminDisableRace: of 20 admins disabling the same account at once,
// exactly one does it and one event records it; the others are told it is
// already disabled.
func TestAdminDisableRace(t *testing.T) {
	f := newInviteFixture(t)
	if _, err := f.iv.Invite(t.Context(), store.ActorCLI, "alice@agency.example", Names{Full: "Alice"}); err != nil {
		t.Fatal(err)
	}
	f.activate(t, "alice@agency.example")
	errs := make([]error, 20)
	atOnce(len(errs), func(i int) { _, errs[i] = f.iv.Disable(context.Background(), store.ActorCLI, "alice@agency.example") })
	ok := winners(t, errs, ErrAlreadyDisabled)
	if ev := f.events(t, store.EventUserDisable); ok != 1 || len(ev) != 1 {
		t.Fatalf("%d disables succeeded, %d audited; want exactly 1", ok, len(ev))
	}
}

// TestConfigWithoutDefaultsRefused: the journey and the admin service refuse
// a Config that config.ApplyDefaults has not seen, rather than take its zeros
// (no lock time, no password length, no invitation validity) as settings.
func TestConfigWithoutDefaultsRefused(t *testing.T) {
	e := newEnv(t)
	bare := &config.Config{Issuer: e.cfg.Issuer, Documents: e.cfg.Documents}
	if _, err := NewAdmin(Options{Config: bare, Store: e.st}); !errors.Is(err, errNoDefaults) {
		t.Errorf("NewAdmin: %v", err)
	}
	if _, err := New(t.Context(), Options{Config: bare, Store: e.st, Box: e.box, Pages: e.h.pages}); !errors.Is(err, errNoDefaults) {
		t.Errorf("New: %v", err)
	}
	before := e.h.settings()
	if err := e.h.SetConfig(bare); !errors.Is(err, errNoDefaults) {
		t.Errorf("SetConfig: %v", err)
	}
	if e.h.settings() != before {
		t.Error("a refused SetConfig changed the settings")
	}
}
