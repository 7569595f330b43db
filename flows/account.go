package flows

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/lanyard-idp/lanyard/flows/password"
	"github.com/lanyard-idp/lanyard/provider/store"
)

// The account page (/account): a signed-in officer looks after how they
// sign in — the authenticator app, passkeys and security keys, recovery
// codes, the password — and sees the policies they accepted, their sessions
// (and ends them) and their recent security events. Every form is plain
// HTML (POST, then 303 back); only adding a passkey needs the script.
//
// Every change needs a recent proof: when the last second factor (the
// password, for an officer without one) is older than reauthAfter, the
// change goes to the confirm-it-is-you page first. Every change writes an
// audit event and sends a security notice.

// reauthAfter is how long a proof of the second factor allows changes.
const reauthAfter = 10 * time.Minute

// Routes of the account page's forms.
const (
	PathReauth                = "/account/reauth"
	PathAccountTOTP           = "/account/totp"
	PathAccountTOTPRemove     = "/account/totp/remove"
	PathAccountPasskeyRename  = "/account/passkeys/rename"
	PathAccountPasskeyRemove  = "/account/passkeys/remove"
	PathAccountRecoveryCodes  = "/account/recovery-codes"
	PathAccountPassword       = "/account/password"
	PathAccountSignOutSession = "/account/sessions/sign-out"
	PathAccountSignOutOthers  = "/account/sessions/sign-out-others"
	PathAccountSignOutAll     = "/account/sessions/sign-out-everywhere"
)

// Audit events of the account page.
const (
	evAccountReauth     = "account.reauth"
	evPasskeyAdd        = "account.passkey.add"
	evPasskeyRename     = "account.passkey.rename"
	evPasskeyRemove     = "account.passkey.remove"
	evTOTPAdd           = "account.totp.add"
	evTOTPRemove        = "account.totp.remove"
	evRecoveryRenew     = "account.recovery_codes.renew"
	evSignOutSessions   = "account.sessions.sign_out"
	eventsShown         = 20
	eventsLookBack      = 90 * 24 * time.Hour
	maxEventsConsidered = 2000
)

const (
	msgConfirmed      = "Thank you. For the next 10 minutes you can change how you sign in."
	msgLastMethod     = "You cannot remove your only way to prove it is you. Add another one first (an authenticator app, a passkey or a security key), then remove this one."
	msgNoSuchPasskey  = "That passkey or security key is no longer on your account. The page below is up to date."
	msgEnterName      = "Enter a name for the passkey, like “Work laptop” or “Blue security key”."
	msgNeedFactor     = "Set up an authenticator app or a passkey first: recovery codes stand in for them."
	msgTOTPExists     = "You already have an authenticator app. Remove it first to set up another."
	msgSessionEnded   = "That session had already ended."
	msgBadSession     = "That session could not be found. The page below is up to date."
	msgPasswordWrong  = "The password is not right."
	msgConfirmPrompt  = "To change how you sign in, first confirm it is you."
	msgPasswordMoved  = "Your password was changed. Your other sessions were signed out."
	msgTOTPAdded      = "Your authenticator app is set up."
	msgTOTPRemoved    = "The authenticator app was removed."
	msgPasskeyRenamed = "The passkey was renamed."
)

// errLastMethod rolls back a removal that would leave no second factor
// where the journey requires one.
var errLastMethod = errors.New("last second factor")

// SignOutEverywhere ends every SSO session of the user but the one whose raw
// session id is except ("" ends them all) and deactivates the codes, access
// tokens and refresh-token families issued to the ended sessions, in one
// transaction (it joins ctx's, if any). With except "" it also revokes every
// token issued to the user, including those of sessions that have already
// expired, so no relying party can refresh anything. It returns how many
// sessions it ended. The caller writes the audit event (the admin CLI's
// `lanyard user sign-out EMAIL` calls it with except "").
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
			return st.RevokeOAuthBySubject(ctx, userID)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sign out everywhere: %w", err)
	}
	return n, nil
}

