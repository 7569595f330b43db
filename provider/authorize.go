package provider

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"

	"github.com/lanyard-idp/lanyard/provider/authn"
	"github.com/lanyard-idp/lanyard/provider/store"
	"github.com/lanyard-idp/lanyard/templates"
)

// handleAuthorize is the authorization endpoint, in four moves: guard the raw
// request, parse it with fosite, hand a browser that is not (sufficiently)
// signed in to the journey, and otherwise issue the code.
func (p *Provider) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	if len(r.URL.RawQuery) > maxAuthorizeQuery {
		p.serveError(w, r, &templates.Error{Status: http.StatusBadRequest, Title: "Request too large",
			Message: "The sign-in request is too large. Go back to the application and try again.", Code: "invalid_request"})
		return
	}
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxAuthorizeQuery)
	}
	p.authorize(w, r, nil)
}

// handleResume continues a parked authorization request once the journey has
// signed the browser in.
func (p *Provider) handleResume(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	if id == "" || len(id) > 128 {
		p.serveError(w, r, &templates.Error{Status: http.StatusBadRequest, Title: "Sign-in link not valid",
			Message: "This sign-in link is not valid. Go back to the application and sign in again."})
		return
	}
	parked, err := p.store.AuthRequestByID(r.Context(), id, p.now())
	if errors.Is(err, store.ErrNotFound) {
		p.serveError(w, r, &templates.Error{Status: http.StatusBadRequest, Title: "Sign-in expired",
			Message: "This sign-in has expired or is not known. Go back to the application and sign in again."})
		return
	}
	if err != nil {
		p.serveError(w, r, &templates.Error{Status: http.StatusServiceUnavailable, Title: "Temporarily unavailable",
			Message: "Sign-in is temporarily unavailable. Please try again in a moment.", Code: "temporarily_unavailable",
			Cause: fmt.Errorf("load parked authorization request: %w", err)})
		return
	}
	// Rebuild the original request from the parked query, as if the browser had
	// sent it again.
	r2 := r.Clone(r.Context())
	r2.Method = http.MethodGet
	r2.URL.RawQuery = parked.Query
	r2.Form, r2.PostForm, r2.MultipartForm = nil, nil, nil
	r2.Body = http.NoBody
	r2.ContentLength = 0
	p.authorize(w, r2, parked)
}

