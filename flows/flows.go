package flows

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/microcosm-cc/bluemonday"
	"github.com/yuin/goldmark"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/flows/mail"
	"github.com/lanyard-idp/lanyard/flows/password"
	"github.com/lanyard-idp/lanyard/provider/authn"
	"github.com/lanyard-idp/lanyard/provider/store"
	"github.com/lanyard-idp/lanyard/provider/store/seal"
	"github.com/lanyard-idp/lanyard/templates"
)

// The journey's routes, in one place.
const (
	PathSignIn         = "/signin"
	PathPassword       = "/signin/password"
	PathMFAChallenge   = "/signin/mfa"
	PathMFAEnrol       = "/signin/enrol"
	PathRecoveryCodes  = "/signin/recovery-codes"
	PathChangePassword = "/signin/change-password"
	PathPrivacy        = "/signin/privacy"
	PathTerms          = "/signin/terms"
	PathNext           = "/signin/next"
	PathSignOut        = "/signout"
	PathAccount        = "/account"
)

// stepPath is where each step's page lives.
var stepPath = map[string]string{
	StepIdentify:       PathSignIn,
	StepPassword:       PathPassword,
	StepMFAChallenge:   PathMFAChallenge,
	StepMFAEnrol:       PathMFAEnrol,
	StepRecoveryCodes:  PathRecoveryCodes,
	StepChangePassword: PathChangePassword,
	StepPrivacy:        PathPrivacy,
	StepTerms:          PathTerms,
}

// Options are the dependencies of a Handler.
type Options struct {
	Config *config.Config
	Store  *store.Store
	Box    *seal.Box // seals TOTP secrets and the cookie keys at rest
	Pages  *templates.Set
	Mailer mail.Mailer // notifications; may be nil
	Logger *slog.Logger
	Now    func() time.Time
}

// Handler serves the officer journey and implements authn.Journey.
type Handler struct {
	store  *store.Store
	box    *seal.Box
	pages  *templates.Set
	mailer mail.Mailer
	log    *slog.Logger
	now    func() time.Time

	cookies *cookieCodec
	set     atomic.Pointer[settings]

	// delay is how long a failed attempt waits before its answer, given the
	// account's failure count; sleep waits (tests replace both to stay fast).
	delay func(failures int) time.Duration
	sleep func(ctx context.Context, d time.Duration)

	// mailWG tracks security notices still being sent (Wait).
	mailWG sync.WaitGroup
}

var _ authn.Journey = (*Handler)(nil)

// settings are the parts of the configuration a SIGHUP may change, swapped
// atomically so a request sees one consistent version.
type settings struct {
	cfg    *config.Config
	order  []string
	docs   map[string]document
	policy password.Policy
	issuer *url.URL
	// wa is the WebAuthn relying party; nil when the issuer cannot have
	// passkeys (its host is an IP address), and the pages say so.
	wa *webauthn.WebAuthn
}

// document is a policy rendered once: Markdown → HTML → sanitized.
type document struct {
	ID, Title, Version string
	HTML               template.HTML
}

// errNoDefaults refuses a Config that config.ApplyDefaults has not seen:
// its zeros would be read as settings.
var errNoDefaults = errors.New("flows: the configuration has no defaults applied (load it with config.Load or config.Dev, or call ApplyDefaults)")

