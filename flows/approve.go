package flows

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lanyard-idp/lanyard/flows/approval"
	"github.com/lanyard-idp/lanyard/flows/otp"
	"github.com/lanyard-idp/lanyard/provider/store"
)

// The Lanyard approval app, the computer's side: the guide's step 3.5 —
// "Verify the number shown on your browser by entering it into the app and
// selecting Yes."
//
// A browser waits for the phone in four places (approvalUse): pairing a
// phone at mfa-enrol and on the account page, approving a sign-in at
// mfa-challenge, and confirming it is you on the account page. Each has
// the same four routes: POST base starts (a pairing shows a one-time link
// and its QR code; a request is pushed to the officer's phones), GET
// base/status tells the waiting page's script what the phone did (JSON;
// the number only to this browser, and for a pairing only once a phone has
// opened the link), POST base/finish takes the approval, and the pairing
// pages are GET base. The request is bound to the browser by its id in the
// server-side session: only that browser sees its number and can finish it.
//
// Finishing is the journey's own transition for the purpose — a paired
// phone is stored as a first factor by storeFactor with the recovery codes
// of enrolled, exactly like an authenticator app or a passkey; a sign-in
// records factorVerified under a new session id — so the approval app adds
// a factor, not a second way of doing the journey. The phone's side (the
// app and its API) is approve_phone.go; pushes approve_push.go; the
// account page's list of phones approve_account.go; the protocol itself
// (numbers, tokens, signatures, Web Push) the approval subpackage.

// methodApproval is journey.FactorMethod (and the audit's "method") for the
// approval app.
const methodApproval = "approval"

// Routes of the computer's side (status and finish are base+suffix).
const (
	PathEnrolApprove     = "/signin/enrol/approve"
	PathChallengeApprove = "/signin/mfa/approve"
	PathAccountApprove   = "/account/approve"
	PathReauthApprove    = "/account/reauth/approve"

	approveStatus = "/status"
	approveFinish = "/finish"
)

const (
	msgApprovalNone     = "You have no phone paired with the Lanyard approval app. Use a code instead."
	msgApprovalBusy     = "Another request is waiting on your phone. Answer it or wait a minute, then try again."
	msgApprovalHourly   = "Too many requests were sent to your phone in the last hour. Use a code instead, or try again later."
	msgApprovalNotYet   = "The request has not been approved on your phone yet. Enter the number on your phone and choose Yes, then try again."
	msgApprovalDenied   = "The request was refused on your phone. If that was not you, choose “Report it” on your phone."
	msgApprovalWrong    = "The wrong number was entered on the phone three times, so the request was refused."
	msgApprovalExpired  = "The request expired before it was approved. Send a new one."
	msgPairingExpired   = "The pairing link has expired. Show a new one."
	msgPairingDenied    = "The pairing was refused on the phone. Show a new link to try again."
	msgPairingNotYet    = "The phone has not been paired yet. Open the link on your phone, enter the number shown here and choose Yes, then try again."
	msgApprovalStart    = "A request is sent to the Lanyard approval app on your phone, with a number to type there."
	msgApprovalNumber   = "Open the Lanyard approval app on your phone, enter %s and choose Yes."
	msgApprovalApproved = "Approved on your phone. Continuing…"
	msgPairingStart     = "Show a one-time pairing link for your phone."
	msgPairingScan      = "Scan the QR code with your phone's camera, or open the link on your phone."
	msgPairingNumber    = "On your phone, enter %s and choose Yes."
)

// approvalWait is the request a browser waits for, kept in its journey.
type approvalWait struct {
	ID      string `json:"id"`
	Purpose string `json:"purpose"`
	// Token is a pairing link's token, sealed, so that a reload shows the
	// same link; only its hash is in the store.
	Token []byte `json:"token,omitempty"`
}

// approvalUse is a place where a browser waits for the phone.
type approvalUse struct {
	purpose string
	kind    string // store.ApprovalPairing | ApprovalSignIn | ApprovalReauth
	base    string
}

var (
	useEnrol   = approvalUse{"enrol", store.ApprovalPairing, PathEnrolApprove}
	useAccount = approvalUse{"account", store.ApprovalPairing, PathAccountApprove}
	useSignIn  = approvalUse{"signin", store.ApprovalSignIn, PathChallengeApprove}
	useReauth  = approvalUse{"reauth", store.ApprovalReauth, PathReauthApprove}
)

