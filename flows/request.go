package flows

// Account requests, on the admin service: an officer asks for an account on
// /request (request_page.go) and proves the mailbox from an emailed link;
// the request then waits for an approver, or is approved at once where
// requests.approval says automatic. Approval is an invitation (Invite, with
// the onboarding email); denial emails the requester the reason. Open
// requests expire: unverified after a day, unapproved after
// requests.unapproved_for. The console and `lanyard request …` list, show,
// approve and deny through the methods here; every change is one
// transaction with its audit event, and every email is sent after it.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/flows/mail"
	"github.com/lanyard-idp/lanyard/provider/store"
)

const (
	// verifyFor is how long a request waits for its mailbox to be proved.
	verifyFor = 24 * time.Hour
	// Lengths of what a requester types.
	maxReasonRunes     = 1000
	maxDenyReasonRunes = 500
)

// Errors of account requests, for the approver who asked; each refusal
// wraps one and says what to do.
var (
	ErrNoRequest         = errors.New("there is no such account request")
	ErrRequestNotPending = errors.New("the request is not waiting for a decision")
	ErrDenyReason        = errors.New("a denial needs a reason for the requester: one to 500 characters")
)

// RequestView is an account request as the console and the commands show
// it: its stored status, except that an open request whose time has run
// out reads expired before housekeeping has marked it.
type RequestView struct {
	store.AccountRequest
	// MailFailed: the email of the change (a denial's reason) could not
	// be sent; the change stands, and the failure is audited.
	MailFailed bool
}

func (a *Admin) view(r store.AccountRequest) RequestView {
	if r.Open() && !a.now().Before(r.ExpiresAt) {
		r.Status = store.RequestExpired
	}
	return RequestView{AccountRequest: r}
}

// Requests lists account requests, oldest first, a page at a time (after:
// the Cursor of the previous page's last one). status "" is every status.
func (a *Admin) Requests(ctx context.Context, status, after string, limit int) ([]RequestView, error) {
	if status != "" && !validStatus(status) {
		return nil, fmt.Errorf("unknown request status %q (want %s)", status, strings.Join(store.RequestStatuses, ", "))
	}
	rows, err := a.store.ListAccountRequests(ctx, store.RequestQuery{Status: status, After: after, Limit: limit})
	if err != nil {
		return nil, err
	}
	out := make([]RequestView, 0, len(rows))
	for _, r := range rows {
		v := a.view(r)
		if status != "" && v.Status != status {
			continue // open in the database, expired in fact
		}
		out = append(out, v)
	}
	return out, nil
}

func validStatus(s string) bool {
	for _, v := range store.RequestStatuses {
		if s == v {
			return true
		}
	}
	return false
}

// Request loads one account request (ErrNoRequest when there is none).
func (a *Admin) Request(ctx context.Context, id string) (RequestView, error) {
	r, err := a.store.AccountRequestByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return RequestView{}, refuseAdmin(ErrNoRequest, "there is no account request %s", truncate(id, 64))
	}
	if err != nil {
		return RequestView{}, err
	}
	return a.view(*r), nil
}

