package flows

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/lanyard-idp/lanyard/flows/password"
	"github.com/lanyard-idp/lanyard/provider/store"
)

// The other interstitial steps: replacing the initial password, accepting
// the policies; and the page a sign-in without a relying party ends on.

const (
	msgEnterCurrent    = "Enter your current password."
	msgCurrentWrong    = "Your current password is not right."
	msgEnterNew        = "Enter a new password."
	msgMismatch        = "The two new passwords are not the same. Type the new password again in both boxes."
	msgPasswordChanged = "Your password was changed in another window. Sign in again."
)

func (h *Handler) changePasswordPage(f *flow) changePasswordPage {
	return changePasswordPage{
		page:      h.page(f, StepChangePassword, "Choose a new password"),
		MinLength: f.set.policy.MinLength,
		MaxLength: f.set.policy.MaxLength,
	}
}

func (h *Handler) getChangePassword(w http.ResponseWriter, r *http.Request) error {
	f, err := h.at(w, r, StepChangePassword)
	if err != nil || f == nil {
		return err
	}
	return h.show(w, http.StatusOK, "change-password", h.changePasswordPage(f))
}

func (h *Handler) postChangePassword(w http.ResponseWriter, r *http.Request) error {
	f, err := h.at(w, r, StepChangePassword)
	if err != nil || f == nil {
		return err
	}
	if err := form(r); err != nil {
		return err
	}
	ctx, s, u := r.Context(), f.s, f.user
	cur := r.PostForm.Get("current_password")
	next := r.PostForm.Get("new_password")
	confirm := r.PostForm.Get("confirm_password")
	data := h.changePasswordPage(f)
	if cur == "" {
		data.fail("current_password", msgEnterCurrent)
	}
	if next == "" {
		data.fail("new_password", msgEnterNew)
	}
	if len(data.Errors) > 0 {
		return h.show(w, http.StatusBadRequest, "change-password", data)
	}
	k := keysFor(r, u.ID)
	until, err := h.lockedUntil(ctx, k)
	if err != nil {
		return err
	}
	if !until.IsZero() {
		data.fail("current_password", msgTooManyTries)
		return h.show(w, http.StatusTooManyRequests, "change-password", data)
	}
	ok, err := password.Verify(u.PasswordHash, cur)
	if errors.Is(err, password.ErrBusy) {
		return err
	}
	if err != nil {
		h.log.Error("stored password hash is unreadable", "user", u.ID, "err", err)
	}
	if !ok {
		ev := event{UserID: u.ID, Username: u.Username, Detail: map[string]any{"factor": "password", "reason": "wrong current password"}}
		if err := h.failed(ctx, r, s, k, ev); err != nil {
			return err
		}
		data.fail("current_password", msgCurrentWrong)
		return h.show(w, http.StatusUnprocessableEntity, "change-password", data)
	}
	// The current password is the initial one here: the policy refuses it.
	if err := checkNewPassword(f.set, u, cur, next, confirm, &data.page); err != nil {
		return err
	}
	if len(data.Errors) > 0 {
		return h.show(w, http.StatusUnprocessableEntity, "change-password", data)
	}
	hash, err := password.Hash(next)
	if err != nil {
		return fmt.Errorf("hash password: %w", err)
	}
	s.markDone(StepChangePassword)
	err = h.commit(ctx, s, func(ctx context.Context) error {
		// Conditional on the hash we verified: of two racing changes, one wins.
		if err := h.store.ChangePassword(ctx, u.ID, u.PasswordHash, hash, false); err != nil {
			return err
		}
		return h.audit(ctx, r, s, event{Name: evPasswordChange, UserID: u.ID, Username: u.Username})
	})
	if errors.Is(err, store.ErrConflict) {
		return &pageError{status: http.StatusConflict, msg: msgPasswordChanged, cause: err}
	}
	if err != nil {
		return err
	}
	h.succeeded(ctx, k)
	return redirect(w, r, PathNext)
}

func (h *Handler) policyPage(f *flow, step string) policyPage {
	d := f.set.docs[step]
	return policyPage{page: h.page(f, step, d.Title), Doc: d}
}

func (h *Handler) policyGet(step string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		f, err := h.at(w, r, step)
		if err != nil || f == nil {
			return err
		}
		return h.show(w, http.StatusOK, "policy", h.policyPage(f, step))
	}
}

func (h *Handler) policyPost(step string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		f, err := h.at(w, r, step)
		if err != nil || f == nil {
			return err
		}
		if err := form(r); err != nil {
			return err
		}
		d := f.set.docs[step]
		if r.PostForm.Get("accept") != "yes" {
			data := h.policyPage(f, step)
			data.fail("accept", fmt.Sprintf("Tick the box to accept the %s.", d.Title))
			return h.show(w, http.StatusUnprocessableEntity, "policy", data)
		}
		s, u := f.s, f.user
		now := h.now().UTC()
		s.markDone(step)
		err = h.commit(r.Context(), s, func(ctx context.Context) error {
			// Racing posts of one form record one acceptance.
			acc, err := h.store.Acceptances(ctx, u.ID)
			if err != nil {
				return fmt.Errorf("load acceptances: %w", err)
			}
			for _, a := range acc {
				if a.Document == d.ID && a.Version == d.Version {
					return errAlreadyDone
				}
			}
			if err := h.store.Accept(ctx, store.Acceptance{
				UserID: u.ID, Document: d.ID, Version: d.Version, AcceptedAt: now, ClientAddr: clientAddr(r),
			}); err != nil {
				return fmt.Errorf("record acceptance: %w", err)
			}
			return h.audit(ctx, r, s, event{Name: evPolicyAccept, UserID: u.ID, Username: u.Username,
				Detail: map[string]any{"document": d.ID, "version": d.Version}})
		})
		if err != nil && !errors.Is(err, errAlreadyDone) {
			return err
		}
		return redirect(w, r, PathNext)
	}
}

// checkNewPassword applies the password policy to replacing cur with next
// (typed again as confirm) and adds what is wrong to p: the one check of
// both the journey's change-password step and the account page.
func checkNewPassword(set *settings, u *store.User, cur, next, confirm string, p *page) error {
	if err := set.policy.Check(next, u.Username, cur); err != nil {
		var pe *password.PolicyError
		if !errors.As(err, &pe) {
			return err
		}
		p.fail("new_password", pe.Reason)
	} else if next != confirm {
		p.fail("confirm_password", msgMismatch)
	}
	return nil
}

// renderSignedIn shows who is signed in; with a notice it is also the stop
// between the journey and the relying party (Continue).
func (h *Handler) renderSignedIn(w http.ResponseWriter, r *http.Request, f *flow, notice, cont string) error {
	ctx, u := r.Context(), f.user
	data := signedInPage{page: h.page(nil, "", "You are signed in"), Username: u.Username, Name: u.Name, Continue: cont}
	data.Notice = notice
	data.SignedIn = true
	t, err := h.store.TOTPByUser(ctx, u.ID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	data.HasTOTP = err == nil && t.Confirmed
	if data.RecoveryLeft, err = h.store.RecoveryCodesLeft(ctx, u.ID); err != nil {
		return err
	}
	creds, err := h.store.WebAuthnCredentials(ctx, u.ID)
	if err != nil {
		return err
	}
	data.Passkeys = len(creds)
	sessions, err := h.store.UserSessions(ctx, u.ID, h.now().UTC())
	if err != nil {
		return err
	}
	data.Sessions = len(sessions)
	return h.show(w, http.StatusOK, "signed-in", data)
}
