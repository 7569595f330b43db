package flows

// The console's officers (data-page="officers": search by name or address,
// filter by state, a page at a time) and an officer's page
// (data-page="officer": state, sign-in methods, last sign-in, accepted
// policy versions, and the actions the admin's roles allow on this
// account, each a form with data-action).

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/provider/store"
)

// officersShown is the length of a page of officers.
const officersShown = 50

// The officer states the list filters by: the stored states, and two that
// are read from elsewhere (a lock; an invitation's expiry).
const (
	stateLocked  = "locked"
	stateExpired = "expired"
)

var officerStates = []struct{ key, label string }{
	{"", "Any state"},
	{store.UserInvited, "Invited"},
	{store.UserActive, "Active"},
	{store.UserDisabled, "Disabled"},
	{stateLocked, "Locked"},
	{stateExpired, "Invitation expired"},
}

type officersPage struct {
	consolePage
	Search, State string
	States        []stateOption
	Officers      []officerRow
	Next          string // the next page's address, "" when none
	Searched      bool
}

type stateOption struct {
	Key, Label string
	Selected   bool
}

type officerRow struct {
	ID, Username, Name, State, StateLabel, LastSignIn string
}

// officerState is an account's state as the console says it: disabled,
// locked, invitation expired, invited or active.
func officerState(u *store.User, lockedUntil, now time.Time) (key, label string) {
	switch {
	case u.State == store.UserDisabled:
		return store.UserDisabled, "Disabled"
	case lockedUntil.After(now):
		return stateLocked, "Locked until " + when(lockedUntil)
	case u.State == store.UserInvited && u.PasswordInitial && !u.InviteExpiresAt.IsZero() && !now.Before(u.InviteExpiresAt):
		return stateExpired, "Invitation expired"
	case u.State == store.UserInvited:
		return store.UserInvited, "Invited"
	}
	return store.UserActive, "Active"
}

// accountOfKey is the user id (or, for failures from before the account
// existed, the username) whose account counter key is.
func accountOfKey(key string) (string, bool) {
	for _, p := range []string{keyAccount, keyFactor, keyFactorPerDay} {
		if who, ok := strings.CutPrefix(key, p); ok {
			return who, true
		}
	}
	return "", false
}

// lockOf is when the account's lock ends, from the locked keys.
func lockOf(u *store.User, locked map[string]time.Time) time.Time {
	var until time.Time
	for _, k := range accountKeys(u) {
		if t := locked[k]; t.After(until) {
			until = t
		}
	}
	return until
}

func (h *Handler) consoleOfficers(w http.ResponseWriter, r *http.Request, c *console) error {
	ctx, q, now := r.Context(), r.URL.Query(), h.now().UTC()
	p := officersPage{consolePage: h.consolePage(c, "officers", "Officers")}
	p.Search = strings.TrimSpace(truncate(q.Get("q"), 200))
	p.State = q.Get("state")
	p.Searched = p.Search != "" || p.State != ""
	valid := false
	for _, s := range officerStates {
		p.States = append(p.States, stateOption{Key: s.key, Label: s.label, Selected: s.key == p.State})
		valid = valid || s.key == p.State
	}
	if !valid {
		p.State = ""
		p.fail("state", "Choose a state from the list.")
		return h.show(w, http.StatusBadRequest, "admin-officers", p)
	}
	after := truncate(q.Get("after"), 254)
	locked, err := h.store.LockedKeys(ctx, "", now)
	if err != nil {
		return err
	}
	var users []store.User
	if p.State == stateLocked {
		users, err = h.lockedOfficers(ctx, locked, p.Search, after, officersShown+1)
	} else {
		uq := store.UserQuery{Search: p.Search, After: after, Limit: officersShown + 1}
		switch p.State {
		case stateExpired:
			uq.InviteExpiredAt = now
		case store.UserInvited, store.UserActive, store.UserDisabled:
			uq.State = p.State
		}
		users, err = h.store.ListUsersPage(ctx, uq)
	}
	if err != nil {
		return err
	}
	if len(users) > officersShown {
		users = users[:officersShown]
		p.Next = PathAdminOfficers + "?" + url.Values{"q": {p.Search}, "state": {p.State}, "after": {users[len(users)-1].Username}}.Encode()
	}
	for i := range users {
		u := &users[i]
		key, label := officerState(u, lockOf(u, locked), now)
		p.Officers = append(p.Officers, officerRow{ID: u.ID, Username: u.Username, Name: u.Name, State: key, StateLabel: label, LastSignIn: when(u.LastSignInAt)})
	}
	return h.show(w, http.StatusOK, "admin-officers", p)
}

