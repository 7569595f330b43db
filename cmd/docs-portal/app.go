package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

const (
	// loginTTL bounds a sign-in in progress: long enough for a first
	// onboarding (enrolment, new password, two policies), short enough that
	// abandoned ones do not pile up.
	loginTTL = 30 * time.Minute
	// sessionTTL is how long the portal remembers a signed-in browser.
	sessionTTL = 12 * time.Hour
	// maxEntries caps the in-memory maps so a flood of /login requests
	// cannot exhaust memory; the oldest entries are dropped first.
	maxEntries = 10000
)

// login is an authorization request in flight.
type login struct {
	state, nonce, verifier string
	created                time.Time
}

// session is a signed-in browser. Tokens stay here, never in the cookie.
type session struct {
	token    *oauth2.Token
	rawID    string
	claims   map[string]any
	userinfo map[string]any
	notice   string // shown once on the next page
	created  time.Time
}

// App is the portal: its OpenID Connect client and the pages.
type App struct {
	cfg Config
	// Now is the clock (tests move it).
	Now func() time.Time
	// Client is used for discovery, token, userinfo and JWKS requests.
	Client *http.Client
	Logger *slog.Logger

	discoverMu sync.Mutex
	provider   *oidc.Provider
	endSession string

	mu       sync.Mutex
	logins   map[string]*login   // by login cookie
	sessions map[string]*session // by session cookie
	signouts map[string]time.Time
	// logoutJTIs are the jtis of the logout tokens accepted recently
	// (replays are refused).
	logoutJTIs map[string]time.Time
}

// New returns the portal for cfg. Discovery happens on first use, so the
// portal can start before Lanyard does.
func New(cfg Config) *App {
	return &App{
		cfg:      cfg,
		Now:      time.Now,
		Client:   &http.Client{Timeout: 15 * time.Second},
		Logger:   slog.Default(),
		logins:   map[string]*login{},
		sessions: map[string]*session{},
		signouts: map[string]time.Time{},

		logoutJTIs: map[string]time.Time{},
	}
}

// Handler is the portal's HTTP handler. POST routes are protected against
// cross-site requests by http.CrossOriginProtection.
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.home)
	mux.HandleFunc("GET /login", a.login)
	mux.HandleFunc("GET /callback", a.callback)
	mux.HandleFunc("POST /refresh", a.refresh)
	mux.HandleFunc("POST /logout", a.logout)
	mux.HandleFunc("GET /style.css", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Header().Set("Cache-Control", "max-age=3600")
		_, _ = w.Write([]byte(styleCSS))
	})
	protected := http.NewCrossOriginProtection().Handler(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Lanyard's server-to-server POST: no browser, no cookie, no CSRF
		// to guard against; the signed logout token is the credential.
		if r.URL.Path == "/backchannel-logout" {
			if r.Method != http.MethodPost {
				w.Header().Set("Allow", http.MethodPost)
				http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
				return
			}
			a.backchannelLogout(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self' "+a.cfg.Issuer)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		protected.ServeHTTP(w, r)
	})
}

// cookie names carry the client id: the staging and production portals both
// run on localhost, and browsers do not separate cookies by port.
func (a *App) cookieName(kind string) string {
	return strings.NewReplacer("-", "_", ".", "_").Replace(a.cfg.ClientID) + "_" + kind
}

func (a *App) secure() bool { return strings.HasPrefix(a.cfg.RedirectURL, "https://") }

func (a *App) setCookie(w http.ResponseWriter, kind, value string, ttl time.Duration) {
	c := &http.Cookie{
		Name: a.cookieName(kind), Value: value, Path: "/",
		HttpOnly: true, Secure: a.secure(), SameSite: http.SameSiteLaxMode,
	}
	if ttl < 0 {
		c.MaxAge = -1
	} else {
		c.MaxAge = int(ttl.Seconds())
	}
	http.SetCookie(w, c)
}

func (a *App) cookie(r *http.Request, kind string) string {
	c, err := r.Cookie(a.cookieName(kind))
	if err != nil {
		return ""
	}
	return c.Value
}

