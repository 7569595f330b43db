package flows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/lanyard-idp/lanyard/flows/otp"
	"github.com/lanyard-idp/lanyard/provider/store"
)

// The second factor: enrolling an authenticator app (mfa-enrol), showing the
// recovery codes once (recovery-codes), and proving the factor at a later
// sign-in (mfa-challenge).

const (
	msgWrongEnrolCode = "That code is not right. Check the time on your phone and try the newest code."
	msgEnterCode      = "Enter the 6-digit code from your authenticator app."
	msgWrongCode      = "That code is not right. Try the newest code from your authenticator app, or a recovery code."
	msgTooManyTries   = "Too many wrong attempts. Wait 15 minutes and try again."
	msgSaveCodes      = "Tick the box to confirm you have saved your recovery codes."
)

// pendingSecret returns the enrolment secret kept sealed in the session,
// creating it on the first visit so a reload shows the same QR code.
func (h *Handler) pendingSecret(ctx context.Context, s *session) ([]byte, error) {
	if len(s.j.PendingTOTP) > 0 {
		secret, err := h.box.Open(s.j.PendingTOTP, purposeTOTP)
		if err == nil {
			return secret, nil
		}
		h.log.Warn("cannot open the pending TOTP secret; making a new one", "err", err)
	}
	secret := otp.NewSecret()
	s.j.PendingTOTP = h.box.Seal(secret, purposeTOTP)
	if err := h.save(ctx, s); err != nil {
		return nil, err
	}
	return secret, nil
}

func (h *Handler) enrolPage(f *flow, secret []byte) (enrolPage, error) {
	set := f.set
	issuer := set.cfg.Journey.DisplayName
	account := f.user.Username
	qr, err := otp.QRDataURL(otp.URI(issuer, account, secret))
	if err != nil {
		return enrolPage{}, err
	}
	return enrolPage{
		page:    h.page(f, StepMFAEnrol, "Set up your authenticator app"),
		QR:      template.URL(qr),
		Label:   fmt.Sprintf("%s (%s)", issuer, account),
		Secret:  groupSecret(otp.EncodeSecret(secret)),
		Account: account,
		Passkey: h.passkeyUI(PathPasskeyEnrol),
	}, nil
}

func (h *Handler) getEnrol(w http.ResponseWriter, r *http.Request) error {
	f, err := h.at(w, r, StepMFAEnrol)
	if err != nil || f == nil {
		return err
	}
	secret, err := h.pendingSecret(r.Context(), f.s)
	if err != nil {
		return err
	}
	data, err := h.enrolPage(f, secret)
	if err != nil {
		return err
	}
	return h.show(w, http.StatusOK, "mfa-enrol", data)
}

func (h *Handler) postEnrol(w http.ResponseWriter, r *http.Request) error {
	f, err := h.at(w, r, StepMFAEnrol)
	if err != nil || f == nil {
		return err
	}
	if err := form(r); err != nil {
		return err
	}
	ctx, s, u := r.Context(), f.s, f.user
	if len(s.j.PendingTOTP) == 0 {
		// No QR code was shown in this session: show one.
		return redirect(w, r, PathMFAEnrol)
	}
	secret, err := h.pendingSecret(ctx, s)
	if err != nil {
		return err
	}
	refuse := func(status int, msg string) error {
		data, err := h.enrolPage(f, secret)
		if err != nil {
			return err
		}
		data.fail("code", msg)
		return h.show(w, status, "mfa-enrol", data)
	}
	step, now, ok, err := h.checkEnrolCode(r, s, u, secret, refuse)
	if !ok || err != nil {
		return err
	}

	codes, hashes := newRecoveryCodes()
	plainCodes, err := json.Marshal(codes)
	if err != nil {
		return err
	}
	s.j.PendingTOTP = nil
	s.j.FactorVerified, s.j.FactorMethod, s.j.FactorAt = true, "otp", now
	s.j.RecoveryCodes = h.box.Seal(plainCodes, purposeRecoveryCodes)
	s.markDone(StepMFAEnrol)
	err = h.commitRotated(w, r, s, func(ctx context.Context) error {
		// The factor, its recovery codes, the session and the audit line are
		// stored together. Never replace a confirmed factor: a password
		// alone must not be enough to swap it.
		switch t, err := h.store.TOTPByUser(ctx, u.ID); {
		case err == nil && t.Confirmed:
			return store.ErrConflict
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return err
		}
		if err := h.store.PutTOTP(ctx, &store.TOTP{
			UserID:    u.ID,
			Secret:    h.box.Seal(secret, purposeTOTP),
			Confirmed: true,
			LastStep:  step,
			CreatedAt: now,
		}); err != nil {
			return fmt.Errorf("store TOTP: %w", err)
		}
		if err := h.store.ReplaceRecoveryCodes(ctx, u.ID, hashes); err != nil {
			return fmt.Errorf("store recovery codes: %w", err)
		}
		return h.audit(ctx, r, s, event{Name: evMFAEnrol, UserID: u.ID, Username: u.Username, Detail: map[string]any{"method": "totp"}})
	})
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		// A concurrent request of this browser enrolled first.
		return redirect(w, r, PathNext)
	}
	if err != nil {
		return err
	}
	return redirect(w, r, PathNext)
}

