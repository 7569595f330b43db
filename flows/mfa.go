package flows

import (
	"cmp"
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
	msgPasskeyAsked   = "The application asks for your passkey or security key: use it, or continue without it."
)

// passkeyStepUp: the parked request asks for the phishing-resistant level,
// which only the officer's passkey reaches, and this sign-in has not
// reached it yet: the challenge page offers the passkey alone.
func (f *flow) passkeyStepUp() bool {
	return f.state.StepUp == acrPhishingResistant && f.state.stepUpDue()
}

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
	p := enrolPage{
		page:     h.page(f, StepMFAEnrol, "Set up your authenticator app"),
		QR:       template.URL(qr),
		Label:    fmt.Sprintf("%s (%s)", issuer, account),
		Secret:   groupSecret(otp.EncodeSecret(secret)),
		Account:  account,
		Passkey:  h.passkeyUI(PathPasskeyEnrol),
		Approval: PathEnrolApprove,
	}
	if f.state.ReplacingFactor {
		// After "Lost your phone?": the same choices, and "Not now".
		p.Title, p.Replacing = "Set up a new second factor", true
	}
	return p, nil
}

func (h *Handler) getEnrol(w http.ResponseWriter, r *http.Request, f *flow) error {
	return h.showTOTPForm(w, r, f, enrolForm)
}

func (h *Handler) postEnrol(w http.ResponseWriter, r *http.Request, f *flow) error {
	if r.PostForm.Get("later") == "1" && f.state.ReplacingFactor {
		return h.postReplaceLater(w, r, f)
	}
	t, err := h.confirmTOTP(w, r, f, enrolForm)
	if t == nil || err != nil {
		return err
	}
	s, u := f.s, f.user
	hashes, err := h.enrolled(s, "otp", t.CreatedAt, nil)
	if err != nil {
		return err
	}
	err = h.commitRotated(w, r, s, h.storeFactor(r, f, newFactor{totp: t}, hashes,
		event{Name: evMFAEnrol, UserID: u.ID, Username: u.Username, Detail: map[string]any{"method": "totp"}}))
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		// A concurrent request of this browser enrolled first.
		return redirect(w, r, PathNext)
	}
	if err != nil {
		return err
	}
	h.notifyReplaced(r, f, "Authenticator app")
	return redirect(w, r, PathNext)
}

// totpForm is a page that confirms a new authenticator app with a code:
// the journey's enrolment step, or the account page's.
type totpForm struct {
	path, template string
	page           func(h *Handler, f *flow, secret []byte) (enrolPage, error)
}

var (
	enrolForm       = totpForm{PathMFAEnrol, "mfa-enrol", (*Handler).enrolPage}
	accountTOTPForm = totpForm{PathAccountTOTP, "account-totp", (*Handler).accountTOTPPage}
)

// showTOTPForm shows the QR code of the authenticator app pending in the
// session (made on the first visit, so that a reload shows the same one).
func (h *Handler) showTOTPForm(w http.ResponseWriter, r *http.Request, f *flow, form totpForm) error {
	secret, err := h.pendingSecret(r.Context(), f.s)
	if err != nil {
		return err
	}
	data, err := form.page(h, f, secret)
	if err != nil {
		return err
	}
	return h.show(w, http.StatusOK, form.template, data)
}

