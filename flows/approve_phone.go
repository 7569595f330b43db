package flows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strconv"

	"github.com/lanyard-idp/lanyard/flows/approval"
	"github.com/lanyard-idp/lanyard/flows/passkey"
	"github.com/lanyard-idp/lanyard/provider/store"
	"github.com/lanyard-idp/lanyard/static"
)

// The approval app, the phone's side: the installable web app at /approve
// (its page, web app manifest and service worker; the script is
// static/approve/app.js) and the JSON API it calls. The phone has no session
// and signs in to nothing: every call that acts is signed by the device's
// non-extractable key (approval.Message and friends), and Lanyard checks the
// signature, the device, the request's state and expiry, and the number.
//
//	POST /approve/api/pair     {token, public_key}: a phone opened a pairing link;
//	                           its new key is recorded (once) and it gets the request
//	POST /approve/api/pending  {device, at, signature[, push]}: the requests waiting
//	POST /approve/api/answer   {request, device, number, decision, signature[, name, push]}
//	POST /approve/api/report   {request, device, signature}: a denied request was not me
//
// A wrong number counts as a failed second factor (the throttle every code
// goes through), and the third denies the request; an answer signed by
// another key, or by a device of another account, is refused and counted
// too. "No, it's not me" denies, emails the officer and offers the report,
// which signs the account out everywhere.

// Routes of the phone's side.
const (
	PathApprove         = "/approve"
	PathApproveManifest = "/approve/manifest.webmanifest"
	PathApproveWorker   = "/approve/sw.js"
	PathApprovePair     = "/approve/api/pair"
	PathApprovePending  = "/approve/api/pending"
	PathApproveAnswer   = "/approve/api/answer"
	PathApproveReport   = "/approve/api/report"
)

const (
	msgPhoneBadRequest  = "The app sent something Lanyard cannot read. Reload the app and try again."
	msgPairingUnknown   = "This pairing link is not valid. Show a new one on your computer and scan it again."
	msgPairingUsed      = "This pairing link was already used or has expired. Show a new one on your computer."
	msgPhoneUnknown     = "This phone is not paired with Lanyard (any more). Pair it again from your computer."
	msgPhoneRefused     = "Lanyard could not check this phone's answer, so it was refused."
	msgPhoneClock       = "This phone's clock is wrong. Set the time automatically and try again."
	msgRequestUnknown   = "Lanyard does not know this request. It may have been withdrawn."
	msgRequestAnswered  = "This request was already answered."
	msgRequestExpired   = "This request has expired. Start the sign-in again on your computer if it was you."
	msgWrongNumber      = "That is not the number shown in your browser. Look at the browser you are signing in with and try again."
	msgWrongNumberLast  = "That was the wrong number three times, so the request was refused. If you are signing in, start again on your computer."
	msgReportNotAllowed = "Only a request this phone refused can be reported."
	msgReported         = "Thank you. Your account was signed out everywhere. Change your password now: sign in on your computer and open your account page. Tell your administrator too."
)

// approvePage is the data of approve.html, the app.
type approvePage struct {
	page
	VAPIDKey string
}

func (h *Handler) getApproveApp(w http.ResponseWriter, r *http.Request) error {
	p := approvePage{page: h.page(nil, "", "Lanyard approval app"), VAPIDKey: h.vapid.Public}
	return h.show(w, http.StatusOK, "approve", p)
}

// serveAppFile serves one of the app's own files from static/approve with
// its type: the manifest and the service worker live under /approve so
// that the worker's scope can be the app's.
func serveAppFile(name, ctype string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		b, err := fs.ReadFile(static.FS, "approve/"+name)
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", ctype)
		if name == "sw.js" {
			w.Header().Set("Service-Worker-Allowed", PathApprove)
		}
		w.Header().Set("Cache-Control", "no-cache")
		_, err = w.Write(b)
		return err
	}
}

// mountPhone registers the app and its API (no session; JSON errors).
func (h *Handler) mountPhone(route, routeJSON func(pattern string, fn handlerFunc)) {
	route("GET "+PathApprove, h.getApproveApp)
	route("GET "+PathApproveManifest, serveAppFile("manifest.webmanifest", "application/manifest+json"))
	route("GET "+PathApproveWorker, serveAppFile("sw.js", "text/javascript; charset=utf-8"))
	routeJSON("POST "+PathApprovePair, h.postPhonePair)
	routeJSON("POST "+PathApprovePending, h.postPhonePending)
	routeJSON("POST "+PathApproveAnswer, h.postPhoneAnswer)
	routeJSON("POST "+PathApproveReport, h.postPhoneReport)
}

