package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/handler/pkce"
	"github.com/ory/fosite/storage"

	"github.com/lanyard-idp/lanyard/provider/store"
)

// Storage adapts provider/store to fosite. Every kind fosite stores (code,
// PKCE, OIDC session, access and refresh token, PAR) goes through one typed
// save/load path: an OAuthRow whose Data is the JSON of a record. The store
// hashes every signature, so no code or token is kept in the clear.
//
// Storage is the object handed to compose.Compose, so fosite finds
// storage.Transactional on it and runs the code exchange and the refresh
// rotation inside one store transaction; every store method joins the
// transaction carried in the context.
type Storage struct {
	store   *store.Store
	clients *clientManager
	now     func() time.Time
	group   *groupCommit

	// fault, when set (tests only), is called before each write with the row
	// kind (or "invalidate", "rotate") and may fail or delay it: tests use it
	// to show that a failed exchange leaves nothing half-written and to widen
	// race windows.
	fault atomic.Pointer[func(op string) error]
}

var (
	_ storage.Transactional              = (*Storage)(nil)
	_ fosite.Storage                     = (*Storage)(nil)
	_ fosite.PARStorage                  = (*Storage)(nil)
	_ oauth2.CoreStorage                 = (*Storage)(nil)
	_ oauth2.TokenRevocationStorage      = (*Storage)(nil)
	_ openid.OpenIDConnectRequestStorage = (*Storage)(nil)
	_ pkce.PKCERequestStorage            = (*Storage)(nil)
)

// errLostRace marks a storage error that means "another request won": a code
// invalidated or a refresh token rotated concurrently, or a serialization
// failure. The token endpoint turns it into invalid_grant; fosite alone would
// answer server_error (500).
var errLostRace = errors.New("lost a race with a concurrent request")

func lostRace(cause error) error {
	return fmt.Errorf("%w: %w", errLostRace, fosite.ErrSerializationFailure.WithWrap(cause))
}

// fositeErr maps the store's errors to fosite's.
func fositeErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return fosite.ErrNotFound.WithWrap(err)
	case errors.Is(err, store.ErrSerialization):
		return lostRace(err)
	}
	return err
}

// Transactions (fosite spells it BeginTX).

func (s *Storage) BeginTX(ctx context.Context) (context.Context, error) {
	tx, err := s.store.BeginTx(ctx)
	if err != nil {
		return ctx, fositeErr(err)
	}
	return context.WithValue(tx, inTxKey{}, true), nil
}

// inTxKey marks a context that carries a transaction begun by BeginTX.
type inTxKey struct{}

func (s *Storage) Commit(ctx context.Context) error   { return fositeErr(s.store.Commit(ctx)) }
func (s *Storage) Rollback(ctx context.Context) error { return fositeErr(s.store.Rollback(ctx)) }

// Clients.

func (s *Storage) GetClient(_ context.Context, id string) (fosite.Client, error) {
	c, ok := s.clients.get(id)
	if !ok {
		return nil, fosite.ErrNotFound.WithHint("Unknown client.")
	}
	return c, nil
}

// ClientAssertionJWTValid reports a private_key_jwt assertion id that was seen
// before and has not expired yet.
func (s *Storage) ClientAssertionJWTValid(ctx context.Context, jti string) error {
	row, err := s.store.GetOAuth(ctx, store.KindJTI, jti)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return fositeErr(err)
	case !row.ExpiresAt.IsZero() && !s.now().Before(row.ExpiresAt):
		return nil // expired: the assertion itself is refused for its exp
	}
	return fosite.ErrJTIKnown
}

// SetClientAssertionJWT records an assertion id until it expires (the
// store's garbage collection then removes it); a concurrent duplicate loses.
func (s *Storage) SetClientAssertionJWT(ctx context.Context, jti string, exp time.Time) error {
	err := s.store.CreateOAuth(ctx, &store.OAuthRow{
		Kind: store.KindJTI, Signature: jti, RequestID: jti, Active: true,
		RequestedAt: s.now(), ExpiresAt: exp.UTC(),
	})
	if errors.Is(err, store.ErrConflict) {
		return fosite.ErrJTIKnown
	}
	return fositeErr(err)
}