func (u approvalUse) pairing() bool { return u.kind == store.ApprovalPairing }

// approvalView is what a page (and the status JSON) shows of the request a
// browser waits for.
type approvalView struct {
	// Available: the officer can use the app here (a paired phone, or
	// pairing offered).
	Available bool `json:"-"`
	Pairing   bool `json:"-"`
	// State: none (nothing asked yet), waiting (a pairing link not opened
	// yet), number (the phone waits for the number), approved, denied,
	// expired; refused (a start the account may not make now).
	State   string `json:"state"`
	Number  string `json:"number,omitempty"`
	Message string `json:"message,omitempty"`
	// A pairing's link and its QR code.
	Link string       `json:"-"`
	QR   template.URL `json:"-"`
	// The routes, and the data-step of the finish form on a journey step's
	// own page.
	Start    string `json:"-"`
	Status   string `json:"-"`
	Finish   string `json:"-"`
	DataStep string `json:"-"`
}

// waiting returns the request the session waits for at use, or nil.
func (h *Handler) waiting(ctx context.Context, s *session, use approvalUse) (*store.ApprovalRequest, error) {
	a := s.j.Approval
	if a == nil || a.Purpose != use.purpose {
		return nil, nil
	}
	req, err := h.store.ApprovalRequestByID(ctx, a.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if req.UserID != s.row.UserID || req.Kind != use.kind {
		return nil, nil
	}
	return req, nil
}

// view describes req (nil: none yet) for the waiting browser.
func (h *Handler) view(s *session, use approvalUse, req *store.ApprovalRequest) approvalView {
	v := approvalView{Available: true, Pairing: use.pairing(), State: "none", Start: use.base, Status: use.base + approveStatus, Finish: use.base + approveFinish}
	if req == nil {
		v.Message = msgApprovalStart
		if use.pairing() {
			v.Message = msgPairingStart
		}
		return v
	}
	now := h.now().UTC()
	number := strconv.Itoa(req.Number)
	switch {
	case req.State == store.ApprovalApproved:
		v.State, v.Number, v.Message = "approved", number, msgApprovalApproved
	case req.State == store.ApprovalDenied:
		v.State, v.Message = "denied", msgApprovalDenied
		switch {
		case use.pairing():
			v.Message = msgPairingDenied
		case req.Reason == string(store.ReasonWrongNumbers):
			v.Message = msgApprovalWrong
		}
	case !req.Live(now):
		v.State, v.Message = "expired", msgApprovalExpired
		if use.pairing() {
			v.Message = msgPairingExpired
		}
	case use.pairing() && req.ClaimedAt.IsZero():
		v.State, v.Message = "waiting", msgPairingScan
	default:
		v.State, v.Number, v.Message = "number", number, fmt.Sprintf(msgApprovalNumber, number)
		if use.pairing() {
			v.Message = fmt.Sprintf(msgPairingNumber, number)
		}
	}
	if use.pairing() && v.State != "expired" && s.j.Approval != nil {
		if token, err := h.box.Open(s.j.Approval.Token, purposePairingToken); err == nil {
			v.Link = strings.TrimSuffix(h.settings().issuer.String(), "/") + PathApprove + "#pair=" + string(token)
			if qr, err := otp.QRDataURL(v.Link); err == nil {
				v.QR = template.URL(qr)
			}
		}
	}
	return v
}

// approvalOffer is the view of the mfa-challenge page or the confirm page:
// not Available unless the officer has a paired phone.
func (h *Handler) approvalOffer(ctx context.Context, f *flow, use approvalUse) (approvalView, error) {
	devices, err := h.store.ApprovalDevices(ctx, f.user.ID)
	if err != nil || len(devices) == 0 {
		return approvalView{}, err
	}
	req, err := h.waiting(ctx, f.s, use)
	if err != nil {
		return approvalView{}, err
	}
	return h.view(f.s, use, req), nil
}

// getApprovalStatus answers the waiting page's script.
func (h *Handler) getApprovalStatus(use approvalUse) flowHandler {
	return func(w http.ResponseWriter, r *http.Request, f *flow) error {
		req, err := h.waiting(r.Context(), f.s, use)
		if err != nil {
			return err
		}
		if req != nil && req.State == store.ApprovalPending && !req.Live(h.now().UTC()) {
			// Expired: let the account have another.
			if err := h.store.ExpireApprovalRequest(r.Context(), req.ID, h.now().UTC()); err != nil {
				return err
			}
		}
		return writeJSON(w, http.StatusOK, h.view(f.s, use, req))
	}
}

// wantsJSON: the waiting page's script asked (the form's own POST gets a
// page).
func wantsJSON(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "application/json")
}

