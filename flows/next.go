package flows

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/lanyard-idp/lanyard/provider/authn"
	"github.com/lanyard-idp/lanyard/provider/store"
)

// The dispatcher: the one place that decides where a browser goes next. The
// router's guard (at) asks it before every step handler, and every step
// returns to it when done (PathNext).

// ACR values the journey asserts (authn.ACRs).
const (
	acrPassword = authn.ACRPassword
	acrMFA      = authn.ACRMFA
	// acrPhishingResistant: a WebAuthn credential, bound to Lanyard's
	// origin, proved the second factor (or both).
	acrPhishingResistant = authn.ACRPhishingResistant
)

// flow is a browser's journey as the dispatcher sees it right now.
type flow struct {
	s       *session    // nil for a browser without a session (the username page)
	user    *store.User // nil until the password is verified
	state   State
	pending []string
	// settled: nothing is pending but what the parked request asks (a
	// step-up, the consent page): the account itself is fully signed in.
	settled bool
	set     *settings
}

// current is the first pending step, or "" when nothing is pending.
func (f *flow) current() string {
	if len(f.pending) == 0 {
		return ""
	}
	return f.pending[0]
}

// errUserGone: the session's user was deleted or disabled mid-way.
var errUserGone = errors.New("user deleted or disabled")

// errInitialExpired: the session's user still has the initial password of
// an invitation (or an admin reset) that has expired since. Nothing of the
// journey goes on — not the change-password step with that password, not
// a passkey enrolled before the expiry — until a new invitation.
var errInitialExpired = &pageError{Status: http.StatusForbidden, Message: msgInviteExpired,
	Cause: errors.New("the initial password has expired")}

// initialExpired: u's password is an initial one whose validity is over.
func (h *Handler) initialExpired(u *store.User) bool {
	return u.PasswordInitial && !u.InviteExpiresAt.IsZero() && !h.now().UTC().Before(u.InviteExpiresAt)
}

// errAlreadyDone rolls back a step that a racing request of the same
// browser has already completed.
var errAlreadyDone = errors.New("step already done")

// flowFor assembles the State of a session from the session and the store.
func (h *Handler) flowFor(ctx context.Context, s *session) (*flow, error) {
	set := h.settings()
	f := &flow{s: s, set: set}
	st := State{
		Identified:       s.j.Username != "",
		PasswordVerified: s.j.PasswordVerified && s.row.UserID != "",
		Resetting:        s.j.Reset != nil && s.row.UserID != "",
	}
	if st.PasswordVerified || st.Resetting {
		u, err := h.liveUser(ctx, s.row.UserID)
		if err != nil {
			return nil, err
		}
		switch {
		case st.Resetting:
			// The link must still be this browser's, and in time.
			if err := h.checkReset(ctx, s, u); err != nil {
				return nil, err
			}
		case h.initialExpired(u):
			return nil, errInitialExpired
		}
		f.user = u
		if err := h.userState(ctx, set, u, &st); err != nil {
			return nil, err
		}
		st.SecondFactorVerified = s.j.FactorVerified
		st.RecoveryCodesToShow = len(s.j.RecoveryCodes) > 0
		st.ReplacingFactor = s.j.ReplaceFactor && s.j.FactorVerified
		st.LostFactorsToOffer = len(s.j.LostFactors) > 0
		if err := h.requestState(ctx, s, u, &st); err != nil {
			return nil, err
		}
	}
	f.state = st
	f.pending = Pending(st, set.order)
	f.settled = len(Pending(st.forRequest(), set.order)) == 0
	return f, nil
}

// liveUser loads a user who may still sign in: errUserGone when the account
// was deleted or disabled.
func (h *Handler) liveUser(ctx context.Context, id string) (*store.User, error) {
	u, err := h.store.UserByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errUserGone
	}
	if err != nil {
		return nil, fmt.Errorf("load user: %w", err)
	}
	if u.State == store.UserDisabled {
		return nil, errUserGone
	}
	return u, nil
}

// userState fills in what the store says about u: their second factors,
// their password, the policy versions they accepted and the current ones.
func (h *Handler) userState(ctx context.Context, set *settings, u *store.User, st *State) error {
	var err error
	if st.HasSecondFactor, err = h.hasSecondFactor(ctx, u.ID); err != nil {
		return err
	}
	st.PasswordInitial = u.PasswordInitial
	acc, err := h.store.Acceptances(ctx, u.ID)
	if err != nil {
		return fmt.Errorf("load acceptances: %w", err)
	}
	st.Accepted = map[string]string{}
	for _, a := range acc {
		st.Accepted[a.Document] = a.Version
	}
	st.Current = map[string]string{}
	for id, d := range set.docs {
		st.Current[id] = d.Version
	}
	return nil
}