// confirmTOTP checks the code that confirms the authenticator app pending
// in the session against its secret, throttled like any factor. It returns
// the confirmed app to store, or nil when it has answered the request
// itself (the form again with what is wrong, or to the form when no QR code
// was shown in this session).
func (h *Handler) confirmTOTP(w http.ResponseWriter, r *http.Request, f *flow, form totpForm) (*store.TOTP, error) {
	ctx, s, u := r.Context(), f.s, f.user
	if len(s.j.PendingTOTP) == 0 {
		return nil, redirect(w, r, form.path)
	}
	secret, err := h.pendingSecret(ctx, s)
	if err != nil {
		return nil, err
	}
	refuse := func(status int, msg string) (*store.TOTP, error) {
		data, err := form.page(h, f, secret)
		if err != nil {
			return nil, err
		}
		data.fail("code", msg)
		return nil, h.show(w, status, form.template, data)
	}
	code := r.PostForm.Get("code")
	if strings.TrimSpace(code) == "" {
		return refuse(http.StatusBadRequest, msgEnterCode)
	}
	// A code that confirms a new app is a typo, not a guess at a secret:
	// counted like a password.
	k := h.passwordKeys(r, u.Username, u)
	if l, err := h.attempt(ctx, &k); err != nil || l {
		if err != nil {
			return nil, err
		}
		return refuse(http.StatusTooManyRequests, msgTooManyTries)
	}
	defer h.release(k)
	now := h.now().UTC()
	step, ok := otp.Validate(secret, code, now, 0)
	if !ok {
		ev := event{UserID: u.ID, Username: u.Username, Detail: map[string]any{"factor": "otp", "reason": store.ReasonWrongEnrolmentCode}}
		if err := h.failed(ctx, r, s, k, ev); err != nil {
			return nil, err
		}
		return refuse(http.StatusUnprocessableEntity, msgWrongEnrolCode)
	}
	return &store.TOTP{UserID: u.ID, Secret: h.box.Seal(secret, purposeTOTP), Confirmed: true, LastStep: step, CreatedAt: now}, nil
}

// newFactor is a second factor its officer has just proved: an
// authenticator app confirmed by a correct code, a registered passkey, or a
// phone paired with the approval app (confirmed with the number, signed by
// its new key).
type newFactor struct {
	totp    *store.TOTP
	passkey *store.WebAuthnCredential
	device  *store.ApprovalDevice
}

// enrolled is the journey's transition when mfa-enrol's factor is
// confirmed: the factor counts as proved for this sign-in, and fresh
// recovery codes wait in the session to be shown once. It returns the
// codes' hashes to store with the factor.
func (h *Handler) enrolled(s *session, method string, now time.Time, amr []string) ([]string, error) {
	hashes, err := h.sealRecoveryCodes(s)
	if err != nil {
		return nil, err
	}
	s.j.PendingTOTP = nil
	s.j.factorVerified(method, now, amr)
	s.markDone(StepMFAEnrol)
	s.j.replaced()
	return hashes, nil
}

// sealRecoveryCodes makes fresh recovery codes and seals them into the
// session, where the journey's recovery-codes step shows them once; it
// returns their hashes for the store.
func (h *Handler) sealRecoveryCodes(s *session) ([]string, error) {
	if s.row.UserID == "" {
		return nil, errors.New("recovery codes for a session without a user")
	}
	codes, hashes := h.recovery.newRecoveryCodes(s.row.UserID)
	plain, err := json.Marshal(codes)
	if err != nil {
		return nil, err
	}
	s.j.RecoveryCodes = h.box.Seal(plain, purposeRecoveryCodes)
	return hashes, nil
}