// refusal of a start: 4xx with a sentence.
type approvalRefusal struct {
	status int
	msg    string
}

// startRequest sends a sign-in or confirm request to the officer's phones
// (or returns the live one this browser already waits for): at most one
// waiting per account, at most the hourly limit per account, none while the
// account is locked.
func (h *Handler) startRequest(r *http.Request, f *flow, use approvalUse) (*store.ApprovalRequest, *approvalRefusal, error) {
	ctx, s, u := r.Context(), f.s, f.user
	set := h.settings()
	now := h.now().UTC()
	old, err := h.waiting(ctx, s, use)
	if err != nil {
		return nil, nil, err
	}
	if old != nil && old.Live(now) {
		return old, nil, nil
	}
	devices, err := h.store.ApprovalDevices(ctx, u.ID)
	if err != nil {
		return nil, nil, err
	}
	if len(devices) == 0 {
		return nil, &approvalRefusal{http.StatusConflict, msgApprovalNone}, nil
	}
	if l, err := h.locked(ctx, h.factorKeys(r, u)); err != nil || l {
		return nil, &approvalRefusal{http.StatusTooManyRequests, msgTooManyTries}, err
	}
	if n, err := h.store.CountApprovalRequests(ctx, u.ID, now.Add(-time.Hour)); err != nil || n >= set.cfg.Approval.HourlyLimit {
		return nil, &approvalRefusal{http.StatusTooManyRequests, msgApprovalHourly}, err
	}
	prev := 0
	if old != nil {
		prev = old.Number
	}
	app := s.j.ClientName
	if use == useReauth || app == "" {
		app = set.cfg.Journey.DisplayName + " account"
	}
	req := &store.ApprovalRequest{ID: approval.NewID(), UserID: u.ID, Kind: use.kind,
		Number: approval.NewNumber(prev), Challenge: approval.NewChallenge(),
		Application: truncate(app, 128), Browser: describeAgent(r.UserAgent()), ClientAddr: clientAddr(r),
		CreatedAt: now, ExpiresAt: now.Add(set.cfg.Approval.RequestTimeout.D())}
	s.j.Approval = &approvalWait{ID: req.ID, Purpose: use.purpose}
	pushed := 0
	for _, d := range devices {
		if d.Push.Endpoint != "" {
			pushed++
		}
	}
	err = h.commit(ctx, s, func(ctx context.Context) error {
		if old != nil {
			if err := h.store.CancelApprovalRequest(ctx, old.ID); err != nil {
				return err
			}
		}
		if err := h.store.CreateApprovalRequest(ctx, req); err != nil {
			return err
		}
		return h.audit(ctx, r, s, event{Name: evApprovalRequest, UserID: u.ID, Username: u.Username,
			Detail: map[string]any{"kind": req.Kind, "devices": len(devices), "pushed": pushed}})
	})
	if errors.Is(err, store.ErrConflict) {
		s.j.Approval = nil
		return nil, &approvalRefusal{http.StatusConflict, msgApprovalBusy}, nil
	}
	if err != nil {
		return nil, nil, err
	}
	h.wake(r, u, devices, req)
	return req, nil, nil
}

