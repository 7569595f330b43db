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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/microcosm-cc/bluemonday"
	"github.com/yuin/goldmark"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/flows/approval"
	"github.com/lanyard-idp/lanyard/flows/mail"
	"github.com/lanyard-idp/lanyard/flows/passkey"
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
	PathConsent        = "/signin/consent"
	PathNext           = "/signin/next"
	PathSignOut        = "/signout"
	PathAccount        = "/account"
)

// Options are the dependencies of a Handler.
type Options struct {
	Config *config.Config
	Store  *store.Store
	Box    *seal.Box // seals TOTP secrets and the cookie keys at rest
	Pages  *templates.Set
	Mailer mail.Mailer // notifications; may be nil
	// AuditedMailer sends what the audit trail records when it fails
	// (invitations, password resets and account requests from the pages
	// and the console); default Mailer. The server gives it the mailer
	// its metrics do not count, so a failure is counted once, from the
	// audit event.
	AuditedMailer mail.Mailer
	Logger        *slog.Logger
	Now           func() time.Time
}

// Handler serves the officer journey and implements authn.Journey.
type Handler struct {
	store *store.Store
	box   *seal.Box
	// recovery hashes recovery codes under the deployment's recovery-code
	// key (recovery.go).
	recovery recoveryHasher
	pages    *templates.Set
	mailer   mail.Mailer
	log      *slog.Logger
	now      func() time.Time

	// auditedMailer sends the admin service's email (Options.AuditedMailer).
	auditedMailer mail.Mailer
	// reqLimits bound account requests per address and mailbox (tests
	// lower them).
	reqLimits requestLimits
	// recLimits bound the public recovery forms, and recoveryFloor is how
	// long each takes at least (recovery_reset.go; tests lower both).
	recLimits     recoveryLimits
	recoveryFloor time.Duration

	cookies       *cookieCodec
	deviceCookies *cookieCodec // device.go
	set           atomic.Pointer[settings]

	// delay is how long a failed attempt waits before its answer, given the
	// account's failure count; sleep waits (tests replace both to stay fast).
	delay func(failures int) time.Duration
	sleep func(ctx context.Context, d time.Duration)

	// mailWG tracks security notices still being sent (Wait).
	mailWG sync.WaitGroup

	// The approval app's Web Push: the deployment's VAPID key pair, the
	// client for push services, and the pushes still being sent (Wait).
	vapid      approval.VAPID
	pushClient *http.Client
	pushWG     sync.WaitGroup

	// failures aggregates an address's failures beyond a few a minute in
	// the audit trail (auditflood.go).
	failures *failureGate
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
	wa *passkey.RelyingParty
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
	for _, p := range append(pageTemplates(), "signed-in", "error", "account", "account-reauth", "account-totp", "approve", "approve-pair",
		"request", "request-done", "request-verify", "forgot-password", "reset-link", "lost-phone", "lost-invitation", "admin-requests", "admin-officers", "admin-officer", "admin-invite",
		"admin-audit", "admin-clients") {
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

		failures:      newFailureGate(failuresAudited),
		auditedMailer: o.AuditedMailer,
		reqLimits:     defaultRequestLimits,
		recLimits:     defaultRecoveryLimits,
		recoveryFloor: defaultRecoveryFloor,
	}
	if h.auditedMailer == nil {
		h.auditedMailer = o.Mailer
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
	h.cookies = newCookieCodec(keys, "lanyard", o.Config.Dev, o.Config.Session.AbsoluteTimeout.D())
	h.deviceCookies = newCookieCodec(keys, "lanyard-device", o.Config.Dev, deviceCookieMaxAge)
	if h.vapid, err = loadVAPID(ctx, o.Store, o.Box); err != nil {
		return nil, err
	}
	h.pushClient = approval.NewClient(pushTimeout)
	h.recovery = recoveryHasher{key: o.Box.Derive(purposeRecoveryKey)}
	// Recovery codes an older Lanyard stored with an unkeyed hash are
	// rewrapped once (recovery.go); later starts find none.
	n, err := o.Store.RekeyRecoveryCodes(ctx, recoveryKeyedPrefix, h.recovery.rekeyer())
	if err != nil {
		return nil, err
	}
	if n > 0 {
		h.log.Info("recovery codes re-keyed: their hashes are now salted and keyed", "codes", n)
	}
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
	var problems []string
	checkJourney(order, cfg.Documents, func(field, format string, args ...any) {
		problems = append(problems, field+": "+fmt.Sprintf(format, args...))
	})
	for i, s := range order {
		if slices.Contains(order[:i], s) {
			problems = append(problems, fmt.Sprintf("journey step %q is listed twice", s))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("flows: %s", strings.Join(problems, "; "))
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

// Wait returns when the security notices and the approval app's pushes
// being sent in the background have been handed on (or failed): call it on
// shutdown, after the server has stopped taking requests.
func (h *Handler) Wait() {
	h.mailWG.Wait()
	h.pushWG.Wait()
}

// Mount registers the journey's routes, each behind the security headers,
// cross-origin protection and a body limit: every step's page (from the
// step table), the passkey ceremonies offered on them, the dispatcher, and
// the account page's forms.
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
		mux.Handle(pattern, templates.PageHeaders(s.cfg.Dev, cop.Handler(limitForm(h.adapt(fn)))))
	}
	// The passkey ceremonies' JSON endpoints: the same protection (a JSON
	// POST is a cross-origin request like any other), JSON errors.
	routeJSON := func(pattern string, fn handlerFunc) {
		mux.Handle(pattern, templates.PageHeaders(s.cfg.Dev, cop.Handler(limitForm(h.adaptJSON(fn)))))
	}
	for i := range steps {
		d := &steps[i]
		route("GET "+d.path, h.at(d, false, d.get))
		route("POST "+d.path, h.at(d, false, d.post))
		if d.ceremony != "" {
			routeJSON("POST "+d.ceremony+optionsSuffix, h.at(d, true, d.begin))
			routeJSON("POST "+d.ceremony, h.at(d, true, d.finish))
		}
	}
	// The policy documents' steps, whichever the configuration (reloaded or
	// not) has now.
	route("GET "+documentPath("{document}"), h.atDocument(documentStep.get))
	route("POST "+documentPath("{document}"), h.atDocument(documentStep.post))
	route("GET "+PathNext, h.next)
	route("POST "+PathSignOut, h.postSignOut)

	acct := func(pattern string, g accountGuard, fn flowHandler) { route(pattern, h.signedIn(g, fn)) }
	acct("GET "+PathAccount, signedInOnly, h.account)
	acct("GET "+PathReauth, signedInOnly, h.getReauth)
	acct("POST "+PathReauth, signedInOnly, h.postReauth)
	acct("GET "+PathAccountTOTP, recentProof, h.getAccountTOTP)
	for pattern, fn := range map[string]flowHandler{
		PathAccountTOTP:           h.postAccountTOTP,
		PathAccountTOTPRemove:     h.postAccountTOTPRemove,
		PathAccountPasskeyRename:  h.postAccountPasskeyRename,
		PathAccountPasskeyRemove:  h.postAccountPasskeyRemove,
		PathAccountRecoveryCodes:  h.postAccountRecoveryCodes,
		PathAccountPassword:       h.postAccountPassword,
		PathAccountSignOutSession: h.postAccountSignOutSession,
		PathAccountSignOutOthers:  h.postAccountSignOutOthers,
		PathAccountSignOutAll:     h.postAccountSignOutAll,
		PathAccountNames:          h.postAccountNames,
	} {
		acct("POST "+pattern, recentProof, fn)
	}
	// Withdrawing a permission only takes away: no proof needed.
	acct("POST "+PathAccountConsentWithdraw, signedInOnly, h.postAccountConsentWithdraw)
	ceremony := func(path string, g accountGuard, begin, finish flowHandler) {
		routeJSON("POST "+path+optionsSuffix, h.signedIn(g|asJSON, begin))
		routeJSON("POST "+path, h.signedIn(g|asJSON, finish))
	}
	ceremony(PathAccountPasskey, recentProof, h.postAccountPasskeyOptions, h.postAccountPasskey)
	ceremony(PathReauthPasskey, signedInOnly, h.postReauthPasskeyOptions, h.postReauthPasskey)
	h.mountApproval(route, routeJSON)
	h.mountRecovery(route)

	// The request pages and the admin console; a CSV of invitations may be
	// larger than a journey form.
	routeBig := func(pattern string, fn handlerFunc) {
		mux.Handle(pattern, templates.PageHeaders(s.cfg.Dev, cop.Handler(limitBody(maxUpload, h.adapt(fn)))))
	}
	h.mountConsole(route, routeBig)
}

// The guards of the router: each loads the browser's flow, answers a
// request that does not belong where it was sent once — a 303 to where the
// browser belongs, or for the passkey script the JSON "go here" — and
// otherwise reads a posted form and hands the flow to the handler. Nothing
// is changed on the way: a later step's URL, a replayed POST from another
// flow and the back button all land on the first pending step.

// flowHandler handles a request whose flow a guard has loaded and checked.
type flowHandler func(w http.ResponseWriter, r *http.Request, f *flow) error

// admit ends a guard: a request that belongs at to is turned away;
// otherwise ok is true, a posted form has been read and, for the passkey
// script's endpoints, passkeys are available here.
func (h *Handler) admit(w http.ResponseWriter, r *http.Request, to string, asJSON bool) (ok bool, err error) {
	switch {
	case to != "" && asJSON:
		return false, elsewhere(w, to)
	case to != "":
		return false, redirect(w, r, to)
	case asJSON && h.settings().wa == nil:
		return false, &pageError{Status: http.StatusNotFound, Message: msgPasskeyUnavailable}
	case !asJSON && r.Method == http.MethodPost:
		err = form(r)
	}
	return err == nil, err
}

// at is the step guard: fn runs only for a browser whose current step is
// d (a browser without a session may come to an anonymous step; the
// username page stays reachable until the password is verified).
func (h *Handler) at(d *stepDef, asJSON bool, fn stepFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		f, gone, err := h.flowOf(w, r)
		to := ""
		switch {
		case err != nil:
			return err
		case gone:
			to = PathSignIn
		case f == nil && d.anonymous:
			set := h.settings()
			f = &flow{set: set, pending: Pending(State{}, set.order)}
		case f == nil:
			to = PathSignIn
		default:
			to = f.whereFor(d.name)
		}
		if ok, err := h.admit(w, r, to, asJSON); !ok {
			return err
		}
		return fn(h, w, r, f)
	}
}

// atDocument is the step guard of a policy document's page: the document
// named in the path must be one the configuration has now.
func (h *Handler) atDocument(fn stepFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		id := r.PathValue("document")
		if _, ok := h.settings().docs[id]; !ok {
			http.NotFound(w, r)
			return nil
		}
		return h.at(stepNamed(id), false, fn)(w, r)
	}
}