// requestState fills in what the parked request asks of the sign-in: the
// step-up it needs and whether its consent page is due (asked for with
// prompt=consent, or required by the client and not covered by what the
// officer allowed it before).
func (h *Handler) requestState(ctx context.Context, s *session, u *store.User, st *State) error {
	_, st.ACR = s.j.amr()
	st.StepUp = s.j.StepUp
	if st.StepUp != "" {
		creds, err := h.store.WebAuthnCredentials(ctx, u.ID)
		if err != nil {
			return fmt.Errorf("load passkeys: %w", err)
		}
		st.HasPasskey = len(creds) > 0
	}
	c := s.j.Consent
	switch {
	case c == nil:
	case c.Always:
		st.ConsentDue = true
	default:
		remembered, err := h.store.ConsentOf(ctx, u.ID, s.j.ClientID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("load consent: %w", err)
		}
		st.ConsentDue = !remembered.Covers(c.Scopes, c.Claims)
	}
	return nil
}

// StepPending names the first journey step the officer userID must complete
// at a sign-in before any token may be issued for them — a new version of a
// policy document, a second factor or a new password to set — or "" when
// there is none (authn.Journey). The proofs of a sign-in are taken as given
// (the tokens came from one); an account that can no longer sign in at all
// (deleted, disabled, or its initial password expired) answers StepPassword.
func (h *Handler) StepPending(ctx context.Context, userID string) (string, error) {
	set := h.settings()
	u, err := h.liveUser(ctx, userID)
	if errors.Is(err, errUserGone) {
		return StepPassword, nil
	}
	if err != nil {
		return "", err
	}
	if h.initialExpired(u) {
		return StepPassword, nil
	}
	st := State{Identified: true, PasswordVerified: true, SecondFactorVerified: true}
	if err := h.userState(ctx, set, u, &st); err != nil {
		return "", err
	}
	if p := Pending(st, set.order); len(p) > 0 {
		return p[0], nil
	}
	return "", nil
}

// hasSecondFactor: a confirmed authenticator app, a passkey or a phone
// paired with the approval app.
func (h *Handler) hasSecondFactor(ctx context.Context, userID string) (bool, error) {
	t, err := h.store.TOTPByUser(ctx, userID)
	switch {
	case err == nil && t.Confirmed:
		return true, nil
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return false, fmt.Errorf("load TOTP: %w", err)
	}
	creds, err := h.store.WebAuthnCredentials(ctx, userID)
	if err != nil {
		return false, fmt.Errorf("load passkeys: %w", err)
	}
	if len(creds) > 0 {
		return true, nil
	}
	devices, err := h.store.ApprovalDevices(ctx, userID)
	if err != nil {
		return false, fmt.Errorf("load approval devices: %w", err)
	}
	return len(devices) > 0, nil
}

// flowOf loads the browser's flow: nil when the browser has no live
// session. A session whose user has been deleted or disabled meanwhile is
// ended, and gone is set.
func (h *Handler) flowOf(w http.ResponseWriter, r *http.Request) (f *flow, gone bool, err error) {
	s, err := h.load(r)
	if err != nil || s == nil {
		return nil, false, err
	}
	f, err = h.flowFor(r.Context(), s)
	switch {
	case errors.Is(err, errUserGone):
		h.end(w, r, s)
		return nil, true, nil
	case errors.Is(err, errInitialExpired), errors.Is(err, errResetOver):
		// Said once, then the browser starts over.
		h.end(w, r, s)
	}
	return f, false, err
}

// whereFor is where the browser belongs when it asks for step: "" when that
// is its current step (or a sign-in step before it), else the current
// step's page, or the dispatcher when nothing is pending.
func (f *flow) whereFor(step string) string {
	cur := f.current()
	switch {
	case cur == step || earlierSignIn(step, cur):
		return ""
	case cur == "":
		return PathNext
	}
	return stepPath(cur)
}

// progress is "Step N of M" for an onboarding step: steps done in this
// sign-in, plus the ones still pending.
func (f *flow) progress() (n, m int) {
	if !counts(f.current()) {
		return 0, 0
	}
	left := 0
	for _, p := range f.pending {
		if counts(p) {
			left++
		}
	}
	return len(f.s.j.Done) + 1, len(f.s.j.Done) + left
}

