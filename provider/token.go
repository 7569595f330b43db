package provider

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"

	"github.com/ory/fosite"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/provider/authn"
	"github.com/lanyard-idp/lanyard/provider/store"
)

// handleToken is the token endpoint: authorization code (with PKCE), refresh
// and client credentials grants.
func (p *Provider) handleToken(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)

	if err := p.guardClientCredentials(r); err != nil {
		p.writeTokenError(ctx, w, nil, err)
		return
	}

	ctx, seen := withGrantsSeen(ctx)
	sess := newSession()
	ar, err := p.oauth.NewAccessRequest(ctx, r, sess)
	if err != nil {
		p.endReuse(ctx, r, ar, seen, err)
		p.writeTokenError(ctx, w, ar, err)
		return
	}

	grant := ar.GetGrantTypes()
	switch {
	case grant.ExactOne(config.GrantClientCredentials):
		// A service gets every scope it asks for among those registered for it
		// (fosite has refused any other).
		for _, s := range ar.GetRequestedScopes() {
			ar.GrantScope(s)
		}
		for _, a := range ar.GetRequestedAudience() {
			ar.GrantAudience(a)
		}
	case grant.ExactOne(config.GrantAuthorizationCode), grant.ExactOne(config.GrantRefreshToken):
		if err := p.checkSubject(ctx, ar); err != nil {
			p.writeTokenError(ctx, w, ar, err)
			return
		}
	}

	// The audit event is written with the access token (see Storage.save):
	// for client credentials in a transaction shared with concurrent grants
	// (group commit), for the others in fosite's own transaction.
	ctx = withIssueAudit(ctx, p.issueEvent(r, ar))
	resp, err := p.oauth.NewAccessResponse(ctx, ar)
	if err != nil {
		p.endReuse(ctx, r, ar, seen, err)
		p.writeTokenError(ctx, w, ar, err)
		return
	}
	p.oauth.WriteAccessResponse(ctx, w, ar, resp)
}

// issueEvent is the audit event of a token issue: client, grant, subject.
func (p *Provider) issueEvent(r *http.Request, ar fosite.AccessRequester) *store.AuditEvent {
	detail, _ := json.Marshal(map[string]string{"grant": ar.GetGrantTypes()[0]})
	return &store.AuditEvent{
		At:         p.now(),
		Event:      store.EventTokenIssue,
		UserID:     ar.GetSession().GetSubject(),
		ClientID:   ar.GetClient().GetID(),
		ClientAddr: authn.ClientAddr(r),
		Detail:     detail,
	}
}

// guardClientCredentials refuses ambiguous client authentication: credentials
// in both the Authorization header and the body, or two different client ids.
func (p *Provider) guardClientCredentials(r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		return fosite.ErrInvalidRequest.WithHint("The request body could not be read.")
	}
	if k := duplicated(r.PostForm); k != "" {
		return fosite.ErrInvalidRequest.WithHintf("The parameter %q was sent more than once.", k)
	}
	if len(r.URL.Query()) > 0 && (r.URL.Query().Has("client_secret") || r.URL.Query().Has("code") || r.URL.Query().Has("refresh_token")) {
		return fosite.ErrInvalidRequest.WithHint("Credentials must not be sent in the URL.")
	}
	id, _, basic := r.BasicAuth()
	if !basic {
		if r.Header.Get("Authorization") != "" {
			return fosite.ErrInvalidClient.WithHint("The Authorization header is malformed.")
		}
		return nil
	}
	if r.PostForm.Has("client_secret") || r.PostForm.Has("client_assertion") {
		return fosite.ErrInvalidRequest.WithHint("Client credentials were sent both in the Authorization header and in the body.")
	}
	if bodyID := r.PostForm.Get("client_id"); bodyID != "" {
		if hdrID, err := url.QueryUnescape(id); err != nil || hdrID != bodyID {
			return fosite.ErrInvalidClient.WithHint("The client_id in the body does not match the Authorization header.")
		}
	}
	return nil
}

