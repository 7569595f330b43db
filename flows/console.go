package flows

// The admin console (/admin): the web face of the admin service, for the
// officers the configuration names under admins: with their roles. They
// sign in through the normal journey; the console asks for the second
// factor of that sign-in, and every change for a proof less than
// reauthAfter old (the account page's confirm-it-is-you page, which comes
// back here). Pages and actions are read from two tables below, with the
// roles that may use each: a role lacking one never sees it, and a request
// for it anyway is refused (403) and audited. Every change goes through
// Admin with the acting admin's user id as its actor, and the request's
// address and browser in its audit event.
//
// This file is the guard, the roles and the page shell;
// console_requests.go, console_officers.go, console_invite.go and
// console_audit.go (audit and clients) are the pages.

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/provider/authn"
	"github.com/lanyard-idp/lanyard/provider/store"
	"github.com/lanyard-idp/lanyard/templates"
)

// The console's routes.
const (
	PathAdmin           = "/admin"
	PathAdminRequests   = "/admin/requests"
	PathAdminOfficers   = "/admin/officers"
	PathAdminInvite     = "/admin/invite"
	PathAdminCSVPreview = "/admin/invite/preview"
	PathAdminCSVSend    = "/admin/invite/csv"
	PathAdminAudit      = "/admin/audit"
	PathAdminClients    = "/admin/clients"
)

func consoleRequestPath(id string) string { return PathAdminRequests + "/" + url.PathEscape(id) }
func consoleOfficerPath(id string) string { return PathAdminOfficers + "/" + url.PathEscape(id) }

// roleSet is a set of console roles.
type roleSet uint8

const (
	roleAdmin roleSet = 1 << iota
	roleApprover
	roleHelpdesk
)

func rolesOf(names []string) roleSet {
	var rs roleSet
	for _, n := range names {
		switch n {
		case config.RoleAdmin:
			rs |= roleAdmin
		case config.RoleApprover:
			rs |= roleApprover
		case config.RoleHelpdesk:
			rs |= roleHelpdesk
		}
	}
	return rs
}

// may reports whether the set holds a role of need. An admin may do
// everything.
func (rs roleSet) may(need roleSet) bool { return rs&(need|roleAdmin) != 0 }

// What each page needs.
const (
	needRequests = roleApprover
	needOfficers = roleHelpdesk
	needInvite   = roleAdmin
	needAudit    = roleHelpdesk
	needClients  = roleAdmin
)

// consolePages are the console's pages: data-page, path, label in the
// navigation, and the roles that see it.
var consolePages = []struct {
	page, path, label string
	need              roleSet
}{
	{"requests", PathAdminRequests, "Requests", needRequests},
	{"officers", PathAdminOfficers, "Officers", needOfficers},
	{"invite", PathAdminInvite, "Invite", needInvite},
	{"audit", PathAdminAudit, "Audit", needAudit},
	{"clients", PathAdminClients, "Clients", needClients},
}

// Console messages.
const (
	msgNotAdmin             = "The admin console is for the administrators the configuration names. Your account is not one of them."
	msgConsoleNeedsFactor   = "The admin console needs a sign-in with your second factor. Set up an authenticator app or a passkey on your account page, then sign in again."
	msgConsoleRole          = "Your role does not allow this."
	msgConsoleHigher        = "This account has a higher role than yours: you cannot change it here."
	msgConsoleOwnMFA        = "You cannot reset your own second factor here: change it on your account page."
	msgConsoleOwnDisable    = "You cannot disable your own account."
	msgConsoleConfirmed     = "Thank you. For the next 10 minutes you can make changes in the admin console."
	msgConsoleConfirmPrompt = "To make changes in the admin console, first confirm it is you."
	msgConsoleNotRecent     = "You will be asked to confirm it is you before a change: it has been more than 10 minutes."
)

// console is what the guard hands a console page: the admin's checked flow
// and roles.
type console struct {
	f      *flow
	admin  *store.User
	roles  roleSet
	names  []string // the role names, as configured
	notice string   // a message left by the previous change
}

// by is the actor of the admin's changes.
func (c *console) by() store.Actor { return store.Actor(c.admin.ID) }

type consoleHandler func(w http.ResponseWriter, r *http.Request, c *console) error