func (s *Storage) injectFault(op string) error {
	if f := s.fault.Load(); f != nil {
		return (*f)(op)
	}
	return nil
}

// record is the serialized fosite request: what fosite needs to continue a
// flow later, and nothing secret (client_secret, code_verifier, assertions and
// tokens are dropped from the form).
type record struct {
	ID                string     `json:"id"`
	RequestedAt       time.Time  `json:"requested_at"`
	ClientID          string     `json:"client_id"`
	RequestedScopes   []string   `json:"requested_scopes,omitempty"`
	GrantedScopes     []string   `json:"granted_scopes,omitempty"`
	RequestedAudience []string   `json:"requested_audience,omitempty"`
	GrantedAudience   []string   `json:"granted_audience,omitempty"`
	Form              url.Values `json:"form,omitempty"`
	Session           *session   `json:"session,omitempty"`
	// Authorize is set for pushed authorization requests, which fosite hydrates
	// back into a full authorize request.
	Authorize *authorizeRecord `json:"authorize,omitempty"`
}

type authorizeRecord struct {
	ResponseTypes       []string `json:"response_types,omitempty"`
	RedirectURI         string   `json:"redirect_uri,omitempty"`
	State               string   `json:"state,omitempty"`
	ResponseMode        string   `json:"response_mode,omitempty"`
	DefaultResponseMode string   `json:"default_response_mode,omitempty"`
}

// secretParams never reach the database.
var secretParams = []string{
	"client_secret", "client_assertion", "client_assertion_type",
	"code_verifier", "code", "refresh_token", "token", "access_token", "password",
}

func sessionOf(r fosite.Requester) *session {
	if s, ok := r.GetSession().(*session); ok && s != nil {
		return s
	}
	return newSession()
}

func sidOf(sess *session) string {
	if sess.Claims == nil {
		return ""
	}
	sid, _ := sess.Claims.Extra["sid"].(string)
	return sid
}

// save is the one write path for every kind.
func (s *Storage) save(ctx context.Context, kind, signature, accessSignature string, r fosite.Requester, expires fosite.TokenType) error {
	if err := s.injectFault(kind); err != nil {
		return err
	}
	sess := sessionOf(r)
	form := url.Values{}
	for k, v := range r.GetRequestForm() {
		form[k] = v
	}
	for _, k := range secretParams {
		delete(form, k)
	}
	rec := record{
		ID:                r.GetID(),
		RequestedAt:       r.GetRequestedAt().UTC(),
		ClientID:          r.GetClient().GetID(),
		RequestedScopes:   r.GetRequestedScopes(),
		GrantedScopes:     r.GetGrantedScopes(),
		RequestedAudience: r.GetRequestedAudience(),
		GrantedAudience:   r.GetGrantedAudience(),
		Form:              form,
		Session:           sess,
	}
	if ar, ok := r.(fosite.AuthorizeRequester); ok && kind == store.KindPAR {
		a := &authorizeRecord{
			ResponseTypes:       ar.GetResponseTypes(),
			State:               ar.GetState(),
			ResponseMode:        string(ar.GetResponseMode()),
			DefaultResponseMode: string(ar.GetDefaultResponseMode()),
		}
		if u := ar.GetRedirectURI(); u != nil {
			a.RedirectURI = u.String()
		}
		rec.Authorize = a
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("serialize %s: %w", kind, err)
	}
	exp := sess.GetExpiresAt(expires)
	if exp.IsZero() && expires == fosite.PushedAuthorizeRequestContext {
		exp = s.now().Add(parLifespan)
	}
	row := &store.OAuthRow{
		Kind:            kind,
		Signature:       signature,
		RequestID:       r.GetID(),
		ClientID:        rec.ClientID,
		Subject:         sess.GetSubject(),
		SessionID:       sidOf(sess),
		Active:          true,
		AccessSignature: accessSignature,
		RequestedAt:     rec.RequestedAt,
		ExpiresAt:       exp.UTC(),
		Data:            data,
	}
	ev, audited := issueAudit(ctx)
	if !audited || kind != store.KindAccess {
		return fositeErr(s.store.CreateOAuth(ctx, row))
	}
	if ctx.Value(inTxKey{}) == nil {
		return fositeErr(s.group.write(row, ev))
	}
	if err := s.store.CreateOAuth(ctx, row); err != nil {
		return fositeErr(err)
	}
	return fositeErr(s.store.AppendAudit(ctx, ev))
}