// next is the dispatcher (GET /signin/next): to the first pending step, or,
// when nothing is pending, finish the sign-in and resume.
func (h *Handler) next(w http.ResponseWriter, r *http.Request) error {
	f, _, err := h.flowOf(w, r)
	if err != nil {
		return err
	}
	if f == nil {
		return redirect(w, r, PathSignIn)
	}
	cur := f.current()
	if cur != "" && f.settled && f.s.row.State != stateAuthenticated {
		// Only what the parked request asks is left (its consent page):
		// the account is signed in from now on, whatever the answer.
		clientID := f.s.j.ClientID
		if err := h.commit(r.Context(), f.s, func(ctx context.Context) error {
			return h.authenticated(ctx, r, f, clientID)
		}); err != nil {
			return err
		}
		h.remember(w, r, f.user)
	}
	if cur != "" {
		return redirect(w, r, stepPath(cur))
	}
	return h.finish(w, r, f)
}

// finish marks the session authenticated (once; or records a step-up of a
// signed-in one), makes the browser known to the account, and resumes the
// parked request.
func (h *Handler) finish(w http.ResponseWriter, r *http.Request, f *flow) error {
	s := f.s
	resume, notice := s.j.ResumeURL, s.j.Notice
	clientID := s.j.ClientID
	s.j.ResumeURL, s.j.Notice, s.j.Done, s.j.ForceLogin = "", "", nil, false
	s.j.Consent, s.j.StepUp = nil, ""
	first := s.row.State != stateAuthenticated
	err := h.commit(r.Context(), s, func(ctx context.Context) error {
		if !first {
			return h.steppedUp(ctx, r, f, clientID)
		}
		return h.authenticated(ctx, r, f, clientID)
	})
	if err != nil {
		return err
	}
	if first {
		h.remember(w, r, f.user)
	}
	if resume != "" && !h.underIssuer(resume) {
		h.log.Warn("dropping a resume URL outside the issuer")
		resume = ""
	}
	if notice != "" {
		return h.renderSignedIn(w, r, f, notice, resume)
	}
	if resume != "" {
		return redirect(w, r, resume)
	}
	return redirect(w, r, PathAccount)
}

// authenticated marks the session signed in with what this sign-in proved
// (once: racing requests of one browser find it done), activates an
// invited account, forgets the failures the sign-in was counted against
// (complete) and records the sign-in, in ctx's transaction. Once that
// committed, the caller makes the browser known to the account (remember).
func (h *Handler) authenticated(ctx context.Context, r *http.Request, f *flow, clientID string) error {
	s, now := f.s, h.now().UTC()
	if row, err := h.store.SessionByID(ctx, s.raw, now); err == nil && row.State == stateAuthenticated {
		s.row.State, s.row.AuthTime, s.row.AMR, s.row.ACR = row.State, row.AuthTime, row.AMR, row.ACR
		return nil
	}
	u, err := h.store.UserByID(ctx, f.user.ID)
	if err != nil {
		return fmt.Errorf("load user: %w", err)
	}
	if u.State == store.UserInvited {
		u.State = store.UserActive
	}
	u.LastSignInAt = now
	if err := h.store.UpdateUser(ctx, u); err != nil {
		return fmt.Errorf("update user: %w", err)
	}
	authAt := s.j.PasswordAt
	amr, acr := s.j.amr()
	if s.j.FactorVerified && s.j.FactorAt.After(authAt) {
		authAt = s.j.FactorAt
	}
	s.row.State, s.row.AuthTime, s.row.AMR, s.row.ACR = stateAuthenticated, authAt.UTC(), amr, acr
	if err := h.complete(ctx, r, u); err != nil {
		return err
	}
	detail := map[string]any{"amr": amr}
	if clientID != "" {
		detail["client_id"] = clientID
	}
	return h.audit(ctx, r, s, event{Name: evSigninSuccess, UserID: u.ID, Username: u.Username, Detail: detail})
}

// steppedUp records a step-up on a signed-in session: when this sign-in
// has now proved more than the session states (a passkey after an
// authenticator code, for a request that asked for urn:lanyard:acr:phr),
// the session states it from now on, with the time of that proof.
func (h *Handler) steppedUp(ctx context.Context, r *http.Request, f *flow, clientID string) error {
	s := f.s
	amr, acr := s.j.amr()
	if authn.ACRLevel(acr) <= authn.ACRLevel(s.row.ACR) {
		return nil
	}
	// Racing requests of one browser record it once.
	if row, err := h.store.SessionByID(ctx, s.raw, h.now().UTC()); err == nil && authn.ACRLevel(row.ACR) >= authn.ACRLevel(acr) {
		s.row.AuthTime, s.row.AMR, s.row.ACR = row.AuthTime, row.AMR, row.ACR
		return nil
	}
	s.row.AMR, s.row.ACR = amr, acr
	if s.j.FactorAt.After(s.row.AuthTime) {
		s.row.AuthTime = s.j.FactorAt.UTC()
	}
	detail := map[string]any{"acr": acr, "amr": amr}
	if clientID != "" {
		detail["client_id"] = clientID
	}
	return h.audit(ctx, r, s, event{Name: store.EventSigninStepUp, UserID: f.user.ID, Username: f.user.Username, Detail: detail})
}

