package flows

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/lanyard-idp/lanyard/provider/store"
)

// The account page's sessions: signing out one session, every other one,
// or everywhere, and SignOutEverywhere, which ends them and the tokens
// issued to them.

// SignOutEverywhere ends every SSO session of the user but the one whose raw
// session id is except ("" ends them all) and deactivates every code, access
// token and refresh-token family of the user except those bound to the kept
// session — whichever session they came from, live, rotated or long gone —
// in one transaction (it joins ctx's, if any), so whoever holds a token from
// elsewhere can refresh nothing. It returns how many sessions it ended. The
// caller writes the audit event. It is the one implementation: the account
// page's sign-out forms and password change, and the admin service (sign
// out everywhere, disable, reset MFA, reset password) call it.
func SignOutEverywhere(ctx context.Context, st *store.Store, userID, except string) (int, error) {
	if userID == "" {
		return 0, errors.New("sign out everywhere: no user id")
	}
	var n int
	err := st.InTx(ctx, func(ctx context.Context) error {
		refs, err := st.DeleteUserSessions(ctx, userID, except)
		if err != nil {
			return err
		}
		n = len(refs)
		if except == "" {
			// The relying parties of sessions already gone are told too.
			return st.RevokeOAuthBySubject(ctx, userID)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sign out everywhere: %w", err)
	}
	return n, nil
}

func validRef(ref string) bool {
	if len(ref) != 64 {
		return false
	}
	_, err := hex.DecodeString(ref)
	return err == nil && strings.ToLower(ref) == ref
}

func (h *Handler) postAccountSignOutSession(w http.ResponseWriter, r *http.Request, f *flow) error {
	ctx, s, u := r.Context(), f.s, f.user
	ref := r.PostForm.Get("session")
	if !validRef(ref) {
		return h.showAccount(w, r, f, http.StatusBadRequest, func(p *accountPage) { p.fail("", msgBadSession) })
	}
	if ref == s.ref() {
		return h.postSignOut(w, r)
	}
	err := h.commit(ctx, s, func(ctx context.Context) error {
		if err := h.store.DeleteSessionByRef(ctx, u.ID, ref); err != nil {
			return err
		}
		return h.audit(ctx, r, s, event{Name: evSignOutSessions, UserID: u.ID, Username: u.Username,
			Detail: map[string]any{"scope": "one", "sessions_ended": 1}})
	})
	if errors.Is(err, store.ErrNotFound) {
		return h.back(w, r, s, msgSessionEnded)
	}
	if err != nil {
		return err
	}
	h.notify(r, u, noticeSessionSignedOut, "")
	return h.back(w, r, s, "That session was signed out.")
}

func (h *Handler) postAccountSignOutOthers(w http.ResponseWriter, r *http.Request, f *flow) error {
	ctx, s, u := r.Context(), f.s, f.user
	var n int
	err := h.commit(ctx, s, func(ctx context.Context) error {
		var err error
		if n, err = SignOutEverywhere(ctx, h.store, u.ID, s.raw); err != nil {
			return err
		}
		s.j.AccountNotice = fmt.Sprintf("Signed out of %d other %s.", n, plural(n, "session", "sessions"))
		return h.audit(ctx, r, s, event{Name: evSignOutSessions, UserID: u.ID, Username: u.Username,
			Detail: map[string]any{"scope": "others", "sessions_ended": n}})
	})
	if err != nil {
		return err
	}
	if n > 0 {
		h.notify(r, u, noticeSignedOutOthers, fmt.Sprintf("Sessions signed out: %d", n))
	}
	return redirect(w, r, PathAccount)
}

// postAccountSignOutAll signs out everywhere, this browser included.
func (h *Handler) postAccountSignOutAll(w http.ResponseWriter, r *http.Request, f *flow) error {
	ctx, s, u := r.Context(), f.s, f.user
	frames := h.frontChannel(ctx, s.row.SID)
	var n int
	err := h.store.InTx(ctx, func(ctx context.Context) error {
		var err error
		if n, err = SignOutEverywhere(ctx, h.store, u.ID, ""); err != nil {
			return err
		}
		return h.audit(ctx, r, s, event{Name: evSignOutSessions, UserID: u.ID, Username: u.Username,
			Detail: map[string]any{"scope": "all", "sessions_ended": n}})
	})
	if err != nil {
		return err
	}
	h.cookies.clear(w)
	h.notify(r, u, noticeSignedOutAll, fmt.Sprintf("Sessions signed out: %d", n))
	return h.signedOut(w, r, frames)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
