package flows

// The public side of account requests: the request form (/request, the
// guide's step 1, linked from the sign-in page), the "check your email"
// page, and the verification link's page, which asks for one click before
// anything changes (a mail scanner following the link proves nothing and
// changes nothing).
//
// The page never says whether an account exists: every accepted form ends
// on the same page after the same work (one transaction, one email); only
// the email differs. Requests are limited per client address and per
// mailbox.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/lanyard-idp/lanyard/provider/store"
)

// The request pages.
const (
	PathRequest       = "/request"
	PathRequestSent   = "/request/sent"
	PathRequestVerify = "/request/verify"
)

// Form markers of the request pages (data-step).
const (
	StepRequestAccess = "request-access"
	StepRequestVerify = "request-verify"
)

// requestLimits bound how many requests one client address and one mailbox
// may make (the mailbox's counts whatever the outcome, so the limit
// reveals nothing about accounts).
type requestLimits struct {
	perAddress    int
	addressWindow time.Duration
	perMailbox    int
	mailboxWindow time.Duration
}

var defaultRequestLimits = requestLimits{perAddress: 10, addressWindow: time.Hour, perMailbox: 3, mailboxWindow: 24 * time.Hour}

const (
	msgRequestEmail       = "Enter your work email address, like name@agency.example."
	msgRequestName        = "Enter your full name."
	msgRequestNameLong    = "Enter your name on one line, in at most 200 characters."
	msgRequestOrgChoose   = "Choose your organisation from the list."
	msgRequestOrgLong     = "Enter your organisation on one line, in at most 200 characters."
	msgRequestReason      = "Say briefly why you need an account."
	msgRequestReasonLong  = "Keep the reason under 1,000 characters."
	msgRequestMailbox     = "This kind of mailbox cannot have an account (LiteMail and similar addresses are refused). Use your standard work mailbox."
	msgRequestPolicy      = "This address cannot be used for an account. Use your standard work mailbox."
	msgRequestLookAlike   = "This address has letters that can be mistaken for others. Type your work address in plain letters (a to z, digits, and . _ - +)."
	msgRequestTooMany     = "Too many account requests have come from your network in the last hour. Try again later."
	msgRequestMailboxMany = "We have already sent several emails to this address today. Check your inbox (and your spam folder), or try again tomorrow."
	msgRequestMailDown    = "We could not send the email just now. Please try again in a few minutes."
)

type requestPage struct {
	page
	Email, Name, Organisation, Reason string
	Organisations                     []string // the configured list; free text when empty
	MaxReason                         int
}

// requestDonePage is a page that says what happened and what comes next.
type requestDonePage struct {
	page
	Lines []string
	Link  string // a link to follow, "" for none
	Label string
}

type requestVerifyPage struct {
	page
	Token, Email, Name string
}

func (h *Handler) requestPage() requestPage {
	cfg := h.settings().cfg
	p := requestPage{page: h.page(nil, StepRequestAccess, "Request an account"), Organisations: cfg.Requests.Organisations, MaxReason: maxReasonRunes}
	p.Action = PathRequest
	return p
}

func (h *Handler) getRequest(w http.ResponseWriter, r *http.Request) error {
	return h.show(w, http.StatusOK, "request", h.requestPage())
}