// discover fetches the issuer's discovery document once it is reachable and
// keeps it.
func (a *App) discover(r *http.Request) (*oidc.Provider, error) {
	a.discoverMu.Lock()
	defer a.discoverMu.Unlock()
	if a.provider != nil {
		return a.provider, nil
	}
	ctx := oidc.ClientContext(r.Context(), a.Client)
	p, err := oidc.NewProvider(ctx, a.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("discovery of %s failed (is Lanyard running?): %w", a.cfg.Issuer, err)
	}
	var extra struct {
		EndSession string `json:"end_session_endpoint"`
	}
	if err := p.Claims(&extra); err != nil {
		return nil, fmt.Errorf("discovery document of %s: %w", a.cfg.Issuer, err)
	}
	a.provider, a.endSession = p, extra.EndSession
	return p, nil
}

func (a *App) oauth(p *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     a.cfg.ClientID,
		ClientSecret: a.cfg.ClientSecret,
		RedirectURL:  a.cfg.RedirectURL,
		Endpoint:     p.Endpoint(),
		Scopes:       []string{oidc.ScopeOpenID, "profile", "email", oidc.ScopeOfflineAccess},
	}
}

// random is 256 bits, URL-safe: state, nonce and cookie values.
func random() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// login starts the authorization code flow: PKCE S256, state and nonce, kept
// server-side under a fresh cookie.
func (a *App) login(w http.ResponseWriter, r *http.Request) {
	p, err := a.discover(r)
	if err != nil {
		a.fail(w, r, http.StatusBadGateway, "Lanyard is not reachable", err)
		return
	}
	l := &login{state: random(), nonce: random(), verifier: oauth2.GenerateVerifier(), created: a.Now()}
	key := random()
	a.mu.Lock()
	a.prune()
	a.logins[key] = l
	a.mu.Unlock()
	a.setCookie(w, "login", key, loginTTL)
	opts := []oauth2.AuthCodeOption{oidc.Nonce(l.nonce), oauth2.S256ChallengeOption(l.verifier)}
	// /login?prompt=consent asks Lanyard to show its consent page even to a
	// signed-in officer, /login?prompt=login for a fresh sign-in (OIDC
	// Core §3.1.2.1); anything else is not passed on.
	if pr := r.URL.Query().Get("prompt"); pr == "consent" || pr == "login" {
		opts = append(opts, oauth2.SetAuthURLParam("prompt", pr))
	}
	u := a.oauth(p).AuthCodeURL(l.state, opts...)
	http.Redirect(w, r, u, http.StatusFound)
}

// callback finishes the flow: state, code exchange with the verifier, ID
// token verification with the nonce, then userinfo.
func (a *App) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	key := a.cookie(r, "login")
	a.mu.Lock()
	l := a.logins[key]
	// A login is good for one callback, whatever its outcome.
	delete(a.logins, key)
	a.mu.Unlock()
	a.setCookie(w, "login", "", -1)
	if l == nil || a.Now().Sub(l.created) > loginTTL {
		a.fail(w, r, http.StatusBadRequest, "This sign-in has expired or was started in another browser. Click Login to start again.", nil)
		return
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(l.state)) != 1 {
		a.fail(w, r, http.StatusBadRequest, "The sign-in response does not match the request (state). Click Login to start again.", nil)
		return
	}
	// RFC 9207: the response names its issuer; a different one is a mix-up.
	if iss := q.Get("iss"); iss != "" && iss != a.cfg.Issuer {
		a.fail(w, r, http.StatusBadRequest, "The sign-in response came from an unexpected issuer.", fmt.Errorf("iss %q", iss))
		return
	}
	if e := q.Get("error"); e != "" {
		a.fail(w, r, http.StatusBadRequest, "Sign-in did not complete: "+e+" "+q.Get("error_description"), nil)
		return
	}
	p, err := a.discover(r)
	if err != nil {
		a.fail(w, r, http.StatusBadGateway, "Lanyard is not reachable", err)
		return
	}
	ctx := oidc.ClientContext(r.Context(), a.Client)
	tok, err := a.oauth(p).Exchange(ctx, q.Get("code"), oauth2.VerifierOption(l.verifier))
	if err != nil {
		a.fail(w, r, http.StatusBadGateway, "The sign-in code could not be exchanged for tokens.", err)
		return
	}
	rawID, _ := tok.Extra("id_token").(string)
	idt, err := p.Verifier(&oidc.Config{ClientID: a.cfg.ClientID, Now: a.Now}).Verify(ctx, rawID)
	if err != nil {
		a.fail(w, r, http.StatusBadGateway, "The ID token is not valid.", err)
		return
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(l.nonce)) != 1 {
		a.fail(w, r, http.StatusBadRequest, "The ID token does not belong to this sign-in (nonce).", nil)
		return
	}
	s := &session{token: tok, rawID: rawID, created: a.Now()}
	if err := idt.Claims(&s.claims); err != nil {
		a.fail(w, r, http.StatusBadGateway, "The ID token claims cannot be read.", err)
		return
	}
	s.userinfo = a.fetchUserinfo(ctx, p, tok)
	id := random()
	a.mu.Lock()
	a.prune()
	a.sessions[id] = s
	a.mu.Unlock()
	a.setCookie(w, "session", id, sessionTTL)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (a *App) fetchUserinfo(ctx context.Context, p *oidc.Provider, tok *oauth2.Token) map[string]any {
	ui, err := p.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		return map[string]any{"error": err.Error()}
	}
	var m map[string]any
	if err := ui.Claims(&m); err != nil {
		return map[string]any{"error": err.Error()}
	}
	return m
}