// accountGuard says what an account route needs besides a signed-in browser.
type accountGuard int

const (
	// recentProof: a change, which needs a recent proof of the second factor
	// (else the confirm-it-is-you page first).
	recentProof accountGuard = 1 << iota
	// asJSON: the passkey script's endpoint.
	asJSON
	// signedInOnly: nothing more.
	signedInOnly accountGuard = 0
)

// signedIn is the account pages' guard: fn runs only for a fully signed-in
// browser; any other goes to the sign-in (which ends on the account page)
// or to its pending step.
func (h *Handler) signedIn(g accountGuard, fn flowHandler) handlerFunc {
	json := g&asJSON != 0
	return func(w http.ResponseWriter, r *http.Request) error {
		f, _, err := h.flowOf(w, r)
		to := ""
		switch {
		case err != nil:
			return err
		case f == nil:
			to = PathSignIn
		case f.s.row.State != stateAuthenticated || !f.settled:
			to = PathNext
		}
		if ok, err := h.admit(w, r, to, json); !ok {
			return err
		}
		if g&recentProof != 0 && !h.recent(f) {
			if json {
				return writeJSON(w, http.StatusForbidden, jsonAnswer{Redirect: PathReauth, Error: msgConfirmPrompt})
			}
			return redirect(w, r, PathReauth)
		}
		return fn(w, r, f)
	}
}