func (h *Handler) postRequest(w http.ResponseWriter, r *http.Request) error {
	if err := form(r); err != nil {
		return err
	}
	ctx := withOrigin(r.Context(), r)
	a, lim := h.admin(), h.reqLimits
	now := h.now().UTC()
	p := h.requestPage()
	p.Email = truncate(strings.TrimSpace(r.PostForm.Get("email")), 254)
	p.Name = truncate(r.PostForm.Get("name"), 4*maxNameRunes)
	p.Organisation = truncate(r.PostForm.Get("organisation"), 4*maxOrganisationRunes)
	p.Reason = truncate(r.PostForm.Get("reason"), 4*maxReasonRunes)
	refuse := func(status int, field, msg string) error {
		p.fail(field, msg)
		return h.show(w, status, "request", p)
	}

	// Every form from an address (an IPv6 client's network) counts,
	// well-formed or not.
	if t, err := h.store.RecordFailure(ctx, "req-addr:"+h.clientNet(r), now, lim.addressWindow); err != nil {
		return err
	} else if t.Failures > lim.perAddress {
		if t.Failures == lim.perAddress+1 {
			a.auditRefusal(ctx, "", store.ReasonAddressLimit)
		}
		return refuse(http.StatusTooManyRequests, "", msgRequestTooMany)
	}

	in, problems := h.checkRequestInput(p)
	for _, pr := range problems {
		p.fail(pr.field, pr.msg)
	}
	username, perr := "", error(nil)
	if p.Fields["email"] == "" {
		username, perr = a.AddressPolicy(p.Email)
		switch {
		case errors.Is(perr, ErrBadUsername):
			p.fail("email", msgRequestEmail)
		case errors.Is(perr, ErrRefusedMailbox):
			p.fail("email", msgRequestMailbox)
			a.auditRefusal(ctx, username, store.ReasonRefusedMailbox)
		case errors.Is(perr, ErrLookAlike):
			p.fail("email", msgRequestLookAlike)
			a.auditRefusal(ctx, username, store.ReasonAddressPolicy)
		case errors.Is(perr, ErrDomainNotAllowed):
			p.fail("email", h.domainMessage())
			a.auditRefusal(ctx, username, store.ReasonDomainNotAllowed)
		case perr != nil:
			// Any further rule of the invitation policy (it may grow):
			// refused the same way, in words that fit every rule.
			p.fail("email", msgRequestPolicy)
			a.auditRefusal(ctx, username, store.ReasonAddressPolicy)
		}
	}
	if len(p.Errors) > 0 {
		return h.show(w, http.StatusUnprocessableEntity, "request", p)
	}

	// The mailbox's count, whether or not it has an account.
	sum := sha256.Sum256([]byte(username))
	if t, err := h.store.RecordFailure(ctx, "req-mbox:"+hex.EncodeToString(sum[:16]), now, lim.mailboxWindow); err != nil {
		return err
	} else if t.Failures > lim.perMailbox {
		if t.Failures == lim.perMailbox+1 {
			a.auditRefusal(ctx, username, store.ReasonMailboxLimit)
		}
		return refuse(http.StatusTooManyRequests, "email", msgRequestMailboxMany)
	}

	in.Email = username
	if err := a.submitRequest(ctx, username, in, clientAddr(r)); err != nil {
		if errors.Is(err, errRequestMail) {
			return &pageError{Status: http.StatusServiceUnavailable, Message: msgRequestMailDown, Cause: err}
		}
		return err
	}
	return redirect(w, r, PathRequestSent)
}

// domainMessage names the domains an address may have.
func (h *Handler) domainMessage() string {
	ds := h.settings().cfg.Invitations.AllowedDomains
	if len(ds) == 0 {
		return "Accounts cannot be requested here yet."
	}
	return "Use your work email address: accounts can only be requested for addresses at " + strings.Join(ds, " or ") + "."
}

type fieldProblem struct{ field, msg string }

const maxOrganisationRunes = 200

// checkRequestInput cleans the form's name, organisation and reason.
func (h *Handler) checkRequestInput(p requestPage) (RequestInput, []fieldProblem) {
	var in RequestInput
	var out []fieldProblem
	var err error
	if strings.TrimSpace(p.Email) == "" {
		out = append(out, fieldProblem{"email", msgRequestEmail})
	}
	if in.Name, err = cleanName(p.Name); err != nil {
		out = append(out, fieldProblem{"name", msgRequestNameLong})
	} else if in.Name == "" {
		out = append(out, fieldProblem{"name", msgRequestName})
	}
	orgs := h.settings().cfg.Requests.Organisations
	in.Organisation, err = cleanText(p.Organisation, maxOrganisationRunes, false)
	switch {
	case len(orgs) > 0 && in.Organisation != "" && !slices.Contains(orgs, in.Organisation):
		out = append(out, fieldProblem{"organisation", msgRequestOrgChoose})
	case err != nil:
		out = append(out, fieldProblem{"organisation", msgRequestOrgLong})
	}
	if in.Reason, err = cleanText(p.Reason, maxReasonRunes, true); err != nil {
		out = append(out, fieldProblem{"reason", msgRequestReasonLong})
	} else if in.Reason == "" {
		out = append(out, fieldProblem{"reason", msgRequestReason})
	}
	return in, out
}

