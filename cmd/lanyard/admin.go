package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/flows"
	"github.com/lanyard-idp/lanyard/provider"
	"github.com/lanyard-idp/lanyard/templates"
)

func encodeKey(k []byte) string { return base64.StdEncoding.EncodeToString(k) }

func cmdMigrate(ctx context.Context, args []string, e env) error {
	var c common
	fs := newFlags("migrate", e)
	c.register(fs)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := c.load(e)
	if err != nil {
		return err
	}
	d, err := open(ctx, cfg, e) // Open applies pending migrations
	if err != nil {
		return err
	}
	defer d.Close()
	applied, err := d.store.Migrate(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "database is up to date (%s)\n", d.store.Dialect())
	for _, a := range applied {
		fmt.Fprintln(e.stdout, "applied", a)
	}
	return nil
}

func cmdConfigCheck(ctx context.Context, args []string, e env) error {
	var c common
	fs := newFlags("config check", e)
	c.register(fs)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := c.load(e)
	if err != nil {
		return err
	}
	src := cfg.Source
	if src == "" {
		src = "built-in development configuration"
	}
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

func cmdKeysRotate(ctx context.Context, args []string, e env) error {
	var c common
	fs := newFlags("keys rotate", e)
	c.register(fs)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := c.load(e)
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
	fmt.Fprintf(e.stdout, "new signing keys: %s\nprevious keys stay in the JWKS for %s\n", strings.Join(kids, ", "), cfg.Keys.RetireAfter.D())
	return nil
}

func cmdHashSecret(_ context.Context, args []string, e env) error {
	fs := newFlags("client hash-secret", e)
	if _, err := parseFlags(fs, args); err != nil {
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
	var c common
	var name string
	var resend, show, asJSON bool
	fs := newFlags("invite", e)
	c.register(fs)
	fs.StringVar(&name, "name", "", "the officer's full `name`")
	fs.BoolVar(&resend, "resend", false, "issue a new initial password and expiry for a pending invitation")
	fs.BoolVar(&show, "show-password", false, "print the initial password (it is also in the email)")
	fs.BoolVar(&asJSON, "json", false, "print the result as JSON")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("usage: lanyard invite EMAIL --name \"FULL NAME\" [--resend] [--show-password] [--json]")
	}
	if name == "" && !resend {
		return usagef("--name is required: the officer's full name, as the email greets them")
	}
	cfg, err := c.load(e)
	if err != nil {
		return err
	}
	d, err := open(ctx, cfg, e)
	if err != nil {
		return err
	}
	defer d.Close()
	log := newLogger(cfg, e.stderr)
	mailer, outbox, err := newMailer(cfg, log)
	if err != nil {
		return err
	}
	pages, err := templates.Parse()
	if err != nil {
		return err
	}
	iv := &flows.Inviter{Config: cfg, Store: d.store, Mailer: mailer, Pages: pages, Now: time.Now, Logger: log}
	inv, err := iv.Invite(ctx, pos[0], name, resend)
	if err != nil {
		return err
	}
	if asJSON {
		out := map[string]any{"username": inv.Username, "expires_at": inv.ExpiresAt.UTC().Format(time.RFC3339), "resent": inv.Resent, "mail_sent": inv.MailErr == nil}
		if show {
			out["initial_password"] = inv.InitialPassword
		}
		if inv.MailErr != nil {
			out["mail_error"] = inv.MailErr.Error()
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
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
		if inv.MailErr == nil && outbox != "" {
			fmt.Fprintf(e.stdout, "onboarding email written to %s\n", outbox)
		} else if inv.MailErr == nil {
			fmt.Fprintln(e.stdout, "onboarding email sent")
		}
	}
	if inv.MailErr != nil {
		return fmt.Errorf("the invitation is recorded, but the onboarding email could not be sent: %v\nfix the mail settings, then run: lanyard invite --resend %s", inv.MailErr, inv.Username)
	}
	return nil
}

var _ = flag.ErrHelp
