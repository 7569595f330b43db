package flows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/lanyard-idp/lanyard/flows/passkey"
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
//
// This file is the page itself; account_reauth.go confirms it is you,
// account_factors.go changes the sign-in methods and the password, and
// account_sessions.go ends sessions.

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

// How many security events the account page shows, from how far back.
const (
	eventsShown    = 20
	eventsLookBack = 90 * 24 * time.Hour
)

const (
	msgConfirmed      = "Thank you. For the next 10 minutes you can change how you sign in."
	msgLastMethod     = "You cannot remove your only way to prove it is you. Add another one first (an authenticator app, a passkey, a security key or a phone with the Lanyard approval app), then remove this one."
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
	// The names form: the full, given and family names.
	FullName, GivenName, FamilyName string
	// Consents: what the officer allowed relying parties on the consent
	// page.
	Consents     []consentView
	Recent       bool
	MFARequired  bool
	HasTOTP      bool
	TOTPAdded    string
	Passkeys     []passkeyView
	Devices      []deviceView // phones paired with the approval app
	RecoveryLeft int
	Methods      int
	Policies     []policyView
	Sessions     []sessionView
	Others       int
	Events       []eventView
	AddPasskey   passkeyUI
	MinLength    int
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
		FullName:    u.Name,
		GivenName:   u.GivenName,
		FamilyName:  u.FamilyName,
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
		if passkey.Synced(c) {
			kind = "Synced passkey"
		}
		p.Passkeys = append(p.Passkeys, passkeyView{ID: b64.EncodeToString(c.ID), Name: c.Name, Kind: kind,
			Added: displayTime(c.CreatedAt), LastUsed: displayTime(c.LastUsedAt)})
		p.Methods++
	}
	if p.Devices, err = h.deviceViews(ctx, u.ID); err != nil {
		return p, err
	}
	p.Methods += len(p.Devices)
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
	if p.Consents, err = h.consentViews(ctx, f); err != nil {
		return p, err
	}
	// Only what the officer did or should know of, newest first: a relying
	// party's logout retries or token refreshes never push those out.
	evs, err := h.store.Audit(ctx, store.AuditFilter{UserID: u.ID, Events: officerEvents,
		Since: now.Add(-eventsLookBack), Limit: eventsShown, Newest: true})
	if err != nil {
		return p, err
	}
	for _, e := range evs {
		where := describeAgent(e.UserAgent)
		if e.ClientAddr != "" {
			where += ", " + e.ClientAddr
		}
		p.Events = append(p.Events, eventView{When: displayTime(e.At), What: describeEvent(e), Where: where})
	}
	return p, nil
}

// officerEvents are the events the account page shows its officer: what
// they did, what was tried on their account, and what an administrator did
// to it — each described by describeEvent. The protocol's own events
// (token.issue, logout.backchannel…) are for the audit trail, not here.
var officerEvents = []store.Event{
	evSigninSuccess, evSigninPassword, evSigninPasskey, evSigninFailure, evLock, store.EventSigninStepUp,
	evMFAEnrol, evMFAChallenge, evRecoveryUse, evPasswordChange, evPolicyAccept, evLogout, evWebAuthnClone,
	evAccountReauth, evPasskeyAdd, evPasskeyRename, evPasskeyRemove, evTOTPAdd, evTOTPRemove, evRecoveryRenew,
	evSignOutSessions, store.EventNamesChange,
	store.EventConsentGrant, store.EventConsentDecline, store.EventConsentWithdraw,
	evApprovalOpen, evApprovalRequest, evApprovalApprove, evApprovalDeny, evApprovalReport, evApprovalGone,
	evDeviceAdd, evDeviceRename, evDeviceRemove,
	store.EventInvite, store.EventInviteResend,
	store.EventUserUnlock, store.EventUserResetMFA, store.EventUserSignOut, store.EventUserResetPassword,
	// Self-service recovery, and guessing it set off.
	store.EventInviteAsk, store.EventResetRequest, store.EventResetOpen, store.EventResetLinkFailed, store.EventResetVoid,
	store.EventResetDone, store.EventFactorLost, evFactorGuessing,
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
		case methodApproval:
			return "approval on your phone"
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
		case methodApproval:
			if str("reason") == string(store.ReasonWrongNumber) {
				return "Failed sign-in: a wrong number on your phone"
			}
			return "Failed sign-in: an answer from a phone refused"
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
	case evApprovalOpen:
		return "A phone opened a pairing link"
	case evApprovalRequest:
		if str("kind") == store.ApprovalPairing {
			return "Pairing link shown for the approval app"
		}
		return "Sign-in request sent to your phone"
	case evApprovalApprove:
		return "Approved on your phone"
	case evApprovalDeny:
		if str("reason") == string(store.ReasonWrongNumbers) {
			return "Refused: the wrong number was entered three times on your phone"
		}
		return "Refused on your phone (“No, it's not me”)"
	case evApprovalReport:
		return "Reported as not you on your phone: signed out everywhere"
	case evApprovalGone:
		return "Your phone no longer receives notifications: " + str("name")
	case evDeviceAdd:
		return "Phone paired: " + str("name")
	case evDeviceRename:
		return "Phone renamed: " + str("name")
	case evDeviceRemove:
		return "Phone removed: " + str("name")
	case store.EventInvite:
		return "Invitation sent"
	case store.EventInviteAsk:
		return "A new onboarding email was asked for"
	case store.EventResetRequest:
		return "A password-reset link was asked for"
	case store.EventResetOpen:
		return "A password-reset link was opened"
	case store.EventResetLinkFailed:
		return "A password-reset link was refused"
	case store.EventResetVoid:
		if str("reason") == string(store.ReasonLinkElsewhere) {
			return "A password reset was stopped: its link was opened in two browsers"
		}
		return "A password-reset link was cancelled"
	case store.EventResetDone:
		return "Password reset with an emailed link"
	case store.EventFactorLost:
		return "Signed in with a recovery code after losing the phone: other sessions signed out"
	case evFactorGuessing:
		return "Second-factor codes refused for a while after too many wrong ones"
	case store.EventInviteResend:
		return "Invitation sent again"
	case store.EventSigninStepUp:
		if c := str("client_id"); c != "" {
			return "Confirmed it was you again with a stronger method (for " + c + ")"
		}
		return "Confirmed it was you again with a stronger method"
	case store.EventNamesChange:
		return "Name changed"
	case store.EventConsentGrant:
		return "Allowed " + str("client_id") + " what it asked for"
	case store.EventConsentDecline:
		return "Declined what " + str("client_id") + " asked for"
	case store.EventConsentWithdraw:
		return "Withdrew the permission of " + str("client_id")
	case store.EventUserUnlock:
		return "An administrator lifted the sign-in lock"
	case store.EventUserResetMFA:
		return "An administrator removed your second factors"
	case store.EventUserSignOut:
		return "An administrator signed you out everywhere"
	case store.EventUserResetPassword:
		return "An administrator reset your password"
	}
	return "Account activity"
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
func (h *Handler) account(w http.ResponseWriter, r *http.Request, f *flow) error {
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