// startPairing shows a new one-time pairing link (withdrawing this
// browser's earlier one), valid for approval.pairing_timeout.
func (h *Handler) startPairing(r *http.Request, f *flow, use approvalUse) (*approvalRefusal, error) {
	ctx, s, u := r.Context(), f.s, f.user
	set := h.settings()
	now := h.now().UTC()
	old, err := h.waiting(ctx, s, use)
	if err != nil {
		return nil, err
	}
	if n, err := h.store.CountApprovalRequests(ctx, u.ID, now.Add(-time.Hour)); err != nil || n >= set.cfg.Approval.HourlyLimit {
		return &approvalRefusal{http.StatusTooManyRequests, msgApprovalHourly}, err
	}
	token := approval.NewToken()
	req := &store.ApprovalRequest{ID: approval.NewID(), UserID: u.ID, Kind: store.ApprovalPairing,
		Number: approval.NewNumber(0), Challenge: approval.NewChallenge(), TokenHash: approval.HashToken(token),
		Application: set.cfg.Journey.DisplayName, Browser: describeAgent(r.UserAgent()), ClientAddr: clientAddr(r),
		CreatedAt: now, ExpiresAt: now.Add(set.cfg.Approval.PairingTimeout.D())}
	s.j.Approval = &approvalWait{ID: req.ID, Purpose: use.purpose, Token: h.box.Seal([]byte(token), purposePairingToken)}
	return nil, h.commit(ctx, s, func(ctx context.Context) error {
		if old != nil {
			if err := h.store.CancelApprovalRequest(ctx, old.ID); err != nil {
				return err
			}
		}
		if err := h.store.CreateApprovalRequest(ctx, req); err != nil {
			return err
		}
		return h.audit(ctx, r, s, event{Name: evApprovalRequest, UserID: u.ID, Username: u.Username,
			Detail: map[string]any{"kind": req.Kind}})
	})
}

// The pairing pages (mfa-enrol and the account page).

type approvePairPage struct {
	page
	View approvalView
	// Back leads to the other ways (the enrolment page, the account page).
	Back, BackText string
}

func (h *Handler) showPairing(w http.ResponseWriter, r *http.Request, f *flow, use approvalUse, status int, msg string) error {
	req, err := h.waiting(r.Context(), f.s, use)
	if err != nil {
		return err
	}
	const title = "Pair the Lanyard approval app"
	p := approvePairPage{View: h.view(f.s, use, req)}
	if use == useEnrol {
		p.page = h.page(f, StepMFAEnrol, title)
		p.View.DataStep = StepMFAEnrol
		p.Back, p.BackText = PathMFAEnrol, "Use an authenticator app or a passkey instead"
	} else {
		p.page = h.page(nil, "", title)
		p.SignedIn = true
		p.Back, p.BackText = PathAccount, "Back to your account"
	}
	p.Action = p.View.Finish
	if msg != "" {
		p.fail("", msg)
	}
	return h.show(w, status, "approve-pair", p)
}

func (h *Handler) getPairing(use approvalUse) flowHandler {
	return func(w http.ResponseWriter, r *http.Request, f *flow) error {
		return h.showPairing(w, r, f, use, http.StatusOK, "")
	}
}

func (h *Handler) postPairingStart(use approvalUse) flowHandler {
	return func(w http.ResponseWriter, r *http.Request, f *flow) error {
		rf, err := h.startPairing(r, f, use)
		if err != nil {
			return err
		}
		if rf != nil {
			return h.showPairing(w, r, f, use, rf.status, rf.msg)
		}
		return redirect(w, r, use.base)
	}
}

// approvedPairing returns the approved pairing this browser waits for, or
// nil when it has answered the request itself (the page again, saying what
// is missing).
func (h *Handler) approvedPairing(w http.ResponseWriter, r *http.Request, f *flow, use approvalUse) (*store.ApprovalRequest, error) {
	req, err := h.waiting(r.Context(), f.s, use)
	if err != nil {
		return nil, err
	}
	if req == nil || req.State != store.ApprovalApproved {
		v := h.view(f.s, use, req)
		msg := msgPairingNotYet
		if v.State == "denied" || v.State == "expired" {
			msg = v.Message
		}
		return nil, h.showPairing(w, r, f, use, http.StatusUnprocessableEntity, msg)
	}
	return req, nil
}

// pairedDevice is the device an approved pairing stores.
func pairedDevice(req *store.ApprovalRequest, now time.Time) *store.ApprovalDevice {
	name := req.DeviceName
	if name == "" {
		name = "Phone"
	}
	return &store.ApprovalDevice{ID: req.DeviceID, UserID: req.UserID, Name: name, PublicKey: req.PublicKey,
		Push: req.Push, CreatedAt: now, LastUsedAt: now}
}

