package main

// lanyard user …: what an admin does to an officer's account. The changes
// are the admin service's (flows.Admin, acting as "cli"): these commands
// parse, call it and print.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/flows"
	"github.com/lanyard-idp/lanyard/provider/store"
	"github.com/lanyard-idp/lanyard/templates"
)

// stateLocked is the state `user list --state locked` asks for: a lock is a
// throttle row, not a user state.
const stateLocked = "locked"

func cmdUser(ctx context.Context, args []string, e env) error {
	subs := []string{"list", "show", "disable", "enable", "unlock", "reset-mfa", "reset-password", "sign-out"}
	if len(args) == 0 {
		return usagef("usage: lanyard user %s", strings.Join(subs, "|"))
	}
	switch args[0] {
	case "list":
		return cmdUserList(ctx, args[1:], e)
	case "show":
		return cmdUserShow(ctx, args[1:], e)
	case "reset-password":
		return cmdUserResetPassword(ctx, args[1:], e)
	case "disable", "enable", "unlock", "reset-mfa", "sign-out":
		return cmdUserAction(ctx, args[0], args[1:], e)
	case "-h", "--help", "help":
		fmt.Fprintf(e.stdout, "usage: lanyard user %s [EMAIL] [flags]\n", strings.Join(subs, "|"))
		return nil
	}
	return usagef("unknown subcommand %q of lanyard user (want %s)", args[0], strings.Join(subs, ", "))
}

type userRow struct {
	Username        string `json:"username"`
	Name            string `json:"name"`
	State           string `json:"state"`
	LockedUntil     string `json:"locked_until,omitempty"`
	InviteExpiresAt string `json:"invite_expires_at,omitempty"`
	LastSignInAt    string `json:"last_sign_in_at,omitempty"`
	CreatedAt       string `json:"created_at"`
}

func cmdUserList(ctx context.Context, args []string, e env) error {
	cmd := newCommand("user list [--state invited|active|locked|disabled] [--search TEXT] [--json]", e)
	var state, search string
	cmd.fs.StringVar(&state, "state", "", "only accounts in this `state`: invited, active, locked or disabled")
	cmd.fs.StringVar(&search, "search", "", "only accounts whose address or name contains `text` (any case)")
	if _, err := cmd.parse(args, e, 0, 0); err != nil {
		return err
	}
	if state != "" && !slices.Contains([]string{store.UserInvited, store.UserActive, stateLocked, store.UserDisabled}, state) {
		return usagef("--state %q: want invited, active, locked or disabled", truncate(state, 40))
	}
	if utf8.RuneCountInString(search) > 200 || strings.IndexFunc(search, unicode.IsControl) >= 0 || !utf8.ValidString(search) {
		return usagef("--search: at most 200 printable characters")
	}
	d, err := cmd.openAdmin(ctx, e, false)
	if err != nil {
		return err
	}
	defer d.Close()
	users, err := d.store.ListUsers(ctx, state, strings.TrimSpace(search))
	if err != nil {
		return err
	}
	rows := []userRow{}
	for _, u := range users {
		until, _, err := d.admin.AccountLock(ctx, &u)
		if err != nil {
			return err
		}
		if state == stateLocked && until.IsZero() {
			continue
		}
		r := userRow{Username: u.Username, Name: u.Name, State: u.State, LockedUntil: stamp(until),
			LastSignInAt: stamp(u.LastSignInAt), CreatedAt: stamp(u.CreatedAt)}
		if u.PasswordInitial {
			r.InviteExpiresAt = stamp(u.InviteExpiresAt)
		}
		rows = append(rows, r)
	}
	if cmd.json {
		return writeJSON(e.stdout, rows)
	}
	table := make([][]string, 0, len(rows))
	for _, r := range rows {
		st := r.State
		if r.LockedUntil != "" {
			st += " (locked until " + r.LockedUntil + ")"
		}
		table = append(table, []string{r.Username, orDash(r.Name), st, orDash(r.LastSignInAt), r.CreatedAt})
	}
	if err := writeTable(e.stdout, []string{"EMAIL", "NAME", "STATE", "LAST SIGN-IN", "CREATED"}, table); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%d account(s)\n", len(rows))
	return nil
}

