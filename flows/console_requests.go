package flows

// The console's requests page (data-page="requests"): the queue of account
// requests by status, each pending one with its approve and deny forms
// (data-action="approve|deny"); a single request's page is the same page
// with one request (the link emailed to approvers).

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/lanyard-idp/lanyard/provider/store"
)

// requestFilters are the queue's filters, the waiting ones first.
var requestFilters = []struct{ key, label string }{
	{store.RequestPending, "Waiting for a decision"},
	{store.RequestUnverified, "Address not confirmed"},
	{store.RequestApproved, "Approved"},
	{store.RequestDenied, "Denied"},
	{store.RequestExpired, "Expired"},
	{"all", "All"},
}

// statusLabel is a request's status in words.
func statusLabel(status string) string {
	for _, f := range requestFilters {
		if f.key == status {
			return f.label
		}
	}
	return status
}

// requestsShown is the length of a page of the queue.
const requestsShown = 25

type requestsPage struct {
	consolePage
	Status   string        // the filter ("" every status)
	Statuses []stateOption // the filters offered
	Requests []requestRow
	Next     string // the next page's address, "" when none
	One      bool   // a single request's page
}

type requestRow struct {
	ID, Email, Name, Organisation, Reason, Status string
	StatusLabel                                   string
	Created, Verified, Decided, Expires           string
	DecidedBy, DenyReason                         string
	Pending                                       bool
	ReasonField                                   string // the id of its deny form's reason box
	// Invitation: a fresh onboarding email for an invitation, not a new
	// account (approving it resends the invitation).
	Invitation bool
}

func (h *Handler) requestRows(ctx context.Context, views []RequestView) []requestRow {
	out := make([]requestRow, 0, len(views))
	for _, v := range views {
		out = append(out, requestRow{ID: v.ID, Invitation: v.Kind == store.RequestKindInvitation, Email: v.Email, Name: v.Name, Organisation: v.Organisation, Reason: v.Reason,
			Status: v.Status, StatusLabel: statusLabel(v.Status), Created: when(v.CreatedAt), Verified: when(v.VerifiedAt), Decided: when(v.DecidedAt),
			Expires: when(v.ExpiresAt), DecidedBy: h.admin().ActorName(ctx, v.DecidedBy), DenyReason: v.DenyReason,
			Pending: v.Status == store.RequestPending, ReasonField: "reason-" + v.ID})
	}
	return out
}

// when is a time as the console shows it, in UTC.
func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2 Jan 2006 15:04") + " UTC"
}

func (h *Handler) requestsPage(c *console, status string) requestsPage {
	p := requestsPage{consolePage: h.consolePage(c, "requests", "Account requests"), Status: status}
	for _, f := range requestFilters {
		p.Statuses = append(p.Statuses, stateOption{Key: f.key, Label: f.label, Selected: f.key == status})
	}
	return p
}

func (h *Handler) consoleRequests(w http.ResponseWriter, r *http.Request, c *console) error {
	q := r.URL.Query()
	status := q.Get("status")
	switch {
	case status == "":
		status = store.RequestPending
	case status != "all" && !slices.Contains(store.RequestStatuses, status):
		return &pageError{Status: http.StatusBadRequest, Message: "There is no such status of a request."}
	}
	filter := status
	if status == "all" {
		filter = ""
	}
	views, err := h.admin().Requests(r.Context(), filter, truncate(q.Get("after"), 100), requestsShown+1)
	if err != nil {
		return &pageError{Status: http.StatusBadRequest, Message: "This page of requests does not exist: start again from the first page.", Cause: err}
	}
	p := h.requestsPage(c, status)
	if len(views) > requestsShown {
		views = views[:requestsShown]
		p.Next = PathAdminRequests + "?" + url.Values{"status": {status}, "after": {views[len(views)-1].Cursor()}}.Encode()
	}
	p.Requests = h.requestRows(r.Context(), views)
	return h.show(w, http.StatusOK, "admin-requests", p)
}

func (h *Handler) consoleRequest(w http.ResponseWriter, r *http.Request, c *console) error {
	v, err := h.admin().Request(r.Context(), truncate(r.PathValue("id"), 64))
	if errors.Is(err, ErrNoRequest) {
		return &pageError{Status: http.StatusNotFound, Message: "There is no such account request."}
	}
	if err != nil {
		return err
	}
	return h.showRequest(w, r, c, v, http.StatusOK, "", "")
}

// showRequest renders one request's page, with a problem at field when
// msg is set.
func (h *Handler) showRequest(w http.ResponseWriter, r *http.Request, c *console, v RequestView, status int, field, msg string) error {
	p := h.requestsPage(c, v.Status)
	p.Title = "Account request from " + v.Name
	p.One, p.Requests = true, h.requestRows(r.Context(), []RequestView{v})
	if msg != "" {
		p.fail(field, msg)
	}
	return h.show(w, status, "admin-requests", p)
}

// postRequestAction approves or denies a request.
func (h *Handler) postRequestAction(w http.ResponseWriter, r *http.Request, c *console) error {
	ctx, a := r.Context(), h.admin()
	v, err := a.Request(ctx, truncate(r.PathValue("id"), 64))
	if errors.Is(err, ErrNoRequest) {
		return &pageError{Status: http.StatusNotFound, Message: "There is no such account request."}
	}
	if err != nil {
		return err
	}
	switch r.PathValue("action") {
	case "approve":
		inv, err := a.ApproveRequest(ctx, c.by(), v.ID)
		if msg, ok := consoleRefusal(err, v.Email); ok {
			if errors.Is(err, ErrRequestNotPending) {
				msg = "This request is no longer waiting for a decision: " + err.Error() + "."
			}
			return h.showRequest(w, r, c, v, http.StatusConflict, "", msg)
		}
		if err != nil {
			return err
		}
		notice := fmt.Sprintf("Approved: %s is invited and the onboarding email is on its way (valid until %s).", inv.Username, when(inv.ExpiresAt))
		if inv.MailErr != nil {
			notice = fmt.Sprintf("Approved: %s is invited, but the onboarding email could not be sent. Resend the invitation from the officer's page.", inv.Username)
		}
		return h.done(w, r, c, notice, PathAdminRequests)
	case "deny":
		denied, err := a.DenyRequest(ctx, c.by(), v.ID, r.PostForm.Get("reason"))
		if msg, ok := consoleRefusal(err, v.Email); ok {
			field, status := "", http.StatusConflict
			if errors.Is(err, ErrDenyReason) {
				field, status = "reason-"+v.ID, http.StatusUnprocessableEntity
			} else if errors.Is(err, ErrRequestNotPending) {
				msg = "This request is no longer waiting for a decision: " + err.Error() + "."
			}
			return h.showRequest(w, r, c, v, status, field, msg)
		}
		if err != nil {
			return err
		}
		notice := fmt.Sprintf("Denied: %s has been emailed the reason.", v.Email)
		if denied.MailFailed {
			notice = fmt.Sprintf("Denied, but the email with the reason could not be sent: tell %s yourself.", v.Email)
		}
		return h.done(w, r, c, notice, PathAdminRequests)
	}
	return &pageError{Status: http.StatusNotFound, Message: "There is no such action on a request."}
}