// auditRefusal records a request refused before anything was stored.
func (a *Admin) auditRefusal(ctx context.Context, username string, why store.Reason) {
	if err := a.audit(ctx, store.EventRequestRefused, store.Actor(username), &store.User{Username: username}, map[string]any{"reason": why}); err != nil {
		a.log.ErrorContext(ctx, "cannot write audit event", "event", store.EventRequestRefused, "err", err)
	}
}

func (h *Handler) getRequestSent(w http.ResponseWriter, r *http.Request) error {
	p := requestDonePage{page: h.page(nil, "", "Check your email"), Lines: []string{
		"If the address you gave can have an account, we have sent it an email. Open the link in it within a day to confirm your request.",
		"Nothing there after a few minutes? Check your spam folder. If you already have an account, the email says so.",
	}, Link: PathSignIn, Label: "Back to sign in"}
	return h.show(w, http.StatusOK, "request-done", p)
}

// expiredLink is the answer to a verification link that is wrong, used,
// replaced by a newer one, or out of time.
func (h *Handler) expiredLink(w http.ResponseWriter) error {
	p := requestDonePage{page: h.page(nil, "", "This link no longer works"), Lines: []string{
		"The link has expired, has already been used, or a newer email replaced it.",
		"If you have already confirmed your request, there is nothing more to do: you will get an email when it is decided. Otherwise, request an account again.",
	}, Link: PathRequest, Label: "Request an account"}
	return h.show(w, http.StatusGone, "request-done", p)
}

func (h *Handler) getRequestVerify(w http.ResponseWriter, r *http.Request) error {
	token := truncate(r.URL.Query().Get("token"), 128)
	req, err := h.store.AccountRequestByToken(r.Context(), token)
	if errors.Is(err, store.ErrNotFound) {
		return h.expiredLink(w)
	}
	if err != nil {
		return err
	}
	if req.Status != store.RequestUnverified || !h.now().Before(req.ExpiresAt) {
		return h.expiredLink(w)
	}
	p := requestVerifyPage{page: h.page(nil, StepRequestVerify, "Confirm your request"), Token: token, Email: req.Email, Name: req.Name}
	p.Action = PathRequestVerify
	return h.show(w, http.StatusOK, "request-verify", p)
}

func (h *Handler) postRequestVerify(w http.ResponseWriter, r *http.Request) error {
	if err := form(r); err != nil {
		return err
	}
	ctx := withOrigin(r.Context(), r)
	v, automatic, err := h.admin().verifyRequest(ctx, truncate(r.PostForm.Get("token"), 128))
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
		return h.expiredLink(w)
	}
	if err != nil {
		return err
	}
	p := requestDonePage{page: h.page(nil, "", "Your request is confirmed")}
	if automatic && v.Status == store.RequestApproved {
		p.Title = "Your account is ready"
		p.Lines = []string{
			"Thank you. Your request is approved: we have sent " + v.Email + " the onboarding email with your username and initial password.",
			"Follow the sign-in link in it to set up your account.",
		}
		p.Link, p.Label = PathSignIn, "Sign in"
	} else {
		p.Lines = []string{
			"Thank you: " + v.Email + " is confirmed. Your request now waits for an approver.",
			"You will get an email either way: the onboarding email with your initial password when it is approved, or the reason if it is not.",
		}
	}
	return h.show(w, http.StatusOK, "request-done", p)
}