// load is the one read path: the row (for its Active flag and expiry) and the
// hydrated request. A request whose client has left the configuration is not
// found: its codes and tokens die with the client.
//
// When fosite passes a session (into), the stored session is copied into it:
// fosite validates a code's expiry against the session it passed in, not the
// one returned.
func (s *Storage) load(ctx context.Context, kind, signature string, into fosite.Session) (*store.OAuthRow, fosite.Requester, error) {
	row, err := s.store.GetOAuth(ctx, kind, signature)
	if err != nil {
		return nil, nil, fositeErr(err)
	}
	var rec record
	if err := json.Unmarshal(row.Data, &rec); err != nil {
		return nil, nil, fmt.Errorf("deserialize %s: %w", kind, err)
	}
	c, ok := s.clients.get(rec.ClientID)
	if !ok {
		return nil, nil, fosite.ErrNotFound.WithHint("The client of this request no longer exists.")
	}
	sess := rec.Session
	if sess == nil {
		sess = newSession()
	}
	if dst, ok := into.(*session); ok && dst != nil {
		hydrate(dst, sess)
		sess = dst
	}
	req := &fosite.Request{
		ID:                rec.ID,
		RequestedAt:       rec.RequestedAt,
		Client:            c,
		RequestedScope:    fosite.Arguments(rec.RequestedScopes),
		GrantedScope:      fosite.Arguments(rec.GrantedScopes),
		RequestedAudience: fosite.Arguments(rec.RequestedAudience),
		GrantedAudience:   fosite.Arguments(rec.GrantedAudience),
		Form:              rec.Form,
		Session:           sess,
	}
	if req.Form == nil {
		req.Form = url.Values{}
	}
	if kind != store.KindPAR || rec.Authorize == nil {
		return row, req, nil
	}
	ar := fosite.NewAuthorizeRequest()
	ar.Request = *req
	ar.ResponseTypes = fosite.Arguments(rec.Authorize.ResponseTypes)
	ar.State = rec.Authorize.State
	ar.ResponseMode = fosite.ResponseModeType(rec.Authorize.ResponseMode)
	ar.DefaultResponseMode = fosite.ResponseModeType(rec.Authorize.DefaultResponseMode)
	if rec.Authorize.RedirectURI != "" {
		u, err := url.Parse(rec.Authorize.RedirectURI)
		if err != nil {
			return nil, nil, fmt.Errorf("deserialize par redirect_uri: %w", err)
		}
		ar.RedirectURI = u
	}
	return row, ar, nil
}

// hydrate copies a stored session into the one fosite passed in. Expiry times
// fosite already set on it (the new access and refresh tokens', set between its
// two reads of a code) are kept, as a JSON decode into it would keep them.
func hydrate(dst, stored *session) {
	kept := dst.ExpiresAt
	*dst = *stored
	dst.ExpiresAt = make(map[fosite.TokenType]time.Time, len(kept)+len(stored.ExpiresAt))
	for k, v := range stored.ExpiresAt {
		dst.ExpiresAt[k] = v
	}
	for k, v := range kept {
		if _, ok := dst.ExpiresAt[k]; !ok {
			dst.ExpiresAt[k] = v
		}
	}
}

// Authorization codes.

