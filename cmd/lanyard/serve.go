package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/flows"
	"github.com/lanyard-idp/lanyard/flows/mail"
	"github.com/lanyard-idp/lanyard/provider"
	"github.com/lanyard-idp/lanyard/static"
	"github.com/lanyard-idp/lanyard/templates"
)

func cmdServe(ctx context.Context, args []string, e env) error {
	var c common
	fs := newFlags("serve", e)
	c.register(fs)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := c.load(e)
	if err != nil {
		return err
	}
	log := newLogger(cfg, e.stderr)
	d, err := open(ctx, cfg, e)
	if err != nil {
		return err
	}
	defer d.Close()
	mailer, outbox, err := newMailer(cfg, log)
	if err != nil {
		return err
	}
	srv, err := newServer(ctx, d, mailer, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go srv.housekeeping(ctx)
	banner(e.stdout, cfg, ln.Addr().String(), outbox)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: draining requests")
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

func banner(w io.Writer, cfg *config.Config, addr, outbox string) {
	fmt.Fprintf(w, "Lanyard is running.\n  issuer:   %s\n  listening on %s\n  sign in:  %s/signin\n", cfg.Issuer, addr, cfg.Issuer)
	if cfg.Dev {
		fmt.Fprintf(w, "  mail:     written to %s\n", outbox)
		fmt.Fprintf(w, "Invite a first officer in another terminal:\n  go run ./cmd/lanyard invite officer@agency.example --name \"Alex Officer\" --dev --data %s\n", cfg.DataDir)
		fmt.Fprintf(w, "Then sign in through the example relying party:\n  go run ./cmd/docs-portal --env staging --issuer %s   (open http://localhost:9001)\n", cfg.Issuer)
	}
}

// server is Lanyard's whole HTTP surface: the provider's protocol endpoints,
// the journey pages and the static files, behind one middleware chain.
type server struct {
	d        *deps
	log      *slog.Logger
	provider *provider.Provider
	flows    *flows.Handler
	mux      *http.ServeMux
	handler  http.Handler
}

func newServer(ctx context.Context, d *deps, mailer mail.Mailer, log *slog.Logger) (*server, error) {
	pages, err := templates.Parse()
	if err != nil {
		return nil, err
	}
	fh, err := flows.New(ctx, flows.Options{Config: d.cfg, Store: d.store, Box: d.box, Pages: pages, Mailer: mailer, Logger: log, Now: time.Now})
	if err != nil {
		return nil, fmt.Errorf("journey: %w", err)
	}
	ph, err := provider.New(ctx, provider.Options{Config: d.cfg, Store: d.store, Box: d.box, Journey: fh, Pages: pages, Logger: log, Now: time.Now})
	if err != nil {
		return nil, fmt.Errorf("provider: %w", err)
	}
	s := &server{d: d, log: log, provider: ph, flows: fh, mux: http.NewServeMux()}
	ph.Mount(s.mux)
	fh.Mount(s.mux)
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", cacheForever(http.FileServerFS(static.FS))))
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	s.mux.HandleFunc("GET /readyz", s.ready)
	s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/account", http.StatusSeeOther)
	})
	s.handler = s.recover(s.requestID(limitBody(s.mux)))
	return s, nil
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

func (s *server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.d.store.Ping(ctx); err != nil {
		s.log.Warn("not ready: database unreachable", "err", err)
		http.Error(w, "database unreachable", http.StatusServiceUnavailable)
		return
	}
	io.WriteString(w, "ready\n")
}

// housekeeping removes expired codes, tokens, sessions and parked requests.
func (s *server) housekeeping(ctx context.Context) {
	t := time.NewTicker(5 * time.Minute)
	defer t.Stop()
	for {
		n, err := s.d.store.DeleteExpired(ctx, time.Now())
		if err != nil && ctx.Err() == nil {
			s.log.Warn("garbage collection failed", "err", err)
		} else if n > 0 {
			s.log.Info("garbage collected expired rows", "rows", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

type ctxKey struct{}

// requestID tags each request (and its log lines) with a random id, echoed in
// the X-Request-Id response header so an officer can quote it.
func (s *server) requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b [8]byte
		rand.Read(b[:])
		id := hex.EncodeToString(b[:])
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, id)))
	})
}

// recover turns a panic into a 500 page and a log line, never a dead process
// or a stack trace sent to the browser.
func (s *server) recover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic serving request", "path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				w.Header().Set("Cache-Control", "no-store")
				w.WriteHeader(http.StatusInternalServerError)
				io.WriteString(w, "Something went wrong on our side. Please try again in a moment.\n")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// limitBody caps request bodies: nothing Lanyard accepts is larger than 1 MiB.
func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		}
		next.ServeHTTP(w, r)
	})
}

func cacheForever(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		next.ServeHTTP(w, r)
	})
}

// newLogger is the one *slog.Logger of the process.
func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.Log.Level)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if strings.EqualFold(cfg.Log.Format, "json") {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

var _ = errors.New