// storeFactor is the transaction that stores a confirmed factor with its
// recovery codes (hashes; nil when none are due) and its audit line ev:
// the one write of the journey's enrolment and of the account page's
// additions. At mfa-enrol the account must have no factor at all (a
// password alone must never add one beside or over another:
// store.ErrConflict), unless a recovery code given after "Lost your
// phone?" asked to replace it; on the account page it may have one authenticator
// app (a second: errAlreadyDone), and the user's row lock makes two racing
// additions see each other.
func (h *Handler) storeFactor(r *http.Request, f *flow, fa newFactor, hashes []string, ev event) func(ctx context.Context) error {
	u := f.user
	enrolling := f.current() == StepMFAEnrol
	replacing := enrolling && f.state.ReplacingFactor
	if replacing && ev.Detail != nil {
		ev.Detail["replace"] = true
	}
	return func(ctx context.Context) error {
		switch {
		case replacing:
			// Beside the lost one (a new authenticator app over it): a
			// recovery code was proved in this sign-in.
			if err := h.lockUser(ctx, u.ID); err != nil {
				return err
			}
		case enrolling:
			if has, err := h.hasSecondFactor(ctx, u.ID); err != nil || has {
				return cmp.Or(err, store.ErrConflict)
			}
		case fa.totp != nil:
			if err := h.lockUser(ctx, u.ID); err != nil {
				return err
			}
			if has, err := h.hasTOTP(ctx, u.ID); err != nil || has {
				return cmp.Or(err, errAlreadyDone)
			}
		}
		switch {
		case fa.totp != nil:
			if err := h.store.PutTOTP(ctx, fa.totp); err != nil {
				return fmt.Errorf("store TOTP: %w", err)
			}
		case fa.device != nil:
			if err := h.store.AddApprovalDevice(ctx, fa.device); err != nil {
				return fmt.Errorf("store approval device: %w", err)
			}
		default:
			if err := h.store.AddWebAuthnCredential(ctx, fa.passkey); err != nil {
				return fmt.Errorf("store passkey: %w", err)
			}
		}
		if hashes != nil {
			if err := h.store.ReplaceRecoveryCodes(ctx, u.ID, hashes); err != nil {
				return fmt.Errorf("store recovery codes: %w", err)
			}
		}
		return h.audit(ctx, r, f.s, ev)
	}
}