// authorize runs both for a fresh request (parked == nil) and for a resumed one.
func (p *Provider) authorize(w http.ResponseWriter, r *http.Request, parked *store.AuthRequest) {
	ctx := r.Context()

	// (0) Guards fosite does not do (or does differently).
	pre, ok := p.guardAuthorize(w, r)
	if !ok {
		return
	}
	if pre.err != nil {
		p.writeAuthorizeError(ctx, w, pre.ar, pre.err)
		return
	}

	// (1) Parse and validate with fosite.
	ar, err := p.oauth.NewAuthorizeRequest(ctx, r)
	if err != nil {
		if ar == nil || ar.GetClient() == nil || !ar.IsRedirectURIValid() {
			p.authorizeErrorPage(w, r, err)
			return
		}
		p.writeAuthorizeError(ctx, w, ar, err)
		return
	}
	c, ok := ar.GetClient().(*client)
	if !ok {
		p.authorizeErrorPage(w, r, fosite.ErrInvalidClient)
		return
	}
	form := ar.GetRequestForm()
	if pre.par {
		// The pushed request's claims (checked when it was pushed).
		if pre.claims, err = parseClaims(form.Get("claims")); err != nil {
			p.writeAuthorizeError(ctx, w, ar, fosite.ErrInvalidRequest.WithHint("The claims parameter must be a JSON object (OpenID Connect Core 5.5)."))
			return
		}
	}
	acr := requestedACR(form.Get("acr_values"), pre.claims)

	// (2) Is the browser signed in, and recently enough?
	b, err := p.journey.Browser(r)
	if err != nil {
		p.log.Error("read browser session", "err", err)
		p.writeAuthorizeError(ctx, w, ar, fosite.ErrTemporarilyUnavailable)
		return
	}
	prompts := fosite.RemoveEmpty(strings.Split(form.Get("prompt"), " "))
	maxAge, hasMaxAge, err := parseMaxAge(form.Get("max_age"))
	if err != nil {
		p.writeAuthorizeError(ctx, w, ar, fosite.ErrInvalidRequest.WithHint("The max_age parameter must be a non-negative integer."))
		return
	}
	requestedAt := p.now()
	if parked != nil {
		requestedAt = parked.CreatedAt
	}
	authTime := b.AuthTime.UTC().Truncate(time.Second)
	rat := requestedAt.UTC().Truncate(time.Second)
	tooOld := hasMaxAge && maxAge > 0 && authTime.Add(time.Duration(maxAge)*time.Second).Before(rat)
	wantsLogin := slices.Contains(prompts, "login") || (hasMaxAge && maxAge == 0)

	_, acrMet := acr.achieved(b.ACR)
	h := handoff{claims: pre.claims, acr: acr, consent: slices.Contains(prompts, "consent")}
	consent, err := p.consentFor(ctx, c, ar.GetRequestedScopes(), h, b.UserID, parked)
	if err != nil {
		p.log.Error("load the officer's consent", "err", err)
		p.writeAuthorizeError(ctx, w, ar, fosite.ErrTemporarilyUnavailable)
		return
	}
	if slices.Contains(prompts, "none") {
		switch {
		case !b.SignedIn && b.InProgress:
			p.writeAuthorizeError(ctx, w, ar, fosite.ErrInteractionRequired.WithHint("The sign-in is not finished."))
			return
		case !b.SignedIn:
			p.writeAuthorizeError(ctx, w, ar, fosite.ErrLoginRequired.WithHint("The browser is not signed in."))
			return
		case tooOld:
			p.writeAuthorizeError(ctx, w, ar, fosite.ErrLoginRequired.WithHint("The sign-in is older than max_age."))
			return
		case wantsLogin: // max_age=0: a sign-in now, which prompt=none cannot show
			p.writeAuthorizeError(ctx, w, ar, fosite.ErrLoginRequired.WithHint("max_age=0 asks for a new sign-in."))
			return
		case !acrMet && acr.essential:
			p.writeAuthorizeError(ctx, w, ar, fosite.ErrInteractionRequired.WithHint("The sign-in does not reach the requested authentication level (acr)."))
			return
		case consent != consentGiven:
			p.writeAuthorizeError(ctx, w, ar, fosite.ErrConsentRequired.WithHint("The officer has not allowed this application what it asks for."))
			return
		}
	} else {
		if consent == consentDeclined {
			p.writeAuthorizeError(ctx, w, ar, fosite.ErrAccessDenied.WithHint("The officer declined the request on the consent page."))
			return
		}
		// A fresh request that wants a new sign-in always gets one. A resumed
		// request is satisfied by a sign-in at or after the moment it was
		// parked; otherwise prompt=login would loop forever.
		h.force = tooOld || (wantsLogin && (parked == nil || b.AuthTime.Before(parked.CreatedAt)))
		// A signed-in browser still goes through the journey once for a
		// step-up (acr_values above what the session achieved); the resumed
		// request takes what the journey achieved. The consent page, when
		// due, must have been answered by this officer for this request
		// (or remembered): a request that resumes without it goes back.
		if !b.SignedIn || h.force || (parked == nil && !acrMet) || consent == consentAsk {
			h.force = h.force || wantsLogin
			p.signIn(w, r, ar, c, parked, h)
			return
		}
	}

	// (3) Signed in: build the session and issue the code.
	p.issueCode(w, r, ar, b, authTime, rat, h)
}

// handoff is what a request asks beyond a plain sign-in: the claims
// parameter, the authentication context, a new sign-in, consent
// (prompt=consent).
type handoff struct {
	claims  *claimsRequest
	acr     acrRequest
	force   bool
	consent bool
}

// claimNames are the claims the request names in the claims parameter,
// sorted: what the consent page lists besides the scopes.
func (h handoff) claimNames() []string {
	if h.claims == nil {
		return nil
	}
	return slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(h.claims.UserInfo), h.claims.IDToken...))))
}

// consentState is where a request stands with the officer's consent.
type consentState int

const (
	consentGiven    consentState = iota // not needed, remembered, or given for this request
	consentAsk                          // the consent page is due
	consentDeclined                     // declined on the consent page for this request
)

