package flows

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lanyard-idp/lanyard/provider/store"
)

// TestExpiredInvitationEverywhere: once an invitation has expired, nothing
// of a journey begun before goes on — not the change-password step with
// the initial password, not a passkey enrolled in the unfinished journey.
func TestExpiredInvitationEverywhere(t *testing.T) {
	t.Parallel()

	t.Run("the change-password step", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, withoutMFA)
		u := e.seedUser(alice, aliceFirst, true)
		// The invitation runs out in five minutes.
		u.InviteExpiresAt = e.clock.Now().Add(5 * time.Minute)
		if err := e.st.UpdateUser(t.Context(), u); err != nil {
			t.Fatal(err)
		}
		b := e.browser()
		r := b.open("/test/authorize?n=1")
		r = b.follow(b.submit(r, map[string]string{"username": alice}))
		r = b.follow(b.submit(r, map[string]string{"password": aliceFirst}))
		mustStep(t, r, StepChangePassword)
		// It runs out while the page is open.
		e.clock.Advance(6 * time.Minute)
		bad := b.submit(r, map[string]string{"current_password": aliceFirst, "new_password": alicePw, "confirm_password": alicePw})
		mustStatus(t, bad, http.StatusForbidden)
		if !strings.Contains(text(bad.doc), msgInviteExpired) {
			t.Fatalf("change-password after expiry: %s", text(bad.doc))
		}
		got := e.user(u.ID)
		if got.PasswordHash != u.PasswordHash || !got.PasswordInitial || got.State != store.UserInvited {
			t.Fatalf("the initial password was replaced after the invitation expired: %+v", got)
		}
		// The browser starts over; the dispatcher finishes nothing.
		mustRedirect(t, b.get(PathNext), PathSignIn)
		if d := b.done(b.get("/test/done")); d.SignedIn || d.InProgress {
			t.Fatalf("after expiry: %+v", d)
		}
	})

	t.Run("a passkey enrolled in the unfinished journey", func(t *testing.T) {
		t.Parallel()
		e := newPasskeyEnv(t)
		u := e.seedUser(alice, aliceFirst, true)
		a := e.authenticator()
		b := e.browser()
		r := b.open("/test/authorize?n=1")
		r = b.follow(b.submit(r, map[string]string{"username": alice}))
		r = b.follow(b.submit(r, map[string]string{"password": aliceFirst}))
		mustStep(t, r, StepMFAEnrol)
		res, _ := b.register(PathPasskeyEnrol, a, "")
		mustStep(t, b.mustGo(res, PathNext), StepRecoveryCodes)
		// Abandoned here; the invitation expires.
		e.clock.Advance(31 * 24 * time.Hour)

		p := e.browser()
		mustStep(t, p.open("/test/authorize?n=2"), StepIdentify)
		ans := p.assert(PathPasskeySignIn, a)
		if got := ans.answer(t); ans.status != http.StatusForbidden || got.Error != msgInviteExpired || got.Redirect != "" {
			t.Fatalf("passwordless sign-in after expiry: %d %+v", ans.status, got)
		}
		if d := p.done(p.get("/test/done")); d.SignedIn || d.InProgress || d.UserID != "" {
			t.Fatalf("the passkey signed in after expiry: %+v", d)
		}
		mustRedirect(t, p.get(PathNext), PathSignIn)
		if _, det := e.lastEvent(evSigninFailure); det["reason"] != string(store.ReasonInvitationExpired) {
			t.Errorf("audit %v", det)
		}
		if got := e.user(u.ID); got.State != store.UserInvited || !got.PasswordInitial {
			t.Fatalf("account after the refused passkey: %+v", got)
		}
	})
}
