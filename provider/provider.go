// Package provider is Lanyard's OAuth 2.0 / OpenID Connect provider, built on
// fosite: the composition of the handlers Lanyard uses (authorization code +
// PKCE, refresh, client credentials, OpenID Connect, PAR, introspection,
// revocation), the endpoints (discovery, JWKS, authorize, token, introspect,
// revoke, userinfo, end_session, par), the relying parties from the
// configuration, the signing keys and the fosite storage adapter on
// provider/store. Which claim goes where (ID token or userinfo, the claims
// parameter) is claims.go; the authentication context (acr) acr.go;
// whether a request needs the officer's consent, and whether the journey
// got it for that very request, authorize.go (consentFor);
// back-channel logout delivery, which every node runs (RunLogoutDelivery),
// backchannel.go; front-channel logout is on the signed-out page (logout.go).
//
// It is the only package that imports fosite. It never renders a journey page:
// when a browser is not fully signed in it parks the authorization request and
// hands the browser to authn.Journey (package flows), which sends it back to
// /authorize/resume when every step is done.
//
// What must never go here: SQL (provider/store), sign-in pages and session
// cookies (flows), configuration parsing (config).
package provider

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/openid"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/provider/authn"
	"github.com/lanyard-idp/lanyard/provider/store"
	"github.com/lanyard-idp/lanyard/provider/store/seal"
	"github.com/lanyard-idp/lanyard/templates"
)

// Route paths, named in one place. Discovery advertises them under the issuer.
const (
	pathDiscovery  = "/.well-known/openid-configuration"
	pathJWKS       = "/jwks.json"
	pathAuthorize  = "/authorize"
	pathResume     = "/authorize/resume"
	pathToken      = "/token"
	pathIntrospect = "/introspect"
	pathRevoke     = "/revoke"
	pathUserinfo   = "/userinfo"
	pathEndSession = "/end_session"
	pathPAR        = "/par"
)

// Limits on what a request may carry. Oversized input is answered before
// fosite (or go-jose) ever sees it.
const (
	maxAuthorizeQuery = 16 << 10 // bytes of /authorize query (or form body)
	maxFormBody       = 64 << 10 // bytes of a token/introspect/revoke/par/end_session body
	parLifespan       = 90 * time.Second
)

// errNoDefaults refuses a Config that config.ApplyDefaults has not seen:
// its zeros would be read as settings.
var errNoDefaults = errors.New("provider: the configuration has no defaults applied (load it with config.Load or config.Dev, or call ApplyDefaults)")

// Options are the provider's dependencies, wired in cmd/lanyard.
type Options struct {
	Config  *config.Config
	Store   *store.Store
	Box     *seal.Box // seals signing keys and the HMAC secret at rest
	Journey authn.Journey
	Pages   *templates.Set
	Logger  *slog.Logger
	Now     func() time.Time // default time.Now
	// LogoutClient posts back-channel logout tokens (default: a client with
	// a 10 s timeout that follows no redirect).
	LogoutClient *http.Client
}

// Provider serves the OAuth 2.0 / OpenID Connect endpoints.
type Provider struct {
	cfg     *config.Config
	issuer  string
	store   *store.Store
	journey authn.Journey
	pages   *templates.Set
	log     *slog.Logger
	now     func() time.Time

	clients *clientManager
	storage *Storage
	keys    *keyring
	signer  *signer
	fcfg    *fosite.Config
	oauth   fosite.OAuth2Provider
	cop     *http.CrossOriginProtection

	discoveryJSON []byte

	// Back-channel logout delivery (backchannel.go).
	logoutClient *http.Client
	logoutNudge  chan struct{}
}