// signedIn returns the flow of a fully signed-in browser. Otherwise it has
// answered — to the sign-in (which ends here again) or the pending step —
// with a 303, or with JSON for the passkey script, and returns nil.
func (h *Handler) signedIn(w http.ResponseWriter, r *http.Request, asJSON bool) (*flow, error) {
	s, err := h.load(r)
	if err != nil {
		return nil, err
	}
	to := ""
	var f *flow
	if s == nil {
		to = PathSignIn
	} else {
		f, err = h.flowFor(r.Context(), s)
		switch {
		case errors.Is(err, errUserGone):
			h.end(w, r, s)
			to = PathSignIn
		case err != nil:
			return nil, err
		case s.row.State != stateAuthenticated || len(f.pending) > 0:
			to = PathNext
		}
	}
	if to == "" {
		return f, nil
	}
	if asJSON {
		return nil, elsewhere(w, to)
	}
	return nil, redirect(w, r, to)
}

// recent reports whether the browser proved the second factor (or, for an
// officer without one, the password) within reauthAfter.
func (h *Handler) recent(f *flow) bool {
	at := f.s.j.FactorAt
	if !f.state.HasSecondFactor && f.s.j.PasswordAt.After(at) {
		at = f.s.j.PasswordAt
	}
	return !at.IsZero() && h.now().UTC().Sub(at) <= reauthAfter
}

// stepUp sends a change without a recent proof to the confirm page and
// returns false.
func (h *Handler) stepUp(w http.ResponseWriter, r *http.Request, f *flow, asJSON bool) (bool, error) {
	if h.recent(f) {
		return true, nil
	}
	if asJSON {
		return false, writeJSON(w, http.StatusForbidden, jsonAnswer{Redirect: PathReauth, Error: msgConfirmPrompt})
	}
	return false, redirect(w, r, PathReauth)
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
		handle = w.handle
	} else if err != nil {
		return err
	}
	return h.store.SetWebAuthnHandle(ctx, userID, handle)
}

// mfaRequired: the journey makes every officer enrol a second factor.
func (f *flow) mfaRequired() bool { return slices.Contains(f.set.order, StepMFAEnrol) }

// The page.

type passkeyView struct {
	ID, Name, Kind, Added, LastUsed string
}

type sessionView struct {
	Ref, Device, Address, Started, LastSeen string
	Current, InProgress                     bool
}

type policyView struct {
	Title, Version, Accepted, CurrentVersion string
	Current                                  bool
}

type eventView struct {
	When, What, Where string
}

type accountPage struct {
	page
	Username, Name string
	Recent         bool
	MFARequired    bool
	HasTOTP        bool
	TOTPAdded      string
	Passkeys       []passkeyView
	RecoveryLeft   int
	Methods        int
	Policies       []policyView
	Sessions       []sessionView
	Others         int
	Events         []eventView
	AddPasskey     passkeyUI
	MinLength      int
}

// displayTime is how the account page writes a time.
func displayTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2 Jan 2006, 15:04 UTC")
}