// ApproveRequest approves a pending request: the invitation is made — or,
// for a request of kind invitation, resent with a new initial password —
// (and the onboarding email sent) in the transaction that marks the request
// approved, so of racing approvals exactly one invites.
func (a *Admin) ApproveRequest(ctx context.Context, by store.Actor, id string) (*Invitation, error) {
	r, err := a.Request(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := pendingDecision(r); err != nil {
		return nil, err
	}
	// A fresh onboarding email for an invitation is a resend (the names
	// stay as the invitation has them); a new account an invitation.
	names, resend := Names{Full: r.Name}, r.Kind == store.RequestKindInvitation
	if resend {
		names = Names{}
	}
	return a.inviteWith(ctx, by, r.Email, names, resend, func(ctx context.Context) error {
		if err := a.decide(ctx, r.ID, store.RequestApproved, by, ""); err != nil {
			return err
		}
		return a.audit(ctx, store.EventRequestApprove, by, &store.User{Username: r.Email}, map[string]any{"request": r.ID})
	})
}

// DenyRequest denies a pending request and emails the requester the
// reason, after the denial is recorded.
func (a *Admin) DenyRequest(ctx context.Context, by store.Actor, id, reason string) (RequestView, error) {
	if by == "" {
		return RequestView{}, errNoActor
	}
	reason, err := cleanText(reason, maxDenyReasonRunes, true)
	if err != nil || reason == "" {
		return RequestView{}, ErrDenyReason
	}
	r, err := a.Request(ctx, id)
	if err != nil {
		return RequestView{}, err
	}
	if err := pendingDecision(r); err != nil {
		return RequestView{}, err
	}
	err = a.inTx(ctx, func(ctx context.Context) error {
		if err := a.decide(ctx, r.ID, store.RequestDenied, by, reason); err != nil {
			return err
		}
		return a.audit(ctx, store.EventRequestDeny, by, &store.User{Username: r.Email}, map[string]any{"request": r.ID, "reason": reason})
	})
	if err != nil {
		return RequestView{}, err
	}
	r.Status, r.DenyReason, r.DecidedBy, r.DecidedAt = store.RequestDenied, reason, string(by), a.now().UTC()
	r.MailFailed = !a.requestMail(ctx, by, "request-denied", r.AccountRequest, requestMail{DenyReason: reason, RequestURL: a.link(PathRequest)})
	return r, nil
}

// pendingDecision refuses a decision on a request that is not pending.
func pendingDecision(r RequestView) error {
	switch r.Status {
	case store.RequestPending:
		return nil
	case store.RequestUnverified:
		return refuseAdmin(ErrRequestNotPending, "request %s is not verified yet: the requester has not proved the mailbox %s", r.ID, r.Email)
	case store.RequestExpired:
		return refuseAdmin(ErrRequestNotPending, "request %s has expired: the requester can ask again", r.ID)
	}
	return refuseAdmin(ErrRequestNotPending, "request %s was already %s by %s", r.ID, r.Status, r.DecidedBy)
}

// decide records a decision, refusing one that lost a race.
func (a *Admin) decide(ctx context.Context, id, to string, by store.Actor, reason string) error {
	err := a.store.DecideAccountRequest(ctx, id, to, string(by), reason, a.now().UTC())
	if errors.Is(err, store.ErrConflict) {
		return refuseAdmin(ErrRequestNotPending, "request %s was decided at the same moment by someone else", id)
	}
	return err
}

// ExpireRequests marks the open requests whose time has run out expired,
// each with its audit event, and returns how many there were.
func (a *Admin) ExpireRequests(ctx context.Context) (int, error) {
	n := 0
	err := a.inTx(ctx, func(ctx context.Context) error {
		var err error
		n, err = a.expire(ctx, "")
		return err
	})
	return n, err
}

// expire marks the due open requests (of one mailbox, or all) expired and
// audits each, in ctx's transaction.
func (a *Admin) expire(ctx context.Context, email string) (int, error) {
	due, err := a.store.ExpireAccountRequests(ctx, a.now().UTC(), email)
	if err != nil {
		return 0, err
	}
	for _, r := range due {
		if err := a.audit(ctx, store.EventRequestExpire, store.ActorAutomatic, &store.User{Username: r.Email},
			map[string]any{"request": r.ID, "was": r.Status}); err != nil {
			return 0, err
		}
	}
	return len(due), nil
}

// RequestInput is what the request form carries, checked by
// checkRequestInput.
type RequestInput struct {
	Email, Name, Organisation, Reason string
}

// outcome is what a submission did; the requester's page is the same
// whatever it is (no enumeration), the email differs.
type outcome int

const (
	outcomeNew      outcome = iota // a new request: the verification link
	outcomeRenewed                 // an unverified one: a fresh link
	outcomeWaiting                 // a pending one: "it is waiting"
	outcomeExisting                // the address has an account
)

// submitRequest records a request for username (already past the address
// policy) and sends the email it calls for: a new or renewed verification
// link, "your request is waiting", or "you already have an account". The
// mailbox's open request, if any, is reused; of racing submissions one
// creates it.
func (a *Admin) submitRequest(ctx context.Context, username string, in RequestInput, addr string) error {
	now := a.now().UTC()
	token, err := randomToken()
	if err != nil {
		return err
	}
	var (
		got  outcome
		req  store.AccountRequest
		user *store.User
	)
	err = retry(ctx, func() error {
		return a.store.InTx(ctx, func(ctx context.Context) error {
			if _, err := a.expire(ctx, username); err != nil {
				return err
			}
			u, err := a.store.UserByUsername(ctx, username)
			switch {
			case err == nil:
				got, user = outcomeExisting, u
				return a.audit(ctx, store.EventRequestExisting, store.Actor(username), u, nil)
			case !errors.Is(err, store.ErrNotFound):
				return err
			}
			open, err := a.store.OpenAccountRequest(ctx, username)
			switch {
			case err == nil && open.Status == store.RequestUnverified:
				got, req = outcomeRenewed, *open
				if err := a.store.RenewRequestToken(ctx, open.ID, token, now.Add(verifyFor)); err != nil {
					return err
				}
				return a.audit(ctx, store.EventRequestRepeat, store.Actor(username), &store.User{Username: username}, map[string]any{"request": open.ID, "status": open.Status})
			case err == nil:
				got, req = outcomeWaiting, *open
				return a.audit(ctx, store.EventRequestRepeat, store.Actor(username), &store.User{Username: username}, map[string]any{"request": open.ID, "status": open.Status})
			case !errors.Is(err, store.ErrNotFound):
				return err
			}
			id, err := newRequestID()
			if err != nil {
				return err
			}
			req = store.AccountRequest{ID: id, Email: username, Name: in.Name, Organisation: in.Organisation, Reason: in.Reason,
				Token: token, ClientAddr: addr, CreatedAt: now, ExpiresAt: now.Add(verifyFor)}
			if err := a.store.CreateAccountRequest(ctx, &req); err != nil {
				if errors.Is(err, store.ErrConflict) {
					// A racing submission made the mailbox's request first:
					// run again, and find it.
					return fmt.Errorf("%w: %w", store.ErrSerialization, err)
				}
				return err
			}
			got = outcomeNew
			return a.audit(ctx, store.EventRequestSubmit, store.Actor(username), &store.User{Username: username},
				map[string]any{"request": id, "organisation": in.Organisation})
		})
	})
	if err != nil {
		return err
	}
	var sent bool
	switch got {
	case outcomeExisting:
		sent = a.requestMail(ctx, store.Actor(username), "request-existing",
			store.AccountRequest{Email: username, Name: user.Name}, requestMail{SignInURL: a.link(PathSignIn)})
	case outcomeWaiting:
		sent = a.requestMail(ctx, store.Actor(username), "request-waiting", req, requestMail{})
	default:
		exp := now.Add(verifyFor)
		sent = a.requestMail(ctx, store.Actor(username), "request-verify", req, requestMail{
			VerifyURL: a.link(PathRequestVerify + "?token=" + url.QueryEscape(token)),
			ExpiresOn: exp.Format(dateLayout), ExpiresTime: exp.Format("15:04")})
	}
	if !sent {
		return errRequestMail
	}
	return nil
}

// errRequestMail: the email a submission called for could not be sent.
var errRequestMail = errors.New("the email could not be sent")

// verifyRequest proves the mailbox of the unverified request whose link
// carried token. A request of a domain approved automatically is approved
// at once (the onboarding email follows); otherwise the approvers are
// emailed a link to it. It returns the request as verified, and whether it
// was approved at once.
func (a *Admin) verifyRequest(ctx context.Context, token string) (RequestView, bool, error) {
	r, err := a.store.AccountRequestByToken(ctx, token)
	if err != nil {
		return RequestView{}, false, err
	}
	now := a.now().UTC()
	until := now.Add(a.cfg.Requests.UnapprovedFor.D())
	err = a.inTx(ctx, func(ctx context.Context) error {
		if err := a.store.VerifyAccountRequest(ctx, r.ID, now, until); err != nil {
			return err
		}
		return a.audit(ctx, store.EventRequestVerify, store.Actor(r.Email), &store.User{Username: r.Email}, map[string]any{"request": r.ID})
	})
	if err != nil {
		return RequestView{}, false, err
	}
	r.Status, r.VerifiedAt, r.ExpiresAt = store.RequestPending, now, until
	_, domain, _ := strings.Cut(r.Email, "@")
	if a.cfg.Requests.ApprovalFor(domain) == config.ApprovalAutomatic {
		if _, err := a.ApproveRequest(ctx, store.ActorAutomatic, r.ID); err != nil {
			// The request stays pending for an approver.
			a.log.WarnContext(ctx, "automatic approval failed; the request waits for an approver", "request", r.ID, "err", err)
		} else {
			v, err := a.Request(ctx, r.ID)
			return v, true, err
		}
	}
	a.notifyApprovers(ctx, store.Actor(r.Email), *r)
	return RequestView{AccountRequest: *r}, false, nil
}

// notifyApprovers emails every approver (the admins, when there is no
// approver) a link to the pending request r in the console.
func (a *Admin) notifyApprovers(ctx context.Context, by store.Actor, r store.AccountRequest) {
	approvers := a.cfg.AdminsWith(config.RoleApprover)
	if len(approvers) == 0 {
		approvers = a.cfg.AdminsWith(config.RoleAdmin)
	}
	link := a.link(consoleRequestPath(r.ID))
	if len(approvers) == 0 {
		a.log.WarnContext(ctx, "a request waits, but no admin is configured to approve it (admins:)", "request", r.ID)
	}
	for _, to := range approvers {
		a.send1(ctx, by, "request-approver", to, r, requestMail{ConsoleURL: link})
	}
}

// requestMail is the data of the request mail templates
// (templates/mail/request-*.{txt,html}).
type requestMail struct {
	Product, Environment string
	Kind                 string // store.RequestKind…: a new account, or a fresh onboarding email
	Name, Email          string
	Organisation, Reason string
	RequestID            string
	VerifyURL            string // request-verify
	ExpiresOn            string
	ExpiresTime          string
	SignInURL            string // request-existing
	ConsoleURL           string // request-approver
	DenyReason           string // request-denied
	RequestURL           string // request-denied: ask again
}

// requestMail emails the requester of r the mail template page.
func (a *Admin) requestMail(ctx context.Context, by store.Actor, page string, r store.AccountRequest, m requestMail) bool {
	return a.send1(ctx, by, page, r.Email, r, m)
}

// send1 renders page for r and sends it to the address to. A failure is
// logged and audited (request.mail_failed); it reports whether it went.
func (a *Admin) send1(ctx context.Context, by store.Actor, page, to string, r store.AccountRequest, m requestMail) bool {
	m.Product, m.Environment, m.Kind = a.cfg.Journey.DisplayName, a.cfg.Journey.Environment, r.Kind
	m.Name, m.Email, m.Organisation, m.Reason, m.RequestID = r.Name, r.Email, r.Organisation, r.Reason, r.ID
	err := errors.New("flows: the admin service has no mailer or templates")
	if a.mailer != nil && a.pages != nil {
		var subject, text, html string
		subject, text, html, err = a.pages.Mail(page, m)
		if err == nil {
			err = a.mailer.Send(ctx, mail.Message{To: to, Subject: subject, Text: text, HTML: html})
		}
	}
	if err == nil {
		return true
	}
	a.log.WarnContext(ctx, page+" email not sent", "request", r.ID, "err", err)
	if aerr := a.audit(context.WithoutCancel(ctx), store.EventRequestMailFailed, by, &store.User{Username: r.Email},
		map[string]any{"mail": page, "request": r.ID, "error": err.Error()}); aerr != nil {
		a.log.ErrorContext(ctx, "audit of the mail failure not written", "err", aerr)
	}
	return false
}

// link is a path under the configured issuer (never the request's Host).
func (a *Admin) link(path string) string { return strings.TrimRight(a.cfg.Issuer, "/") + path }

// cleanText trims what a person typed and refuses control characters
// (multiline allows line breaks and tabs) and more than max characters.
func cleanText(s string, max int, multiline bool) (string, error) {
	s = strings.TrimSpace(strings.ReplaceAll(s, "\r\n", "\n"))
	bad := func(r rune) bool { return unicode.IsControl(r) && !(multiline && (r == '\n' || r == '\t')) }
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > max || strings.IndexFunc(s, bad) >= 0 {
		return "", errors.New("too long or not text")
	}
	return s, nil
}

// randomToken is a 256-bit verification token, hex.
func randomToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("request token: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// newRequestID is a random 64-bit id, hex: short enough to type after
// `lanyard request approve`, and not a count of requests.
func newRequestID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("request id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