func (h *Handler) getRecoveryCodes(w http.ResponseWriter, r *http.Request, f *flow) error {
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

func (h *Handler) postRecoveryCodes(w http.ResponseWriter, r *http.Request, f *flow) error {
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

func (h *Handler) getChallenge(w http.ResponseWriter, r *http.Request, f *flow) error {
	data, err := h.challengePage(r.Context(), f)
	if err != nil {
		return err
	}
	return h.show(w, http.StatusOK, "mfa-challenge", data)
}

// challengePage offers the code field and, to an officer with a passkey or
// security key, the button that uses it; to an officer with a paired
// phone, first of all the approval on the phone (approve.go).
func (h *Handler) challengePage(ctx context.Context, f *flow) (challengePage, error) {
	data := challengePage{page: h.page(f, StepMFAChallenge, "Enter your code")}
	creds, err := h.store.WebAuthnCredentials(ctx, f.user.ID)
	if err != nil {
		return data, fmt.Errorf("load passkeys: %w", err)
	}
	if len(creds) > 0 {
		data.Passkey = h.passkeyUI(PathPasskeyChallenge)
	}
	if f.passkeyStepUp() {
		// Only a passkey reaches what the application asks for.
		data.Title, data.PasskeyOnly, data.ClientName = "Use your passkey", true, f.s.j.ClientName
		return data, nil
	}
	if data.Approval, err = h.approvalOffer(ctx, f, useSignIn); err != nil {
		return data, err
	}
	if data.Approval.Available {
		data.Title = "Approve the sign-in on your phone"
	}
	return data, nil
}

func (h *Handler) postChallenge(w http.ResponseWriter, r *http.Request, f *flow) error {
	ctx, s, u := r.Context(), f.s, f.user
	// lost: the form of "Lost your phone?" (recovery_lost.go), which takes
	// recovery codes only and asks for a new factor after one.
	lost := r.PostForm.Get("lost") == "1"
	refuse := func(status int, msg string) error {
		if lost {
			return h.showLostPhone(w, r, f, status, msg)
		}
		data, err := h.challengePage(ctx, f)
		if err != nil {
			return err
		}
		data.fail("code", msg)
		return h.show(w, status, "mfa-challenge", data)
	}
	if f.passkeyStepUp() {
		if r.PostForm.Get("skip") == "" {
			return refuse(http.StatusUnprocessableEntity, msgPasskeyAsked)
		}
		// The officer goes on without it: the application gets what the
		// sign-in proved, or refuses it if it insists.
		s.j.StepUp = ""
		if err := h.save(ctx, s); err != nil {
			return err
		}
		return redirect(w, r, PathNext)
	}
	code := strings.TrimSpace(r.PostForm.Get("code"))
	switch {
	case code == "" && lost:
		return refuse(http.StatusBadRequest, msgLostEnterCode)
	case code == "":
		return refuse(http.StatusBadRequest, msgEnterCode)
	case lost && isDigits(code):
		return refuse(http.StatusBadRequest, msgLostEnterCode)
	}
	k := h.factorKeys(r, u)
	if l, err := h.attempt(ctx, &k); err != nil || l {
		if err != nil {
			return err
		}
		return refuse(http.StatusTooManyRequests, msgTooManyTries)
	}
	defer h.release(k)
	now := h.now().UTC()
	ev := event{UserID: u.ID, Username: u.Username, Detail: map[string]any{}}
	use, method, err := h.proveCode(r, s, u, code, now, k, ev)
	if err != nil || use == nil {
		if err != nil {
			return err
		}
		return refuse(http.StatusUnprocessableEntity, msgWrongCode)
	}

	before := s.j
	s.j.factorVerified(method, now, nil)
	var replace func(ctx context.Context) error
	if lost {
		if replace, err = h.lostSignIn(ctx, r, f); err != nil {
			return err
		}
	}
	err = h.commitGuessed(w, r, s, k, func(ctx context.Context) error {
		if err := use(ctx); err != nil {
			return err
		}
		if replace != nil {
			if err := replace(ctx); err != nil {
				return err
			}
		}
		return h.audit(ctx, r, s, event{Name: evMFAChallenge, UserID: u.ID, Username: u.Username, Detail: map[string]any{"method": method}})
	})
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		// Already used (a replay, or a concurrent request won), or the session
		// was rotated under us: a wrong code, charged like one.
		s.j = before
		if err := h.codeUsed(r, s, k, ev); err != nil {
			return err
		}
		return refuse(http.StatusUnprocessableEntity, msgWrongCode)
	}
	if err != nil {
		return err
	}
	if lost {
		h.notify(r, u, noticeLostPhone, "Every other session was signed out")
	}
	if method == "recovery-code" && !lost {
		if left, err := h.store.RecoveryCodesLeft(ctx, u.ID); err == nil && left <= recoveryFewLeft {
			s.j.Notice = fmt.Sprintf("You have %d recovery codes left. Make new ones on your account page before you run out.", left)
			if err := h.save(ctx, s); err != nil {
				h.log.Warn("cannot save the recovery-code notice", "err", err)
			}
		}
	}
	return redirect(w, r, PathNext)
}

// proveCode checks a code typed as the second factor, at the challenge or
// to confirm it is you on the account page. It returns use, which consumes
// the code inside the caller's transaction (both kinds are single-use by a
// conditional update in the store, so of 20 racing requests with one code
// one succeeds), and the method ("otp" or "recovery-code"); a wrong code is
// charged to k and audited as ev, and use is nil.
func (h *Handler) proveCode(r *http.Request, s *session, u *store.User, code string, now time.Time, k throttleKeys, ev event) (use func(ctx context.Context) error, method string, err error) {
	use, method, reason, err := h.checkCode(r.Context(), r, s, u, code, now)
	ev.Detail["factor"] = method
	if err != nil || use != nil {
		return use, method, err
	}
	ev.Detail["reason"] = reason
	return nil, method, h.failed(r.Context(), r, s, k, ev)
}

// codeUsed charges a code that a replay or a racing request used first,
// like a wrong one.
func (h *Handler) codeUsed(r *http.Request, s *session, k throttleKeys, ev event) error {
	ev.Detail["reason"] = store.ReasonCodeUsed
	return h.failed(r.Context(), r, s, k, ev)
}

// checkCode tells an authenticator code (digits) from a recovery code
// (anything else) and checks it: use, or the reason it is refused.
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
	hashes, err := h.store.RecoveryCodeHashes(ctx, u.ID)
	if err != nil {
		return nil, "recovery-code", "", err
	}
	stored := h.recovery.match(u.ID, norm, hashes)
	if stored == "" {
		return nil, "recovery-code", store.ReasonWrongCode, nil
	}
	return func(ctx context.Context) error {
		if err := h.store.UseRecoveryCode(ctx, u.ID, stored, now); err != nil {
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
