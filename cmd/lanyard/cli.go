package main

// The shape every admin command shares: flags (the common ones plus --json),
// one-line refusals, a table or JSON on stdout, and an audit event for every
// change, written in the transaction of the change.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/flows"
	"github.com/lanyard-idp/lanyard/provider/store"
)

// errHelpShown: -h printed the command's help; the command stops with exit 0.
var errHelpShown = errors.New("help shown")

// command is one admin command's flag set and what every command has.
type command struct {
	fs       *flag.FlagSet
	c        common
	json     bool
	synopsis string // "user show EMAIL [--json]"
}

func newCommand(synopsis string, e env) *command {
	name, _, _ := strings.Cut(synopsis, " [")
	cmd := &command{fs: flag.NewFlagSet("lanyard "+name, flag.ContinueOnError), synopsis: synopsis}
	// The flag package's own messages would add lines to the one-line refusal.
	cmd.fs.SetOutput(io.Discard)
	cmd.c.register(cmd.fs)
	cmd.fs.BoolVar(&cmd.json, "json", false, "print JSON for scripts instead of a table")
	return cmd
}

// parse parses args and checks the number of positional arguments. -h
// prints the synopsis and flags on stdout and returns errHelpShown.
func (cmd *command) parse(args []string, e env, minPos, maxPos int) ([]string, error) {
	pos, err := parseFlags(cmd.fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(e.stdout, "usage: lanyard %s\n\nFlags:\n", cmd.synopsis)
		cmd.fs.SetOutput(e.stdout)
		cmd.fs.PrintDefaults()
		return nil, errHelpShown
	}
	if err != nil {
		return nil, usagef("%v (usage: lanyard %s)", err, cmd.synopsis)
	}
	if len(pos) < minPos || len(pos) > maxPos {
		return nil, usagef("usage: lanyard %s", cmd.synopsis)
	}
	return pos, nil
}

// openStore loads the configuration and opens the database of an existing
// deployment. Unlike open, it refuses to create a database (an admin
// command pointed at the wrong data dir must say so, not start an empty
// one) and it opens nothing sealed; it still needs the key-encryption key,
// for the audit chain's key (every change these commands make is audited).
func (cmd *command) openStore(ctx context.Context, e env) (*config.Config, *store.Store, error) {
	cfg, err := cmd.c.load(e)
	if err != nil {
		return nil, nil, err
	}
	url := databaseURL(cfg, e)
	if !isPostgres(url) {
		path := sqliteFile(url)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("there is no database at %s: check --data or data_dir (the server creates it when it first starts)", path)
		}
	}
	box, err := keyBox(cfg, e, false)
	if err != nil {
		return nil, nil, err
	}
	st, err := store.Open(ctx, url, store.OpenOptions{AuditKey: box.Derive(store.AuditKeyPurpose), Logger: newLogger(cfg, e.stderr)})
	if err != nil {
		return nil, nil, fmt.Errorf("open database: %w", err)
	}
	return cfg, st, nil
}

// loadConfig parses a command that takes no argument and loads the
// configuration its flags name.
func (cmd *command) loadConfig(args []string, e env) (*config.Config, error) {
	if _, err := cmd.parse(args, e, 0, 0); err != nil {
		return nil, err
	}
	return cmd.c.load(e)
}

// source names where cfg came from: its file, or builtIn for the built-in
// development configuration.
func source(cfg *config.Config, builtIn string) string {
	if cfg.Source == "" {
		return builtIn
	}
	return cfg.Source
}

// openAccount opens a command about one officer's account (EMAIL and
// flags): it checks the address, then opens the admin service (openAdmin).
// It returns the address as typed: the admin service canonicalises it.
func (cmd *command) openAccount(ctx context.Context, args []string, e env, mail bool) (string, *adminDeps, error) {
	pos, err := cmd.parse(args, e, 1, 1)
	if err != nil {
		return "", nil, err
	}
	if _, err := canonical(pos[0]); err != nil {
		return "", nil, err
	}
	d, err := cmd.openAdmin(ctx, e, mail)
	return pos[0], d, err
}

// adminDeps are what a command on officers' accounts works with: the
// deployment's configuration and store, and the admin service on them.
type adminDeps struct {
	cfg    *config.Config
	store  *store.Store
	admin  *flows.Admin
	outbox string // where dev mail goes, with mail
}

func (d *adminDeps) Close() error { return d.store.Close() }

// openAdmin opens the deployment's store (openStore) and the admin service
// on it, with the configuration's mail when the command emails an initial
// password.
func (cmd *command) openAdmin(ctx context.Context, e env, mail bool) (*adminDeps, error) {
	cfg, st, err := cmd.openStore(ctx, e)
	if err != nil {
		return nil, err
	}
	d := &adminDeps{cfg: cfg, store: st}
	if d.admin, d.outbox, err = newAdmin(cfg, st, e, mail); err != nil {
		st.Close()
		return nil, err
	}
	return d, nil
}

// sqliteFile is the file of a SQLite database URL (the spellings store.Open
// accepts).
func sqliteFile(url string) string {
	switch {
	case url == "":
		return "lanyard.db"
	case strings.HasPrefix(url, "sqlite://"):
		return strings.TrimPrefix(url, "sqlite://")
	case strings.HasPrefix(url, "sqlite:"):
		return strings.TrimPrefix(url, "sqlite:")
	}
	return url
}

// canonical turns an address typed on the command line into a username, or
// a usage error.
func canonical(email string) (string, error) {
	u, err := flows.CanonicalUsername(email)
	if err != nil {
		return "", usagef("%q is not an officer's address (like name@agency.example)", truncate(email, 100))
	}
	return u, nil
}

// adminEvent appends the audit event of an admin action, in ctx's
// transaction: the change and its record are stored together or not at all.
func adminEvent(ctx context.Context, st *store.Store, name store.Event, u *store.User, detail map[string]any) error {
	if detail == nil {
		detail = map[string]any{}
	}
	detail["by"] = store.ActorCLI
	b, err := json.Marshal(detail)
	if err != nil {
		return fmt.Errorf("audit %s: %w", name, err)
	}
	ev := &store.AuditEvent{Event: name, Detail: b}
	if u != nil {
		ev.UserID, ev.Username = u.ID, u.Username
	}
	return st.AppendAudit(ctx, ev)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeTable prints rows under a header, aligned.
func writeTable(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		for i := range r {
			r[i] = oneLine(r[i])
		}
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// oneLine keeps a stored value (a name, a user agent) from breaking a table
// or forging lines in a terminal.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// stamp formats a time for tables and JSON: RFC 3339 in UTC, "" when unset.
func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// orDash is a table cell that shows "-" for nothing.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (e env) now() time.Time {
	if e.clock != nil {
		return e.clock().UTC()
	}
	return time.Now().UTC()
}
