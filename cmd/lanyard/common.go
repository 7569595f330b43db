package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/flows"
	"github.com/lanyard-idp/lanyard/flows/mail"
	"github.com/lanyard-idp/lanyard/provider/store"
	"github.com/lanyard-idp/lanyard/provider/store/seal"
)

// common holds the flags every command shares: where the configuration comes
// from and, in dev, where the data lives.
type common struct {
	configFile string
	dev        bool
	data       string
	addr       string
	issuer     string
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.configFile, "config", "", "configuration `file` (YAML)")
	fs.BoolVar(&c.dev, "dev", false, "use the built-in development configuration")
	fs.StringVar(&c.data, "data", "", "data `dir` (default ./data in dev, data_dir in the config)")
	fs.StringVar(&c.addr, "addr", "", "listen `host:port` (dev default localhost:8080)")
	fs.StringVar(&c.issuer, "issuer", "", "public issuer `URL` (dev default http://<addr>)")
}

// parseFlags parses, allowing flags after positional arguments
// ("lanyard invite a@b --name X").
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usagef("%v", err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// load returns the validated configuration the flags name.
func (c *common) load(e env) (*config.Config, error) {
	if c.dev && c.configFile != "" {
		return nil, usagef("--dev and --config exclude each other")
	}
	if !c.dev && c.configFile == "" {
		if f := e.getenv("LANYARD_CONFIG"); f != "" {
			c.configFile = f
		} else {
			return nil, usagef("say which configuration: --config FILE, or --dev for local development")
		}
	}
	var cfg *config.Config
	var err error
	if c.dev {
		addr := c.addr
		if addr == "" {
			addr = "localhost:8080"
		}
		issuer := c.issuer
		if issuer == "" {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, usagef("--addr %q: %v", addr, err)
			}
			if host == "" || host == "0.0.0.0" || host == "::" {
				host = "localhost"
			}
			issuer = "http://" + net.JoinHostPort(host, port)
		}
		data := c.data
		if data == "" {
			data = "data"
		}
		if data, err = filepath.Abs(data); err != nil {
			return nil, err
		}
		if cfg, err = config.Dev(issuer, data); err != nil {
			return nil, err
		}
		cfg.Listen = addr
	} else {
		// Check reports every problem of the file at once; the flags below
		// are validated again with it.
		if cfg, err = config.Check(c.configFile, flows.ConfigRule); err != nil {
			return nil, err
		}
		if c.data != "" {
			// The outbox follows the data dir unless the file placed it elsewhere.
			if cfg.Mail.Outbox == filepath.Join(cfg.DataDir, "outbox") {
				cfg.Mail.Outbox = ""
			}
			cfg.DataDir = c.data
			cfg.ApplyDefaults()
		}
		if c.addr != "" {
			cfg.Listen = c.addr
		}
		if c.issuer != "" {
			cfg.Issuer = strings.TrimRight(c.issuer, "/")
		}
		if err := cfg.Validate(flows.ConfigRule); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

// databaseURL is the store URL: the configured one, or SQLite in the data dir.
func databaseURL(cfg *config.Config, e env) string {
	if u := e.getenv("LANYARD_DATABASE_URL"); u != "" {
		return u
	}
	if u := cfg.Database.URL.Value(); u != "" {
		return u
	}
	return filepath.Join(cfg.DataDir, "lanyard.db")
}

// deps are the parts every command that touches data needs.
type deps struct {
	cfg   *config.Config
	store *store.Store
	box   *seal.Box
	// now is the clock of the journey and the provider (nil: time.Now);
	// the browser suite moves it to let a request expire.
	now func() time.Time
}

// clock is the deps' clock.
func (d *deps) clock() func() time.Time {
	if d.now == nil {
		return time.Now
	}
	return d.now
}

func (d *deps) Close() error { return d.store.Close() }

// open opens the store (running migrations unless opts say otherwise) and the
// key-encryption key.
func open(ctx context.Context, cfg *config.Config, e env, opts ...store.OpenOptions) (*deps, error) {
	box, err := keyBox(cfg, e, true)
	if err != nil {
		return nil, err
	}
	log := newLogger(cfg, e.stderr)
	if err := privateDataDir(cfg.DataDir, log); err != nil && !isPostgres(databaseURL(cfg, e)) {
		return nil, err
	}
	if cfg.Dev {
		if err := store.Private(filepath.Join(cfg.DataDir, "kek"), 0o600, log); err != nil {
			return nil, err
		}
	}
	var o store.OpenOptions
	if len(opts) > 0 {
		o = opts[len(opts)-1]
	}
	if o.Logger == nil {
		o.Logger = log
	}
	o.AuditKey = box.Derive(store.AuditKeyPurpose)
	if o.MaxConnections == 0 {
		o.MaxConnections = cfg.Database.MaxConnections
	}
	st, err := store.Open(ctx, databaseURL(cfg, e), o)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	return &deps{cfg: cfg, store: st, box: box}, nil
}

// privateDataDir creates the data dir 0700, or makes an existing one that
// others can read private (with a warning): it holds the SQLite database, the
// dev key-encryption key and the mail outbox.
func privateDataDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	return store.Private(dir, 0o700, log)
}

func isPostgres(u string) bool {
	return strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://")
}

// keyBox is the key-encryption key's box (encryptionKey); create as there.
func keyBox(cfg *config.Config, e env, create bool) (*seal.Box, error) {
	key, err := encryptionKey(cfg, e, create)
	if err != nil {
		return nil, err
	}
	return seal.New(key)
}

// encryptionKey is the key-encryption key: from the config (or
// LANYARD_ENCRYPTION_KEY), or in dev generated once into <data>/kek so that a
// restart decrypts what the last run stored. Without create, a dev key that
// is not there yet is an error: a command on an existing database must not
// make up a key of its own.
func encryptionKey(cfg *config.Config, e env, create bool) ([]byte, error) {
	if k := e.getenv("LANYARD_ENCRYPTION_KEY"); k != "" {
		return seal.ParseKey(k)
	}
	if k := cfg.Keys.EncryptionKey.Value(); k != "" {
		return seal.ParseKey(k)
	}
	if !cfg.Dev {
		return nil, errors.New("keys.encryption_key is not set (set LANYARD_ENCRYPTION_KEY or keys.encryption_key_file)")
	}
	path := filepath.Join(cfg.DataDir, "kek")
	b, err := os.ReadFile(path)
	if err == nil {
		return seal.ParseKey(string(b))
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read dev key: %w", err)
	}
	if !create {
		return nil, fmt.Errorf("there is no key-encryption key at %s: the server makes it when it first starts", path)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	k := seal.NewKey()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) { // another process made it first
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		return seal.ParseKey(string(b))
	}
	if err != nil {
		return nil, fmt.Errorf("create dev key: %w", err)
	}
	defer f.Close()
	if _, err := io.WriteString(f, encodeKey(k)+"\n"); err != nil {
		return nil, err
	}
	return k, f.Sync()
}

// newMailer sends through SMTP, or in dev (or without an SMTP host) writes
// .eml files to the outbox folder.
func newMailer(cfg *config.Config, log *slog.Logger) (mail.Mailer, string, error) {
	if cfg.Dev || cfg.Mail.SMTP.Host == "" {
		return mail.NewOutbox(cfg.Mail.Outbox, cfg.Mail.From, log), cfg.Mail.Outbox, nil
	}
	m, err := mail.NewSMTP(cfg.Mail.SMTP, cfg.Mail.From)
	return m, "", err
}
