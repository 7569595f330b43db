// Command docs-portal is a small example relying party of Lanyard: the
// "documentation portal" of the quick start and the onboarding guide, in a
// staging and a production environment that share one Lanyard sign-in.
//
//	go run ./cmd/docs-portal --env staging      # http://localhost:9001, client docs-portal-staging
//	go run ./cmd/docs-portal --env production   # http://localhost:9002, client docs-portal-production
//
// It does what any OpenID Connect web application should, with
// github.com/coreos/go-oidc and golang.org/x/oauth2: authorization code flow
// with PKCE (S256), state and nonce; the code exchanged with the verifier; the
// ID token verified (signature, issuer, audience, expiry, nonce); tokens kept
// server-side and the browser holding only a random session cookie; refresh;
// RP-initiated logout through the issuer's end_session_endpoint; and a
// back-channel logout receiver (POST /backchannel-logout): when the
// officer's Lanyard session ends anywhere, the portal's session ends too.
//
// It is an example, not part of Lanyard: it imports nothing of the project.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "docs-portal:", err)
		}
		os.Exit(2)
	}
}

// Config is the portal's configuration, from flags.
type Config struct {
	Env          string // staging | production: picks the defaults below
	Issuer       string
	Addr         string
	ClientID     string
	ClientSecret string
	RedirectURL  string
	// PostLogoutURL is where the issuer sends the browser after sign-out: the
	// portal's home page.
	PostLogoutURL string
}

// environments are the two dev clients of Lanyard's built-in configuration.
var environments = map[string]Config{
	"staging": {
		Addr: ":9001", ClientID: "docs-portal-staging", ClientSecret: "staging-secret",
		RedirectURL: "http://localhost:9001/callback",
	},
	"production": {
		Addr: ":9002", ClientID: "docs-portal-production", ClientSecret: "production-secret",
		RedirectURL: "http://localhost:9002/callback",
	},
}

// parseFlags reads the command line. Flags given explicitly override the
// environment's defaults.
func parseFlags(args []string, stderr io.Writer) (Config, error) {
	fs := flag.NewFlagSet("docs-portal", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c Config
	fs.StringVar(&c.Env, "env", "staging", "environment: staging (port 9001) or production (port 9002)")
	fs.StringVar(&c.Issuer, "issuer", "http://localhost:8080", "Lanyard's issuer URL")
	addr := fs.String("addr", "", "listen address (default :9001 or :9002)")
	id := fs.String("client-id", "", "OAuth client id (default docs-portal-<env>)")
	secret := fs.String("client-secret", "", "OAuth client secret (default <env>-secret)")
	redirect := fs.String("redirect", "", "redirect URI registered for the client (default http://localhost:900N/callback)")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	env, ok := environments[c.Env]
	if !ok {
		return Config{}, fmt.Errorf("--env %q: use staging or production", c.Env)
	}
	c.Addr, c.ClientID, c.ClientSecret, c.RedirectURL = env.Addr, env.ClientID, env.ClientSecret, env.RedirectURL
	for dst, v := range map[*string]string{&c.Addr: *addr, &c.ClientID: *id, &c.ClientSecret: *secret, &c.RedirectURL: *redirect} {
		if v != "" {
			*dst = v
		}
	}
	c.Issuer = strings.TrimRight(c.Issuer, "/")
	if u, err := url.Parse(c.Issuer); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Config{}, fmt.Errorf("--issuer %q is not an http(s) URL", c.Issuer)
	}
	ru, err := url.Parse(c.RedirectURL)
	if err != nil || (ru.Scheme != "http" && ru.Scheme != "https") || ru.Host == "" {
		return Config{}, fmt.Errorf("--redirect %q is not an http(s) URL", c.RedirectURL)
	}
	c.PostLogoutURL = (&url.URL{Scheme: ru.Scheme, Host: ru.Host, Path: "/"}).String()
	return c, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	app := New(cfg)
	srv := &http.Server{
		Addr:              cfg.Addr,
		Handler:           app.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Docs portal — %s environment on %s (client %s, issuer %s)\n",
		cfg.Env, cfg.PostLogoutURL, cfg.ClientID, cfg.Issuer)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}