func (s *Storage) CreateAuthorizeCodeSession(ctx context.Context, signature string, r fosite.Requester) error {
	return s.save(ctx, store.KindCode, signature, "", r, fosite.AuthorizeCode)
}

// GetAuthorizeCodeSession returns an invalidated code's request together with
// fosite.ErrInvalidatedAuthorizeCode: fosite needs the request id to revoke
// what the first redemption issued. Every replay does that, the issuing
// client's own retry included (RFC 6749 §4.1.2; the conformance suite's
// oidcc-codereuse-30seconds): a client that lost the first response has lost
// those tokens anyway, and a replay proving the PKCE verifier may still be a
// thief who holds it.
func (s *Storage) GetAuthorizeCodeSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	row, req, err := s.load(ctx, store.KindCode, signature, session)
	if err != nil {
		return nil, err
	}
	noteGrant(ctx, row)
	if !row.Active {
		return req, fosite.ErrInvalidatedAuthorizeCode
	}
	return req, nil
}

// InvalidateAuthorizeCodeSession uses the code exactly once: the conditional
// update fails for every redemption but the first, also under concurrency. The
// PKCE record goes with it, and only then (see DeletePKCERequestSession).
func (s *Storage) InvalidateAuthorizeCodeSession(ctx context.Context, signature string) error {
	if err := s.injectFault("invalidate"); err != nil {
		return err
	}
	if err := s.store.DeactivateOAuth(ctx, store.KindCode, signature); err != nil {
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			return lostRace(err)
		}
		return fositeErr(err)
	}
	// The PKCE record dies with the code (see DeletePKCERequestSession).
	if err := s.store.DeactivateOAuth(ctx, store.KindPKCE, signature); err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrConflict) {
		return fositeErr(err)
	}
	return nil
}

// PKCE.

func (s *Storage) CreatePKCERequestSession(ctx context.Context, signature string, r fosite.Requester) error {
	return s.save(ctx, store.KindPKCE, signature, "", r, fosite.AuthorizeCode)
}

func (s *Storage) GetPKCERequestSession(ctx context.Context, signature string, _ fosite.Session) (fosite.Requester, error) {
	row, req, err := s.load(ctx, store.KindPKCE, signature, nil)
	if err != nil {
		return nil, err
	}
	noteGrant(ctx, row)
	if !row.Active { // its code was used
		return nil, fosite.ErrNotFound
	}
	return req, nil
}

// DeletePKCERequestSession is deliberately a no-op. fosite v0.49.0 calls it
// before comparing the verifier, so a wrong verifier would delete the
// challenge and a second request without any verifier would then pass (a PKCE
// downgrade). The record dies with the code (InvalidateAuthorizeCodeSession).
func (s *Storage) DeletePKCERequestSession(context.Context, string) error { return nil }

// OpenID Connect sessions (keyed by the code; the store hashes it).

func (s *Storage) CreateOpenIDConnectSession(ctx context.Context, code string, r fosite.Requester) error {
	return s.save(ctx, store.KindOIDC, code, "", r, fosite.AuthorizeCode)
}

func (s *Storage) GetOpenIDConnectSession(ctx context.Context, code string, _ fosite.Requester) (fosite.Requester, error) {
	_, req, err := s.load(ctx, store.KindOIDC, code, nil)
	if err != nil {
		return nil, err
	}
	return req, nil
}

func (s *Storage) DeleteOpenIDConnectSession(ctx context.Context, code string) error {
	if err := s.store.DeleteOAuth(ctx, store.KindOIDC, code); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fositeErr(err)
	}
	return nil
}

// Access tokens.

func (s *Storage) CreateAccessTokenSession(ctx context.Context, signature string, r fosite.Requester) error {
	return s.save(ctx, store.KindAccess, signature, "", r, fosite.AccessToken)
}

func (s *Storage) GetAccessTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	row, req, err := s.load(ctx, store.KindAccess, signature, session)
	if err != nil {
		return nil, err
	}
	noteGrant(ctx, row)
	if !row.Active {
		return req, fosite.ErrInactiveToken
	}
	return req, nil
}