func (h *Handler) accountPage(ctx context.Context, f *flow) (accountPage, error) {
	u, s, now := f.user, f.s, h.now().UTC()
	p := accountPage{
		page:        h.page(nil, "", "Your account"),
		Username:    u.Username,
		Name:        u.Name,
		Recent:      h.recent(f),
		MFARequired: f.mfaRequired(),
		AddPasskey:  h.passkeyUI(PathAccountPasskey),
		MinLength:   f.set.policy.MinLength,
	}
	p.SignedIn = true
	t, err := h.store.TOTPByUser(ctx, u.ID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return p, err
	}
	if err == nil && t.Confirmed {
		p.HasTOTP, p.TOTPAdded = true, displayTime(t.CreatedAt)
		p.Methods++
	}
	creds, err := h.store.WebAuthnCredentials(ctx, u.ID)
	if err != nil {
		return p, err
	}
	for _, c := range creds {
		kind := "Security key or device-bound passkey"
		if synced(c) {
			kind = "Synced passkey"
		}
		p.Passkeys = append(p.Passkeys, passkeyView{ID: b64.EncodeToString(c.ID), Name: c.Name, Kind: kind,
			Added: displayTime(c.CreatedAt), LastUsed: displayTime(c.LastUsedAt)})
		p.Methods++
	}
	if p.RecoveryLeft, err = h.store.RecoveryCodesLeft(ctx, u.ID); err != nil {
		return p, err
	}
	acc, err := h.store.Acceptances(ctx, u.ID)
	if err != nil {
		return p, err
	}
	for _, a := range acc {
		v := policyView{Title: a.Document, Version: a.Version, Accepted: displayTime(a.AcceptedAt)}
		if d, ok := f.set.docs[a.Document]; ok {
			v.Title, v.CurrentVersion, v.Current = d.Title, d.Version, d.Version == a.Version
		}
		p.Policies = append(p.Policies, v)
	}
	sessions, err := h.store.UserSessions(ctx, u.ID, now)
	if err != nil {
		return p, err
	}
	for _, x := range sessions {
		v := sessionView{Ref: x.Ref, Device: describeAgent(x.UserAgent), Address: x.ClientAddr,
			Started: displayTime(x.CreatedAt), LastSeen: displayTime(x.LastSeenAt),
			Current: x.Ref == s.ref(), InProgress: x.State != stateAuthenticated}
		if !v.Current {
			p.Others++
		}
		p.Sessions = append(p.Sessions, v)
	}
	// Current session first, then newest first (as the store lists them).
	slices.SortStableFunc(p.Sessions, func(a, b sessionView) int {
		switch {
		case a.Current == b.Current:
			return 0
		case a.Current:
			return -1
		}
		return 1
	})
	evs, err := h.store.Audit(ctx, store.AuditFilter{UserID: u.ID, Since: now.Add(-eventsLookBack), Limit: maxEventsConsidered})
	if err != nil {
		return p, err
	}
	for i := len(evs) - 1; i >= 0 && len(p.Events) < eventsShown; i-- {
		e := evs[i]
		where := describeAgent(e.UserAgent)
		if e.ClientAddr != "" {
			where += ", " + e.ClientAddr
		}
		p.Events = append(p.Events, eventView{When: displayTime(e.At), What: describeEvent(e), Where: where})
	}
	return p, nil
}

// describeEvent writes an audit event as a sentence for its officer.
func describeEvent(e store.AuditEvent) string {
	var d map[string]any
	_ = json.Unmarshal(e.Detail, &d)
	str := func(k string) string { v, _ := d[k].(string); return v }
	method := func() string {
		switch str("method") {
		case "totp", "otp":
			return "authenticator app"
		case "recovery-code":
			return "recovery code"
		case methodWebAuthn:
			return "passkey or security key"
		}
		return ""
	}
	switch e.Event {
	case evSigninSuccess:
		if c := str("client_id"); c != "" {
			return "Signed in (to " + c + ")"
		}
		return "Signed in"
	case evSigninPassword:
		return "Password accepted at sign-in"
	case evSigninPasskey:
		return "Signed in with a passkey"
	case evSigninFailure:
		switch str("factor") {
		case "password":
			return "Failed sign-in: wrong password"
		case methodWebAuthn:
			return "Failed sign-in: passkey or security key refused"
		}
		return "Failed sign-in: wrong code"
	case evLock:
		return "Sign-in locked for a while after too many failed attempts"
	case evMFAEnrol:
		if m := method(); m != "" {
			return "Set up a second factor: " + m
		}
		return "Set up a second factor"
	case evMFAChallenge:
		if m := method(); m != "" {
			return "Second factor used: " + m
		}
		return "Second factor used"
	case evRecoveryUse:
		return "Recovery code used"
	case evPasswordChange:
		return "Password changed"
	case evPolicyAccept:
		return fmt.Sprintf("Accepted the %s (version %s)", str("document"), str("version"))
	case evLogout:
		return "Signed out"
	case evAccountReauth:
		return "Confirmed it was you on the account page"
	case evPasskeyAdd:
		return "Passkey added: " + str("name")
	case evPasskeyRename:
		return "Passkey renamed: " + str("name")
	case evPasskeyRemove:
		return "Passkey removed: " + str("name")
	case evTOTPAdd:
		return "Authenticator app added"
	case evTOTPRemove:
		return "Authenticator app removed"
	case evRecoveryRenew:
		return "New recovery codes made"
	case evSignOutSessions:
		switch str("scope") {
		case "others":
			return "Signed out of all other sessions"
		case "all":
			return "Signed out everywhere"
		}
		return "Signed out one session"
	case evWebAuthnClone:
		return "A passkey or security key was refused: it may have been copied"
	case "invite":
		return "Invitation sent"
	}
	return e.Event
}

