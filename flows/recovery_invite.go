package flows

// Lost or expired onboarding email: "Didn't get your onboarding email, or
// has it expired?" on the sign-in and request pages. The officer types
// their address; for an invitation not yet finished (pending or expired)
// Lanyard sends a fresh one — a new initial password and a new
// invitations.valid_for expiry, the old password useless — at once, or
// after an approver agrees, as requests.approval says for the address's
// domain (a request of kind invitation, in the console's queue). The page
// is the same, after the same time, whether or not an invitation exists;
// the work that differs (the resend, the emails) happens in the
// background. Limited per client address, to one email per mailbox every
// ten minutes (of racing asks, one resends) and three a day.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/provider/store"
)

const (
	PathInvitation     = "/signin/invitation"
	PathInvitationSent = "/signin/invitation/sent"
)

// StepLostInvitation is the data-step of the "new onboarding email" form.
const StepLostInvitation = "lost-invitation"

const (
	msgInviteAskTooMany = "Too many requests have come from your network in the last hour. Try again later."
	msgInviteAskDaily   = "We have already sent several emails to this address today. Check your inbox (and your Junk Email folder), or try again tomorrow."
	// The reason an invitation's request shows the approver.
	invitationReason = "Asked for a new onboarding email on the sign-in page: the invitation was lost or has expired."
)

type invitationPage struct {
	page
	Email string
	Days  int // how long an invitation lasts
}

func (h *Handler) invitationPage() invitationPage {
	p := invitationPage{page: h.page(nil, StepLostInvitation, "Get a new onboarding email"),
		Days: int(h.settings().cfg.Invitations.ValidFor.D() / (24 * time.Hour))}
	p.Action = PathInvitation
	return p
}

func (h *Handler) getInvitation(w http.ResponseWriter, r *http.Request) error {
	p := h.invitationPage()
	var err error
	if p.Email, err = h.typedBefore(r); err != nil {
		return err
	}
	return h.show(w, http.StatusOK, "lost-invitation", p)
}

func (h *Handler) postInvitation(w http.ResponseWriter, r *http.Request) error {
	if err := form(r); err != nil {
		return err
	}
	ctx, lim := r.Context(), h.recLimits
	p := h.invitationPage()
	typed := r.PostForm.Get("email")
	p.Email = truncate(strings.TrimSpace(typed), 254)
	refuse := func(status int, field, msg string, why store.Reason, username string) error {
		if why != "" {
			h.auditLog(ctx, r, nil, event{Name: store.EventInviteAskFailed, Username: username, Detail: map[string]any{"reason": why}})
		}
		p.fail(field, msg)
		return h.show(w, status, "lost-invitation", p)
	}
	if over, err := h.addressOver(ctx, r, "inv", store.EventInviteAskFailed); err != nil || over {
		if err != nil {
			return err
		}
		return refuse(http.StatusTooManyRequests, "", msgInviteAskTooMany, "", "")
	}
	username, err := CanonicalUsername(typed)
	if err != nil {
		return refuse(http.StatusBadRequest, "email", msgRequestEmail, "", "")
	}
	// One email per mailbox every ten minutes: of racing asks, one acts;
	// the others end on the same page (its email is on its way).
	once, err := h.store.RecordFailure(ctx, "inv-once:"+digest(username), h.now().UTC(), lim.onePer)
	if err != nil {
		return err
	}
	if once.Failures > 1 {
		h.auditLog(ctx, r, nil, event{Name: store.EventInviteAskFailed, Username: username, Detail: map[string]any{"reason": store.ReasonAskedAgain}})
		return redirect(w, r, PathInvitationSent)
	}
	// Three a day, whether or not the address has an invitation.
	if over, err := h.overLimit(ctx, "inv-day:"+digest(username), lim.perDay, 24*time.Hour); err != nil || over {
		if err != nil {
			return err
		}
		return refuse(http.StatusTooManyRequests, "email", msgInviteAskDaily, store.ReasonMailboxLimit, username)
	}
	if err := h.askInvitation(ctx, r, username); err != nil {
		return err
	}
	return redirect(w, r, PathInvitationSent)
}

