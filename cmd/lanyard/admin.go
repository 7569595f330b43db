package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/flows"
	"github.com/lanyard-idp/lanyard/provider"
	"github.com/lanyard-idp/lanyard/provider/store"
)

func encodeKey(k []byte) string { return base64.StdEncoding.EncodeToString(k) }

func cmdMigrate(ctx context.Context, args []string, e env) error {
	cmd := newCommand("migrate [--config FILE | --dev]", e)
	cfg, err := cmd.loadConfig(args, e)
	if err != nil {
		return err
	}
	d, err := open(ctx, cfg, e, store.OpenOptions{NoMigrate: true})
	if err != nil {
		return err
	}
	defer d.Close()
	applied, err := d.store.Migrate(ctx)
	if err != nil {
		return err
	}
	if cmd.json {
		return writeJSON(e.stdout, map[string]any{"dialect": d.store.Dialect(), "applied": append([]string{}, applied...)})
	}
	fmt.Fprintf(e.stdout, "database is up to date (%s)\n", d.store.Dialect())
	for _, a := range applied {
		fmt.Fprintln(e.stdout, "applied", a)
	}
	return nil
}

func cmdConfigCheck(ctx context.Context, args []string, e env) error {
	cmd := newCommand("config check [--config FILE | --dev]", e)
	cfg, err := cmd.loadConfig(args, e)
	if err != nil {
		return err
	}
	src := source(cfg, "built-in development configuration")
	fmt.Fprintf(e.stdout, "%s: OK\nissuer %s\n", src, cfg.Issuer)
	for _, cl := range cfg.Clients {
		where := ""
		if cl.Line > 0 {
			where = fmt.Sprintf(" (line %d)", cl.Line)
		}
		fmt.Fprintf(e.stdout, "client %s%s: %s\n", cl.ID, where, strings.Join(cl.GrantTypes, ", "))
	}
	return nil
}

// clientInfo is one relying party as `client list` shows it.
type clientInfo struct {
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	Public       bool     `json:"public"`
	GrantTypes   []string `json:"grant_types"`
	Scopes       []string `json:"scopes"`
	RedirectURIs []string `json:"redirect_uris"`
	AuthMethod   string   `json:"token_endpoint_auth_method"`
	// Source is "FILE:LINE" of the client in the configuration.
	Source string `json:"source"`
}

func cmdClientList(ctx context.Context, args []string, e env) error {
	cmd := newCommand("client list [--config FILE | --dev] [--json]", e)
	cfg, err := cmd.loadConfig(args, e)
	if err != nil {
		return err
	}
	src := source(cfg, "dev.yaml (built in)")
	out := []clientInfo{}
	for _, cl := range cfg.Clients {
		c := clientInfo{ID: cl.ID, Name: cl.Name, Public: cl.Public, GrantTypes: nonNil(cl.GrantTypes), Scopes: nonNil(cl.Scopes),
			RedirectURIs: nonNil(cl.RedirectURIs), AuthMethod: cl.TokenEndpointAuthMethod, Source: src}
		if cl.Line > 0 {
			c.Source = fmt.Sprintf("%s:%d", src, cl.Line)
		}
		out = append(out, c)
	}
	if cmd.json {
		return writeJSON(e.stdout, out)
	}
	rows := [][]string{}
	for _, c := range out {
		rows = append(rows, []string{c.ID, orDash(c.Name), strings.Join(c.GrantTypes, ","), orDash(strings.Join(c.RedirectURIs, " ")), c.AuthMethod, c.Source})
	}
	return writeTable(e.stdout, []string{"ID", "NAME", "GRANTS", "REDIRECT URIS", "AUTH", "SOURCE"}, rows)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return slices.Clone(s)
}

