package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/flows"
	"github.com/lanyard-idp/lanyard/flows/mail"
	"github.com/lanyard-idp/lanyard/provider"
	"github.com/lanyard-idp/lanyard/static"
	"github.com/lanyard-idp/lanyard/templates"
)

// Server limits: a slow or huge request cannot hold a connection or memory
// for long.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 15 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 90 * time.Second
	maxHeaderBytes    = 64 << 10
	maxBodyBytes      = 1 << 20
	// drainTimeout is how long SIGTERM waits for requests in flight.
	drainTimeout = 20 * time.Second
)

func cmdServe(ctx context.Context, args []string, e env) error {
	cmd := newCommand("serve [--config FILE | --dev] [--metrics-listen HOST:PORT]", e)
	var metricsListen optString
	cmd.fs.Var(&metricsListen, "metrics-listen", "serve /metrics on `host:port` (overrides metrics.listen; empty: on the main listener)")
	if _, err := cmd.parse(args, e, 0, 0); err != nil {
		return err
	}
	load := func() (*config.Config, error) {
		cfg, err := cmd.c.load(e)
		if err == nil && metricsListen.set {
			cfg.Metrics.Listen = metricsListen.v
		}
		return cfg, err
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	if cfg.Dev {
		if err := devLoopbackOnly(cfg); err != nil {
			return err
		}
	}
	log := newLogger(cfg, e.stderr)
	if gc, limit := tuneMemory(e.getenv); gc != 0 || limit != 0 {
		log.Debug("garbage collector tuned for the argon2id pool (GOGC, GOMEMLIMIT override)", "gogc", gc, "memory_limit_mib", limit>>20)
	}
	if url := databaseURL(cfg, e); !isPostgres(url) {
		if err := privateDataDir(cfg.DataDir, log); err != nil {
			return err
		}
		release, err := lockShared(sqliteFile(url))
		if err != nil {
			return err
		}
		defer release()
	}
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
	servers := []*http.Server{newHTTPServer(srv, log)}
	listeners := []net.Listener{ln}
	metricsAddr := ""
	if cfg.Metrics.Listen != "" {
		mln, err := net.Listen("tcp", cfg.Metrics.Listen)
		switch {
		case err != nil && cfg.Dev:
			// Two dev servers on one laptop must not stop each other.
			log.Warn("metrics listener not started: serving /metrics nowhere", "listen", cfg.Metrics.Listen, "err", err)
		case err != nil:
			ln.Close()
			return fmt.Errorf("metrics.listen %s: %w", cfg.Metrics.Listen, err)
		default:
			mux := http.NewServeMux()
			mux.Handle("GET /metrics", srv.metrics.handler())
			servers = append(servers, newHTTPServer(mux, log))
			listeners = append(listeners, mln)
			metricsAddr = mln.Addr().String()
		}
	} else {
		metricsAddr = ln.Addr().String() + " (main listener)"
	}

	bg, stopBG := context.WithCancel(ctx)
	defer stopBG()
	go srv.housekeeping(bg)
	go srv.metrics.run(bg, 15*time.Second)
	// Every node delivers back-channel logout tokens; each goes out once.
	go srv.provider.RunLogoutDelivery(bg)

	var hup chan os.Signal
	if e.reload == nil {
		hup = make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
	}

	errc := make(chan error, len(servers))
	for i := range servers {
		go func() { errc <- servers[i].Serve(listeners[i]) }()
	}
	banner(e.stdout, cfg, ln.Addr().String(), metricsAddr, outbox)
	log.Info("serving", "listen", ln.Addr().String(), "metrics", metricsAddr, "issuer", cfg.Issuer, "database", d.store.Dialect())
loop:
	for {
		select {
		case err := <-errc:
			stopBG()
			for _, s := range servers {
				s.Close()
			}
			return err
		case <-hup:
			srv.reload(load)
		case <-e.reload:
			srv.reload(load)
		case <-ctx.Done():
			break loop
		}
	}
	log.Info("shutting down: draining requests in flight", "timeout", drainTimeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drainTimeout)
	defer cancel()
	var errs []error
	for _, s := range servers {
		errs = append(errs, s.Shutdown(sctx))
	}
	srv.flows.Wait() // security notices still being sent
	srv.flows.FlushFailureAudit(context.WithoutCancel(ctx), true)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// devLoopbackOnly refuses a development server reachable from, or named
// for, another machine: --dev allows cookies over plain http, keeps the
// key-encryption key in a file beside the database and registers test
// clients whose secrets are published in this repository.
func devLoopbackOnly(cfg *config.Config) error {
	const instead = "--dev is for this machine only (cookies over plain http, published client secrets): " +
		"use --addr 127.0.0.1:PORT and --issuer http://localhost:PORT, or serve other machines with --config FILE (see config/lanyard.example.yaml)"
	u, err := url.Parse(cfg.Issuer)
	if err != nil || !isLoopbackHost(u.Hostname()) {
		return usagef("serve --dev: the issuer %s is not a loopback address; %s", cfg.Issuer, instead)
	}
	for _, l := range []struct{ flag, addr string }{{"--addr", cfg.Listen}, {"--metrics-listen", cfg.Metrics.Listen}} {
		if l.addr == "" && l.flag == "--metrics-listen" {
			continue // on the main listener
		}
		host, _, err := net.SplitHostPort(l.addr)
		if err != nil || !isLoopbackHost(host) {
			return usagef("serve --dev: %s %s listens beyond this machine; %s", l.flag, l.addr, instead)
		}
	}
	return nil
}

// isLoopbackHost reports whether host names this machine only: localhost
// or a loopback IP (an empty host, 0.0.0.0 and :: are every interface).
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// optString is a flag that knows whether it was given (an empty value is
// meaningful).
type optString struct {
	v   string
	set bool
}

func (o *optString) String() string     { return o.v }
func (o *optString) Set(s string) error { o.v, o.set = s, true; return nil }

func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

func banner(w io.Writer, cfg *config.Config, addr, metricsAddr, outbox string) {
	fmt.Fprintf(w, "Lanyard is running.\n  issuer:   %s\n  listening on %s\n  sign in:  %s/signin\n", cfg.Issuer, addr, cfg.Issuer)
	if metricsAddr != "" {
		fmt.Fprintf(w, "  metrics on %s\n", metricsAddr)
	}
	if cfg.Dev {
		fmt.Fprintf(w, "  mail:     written to %s\n", outbox)
		// The invitation's links are built from the issuer: name it unless it
		// is the one --dev assumes.
		issuerFlag := ""
		if cfg.Issuer != "http://localhost:8080" {
			issuerFlag = " --issuer " + cfg.Issuer
		}
		fmt.Fprintf(w, "Invite a first officer in another terminal:\n  go run ./cmd/lanyard invite officer@agency.example --name \"Alex Officer\" --dev --data %s%s\n", cfg.DataDir, issuerFlag)
		fmt.Fprintf(w, "Then sign in through the example relying party:\n  go run ./cmd/docs-portal --env staging --issuer %s   (open http://localhost:9001)\n", cfg.Issuer)
		if len(cfg.AdminRoles("admin@agency.example")) > 0 {
			fmt.Fprintf(w, "Officers can also request an account at %s/request; approve it in the admin console (%s/admin)\n"+
				"after inviting its dev admin: go run ./cmd/lanyard invite admin@agency.example --name \"Ada Admin\" --dev --data %s%s\n",
				cfg.Issuer, cfg.Issuer, cfg.DataDir, issuerFlag)
		}
	}
}

// server is Lanyard's whole HTTP surface: the provider's protocol endpoints,
// the journey pages and the static files, behind one middleware chain.
type server struct {
	d        *deps
	log      *slog.Logger
	provider *provider.Provider
	flows    *flows.Handler
	metrics  *metrics
	mux      *http.ServeMux
	handler  http.Handler

	// cfg is the configuration in force: the one at start, then each one a
	// SIGHUP loaded successfully.
	cfg atomic.Pointer[config.Config]
}

func newServer(ctx context.Context, d *deps, mailer mail.Mailer, log *slog.Logger) (*server, error) {
	pages, err := templates.Parse()
	if err != nil {
		return nil, err
	}
	s := &server{d: d, log: log, mux: http.NewServeMux()}
	s.cfg.Store(d.cfg)
	if s.metrics, err = newMetrics(ctx, d.store, s.config, time.Now, log); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	// The admin service's mail (invitations, account requests) is counted
	// from its audit events when it fails; the notices, as they fail.
	audited := mailer
	if mailer != nil {
		mailer = s.metrics.countMail(mailer)
	}
	if s.flows, err = flows.New(ctx, flows.Options{Config: d.cfg, Store: d.store, Box: d.box, Pages: pages, Mailer: mailer,
		AuditedMailer: audited, Logger: log, Now: d.clock()}); err != nil {
		return nil, fmt.Errorf("journey: %w", err)
	}
	if s.provider, err = provider.New(ctx, provider.Options{Config: d.cfg, Store: d.store, Box: d.box, Journey: s.flows, Pages: pages, Logger: log, Now: d.clock()}); err != nil {
		return nil, fmt.Errorf("provider: %w", err)
	}
	s.provider.Mount(s.mux)
	s.flows.Mount(s.mux)
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", cacheForever(http.FileServerFS(filesOnly{static.FS}))))
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, "ok\n")
	})
	s.mux.HandleFunc("GET /readyz", s.ready)
	if d.cfg.Metrics.Listen == "" {
		s.mux.Handle("GET /metrics", s.metrics.handler())
	}
	s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/account", http.StatusSeeOther)
	})
	proxies, err := parseProxies(d.cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	s.handler = clientAddress(proxies, s.requestID(templates.BaseHeaders(d.cfg.Dev, s.observe(s.recover(limitBody(s.mux))))))
	return s, nil
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// config is the configuration in force.
func (s *server) config() *config.Config { return s.cfg.Load() }

// ready answers 200 when the server can do its job: the database answers and
// a current signing key is there (the provider loaded it at start; a key
// deleted under it would make every token fail).
func (s *server) ready(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.d.store.Ping(ctx); err != nil {
		s.log.WarnContext(ctx, "not ready: database unreachable", "err", err)
		http.Error(w, "not ready: database unreachable", http.StatusServiceUnavailable)
		return
	}
	keys, err := s.d.store.SigningKeys(ctx)
	if err != nil {
		s.log.WarnContext(ctx, "not ready: signing keys unreadable", "err", err)
		http.Error(w, "not ready: signing keys unreadable", http.StatusServiceUnavailable)
		return
	}
	current := false
	for _, k := range keys {
		current = current || k.RetiredAt.IsZero()
	}
	if !current {
		s.log.WarnContext(ctx, "not ready: no current signing key")
		http.Error(w, "not ready: no current signing key", http.StatusServiceUnavailable)
		return
	}
	io.WriteString(w, "ready\n")
}

// housekeeping ends idle sessions (queuing their back-channel logouts),
// removes expired codes, tokens, sessions and parked requests, and expires
// the account requests whose time has run out, every housekeepingEvery: an
// idle session's relying parties hear of its end at most that long after
// its idle timeout.
func (s *server) housekeeping(ctx context.Context) {
	t := time.NewTicker(housekeepingEvery)
	defer t.Stop()
	for {
		s.flows.FlushFailureAudit(ctx, false)
		if n, err := s.flows.EndIdleSessions(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("ending idle sessions failed", "err", err)
		} else if n > 0 {
			s.log.Info("ended idle sessions", "sessions", n)
		}
		n, err := s.d.store.DeleteExpired(ctx, time.Now())
		if err != nil && ctx.Err() == nil {
			s.log.Warn("garbage collection failed", "err", err)
		} else if n > 0 {
			s.log.Info("garbage collected expired rows", "rows", n)
		}
		if n, err := s.flows.ExpireRequests(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("expiring account requests failed", "err", err)
		} else if n > 0 {
			s.log.Info("account requests expired", "requests", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// housekeepingEvery is how often housekeeping runs.
const housekeepingEvery = 5 * time.Minute

type ctxKey struct{}

// requestIDFrom is the id of the request ctx belongs to ("" outside one).
func requestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// requestID tags each request (and its log lines) with a random id, echoed in
// the X-Request-Id response header so an officer can quote it. An incoming
// X-Request-Id is not trusted: it would let a client write into the logs.
func (s *server) requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b [8]byte
		rand.Read(b[:])
		id := hex.EncodeToString(b[:])
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, id)))
	})
}