// checkEnrolCode checks the code that confirms a new authenticator app (the
// journey's or the account page's) against its pending secret, throttled
// like any factor. refuse shows the form again with a message; ok is false
// when the request has been answered. It returns the code's time step and
// the time it was checked at.
func (h *Handler) checkEnrolCode(r *http.Request, s *session, u *store.User, secret []byte, refuse func(status int, msg string) error) (step int64, now time.Time, ok bool, err error) {
	ctx := r.Context()
	code := r.PostForm.Get("code")
	if strings.TrimSpace(code) == "" {
		return 0, time.Time{}, false, refuse(http.StatusBadRequest, msgEnterCode)
	}
	k := keysFor(r, u.ID)
	if l, err := h.locked(ctx, k); err != nil || l {
		if err != nil {
			return 0, time.Time{}, false, err
		}
		return 0, time.Time{}, false, refuse(http.StatusTooManyRequests, msgTooManyTries)
	}
	now = h.now().UTC()
	step, ok = otp.Validate(secret, code, now, 0)
	if !ok {
		ev := event{UserID: u.ID, Username: u.Username, Detail: map[string]any{"factor": "otp", "reason": store.ReasonWrongEnrolmentCode}}
		if err := h.failed(ctx, r, s, k, ev); err != nil {
			return 0, time.Time{}, false, err
		}
		return 0, time.Time{}, false, refuse(http.StatusUnprocessableEntity, msgWrongEnrolCode)
	}
	h.succeeded(ctx, k)
	return step, now, true, nil
}

func (h *Handler) getRecoveryCodes(w http.ResponseWriter, r *http.Request) error {
	f, err := h.at(w, r, StepRecoveryCodes)
	if err != nil || f == nil {
		return err
	}
	return h.showRecoveryCodes(w, f, http.StatusOK, "")
}

func (h *Handler) showRecoveryCodes(w http.ResponseWriter, f *flow, status int, msg string) error {
	codes, err := h.openRecoveryCodes(f.s)
	if err != nil {
		return fmt.Errorf("open recovery codes: %w", err)
	}
	data := recoveryPage{page: h.page(f, StepRecoveryCodes, "Save your recovery codes"), Codes: codes}
	if msg != "" {
		data.fail("accept", msg)
	}
	return h.show(w, status, "recovery-codes", data)
}

func (h *Handler) postRecoveryCodes(w http.ResponseWriter, r *http.Request) error {
	f, err := h.at(w, r, StepRecoveryCodes)
	if err != nil || f == nil {
		return err
	}
	if err := form(r); err != nil {
		return err
	}
	if r.PostForm.Get("accept") != "yes" {
		return h.showRecoveryCodes(w, f, http.StatusUnprocessableEntity, msgSaveCodes)
	}
	// Shown once: from now on only their hashes exist.
	f.s.j.RecoveryCodes = nil
	f.s.markDone(StepRecoveryCodes)
	if err := h.save(r.Context(), f.s); err != nil {
		return err
	}
	return redirect(w, r, PathNext)
}

func (h *Handler) getChallenge(w http.ResponseWriter, r *http.Request) error {
	f, err := h.at(w, r, StepMFAChallenge)
	if err != nil || f == nil {
		return err
	}
	data, err := h.challengePage(r.Context(), f)
	if err != nil {
		return err
	}
	return h.show(w, http.StatusOK, "mfa-challenge", data)
}

// challengePage offers the code field and, to an officer with a passkey or
// security key, the button that uses it.
func (h *Handler) challengePage(ctx context.Context, f *flow) (challengePage, error) {
	data := challengePage{page: h.page(f, StepMFAChallenge, "Enter your code")}
	creds, err := h.store.WebAuthnCredentials(ctx, f.user.ID)
	if err != nil {
		return data, fmt.Errorf("load passkeys: %w", err)
	}
	if len(creds) > 0 {
		data.Passkey = h.passkeyUI(PathPasskeyChallenge)
	}
	return data, nil
}

