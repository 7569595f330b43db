package main

// lanyard request …: the account requests officers make on /request. The
// decisions are the admin service's (flows.Admin, acting as "cli"), the
// same the console's requests page makes: these commands parse, call it
// and print.

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/lanyard-idp/lanyard/flows"
	"github.com/lanyard-idp/lanyard/provider/store"
)

func cmdRequest(ctx context.Context, args []string, e env) error {
	subs := []string{"list", "show", "approve", "deny"}
	if len(args) == 0 {
		return usagef("usage: lanyard request %s", strings.Join(subs, "|"))
	}
	switch args[0] {
	case "list":
		return cmdRequestList(ctx, args[1:], e)
	case "show":
		return cmdRequestShow(ctx, args[1:], e)
	case "approve":
		return cmdRequestApprove(ctx, args[1:], e)
	case "deny":
		return cmdRequestDeny(ctx, args[1:], e)
	case "-h", "--help", "help":
		fmt.Fprintf(e.stdout, "usage: lanyard request %s [ID] [flags]\n", strings.Join(subs, "|"))
		return nil
	}
	return usagef("unknown subcommand %q of lanyard request (want %s)", args[0], strings.Join(subs, ", "))
}

// requestRow is a request as the commands print it.
type requestRow struct {
	ID           string `json:"id"`
	Kind         string `json:"kind"` // account, or invitation (a new onboarding email)
	Email        string `json:"email"`
	Name         string `json:"name"`
	Organisation string `json:"organisation"`
	Reason       string `json:"reason"`
	Status       string `json:"status"`
	CreatedAt    string `json:"created_at"`
	VerifiedAt   string `json:"verified_at,omitempty"`
	ExpiresAt    string `json:"expires_at,omitempty"`
	DecidedAt    string `json:"decided_at,omitempty"`
	DecidedBy    string `json:"decided_by,omitempty"`
	DenyReason   string `json:"deny_reason,omitempty"`
}

func newRequestRow(ctx context.Context, a *flows.Admin, v flows.RequestView) requestRow {
	r := requestRow{ID: v.ID, Kind: v.Kind, Email: v.Email, Name: v.Name, Organisation: v.Organisation, Reason: v.Reason, Status: v.Status,
		CreatedAt: stamp(v.CreatedAt), VerifiedAt: stamp(v.VerifiedAt), DecidedAt: stamp(v.DecidedAt),
		DecidedBy: a.ActorName(ctx, v.DecidedBy), DenyReason: v.DenyReason}
	if v.Open() {
		r.ExpiresAt = stamp(v.ExpiresAt)
	}
	return r
}

var requestIDRE = regexp.MustCompile(`^[0-9a-f]{16}$`)

// requestID is the ID argument, or a usage error.
func requestID(s string) (string, error) {
	if !requestIDRE.MatchString(s) {
		return "", usagef("%q is not a request id (16 hexadecimal digits, as lanyard request list shows)", truncate(s, 40))
	}
	return s, nil
}

func cmdRequestList(ctx context.Context, args []string, e env) error {
	cmd := newCommand("request list [--status "+strings.Join(store.RequestStatuses, "|")+"] [--json]", e)
	var status string
	cmd.fs.StringVar(&status, "status", "", "only requests with this `status`: "+strings.Join(store.RequestStatuses, ", "))
	if _, err := cmd.parse(args, e, 0, 0); err != nil {
		return err
	}
	if status != "" && !slices.Contains(store.RequestStatuses, status) {
		return usagef("--status %q: want %s", truncate(status, 40), strings.Join(store.RequestStatuses, ", "))
	}
	d, err := cmd.openAdmin(ctx, e, false)
	if err != nil {
		return err
	}
	defer d.Close()
	rows := []requestRow{}
	for after := ""; ; {
		page, err := d.admin.Requests(ctx, status, after, 500)
		if err != nil {
			return err
		}
		for _, v := range page {
			rows = append(rows, newRequestRow(ctx, d.admin, v))
			after = v.Cursor()
		}
		if len(page) < 500 {
			break
		}
	}
	if cmd.json {
		return writeJSON(e.stdout, rows)
	}
	table := [][]string{}
	for _, r := range rows {
		table = append(table, []string{r.ID, r.Email, orDash(r.Name), r.Status, r.CreatedAt, orDash(r.Organisation)})
	}
	if err := writeTable(e.stdout, []string{"ID", "EMAIL", "NAME", "STATUS", "REQUESTED", "ORGANISATION"}, table); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%d request(s)\n", len(rows))
	return nil
}

// openRequest parses a command about one request (ID and flags) and opens
// the admin service.
func openRequest(ctx context.Context, cmd *command, args []string, e env, mail bool) (string, *adminDeps, error) {
	pos, err := cmd.parse(args, e, 1, 1)
	if err != nil {
		return "", nil, err
	}
	id, err := requestID(pos[0])
	if err != nil {
		return "", nil, err
	}
	d, err := cmd.openAdmin(ctx, e, mail)
	return id, d, err
}