// showAccount renders the account page, with errors when status ≥ 400.
func (h *Handler) showAccount(w http.ResponseWriter, r *http.Request, f *flow, status int, edit func(*accountPage)) error {
	p, err := h.accountPage(r.Context(), f)
	if err != nil {
		return err
	}
	if edit != nil {
		edit(&p)
	}
	return h.show(w, status, "account", p)
}

// account is GET /account, where a sign-in without a relying party ends.
func (h *Handler) account(w http.ResponseWriter, r *http.Request) error {
	f, err := h.signedIn(w, r, false)
	if err != nil || f == nil {
		return err
	}
	notice := f.s.j.AccountNotice
	if notice != "" {
		f.s.j.AccountNotice = ""
		if err := h.save(r.Context(), f.s); err != nil {
			return err
		}
	}
	return h.showAccount(w, r, f, http.StatusOK, func(p *accountPage) { p.Notice = notice })
}

// back returns to the account page with a notice.
func (h *Handler) back(w http.ResponseWriter, r *http.Request, s *session, notice string) error {
	s.j.AccountNotice = notice
	if err := h.save(r.Context(), s); err != nil {
		return err
	}
	return redirect(w, r, PathAccount)
}

// accountForm is the start of every account form handler: signed in, the
// form read, and a recent proof (else off to confirm it first).
func (h *Handler) accountForm(w http.ResponseWriter, r *http.Request) (*flow, error) {
	f, err := h.signedIn(w, r, false)
	if err != nil || f == nil {
		return nil, err
	}
	if err := form(r); err != nil {
		return nil, err
	}
	if ok, err := h.stepUp(w, r, f, false); !ok || err != nil {
		return nil, err
	}
	return f, nil
}

// Confirming it is you.

type reauthPage struct {
	page
	HasTOTP      bool
	HasCode      bool
	UsePassword  bool
	Passkey      passkeyUI
	RecoveryLeft int
}

func (h *Handler) reauthPage(ctx context.Context, f *flow) (reauthPage, error) {
	u := f.user
	p := reauthPage{page: h.page(nil, "", "Confirm it is you")}
	p.SignedIn = true
	p.Action = PathReauth
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
	p.HasCode = p.HasTOTP || (f.state.HasSecondFactor && p.RecoveryLeft > 0)
	p.UsePassword = !f.state.HasSecondFactor
	// The form's data-step tells scripts which answer it wants.
	p.DataStep = StepMFAChallenge
	if p.UsePassword {
		p.DataStep = StepPassword
	}
	return p, nil
}