// observe writes the access log line of each request and measures its
// latency by route. The route is the mux's pattern ("POST /token"), read
// after the mux has matched; never the query string (it carries codes and
// tokens) nor a header.
func (s *server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			d := time.Since(start)
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			status := sw.status
			if status == 0 {
				status = http.StatusOK
			}
			s.metrics.observeRequest(route, status, d)
			level := slog.LevelInfo
			switch route {
			case "GET /healthz", "GET /readyz", "GET /metrics", "GET /static/":
				level = slog.LevelDebug // probes and assets would drown the rest
			}
			attrs := []slog.Attr{
				slog.String("method", r.Method), slog.String("route", route), slog.Int("status", status),
				slog.Float64("duration_ms", float64(d.Microseconds())/1000), slog.Int64("bytes", sw.bytes),
			}
			if route == "unmatched" {
				attrs = append(attrs, slog.String("path", truncate(r.URL.EscapedPath(), 120)))
			}
			s.log.LogAttrs(r.Context(), level, "request", attrs...)
		}()
		next.ServeHTTP(sw, r)
	})
}

// statusWriter remembers the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection (deadlines, flush).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// recover turns a panic into a 500 page and a log line, never a dead process
// or a stack trace sent to the browser.
func (s *server) recover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.ErrorContext(r.Context(), "panic serving request", "route", r.Pattern, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
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
			r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		}
		next.ServeHTTP(w, r)
	})
}

// filesOnly serves the files of an fs.FS and no directory: a directory is
// "not found", so /static/ lists nothing.
type filesOnly struct{ fs.FS }

func (f filesOnly) Open(name string) (fs.File, error) {
	file, err := f.FS.Open(name)
	if err != nil {
		return nil, err
	}
	if st, err := file.Stat(); err != nil || st.IsDir() {
		file.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return file, nil
}

func cacheForever(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		next.ServeHTTP(w, r)
	})
}

// newLogger is the one *slog.Logger of the process: text or JSON per
// cfg.Log, with the request id added to every line logged with a request's
// context (the *Context methods, LogAttrs).
func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.Log.Level)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if strings.EqualFold(cfg.Log.Format, "json") {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(requestIDHandler{h})
}

// requestIDHandler adds request_id to records logged with a request's
// context.
type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := requestIDFrom(ctx); id != "" {
		r = r.Clone()
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(as)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}