// guard is the console's router guard: fn runs only for a fully signed-in
// admin who proved the second factor in this sign-in and holds a role in
// need; a change (POST) also needs a recent proof, else the
// confirm-it-is-you page first, which returns to back. Anyone else is
// turned away once: to the sign-in (which comes back here), to the
// journey's pending step, or with a 403 that is audited.
func (h *Handler) guard(need roleSet, back string, fn consoleHandler) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		f, _, err := h.flowOf(w, r)
		if err != nil {
			return err
		}
		here := r.URL.RequestURI()
		if r.Method != http.MethodGet {
			here = back
		}
		if f == nil || f.s.row.State != stateAuthenticated || !f.settled {
			return h.signIn(w, r, authn.SignInRequest{ResumeURL: h.settings().issuer.String() + here, RequestedAt: h.now()})
		}
		names := h.settings().cfg.AdminRoles(f.user.Username)
		c := &console{f: f, admin: f.user, roles: rolesOf(names), names: names}
		switch {
		case c.roles == 0:
			return h.forbidden(r, c, "", store.ReasonNotAdmin, msgNotAdmin)
		case !f.s.j.FactorVerified:
			return h.forbidden(r, c, "", store.ReasonNoFactor, msgConsoleNeedsFactor)
		case !c.roles.may(need):
			return h.forbidden(r, c, "", store.ReasonRole, msgConsoleRole)
		}
		if r.Method == http.MethodPost {
			if !strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/") {
				if err := form(r); err != nil {
					return err
				}
			}
			if !h.recent(f) {
				f.s.j.AdminReturn = back
				if err := h.save(r.Context(), f.s); err != nil {
					return err
				}
				return redirect(w, r, PathReauth)
			}
		} else if f.s.j.AdminNotice != "" {
			c.notice, f.s.j.AdminNotice = f.s.j.AdminNotice, ""
			if err := h.save(r.Context(), f.s); err != nil {
				return err
			}
		}
		return fn(w, r.WithContext(withOrigin(r.Context(), r)), c)
	}
}

// forbidden refuses a console request the admin's roles do not allow, with
// an audit event naming what was tried (a role lacking an action never sees
// it, so this is a forged or stale request).
func (h *Handler) forbidden(r *http.Request, c *console, target string, why store.Reason, msg string) error {
	detail := map[string]any{"by": c.admin.ID, "action": r.Method + " " + truncate(r.URL.Path, 200), "reason": why}
	if target != "" {
		detail["target"] = target
	}
	h.auditLog(r.Context(), r, c.f.s, event{Name: store.EventConsoleForbidden, UserID: c.admin.ID, Username: c.admin.Username, Detail: detail})
	return &pageError{Status: http.StatusForbidden, Title: "You cannot do this here", Message: msg}
}

// consolePage is what every console page shares.
type consolePage struct {
	page
	// Recent: a change goes through without confirming it is you first.
	Recent bool
	Admin  string // who is signed in
	Roles  string // their roles, as configured
}

// consolePage starts a console page: the layout's navigation (the pages
// the admin's roles see), data-page, and the notice the last change left.
func (h *Handler) consolePage(c *console, pageName, title string) consolePage {
	p := consolePage{page: page{Base: h.base(title)}, Recent: h.recent(c.f), Admin: c.admin.Username, Roles: strings.Join(c.names, ", ")}
	p.SignedIn, p.Page, p.Notice = true, pageName, c.notice
	for _, cp := range consolePages {
		if c.roles.may(cp.need) {
			p.Nav = append(p.Nav, templates.NavLink{Href: cp.path, Label: cp.label, Current: cp.page == pageName || pageName == "officer" && cp.page == "officers"})
		}
	}
	return p
}

// done records a change's notice for the next page and goes there.
func (h *Handler) done(w http.ResponseWriter, r *http.Request, c *console, notice, to string) error {
	c.f.s.j.AdminNotice = notice
	if err := h.save(r.Context(), c.f.s); err != nil {
		return err
	}
	return redirect(w, r, to)
}

// consoleHome sends the admin to the first page their roles see.
func (h *Handler) consoleHome(w http.ResponseWriter, r *http.Request, c *console) error {
	for _, cp := range consolePages {
		if c.roles.may(cp.need) {
			return redirect(w, r, cp.path)
		}
	}
	return h.forbidden(r, c, "", store.ReasonRole, msgConsoleRole)
}

// admin is the admin service on the configuration in force (the console
// follows a reload: admins, roles and policies come from it).
func (h *Handler) admin() *Admin {
	return &Admin{cfg: h.settings().cfg, store: h.store, mailer: h.auditedMailer, pages: h.pages, log: h.log, now: h.now}
}

// ExpireRequests marks the account requests whose time has run out
// expired, each audited (the server's housekeeping calls it).
func (h *Handler) ExpireRequests(ctx context.Context) (int, error) {
	return h.admin().ExpireRequests(ctx)
}