// postEnrolApproveFinish completes mfa-enrol with the approved pairing:
// like a confirmed authenticator code, the paired phone is the first
// factor and brings fresh recovery codes.
func (h *Handler) postEnrolApproveFinish(w http.ResponseWriter, r *http.Request, f *flow) error {
	req, err := h.approvedPairing(w, r, f, useEnrol)
	if err != nil || req == nil {
		return err
	}
	s, u := f.s, f.user
	now := h.now().UTC()
	dev := pairedDevice(req, now)
	hashes, err := h.enrolled(s, methodApproval, now, nil)
	if err != nil {
		return err
	}
	s.j.Approval = nil
	err = h.commitRotated(w, r, s, func(ctx context.Context) error {
		if err := h.store.UseApproval(ctx, req.ID); err != nil {
			return err
		}
		return h.storeFactor(r, f, newFactor{device: dev}, hashes,
			event{Name: evMFAEnrol, UserID: u.ID, Username: u.Username, Detail: map[string]any{"method": methodApproval, "name": dev.Name}})(ctx)
	})
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		// A concurrent request of this browser finished first.
		return redirect(w, r, PathNext)
	}
	if err != nil {
		return err
	}
	h.notifyReplaced(r, f, "Phone: "+dev.Name)
	return redirect(w, r, PathNext)
}

// Sign-in (mfa-challenge) and confirm-it-is-you.

// postRequestStart sends a request to the phone: the form's POST (back to
// the page, now showing the number) or the page's script (the status JSON).
func (h *Handler) postRequestStart(use approvalUse, page func(w http.ResponseWriter, r *http.Request, f *flow, status int, msg string) error, back string) flowHandler {
	return func(w http.ResponseWriter, r *http.Request, f *flow) error {
		req, rf, err := h.startRequest(r, f, use)
		if err != nil {
			return err
		}
		if wantsJSON(r) {
			if rf != nil {
				return writeJSON(w, rf.status, approvalView{State: "refused", Message: rf.msg})
			}
			return writeJSON(w, http.StatusOK, h.view(f.s, use, req))
		}
		if rf != nil {
			return page(w, r, f, rf.status, rf.msg)
		}
		return redirect(w, r, back)
	}
}

// approvedRequest returns the approved request this browser waits for, or
// nil with the sentence that says why not.
func (h *Handler) approvedRequest(ctx context.Context, f *flow, use approvalUse) (*store.ApprovalRequest, string, error) {
	req, err := h.waiting(ctx, f.s, use)
	if err != nil {
		return nil, "", err
	}
	if req != nil && req.State == store.ApprovalApproved {
		return req, "", nil
	}
	v := h.view(f.s, use, req)
	switch v.State {
	case "denied", "expired":
		return nil, v.Message, nil
	case "none":
		return nil, msgApprovalExpired, nil
	}
	return nil, msgApprovalNotYet, nil
}

// showChallenge is the mfa-challenge page with a problem of the approval.
func (h *Handler) showChallenge(w http.ResponseWriter, r *http.Request, f *flow, status int, msg string) error {
	data, err := h.challengePage(r.Context(), f)
	if err != nil {
		return err
	}
	data.fail("", msg)
	return h.show(w, status, "mfa-challenge", data)
}

// requestFinish is what taking an approved sign-in or confirm request
// records: the proof (in the journey), its audit event, and where the
// browser goes after — or after a racing request of the same browser took
// the approval first.
type requestFinish struct {
	use         approvalUse
	show        func(h *Handler, w http.ResponseWriter, r *http.Request, f *flow, status int, msg string) error
	prove       func(j *journey, now time.Time)
	event       store.Event
	done, raced string
}

var (
	// A sign-in: the second factor, and the journey goes on.
	finishSignIn = requestFinish{use: useSignIn, show: (*Handler).showChallenge,
		prove: func(j *journey, now time.Time) { j.factorVerified(methodApproval, now, nil) },
		event: evMFAChallenge, done: PathNext, raced: PathNext}
	// Confirm it is you, for the account page or the admin console (done
	// "": where the confirmation returns, confirmedReturn).
	finishReauth = requestFinish{use: useReauth, show: (*Handler).showReauth,
		prove: func(j *journey, now time.Time) { j.confirmed(methodApproval, now) },
		event: evAccountReauth, done: "", raced: PathReauth}
)