func (h *Handler) getReauth(w http.ResponseWriter, r *http.Request) error {
	f, err := h.signedIn(w, r, false)
	if err != nil || f == nil {
		return err
	}
	p, err := h.reauthPage(r.Context(), f)
	if err != nil {
		return err
	}
	p.Notice = msgConfirmPrompt
	return h.show(w, http.StatusOK, "account-reauth", p)
}

// postReauth checks an authenticator or recovery code (or, for an officer
// without a second factor, the password), counted like any guess.
func (h *Handler) postReauth(w http.ResponseWriter, r *http.Request) error {
	f, err := h.signedIn(w, r, false)
	if err != nil || f == nil {
		return err
	}
	if err := form(r); err != nil {
		return err
	}
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
	k := keysFor(r, u.ID)
	if l, err := h.locked(ctx, k); err != nil || l {
		if err != nil {
			return err
		}
		return refuse(http.StatusTooManyRequests, field, msgTooManyTries)
	}
	now := h.now().UTC()
	ev := event{UserID: u.ID, Username: u.Username, Detail: map[string]any{"ceremony": ceremonyReauth}}
	var use func(ctx context.Context) error
	method := "password"
	if f.state.HasSecondFactor {
		code := strings.TrimSpace(r.PostForm.Get("code"))
		if code == "" {
			return refuse(http.StatusBadRequest, field, msgEnterCode)
		}
		var reason string
		use, method, reason, err = h.checkCode(ctx, r, s, u, code, now)
		if err != nil {
			return err
		}
		ev.Detail["factor"] = method
		if use == nil {
			ev.Detail["reason"] = reason
			if err := h.failed(ctx, r, s, k, ev); err != nil {
				return err
			}
			return refuse(http.StatusUnprocessableEntity, field, msgWrongCode)
		}
		s.j.FactorAt = now
	} else {
		pw := r.PostForm.Get("password")
		if pw == "" {
			return refuse(http.StatusBadRequest, field, msgEnterPassword)
		}
		ok, err := password.Verify(u.PasswordHash, pw)
		if errors.Is(err, password.ErrBusy) {
			return err
		}
		if err != nil {
			h.log.Error("stored password hash is unreadable", "user", u.ID, "err", err)
		}
		if !ok {
			ev.Detail["factor"], ev.Detail["reason"] = "password", "wrong password"
			if err := h.failed(ctx, r, s, k, ev); err != nil {
				return err
			}
			return refuse(http.StatusUnprocessableEntity, field, msgPasswordWrong)
		}
		s.j.PasswordAt = now
	}
	s.j.AccountNotice = msgConfirmed
	err = h.commitRotated(w, r, s, func(ctx context.Context) error {
		if use != nil {
			if err := use(ctx); err != nil {
				return err
			}
		}
		return h.audit(ctx, r, s, event{Name: evAccountReauth, UserID: u.ID, Username: u.Username, Detail: map[string]any{"method": method}})
	})
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		ev.Detail["reason"] = "code already used"
		if err := h.failed(ctx, r, s, k, ev); err != nil {
			return err
		}
		return refuse(http.StatusUnprocessableEntity, field, msgWrongCode)
	}
	if err != nil {
		return err
	}
	h.succeeded(ctx, k)
	return redirect(w, r, PathAccount)
}

func (h *Handler) postReauthPasskeyOptions(w http.ResponseWriter, r *http.Request) error {
	f, err := h.signedIn(w, r, true)
	if err != nil || f == nil {
		return err
	}
	return h.beginAssertion(w, r, f.s, f.user, ceremonyReauth)
}