// checkSubject refuses tokens for an officer who can no longer sign in or
// has a journey step pending, and refreshes the claims about them the new
// ID token carries (those the client asked for: see claims.go).
func (p *Provider) checkSubject(ctx context.Context, ar fosite.AccessRequester) error {
	sub := ar.GetSession().GetSubject()
	if sub == "" {
		return nil
	}
	user, err := p.store.UserByID(ctx, sub)
	if errors.Is(err, store.ErrNotFound) || (err == nil && user.State == store.UserDisabled) {
		return fosite.ErrInvalidGrant.WithHint("The account can no longer sign in.")
	}
	if err != nil {
		return fosite.ErrTemporarilyUnavailable.WithWrap(err)
	}
	// No token while the journey has a step for the officer: a new policy
	// version they have not accepted (the ID token would state an outdated
	// lanyard_policies), a second factor or a password to set.
	step, err := p.journey.StepPending(ctx, sub)
	if err != nil {
		return fosite.ErrTemporarilyUnavailable.WithWrap(err)
	}
	if step != "" {
		p.log.Info("token refused: a journey step is pending", "step", step)
		return fosite.ErrInvalidGrant.WithHint("The officer must complete a step of the sign-in (a new policy to accept, say) before tokens are issued again.")
	}
	if !ar.GetGrantTypes().ExactOne(config.GrantRefreshToken) {
		return nil
	}
	sess, ok := ar.GetSession().(*session)
	c, cok := ar.GetClient().(*client)
	if !ok || !cok {
		return nil
	}
	extra, err := p.userClaims(ctx, user, idTokenNames(c, ar.GetGrantedScopes(), sess.Requested))
	if err != nil {
		return fosite.ErrTemporarilyUnavailable.WithWrap(err)
	}
	claims := sess.IDTokenClaims()
	if sid, ok := claims.Extra["sid"]; ok {
		extra["sid"] = sid
	}
	claims.Extra = extra
	sess.Username = user.Username
	return nil
}

// writeTokenError answers through fosite's writer. A lost race (a code or
// refresh token used concurrently) is the client's problem, not the server's:
// invalid_grant, never 500. A failed client authentication carries
// WWW-Authenticate.
func (p *Provider) writeTokenError(ctx context.Context, w http.ResponseWriter, ar fosite.AccessRequester, err error) {
	// fosite reads the code twice: a code still valid at the first read and
	// invalidated by a concurrent request before the second is a lost race too.
	// So is one the second read no longer finds (removed by a concurrent
	// request), which fosite's second read reports as server_error.
	if lost(err) {
		err = fosite.ErrInvalidGrant.WithHint("The grant was used by a concurrent request.").WithWrap(err)
	}
	p.logOAuthError("token", err)
	setWWWAuthenticate(w, err)
	p.oauth.WriteAccessError(ctx, w, ar, err)
}

// grantNames names the kinds of grant in the audit events' "grant".
var grantNames = map[string]string{
	store.KindCode:    config.GrantAuthorizationCode,
	store.KindRefresh: config.GrantRefreshToken,
	store.KindAccess:  "access_token",
}

// endReuse follows a failed token request that presented a code or refresh
// token already used. fosite revokes the family of one it finds used at its
// first read; a redemption that lost the race for a code later — at the
// code's second read or its conditional update, or finding the PKCE record
// the winner retired — is a reuse too (RFC 6749 §4.1.2), and endReuse
// revokes what the winner issued. The loser's transaction has rolled back
// by then and the winner's has committed (the loser saw its writes), so the
// winner's tokens are stored. Either way it writes the token.reuse event;
// any other failure writes nothing here.
func (p *Provider) endReuse(ctx context.Context, r *http.Request, ar fosite.AccessRequester, seen *grantsSeen, err error) {
	g, ok := seen.first(func(g grantSeen) bool { return g.kind == store.KindCode || g.kind == store.KindRefresh })
	if !ok {
		return
	}
	_, pkceUsed := seen.first(func(g grantSeen) bool { return g.kind == store.KindPKCE && !g.active })
	lostCode := g.kind == store.KindCode && g.active && (lost(err) || pkceUsed)
	if g.active && !lostCode {
		return
	}
	if lostCode {
		for _, kind := range []string{store.KindAccess, store.KindRefresh} {
			if err := p.store.DeactivateOAuthByRequestID(ctx, kind, g.requestID); err != nil {
				p.log.Error("cannot revoke the tokens of a reused code", "err", err)
			}
		}
	}
	by := ""
	if ar != nil && ar.GetClient() != nil {
		by = ar.GetClient().GetID()
	}
	detail, _ := json.Marshal(map[string]string{"grant": grantNames[g.kind], "request": g.requestID, "by": by})
	p.audit(ctx, &store.AuditEvent{Event: store.EventTokenReuse, UserID: g.subject, ClientID: g.clientID,
		ClientAddr: authn.ClientAddr(r), Detail: detail})
}