// consentFor decides whether a request needs the consent page. It is due
// for prompt=consent, and for a client registered with consent: required
// unless the officer's remembered decision covers what it asks. A parked
// request carries the answer the officer gave on the page for it; an
// answer by another officer than the browser's counts for nothing.
func (p *Provider) consentFor(ctx context.Context, c *client, scopes []string, h handoff, userID string, parked *store.AuthRequest) (consentState, error) {
	if !h.consent && !c.consentRequired {
		return consentGiven, nil
	}
	if parked != nil && userID != "" && parked.DecidedBy == userID {
		switch parked.Decision {
		case store.ConsentGranted:
			return consentGiven, nil
		case store.ConsentDeclined:
			return consentDeclined, nil
		}
	}
	if h.consent || userID == "" {
		return consentAsk, nil
	}
	remembered, err := p.store.ConsentOf(ctx, userID, c.id)
	if errors.Is(err, store.ErrNotFound) {
		return consentAsk, nil
	}
	if err != nil {
		return consentAsk, err
	}
	if remembered.Covers(scopes, h.claimNames()) {
		return consentGiven, nil
	}
	return consentAsk, nil
}

// preAuthorize is the outcome of the guards: either an error to send through
// fosite's writer (ar is then complete enough to redirect), or nothing.
type preAuthorize struct {
	ar     *fosite.AuthorizeRequest
	err    error
	claims *claimsRequest // the claims parameter, parsed
	par    bool           // the request names a pushed request (request_uri)
}

// guardAuthorize checks what must be refused before fosite parses the request.
// It returns ok=false when it has already answered with the error page (the
// client or its redirect URI cannot be trusted, so nothing may redirect).
func (p *Provider) guardAuthorize(w http.ResponseWriter, r *http.Request) (preAuthorize, bool) {
	if err := r.ParseForm(); err != nil {
		p.serveError(w, r, &templates.Error{Status: http.StatusBadRequest, Title: "Request not valid",
			Message: "The sign-in request could not be read. Go back to the application and try again.", Code: "invalid_request"})
		return preAuthorize{}, false
	}
	f := r.Form
	for _, k := range []string{"client_id", "redirect_uri", "request_uri"} {
		if len(f[k]) > 1 {
			p.serveError(w, r, &templates.Error{Status: http.StatusBadRequest, Title: "Request not valid",
				Message: "The sign-in request repeats a parameter that may appear only once.", Code: "invalid_request"})
			return preAuthorize{}, false
		}
	}
	// A pushed request is the whole request: next to its request_uri, the
	// browser URL's other parameters are ignored (RFC 9126 §4), or fosite
	// would add those the pushed request lacks (claims, prompt, max_age…).
	isPAR := strings.HasPrefix(f.Get("request_uri"), parPrefix)
	if isPAR {
		f = url.Values{"client_id": f["client_id"], "request_uri": f["request_uri"]}
		r.Form, r.PostForm = f, url.Values{}
	}
	c, ok := p.clients.get(f.Get("client_id"))
	if !ok {
		p.serveError(w, r, &templates.Error{Status: http.StatusBadRequest, Title: "Unknown application",
			Message: "The application that sent you here is not registered with this sign-in service.", Code: "invalid_client"})
		return preAuthorize{}, false
	}

	ar := fosite.NewAuthorizeRequest()
	ar.Form = f
	ar.Client = c
	ar.State = f.Get("state")
	ar.ResponseMode = fosite.ResponseModeQuery
	ar.DefaultResponseMode = fosite.ResponseModeQuery

	// Exact redirect URI match (fosite alone would also accept any port on a
	// loopback address). A pushed request carries its redirect URI in the
	// stored request, checked when it was pushed.
	redirect := f.Get("redirect_uri")
	switch {
	case redirect != "" && slices.Contains(c.redirectURIs, redirect):
	case redirect == "" && len(c.redirectURIs) == 1:
		redirect = c.redirectURIs[0]
	case redirect == "" && isPAR:
	default:
		p.serveError(w, r, &templates.Error{Status: http.StatusBadRequest, Title: "Unknown return address",
			Message: "The application asked to send you back to an address it has not registered. Nothing was sent to it.", Code: "invalid_request"})
		return preAuthorize{}, false
	}
	if redirect != "" {
		u, err := url.Parse(redirect)
		if err != nil {
			p.serveError(w, r, &templates.Error{Status: http.StatusBadRequest, Title: "Unknown return address",
				Message: "The application's return address is not valid.", Code: "invalid_request"})
			return preAuthorize{}, false
		}
		ar.RedirectURI = u
	}
	redirectable := ar.RedirectURI != nil

	var err error
	switch {
	case hasControlChars(ar.State):
		ar.State = "" // never echo it
		err = fosite.ErrInvalidState.WithHint("The state parameter contains control characters.")
	case hasControlChars(f.Get("nonce")):
		err = fosite.ErrInvalidRequest.WithHint("The nonce parameter contains control characters.")
	case duplicated(f) != "":
		err = fosite.ErrInvalidRequest.WithHintf("The parameter %q was sent more than once.", duplicated(f))
	case f.Has("request"):
		err = fosite.ErrRequestNotSupported.WithHint("Request objects are not supported; send the parameters directly or use PAR.")
	case f.Has("request_uri") && !isPAR:
		err = fosite.ErrRequestURINotSupported.WithHint("Only request_uri values from this server's pushed authorization endpoint are accepted.")
	case f.Has("response_type") && f.Get("response_type") != "code":
		// Exactly "code": fosite lets "Code" through to a grant no handler
		// makes, and answers that with server_error.
		err = fosite.ErrUnsupportedResponseType.WithHint("Only response_type=code is supported.")
	case f.Get("response_mode") != "" && f.Get("response_mode") != "query":
		err = fosite.ErrUnsupportedResponseMode.WithHint("Only response_mode=query is supported.")
	case !validPrompt(f.Get("prompt")):
		err = fosite.ErrInvalidRequest.WithHint("prompt must be none (alone), or any of login, consent and select_account.")
	}
	claims, cerr := parseClaims(f.Get("claims"))
	if err == nil && cerr != nil {
		err = fosite.ErrInvalidRequest.WithHint("The claims parameter must be a JSON object (OpenID Connect Core 5.5).")
	}
	if err != nil && !redirectable {
		p.authorizeErrorPage(w, r, err)
		return preAuthorize{}, false
	}
	return preAuthorize{ar: ar, err: err, claims: claims, par: isPAR}, true
}