func (s *Storage) DeleteAccessTokenSession(ctx context.Context, signature string) error {
	if err := s.store.DeleteOAuth(ctx, store.KindAccess, signature); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fositeErr(err)
	}
	return nil
}

// Refresh tokens.

func (s *Storage) CreateRefreshTokenSession(ctx context.Context, signature, accessSignature string, r fosite.Requester) error {
	return s.save(ctx, store.KindRefresh, signature, accessSignature, r, fosite.RefreshToken)
}

// GetRefreshTokenSession returns a used (rotated or revoked) token's request
// together with fosite.ErrInactiveToken, never a nil request: fosite needs the
// request id to revoke the whole family on reuse (and v0.49.0 panics on nil).
func (s *Storage) GetRefreshTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	row, req, err := s.load(ctx, store.KindRefresh, signature, session)
	if err != nil {
		return nil, err
	}
	noteGrant(ctx, row)
	if !row.Active {
		return req, fosite.ErrInactiveToken
	}
	return req, nil
}

// DeleteRefreshTokenSession keeps the row but deactivates it, so that a later
// reuse is still recognised as reuse.
func (s *Storage) DeleteRefreshTokenSession(ctx context.Context, signature string) error {
	err := s.store.DeactivateOAuth(ctx, store.KindRefresh, signature)
	if err != nil && !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) {
		return fositeErr(err)
	}
	return nil
}

// RotateRefreshToken retires the presented refresh token (conditionally: of
// two concurrent refreshes only one gets past this) and the access tokens of
// its family, inside the transaction that then stores their successors.
func (s *Storage) RotateRefreshToken(ctx context.Context, requestID, signature string) error {
	if err := s.injectFault("rotate"); err != nil {
		return err
	}
	if err := s.store.DeactivateOAuth(ctx, store.KindRefresh, signature); err != nil {
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			return lostRace(err)
		}
		return fositeErr(err)
	}
	return fositeErr(s.store.DeactivateOAuthByRequestID(ctx, store.KindAccess, requestID))
}

func (s *Storage) RevokeRefreshToken(ctx context.Context, requestID string) error {
	return fositeErr(s.store.DeactivateOAuthByRequestID(ctx, store.KindRefresh, requestID))
}

func (s *Storage) RevokeAccessToken(ctx context.Context, requestID string) error {
	return fositeErr(s.store.DeactivateOAuthByRequestID(ctx, store.KindAccess, requestID))
}

// Pushed authorization requests.

func (s *Storage) CreatePARSession(ctx context.Context, requestURI string, r fosite.AuthorizeRequester) error {
	return s.save(ctx, store.KindPAR, requestURI, "", r, fosite.PushedAuthorizeRequestContext)
}

// GetPARSession consumes the pushed request: the conditional deactivation lets
// exactly one /authorize use a request_uri, also under concurrency. An
// expired or used request_uri is not found.
func (s *Storage) GetPARSession(ctx context.Context, requestURI string) (fosite.AuthorizeRequester, error) {
	if err := s.store.DeactivateOAuth(ctx, store.KindPAR, requestURI); err != nil {
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			return nil, fosite.ErrNotFound.WithWrap(err)
		}
		return nil, fositeErr(err)
	}
	row, req, err := s.load(ctx, store.KindPAR, requestURI, nil)
	if err != nil {
		return nil, err
	}
	if !row.ExpiresAt.IsZero() && !row.ExpiresAt.After(s.now()) {
		return nil, fosite.ErrNotFound.WithHint("The request_uri has expired.")
	}
	ar, ok := req.(*fosite.AuthorizeRequest)
	if !ok {
		return nil, fosite.ErrNotFound
	}
	return ar, nil
}

func (s *Storage) DeletePARSession(ctx context.Context, requestURI string) error {
	if err := s.store.DeleteOAuth(ctx, store.KindPAR, requestURI); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fositeErr(err)
	}
	return nil
}