func (h *Handler) postChallenge(w http.ResponseWriter, r *http.Request) error {
	f, err := h.at(w, r, StepMFAChallenge)
	if err != nil || f == nil {
		return err
	}
	if err := form(r); err != nil {
		return err
	}
	ctx, s, u := r.Context(), f.s, f.user
	refuse := func(status int, msg string) error {
		data, err := h.challengePage(ctx, f)
		if err != nil {
			return err
		}
		data.fail("code", msg)
		return h.show(w, status, "mfa-challenge", data)
	}
	code := strings.TrimSpace(r.PostForm.Get("code"))
	if code == "" {
		return refuse(http.StatusBadRequest, msgEnterCode)
	}
	k := keysFor(r, u.ID)
	until, err := h.lockedUntil(ctx, k)
	if err != nil {
		return err
	}
	if !until.IsZero() {
		return refuse(http.StatusTooManyRequests, msgTooManyTries)
	}
	now := h.now().UTC()
	ev := event{UserID: u.ID, Username: u.Username, Detail: map[string]any{}}
	use, method, reason, err := h.checkCode(ctx, r, s, u, code, now)
	if err != nil {
		return err
	}
	ev.Detail["factor"] = method
	if use == nil {
		ev.Detail["reason"] = reason
		if err := h.failed(ctx, r, s, k, ev); err != nil {
			return err
		}
		return refuse(http.StatusUnprocessableEntity, msgWrongCode)
	}

	s.j.FactorVerified, s.j.FactorMethod, s.j.FactorAt = true, method, now
	err = h.commitRotated(w, r, s, func(ctx context.Context) error {
		if err := use(ctx); err != nil {
			return err
		}
		return h.audit(ctx, r, s, event{Name: evMFAChallenge, UserID: u.ID, Username: u.Username, Detail: map[string]any{"method": method}})
	})
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		// Already used (a replay, or a concurrent request won), or the session
		// was rotated under us: a wrong code, charged like one.
		s.j.FactorVerified, s.j.FactorMethod = false, ""
		ev.Detail["reason"] = store.ReasonCodeUsed
		if err := h.failed(ctx, r, s, k, ev); err != nil {
			return err
		}
		return refuse(http.StatusUnprocessableEntity, msgWrongCode)
	}
	if err != nil {
		return err
	}
	h.succeeded(ctx, k)
	if method == "recovery-code" {
		if left, err := h.store.RecoveryCodesLeft(ctx, u.ID); err == nil && left <= recoveryFewLeft {
			s.j.Notice = fmt.Sprintf("You have %d recovery codes left. Make new ones on your account page before you run out.", left)
			if err := h.save(ctx, s); err != nil {
				h.log.Warn("cannot save the recovery-code notice", "err", err)
			}
		}
	}
	return redirect(w, r, PathNext)
}

// checkCode checks a code typed as the second factor: a code of digits is
// an authenticator code, anything else may be a recovery code. It returns
// use, which consumes the code inside the caller's transaction (both kinds
// are single-use by a conditional update in the store, so of 20 racing
// requests with one code one succeeds), and the method ("otp" or
// "recovery-code"); or use == nil and the reason for the audit line.
func (h *Handler) checkCode(ctx context.Context, r *http.Request, s *session, u *store.User, code string, now time.Time) (use func(ctx context.Context) error, method string, reason store.Reason, err error) {
	if isDigits(code) {
		t, err := h.store.TOTPByUser(ctx, u.ID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, "otp", "", err
		}
		var step int64
		ok := false
		if err == nil && t.Confirmed {
			secret, oerr := h.box.Open(t.Secret, purposeTOTP)
			if oerr != nil {
				return nil, "otp", "", fmt.Errorf("open TOTP secret: %w", oerr)
			}
			step, ok = otp.Validate(secret, code, now, t.LastStep)
		}
		if !ok {
			return nil, "otp", store.ReasonWrongCode, nil
		}
		return func(ctx context.Context) error { return h.store.UseTOTPStep(ctx, u.ID, step) }, "otp", "", nil
	}
	norm, ok := normaliseRecoveryCode(code)
	if !ok {
		return nil, "recovery-code", store.ReasonMalformedCode, nil
	}
	return func(ctx context.Context) error {
		if err := h.store.UseRecoveryCode(ctx, u.ID, hashRecoveryCode(norm), now); err != nil {
			return err
		}
		return h.audit(ctx, r, s, event{Name: evRecoveryUse, UserID: u.ID, Username: u.Username})
	}, "recovery-code", "", nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