// New builds the provider: it loads (or, on a fresh database, generates) the
// signing keys and the token HMAC secret, both sealed at rest, and composes
// fosite with exactly the handlers Lanyard uses.
func New(ctx context.Context, o Options) (*Provider, error) {
	switch {
	case o.Config == nil:
		return nil, errors.New("provider: Options.Config is required")
	case o.Store == nil:
		return nil, errors.New("provider: Options.Store is required")
	case o.Box == nil:
		return nil, errors.New("provider: Options.Box is required")
	case o.Journey == nil:
		return nil, errors.New("provider: Options.Journey is required")
	case o.Pages == nil:
		return nil, errors.New("provider: Options.Pages is required")
	case !o.Config.Defaulted():
		return nil, errNoDefaults
	}
	if !o.Pages.Has("error") || !o.Pages.Has("signed_out") {
		return nil, errors.New("provider: templates \"error\" and \"signed_out\" are required")
	}
	cfg := o.Config
	issuer := strings.TrimRight(cfg.Issuer, "/")
	if issuer == "" {
		return nil, errors.New("provider: issuer is empty")
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	utcNow := func() time.Time { return now().UTC() }

	clients, err := newClientManager(cfg.Clients)
	if err != nil {
		return nil, err
	}

	secret, err := loadHMACSecret(ctx, o.Store, o.Box)
	if err != nil {
		return nil, err
	}

	keys := newKeyring(o.Store, o.Box, algorithms(cfg), cfg.Keys.RetireAfter.D(), utcNow, log)
	if err := keys.ensure(ctx); err != nil {
		return nil, err
	}

	p := &Provider{
		cfg:     cfg,
		issuer:  issuer,
		store:   o.Store,
		journey: o.Journey,
		pages:   o.Pages,
		log:     log,
		now:     utcNow,
		clients: clients,
		keys:    keys,
		signer:  &signer{keys: keys},
		cop:     http.NewCrossOriginProtection(),

		logoutClient: o.LogoutClient,
		logoutNudge:  make(chan struct{}, 1),
	}
	if p.logoutClient == nil {
		p.logoutClient = newLogoutClient()
	}
	// Behind a proxy that rewrites Host, the logout confirmation form is still
	// posted from the issuer's own origin.
	if u, err := url.Parse(issuer); err == nil {
		if err := p.cop.AddTrustedOrigin(u.Scheme + "://" + u.Host); err != nil {
			return nil, fmt.Errorf("provider: issuer %q as trusted origin: %w", issuer, err)
		}
	}
	p.storage = &Storage{store: o.Store, clients: clients, now: utcNow, group: newGroupCommit(o.Store)}

	p.fcfg = &fosite.Config{
		AuthorizeCodeLifespan: cfg.Tokens.AuthorizeCode.D(),
		AccessTokenLifespan:   cfg.Tokens.AccessToken.D(),
		IDTokenLifespan:       cfg.Tokens.IDToken.D(),
		RefreshTokenLifespan:  cfg.Tokens.RefreshToken.D(),
		IDTokenIssuer:         issuer,
		AccessTokenIssuer:     issuer,
		TokenURL:              issuer + pathToken,

		SendDebugMessagesToClients: false,
		// Exact scope matching: a client registered for "docs:read" must not
		// obtain "docs:read.secret" through fosite's default wildcard strategy.
		ScopeStrategy: fosite.ExactScopeStrategy,
		// Set explicitly: fosite fills unset strategies lazily, which races
		// under concurrent requests.
		AudienceMatchingStrategy:       fosite.DefaultAudienceMatchingStrategy,
		EnforcePKCE:                    false,
		EnforcePKCEForPublicClients:    true,
		EnablePKCEPlainChallengeMethod: false,
		AllowedPromptValues:            promptValues,
		RefreshTokenScopes:             []string{"offline_access"},
		ClientSecretsHasher:            secretHasher{},
		GlobalSecret:                   secret,
		JWKSFetcherStrategy:            noJWKSFetch{},

		PushedAuthorizeContextLifespan: parLifespan,
	}

	strategy := &compose.CommonStrategy{
		CoreStrategy:               compose.NewOAuth2HMACStrategy(p.fcfg),
		OpenIDConnectTokenStrategy: &openid.DefaultStrategy{Signer: idTokenSigner{p.signer}, Config: p.fcfg},
		Signer:                     p.signer,
	}
	// Order matters: the OpenID Connect and PKCE handlers need the code the
	// authorization code handler has just issued.
	p.oauth = compose.Compose(p.fcfg, p.storage, strategy,
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2ClientCredentialsGrantFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OpenIDConnectExplicitFactory,
		compose.OpenIDConnectRefreshFactory,
		compose.OAuth2TokenIntrospectionFactory,
		compose.OAuth2TokenRevocationFactory,
		compose.OAuth2PKCEFactory,
		compose.PushedAuthorizeHandlerFactory,
	)

	for i, h := range p.fcfg.TokenEndpointHandlers {
		p.fcfg.TokenEndpointHandlers[i] = skipUnhandled{h}
	}

	if p.discoveryJSON, err = p.buildDiscovery(); err != nil {
		return nil, err
	}
	return p, nil
}

// Mount registers every route of the provider on mux.
func (p *Provider) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET "+pathDiscovery, p.handleDiscovery)
	mux.HandleFunc("GET "+pathJWKS, p.handleJWKS)
	mux.HandleFunc("GET "+pathAuthorize, p.handleAuthorize)
	mux.HandleFunc("POST "+pathAuthorize, p.handleAuthorize)
	mux.HandleFunc("GET "+pathResume, p.handleResume)
	mux.HandleFunc("POST "+pathToken, p.handleToken)
	mux.HandleFunc("POST "+pathIntrospect, p.handleIntrospect)
	mux.HandleFunc("POST "+pathRevoke, p.handleRevoke)
	mux.HandleFunc("GET "+pathUserinfo, p.handleUserinfo)
	mux.HandleFunc("POST "+pathUserinfo, p.handleUserinfo)
	mux.HandleFunc("GET "+pathEndSession, p.handleEndSession)
	mux.HandleFunc("POST "+pathEndSession, p.handleEndSession)
	mux.HandleFunc("POST "+pathPAR, p.handlePAR)
}