func (h *Handler) postReauthPasskey(w http.ResponseWriter, r *http.Request) error {
	f, err := h.signedIn(w, r, true)
	if err != nil || f == nil {
		return err
	}
	a, ans, err := h.finishAssertion(w, r, f, ceremonyReauth)
	if err != nil || a == nil {
		return err
	}
	s, u := f.s, f.user
	now := h.now().UTC()
	before := s.j
	s.j.FactorAt, s.j.AccountNotice = now, msgConfirmed
	ok, err := h.commitCeremony(w, r, s, before, ans, func(ctx context.Context) error {
		if err := a.use(ctx, h.store, now); err != nil {
			return err
		}
		return h.audit(ctx, r, s, event{Name: evAccountReauth, UserID: u.ID, Username: u.Username, Detail: map[string]any{"method": methodWebAuthn}})
	})
	if !ok || err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, jsonAnswer{Redirect: PathAccount})
}

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
	codes, hashes := newRecoveryCodes()
	plain, err := json.Marshal(codes)
	if err != nil {
		return nil, err
	}
	f.s.j.RecoveryCodes = h.box.Seal(plain, purposeRecoveryCodes)
	return hashes, nil
}

// Passkeys.

func (h *Handler) postAccountPasskeyOptions(w http.ResponseWriter, r *http.Request) error {
	f, err := h.signedIn(w, r, true)
	if err != nil || f == nil {
		return err
	}
	if ok, err := h.stepUp(w, r, f, true); !ok || err != nil {
		return err
	}
	return h.beginRegistration(w, r, f.s, f.user, ceremonyAdd)
}