// userDetail is what `user show` prints.
type userDetail struct {
	Username        string          `json:"username"`
	Name            string          `json:"name"`
	ID              string          `json:"id"`
	State           string          `json:"state"`
	LockedUntil     string          `json:"locked_until,omitempty"`
	RecentFailures  int             `json:"recent_failures"`
	PasswordInitial bool            `json:"password_initial"`
	InviteExpiresAt string          `json:"invite_expires_at,omitempty"`
	InviteExpired   bool            `json:"invite_expired,omitempty"`
	CreatedAt       string          `json:"created_at"`
	LastSignInAt    string          `json:"last_sign_in_at,omitempty"`
	TOTP            string          `json:"totp"` // none | pending | enrolled
	Passkeys        []passkeyInfo   `json:"passkeys"`
	ApprovalPhones  []passkeyInfo   `json:"approval_phones"`
	RecoveryCodes   int             `json:"recovery_codes_left"`
	Documents       []acceptedDoc   `json:"documents"`
	Sessions        []sessionDetail `json:"sessions"`
}

type passkeyInfo struct {
	Name       string `json:"name"`
	CreatedAt  string `json:"created_at"`
	LastUsedAt string `json:"last_used_at,omitempty"`
}

type acceptedDoc struct {
	Document   string `json:"document"`
	Accepted   string `json:"accepted_version,omitempty"`
	AcceptedAt string `json:"accepted_at,omitempty"`
	Current    string `json:"current_version,omitempty"`
	UpToDate   bool   `json:"up_to_date"`
}

type sessionDetail struct {
	Ref        string `json:"ref"` // a prefix of the public reference, never the cookie value
	State      string `json:"state"`
	CreatedAt  string `json:"created_at"`
	LastSeenAt string `json:"last_seen_at"`
	ExpiresAt  string `json:"expires_at"`
	ClientAddr string `json:"client_addr"`
	UserAgent  string `json:"user_agent"`
}

func cmdUserShow(ctx context.Context, args []string, e env) error {
	cmd := newCommand("user show EMAIL [--json]", e)
	email, d, err := cmd.openAccount(ctx, args, e, false)
	if err != nil {
		return err
	}
	defer d.Close()
	u, err := d.admin.Account(ctx, email)
	if err != nil {
		return err
	}
	detail, err := describeUser(ctx, d, u)
	if err != nil {
		return err
	}
	if cmd.json {
		return writeJSON(e.stdout, detail)
	}
	return printUser(e, detail)
}

func describeUser(ctx context.Context, deps *adminDeps, u *store.User) (*userDetail, error) {
	o, err := deps.admin.Officer(ctx, u)
	if err != nil {
		return nil, err
	}
	d := &userDetail{Username: u.Username, Name: u.Name, ID: u.ID, State: u.State, PasswordInitial: u.PasswordInitial,
		CreatedAt: stamp(u.CreatedAt), LastSignInAt: stamp(u.LastSignInAt), TOTP: o.TOTP,
		LockedUntil: stamp(o.LockedUntil), RecentFailures: o.RecentFailures, RecoveryCodes: o.RecoveryCodes,
		Passkeys: []passkeyInfo{}, ApprovalPhones: []passkeyInfo{}, Documents: []acceptedDoc{}, Sessions: []sessionDetail{}}
	if u.PasswordInitial && !u.InviteExpiresAt.IsZero() {
		d.InviteExpiresAt, d.InviteExpired = stamp(u.InviteExpiresAt), o.InviteExpired
	}
	for _, c := range o.Passkeys {
		d.Passkeys = append(d.Passkeys, passkeyInfo{Name: c.Name, CreatedAt: stamp(c.CreatedAt), LastUsedAt: stamp(c.LastUsedAt)})
	}
	for _, p := range o.Phones {
		d.ApprovalPhones = append(d.ApprovalPhones, passkeyInfo{Name: p.Name, CreatedAt: stamp(p.CreatedAt), LastUsedAt: stamp(p.LastUsedAt)})
	}
	for _, x := range o.Documents {
		d.Documents = append(d.Documents, acceptedDoc{Document: x.Document, Accepted: x.Accepted, AcceptedAt: stamp(x.AcceptedAt),
			Current: x.Current, UpToDate: x.UpToDate})
	}
	for _, s := range o.Sessions {
		d.Sessions = append(d.Sessions, sessionDetail{Ref: truncate(s.Ref, 12), State: s.State,
			CreatedAt: stamp(s.CreatedAt), LastSeenAt: stamp(s.LastSeenAt), ExpiresAt: stamp(s.ExpiresAt),
			ClientAddr: s.ClientAddr, UserAgent: truncate(s.UserAgent, 80)})
	}
	return d, nil
}