// New builds the journey handler: it loads (or, on the very first start,
// creates) the cookie keys from the store so a restart or another node logs
// nobody out, and renders the policy documents once.
func New(ctx context.Context, o Options) (*Handler, error) {
	switch {
	case o.Config == nil:
		return nil, errors.New("flows: Options.Config is required")
	case o.Store == nil:
		return nil, errors.New("flows: Options.Store is required")
	case o.Box == nil:
		return nil, errors.New("flows: Options.Box is required")
	case o.Pages == nil:
		return nil, errors.New("flows: Options.Pages is required")
	}
	for _, p := range []string{"identify", "password", "mfa-enrol", "recovery-codes", "mfa-challenge", "change-password", "policy", "signed-in", "error",
		"account", "account-reauth", "account-totp"} {
		if !o.Pages.Has(p) {
			return nil, fmt.Errorf("flows: page template %q is missing", p)
		}
	}
	h := &Handler{
		store:  o.Store,
		box:    o.Box,
		pages:  o.Pages,
		mailer: o.Mailer,
		log:    o.Logger,
		now:    o.Now,
		delay:  defaultDelay,
		sleep:  sleepCtx,
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	if err := h.SetConfig(o.Config); err != nil {
		return nil, err
	}
	keys, err := loadCookieKeys(ctx, o.Store, o.Box)
	if err != nil {
		return nil, err
	}
	h.cookies = newCookieCodec(keys, o.Config.Dev, o.Config.Session.AbsoluteTimeout.D())
	return h, nil
}

// SetConfig applies a reloaded configuration's journey settings and policy
// documents. Nothing changes when it returns an error. The cookie name and
// keys are fixed at start.
func (h *Handler) SetConfig(cfg *config.Config) error {
	if cfg == nil {
		return errors.New("flows: nil config")
	}
	if !cfg.Defaulted() {
		return errNoDefaults
	}
	iss, err := url.Parse(cfg.Issuer)
	if err != nil || iss.Scheme == "" || iss.Host == "" {
		return fmt.Errorf("flows: issuer %q is not an absolute URL", cfg.Issuer)
	}
	order := cfg.Journey.Steps
	for i, s := range order {
		if !slices.Contains(DefaultSteps, s) {
			return fmt.Errorf("flows: unknown journey step %q (want one of %v)", s, DefaultSteps)
		}
		if slices.Contains(order[:i], s) {
			return fmt.Errorf("flows: journey step %q is listed twice", s)
		}
	}
	docs := map[string]document{}
	for _, d := range cfg.Documents {
		md, err := d.Markdown(cfg)
		if err != nil {
			return fmt.Errorf("flows: document %s: %w", d.ID, err)
		}
		var buf bytes.Buffer
		if err := goldmark.Convert(md, &buf); err != nil {
			return fmt.Errorf("flows: document %s: %w", d.ID, err)
		}
		// The documents come from the operator, but sanitising costs nothing
		// once at start and keeps a pasted <script> from defeating the CSP's
		// purpose.
		safe := bluemonday.UGCPolicy().SanitizeBytes(buf.Bytes())
		docs[d.ID] = document{ID: d.ID, Title: d.Title, Version: d.Version, HTML: template.HTML(safe)}
	}
	for _, s := range order {
		if s == StepPrivacy || s == StepTerms {
			if _, ok := docs[s]; !ok {
				return fmt.Errorf("flows: journey step %q needs a document with id %q", s, s)
			}
		}
	}
	pol := password.Policy{MinLength: cfg.Password.MinLength, MaxLength: cfg.Password.MaxLength}
	wa, err := newRelyingParty(cfg, iss)
	if err != nil {
		if h.log != nil {
			h.log.Warn("passkeys are unavailable", "reason", err)
		}
		wa = nil
	}
	h.set.Store(&settings{cfg: cfg, order: slices.Clone(order), docs: docs, policy: pol, issuer: iss, wa: wa})
	return nil
}

func (h *Handler) settings() *settings { return h.set.Load() }

// Wait returns when the security notices being sent in the background have
// been handed to the mailer (or failed): call it on shutdown, after the
// server has stopped taking requests.
func (h *Handler) Wait() { h.mailWG.Wait() }

// Mount registers the journey's routes, each behind the security headers,
// cross-origin protection and a body limit.
func (h *Handler) Mount(mux *http.ServeMux) {
	s := h.settings()
	cop := http.NewCrossOriginProtection()
	// Behind a reverse proxy the Host header may not be the public name; the
	// issuer's origin is the one our own forms are posted from.
	if err := cop.AddTrustedOrigin(s.issuer.Scheme + "://" + s.issuer.Host); err != nil {
		h.log.Warn("cannot trust the issuer origin for cross-origin checks", "err", err)
	}
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.log.Warn("cross-origin form refused", "path", r.URL.Path, "origin", truncate(r.Header.Get("Origin"), 100))
		h.renderError(w, r, &pageError{Status: http.StatusForbidden,
			Message: "This form was sent from another website, so it was refused. Go back to the sign-in page, reload it and try again."})
	}))
	route := func(pattern string, fn handlerFunc) {
		mux.Handle(pattern, SecurityHeaders(s.cfg.Dev, cop.Handler(limitForm(h.adapt(fn)))))
	}
	// The passkey ceremonies' JSON endpoints: the same protection (a JSON
	// POST is a cross-origin request like any other), JSON errors.
	routeJSON := func(pattern string, fn handlerFunc) {
		mux.Handle(pattern, SecurityHeaders(s.cfg.Dev, cop.Handler(limitForm(h.adaptJSON(fn)))))
	}
	route("GET "+PathSignIn, h.getIdentify)
	route("POST "+PathSignIn, h.postIdentify)
	route("GET "+PathPassword, h.getPassword)
	route("POST "+PathPassword, h.postPassword)
	route("GET "+PathMFAChallenge, h.getChallenge)
	route("POST "+PathMFAChallenge, h.postChallenge)
	route("GET "+PathMFAEnrol, h.getEnrol)
	route("POST "+PathMFAEnrol, h.postEnrol)
	route("GET "+PathRecoveryCodes, h.getRecoveryCodes)
	route("POST "+PathRecoveryCodes, h.postRecoveryCodes)
	route("GET "+PathChangePassword, h.getChangePassword)
	route("POST "+PathChangePassword, h.postChangePassword)
	route("GET "+PathPrivacy, h.policyGet(StepPrivacy))
	route("POST "+PathPrivacy, h.policyPost(StepPrivacy))
	route("GET "+PathTerms, h.policyGet(StepTerms))
	route("POST "+PathTerms, h.policyPost(StepTerms))
	route("GET "+PathNext, h.next)
	route("POST "+PathSignOut, h.postSignOut)
	route("GET "+PathAccount, h.account)

	routeJSON("POST "+PathPasskeyEnrol+optionsSuffix, h.postPasskeyEnrolOptions)
	routeJSON("POST "+PathPasskeyEnrol, h.postPasskeyEnrol)
	routeJSON("POST "+PathPasskeyChallenge+optionsSuffix, h.postPasskeyChallengeOptions)
	routeJSON("POST "+PathPasskeyChallenge, h.postPasskeyChallenge)
	routeJSON("POST "+PathPasskeySignIn+optionsSuffix, h.postPasskeySignInOptions)
	routeJSON("POST "+PathPasskeySignIn, h.postPasskeySignIn)
	routeJSON("POST "+PathAccountPasskey+optionsSuffix, h.postAccountPasskeyOptions)
	routeJSON("POST "+PathAccountPasskey, h.postAccountPasskey)
	routeJSON("POST "+PathReauthPasskey+optionsSuffix, h.postReauthPasskeyOptions)
	routeJSON("POST "+PathReauthPasskey, h.postReauthPasskey)

	route("GET "+PathReauth, h.getReauth)
	route("POST "+PathReauth, h.postReauth)
	route("GET "+PathAccountTOTP, h.getAccountTOTP)
	route("POST "+PathAccountTOTP, h.postAccountTOTP)
	route("POST "+PathAccountTOTPRemove, h.postAccountTOTPRemove)
	route("POST "+PathAccountPasskeyRename, h.postAccountPasskeyRename)
	route("POST "+PathAccountPasskeyRemove, h.postAccountPasskeyRemove)
	route("POST "+PathAccountRecoveryCodes, h.postAccountRecoveryCodes)
	route("POST "+PathAccountPassword, h.postAccountPassword)
	route("POST "+PathAccountSignOutSession, h.postAccountSignOutSession)
	route("POST "+PathAccountSignOutOthers, h.postAccountSignOutOthers)
	route("POST "+PathAccountSignOutAll, h.postAccountSignOutAll)
}
