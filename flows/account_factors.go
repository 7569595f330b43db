package flows

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/lanyard-idp/lanyard/flows/passkey"
	"github.com/lanyard-idp/lanyard/provider/store"
)

// The account page's sign-in methods: adding and removing an authenticator
// app or a passkey, renaming a passkey, new recovery codes and a new
// password. A removal never leaves no second factor where the journey
// requires one; each change is audited and sends a security notice.

// firstRecoveryCodes gives an officer who had no second factor (a journey
// without enrolment) and has no recovery codes left fresh ones with the
// factor they add: sealed into the session, shown once by the journey's own
// step. It returns their hashes to store, nil when none are due.
func (h *Handler) firstRecoveryCodes(ctx context.Context, f *flow) ([]string, error) {
	if f.state.HasSecondFactor {
		return nil, nil
	}
	left, err := h.store.RecoveryCodesLeft(ctx, f.user.ID)
	if err != nil || left != 0 {
		return nil, err
	}
	return h.sealRecoveryCodes(f.s)
}

// Passkeys.

func (h *Handler) postAccountPasskeyOptions(w http.ResponseWriter, r *http.Request, f *flow) error {
	return h.beginRegistration(w, r, f.s, f.user, ceremonyAdd)
}

// postAccountPasskey adds a passkey. An officer who had no second factor
// (a journey without enrolment) also gets recovery codes, shown once by the
// journey's own step.
func (h *Handler) postAccountPasskey(w http.ResponseWriter, r *http.Request, f *flow) error {
	reg, ans, err := h.finishRegistration(w, r, f, ceremonyAdd)
	if err != nil || reg == nil {
		return err
	}
	row := reg.Row
	ctx, s, u := r.Context(), f.s, f.user
	before := s.j
	hashes, err := h.firstRecoveryCodes(ctx, f)
	if err != nil {
		return err
	}
	s.j.AccountNotice = fmt.Sprintf("Your passkey “%s” was added.", row.Name)
	ok, err := h.commitCeremony(w, r, s, before, ans, h.storeFactor(r, f, newFactor{passkey: row}, hashes,
		event{Name: evPasskeyAdd, UserID: u.ID, Username: u.Username, Detail: map[string]any{"name": row.Name, "kind": reg.Kind}}))
	if !ok || err != nil {
		return err
	}
	h.notify(r, u, noticePasskeyAdded, "Passkey: "+row.Name)
	to := PathAccount
	if hashes != nil {
		to = PathNext
	}
	return writeJSON(w, http.StatusOK, jsonAnswer{Redirect: to})
}

// passkeyOf finds one of the user's passkeys by the id a form posted.
func (h *Handler) passkeyOf(ctx context.Context, userID, id string) (*store.WebAuthnCredential, error) {
	raw, err := b64.DecodeString(id)
	if err != nil || len(raw) == 0 || len(id) > 1400 {
		return nil, nil
	}
	creds, err := h.store.WebAuthnCredentials(ctx, userID)
	if err != nil {
		return nil, err
	}
	for i := range creds {
		if string(creds[i].ID) == string(raw) {
			return &creds[i], nil
		}
	}
	return nil, nil
}

func (h *Handler) postAccountPasskeyRename(w http.ResponseWriter, r *http.Request, f *flow) error {
	ctx, s, u := r.Context(), f.s, f.user
	id := r.PostForm.Get("id")
	c, err := h.passkeyOf(ctx, u.ID, id)
	if err != nil {
		return err
	}
	if c == nil {
		return h.showAccount(w, r, f, http.StatusNotFound, func(p *accountPage) { p.fail("", msgNoSuchPasskey) })
	}
	name, ok := passkey.CleanName(r.PostForm.Get("name"))
	if !ok || name == "" {
		msg := msgPasskeyNameBad
		if ok {
			msg = msgEnterName
		}
		return h.showAccount(w, r, f, http.StatusUnprocessableEntity, func(p *accountPage) { p.fail("name-"+id, msg) })
	}
	err = h.commit(ctx, s, func(ctx context.Context) error {
		if err := h.store.RenameWebAuthnCredential(ctx, u.ID, c.ID, name); err != nil {
			return err
		}
		return h.audit(ctx, r, s, event{Name: evPasskeyRename, UserID: u.ID, Username: u.Username,
			Detail: map[string]any{"name": name, "was": c.Name}})
	})
	if errors.Is(err, store.ErrNotFound) {
		return h.showAccount(w, r, f, http.StatusNotFound, func(p *accountPage) { p.fail("", msgNoSuchPasskey) })
	}
	if err != nil {
		return err
	}
	return h.back(w, r, s, msgPasskeyRenamed)
}