// refresh uses the refresh token and shows the new expiry.
func (a *App) refresh(w http.ResponseWriter, r *http.Request) {
	s, _ := a.current(r)
	if s == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	p, err := a.discover(r)
	if err != nil {
		a.fail(w, r, http.StatusBadGateway, "Lanyard is not reachable", err)
		return
	}
	a.mu.Lock()
	old := *s.token
	a.mu.Unlock()
	if old.RefreshToken == "" {
		a.notify(s, "There is no refresh token: sign in again.")
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	// Force a refresh even though the access token is still valid.
	old.Expiry = time.Unix(1, 0)
	ctx := oidc.ClientContext(r.Context(), a.Client)
	tok, err := a.oauth(p).TokenSource(ctx, &old).Token()
	if err != nil {
		a.notify(s, "Refreshing failed: "+err.Error())
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	rawID, _ := tok.Extra("id_token").(string)
	var claims map[string]any
	if rawID != "" {
		idt, err := p.Verifier(&oidc.Config{ClientID: a.cfg.ClientID, Now: a.Now}).Verify(ctx, rawID)
		if err != nil {
			a.notify(s, "The refreshed ID token is not valid: "+err.Error())
			http.Redirect(w, r, "/", http.StatusSeeOther)
			return
		}
		_ = idt.Claims(&claims)
	}
	a.mu.Lock()
	s.token = tok
	if rawID != "" {
		s.rawID, s.claims = rawID, claims
	}
	s.notice = "Tokens refreshed. The new access token expires at " + tok.Expiry.UTC().Format("15:04:05 MST") + "."
	a.mu.Unlock()
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// logout forgets the session here and sends the browser to the issuer's
// end_session_endpoint, which ends the Lanyard session and comes back.
func (a *App) logout(w http.ResponseWriter, r *http.Request) {
	s, id := a.current(r)
	a.mu.Lock()
	delete(a.sessions, id)
	a.mu.Unlock()
	a.setCookie(w, "session", "", -1)
	if s == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	if _, err := a.discover(r); err != nil || a.endSession == "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	state := random()
	a.mu.Lock()
	a.signouts[state] = a.Now()
	a.mu.Unlock()
	u, err := url.Parse(a.endSession)
	if err != nil {
		a.fail(w, r, http.StatusBadGateway, "The issuer's end_session_endpoint is not a URL.", err)
		return
	}
	v := u.Query()
	v.Set("id_token_hint", s.rawID)
	v.Set("client_id", a.cfg.ClientID)
	v.Set("post_logout_redirect_uri", a.cfg.PostLogoutURL)
	v.Set("state", state)
	u.RawQuery = v.Encode()
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

func (a *App) current(r *http.Request) (*session, string) {
	id := a.cookie(r, "session")
	if id == "" {
		return nil, ""
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.sessions[id]
	if s == nil || a.Now().Sub(s.created) > sessionTTL {
		delete(a.sessions, id)
		return nil, id
	}
	return s, id
}

func (a *App) notify(s *session, msg string) {
	a.mu.Lock()
	s.notice = msg
	a.mu.Unlock()
}

// prune drops expired entries and, past maxEntries, the oldest. a.mu is held.
func (a *App) prune() {
	now := a.Now()
	for k, l := range a.logins {
		if now.Sub(l.created) > loginTTL {
			delete(a.logins, k)
		}
	}
	for k, s := range a.sessions {
		if now.Sub(s.created) > sessionTTL {
			delete(a.sessions, k)
		}
	}
	for k, t := range a.signouts {
		if now.Sub(t) > loginTTL {
			delete(a.signouts, k)
		}
	}
	for len(a.logins) >= maxEntries {
		var oldest string
		for k, l := range a.logins {
			if oldest == "" || l.created.Before(a.logins[oldest].created) {
				oldest = k
			}
		}
		delete(a.logins, oldest)
	}
	for len(a.sessions) >= maxEntries {
		var oldest string
		for k, s := range a.sessions {
			if oldest == "" || s.created.Before(a.sessions[oldest].created) {
				oldest = k
			}
		}
		delete(a.sessions, oldest)
	}
}

type claimRow struct{ Name, Value string }

type homePage struct {
	Env, Issuer, ClientID string
	SignedIn              bool
	SignedOut             bool
	Name, Email           string
	Notice                string
	Claims, Userinfo      []claimRow
	AccessExpiry          string
	HasRefresh            bool
}

func (a *App) home(w http.ResponseWriter, r *http.Request) {
	data := homePage{Env: a.cfg.Env, Issuer: a.cfg.Issuer, ClientID: a.cfg.ClientID}
	if st := r.URL.Query().Get("state"); st != "" {
		a.mu.Lock()
		if _, ok := a.signouts[st]; ok {
			data.SignedOut = true
			delete(a.signouts, st)
		}
		a.mu.Unlock()
	}
	if s, _ := a.current(r); s != nil {
		a.mu.Lock()
		data.SignedIn = true
		data.Name, _ = s.claims["name"].(string)
		data.Email, _ = s.claims["email"].(string)
		if data.Name == "" {
			data.Name, _ = s.userinfo["name"].(string)
		}
		if data.Email == "" {
			data.Email, _ = s.userinfo["email"].(string)
		}
		if data.Name == "" {
			data.Name, _ = s.claims["sub"].(string)
		}
		data.Claims, data.Userinfo = rows(s.claims), rows(s.userinfo)
		data.AccessExpiry = s.token.Expiry.UTC().Format("15:04:05 MST")
		data.HasRefresh = s.token.RefreshToken != ""
		data.Notice, s.notice = s.notice, ""
		a.mu.Unlock()
	}
	a.render(w, http.StatusOK, "home", data)
}

// rows shows claims sorted by name; times (iat, exp, auth_time) also as dates.
func rows(m map[string]any) []claimRow {
	out := make([]claimRow, 0, len(m))
	for k, v := range m {
		var s string
		switch t := v.(type) {
		case string:
			s = t
		case float64:
			s = fmt.Sprint(int64(t))
			if k == "iat" || k == "exp" || k == "auth_time" || k == "updated_at" {
				s += " (" + time.Unix(int64(t), 0).UTC().Format(time.RFC3339) + ")"
			}
		default:
			b, _ := json.Marshal(t)
			s = string(b)
		}
		out = append(out, claimRow{k, s})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

type errorPage struct {
	Env, Message string
}

func (a *App) fail(w http.ResponseWriter, r *http.Request, status int, msg string, err error) {
	if err != nil {
		a.Logger.Warn("docs-portal: "+msg, "path", r.URL.Path, "err", err)
	}
	a.render(w, status, "error", errorPage{Env: a.cfg.Env, Message: msg})
}

func (a *App) render(w http.ResponseWriter, status int, name string, data any) {
	var b strings.Builder
	if err := pages.ExecuteTemplate(&b, name, data); err != nil {
		a.Logger.Error("docs-portal: render", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}