// lockedOfficers are the locked accounts (few: a lock is a short-lived
// throttle row) matching search, by username after after: locked on a
// password counter or a second-factor one (not a browser's own).
func (h *Handler) lockedOfficers(ctx context.Context, locked map[string]time.Time, search, after string, limit int) ([]store.User, error) {
	words := store.SearchWords(search)
	seen := map[string]bool{}
	var out []store.User
	for k := range locked {
		who, ok := accountOfKey(k)
		if !ok {
			continue // an address, or a browser's own counter
		}
		u, err := h.store.UserByID(ctx, who)
		if errors.Is(err, store.ErrNotFound) {
			u, err = h.store.UserByUsername(ctx, who)
		}
		if errors.Is(err, store.ErrNotFound) {
			continue // an address that never had an account
		}
		if err != nil {
			return nil, err
		}
		if seen[u.ID] || u.Username <= after || !store.Matches(u.Username, u.Name, words) {
			continue
		}
		seen[u.ID] = true
		out = append(out, *u)
	}
	slices.SortFunc(out, func(a, b store.User) int { return strings.Compare(a.Username, b.Username) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// officerAction is one thing an admin can do to an account: its
// data-action (also its path), its button, the roles that may, when it
// applies, and the admin service call that does it.
type officerAction struct {
	name, label string
	need        roleSet
	applies     func(o *Officer) bool
	// self is the refusal of the action on one's own account ("" allowed).
	self string
	// run does it and says what was done.
	run func(ctx context.Context, a *Admin, by store.Actor, o *Officer) (string, error)
	// toList: the account is gone afterwards; go back to the list.
	toList bool
}

var officerActions = []officerAction{
	{name: "resend", label: "Resend the invitation", need: roleHelpdesk,
		applies: func(o *Officer) bool { return o.User.State == store.UserInvited },
		run: func(ctx context.Context, a *Admin, by store.Actor, o *Officer) (string, error) {
			inv, err := a.Resend(ctx, by, o.User.Username, Names{})
			if err != nil {
				return "", err
			}
			if inv.MailErr != nil {
				return "A new initial password was issued, but the email could not be sent: try again.", nil
			}
			return fmt.Sprintf("A new invitation was sent to %s, valid until %s. The old initial password no longer works.", inv.Username, when(inv.ExpiresAt)), nil
		}},
	{name: "revoke", label: "Withdraw the invitation", need: roleAdmin, toList: true,
		applies: func(o *Officer) bool { return o.User.State == store.UserInvited },
		run: func(ctx context.Context, a *Admin, by store.Actor, o *Officer) (string, error) {
			if _, err := a.Revoke(ctx, by, o.User.Username); err != nil {
				return "", err
			}
			return fmt.Sprintf("The invitation of %s was withdrawn: the initial password no longer works.", o.User.Username), nil
		}},
	{name: "disable", label: "Disable the account", need: roleAdmin, self: msgConsoleOwnDisable,
		applies: func(o *Officer) bool { return o.User.State != store.UserDisabled },
		run: func(ctx context.Context, a *Admin, by store.Actor, o *Officer) (string, error) {
			c, err := a.Disable(ctx, by, o.User.Username)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("%s is disabled: %d %s ended and every token revoked.", o.User.Username, c.SessionsEnded, plural(c.SessionsEnded, "session", "sessions")), nil
		}},
	{name: "enable", label: "Enable the account", need: roleAdmin,
		applies: func(o *Officer) bool { return o.User.State == store.UserDisabled },
		run: func(ctx context.Context, a *Admin, by store.Actor, o *Officer) (string, error) {
			if _, err := a.Enable(ctx, by, o.User.Username); err != nil {
				return "", err
			}
			return fmt.Sprintf("%s is enabled again.", o.User.Username), nil
		}},
	{name: "unlock", label: "Unlock", need: roleHelpdesk,
		applies: func(o *Officer) bool { return !o.LockedUntil.IsZero() || o.RecentFailures > 0 },
		run: func(ctx context.Context, a *Admin, by store.Actor, o *Officer) (string, error) {
			if _, err := a.Unlock(ctx, by, o.User.Username); err != nil {
				return "", err
			}
			return fmt.Sprintf("%s is unlocked: the failed attempts are forgotten.", o.User.Username), nil
		}},
	{name: "reset-mfa", label: "Reset the second factor", need: roleHelpdesk, self: msgConsoleOwnMFA,
		applies: func(o *Officer) bool { return o.HasFactor() },
		run: func(ctx context.Context, a *Admin, by store.Actor, o *Officer) (string, error) {
			if _, err := a.ResetMFA(ctx, by, o.User.Username); err != nil {
				return "", err
			}
			return fmt.Sprintf("The second factors of %s are removed and every session ended: the officer sets one up again at the next sign-in.", o.User.Username), nil
		}},
	{name: "reset-password", label: "Reset the password", need: roleHelpdesk,
		applies: func(o *Officer) bool { return o.User.State == store.UserActive },
		run: func(ctx context.Context, a *Admin, by store.Actor, o *Officer) (string, error) {
			inv, err := a.ResetPassword(ctx, by, o.User.Username)
			if err != nil {
				return "", err
			}
			if inv.MailErr != nil {
				return "The password is reset, but the email could not be sent: reset it again.", nil
			}
			return fmt.Sprintf("A new initial password was emailed to %s (valid until %s); every session ended.", inv.Username, when(inv.ExpiresAt)), nil
		}},
	{name: "sign-out", label: "Sign out everywhere", need: roleHelpdesk,
		applies: func(o *Officer) bool { return len(o.Sessions) > 0 },
		run: func(ctx context.Context, a *Admin, by store.Actor, o *Officer) (string, error) {
			c, err := a.SignOutEverywhere(ctx, by, o.User.Username)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("%s is signed out everywhere: %d %s ended and every token revoked.", o.User.Username, c.SessionsEnded, plural(c.SessionsEnded, "session", "sessions")), nil
		}},
}

func actionNamed(name string) *officerAction {
	for i := range officerActions {
		if officerActions[i].name == name {
			return &officerActions[i]
		}
	}
	return nil
}

type officerPage struct {
	consolePage
	O          officerView
	Actions    []actionView
	Higher     bool   // the account has a higher role than the admin's
	Restricted string // why some actions are not offered ("" none)
}

type officerView struct {
	ID, Username, Name, State, StateLabel string
	Created, LastSignIn, InviteExpires    string
	InviteExpired                         bool
	TOTP                                  string
	Passkeys, Phones                      []string
	RecoveryCodes                         int
	Documents                             []documentView
	Sessions                              int
	Roles                                 string
	Failures                              int
}

type documentView struct{ Document, Accepted, AcceptedAt, Current string }

type actionView struct {
	Name, Label, Path string
	Danger            bool
}

// higherRole: the target's highest role ranks above the admin's.
func higherRole(c *console, target []string) bool {
	return config.RoleRank(target) < config.RoleRank(c.names)
}

func (h *Handler) consoleOfficer(w http.ResponseWriter, r *http.Request, c *console) error {
	u, err := h.store.UserByID(r.Context(), truncate(r.PathValue("id"), 64))
	if errors.Is(err, store.ErrNotFound) {
		return &pageError{Status: http.StatusNotFound, Message: "There is no such officer (an invitation that was withdrawn leaves no account)."}
	}
	if err != nil {
		return err
	}
	return h.showOfficer(w, r, c, u, http.StatusOK, "")
}

// showOfficer renders an officer's page, with a problem when msg is set.
func (h *Handler) showOfficer(w http.ResponseWriter, r *http.Request, c *console, u *store.User, status int, msg string) error {
	o, err := h.admin().Officer(r.Context(), u)
	if err != nil {
		return err
	}
	now := h.now().UTC()
	key, label := officerState(u, o.LockedUntil, now)
	roles := h.settings().cfg.AdminRoles(u.Username)
	v := officerView{ID: u.ID, Username: u.Username, Name: u.Name, State: key, StateLabel: label,
		Created: when(u.CreatedAt), LastSignIn: when(u.LastSignInAt), InviteExpired: o.InviteExpired,
		TOTP: o.TOTP, RecoveryCodes: o.RecoveryCodes, Sessions: len(o.Sessions), Roles: strings.Join(roles, ", "), Failures: o.RecentFailures}
	if u.PasswordInitial {
		v.InviteExpires = when(u.InviteExpiresAt)
	}
	for _, pk := range o.Passkeys {
		v.Passkeys = append(v.Passkeys, pk.Name)
	}
	for _, d := range o.Phones {
		v.Phones = append(v.Phones, d.Name)
	}
	for _, d := range o.Documents {
		v.Documents = append(v.Documents, documentView{Document: d.Document, Accepted: d.Accepted, AcceptedAt: when(d.AcceptedAt), Current: d.Current})
	}
	p := officerPage{consolePage: h.consolePage(c, "officer", u.Username), O: v, Higher: higherRole(c, roles)}
	if msg != "" {
		p.fail("", msg)
	}
	if p.Higher {
		p.Restricted = msgConsoleHigher
	} else {
		for _, a := range officerActions {
			if !c.roles.may(a.need) || !a.applies(o) || (a.self != "" && u.ID == c.admin.ID) {
				continue
			}
			p.Actions = append(p.Actions, actionView{Name: a.name, Label: a.label, Path: consoleOfficerPath(u.ID) + "/" + a.name,
				Danger: a.name == "disable" || a.name == "revoke"})
		}
	}
	return h.show(w, status, "admin-officer", p)
}

// postOfficerAction does an action on an officer, after checking the
// action's roles, the target's role and one's own account.
func (h *Handler) postOfficerAction(w http.ResponseWriter, r *http.Request, c *console) error {
	ctx := r.Context()
	act := actionNamed(r.PathValue("action"))
	if act == nil {
		return &pageError{Status: http.StatusNotFound, Message: "There is no such action on an account."}
	}
	u, err := h.store.UserByID(ctx, truncate(r.PathValue("id"), 64))
	if errors.Is(err, store.ErrNotFound) {
		return &pageError{Status: http.StatusNotFound, Message: "There is no such officer (an invitation that was withdrawn leaves no account)."}
	}
	if err != nil {
		return err
	}
	switch {
	case !c.roles.may(act.need):
		return h.forbidden(r, c, u.Username, store.ReasonRole, msgConsoleRole)
	case higherRole(c, h.settings().cfg.AdminRoles(u.Username)):
		return h.forbidden(r, c, u.Username, store.ReasonHigherRole, msgConsoleHigher)
	case act.self != "" && u.ID == c.admin.ID:
		return h.forbidden(r, c, u.Username, store.ReasonOwnAccount, act.self)
	}
	o, err := h.admin().Officer(ctx, u)
	if err != nil {
		return err
	}
	notice, err := act.run(ctx, h.admin(), c.by(), o)
	if msg, ok := consoleRefusal(err, u.Username); ok {
		return h.showOfficer(w, r, c, u, http.StatusConflict, msg)
	}
	if err != nil {
		return err
	}
	to := consoleOfficerPath(u.ID)
	if act.toList {
		to = PathAdminOfficers
	}
	return h.done(w, r, c, notice, to)
}