func cmdKeysRotate(ctx context.Context, args []string, e env) error {
	cmd := newCommand("keys rotate [--config FILE | --dev]", e)
	cfg, err := cmd.loadConfig(args, e)
	if err != nil {
		return err
	}
	d, err := open(ctx, cfg, e)
	if err != nil {
		return err
	}
	defer d.Close()
	kids, err := provider.RotateKeys(ctx, d.store, d.box, cfg)
	if err != nil {
		return err
	}
	if err := adminEvent(ctx, d.store, store.EventKeysRotate, nil, map[string]any{"kids": kids}); err != nil {
		return fmt.Errorf("the keys are rotated, but the audit event was not written: %w", err)
	}
	if cmd.json {
		return writeJSON(e.stdout, map[string]any{"new_kids": kids, "retire_after": cfg.Keys.RetireAfter.D().String()})
	}
	fmt.Fprintf(e.stdout, "new signing keys: %s\nprevious keys stay in the JWKS for %s\n", strings.Join(kids, ", "), cfg.Keys.RetireAfter.D())
	return nil
}

func cmdHashSecret(_ context.Context, args []string, e env) error {
	cmd := newCommand("client hash-secret < secret.txt", e)
	if _, err := cmd.parse(args, e, 0, 0); err != nil {
		return err
	}
	line, err := bufio.NewReader(io.LimitReader(e.stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	secret := strings.TrimRight(line, "\r\n")
	if err := config.CheckSecretStrength(secret); err != nil {
		return err
	}
	h, err := config.HashSecret(secret)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, h)
	return nil
}

func cmdInvite(ctx context.Context, args []string, e env) error {
	cmd := newCommand(`invite EMAIL --name "FULL NAME" [--given-name G --family-name F] | --resend | --revoke [--show-password] [--json]`, e)
	var name, given, family string
	var resend, revoke, show bool
	cmd.fs.StringVar(&name, "name", "", "the officer's full `name` (two words: also the given and family names)")
	cmd.fs.StringVar(&given, "given-name", "", "the officer's given `name` (OpenID Connect given_name)")
	cmd.fs.StringVar(&family, "family-name", "", "the officer's family `name` (OpenID Connect family_name)")
	cmd.fs.BoolVar(&resend, "resend", false, "issue a new initial password and expiry for a pending invitation")
	cmd.fs.BoolVar(&revoke, "revoke", false, "withdraw a pending invitation: the account is deleted, the initial password stops working")
	cmd.fs.BoolVar(&show, "show-password", false, "print the initial password (it is also in the email)")
	pos, err := cmd.parse(args, e, 1, 1)
	if err != nil {
		return err
	}
	switch {
	case revoke && (resend || name != "" || given != "" || family != "" || show):
		return usagef("--revoke takes no other option than --json")
	case name == "" && (given == "" || family == "") && !resend && !revoke:
		return usagef("--name is required (or --given-name and --family-name): the officer's full name, as the email greets them")
	}
	if _, err := canonical(pos[0]); err != nil {
		return err
	}
	if revoke {
		return inviteRevoke(ctx, cmd, pos[0], e)
	}
	cfg, err := cmd.c.load(e)
	if err != nil {
		return err
	}
	// open, not openStore: the first invitation may come before the server
	// has ever started, and creates the database.
	d, err := open(ctx, cfg, e)
	if err != nil {
		return err
	}
	defer d.Close()
	admin, outbox, err := newAdmin(cfg, d.store, e, true)
	if err != nil {
		return err
	}
	invite := admin.Invite
	if resend {
		invite = admin.Resend
	}
	inv, err := invite(ctx, store.ActorCLI, pos[0], flows.Names{Full: name, Given: given, Family: family})
	if err != nil {
		return inviteError(err)
	}
	if cmd.json {
		out := map[string]any{"username": inv.Username, "name": inv.Name, "given_name": inv.GivenName, "family_name": inv.FamilyName,
			"expires_at": stamp(inv.ExpiresAt), "resent": inv.Resent, "mail_sent": inv.MailErr == nil}
		if show {
			out["initial_password"] = inv.InitialPassword
		}
		if inv.MailErr != nil {
			out["mail_error"] = inv.MailErr.Error()
		}
		if err := writeJSON(e.stdout, out); err != nil {
			return err
		}
	} else {
		verb := "invited"
		if inv.Resent {
			verb = "re-invited"
		}
		fmt.Fprintf(e.stdout, "%s %s; the invitation is valid until %s\n", verb, inv.Username, inv.ExpiresAt.UTC().Format("Mon 2 Jan 2006 15:04 MST"))
		if show {
			fmt.Fprintf(e.stdout, "initial password: %s\n", inv.InitialPassword)
		}
		if inv.MailErr == nil {
			fmt.Fprintln(e.stdout, "onboarding "+mailNote(outbox))
		}
	}
	if inv.MailErr != nil {
		return fmt.Errorf("the invitation is recorded, but the onboarding email could not be sent: %v; fix the mail settings, then run: lanyard invite --resend %s", inv.MailErr, inv.Username)
	}
	return nil
}

// inviteError makes a malformed name or address a usage mistake (exit 2).
func inviteError(err error) error {
	if errors.Is(err, flows.ErrBadName) || errors.Is(err, flows.ErrBadUsername) {
		return usagef("%v", err)
	}
	return err
}

func inviteRevoke(ctx context.Context, cmd *command, email string, e env) error {
	d, err := cmd.openAdmin(ctx, e, false)
	if err != nil {
		return err
	}
	defer d.Close()
	u, err := d.admin.Revoke(ctx, store.ActorCLI, email)
	if err != nil {
		return inviteError(err)
	}
	if cmd.json {
		return writeJSON(e.stdout, map[string]any{"username": u.Username, "revoked": true})
	}
	fmt.Fprintf(e.stdout, "revoked the invitation of %s: the account is deleted and its initial password no longer works\n", u.Username)
	return nil
}

type invitationRow struct {
	Username     string `json:"username"`
	Name         string `json:"name"`
	Status       string `json:"status"`
	InvitedAt    string `json:"invited_at"`
	ExpiresAt    string `json:"expires_at,omitempty"`
	LastSignInAt string `json:"last_sign_in_at,omitempty"`
}

func cmdInviteList(ctx context.Context, args []string, e env) error {
	cmd := newCommand("invite list [--status pending|expired|accepted|disabled] [--json]", e)
	var status string
	cmd.fs.StringVar(&status, "status", "", "only invitations with this `status`: pending, expired, accepted or disabled")
	if _, err := cmd.parse(args, e, 0, 0); err != nil {
		return err
	}
	if status != "" && !slices.Contains([]string{flows.InvitePending, flows.InviteExpired, flows.InviteAccepted, flows.InviteDisabled}, status) {
		return usagef("--status %q: want pending, expired, accepted or disabled", truncate(status, 40))
	}
	d, err := cmd.openAdmin(ctx, e, false)
	if err != nil {
		return err
	}
	defer d.Close()
	list, err := d.admin.Invitations(ctx)
	if err != nil {
		return err
	}
	rows := []invitationRow{}
	for _, s := range list {
		if status != "" && s.Status != status {
			continue
		}
		rows = append(rows, invitationRow{Username: s.Username, Name: s.Name, Status: s.Status,
			InvitedAt: stamp(s.InvitedAt), ExpiresAt: stamp(s.ExpiresAt), LastSignInAt: stamp(s.LastSignInAt)})
	}
	if cmd.json {
		return writeJSON(e.stdout, rows)
	}
	table := [][]string{}
	for _, r := range rows {
		table = append(table, []string{r.Username, orDash(r.Name), r.Status, r.InvitedAt, orDash(r.ExpiresAt)})
	}
	if err := writeTable(e.stdout, []string{"EMAIL", "NAME", "STATUS", "INVITED", "EXPIRES"}, table); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%d invitation(s)\n", len(rows))
	return nil
}
