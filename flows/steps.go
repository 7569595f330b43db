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

func (h *Handler) getChangePassword(w http.ResponseWriter, r *http.Request, f *flow) error {
	return h.show(w, http.StatusOK, "change-password", h.changePasswordPage(f))
}

func (h *Handler) postChangePassword(w http.ResponseWriter, r *http.Request, f *flow) error {
	s, u := f.s, f.user
	data := h.changePasswordPage(f)
	hash, status, err := h.passwordChange(r, f, &data.page)
	if err != nil {
		return err
	}
	if status != 0 {
		return h.show(w, status, "change-password", data)
	}
	s.markDone(StepChangePassword)
	err = h.commit(r.Context(), s, func(ctx context.Context) error {
		// Conditional on the hash we verified: of two racing changes, one wins.
		if err := h.store.ChangePassword(ctx, u.ID, u.PasswordHash, hash, false); err != nil {
			return err
		}
		return h.audit(ctx, r, s, event{Name: evPasswordChange, UserID: u.ID, Username: u.Username})
	})
	if errors.Is(err, store.ErrConflict) {
		return &pageError{Status: http.StatusConflict, Message: msgPasswordChanged, Cause: err}
	}
	if err != nil {
		return err
	}
	return redirect(w, r, PathNext)
}

// passwordChange checks a form that changes the password, the journey's
// change-password step's or the account page's: both boxes filled, the
// current password right (counted like any guess), the new one within the
// policy and typed twice alike.
// What is wrong goes into p with the status to answer it with; otherwise
// status is 0 and hash is the new password's.
func (h *Handler) passwordChange(r *http.Request, f *flow, p *page) (hash string, status int, err error) {
	ctx, s, u := r.Context(), f.s, f.user
	cur := r.PostForm.Get("current_password")
	next := r.PostForm.Get("new_password")
	if cur == "" {
		p.fail("current_password", msgEnterCurrent)
	}
	if next == "" {
		p.fail("new_password", msgEnterNew)
	}
	if len(p.Errors) > 0 {
		return "", http.StatusBadRequest, nil
	}
	k := h.passwordKeys(r, u.Username, u)
	if l, err := h.locked(ctx, k); err != nil || l {
		if err != nil {
			return "", 0, err
		}
		p.fail("current_password", msgTooManyTries)
		return "", http.StatusTooManyRequests, nil
	}
	ok, err := password.Verify(u.PasswordHash, cur)
	if errors.Is(err, password.ErrBusy) {
		return "", 0, err // busy: 503, nothing counted
	}
	if err != nil {
		h.log.Error("stored password hash is unreadable", "user", u.ID, "err", err)
	}
	if !ok {
		ev := event{UserID: u.ID, Username: u.Username, Detail: map[string]any{"factor": "password", "reason": store.ReasonWrongCurrentPassword}}
		if err := h.failed(ctx, r, s, k, ev); err != nil {
			return "", 0, err
		}
		p.fail("current_password", msgCurrentWrong)
		return "", http.StatusUnprocessableEntity, nil
	}
	// In the journey the current password is the initial one, which the
	// policy refuses as the new one.
	if err := h.checkNewPassword(f, p, next, r.PostForm.Get("confirm_password"), cur); err != nil {
		return "", 0, err
	}
	if len(p.Errors) > 0 {
		return "", http.StatusUnprocessableEntity, nil
	}
	if hash, err = password.Hash(next); err != nil {
		return "", 0, fmt.Errorf("hash password: %w", err)
	}
	return hash, 0, nil
}

func (h *Handler) policyPage(f *flow, step string) policyPage {
	d := f.set.docs[step]
	return policyPage{page: h.page(f, step, d.Title), Doc: d}
}

// getPolicy and postPolicy are the step of every policy document; the
// guard has made sure the browser is at the document's step.
func (h *Handler) getPolicy(w http.ResponseWriter, r *http.Request, f *flow) error {
	return h.show(w, http.StatusOK, "policy", h.policyPage(f, f.current()))
}

func (h *Handler) postPolicy(w http.ResponseWriter, r *http.Request, f *flow) error {
	step := f.current()
	d := f.set.docs[step]
	if r.PostForm.Get("accept") != "yes" {
		data := h.policyPage(f, step)
		data.fail("accept", fmt.Sprintf("Tick the box to accept the %s.", d.Title))
		return h.show(w, http.StatusUnprocessableEntity, "policy", data)
	}
	s, u := f.s, f.user
	now := h.now().UTC()
	s.markDone(step)
	err := h.commit(r.Context(), s, func(ctx context.Context) error {
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