// phoneError is a refusal the app shows as it is.
type phoneError struct {
	Error string `json:"error"`
	// Unpaired: the device is unknown; the app forgets its key.
	Unpaired bool `json:"unpaired,omitempty"`
	// State and Left: a wrong number's outcome.
	State string `json:"state,omitempty"`
	Left  *int   `json:"left,omitempty"`
}

func phoneRefuse(w http.ResponseWriter, status int, msg string) error {
	return writeJSON(w, status, phoneError{Error: msg})
}

// readPhone decodes the app's JSON body (bounded by the form limit);
// false when it has answered the request itself.
func readPhone(w http.ResponseWriter, r *http.Request, v any) (bool, error) {
	b, err := io.ReadAll(r.Body)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return false, phoneRefuse(w, http.StatusRequestEntityTooLarge, msgPhoneBadRequest)
	}
	if err != nil || json.Unmarshal(b, v) != nil {
		return false, phoneRefuse(w, http.StatusBadRequest, msgPhoneBadRequest)
	}
	return true, nil
}

// requestView is what the phone shows of a request.
type requestView struct {
	ID          string `json:"id"`
	Kind        string `json:"kind"`
	Account     string `json:"account"`
	Application string `json:"application"`
	Time        string `json:"time"`
	Browser     string `json:"browser"`
	Address     string `json:"address"`
	Challenge   string `json:"challenge"`
	ExpiresIn   int    `json:"expires_in"` // seconds
}

func (h *Handler) requestView(req *store.ApprovalRequest, account string) requestView {
	left := int(req.ExpiresAt.Sub(h.now().UTC()).Seconds())
	return requestView{ID: req.ID, Kind: req.Kind, Account: account, Application: req.Application,
		Time: req.CreatedAt.UTC().Format("15:04:05 UTC, 2 Jan 2006"), Browser: req.Browser, Address: req.ClientAddr,
		Challenge: req.Challenge, ExpiresIn: max(left, 0)}
}

// postPhonePair: a phone opened a pairing link and registers its new key.
func (h *Handler) postPhonePair(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Token     string `json:"token"`
		PublicKey string `json:"public_key"`
	}
	if ok, err := readPhone(w, r, &in); !ok {
		return err
	}
	ctx := r.Context()
	if !approval.ValidToken(in.Token) {
		return phoneRefuse(w, http.StatusNotFound, msgPairingUnknown)
	}
	der, err := approval.ParsePublicKey(in.PublicKey)
	if err != nil {
		return phoneRefuse(w, http.StatusBadRequest, msgPhoneBadRequest)
	}
	req, err := h.store.PairingByToken(ctx, approval.HashToken(in.Token))
	if errors.Is(err, store.ErrNotFound) {
		return phoneRefuse(w, http.StatusNotFound, msgPairingUnknown)
	}
	if err != nil {
		return err
	}
	u, err := h.store.UserByID(ctx, req.UserID)
	if err != nil {
		return err
	}
	now := h.now().UTC()
	err = h.store.InTx(ctx, func(ctx context.Context) error {
		if err := h.store.ClaimPairing(ctx, req.ID, der, now); err != nil {
			return err
		}
		return h.audit(ctx, r, nil, event{Name: evApprovalOpen, UserID: u.ID, Username: u.Username,
			Detail: map[string]any{"browser": describeAgent(r.UserAgent())}})
	})
	if errors.Is(err, store.ErrConflict) {
		return phoneRefuse(w, http.StatusConflict, msgPairingUsed)
	}
	if err != nil {
		return err
	}
	req.ClaimedAt = now
	return writeJSON(w, http.StatusOK, h.requestView(req, u.Username))
}