// askInvitation does what asking for a fresh onboarding email for
// username calls for, its audit event (invite.ask) written in the request,
// the resend and every email in the background.
func (h *Handler) askInvitation(ctx context.Context, r *http.Request, username string) error {
	a := h.admin()
	ctx = withOrigin(ctx, r)
	by := store.Actor(username)
	u, err := orNil(h.store.UserByUsername(ctx, username))
	if err != nil {
		return err
	}
	outcome := store.InvitationNone
	switch {
	case u == nil || u.State == store.UserDisabled:
	case u.State == store.UserActive:
		outcome = store.InvitationActive
	default:
		_, domain, _ := strings.Cut(username, "@")
		outcome = store.InvitationWaiting
		if h.settings().cfg.Requests.ApprovalFor(domain) == config.ApprovalAutomatic {
			outcome = store.InvitationResent
		}
	}
	var req *store.AccountRequest
	err = a.inTx(ctx, func(ctx context.Context) error {
		req = nil
		detail := map[string]any{"outcome": outcome}
		if outcome == store.InvitationWaiting {
			var err error
			if req, err = a.invitationRequest(ctx, u, clientAddr(r)); err != nil {
				return err
			}
			if req != nil {
				detail["request"] = req.ID
			}
		}
		target := u
		if target == nil {
			target = &store.User{Username: username}
		}
		return a.audit(ctx, store.EventInviteAsk, by, target, detail)
	})
	if err != nil {
		return err
	}
	bg := context.WithoutCancel(ctx)
	switch {
	case outcome == store.InvitationActive:
		h.sendRecovery(r, u, "invitation-active", h.recoveryMail(r, u))
	case outcome == store.InvitationResent:
		h.mailWG.Go(func() {
			if _, err := a.Resend(bg, by, username, Names{}); err != nil {
				h.log.Warn("a new onboarding email asked for was not sent", "err", err)
			}
		})
	case req != nil:
		h.mailWG.Go(func() { a.notifyApprovers(bg, by, *req) })
	}
	return nil
}

// invitationRequest records an officer's request for a fresh onboarding
// email for an approver to decide: pending at once, in ctx's transaction.
// It returns nil when the mailbox already has an open request (nothing
// new to decide).
func (a *Admin) invitationRequest(ctx context.Context, u *store.User, addr string) (*store.AccountRequest, error) {
	if _, err := a.expire(ctx, u.Username); err != nil {
		return nil, err
	}
	if _, err := a.store.OpenAccountRequest(ctx, u.Username); err == nil {
		return nil, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	id, err := newRequestID()
	if err != nil {
		return nil, err
	}
	now := a.now().UTC()
	name := u.Name
	if name == "" {
		name = u.Username // the console names a request by it
	}
	req := &store.AccountRequest{ID: id, Kind: store.RequestKindInvitation, Email: u.Username, Name: name,
		Reason: invitationReason, ClientAddr: addr, CreatedAt: now, ExpiresAt: now.Add(a.cfg.Requests.UnapprovedFor.D())}
	if err := a.store.CreateAccountRequest(ctx, req); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, fmt.Errorf("%w: %w", store.ErrSerialization, err)
		}
		return nil, err
	}
	return req, nil
}

func (h *Handler) getInvitationSent(w http.ResponseWriter, r *http.Request) error {
	days := int(h.settings().cfg.Invitations.ValidFor.D() / (24 * time.Hour))
	p := requestDonePage{page: h.page(nil, "", "Check your email"), Lines: []string{
		fmt.Sprintf("If this address has an invitation that is not finished yet, or that has expired, a new onboarding email is on its way: a new initial password, valid %d days. The old one no longer works.", days),
		"Where an approver must agree first, they have been asked, and the email comes once they do. If your account is already set up, the email says so.",
		"Nothing there after a few minutes? Check your Junk Email, Deleted Items and Archive folders. We send one email every 10 minutes at most.",
	}, Link: PathSignIn, Label: "Back to sign in"}
	return h.show(w, http.StatusOK, "request-done", p)
}

// mountRecovery registers the recovery pages that are not journey steps:
// "Forgot your password?" and its emailed link, "Lost your phone?" (a page
// of the mfa-challenge step), and the fresh onboarding email. The public
// forms take the same time whatever they find (evenly).
func (h *Handler) mountRecovery(route func(pattern string, fn handlerFunc)) {
	route("GET "+PathForgot, h.getForgot)
	route("POST "+PathForgot, h.evenly(h.postForgot))
	route("GET "+PathForgotSent, h.getForgotSent)
	route("GET "+PathReset, h.getReset)
	route("POST "+PathReset, h.postReset)
	challenge := builtin(StepMFAChallenge)
	route("GET "+PathLostPhone, h.at(challenge, false, func(h *Handler, w http.ResponseWriter, r *http.Request, f *flow) error {
		return h.getLostPhone(w, r, f)
	}))
	route("GET "+PathInvitation, h.getInvitation)
	route("POST "+PathInvitation, h.evenly(h.postInvitation))
	route("GET "+PathInvitationSent, h.getInvitationSent)
}