func printUser(e env, d *userDetail) error {
	w := e.stdout
	state := d.State
	if d.LockedUntil != "" {
		state += ", locked until " + d.LockedUntil
	}
	fmt.Fprintf(w, "%s (%s)\n", d.Username, oneLine(orDash(d.Name)))
	fmt.Fprintf(w, "  state:            %s\n", state)
	fmt.Fprintf(w, "  id (sub):         %s\n", d.ID)
	fmt.Fprintf(w, "  created:          %s\n", d.CreatedAt)
	fmt.Fprintf(w, "  last sign-in:     %s\n", orDash(d.LastSignInAt))
	switch {
	case d.InviteExpired:
		fmt.Fprintf(w, "  initial password: expired on %s (send a new one: lanyard invite --resend or user reset-password)\n", d.InviteExpiresAt)
	case d.InviteExpiresAt != "":
		fmt.Fprintf(w, "  initial password: valid until %s; the officer changes it at sign-in\n", d.InviteExpiresAt)
	}
	if d.RecentFailures > 0 {
		fmt.Fprintf(w, "  recent failures:  %d\n", d.RecentFailures)
	}
	fmt.Fprintf(w, "  authenticator:    %s\n", d.TOTP)
	fmt.Fprintf(w, "  passkeys:         %d\n", len(d.Passkeys))
	for _, p := range d.Passkeys {
		fmt.Fprintf(w, "    - %s (added %s, last used %s)\n", oneLine(orDash(p.Name)), p.CreatedAt, orDash(p.LastUsedAt))
	}
	fmt.Fprintf(w, "  approval phones:  %d\n", len(d.ApprovalPhones))
	for _, p := range d.ApprovalPhones {
		fmt.Fprintf(w, "    - %s (paired %s, last used %s)\n", oneLine(orDash(p.Name)), p.CreatedAt, orDash(p.LastUsedAt))
	}
	fmt.Fprintf(w, "  recovery codes:   %d left\n", d.RecoveryCodes)
	fmt.Fprintln(w, "  documents:")
	for _, a := range d.Documents {
		status := "not accepted"
		switch {
		case a.UpToDate:
			status = "accepted " + a.Accepted + " on " + a.AcceptedAt
		case a.Accepted != "":
			status = fmt.Sprintf("accepted %s on %s; current is %s (asked again at next sign-in)", a.Accepted, a.AcceptedAt, orDash(a.Current))
		}
		fmt.Fprintf(w, "    - %s: %s\n", a.Document, status)
	}
	fmt.Fprintf(w, "  active sessions:  %d\n", len(d.Sessions))
	if len(d.Sessions) == 0 {
		return nil
	}
	rows := [][]string{}
	for _, s := range d.Sessions {
		rows = append(rows, []string{"   ", s.Ref, s.State, s.CreatedAt, s.LastSeenAt, orDash(s.ClientAddr), orDash(s.UserAgent)})
	}
	return writeTable(w, []string{"   ", "SESSION", "STATE", "STARTED", "LAST SEEN", "ADDRESS", "BROWSER"}, rows)
}

// actionResult is what a user action prints with --json.
type actionResult struct {
	Username      string `json:"username"`
	Action        string `json:"action"`
	State         string `json:"state"`
	SessionsEnded int    `json:"sessions_ended"`
	WasLocked     *bool  `json:"was_locked,omitempty"`
	Removed       *mfa   `json:"removed,omitempty"`
}

type mfa struct {
	TOTP           bool `json:"totp"`
	Passkeys       int  `json:"passkeys"`
	ApprovalPhones int  `json:"approval_phones"`
	RecoveryCodes  int  `json:"recovery_codes"`
}

