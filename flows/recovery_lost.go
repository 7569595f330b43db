package flows

// Lost your phone (or security key): the challenge page's "Lost your
// phone?" leads to a page that takes a recovery code (the mfa-challenge
// form, marked lost) and, for an officer with none left, explains how to
// ask the helpdesk to reset the second factor and what they will be asked.
//
// A recovery code given there signs the officer in as any recovery code
// does (the same check, counters and single use), and also: every other
// session of the officer is signed out, and the journey asks at once for a
// new second factor — the mfa-enrol step is pending again while the
// session says "signed in with a recovery code and asked to replace"
// (State.ReplacingFactor) — with fresh recovery codes. Once the new factor
// is in place, the remove-lost-factor step offers to remove the ones the
// account had before.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/lanyard-idp/lanyard/provider/store"
)

// PathLostPhone is the "Lost your phone?" page; PathLostFactor the step that
// offers to remove the lost factors.
const (
	PathLostPhone  = "/signin/mfa/lost"
	PathLostFactor = "/signin/lost-factor"
)

const (
	msgLostEnterCode = "Enter one of your recovery codes, like 7kqd-m2xf-p9. The 6-digit code of an authenticator app goes on the previous page."
	noticeLostPhone  = "You signed in with a recovery code after losing your phone"
	noticeReplaced   = "A new second factor was added to your account after a sign-in with a recovery code"
	msgReplaceNotice = "You signed in with a recovery code. Set up a new authenticator app, passkey or phone now: it takes the place of the one you lost, and you get new recovery codes."
)

// lostFactor is a second factor the account had when the officer said it
// was lost: offered for removal once a new one is in place.
type lostFactor struct {
	Kind string `json:"kind"` // factorTOTP, factorPasskey or factorPhone
	// ID names it: a passkey's credential id (base64url), a phone's device
	// id, the authenticator app's creation time (a new app replaces it).
	ID    string    `json:"id"`
	Name  string    `json:"name"`
	Added time.Time `json:"added"`
}

const (
	factorTOTP    = "totp"
	factorPasskey = "passkey"
	factorPhone   = "phone"
)

// key is the value of its checkbox.
func (l lostFactor) key() string { return l.Kind + ":" + l.ID }

type lostPhonePage struct {
	page
	CodesLeft int
	Helpdesk  string
	Asks      []string
}

type lostFactorPage struct {
	page
	Factors []lostFactorView
}

type lostFactorView struct {
	Key, Label, Added string
}

func (h *Handler) lostPhonePage(ctx context.Context, f *flow) (lostPhonePage, error) {
	cfg := f.set.cfg
	p := lostPhonePage{page: h.page(f, StepMFAChallenge, "Lost your phone?"), Helpdesk: cfg.Recovery.Helpdesk, Asks: cfg.Recovery.HelpdeskAsks}
	var err error
	p.CodesLeft, err = h.store.RecoveryCodesLeft(ctx, f.user.ID)
	return p, err
}

// getLostPhone is reached from the challenge page (the mfa-challenge
// step's guard): its form is that step's, marked lost.
func (h *Handler) getLostPhone(w http.ResponseWriter, r *http.Request, f *flow) error {
	p, err := h.lostPhonePage(r.Context(), f)
	if err != nil {
		return err
	}
	return h.show(w, http.StatusOK, "lost-phone", p)
}

// showLostPhone answers the lost page's form with what is wrong.
func (h *Handler) showLostPhone(w http.ResponseWriter, r *http.Request, f *flow, status int, msg string) error {
	p, err := h.lostPhonePage(r.Context(), f)
	if err != nil {
		return err
	}
	p.fail("code", msg)
	return h.show(w, status, "lost-phone", p)
}

