// Command lanyard is the one binary of Lanyard: the server (serve) and the
// admin commands (invite, user, request, audit, client, backup, restore, migrate,
// config check, keys rotate). main only wires; every command is a function of
// its arguments and streams so tests run it in-process.
//
// Every admin command refuses bad input with one line on stderr and exit code
// 2 (a usage mistake) or 1 (the request cannot be done), and changes nothing
// then; every change it makes is written to the audit trail with
// {"by":"cli"}. --json prints what a script needs; the default is a table.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv})
	if err != nil {
		fmt.Fprintln(os.Stderr, "lanyard:", err)
		os.Exit(exitCode(err))
	}
}

// exitCode is 2 for a mistake in the command line, 1 for anything else.
func exitCode(err error) int {
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

// env is what a command may touch of the outside world.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// reload, when set, stands in for SIGHUP in serve (tests inject it);
	// nil means the process's own SIGHUP.
	reload <-chan struct{}
	// clock is the time for the commands' own decisions (an invitation's
	// status, a lock); nil means time.Now.
	clock func() time.Time
}

// usageError is a mistake in the command line (exit code 2).
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

const usage = `usage: lanyard COMMAND [flags]

Running:
  serve                   run the identity provider (--dev for local development)
  migrate                 apply database migrations
  config check            load and validate the configuration, listing every problem
  keys rotate             create new signing keys; old ones stay published until they expire

Officers:
  invite EMAIL            invite an officer (--name, --resend, --revoke, --show-password)
  invite list             invitations: pending, expired, accepted
  user list               accounts (--state invited|active|locked|disabled, --search TEXT)
  user show EMAIL         state, invitation, methods, accepted documents, sessions
  user disable EMAIL      refuse sign-in; end sessions and revoke tokens at once
  user enable EMAIL       allow sign-in again
  user unlock EMAIL       lift a lock after too many failed attempts
  user reset-mfa EMAIL    remove the authenticator app, passkeys and recovery codes
  user reset-password EMAIL  email a new initial password; the officer changes it at sign-in
  user sign-out EMAIL     end every session and revoke every token
  request list            account requests made on /request (--status pending|unverified|approved|denied|expired)
  request show ID         one request: who, why, its state and decision
  request approve ID      invite the requester (the onboarding email is sent)
  request deny ID --reason TEXT   refuse; the requester is emailed the reason

Audit and data:
  audit                   the audit trail (--user, --event, --since, --follow)
  audit verify            check the audit trail's hash chain (--archive FILE: and the pruned part)
  audit export --until D  write the events before a date to an archive (JSON lines)
  audit prune --until D   remove the archived events (--archive FILE); the chain still verifies
  client list             the relying parties of the configuration
  client hash-secret      read a client secret on stdin, print the secret_hash for the config
  backup FILE             an online, consistent copy of the SQLite database
  restore FILE            put a backup in place (stop the server first)

Development:
  fixture --dev           fill the database with a year of made-up data (100,000 officers, 1,000,000
                          tokens, 10,000,000 audit events) to measure Lanyard with a full database

Common flags: --config FILE | --dev, --data DIR, --addr HOST:PORT, --issuer URL, --json
Run "lanyard COMMAND -h" for the flags of a command.`

func run(ctx context.Context, args []string, e env) error {
	if len(args) == 0 {
		fmt.Fprintln(e.stderr, usage)
		return usagef("no command given")
	}
	err := dispatch(ctx, args[0], args[1:], e)
	if errors.Is(err, errHelpShown) {
		return nil
	}
	return err
}

func dispatch(ctx context.Context, cmd string, rest []string, e env) error {
	sub := func(want ...string) (string, []string, error) {
		if len(rest) == 0 {
			return "", nil, usagef("usage: lanyard %s %s", cmd, alternatives(want))
		}
		for _, w := range want {
			if rest[0] == w {
				return w, rest[1:], nil
			}
		}
		return "", nil, usagef("unknown subcommand %q of lanyard %s (want %s)", rest[0], cmd, alternatives(want))
	}
	switch cmd {
	case "serve":
		return cmdServe(ctx, rest, e)
	case "invite":
		if len(rest) > 0 && rest[0] == "list" {
			return cmdInviteList(ctx, rest[1:], e)
		}
		return cmdInvite(ctx, rest, e)
	case "user":
		return cmdUser(ctx, rest, e)
	case "request":
		return cmdRequest(ctx, rest, e)
	case "audit":
		if len(rest) > 0 {
			switch rest[0] {
			case "verify":
				return cmdAuditVerify(ctx, rest[1:], e)
			case "export":
				return cmdAuditExport(ctx, rest[1:], e)
			case "prune":
				return cmdAuditPrune(ctx, rest[1:], e)
			}
		}
		return cmdAudit(ctx, rest, e)
	case "fixture":
		return cmdFixture(ctx, rest, e)
	case "backup":
		return cmdBackup(ctx, rest, e)
	case "restore":
		return cmdRestore(ctx, rest, e)
	case "migrate":
		return cmdMigrate(ctx, rest, e)
	case "config":
		_, args, err := sub("check")
		if err != nil {
			return err
		}
		return cmdConfigCheck(ctx, args, e)
	case "keys":
		_, args, err := sub("rotate")
		if err != nil {
			return err
		}
		return cmdKeysRotate(ctx, args, e)
	case "client":
		s, args, err := sub("list", "hash-secret")
		if err != nil {
			return err
		}
		if s == "list" {
			return cmdClientList(ctx, args, e)
		}
		return cmdHashSecret(ctx, args, e)
	case "help", "-h", "--help":
		fmt.Fprintln(e.stdout, usage)
		return nil
	}
	return usagef("unknown command %q (run \"lanyard help\" for the list)", cmd)
}

func alternatives(ws []string) string {
	if len(ws) == 1 {
		return ws[0]
	}
	out := ""
	for i, w := range ws {
		if i > 0 {
			out += "|"
		}
		out += w
	}
	return out
}