// consoleMessage says an admin service refusal in the console's words
// (the service's own name the commands to run).
func consoleMessage(err error, who string) string {
	for _, m := range []struct {
		sentinel error
		msg      string
	}{
		{ErrAlreadyDisabled, who + " is already disabled."},
		{ErrNotDisabled, who + " is not disabled."},
		{ErrNotInvited, who + " is not a pending invitation: disable the account instead."},
		{ErrNotActive, who + " has not accepted the invitation yet: resend the invitation instead."},
		{ErrAccountDisabled, who + " has a disabled account: enable it first."},
		{ErrNoInvitation, "There is no pending invitation for " + who + "."},
		{ErrNoAccount, "There is no account for " + who + "."},
		{ErrAlreadyActive, who + " already has an active account."},
		{ErrAlreadyInvited, who + " is already invited: resend the invitation from the officer's page instead."},
		{ErrDomainNotAllowed, "Only addresses in the allowed domains can be invited (" + who + " is not)."},
		{ErrRefusedMailbox, who + " is a refused mailbox (LiteMail or similar): invite the officer's standard mailbox."},
		{ErrLookAlike, who + " could be mistaken for another address (letters of other alphabets, or an xn-- domain): invite the officer's plain address."},
		{ErrBadUsername, "Enter the officer's email address, like name@agency.example."},
		{ErrBadName, "Enter the name on one line, in at most 200 characters."},
		{ErrRequestNotPending, ""},
		{ErrNoRequest, "There is no such account request."},
		{ErrDenyReason, "Enter a reason for the requester: at most 500 characters."},
	} {
		if errors.Is(err, m.sentinel) {
			if m.msg == "" {
				break
			}
			return m.msg
		}
	}
	var ae *adminError
	if errors.As(err, &ae) {
		return ae.msg
	}
	return ""
}

// consoleRefusal is an admin service refusal the console shows on the page (ok),
// or an error for the error page.
func consoleRefusal(err error, who string) (string, bool) {
	var ae *adminError
	if errors.As(err, &ae) || errors.Is(err, ErrBadUsername) || errors.Is(err, ErrBadName) || errors.Is(err, ErrDenyReason) {
		return consoleMessage(err, who), true
	}
	return "", false
}

// mountConsole registers the request pages and the console on route (the
// journey's security headers, cross-origin protection and body limit) and
// routeBig (the same with room for an uploaded CSV).
func (h *Handler) mountConsole(route, routeBig func(pattern string, fn handlerFunc)) {
	route("GET "+PathRequest, h.getRequest)
	route("POST "+PathRequest, h.postRequest)
	route("GET "+PathRequestSent, h.getRequestSent)
	route("GET "+PathRequestVerify, h.getRequestVerify)
	route("POST "+PathRequestVerify, h.postRequestVerify)

	// Every console page is under the guard; no page needs less than one role.
	const anyRole = roleAdmin | roleApprover | roleHelpdesk
	route("GET "+PathAdmin, h.guard(anyRole, PathAdmin, h.consoleHome))
	route("GET "+PathAdminRequests, h.guard(needRequests, PathAdminRequests, h.consoleRequests))
	route("GET "+PathAdminRequests+"/{id}", h.guard(needRequests, PathAdminRequests, h.consoleRequest))
	route("POST "+PathAdminRequests+"/{id}/{action}", h.guard(needRequests, PathAdminRequests, h.postRequestAction))
	route("GET "+PathAdminOfficers, h.guard(needOfficers, PathAdminOfficers, h.consoleOfficers))
	route("GET "+PathAdminOfficers+"/{id}", h.guard(needOfficers, PathAdminOfficers, h.consoleOfficer))
	// An action's own roles are checked by the handler, with the target's.
	route("POST "+PathAdminOfficers+"/{id}/{action}", h.guardOfficerAction(h.postOfficerAction))
	route("GET "+PathAdminInvite, h.guard(needInvite, PathAdminInvite, h.consoleInvite))
	route("POST "+PathAdminInvite, h.guard(needInvite, PathAdminInvite, h.postInvite))
	routeBig("POST "+PathAdminCSVPreview, h.guard(needInvite, PathAdminInvite, h.postCSVPreview))
	routeBig("POST "+PathAdminCSVSend, h.guard(needInvite, PathAdminInvite, h.postCSVSend))
	route("GET "+PathAdminAudit, h.guard(needAudit, PathAdminAudit, h.consoleAudit))
	route("GET "+PathAdminClients, h.guard(needClients, PathAdminClients, h.consoleClients))
}

// guardOfficerAction guards an action on an officer: any console role
// passes the router (the action's own right is the handler's to check,
// with the target's role, so a refusal names both), and a change returns
// to the officer's page after confirming it is you.
func (h *Handler) guardOfficerAction(fn consoleHandler) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		back := consoleOfficerPath(r.PathValue("id"))
		return h.guard(roleAdmin|roleApprover|roleHelpdesk, back, fn)(w, r)
	}
}