// currentFactors lists the account's second factors.
func (h *Handler) currentFactors(ctx context.Context, userID string) ([]lostFactor, error) {
	var out []lostFactor
	t, err := h.store.TOTPByUser(ctx, userID)
	switch {
	case err == nil && t.Confirmed:
		out = append(out, lostFactor{Kind: factorTOTP, ID: strconv.FormatInt(t.CreatedAt.UnixMicro(), 10), Name: "Authenticator app", Added: t.CreatedAt})
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	creds, err := h.store.WebAuthnCredentials(ctx, userID)
	if err != nil {
		return nil, err
	}
	for _, c := range creds {
		out = append(out, lostFactor{Kind: factorPasskey, ID: b64.EncodeToString(c.ID), Name: c.Name, Added: c.CreatedAt})
	}
	devices, err := h.store.ApprovalDevices(ctx, userID)
	if err != nil {
		return nil, err
	}
	for _, d := range devices {
		out = append(out, lostFactor{Kind: factorPhone, ID: d.ID, Name: d.Name, Added: d.CreatedAt})
	}
	return out, nil
}

// lostSignIn is the transition of a recovery code given on the lost page:
// the factors of the account now are remembered (to offer their removal
// later), the journey asks for a new one, and fn, run in the code's
// transaction, signs out every other session.
func (h *Handler) lostSignIn(ctx context.Context, r *http.Request, f *flow) (func(ctx context.Context) error, error) {
	s, u := f.s, f.user
	had, err := h.currentFactors(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	s.j.ReplaceFactor, s.j.LostCandidates, s.j.LostFactors = true, had, nil
	return func(ctx context.Context) error {
		n, err := SignOutEverywhere(ctx, h.store, u.ID, s.raw)
		if err != nil {
			return err
		}
		s.j.Notice = msgReplaceNotice
		return h.audit(ctx, r, s, event{Name: store.EventFactorLost, UserID: u.ID, Username: u.Username,
			Detail: map[string]any{"sessions_ended": n}})
	}, nil
}

// replaced is the transition when mfa-enrol's new factor is confirmed while
// replacing a lost one: the factors from before are offered for removal
// next (after the new recovery codes).
func (j *journey) replaced() {
	if j.ReplaceFactor {
		j.ReplaceFactor, j.LostFactors, j.LostCandidates = false, j.LostCandidates, nil
		j.Notice = ""
	}
}

// notifyReplaced emails the officer that a factor was added this way.
func (h *Handler) notifyReplaced(r *http.Request, f *flow, what string) {
	if f.state.ReplacingFactor {
		h.notify(r, f.user, noticeReplaced, what)
	}
}

// postLater is "Not now" on the replacement's page: the officer goes on
// with the factors they have (the codes they used is gone).
func (h *Handler) postReplaceLater(w http.ResponseWriter, r *http.Request, f *flow) error {
	s := f.s
	s.j.ReplaceFactor, s.j.LostCandidates, s.j.PendingTOTP = false, nil, nil
	left, err := h.store.RecoveryCodesLeft(r.Context(), f.user.ID)
	if err != nil {
		return err
	}
	s.j.Notice = fmt.Sprintf("Set up a new second factor on your account page soon, and remove the lost one there. You have %d recovery %s left.",
		left, plural(left, "code", "codes"))
	if err := h.save(r.Context(), s); err != nil {
		return err
	}
	return redirect(w, r, PathNext)
}

// The remove-lost-factor step.

// stillThere are the remembered factors the account still has: an
// authenticator app replaced by the new one is gone already.
func (h *Handler) stillThere(ctx context.Context, f *flow) ([]lostFactor, error) {
	now, err := h.currentFactors(ctx, f.user.ID)
	if err != nil {
		return nil, err
	}
	var out []lostFactor
	for _, l := range f.s.j.LostFactors {
		if slices.ContainsFunc(now, func(c lostFactor) bool { return c.key() == l.key() }) {
			out = append(out, l)
		}
	}
	return out, nil
}

func (h *Handler) lostFactorPage(f *flow, left []lostFactor) lostFactorPage {
	p := lostFactorPage{page: h.page(f, StepLostFactor, "Remove the one you lost?")}
	for _, l := range left {
		label := l.Name
		switch l.Kind {
		case factorPasskey:
			label = "Passkey: " + l.Name
		case factorPhone:
			label = "Phone with the approval app: " + l.Name
		}
		p.Factors = append(p.Factors, lostFactorView{Key: l.key(), Label: label, Added: l.Added.UTC().Format("2 January 2006")})
	}
	return p
}

func (h *Handler) getLostFactor(w http.ResponseWriter, r *http.Request, f *flow) error {
	left, err := h.stillThere(r.Context(), f)
	if err != nil {
		return err
	}
	if len(left) == 0 {
		// Nothing from before is left (the new app replaced the old one).
		f.s.j.LostFactors = nil
		if err := h.save(r.Context(), f.s); err != nil {
			return err
		}
		return redirect(w, r, PathNext)
	}
	return h.show(w, http.StatusOK, "remove-lost-factor", h.lostFactorPage(f, left))
}

// postLostFactor removes the ticked factors ("remove") or none ("keep"),
// in one transaction that never leaves the account without a factor.
func (h *Handler) postLostFactor(w http.ResponseWriter, r *http.Request, f *flow) error {
	ctx, s, u := r.Context(), f.s, f.user
	left, err := h.stillThere(ctx, f)
	if err != nil {
		return err
	}
	var gone []lostFactor
	if r.PostForm.Get("choice") == "remove" {
		ticked := r.PostForm["remove"]
		for _, l := range left {
			if slices.Contains(ticked, l.key()) {
				gone = append(gone, l)
			}
		}
		if len(gone) == 0 && len(left) > 0 {
			p := h.lostFactorPage(f, left)
			p.fail("remove", "Tick what you lost, or choose Keep them all.")
			return h.show(w, http.StatusUnprocessableEntity, "remove-lost-factor", p)
		}
	}
	s.j.LostFactors = nil
	err = h.commit(ctx, s, func(ctx context.Context) error {
		if err := h.lockUser(ctx, u.ID); err != nil {
			return err
		}
		for _, l := range gone {
			if err := h.removeLost(ctx, r, s, u, l); err != nil {
				return err
			}
		}
		if has, err := h.hasSecondFactor(ctx, u.ID); err != nil || !has {
			return cmp.Or(err, errLastMethod)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, l := range gone {
		h.notify(r, u, lostNotice(l), l.Name)
	}
	return redirect(w, r, PathNext)
}

// removeLost deletes one remembered factor with its audit event (the same
// events as the account page's removals, marked lost).
func (h *Handler) removeLost(ctx context.Context, r *http.Request, s *session, u *store.User, l lostFactor) error {
	ev := event{UserID: u.ID, Username: u.Username, Detail: map[string]any{"lost": true, "name": l.Name}}
	var err error
	switch l.Kind {
	case factorTOTP:
		ev.Name, err = evTOTPRemove, h.store.DeleteTOTP(ctx, u.ID)
	case factorPasskey:
		id, derr := b64.DecodeString(l.ID)
		if derr != nil {
			return derr
		}
		ev.Name, err = evPasskeyRemove, h.store.DeleteWebAuthnCredential(ctx, u.ID, id)
	case factorPhone:
		ev.Name, err = evDeviceRemove, h.store.DeleteApprovalDevice(ctx, u.ID, l.ID)
	default:
		return fmt.Errorf("unknown factor kind %q", l.Kind)
	}
	if err != nil {
		return err
	}
	return h.audit(ctx, r, s, ev)
}

func lostNotice(l lostFactor) string {
	switch l.Kind {
	case factorTOTP:
		return noticeTOTPRemoved
	case factorPasskey:
		return noticePasskeyRemoved
	}
	return noticeDeviceRemoved
}
