package flows

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/lanyard-idp/lanyard/flows/password"
	"github.com/lanyard-idp/lanyard/provider/store"
)

// The account page's re-authentication: every change to how an officer
// signs in needs a recent proof (recent) — the second factor, or the
// password for an officer without one — and the confirm-it-is-you page
// (/account/reauth) takes it: an authenticator or recovery code, a passkey,
// or the password, counted like any guess.

// recent reports whether the browser proved the second factor (or, for an
// officer without one, the password) within reauthAfter.
func (h *Handler) recent(f *flow) bool {
	at := f.s.j.FactorAt
	if !f.state.HasSecondFactor && f.s.j.PasswordAt.After(at) {
		at = f.s.j.PasswordAt
	}
	return !at.IsZero() && h.now().UTC().Sub(at) <= reauthAfter
}

type reauthPage struct {
	page
	HasTOTP      bool
	HasCode      bool
	UsePassword  bool
	Passkey      passkeyUI
	Approval     approvalView // a paired phone: approve on it
	RecoveryLeft int
	// Back is the page the confirmation returns to (and its link's label).
	Back, BackLabel string
}

func (h *Handler) reauthPage(ctx context.Context, f *flow) (reauthPage, error) {
	u := f.user
	p := reauthPage{page: h.page(nil, "", "Confirm it is you")}
	p.SignedIn = true
	p.Action = PathReauth
	p.Back, p.BackLabel = PathAccount, "Back to your account"
	if strings.HasPrefix(f.s.j.AdminReturn, PathAdmin+"/") {
		p.Back, p.BackLabel = f.s.j.AdminReturn, "Back to the admin console"
	}
	t, err := h.store.TOTPByUser(ctx, u.ID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return p, err
	}
	p.HasTOTP = err == nil && t.Confirmed
	if p.RecoveryLeft, err = h.store.RecoveryCodesLeft(ctx, u.ID); err != nil {
		return p, err
	}
	creds, err := h.store.WebAuthnCredentials(ctx, u.ID)
	if err != nil {
		return p, err
	}
	if len(creds) > 0 {
		p.Passkey = h.passkeyUI(PathReauthPasskey)
	}
	if p.Approval, err = h.approvalOffer(ctx, f, useReauth); err != nil {
		return p, err
	}
	p.HasCode = p.HasTOTP || (f.state.HasSecondFactor && p.RecoveryLeft > 0)
	p.UsePassword = !f.state.HasSecondFactor
	// The form's data-step tells scripts which answer it wants.
	p.DataStep = StepMFAChallenge
	if p.UsePassword {
		p.DataStep = StepPassword
	}
	return p, nil
}

func (h *Handler) getReauth(w http.ResponseWriter, r *http.Request, f *flow) error {
	p, err := h.reauthPage(r.Context(), f)
	if err != nil {
		return err
	}
	p.Notice = msgConfirmPrompt
	if p.Back != PathAccount {
		p.Notice = msgConsoleConfirmPrompt
	}
	return h.show(w, http.StatusOK, "account-reauth", p)
}

// postReauth checks an authenticator or recovery code (or, for an officer
// without a second factor, the password), counted like any guess.
func (h *Handler) postReauth(w http.ResponseWriter, r *http.Request, f *flow) error {
	ctx, s, u := r.Context(), f.s, f.user
	refuse := func(status int, field, msg string) error {
		p, err := h.reauthPage(ctx, f)
		if err != nil {
			return err
		}
		p.fail(field, msg)
		return h.show(w, status, "account-reauth", p)
	}
	field := "code"
	if !f.state.HasSecondFactor {
		field = "password"
	}
	k := h.factorKeys(r, u)
	if !f.state.HasSecondFactor {
		k = h.passwordKeys(r, u.Username, u)
	}
	if l, err := h.attempt(ctx, &k); err != nil || l {
		if err != nil {
			return err
		}
		return refuse(http.StatusTooManyRequests, field, msgTooManyTries)
	}
	defer h.release(k)
	now := h.now().UTC()
	ev := event{UserID: u.ID, Username: u.Username, Detail: map[string]any{"ceremony": ceremonyReauth}}
	var use func(ctx context.Context) error
	method := "password"
	if f.state.HasSecondFactor {
		code := strings.TrimSpace(r.PostForm.Get("code"))
		if code == "" {
			return refuse(http.StatusBadRequest, field, msgEnterCode)
		}
		var err error
		if use, method, err = h.proveCode(r, s, u, code, now, k, ev); err != nil || use == nil {
			if err != nil {
				return err
			}
			return refuse(http.StatusUnprocessableEntity, field, msgWrongCode)
		}
	} else {
		pw := r.PostForm.Get("password")
		if pw == "" {
			return refuse(http.StatusBadRequest, field, msgEnterPassword)
		}
		ok, err := password.Verify(u.PasswordHash, pw)
		if errors.Is(err, password.ErrBusy) {
			return err // busy: 503, nothing counted
		}
		if err != nil {
			h.log.Error("stored password hash is unreadable", "user", u.ID, "err", err)
		}
		if !ok {
			ev.Detail["factor"], ev.Detail["reason"] = "password", store.ReasonWrongPassword
			if err := h.failed(ctx, r, s, k, ev); err != nil {
				return err
			}
			return refuse(http.StatusUnprocessableEntity, field, msgPasswordWrong)
		}
	}
	s.j.confirmed(method, now)
	back := s.j.confirmedReturn()
	err := h.commitRotated(w, r, s, func(ctx context.Context) error {
		if use != nil {
			if err := use(ctx); err != nil {
				return err
			}
		}
		return h.audit(ctx, r, s, event{Name: evAccountReauth, UserID: u.ID, Username: u.Username, Detail: map[string]any{"method": method}})
	})
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		if err := h.codeUsed(r, s, k, ev); err != nil {
			return err
		}
		return refuse(http.StatusUnprocessableEntity, field, msgWrongCode)
	}
	if err != nil {
		return err
	}
	return redirect(w, r, back)
}

// confirmedReturn is where a confirmation goes back to: the console page
// that asked for it, or the account page; each says what it allows now.
func (j *journey) confirmedReturn() string {
	to := j.AdminReturn
	j.AdminReturn = ""
	if strings.HasPrefix(to, PathAdmin+"/") {
		j.AdminNotice = msgConsoleConfirmed
		return to
	}
	j.AccountNotice = msgConfirmed
	return PathAccount
}

func (h *Handler) postReauthPasskeyOptions(w http.ResponseWriter, r *http.Request, f *flow) error {
	return h.beginAssertion(w, r, f.s, f.user, ceremonyReauth)
}

func (h *Handler) postReauthPasskey(w http.ResponseWriter, r *http.Request, f *flow) error {
	a, ans, err := h.finishAssertion(w, r, f, ceremonyReauth)
	if err != nil || a == nil {
		return err
	}
	s, u := f.s, f.user
	now := h.now().UTC()
	before := s.j
	s.j.confirmed(methodWebAuthn, now)
	back := s.j.confirmedReturn()
	ok, err := h.commitCeremony(w, r, s, before, ans, func(ctx context.Context) error {
		if err := h.useAssertion(ctx, a, now); err != nil {
			return err
		}
		return h.audit(ctx, r, s, event{Name: evAccountReauth, UserID: u.ID, Username: u.Username, Detail: map[string]any{"method": methodWebAuthn}})
	})
	if !ok || err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, jsonAnswer{Redirect: back})
}