// device loads the device of a signed call and checks its signature over
// msg; nil when it has answered the request itself. A bad signature is
// counted against the device's account.
func (h *Handler) device(w http.ResponseWriter, r *http.Request, id, sig string, msg func(*store.ApprovalDevice) []byte) (*store.ApprovalDevice, *store.User, error) {
	ctx := r.Context()
	if !approval.ValidID(id) {
		return nil, nil, writeJSON(w, http.StatusNotFound, phoneError{Error: msgPhoneUnknown, Unpaired: true})
	}
	d, err := h.store.ApprovalDeviceByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, writeJSON(w, http.StatusNotFound, phoneError{Error: msgPhoneUnknown, Unpaired: true})
	}
	if err != nil {
		return nil, nil, err
	}
	u, err := h.store.UserByID(ctx, d.UserID)
	if err != nil {
		return nil, nil, err
	}
	if !approval.Verify(d.PublicKey, msg(d), sig) {
		ev := event{UserID: u.ID, Username: u.Username, Detail: map[string]any{"factor": methodApproval, "reason": store.ReasonApprovalSignature}}
		if err := h.failed(ctx, r, nil, h.factorKeys(r, u), ev); err != nil {
			return nil, nil, err
		}
		return nil, nil, phoneRefuse(w, http.StatusForbidden, msgPhoneRefused)
	}
	return d, u, nil
}