// SetClients replaces the relying parties (SIGHUP reload). The swap is atomic:
// a request sees either the old or the new set. Invalid clients are logged and
// left out rather than taking the others down.
func (p *Provider) SetClients(cs []config.Client) {
	p.clients.set(cs, p.log)
}

// skipUnhandled answers "not mine" for a grant the handler does not handle
// without entering it: fosite asks every token handler to populate every
// response, and each one that declines captures a stack trace for its
// ErrUnknownRequest — the largest avoidable cost of a client_credentials grant.
type skipUnhandled struct{ fosite.TokenEndpointHandler }

func (h skipUnhandled) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !h.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	return h.TokenEndpointHandler.PopulateTokenEndpointResponse(ctx, r, resp)
}

// secretHasher checks client secrets with config.VerifySecret: a salted
// HMAC-SHA256 compared in constant time. Client secrets are high-entropy, so a
// slow password hash (fosite's default bcrypt) would only cap the token
// endpoint's throughput.
type secretHasher struct{}

var errSecretMismatch = errors.New("client secret does not match")

func (secretHasher) Compare(_ context.Context, hash, data []byte) error {
	if len(hash) == 0 || !config.VerifySecret(string(hash), string(data)) {
		return errSecretMismatch
	}
	return nil
}

func (secretHasher) Hash(_ context.Context, data []byte) ([]byte, error) {
	h, err := config.HashSecret(string(data))
	return []byte(h), err
}

// noJWKSFetch refuses to fetch a jwks_uri: clients carry their keys inline, and
// the provider must never make an outbound request on a client's behalf.
type noJWKSFetch struct{}

func (noJWKSFetch) Resolve(context.Context, string, bool) (*jose.JSONWebKeySet, error) {
	return nil, fosite.ErrInvalidClient.WithHint("Fetching a jwks_uri is not supported; register the keys inline.")
}

const (
	secretTokenHMAC  = "token-hmac"
	purposeTokenHMAC = "token-hmac"
)

// loadHMACSecret returns the 32-byte secret that signs opaque tokens. The first
// node to start stores it (sealed); every other node reads the same value, so a
// token minted by one node validates on all of them.
func loadHMACSecret(ctx context.Context, st *store.Store, box *seal.Box) ([]byte, error) {
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("generate token secret: %w", err)
	}
	sealed, err := st.PutSecretIfAbsent(ctx, secretTokenHMAC, box.Seal(fresh, purposeTokenHMAC))
	if err != nil {
		return nil, fmt.Errorf("store token secret: %w", err)
	}
	secret, err := box.Open(sealed, purposeTokenHMAC)
	if err != nil {
		return nil, fmt.Errorf("open token secret (wrong encryption key?): %w", err)
	}
	if len(secret) != 32 {
		return nil, fmt.Errorf("token secret is %d bytes, want 32", len(secret))
	}
	return secret, nil
}

// algorithms returns the ID token signing algorithms on offer: RS256 always,
// ES256 when configured (the configuration's default list has both).
func algorithms(cfg *config.Config) []string {
	algs := []string{algRS256}
	for _, a := range cfg.Keys.Algorithms {
		if a == algES256 {
			algs = append(algs, algES256)
		}
	}
	return algs
}

// serveError answers with the error page by the path every page of Lanyard
// shares (templates.ServeError): the reader gets e's plain sentence, the
// log gets its cause.
func (p *Provider) serveError(w http.ResponseWriter, r *http.Request, e *templates.Error) {
	templates.SetPageHeaders(w.Header(), p.cfg.Dev)
	p.pages.ServeError(w, r, p.log, p.base(""), e)
}

func (p *Provider) base(title string) templates.Base {
	return templates.Base{Product: p.cfg.Journey.DisplayName, Environment: p.cfg.Journey.Environment, Title: title}
}

func (p *Provider) audit(ctx context.Context, e *store.AuditEvent) {
	e.At = p.now()
	if err := p.store.AppendAudit(ctx, e); err != nil {
		p.log.Error("append audit event", "event", e.Event, "err", err)
	}
}