// amr and acr are what this sign-in proved (RFC 8176 values): the
// password, then an authenticator code ("otp"), a passkey ("hwk"/"swk",
// with "user" when it verified the user) or the approval app's
// device-bound software key ("swk"); a passkey with user verification
// alone stands for both factors.
func (j *journey) amr() ([]string, string) {
	switch {
	case j.FactorVerified && j.FactorMethod == methodWebAuthn && j.Passwordless:
		return append(slices.Clone(j.PasskeyAMR), "mfa"), acrPhishingResistant
	case j.FactorVerified && j.FactorMethod == methodWebAuthn:
		return append(append([]string{"pwd"}, j.PasskeyAMR...), "mfa"), acrPhishingResistant
	case j.FactorVerified && j.FactorMethod == methodApproval:
		// Not phishing-resistant: a relaying proxy can show the number.
		return []string{"pwd", "swk", "mfa"}, acrMFA
	case j.FactorVerified:
		return []string{"pwd", "otp", "mfa"}, acrMFA
	}
	return []string{"pwd"}, acrPassword
}

// underIssuer accepts only absolute URLs under the configured issuer, so a
// session can never be made to redirect elsewhere.
func (h *Handler) underIssuer(raw string) bool {
	iss := h.settings().issuer
	u, err := url.Parse(raw)
	if err != nil || u.User != nil || u.Fragment != "" || u.Opaque != "" {
		return false
	}
	if u.Scheme != iss.Scheme || !strings.EqualFold(u.Host, iss.Host) {
		return false
	}
	prefix := strings.TrimSuffix(iss.Path, "/") + "/"
	return u.Path == strings.TrimSuffix(iss.Path, "/") || strings.HasPrefix(u.Path, prefix) && !strings.Contains(u.Path, "/../")
}

// Browser reports what the browser's session proves (authn.Journey). A
// session whose user now has a step pending (a new policy version, say) is
// in progress, not signed in, so the provider hands it back to the journey.
func (h *Handler) Browser(r *http.Request) (authn.Browser, error) {
	s, err := h.load(r)
	if err != nil || s == nil {
		return authn.Browser{}, err
	}
	b := authn.Browser{SessionID: s.row.SID}
	if (!s.j.PasswordVerified && s.j.Reset == nil) || s.row.UserID == "" {
		return b, nil
	}
	f, err := h.flowFor(r.Context(), s)
	if errors.Is(err, errUserGone) || errors.Is(err, errInitialExpired) || errors.Is(err, errResetOver) {
		h.dropSession(r.Context(), s, "user gone, initial password expired or reset over")
		return authn.Browser{}, nil
	}
	if err != nil {
		return authn.Browser{}, err
	}
	b.UserID = s.row.UserID
	// What a parked request still asks (a step-up, its consent page) does
	// not hold up the others: the provider checks each request's own.
	if s.row.State == stateAuthenticated && f.settled {
		b.SignedIn = true
		b.AuthTime, b.AMR, b.ACR = s.row.AuthTime, s.row.AMR, s.row.ACR
		return b, nil
	}
	b.InProgress = true
	return b, nil
}

// SignIn parks the provider's request in the browser's session and sends
// the browser into the journey (authn.Journey). A browser already part-way
// keeps its progress and resumes the newer request at the end.
func (h *Handler) SignIn(w http.ResponseWriter, r *http.Request, req authn.SignInRequest) {
	w.Header().Set("Cache-Control", "no-store")
	if err := h.signIn(w, r, req); err != nil {
		h.renderError(w, r, err)
	}
}