// removeFactor runs del in a transaction that refuses to leave no second
// factor where the journey requires one; with none left at all, the
// recovery codes go too (they stand in for a factor that is gone).
func (h *Handler) removeFactor(ctx context.Context, r *http.Request, f *flow, del func(ctx context.Context) error, ev event) error {
	u := f.user
	return h.commit(ctx, f.s, func(ctx context.Context) error {
		if err := h.lockUser(ctx, u.ID); err != nil {
			return err
		}
		if err := del(ctx); err != nil {
			return err
		}
		has, err := h.hasSecondFactor(ctx, u.ID)
		if err != nil {
			return err
		}
		if !has {
			if f.mfaRequired() {
				return errLastMethod
			}
			if err := h.store.DeleteRecoveryCodes(ctx, u.ID); err != nil {
				return err
			}
		}
		return h.audit(ctx, r, f.s, ev)
	})
}

func (h *Handler) postAccountPasskeyRemove(w http.ResponseWriter, r *http.Request, f *flow) error {
	ctx, s, u := r.Context(), f.s, f.user
	c, err := h.passkeyOf(ctx, u.ID, r.PostForm.Get("id"))
	if err != nil {
		return err
	}
	if c == nil {
		return h.showAccount(w, r, f, http.StatusNotFound, func(p *accountPage) { p.fail("", msgNoSuchPasskey) })
	}
	s.j.AccountNotice = fmt.Sprintf("Your passkey “%s” was removed.", c.Name)
	err = h.removeFactor(ctx, r, f, func(ctx context.Context) error {
		return h.store.DeleteWebAuthnCredential(ctx, u.ID, c.ID)
	}, event{Name: evPasskeyRemove, UserID: u.ID, Username: u.Username, Detail: map[string]any{"name": c.Name}})
	switch {
	case errors.Is(err, errLastMethod):
		return h.showAccount(w, r, f, http.StatusConflict, func(p *accountPage) { p.fail("", msgLastMethod) })
	case errors.Is(err, store.ErrNotFound):
		return h.showAccount(w, r, f, http.StatusNotFound, func(p *accountPage) { p.fail("", msgNoSuchPasskey) })
	case err != nil:
		return err
	}
	h.notify(r, u, noticePasskeyRemoved, "Passkey: "+c.Name)
	return redirect(w, r, PathAccount)
}

// Authenticator app.

func (h *Handler) accountTOTPPage(f *flow, secret []byte) (enrolPage, error) {
	p, err := h.enrolPage(f, secret)
	if err != nil {
		return p, err
	}
	p.page = h.page(nil, "", "Add an authenticator app")
	p.SignedIn = true
	p.Action = PathAccountTOTP
	p.Approval = "" // the account page pairs a phone from its own section
	return p, nil
}