// postRequestFinish takes the approval: the request is used once, under a
// new session id, with its audit event.
func (h *Handler) postRequestFinish(fin requestFinish) flowHandler {
	return func(w http.ResponseWriter, r *http.Request, f *flow) error {
		ctx, s, u := r.Context(), f.s, f.user
		req, msg, err := h.approvedRequest(ctx, f, fin.use)
		if err != nil {
			return err
		}
		if req == nil {
			return fin.show(h, w, r, f, http.StatusUnprocessableEntity, msg)
		}
		before := s.j
		fin.prove(&s.j, h.now().UTC())
		done := fin.done
		if done == "" {
			done = s.j.confirmedReturn()
		}
		s.j.Approval = nil
		err = h.commitRotated(w, r, s, func(ctx context.Context) error {
			if err := h.store.UseApproval(ctx, req.ID); err != nil {
				return err
			}
			return h.audit(ctx, r, s, event{Name: fin.event, UserID: u.ID, Username: u.Username,
				Detail: map[string]any{"method": methodApproval, "device": req.DeviceID}})
		})
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			s.j = before
			return redirect(w, r, fin.raced)
		}
		if err != nil {
			return err
		}
		return redirect(w, r, done)
	}
}

// showReauth is the confirm page with a problem of the approval.
func (h *Handler) showReauth(w http.ResponseWriter, r *http.Request, f *flow, status int, msg string) error {
	p, err := h.reauthPage(r.Context(), f)
	if err != nil {
		return err
	}
	p.fail("", msg)
	return h.show(w, status, "account-reauth", p)
}

// mountApproval registers the computer's routes, each behind the guard of
// the page it belongs to (the journey step's, or the account page's), and
// the phone's (approve_phone.go). The status routes answer errors as JSON.
func (h *Handler) mountApproval(route, routeJSON func(pattern string, fn handlerFunc)) {
	at := func(step string, fn flowHandler) handlerFunc {
		return h.at(builtin(step), false, func(_ *Handler, w http.ResponseWriter, r *http.Request, f *flow) error { return fn(w, r, f) })
	}
	route("GET "+PathEnrolApprove, at(StepMFAEnrol, h.getPairing(useEnrol)))
	route("POST "+PathEnrolApprove, at(StepMFAEnrol, h.postPairingStart(useEnrol)))
	routeJSON("GET "+PathEnrolApprove+approveStatus, at(StepMFAEnrol, h.getApprovalStatus(useEnrol)))
	route("POST "+PathEnrolApprove+approveFinish, at(StepMFAEnrol, h.postEnrolApproveFinish))

	route("POST "+PathChallengeApprove, at(StepMFAChallenge, h.postRequestStart(useSignIn, h.showChallenge, PathMFAChallenge)))
	routeJSON("GET "+PathChallengeApprove+approveStatus, at(StepMFAChallenge, h.getApprovalStatus(useSignIn)))
	route("POST "+PathChallengeApprove+approveFinish, at(StepMFAChallenge, h.postRequestFinish(finishSignIn)))

	route("GET "+PathAccountApprove, h.signedIn(recentProof, h.getPairing(useAccount)))
	route("POST "+PathAccountApprove, h.signedIn(recentProof, h.postPairingStart(useAccount)))
	routeJSON("GET "+PathAccountApprove+approveStatus, h.signedIn(recentProof, h.getApprovalStatus(useAccount)))
	route("POST "+PathAccountApprove+approveFinish, h.signedIn(recentProof, h.postAccountApproveFinish))
	route("POST "+PathAccountDeviceRename, h.signedIn(recentProof, h.postAccountDeviceRename))
	route("POST "+PathAccountDeviceRemove, h.signedIn(recentProof, h.postAccountDeviceRemove))

	route("POST "+PathReauthApprove, h.signedIn(signedInOnly, h.postRequestStart(useReauth, h.showReauth, PathReauth)))
	routeJSON("GET "+PathReauthApprove+approveStatus, h.signedIn(signedInOnly, h.getApprovalStatus(useReauth)))
	route("POST "+PathReauthApprove+approveFinish, h.signedIn(signedInOnly, h.postRequestFinish(finishReauth)))

	h.mountPhone(route, routeJSON)
}