func (h *Handler) signIn(w http.ResponseWriter, r *http.Request, req authn.SignInRequest) error {
	if !h.underIssuer(req.ResumeURL) {
		return &pageError{Status: http.StatusBadRequest, Message: "This sign-in request cannot be continued. Go back to the application and try again.",
			Cause: errors.New("resume URL outside the issuer")}
	}
	s, err := h.load(r)
	if err != nil {
		return err
	}
	// A browser without a session gets one stored once, with the request
	// parked in it.
	fresh := s == nil
	if fresh {
		s = h.newSession(r)
	}
	s.j.ResumeURL = req.ResumeURL
	s.j.ClientID = truncate(req.ClientID, 128)
	s.j.ClientName = truncate(req.ClientName, 128)
	s.j.RequestedAt = req.RequestedAt.UTC()
	s.j.Consent = newConsentAsk(req)
	s.j.StepUp = ""
	for _, v := range req.ACRValues {
		if authn.ACRLevel(v) > 0 {
			s.j.StepUp = v // the weakest: it is enough
			break
		}
	}
	if req.LoginHint != "" && !s.j.PasswordVerified {
		if u, err := CanonicalUsername(req.LoginHint); err == nil {
			s.j.Hint = u
		}
	}
	if req.ForceLogin && s.j.PasswordVerified {
		s.signInAgain()
	}
	if fresh {
		err = h.insert(r.Context(), w, r, s)
	} else {
		err = h.save(r.Context(), s)
	}
	if err != nil {
		return err
	}
	if s.j.PasswordVerified || s.j.Reset != nil {
		return redirect(w, r, PathNext)
	}
	return redirect(w, r, PathSignIn)
}

// SignOut ends the browser's session server-side, revokes the codes and
// tokens issued to it, and clears the cookie (authn.Journey, used by
// RP-initiated logout). It returns the user signed out ("" for none) and
// writes no audit event: its caller does, once — the provider's, naming the
// relying party, or Lanyard's own sign-out button (postSignOut).
func (h *Handler) SignOut(w http.ResponseWriter, r *http.Request) (string, error) {
	s, err := h.load(r)
	h.cookies.clear(w)
	if err != nil || s == nil {
		return "", err
	}
	// The codes and tokens issued to this session end with it. The row
	// goes first: an authorization racing the sign-out then either recorded
	// its code before (and is revoked here) or finds the session gone.
	err = h.store.InTx(r.Context(), func(ctx context.Context) error {
		if err := h.store.DeleteSession(ctx, s.raw); err != nil {
			return err
		}
		return h.store.RevokeOAuthBySession(ctx, s.row.SID)
	})
	if err != nil {
		return "", fmt.Errorf("end session: %w", err)
	}
	return s.row.UserID, nil
}

// end forgets a session whose user is gone.
func (h *Handler) end(w http.ResponseWriter, r *http.Request, s *session) {
	h.dropSession(r.Context(), s, "user gone")
	h.cookies.clear(w)
}

// postSignOut is the sign-out button of Lanyard's own pages.
func (h *Handler) postSignOut(w http.ResponseWriter, r *http.Request) error {
	var frames []string
	s, err := h.load(r)
	if err == nil && s != nil {
		frames = h.frontChannel(r.Context(), s.row.SID)
	}
	user, err := h.SignOut(w, r)
	if err != nil {
		return err
	}
	if user != "" && s != nil {
		h.auditLog(r.Context(), r, s, event{Name: evLogout, UserID: user, Username: s.j.Username})
	}
	return h.signedOut(w, r, frames)
}

// frontChannel lists the front-channel logout addresses of the relying
// parties that received tokens in the session whose stable key is sid
// (Front-Channel Logout 1.0), read before the session ends. The relying parties with a
// back-channel URI are told that way, by the store, whatever this finds.
func (h *Handler) frontChannel(ctx context.Context, sid string) []string {
	recs, err := h.store.SessionClients(ctx, sid)
	if err != nil {
		h.log.Warn("sign-out: cannot list the session's relying parties", "err", err)
		return nil
	}
	set := h.settings()
	var frames []string
	for _, rec := range recs {
		for _, c := range set.cfg.Clients {
			if c.ID != rec.ClientID {
				continue
			}
			if f, _, ok := c.FrontchannelLogoutFrame(set.cfg.Issuer, rec.SID); ok && !slices.Contains(frames, f) {
				frames = append(frames, f)
			}
		}
	}
	return frames
}

// signedOut sends a browser that has just signed out to the signed-out
// sign-in page; front-channel logout addresses to frame there travel in a
// fresh session of their own (the old one is gone).
func (h *Handler) signedOut(w http.ResponseWriter, r *http.Request, frames []string) error {
	if len(frames) > 0 {
		s, err := h.create(r.Context(), w, r)
		if err != nil {
			return err
		}
		s.j.FrontChannel = frames
		if err := h.save(r.Context(), s); err != nil {
			return err
		}
	}
	return redirect(w, r, PathSignIn+"?signed_out=1")
}