// lost reports a grant lost to a concurrent request (see writeTokenError).
func lost(err error) bool {
	return errors.Is(err, errLostRace) || errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) ||
		(errors.Is(err, fosite.ErrNotFound) && fosite.ErrorToRFC6749Error(err).ErrorField == fosite.ErrServerError.ErrorField)
}

func setWWWAuthenticate(w http.ResponseWriter, err error) {
	rfc := fosite.ErrorToRFC6749Error(err)
	if rfc.CodeField == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="lanyard", charset="UTF-8"`)
	}
}

// handleIntrospect is RFC 7662 token introspection, for authenticated clients.
// A client learns about its own tokens only; a resource server (config
// introspection: true) about every client's. Another client's token is
// "active": false, exactly like an unknown one (RFC 7662 §2.2 lets the
// server answer so), so a rogue relying party cannot tell a live token of
// another client from a dead one.
func (p *Provider) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	w.Header().Set("Cache-Control", "no-store")
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		p.oauth.WriteIntrospectionError(ctx, w, fosite.ErrInvalidRequest.WithHint("The request body could not be read."))
		return
	}
	ir, err := p.oauth.NewIntrospectionRequest(ctx, r, newSession())
	if err != nil {
		p.logOAuthError("introspect", err)
		setWWWAuthenticate(w, err)
		p.oauth.WriteIntrospectionError(ctx, w, err)
		return
	}
	if ir.IsActive() {
		owner := ir.GetAccessRequester().GetClient().GetID()
		if caller := p.introspectingClient(ctx, r); caller == nil || caller.id != owner && !caller.introspection {
			callerID := ""
			if caller != nil {
				callerID = caller.id
			}
			detail, _ := json.Marshal(map[string]string{"owner": owner})
			p.audit(ctx, &store.AuditEvent{Event: store.EventIntrospectRefused, ClientID: callerID,
				ClientAddr: authn.ClientAddr(r), UserAgent: r.UserAgent(), Detail: detail})
			ir = &fosite.IntrospectionResponse{Active: false}
		}
	}
	p.oauth.WriteIntrospectionResponse(ctx, w, ir)
}

// introspectingClient is the client an introspection request authenticated
// as (fosite has checked the credentials): the Basic user, or the client of
// the bearer access token. nil when it cannot be told.
func (p *Provider) introspectingClient(ctx context.Context, r *http.Request) *client {
	id := ""
	if bearer := fosite.AccessTokenFromRequest(r); bearer != "" {
		_, ar, err := p.oauth.IntrospectToken(ctx, bearer, fosite.AccessToken, newSession())
		if err != nil {
			return nil
		}
		id = ar.GetClient().GetID()
	} else if u, _, ok := r.BasicAuth(); ok {
		var err error
		if id, err = url.QueryUnescape(u); err != nil {
			return nil
		}
	}
	c, ok := p.clients.get(id)
	if !ok {
		return nil
	}
	return c
}

// handleRevoke is RFC 7009 token revocation. When storage cannot be reached the
// answer is 503: a 200 would make the client believe the token is dead.
func (p *Provider) handleRevoke(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := p.guardClientCredentials(r); err != nil {
		p.logOAuthError("revoke", err)
		setWWWAuthenticate(w, err)
		p.oauth.WriteAccessError(ctx, w, nil, err)
		return
	}
	ctx, seen := withGrantsSeen(ctx)
	err := p.oauth.NewRevocationRequest(ctx, r)
	switch {
	case err == nil:
		// fosite revoked the family of the first live token it found (the
		// client's own, or it would have refused); an unknown or dead
		// token changed nothing and is not audited.
		if g, ok := seen.first(func(g grantSeen) bool { return g.active }); ok {
			detail, _ := json.Marshal(map[string]string{"grant": grantNames[g.kind], "request": g.requestID})
			p.audit(ctx, &store.AuditEvent{Event: store.EventTokenRevoke, UserID: g.subject, ClientID: g.clientID,
				ClientAddr: authn.ClientAddr(r), Detail: detail})
		}
	case errors.Is(err, fosite.ErrTemporarilyUnavailable):
		p.log.Error("revoke: storage unavailable", "err", err)
		p.oauth.WriteAccessError(ctx, w, nil, fosite.ErrTemporarilyUnavailable)
		return
	default:
		p.logOAuthError("revoke", err)
		setWWWAuthenticate(w, err)
		rfc := fosite.ErrorToRFC6749Error(err)
		if rfc.CodeField >= 500 {
			p.oauth.WriteAccessError(ctx, w, nil, fosite.ErrTemporarilyUnavailable)
			return
		}
	}
	p.oauth.WriteRevocationResponse(ctx, w, err)
}

// validClaims reports a claims parameter parseClaims accepts (or none).
func validClaims(raw string) bool {
	_, err := parseClaims(raw)
	return err == nil
}

// handlePAR is RFC 9126 pushed authorization: the same guards as /authorize,
// then fosite validates and stores the request for 90 seconds, once.
func (p *Provider) handlePAR(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	empty := fosite.NewAuthorizeRequest()
	fail := func(ar fosite.AuthorizeRequester, err error) {
		p.logOAuthError("par", err)
		setWWWAuthenticate(w, err)
		p.oauth.WritePushedAuthorizeError(ctx, w, ar, err)
	}
	if err := p.guardClientCredentials(r); err != nil {
		fail(empty, err)
		return
	}
	f := r.PostForm
	switch {
	case f.Has("request"):
		fail(empty, fosite.ErrRequestNotSupported.WithHint("Request objects are not supported."))
		return
	case f.Get("response_mode") != "" && f.Get("response_mode") != "query":
		fail(empty, fosite.ErrUnsupportedResponseMode.WithHint("Only response_mode=query is supported."))
		return
	case hasControlChars(f.Get("state")) || hasControlChars(f.Get("nonce")):
		fail(empty, fosite.ErrInvalidRequest.WithHint("state and nonce must not contain control characters."))
		return
	case !validPrompt(f.Get("prompt")):
		fail(empty, fosite.ErrInvalidRequest.WithHint("prompt must be none (alone), or any of login, consent and select_account."))
		return
	case !validClaims(f.Get("claims")):
		fail(empty, fosite.ErrInvalidRequest.WithHint("The claims parameter must be a JSON object (OpenID Connect Core 5.5)."))
		return
	case (f.Get("code_challenge") != "" || f.Get("code_challenge_method") != "") && f.Get("code_challenge_method") != "S256":
		// Checked again at /authorize, but a request that can never succeed is
		// better refused when it is pushed.
		fail(empty, fosite.ErrInvalidRequest.WithHint("Clients must use code_challenge_method=S256."))
		return
	}
	ar, err := p.oauth.NewPushedAuthorizeRequest(ctx, r)
	if err != nil {
		fail(ar, err)
		return
	}
	c, ok := ar.GetClient().(*client)
	ru := ar.GetRequestForm().Get("redirect_uri")
	if !ok || !(slices.Contains(c.redirectURIs, ru) || ru == "" && len(c.redirectURIs) == 1) {
		fail(ar, fosite.ErrInvalidRequest.WithHint("The redirect_uri must be one of the client's registered redirect URIs, exactly."))
		return
	}
	resp, err := p.oauth.NewPushedAuthorizeResponse(ctx, ar, newSession())
	if err != nil {
		fail(ar, err)
		return
	}
	p.oauth.WritePushedAuthorizeResponse(ctx, w, ar, resp)
}