// postAccountPasskey adds a passkey. An officer who had no second factor
// (a journey without enrolment) also gets recovery codes, shown once by the
// journey's own step.
func (h *Handler) postAccountPasskey(w http.ResponseWriter, r *http.Request) error {
	f, err := h.signedIn(w, r, true)
	if err != nil || f == nil {
		return err
	}
	if ok, err := h.stepUp(w, r, f, true); !ok || err != nil {
		return err
	}
	row, flags, ans, err := h.finishRegistration(w, r, f, ceremonyAdd)
	if err != nil || row == nil {
		return err
	}
	ctx, s, u := r.Context(), f.s, f.user
	before := s.j
	hashes, err := h.firstRecoveryCodes(ctx, f)
	if err != nil {
		return err
	}
	s.j.AccountNotice = fmt.Sprintf("Your passkey “%s” was added.", row.Name)
	ok, err := h.commitCeremony(w, r, s, before, ans, func(ctx context.Context) error {
		if err := h.store.AddWebAuthnCredential(ctx, row); err != nil {
			return err
		}
		if hashes != nil {
			if err := h.store.ReplaceRecoveryCodes(ctx, u.ID, hashes); err != nil {
				return err
			}
		}
		return h.audit(ctx, r, s, event{Name: evPasskeyAdd, UserID: u.ID, Username: u.Username,
			Detail: map[string]any{"name": row.Name, "kind": kindOf(flags)}})
	})
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

func (h *Handler) postAccountPasskeyRename(w http.ResponseWriter, r *http.Request) error {
	f, err := h.accountForm(w, r)
	if err != nil || f == nil {
		return err
	}
	ctx, s, u := r.Context(), f.s, f.user
	id := r.PostForm.Get("id")
	c, err := h.passkeyOf(ctx, u.ID, id)
	if err != nil {
		return err
	}
	if c == nil {
		return h.showAccount(w, r, f, http.StatusNotFound, func(p *accountPage) { p.fail("", msgNoSuchPasskey) })
	}
	name, ok := passkeyName(r.PostForm.Get("name"))
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

func (h *Handler) postAccountPasskeyRemove(w http.ResponseWriter, r *http.Request) error {
	f, err := h.accountForm(w, r)
	if err != nil || f == nil {
		return err
	}
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
	return p, nil
}

func (h *Handler) hasTOTP(ctx context.Context, userID string) (bool, error) {
	t, err := h.store.TOTPByUser(ctx, userID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	return err == nil && t.Confirmed, nil
}

func (h *Handler) getAccountTOTP(w http.ResponseWriter, r *http.Request) error {
	f, err := h.signedIn(w, r, false)
	if err != nil || f == nil {
		return err
	}
	if ok, err := h.stepUp(w, r, f, false); !ok || err != nil {
		return err
	}
	if has, err := h.hasTOTP(r.Context(), f.user.ID); err != nil || has {
		if err != nil {
			return err
		}
		return h.back(w, r, f.s, msgTOTPExists)
	}
	secret, err := h.pendingSecret(r.Context(), f.s)
	if err != nil {
		return err
	}
	p, err := h.accountTOTPPage(f, secret)
	if err != nil {
		return err
	}
	return h.show(w, http.StatusOK, "account-totp", p)
}

func (h *Handler) postAccountTOTP(w http.ResponseWriter, r *http.Request) error {
	f, err := h.accountForm(w, r)
	if err != nil || f == nil {
		return err
	}
	ctx, s, u := r.Context(), f.s, f.user
	if len(s.j.PendingTOTP) == 0 {
		return redirect(w, r, PathAccountTOTP)
	}
	secret, err := h.pendingSecret(ctx, s)
	if err != nil {
		return err
	}
	refuse := func(status int, msg string) error {
		p, err := h.accountTOTPPage(f, secret)
		if err != nil {
			return err
		}
		p.fail("code", msg)
		return h.show(w, status, "account-totp", p)
	}
	step, now, ok, err := h.checkEnrolCode(r, s, u, secret, refuse)
	if !ok || err != nil {
		return err
	}
	before := s.j
	hashes, err := h.firstRecoveryCodes(ctx, f)
	if err != nil {
		return err
	}
	s.j.PendingTOTP, s.j.AccountNotice = nil, msgTOTPAdded
	err = h.commit(ctx, s, func(ctx context.Context) error {
		if err := h.lockUser(ctx, u.ID); err != nil {
			return err
		}
		if has, err := h.hasTOTP(ctx, u.ID); err != nil || has {
			if err == nil {
				err = errAlreadyDone
			}
			return err
		}
		if err := h.store.PutTOTP(ctx, &store.TOTP{UserID: u.ID, Secret: h.box.Seal(secret, purposeTOTP), Confirmed: true, LastStep: step, CreatedAt: now}); err != nil {
			return fmt.Errorf("store TOTP: %w", err)
		}
		if hashes != nil {
			if err := h.store.ReplaceRecoveryCodes(ctx, u.ID, hashes); err != nil {
				return err
			}
		}
		return h.audit(ctx, r, s, event{Name: evTOTPAdd, UserID: u.ID, Username: u.Username})
	})
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

func (h *Handler) postAccountTOTPRemove(w http.ResponseWriter, r *http.Request) error {
	f, err := h.accountForm(w, r)
	if err != nil || f == nil {
		return err
	}
	u := f.user
	f.s.j.AccountNotice = msgTOTPRemoved
	err = h.removeFactor(r.Context(), r, f, func(ctx context.Context) error {
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
func (h *Handler) postAccountRecoveryCodes(w http.ResponseWriter, r *http.Request) error {
	f, err := h.accountForm(w, r)
	if err != nil || f == nil {
		return err
	}
	ctx, s, u := r.Context(), f.s, f.user
	if !f.state.HasSecondFactor {
		return h.showAccount(w, r, f, http.StatusConflict, func(p *accountPage) { p.fail("", msgNeedFactor) })
	}
	codes, hashes := newRecoveryCodes()
	plain, err := json.Marshal(codes)
	if err != nil {
		return err
	}
	s.j.RecoveryCodes = h.box.Seal(plain, purposeRecoveryCodes)
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

// Password: the journey's policy (checkNewPassword); other sessions end.
func (h *Handler) postAccountPassword(w http.ResponseWriter, r *http.Request) error {
	f, err := h.accountForm(w, r)
	if err != nil || f == nil {
		return err
	}
	ctx, s, u := r.Context(), f.s, f.user
	cur := r.PostForm.Get("current_password")
	next := r.PostForm.Get("new_password")
	confirm := r.PostForm.Get("confirm_password")
	var errs page
	if cur == "" {
		errs.fail("current_password", msgEnterCurrent)
	}
	if next == "" {
		errs.fail("new_password", msgEnterNew)
	}
	show := func(status int) error {
		return h.showAccount(w, r, f, status, func(p *accountPage) {
			p.Errors, p.Fields = errs.Errors, errs.Fields
		})
	}
	if len(errs.Errors) > 0 {
		return show(http.StatusBadRequest)
	}
	k := keysFor(r, u.ID)
	if l, err := h.locked(ctx, k); err != nil || l {
		if err != nil {
			return err
		}
		errs.fail("current_password", msgTooManyTries)
		return show(http.StatusTooManyRequests)
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
		errs.fail("current_password", msgCurrentWrong)
		return show(http.StatusUnprocessableEntity)
	}
	h.succeeded(ctx, k)
	if err := checkNewPassword(f.set, u, cur, next, confirm, &errs); err != nil {
		return err
	}
	if len(errs.Errors) > 0 {
		return show(http.StatusUnprocessableEntity)
	}
	hash, err := password.Hash(next)
	if err != nil {
		return fmt.Errorf("hash password: %w", err)
	}
	s.j.AccountNotice = msgPasswordMoved
	var ended int
	err = h.commit(ctx, s, func(ctx context.Context) error {
		if err := h.store.ChangePassword(ctx, u.ID, u.PasswordHash, hash, false); err != nil {
			return err
		}
		// Whoever knew the old password is signed out with it.
		n, err := SignOutEverywhere(ctx, h.store, u.ID, s.raw)
		if err != nil {
			return err
		}
		ended = n
		return h.audit(ctx, r, s, event{Name: evPasswordChange, UserID: u.ID, Username: u.Username,
			Detail: map[string]any{"where": "account", "sessions_ended": n}})
	})
	if errors.Is(err, store.ErrConflict) {
		s.j.AccountNotice = ""
		return &pageError{status: http.StatusConflict, msg: msgPasswordChanged, cause: err}
	}
	if err != nil {
		return err
	}
	detail := ""
	if ended > 0 {
		detail = fmt.Sprintf("Sessions signed out: %d", ended)
	}
	h.notify(r, u, noticePasswordChanged, detail)
	return redirect(w, r, PathAccount)
}

// Sessions.

func validRef(ref string) bool {
	if len(ref) != 64 {
		return false
	}
	_, err := hex.DecodeString(ref)
	return err == nil && strings.ToLower(ref) == ref
}

func (h *Handler) postAccountSignOutSession(w http.ResponseWriter, r *http.Request) error {
	f, err := h.accountForm(w, r)
	if err != nil || f == nil {
		return err
	}
	ctx, s, u := r.Context(), f.s, f.user
	ref := r.PostForm.Get("session")
	if !validRef(ref) {
		return h.showAccount(w, r, f, http.StatusBadRequest, func(p *accountPage) { p.fail("", msgBadSession) })
	}
	if ref == s.ref() {
		return h.postSignOut(w, r)
	}
	err = h.commit(ctx, s, func(ctx context.Context) error {
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

func (h *Handler) postAccountSignOutOthers(w http.ResponseWriter, r *http.Request) error {
	f, err := h.accountForm(w, r)
	if err != nil || f == nil {
		return err
	}
	ctx, s, u := r.Context(), f.s, f.user
	var n int
	err = h.commit(ctx, s, func(ctx context.Context) error {
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
func (h *Handler) postAccountSignOutAll(w http.ResponseWriter, r *http.Request) error {
	f, err := h.accountForm(w, r)
	if err != nil || f == nil {
		return err
	}
	ctx, s, u := r.Context(), f.s, f.user
	var n int
	err = h.store.InTx(ctx, func(ctx context.Context) error {
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
	return redirect(w, r, PathSignIn+"?signed_out=1")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