func (h *Handler) hasTOTP(ctx context.Context, userID string) (bool, error) {
	t, err := h.store.TOTPByUser(ctx, userID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	return err == nil && t.Confirmed, nil
}

func (h *Handler) getAccountTOTP(w http.ResponseWriter, r *http.Request, f *flow) error {
	if has, err := h.hasTOTP(r.Context(), f.user.ID); err != nil || has {
		if err != nil {
			return err
		}
		return h.back(w, r, f.s, msgTOTPExists)
	}
	return h.showTOTPForm(w, r, f, accountTOTPForm)
}

func (h *Handler) postAccountTOTP(w http.ResponseWriter, r *http.Request, f *flow) error {
	t, err := h.confirmTOTP(w, r, f, accountTOTPForm)
	if t == nil || err != nil {
		return err
	}
	ctx, s, u := r.Context(), f.s, f.user
	before := s.j
	hashes, err := h.firstRecoveryCodes(ctx, f)
	if err != nil {
		return err
	}
	s.j.PendingTOTP, s.j.AccountNotice = nil, msgTOTPAdded
	err = h.commit(ctx, s, h.storeFactor(r, f, newFactor{totp: t}, hashes, event{Name: evTOTPAdd, UserID: u.ID, Username: u.Username}))
	if errors.Is(err, errAlreadyDone) {
		s.j = before
		s.j.PendingTOTP = nil
		return h.back(w, r, s, msgTOTPExists)
	}
	if err != nil {
		return err
	}
	h.notify(r, u, noticeTOTPAdded, "")
	if hashes != nil {
		return redirect(w, r, PathNext)
	}
	return redirect(w, r, PathAccount)
}

func (h *Handler) postAccountTOTPRemove(w http.ResponseWriter, r *http.Request, f *flow) error {
	u := f.user
	f.s.j.AccountNotice = msgTOTPRemoved
	err := h.removeFactor(r.Context(), r, f, func(ctx context.Context) error {
		if has, err := h.hasTOTP(ctx, u.ID); err != nil || !has {
			if err == nil {
				err = store.ErrNotFound
			}
			return err
		}
		return h.store.DeleteTOTP(ctx, u.ID)
	}, event{Name: evTOTPRemove, UserID: u.ID, Username: u.Username})
	switch {
	case errors.Is(err, errLastMethod):
		return h.showAccount(w, r, f, http.StatusConflict, func(p *accountPage) { p.fail("", msgLastMethod) })
	case errors.Is(err, store.ErrNotFound):
		return redirect(w, r, PathAccount)
	case err != nil:
		return err
	}
	h.notify(r, u, noticeTOTPRemoved, "")
	return redirect(w, r, PathAccount)
}

// Recovery codes: new ones replace every old one and are shown once by the
// journey's recovery-codes step, which then returns here.
func (h *Handler) postAccountRecoveryCodes(w http.ResponseWriter, r *http.Request, f *flow) error {
	ctx, s, u := r.Context(), f.s, f.user
	if !f.state.HasSecondFactor {
		return h.showAccount(w, r, f, http.StatusConflict, func(p *accountPage) { p.fail("", msgNeedFactor) })
	}
	hashes, err := h.sealRecoveryCodes(s)
	if err != nil {
		return err
	}
	s.j.Done = nil
	err = h.commit(ctx, s, func(ctx context.Context) error {
		if err := h.store.ReplaceRecoveryCodes(ctx, u.ID, hashes); err != nil {
			return err
		}
		return h.audit(ctx, r, s, event{Name: evRecoveryRenew, UserID: u.ID, Username: u.Username})
	})
	if err != nil {
		return err
	}
	h.notify(r, u, noticeRecoveryRenewed, "")
	return redirect(w, r, PathNext)
}

// Password: the journey's checks (passwordChange); other sessions end.
func (h *Handler) postAccountPassword(w http.ResponseWriter, r *http.Request, f *flow) error {
	ctx, s, u := r.Context(), f.s, f.user
	var errs page
	hash, status, err := h.passwordChange(r, f, &errs)
	if err != nil {
		return err
	}
	if status != 0 {
		return h.showAccount(w, r, f, status, func(p *accountPage) {
			p.Errors, p.Fields = errs.Errors, errs.Fields
		})
	}
	s.j.AccountNotice = msgPasswordMoved
	var ended int
	err = h.commit(ctx, s, func(ctx context.Context) error {
		n, err := h.replacePassword(ctx, u, hash, s)
		if err != nil {
			return err
		}
		ended = n
		return h.audit(ctx, r, s, event{Name: evPasswordChange, UserID: u.ID, Username: u.Username,
			Detail: map[string]any{"where": "account", "sessions_ended": n}})
	})
	if errors.Is(err, store.ErrConflict) {
		s.j.AccountNotice = ""
		return &pageError{Status: http.StatusConflict, Message: msgPasswordChanged, Cause: err}
	}
	if err != nil {
		return err
	}
	h.notify(r, u, noticePasswordChanged, sessionsEnded(ended))
	return redirect(w, r, PathAccount)
}

// replacePassword stores hash as u's password, conditional on the hash u
// was loaded with (of two racing changes one wins: store.ErrConflict), and
// signs out every session of u but keep: whoever knew the old password is
// signed out with it. It returns how many sessions ended.
func (h *Handler) replacePassword(ctx context.Context, u *store.User, hash string, keep *session) (int, error) {
	if err := h.store.ChangePassword(ctx, u.ID, u.PasswordHash, hash, false); err != nil {
		return 0, err
	}
	return SignOutEverywhere(ctx, h.store, u.ID, keep.raw)
}

// sessionsEnded is a notice's detail line about the sessions a change
// signed out ("" when none).
func sessionsEnded(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("Sessions signed out: %d", n)
}

// lockUser takes the user's row lock for the rest of the transaction (on
// PostgreSQL; SQLite runs one write transaction at a time anyway) by
// rewriting their WebAuthn handle, so that two removals racing each other
// see each other's result and cannot both leave the last method gone.
func (h *Handler) lockUser(ctx context.Context, userID string) error {
	handle, err := h.store.WebAuthnHandle(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		w, err := h.webAuthnUser(ctx, &store.User{ID: userID}, true)
		if err != nil {
			return err
		}
		handle = w.Handle
	} else if err != nil {
		return err
	}
	return h.store.SetWebAuthnHandle(ctx, userID, handle)
}