// cmdUserAction runs disable, enable, unlock, reset-mfa and sign-out.
func cmdUserAction(ctx context.Context, action string, args []string, e env) error {
	cmd := newCommand("user "+action+" EMAIL [--json]", e)
	email, d, err := cmd.openAccount(ctx, args, e, false)
	if err != nil {
		return err
	}
	defer d.Close()
	change := map[string]func(context.Context, store.Actor, string) (*flows.AccountChange, error){
		"disable": d.admin.Disable, "enable": d.admin.Enable, "unlock": d.admin.Unlock,
		"reset-mfa": d.admin.ResetMFA, "sign-out": d.admin.SignOutEverywhere,
	}[action]
	c, err := change(ctx, store.ActorCLI, email)
	if err != nil {
		return err
	}
	res := actionResult{Username: c.User.Username, Action: action, State: c.User.State, SessionsEnded: c.SessionsEnded}
	switch action {
	case "unlock":
		res.WasLocked = &c.WasLocked
	case "reset-mfa":
		res.Removed = &mfa{TOTP: c.Removed.TOTP, Passkeys: c.Removed.Passkeys, ApprovalPhones: c.Removed.Devices, RecoveryCodes: c.Removed.RecoveryCodes}
	}
	if cmd.json {
		return writeJSON(e.stdout, res)
	}
	switch action {
	case "disable":
		fmt.Fprintf(e.stdout, "disabled %s: %d session(s) ended, every token revoked; sign-in is refused until: lanyard user enable %s\n", res.Username, res.SessionsEnded, res.Username)
	case "enable":
		fmt.Fprintf(e.stdout, "enabled %s (state %s)\n", res.Username, res.State)
	case "unlock":
		if *res.WasLocked {
			fmt.Fprintf(e.stdout, "unlocked %s: the failure count is reset\n", res.Username)
		} else {
			fmt.Fprintf(e.stdout, "%s was not locked; the failure count is reset\n", res.Username)
		}
	case "reset-mfa":
		r := res.Removed
		totp := "no authenticator app"
		if r.TOTP {
			totp = "the authenticator app"
		}
		fmt.Fprintf(e.stdout, "removed %s, %d passkey(s), %d phone(s) paired with the approval app and %d recovery code(s) of %s; %d session(s) ended. The officer sets up a second factor again at the next sign-in.\n",
			totp, r.Passkeys, r.ApprovalPhones, r.RecoveryCodes, res.Username, res.SessionsEnded)
	default:
		fmt.Fprintf(e.stdout, "signed %s out everywhere: %d session(s) ended, every token revoked\n", res.Username, res.SessionsEnded)
	}
	return nil
}

func cmdUserResetPassword(ctx context.Context, args []string, e env) error {
	cmd := newCommand("user reset-password EMAIL [--show-password] [--json]", e)
	var show bool
	cmd.fs.BoolVar(&show, "show-password", false, "also print the new initial password (it is in the email)")
	email, d, err := cmd.openAccount(ctx, args, e, true)
	if err != nil {
		return err
	}
	defer d.Close()
	inv, err := d.admin.ResetPassword(ctx, store.ActorCLI, email)
	if err != nil {
		return err
	}
	if cmd.json {
		out := map[string]any{"username": inv.Username, "expires_at": stamp(inv.ExpiresAt), "mail_sent": inv.MailErr == nil}
		if show {
			out["initial_password"] = inv.InitialPassword
		}
		if err := writeJSON(e.stdout, out); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.stdout, "reset the password of %s: every session ended, every token revoked; the new initial password is valid until %s\n", inv.Username, stamp(inv.ExpiresAt))
		if show {
			fmt.Fprintf(e.stdout, "initial password: %s\n", inv.InitialPassword)
		}
		if inv.MailErr == nil {
			fmt.Fprintln(e.stdout, mailNote(d.outbox))
		}
	}
	if inv.MailErr != nil {
		return fmt.Errorf("the password is reset, but the email could not be sent: %v; fix the mail settings, then run the command again", inv.MailErr)
	}
	return nil
}

// newAdmin is the admin service of the commands on the deployment's store,
// with the configuration's mail when mail is set (the commands that email
// an initial password); outbox is where dev mail is written.
func newAdmin(cfg *config.Config, st *store.Store, e env, mail bool) (admin *flows.Admin, outbox string, err error) {
	o := flows.Options{Config: cfg, Store: st, Logger: newLogger(cfg, e.stderr), Now: e.now}
	if mail {
		if o.Mailer, outbox, err = newMailer(cfg, o.Logger); err != nil {
			return nil, "", err
		}
		if o.Pages, err = templates.Parse(); err != nil {
			return nil, "", err
		}
	}
	admin, err = flows.NewAdmin(o)
	return admin, outbox, err
}

func mailNote(outbox string) string {
	if outbox != "" {
		return "email written to " + outbox
	}
	return "email sent"
}
