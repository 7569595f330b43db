package main

// lanyard user …: what an admin does to an officer's account. Each change
// runs in one transaction with its audit event, decides from what is stored
// inside that transaction (so of racing commands exactly one acts), and takes
// effect at once: sessions and tokens are ended in the same transaction.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
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

// accountKeys are the throttle keys flows charges an account's failures to:
// the user id once the account exists, the typed username before.
func accountKeys(u *store.User) []string {
	return []string{"acct:" + u.ID, "acct:" + u.Username}
}

// lockedUntil is when the account's lock ends (zero: not locked at now).
func lockedUntil(ctx context.Context, st *store.Store, u *store.User, now time.Time) (time.Time, int, error) {
	var until time.Time
	failures := 0
	for _, k := range accountKeys(u) {
		t, err := st.GetThrottle(ctx, k)
		if err != nil {
			return time.Time{}, 0, err
		}
		if t.LockedUntil.After(now) && t.LockedUntil.After(until) {
			until = t.LockedUntil
		}
		failures = max(failures, t.Failures)
	}
	return until, failures, nil
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
	_, st, err := cmd.openStore(ctx, e)
	if err != nil {
		return err
	}
	defer st.Close()
	users, err := st.ListUsers(ctx, state, strings.TrimSpace(search))
	if err != nil {
		return err
	}
	now := e.now()
	rows := []userRow{}
	for _, u := range users {
		until, _, err := lockedUntil(ctx, st, &u, now)
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
	pos, err := cmd.parse(args, e, 1, 1)
	if err != nil {
		return err
	}
	if _, err := canonical(pos[0]); err != nil {
		return err
	}
	cfg, st, err := cmd.openStore(ctx, e)
	if err != nil {
		return err
	}
	defer st.Close()
	u, err := lookupUser(ctx, st, pos[0])
	if err != nil {
		return err
	}
	d, err := describeUser(ctx, cfg, st, u, e.now())
	if err != nil {
		return err
	}
	if cmd.json {
		return writeJSON(e.stdout, d)
	}
	return printUser(e, d)
}

func describeUser(ctx context.Context, cfg *config.Config, st *store.Store, u *store.User, now time.Time) (*userDetail, error) {
	d := &userDetail{Username: u.Username, Name: u.Name, ID: u.ID, State: u.State, PasswordInitial: u.PasswordInitial,
		CreatedAt: stamp(u.CreatedAt), LastSignInAt: stamp(u.LastSignInAt), TOTP: "none",
		Passkeys: []passkeyInfo{}, Documents: []acceptedDoc{}, Sessions: []sessionDetail{}}
	until, failures, err := lockedUntil(ctx, st, u, now)
	if err != nil {
		return nil, err
	}
	d.LockedUntil, d.RecentFailures = stamp(until), failures
	if u.PasswordInitial && !u.InviteExpiresAt.IsZero() {
		d.InviteExpiresAt, d.InviteExpired = stamp(u.InviteExpiresAt), !now.Before(u.InviteExpiresAt)
	}
	t, err := st.TOTPByUser(ctx, u.ID)
	switch {
	case err == nil && t.Confirmed:
		d.TOTP = "enrolled"
	case err == nil:
		d.TOTP = "pending"
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	creds, err := st.WebAuthnCredentials(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	for _, c := range creds {
		d.Passkeys = append(d.Passkeys, passkeyInfo{Name: c.Name, CreatedAt: stamp(c.CreatedAt), LastUsedAt: stamp(c.LastUsedAt)})
	}
	if d.RecoveryCodes, err = st.RecoveryCodesLeft(ctx, u.ID); err != nil {
		return nil, err
	}
	acc, err := st.Acceptances(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, doc := range cfg.Documents {
		a := acceptedDoc{Document: doc.ID, Current: doc.Version}
		for _, x := range acc {
			if x.Document == doc.ID {
				a.Accepted, a.AcceptedAt = x.Version, stamp(x.AcceptedAt)
			}
		}
		a.UpToDate = a.Accepted == doc.Version
		d.Documents = append(d.Documents, a)
		seen[doc.ID] = true
	}
	for _, x := range acc { // documents no longer in the configuration
		if !seen[x.Document] {
			d.Documents = append(d.Documents, acceptedDoc{Document: x.Document, Accepted: x.Version, AcceptedAt: stamp(x.AcceptedAt)})
		}
	}
	sessions, err := st.UserSessions(ctx, u.ID, now)
	if err != nil {
		return nil, err
	}
	for _, s := range sessions {
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
	TOTP          bool `json:"totp"`
	Passkeys      int  `json:"passkeys"`
	RecoveryCodes int  `json:"recovery_codes"`
}

// cmdUserAction runs disable, enable, unlock, reset-mfa and sign-out.
func cmdUserAction(ctx context.Context, action string, args []string, e env) error {
	cmd := newCommand("user "+action+" EMAIL [--json]", e)
	pos, err := cmd.parse(args, e, 1, 1)
	if err != nil {
		return err
	}
	if _, err := canonical(pos[0]); err != nil {
		return err
	}
	_, st, err := cmd.openStore(ctx, e)
	if err != nil {
		return err
	}
	defer st.Close()
	now := e.now()
	var res actionResult
	err = inTx(ctx, st, func(ctx context.Context) error {
		u, err := lookupUser(ctx, st, pos[0])
		if err != nil {
			return err
		}
		res = actionResult{Username: u.Username, Action: action, State: u.State}
		switch action {
		case "disable":
			return disableUser(ctx, st, u, now, &res)
		case "enable":
			return enableUser(ctx, st, u, now, &res)
		case "unlock":
			return unlockUser(ctx, st, u, now, &res)
		case "reset-mfa":
			return resetMFA(ctx, st, u, &res)
		default:
			return signOutUser(ctx, st, u, &res)
		}
	})
	if err != nil {
		return err
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
		fmt.Fprintf(e.stdout, "removed %s, %d passkey(s) and %d recovery code(s) of %s; %d session(s) ended. The officer sets up a second factor again at the next sign-in.\n",
			totp, r.Passkeys, r.RecoveryCodes, res.Username, res.SessionsEnded)
	default:
		fmt.Fprintf(e.stdout, "signed %s out everywhere: %d session(s) ended, every token revoked\n", res.Username, res.SessionsEnded)
	}
	return nil
}

// endEverything ends every session of u and revokes every token issued to u.
func endEverything(ctx context.Context, st *store.Store, u *store.User) (int, error) {
	refs, err := st.DeleteUserSessions(ctx, u.ID, "")
	if err != nil {
		return 0, fmt.Errorf("end sessions: %w", err)
	}
	if err := st.RevokeOAuthBySubject(ctx, u.ID); err != nil {
		return 0, fmt.Errorf("revoke tokens: %w", err)
	}
	return len(refs), nil
}

func disableUser(ctx context.Context, st *store.Store, u *store.User, now time.Time, res *actionResult) error {
	if u.State == store.UserDisabled {
		return fmt.Errorf("%s is already disabled", u.Username)
	}
	prev := u.State
	u.State, u.UpdatedAt = store.UserDisabled, now
	if err := st.UpdateUser(ctx, u); err != nil {
		return fmt.Errorf("disable %s: %w", u.Username, err)
	}
	n, err := endEverything(ctx, st, u)
	if err != nil {
		return err
	}
	res.State, res.SessionsEnded = u.State, n
	return adminEvent(ctx, st, store.EventUserDisable, u, map[string]any{"previous_state": prev, "sessions_ended": n})
}

// enableUser gives a disabled account back the state it would have: active
// when the officer has ever finished a sign-in, else invited.
func enableUser(ctx context.Context, st *store.Store, u *store.User, now time.Time, res *actionResult) error {
	if u.State != store.UserDisabled {
		return fmt.Errorf("%s is not disabled (state %s)", u.Username, u.State)
	}
	u.State = store.UserInvited
	if !u.LastSignInAt.IsZero() {
		u.State = store.UserActive
	}
	u.UpdatedAt = now
	if err := st.UpdateUser(ctx, u); err != nil {
		return fmt.Errorf("enable %s: %w", u.Username, err)
	}
	res.State = u.State
	return adminEvent(ctx, st, store.EventUserEnable, u, map[string]any{"state": u.State})
}

// unlockUser forgets the account's failures and lock. Address locks stay:
// they protect against a guesser, whoever they target.
func unlockUser(ctx context.Context, st *store.Store, u *store.User, now time.Time, res *actionResult) error {
	until, _, err := lockedUntil(ctx, st, u, now)
	if err != nil {
		return err
	}
	for _, k := range accountKeys(u) {
		if err := st.ResetThrottle(ctx, k); err != nil {
			return fmt.Errorf("unlock %s: %w", u.Username, err)
		}
	}
	locked := !until.IsZero()
	res.WasLocked = &locked
	return adminEvent(ctx, st, store.EventUserUnlock, u, map[string]any{"was_locked": locked})
}

// resetMFA removes every second factor; with none left the journey's
// mfa-enrol step is pending again at the next sign-in.
func resetMFA(ctx context.Context, st *store.Store, u *store.User, res *actionResult) error {
	var r mfa
	if _, err := st.TOTPByUser(ctx, u.ID); err == nil {
		r.TOTP = true
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err := st.DeleteTOTP(ctx, u.ID); err != nil {
		return fmt.Errorf("reset-mfa %s: %w", u.Username, err)
	}
	n, err := st.RecoveryCodesLeft(ctx, u.ID)
	if err != nil {
		return err
	}
	r.RecoveryCodes = n
	if err := st.DeleteRecoveryCodes(ctx, u.ID); err != nil {
		return fmt.Errorf("reset-mfa %s: %w", u.Username, err)
	}
	creds, err := st.WebAuthnCredentials(ctx, u.ID)
	if err != nil {
		return err
	}
	for _, c := range creds {
		if err := st.DeleteWebAuthnCredential(ctx, u.ID, c.ID); err != nil {
			return fmt.Errorf("reset-mfa %s: %w", u.Username, err)
		}
	}
	r.Passkeys = len(creds)
	ended, err := endEverything(ctx, st, u)
	if err != nil {
		return err
	}
	res.Removed, res.SessionsEnded = &r, ended
	return adminEvent(ctx, st, store.EventUserResetMFA, u, map[string]any{
		"totp": r.TOTP, "passkeys": r.Passkeys, "recovery_codes": r.RecoveryCodes, "sessions_ended": ended})
}

func signOutUser(ctx context.Context, st *store.Store, u *store.User, res *actionResult) error {
	n, err := endEverything(ctx, st, u)
	if err != nil {
		return err
	}
	res.SessionsEnded = n
	return adminEvent(ctx, st, store.EventUserSignOut, u, map[string]any{"sessions_ended": n})
}

func cmdUserResetPassword(ctx context.Context, args []string, e env) error {
	cmd := newCommand("user reset-password EMAIL [--show-password] [--json]", e)
	var show bool
	cmd.fs.BoolVar(&show, "show-password", false, "also print the new initial password (it is in the email)")
	pos, err := cmd.parse(args, e, 1, 1)
	if err != nil {
		return err
	}
	if _, err := canonical(pos[0]); err != nil {
		return err
	}
	cfg, st, err := cmd.openStore(ctx, e)
	if err != nil {
		return err
	}
	defer st.Close()
	iv, outbox, err := newInviter(cfg, st, e)
	if err != nil {
		return err
	}
	inv, err := iv.ResetPassword(ctx, pos[0])
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
			fmt.Fprintln(e.stdout, mailNote(outbox))
		}
	}
	if inv.MailErr != nil {
		return fmt.Errorf("the password is reset, but the email could not be sent: %v; fix the mail settings, then run the command again", inv.MailErr)
	}
	return nil
}

// newInviter is the Inviter of the admin commands, on the configuration's
// mail, recording "by":"cli" in its audit events.
func newInviter(cfg *config.Config, st *store.Store, e env) (*flows.Inviter, string, error) {
	log := newLogger(cfg, e.stderr)
	mailer, outbox, err := newMailer(cfg, log)
	if err != nil {
		return nil, "", err
	}
	pages, err := templates.Parse()
	if err != nil {
		return nil, "", err
	}
	now := time.Now
	if e.clock != nil {
		now = e.clock
	}
	return &flows.Inviter{Config: cfg, Store: st, Mailer: mailer, Pages: pages, Now: now, Logger: log, Actor: "cli"}, outbox, nil
}

func mailNote(outbox string) string {
	if outbox != "" {
		return "email written to " + outbox
	}
	return "email sent"
}