const parPrefix = "urn:ietf:params:oauth:request_uri:"

// duplicated returns the first parameter that appears more than once.
func duplicated(f url.Values) string {
	for k, v := range f {
		if len(v) > 1 {
			return k
		}
	}
	return ""
}

// promptValues are what discovery advertises. select_account is accepted
// and needs nothing more: a browser holds one officer's session, and the
// sign-in page always offers "Not you?".
var promptValues = []string{"none", "login", "consent", "select_account"}

// validPrompt accepts the advertised values, none only alone (OIDC Core
// §3.1.2.1).
func validPrompt(p string) bool {
	prompts := fosite.RemoveEmpty(strings.Split(p, " "))
	for _, v := range prompts {
		if !slices.Contains(promptValues, v) {
			return false
		}
	}
	return !slices.Contains(prompts, "none") || len(prompts) == 1
}

func hasControlChars(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

func parseMaxAge(s string) (int64, bool, error) {
	if s == "" {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	// Beyond ten years max_age means nothing, and fosite's own arithmetic on
	// it would overflow.
	if err != nil || n < 0 || n > 10*365*24*3600 {
		return 0, false, errors.New("bad max_age")
	}
	return n, true, nil
}

// signIn parks the request and hands the browser to the journey, which comes
// back to the resume URL when the officer is fully signed in.
func (p *Provider) signIn(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, c *client, parked *store.AuthRequest, h handoff) {
	ctx := r.Context()
	if parked == nil {
		q := url.Values{}
		for k, v := range ar.GetRequestForm() {
			q[k] = v
		}
		// A pushed request has been consumed: park its parameters, not its URI.
		delete(q, "request_uri")
		for _, k := range secretParams {
			delete(q, k)
		}
		now := p.now()
		parked = &store.AuthRequest{
			ID:        rand.Text(),
			ClientID:  c.id,
			Query:     q.Encode(),
			CreatedAt: now,
			ExpiresAt: now.Add(p.cfg.Journey.Timeout.D()),
		}
		if err := p.store.CreateAuthRequest(ctx, parked); err != nil {
			p.log.Error("park authorization request", "err", err)
			p.writeAuthorizeError(ctx, w, ar, fosite.ErrTemporarilyUnavailable)
			return
		}
	}
	loginHint := ar.GetRequestForm().Get("login_hint")
	if len(loginHint) > 256 || hasControlChars(loginHint) {
		loginHint = ""
	}
	req := authn.SignInRequest{
		ResumeURL:    p.issuer + pathResume + "?id=" + url.QueryEscape(parked.ID),
		ClientID:     c.id,
		ClientName:   c.displayName(),
		ForceLogin:   h.force,
		LoginHint:    loginHint,
		RequestedAt:  parked.CreatedAt,
		Consent:      h.consent,
		Scopes:       slices.Clone(ar.GetRequestedScopes()),
		ACRValues:    slices.Clone(h.acr.values),
		ACREssential: h.acr.essential,
	}
	req.RequestID = parked.ID
	req.ConsentRequired = c.consentRequired
	req.Claims = h.claimNames()
	p.journey.SignIn(w, r, req)
}

// issueCode builds the OpenID Connect session for a signed-in browser and
// issues the code. The code, PKCE and OIDC rows are written in one transaction.
func (p *Provider) issueCode(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, b authn.Browser, authTime, requestedAt time.Time, h handoff) {
	ctx := r.Context()
	user, err := p.store.UserByID(ctx, b.UserID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && user.State == store.UserDisabled) {
		p.writeAuthorizeError(ctx, w, ar, fosite.ErrAccessDenied.WithHint("The account cannot sign in."))
		return
	}
	if err != nil {
		p.log.Error("load user for authorization", "err", err)
		p.writeAuthorizeError(ctx, w, ar, fosite.ErrTemporarilyUnavailable)
		return
	}

	// Every requested scope the client is allowed (fosite has checked that
	// already) is granted: by the officer on the consent page when one was
	// due (authorize checked that it was answered), else because the
	// relying parties are first-party.
	for _, s := range ar.GetRequestedScopes() {
		ar.GrantScope(s)
	}
	for _, a := range ar.GetRequestedAudience() {
		ar.GrantAudience(a)
	}

	// Never an acr the sign-in did not achieve: a request that insists
	// (essential) on more is refused; otherwise the session's own acr.
	acr, met := h.acr.achieved(b.ACR)
	if !met && h.acr.essential {
		p.writeAuthorizeError(ctx, w, ar, fosite.ErrAccessDenied.WithHint("The sign-in does not reach the authentication level the application requires (acr)."))
		return
	}
	c := ar.GetClient().(*client)
	extra, err := p.userClaims(ctx, user, idTokenNames(c, ar.GetGrantedScopes(), h.claims))
	if err != nil {
		p.log.Error("load user claims", "err", err)
		p.writeAuthorizeError(ctx, w, ar, fosite.ErrTemporarilyUnavailable)
		return
	}
	if b.SessionID != "" {
		extra["sid"] = b.SessionID
	}
	sess := &session{
		DefaultSession: openid.DefaultSession{
			Subject:  user.ID,
			Username: user.Username,
			Claims: &jwt.IDTokenClaims{
				Subject:                             user.ID,
				AuthTime:                            authTime,
				RequestedAt:                         requestedAt,
				AuthenticationMethodsReferences:     slices.Clone(b.AMR),
				AuthenticationContextClassReference: acr,
				Extra:                               extra,
			},
			Headers: &jwt.Headers{},
		},
		Requested: h.claims,
	}

	txCtx, err := p.storage.BeginTX(ctx)
	if err != nil {
		p.log.Error("begin authorization transaction", "err", err)
		p.writeAuthorizeError(ctx, w, ar, fosite.ErrTemporarilyUnavailable)
		return
	}
	resp, err := p.oauth.NewAuthorizeResponse(txCtx, ar, sess)
	if err != nil {
		_ = p.storage.Rollback(txCtx)
		p.writeAuthorizeError(ctx, w, ar, err)
		return
	}
	// The client gets tokens in this session: when the session ends, it is
	// told (back-channel logout), in the same transaction as the code.
	if b.SessionID != "" {
		err := p.store.RecordSessionClient(txCtx, &store.SessionClient{
			SID: b.SessionID, ClientID: c.id, Subject: user.ID, CreatedAt: p.now(),
		})
		if errors.Is(err, store.ErrNotFound) {
			// The browser signed out since it was looked at: no code for a
			// session no sign-out will reach again.
			_ = p.storage.Rollback(txCtx)
			p.writeAuthorizeError(ctx, w, ar, fosite.ErrLoginRequired.WithHint("The session ended during the request; sign in again."))
			return
		}
		if err != nil {
			_ = p.storage.Rollback(txCtx)
			p.log.Error("record the session's client", "err", err)
			p.writeAuthorizeError(ctx, w, ar, fosite.ErrTemporarilyUnavailable)
			return
		}
	}
	if err := p.storage.Commit(txCtx); err != nil {
		_ = p.storage.Rollback(txCtx)
		p.log.Error("commit authorization", "err", err)
		p.writeAuthorizeError(ctx, w, ar, fosite.ErrTemporarilyUnavailable)
		return
	}
	resp.AddParameter("iss", p.issuer) // RFC 9207
	p.oauth.WriteAuthorizeResponse(ctx, w, ar, resp)
}

// writeAuthorizeError sends an OAuth error to the client's (verified) redirect
// URI through fosite's writer, adding iss (RFC 9207) to the redirect.
func (p *Provider) writeAuthorizeError(ctx context.Context, w http.ResponseWriter, ar fosite.AuthorizeRequester, err error) {
	p.logOAuthError("authorize", err)
	// Lanyard answers in the query only. fosite picks the fragment for a
	// response type it does not know ("Code", "token"), which would hand
	// the error to the client's page script instead of its server.
	if a, ok := ar.(*fosite.AuthorizeRequest); ok {
		a.ResponseMode, a.DefaultResponseMode = fosite.ResponseModeQuery, fosite.ResponseModeQuery
	}
	p.oauth.WriteAuthorizeError(ctx, &issWriter{ResponseWriter: w, iss: p.issuer}, ar, err)
}

// authorizeErrorPage is for errors that must not redirect: the client or its
// redirect URI are unknown, so the browser is told here.
func (p *Provider) authorizeErrorPage(w http.ResponseWriter, r *http.Request, err error) {
	rfc := fosite.ErrorToRFC6749Error(err)
	status := http.StatusBadRequest
	if rfc.CodeField >= 500 {
		status = rfc.CodeField
	}
	msg := "The application sent a sign-in request this service cannot accept. Go back to the application and try again."
	switch rfc.ErrorField {
	case "invalid_client":
		msg = "The application that sent you here is not registered with this sign-in service."
	case "invalid_request_uri":
		msg = "This sign-in request has expired or was already used. Go back to the application and try again."
	}
	p.serveError(w, r, &templates.Error{Status: status, Title: "Sign-in request not valid", Message: msg,
		Code: rfc.ErrorField, Cause: oauthCause(rfc)})
}

// issWriter adds iss to the query of the redirect fosite writes.
type issWriter struct {
	http.ResponseWriter
	iss string
}

func (w *issWriter) WriteHeader(status int) {
	if loc := w.Header().Get("Location"); loc != "" && status >= 300 && status < 400 {
		if u, err := url.Parse(loc); err == nil {
			q := u.Query()
			q.Set("iss", w.iss)
			u.RawQuery = q.Encode()
			w.Header().Set("Location", u.String())
		}
	}
	w.ResponseWriter.WriteHeader(status)
}

func (p *Provider) logOAuthError(endpoint string, err error) {
	rfc := fosite.ErrorToRFC6749Error(err)
	if rfc.CodeField >= 500 {
		p.log.Error("oauth error", "endpoint", endpoint, "error", rfc.ErrorField, "debug", rfc.Debug())
		return
	}
	p.log.Info("oauth error", "endpoint", endpoint, "error", rfc.ErrorField, "hint", rfc.HintField)
}

// oauthCause is what the log keeps of an OAuth error shown on a page: its
// code and, as logOAuthError writes them, the debug detail of a fault of
// ours or the hint of a refusal.
func oauthCause(rfc *fosite.RFC6749Error) error {
	if rfc.CodeField >= 500 {
		return fmt.Errorf("%s: %s", rfc.ErrorField, rfc.Debug())
	}
	return fmt.Errorf("%s: %s", rfc.ErrorField, rfc.HintField)
}