// postPhonePending lists the requests waiting for the device's account
// (the app polls it while open, and asks at once when a push wakes it).
func (h *Handler) postPhonePending(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Device    string                 `json:"device"`
		At        int64                  `json:"at"`
		Signature string                 `json:"signature"`
		Push      *approval.Subscription `json:"push"`
	}
	if ok, err := readPhone(w, r, &in); !ok {
		return err
	}
	now := h.now().UTC()
	if d := now.UnixMilli() - in.At; d > approval.ListSkew.Milliseconds() || -d > approval.ListSkew.Milliseconds() {
		return phoneRefuse(w, http.StatusBadRequest, msgPhoneClock)
	}
	d, u, err := h.device(w, r, in.Device, in.Signature, func(d *store.ApprovalDevice) []byte { return approval.ListMessage(d.ID, in.At) })
	if err != nil || d == nil {
		return err
	}
	ctx := r.Context()
	if p, ok := h.checkPush(in.Push); ok && p != d.Push {
		if err := h.store.SetApprovalPush(ctx, d.ID, p); err != nil {
			return err
		}
	}
	out := struct {
		Account  string        `json:"account"`
		Name     string        `json:"name"`
		Requests []requestView `json:"requests"`
	}{Account: u.Username, Name: d.Name, Requests: []requestView{}}
	if u.State != store.UserDisabled {
		reqs, err := h.store.PendingApprovals(ctx, u.ID, now)
		if err != nil {
			return err
		}
		for i := range reqs {
			out.Requests = append(out.Requests, h.requestView(&reqs[i], u.Username))
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

// requestOf loads the request a call names; nil when it has answered the
// call itself.
func (h *Handler) requestOf(w http.ResponseWriter, r *http.Request, id string) (*store.ApprovalRequest, error) {
	if !approval.ValidID(id) {
		return nil, phoneRefuse(w, http.StatusBadRequest, msgPhoneBadRequest)
	}
	req, err := h.store.ApprovalRequestByID(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, phoneRefuse(w, http.StatusNotFound, msgRequestUnknown)
	}
	return req, err
}

// phoneAnswer is the app's answer to a request.
type phoneAnswer struct {
	Request   string `json:"request"`
	Device    string `json:"device"` // "" for a pairing: its key is the claimed one
	Number    string `json:"number"`
	Decision  string `json:"decision"`
	Signature string `json:"signature"`
	// A pairing's: the phone's name and push subscription.
	Name string                 `json:"name"`
	Push *approval.Subscription `json:"push"`
}

// postPhoneAnswer checks and records the phone's answer.
func (h *Handler) postPhoneAnswer(w http.ResponseWriter, r *http.Request) error {
	var in phoneAnswer
	if ok, err := readPhone(w, r, &in); !ok {
		return err
	}
	decision, okDecision := approval.ParseDecision(in.Decision)
	if !okDecision || len(in.Number) > 16 {
		return phoneRefuse(w, http.StatusBadRequest, msgPhoneBadRequest)
	}
	ctx := r.Context()
	req, err := h.requestOf(w, r, in.Request)
	if err != nil || req == nil {
		return err
	}
	u, err := h.store.UserByID(ctx, req.UserID)
	if err != nil {
		return err
	}
	k := h.factorKeys(r, u)
	failure := func(reason store.Reason) event {
		return event{UserID: u.ID, Username: u.Username, Detail: map[string]any{"factor": methodApproval, "kind": req.Kind, "reason": reason}}
	}
	refused := func(reason store.Reason) error {
		if err := h.failed(ctx, r, nil, k, failure(reason)); err != nil {
			return err
		}
		return phoneRefuse(w, http.StatusForbidden, msgPhoneRefused)
	}

	// Whose key must have signed: the pairing's new one, or a device of
	// the request's account.
	var key []byte
	var dev *store.ApprovalDevice
	if req.Kind == store.ApprovalPairing {
		if key = req.PublicKey; len(key) == 0 {
			return phoneRefuse(w, http.StatusConflict, msgPairingUnknown)
		}
	} else {
		if approval.ValidID(in.Device) {
			dev, err = h.store.ApprovalDeviceByID(ctx, in.Device)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		if dev == nil || dev.UserID != req.UserID {
			return refused(store.ReasonOtherDevice)
		}
		key = dev.PublicKey
	}
	if !approval.Verify(key, approval.Message(req.ID, in.Number, decision, req.Challenge), in.Signature) {
		return refused(store.ReasonApprovalSignature)
	}

	now := h.now().UTC()
	if !req.Live(now) {
		// Too late, or answered already (a replay, or the loser of a race):
		// audited, not counted — the signature was good.
		reason, msg, status := store.ReasonApprovalAnswered, msgRequestAnswered, http.StatusConflict
		switch req.State {
		case store.ApprovalPending:
			if err := h.store.ExpireApprovalRequest(ctx, req.ID, now); err != nil {
				return err
			}
			fallthrough
		case store.ApprovalExpired:
			reason, msg, status = store.ReasonApprovalExpired, msgRequestExpired, http.StatusGone
		}
		ev := failure(reason)
		ev.Name = evSigninFailure
		h.auditLog(ctx, r, nil, ev)
		return phoneRefuse(w, status, msg)
	}
	deviceID := ""
	if dev != nil {
		deviceID = dev.ID
	}
	answered := func(err error) error {
		if errors.Is(err, store.ErrConflict) {
			ev := failure(store.ReasonApprovalAnswered)
			ev.Name = evSigninFailure
			h.auditLog(ctx, r, nil, ev)
			return phoneRefuse(w, http.StatusConflict, msgRequestAnswered)
		}
		return err
	}

	if decision == approval.Deny {
		err := h.store.InTx(ctx, func(ctx context.Context) error {
			if err := h.store.AnswerApproval(ctx, req.ID, store.ApprovalAnswer{State: store.ApprovalDenied, DeviceID: deviceID,
				Reason: string(store.ReasonNotMe), At: now}); err != nil {
				return err
			}
			return h.audit(ctx, r, nil, event{Name: evApprovalDeny, UserID: u.ID, Username: u.Username,
				Detail: map[string]any{"kind": req.Kind, "reason": store.ReasonNotMe, "device": deviceID}})
		})
		if err != nil {
			return answered(err)
		}
		if req.Kind != store.ApprovalPairing {
			h.notify(r, u, noticeApprovalDenied, describeRequest(req))
		}
		return writeJSON(w, http.StatusOK, map[string]any{"state": "denied", "report": req.Kind != store.ApprovalPairing})
	}

	// No lock is checked here: the phone has no lock of its own, and the
	// locks of the browser that waits were checked when it started the
	// request and are checked again when it takes the approval
	// (postRequestFinish) — the account's second-factor lock must not
	// switch off the officer's phone for their own browser.
	if n, ok := approval.ParseNumber(in.Number); !ok || n != req.Number {
		wrong, denied, err := h.store.WrongApprovalNumber(ctx, req.ID, approval.MaxWrongNumbers, string(store.ReasonWrongNumbers), now)
		if err != nil {
			return answered(err)
		}
		// A second factor that failed: counted and throttled like a wrong
		// code.
		ev := failure(store.ReasonWrongNumber)
		ev.Detail["wrong_numbers"] = wrong
		if err := h.failed(ctx, r, nil, k, ev); err != nil {
			return err
		}
		left := approval.MaxWrongNumbers - wrong
		out := phoneError{Error: msgWrongNumber, State: "number", Left: &left}
		if denied {
			h.auditLog(ctx, r, nil, event{Name: evApprovalDeny, UserID: u.ID, Username: u.Username,
				Detail: map[string]any{"kind": req.Kind, "reason": store.ReasonWrongNumbers, "device": deviceID}})
			if req.Kind != store.ApprovalPairing {
				h.notify(r, u, noticeApprovalDenied, describeRequest(req)+" The wrong number was entered three times.")
			}
			out.Error, out.State = msgWrongNumberLast, "denied"
		}
		return writeJSON(w, http.StatusUnprocessableEntity, out)
	}

	ans := store.ApprovalAnswer{State: store.ApprovalApproved, DeviceID: deviceID, At: now}
	pushed := false
	if req.Kind == store.ApprovalPairing {
		ans.DeviceID = approval.NewID()
		name, ok := passkey.CleanName(in.Name)
		if !ok || name == "" {
			name = describeAgent(r.UserAgent())
		}
		ans.DeviceName = name
		ans.Push, pushed = h.checkPush(in.Push)
	}
	err = h.store.InTx(ctx, func(ctx context.Context) error {
		if err := h.store.AnswerApproval(ctx, req.ID, ans); err != nil {
			return err
		}
		if dev != nil {
			if err := h.store.UseApprovalDevice(ctx, dev.ID, now); err != nil {
				return err
			}
		}
		return h.audit(ctx, r, nil, event{Name: evApprovalApprove, UserID: u.ID, Username: u.Username,
			Detail: map[string]any{"kind": req.Kind, "device": ans.DeviceID}})
	})
	if err != nil {
		return answered(err)
	}
	out := map[string]any{"state": "approved"}
	if req.Kind == store.ApprovalPairing {
		out["device"], out["account"], out["name"], out["push"] = ans.DeviceID, u.Username, ans.DeviceName, pushed
	}
	return writeJSON(w, http.StatusOK, out)
}

// describeRequest is a denied request as the officer's email names it.
func describeRequest(req *store.ApprovalRequest) string {
	return fmt.Sprintf("Application: %s. Signing in from: %s, address %s, at %s.",
		req.Application, req.Browser, req.ClientAddr, req.CreatedAt.UTC().Format("15:04 UTC"))
}

// postPhoneReport: the officer reports a request their phone denied as
// not theirs. The account is signed out everywhere (every session, every
// token) and told to change the password.
func (h *Handler) postPhoneReport(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Request   string `json:"request"`
		Device    string `json:"device"`
		Signature string `json:"signature"`
	}
	if ok, err := readPhone(w, r, &in); !ok {
		return err
	}
	ctx := r.Context()
	req, err := h.requestOf(w, r, in.Request)
	if err != nil || req == nil {
		return err
	}
	d, u, err := h.device(w, r, in.Device, in.Signature, func(*store.ApprovalDevice) []byte { return approval.ReportMessage(req.ID, req.Challenge) })
	if err != nil || d == nil {
		return err
	}
	if d.UserID != req.UserID || req.DeviceID != d.ID || req.Kind == store.ApprovalPairing {
		return phoneRefuse(w, http.StatusForbidden, msgReportNotAllowed)
	}
	var n int
	err = h.store.InTx(ctx, func(ctx context.Context) error {
		if err := h.store.ReportApproval(ctx, req.ID); err != nil {
			return err
		}
		var err error
		if n, err = SignOutEverywhere(ctx, h.store, u.ID, ""); err != nil {
			return err
		}
		return h.audit(ctx, r, nil, event{Name: evApprovalReport, UserID: u.ID, Username: u.Username,
			Detail: map[string]any{"sessions_ended": n, "application": req.Application, "address": req.ClientAddr}})
	})
	if errors.Is(err, store.ErrConflict) {
		return phoneRefuse(w, http.StatusConflict, msgReportNotAllowed)
	}
	if err != nil {
		return err
	}
	h.notify(r, u, noticeApprovalReported, describeRequest(req)+" Sessions signed out: "+strconv.Itoa(n)+".")
	return writeJSON(w, http.StatusOK, map[string]any{"state": "reported", "message": msgReported})
}
