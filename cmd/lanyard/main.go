// Command lanyard is the one binary of Lanyard: the server (serve) and the
// admin commands (invite, migrate, config check, keys rotate, client
// hash-secret, …). main only wires; every command is a function of its
// arguments and streams so tests run it in-process.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv})
	if err != nil {
		var u usageError
		if errors.As(err, &u) {
			fmt.Fprintln(os.Stderr, "lanyard:", err)
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "lanyard:", err)
		os.Exit(1)
	}
}

// env is what a command may touch of the outside world.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

// usageError is a mistake in the command line (exit code 2).
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

const usage = `usage: lanyard COMMAND [flags]

Commands:
  serve                 run the identity provider (--dev for local development)
  invite EMAIL          invite an officer (--name, --resend, --show-password, --json)
  migrate               apply database migrations
  config check          load and validate the configuration, listing every problem
  keys rotate           create new signing keys; old ones stay published until they expire
  client hash-secret    read a client secret on stdin, print the secret_hash for the config

Common flags: --config FILE | --dev, --data DIR, --addr HOST:PORT, --issuer URL
Run "lanyard COMMAND -h" for the flags of a command.`

func run(ctx context.Context, args []string, e env) error {
	if len(args) == 0 {
		fmt.Fprintln(e.stderr, usage)
		return usagef("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return cmdServe(ctx, rest, e)
	case "invite":
		return cmdInvite(ctx, rest, e)
	case "migrate":
		return cmdMigrate(ctx, rest, e)
	case "config":
		if len(rest) == 0 || rest[0] != "check" {
			return usagef("usage: lanyard config check [--config FILE | --dev]")
		}
		return cmdConfigCheck(ctx, rest[1:], e)
	case "keys":
		if len(rest) == 0 || rest[0] != "rotate" {
			return usagef("usage: lanyard keys rotate [--config FILE | --dev]")
		}
		return cmdKeysRotate(ctx, rest[1:], e)
	case "client":
		if len(rest) == 0 || rest[0] != "hash-secret" {
			return usagef("usage: lanyard client hash-secret < secret.txt")
		}
		return cmdHashSecret(ctx, rest[1:], e)
	case "help", "-h", "--help":
		fmt.Fprintln(e.stdout, usage)
		return nil
	}
	fmt.Fprintln(e.stderr, usage)
	return usagef("unknown command %q", cmd)
}