func cmdRequestShow(ctx context.Context, args []string, e env) error {
	cmd := newCommand("request show ID [--json]", e)
	id, d, err := openRequest(ctx, cmd, args, e, false)
	if err != nil {
		return err
	}
	defer d.Close()
	v, err := d.admin.Request(ctx, id)
	if err != nil {
		return err
	}
	r := newRequestRow(ctx, d.admin, v)
	if cmd.json {
		return writeJSON(e.stdout, r)
	}
	w := e.stdout
	fmt.Fprintf(w, "request %s: %s\n", r.ID, r.Status)
	asks := "a new account"
	if r.Kind == store.RequestKindInvitation {
		asks = "a new onboarding email (invited, not set up yet)"
	}
	fmt.Fprintf(w, "  asks for:      %s\n", asks)
	fmt.Fprintf(w, "  email:         %s\n", r.Email)
	fmt.Fprintf(w, "  name:          %s\n", oneLine(orDash(r.Name)))
	fmt.Fprintf(w, "  organisation:  %s\n", oneLine(orDash(r.Organisation)))
	fmt.Fprintf(w, "  reason:        %s\n", oneLine(r.Reason))
	fmt.Fprintf(w, "  requested:     %s\n", r.CreatedAt)
	fmt.Fprintf(w, "  confirmed:     %s\n", orDash(r.VerifiedAt))
	if r.ExpiresAt != "" {
		fmt.Fprintf(w, "  expires:       %s\n", r.ExpiresAt)
	}
	if r.DecidedAt != "" {
		fmt.Fprintf(w, "  decided:       %s by %s\n", r.DecidedAt, orDash(r.DecidedBy))
	}
	if r.DenyReason != "" {
		fmt.Fprintf(w, "  denied for:    %s\n", oneLine(r.DenyReason))
	}
	return nil
}

func cmdRequestApprove(ctx context.Context, args []string, e env) error {
	cmd := newCommand("request approve ID [--show-password] [--json]", e)
	var show bool
	cmd.fs.BoolVar(&show, "show-password", false, "print the initial password (it is also in the onboarding email)")
	id, d, err := openRequest(ctx, cmd, args, e, true)
	if err != nil {
		return err
	}
	defer d.Close()
	inv, err := d.admin.ApproveRequest(ctx, store.ActorCLI, id)
	if err != nil {
		return err
	}
	if cmd.json {
		out := map[string]any{"id": id, "status": store.RequestApproved, "username": inv.Username,
			"expires_at": stamp(inv.ExpiresAt), "mail_sent": inv.MailErr == nil}
		if show {
			out["initial_password"] = inv.InitialPassword
		}
		if err := writeJSON(e.stdout, out); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.stdout, "approved request %s: invited %s; the invitation is valid until %s\n", id, inv.Username, stamp(inv.ExpiresAt))
		if show {
			fmt.Fprintf(e.stdout, "initial password: %s\n", inv.InitialPassword)
		}
		if inv.MailErr == nil {
			fmt.Fprintln(e.stdout, "onboarding "+mailNote(d.outbox))
		}
	}
	if inv.MailErr != nil {
		return fmt.Errorf("the request is approved and the invitation recorded, but the onboarding email could not be sent: %v; fix the mail settings, then run: lanyard invite --resend %s", inv.MailErr, inv.Username)
	}
	return nil
}

func cmdRequestDeny(ctx context.Context, args []string, e env) error {
	cmd := newCommand(`request deny ID --reason "TEXT" [--json]`, e)
	var reason string
	cmd.fs.StringVar(&reason, "reason", "", "why, in a sentence the requester is emailed (required, at most 500 characters)")
	pos, err := cmd.parse(args, e, 1, 1)
	if err != nil {
		return err
	}
	if strings.TrimSpace(reason) == "" {
		return usagef("--reason is required: the requester is emailed it")
	}
	id, d, err := openRequest(ctx, cmd, pos, e, true)
	if err != nil {
		return err
	}
	defer d.Close()
	v, err := d.admin.DenyRequest(ctx, store.ActorCLI, id, reason)
	if errors.Is(err, flows.ErrDenyReason) {
		return usagef("--reason: %v", err)
	}
	if err != nil {
		return err
	}
	if cmd.json {
		out := map[string]any{"request": newRequestRow(ctx, d.admin, v), "mail_sent": !v.MailFailed}
		if err := writeJSON(e.stdout, out); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.stdout, "denied request %s of %s\n", id, v.Email)
		if !v.MailFailed {
			fmt.Fprintln(e.stdout, "the reason was "+mailNote(d.outbox))
		}
	}
	if v.MailFailed {
		return fmt.Errorf("the request is denied, but the email with the reason could not be sent: tell %s yourself", v.Email)
	}
	return nil
}
