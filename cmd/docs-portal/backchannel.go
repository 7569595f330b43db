package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
)

// Back-channel logout receiver (OpenID Connect Back-Channel Logout 1.0):
// Lanyard POSTs a logout token here when an officer's session ends there —
// a sign-out in another portal, "sign out everywhere", an administrator's
// sign-out, expiry — and the portal ends its own sessions of that Lanyard
// session (sid) or, without a sid, of that officer (sub).

// backchannelEvent is the event a logout token must carry (§2.4).
const backchannelEvent = "http://schemas.openid.net/event/backchannel-logout"

// maxLogoutTokenAge bounds iat: an old token is refused even before its
// exp, and remembered jtis can be forgotten after it.
const maxLogoutTokenAge = 10 * time.Minute

// backchannelLogout validates the logout token (§2.6) and ends the
// matching sessions. 200 when it is valid (whether or not a session
// matched), 400 otherwise; never cached.
func (a *App) backchannelLogout(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		a.logoutError(w, "the request body could not be read", err)
		return
	}
	raw := r.PostForm.Get("logout_token")
	if raw == "" {
		a.logoutError(w, "no logout_token", nil)
		return
	}
	lt, err := a.verifyLogoutToken(r, raw)
	if err != nil {
		a.logoutError(w, "the logout token is not valid", err)
		return
	}
	n := a.endSessions(lt.SID, lt.Subject)
	a.Logger.Info("docs-portal: back-channel logout", "sid", lt.SID != "", "sessions_ended", n)
	w.WriteHeader(http.StatusOK)
}

func (a *App) logoutError(w http.ResponseWriter, desc string, err error) {
	if err != nil {
		a.Logger.Warn("docs-portal: back-channel logout refused", "err", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_request", "error_description": desc})
}

type logoutToken struct {
	Subject string
	SID     string
}

// verifyLogoutToken checks, in the order of §2.6: a signed JWT of typ
// logout+jwt, verified with the issuer's published keys (go-oidc's key
// set), from the issuer, for this client, not expired, issued recently,
// carrying the back-channel logout event, a sid or a sub, no nonce, and a
// jti not seen before.
func (a *App) verifyLogoutToken(r *http.Request, raw string) (*logoutToken, error) {
	p, err := a.discover(r)
	if err != nil {
		return nil, err
	}
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		return nil, fmt.Errorf("not a signed JWT: %w", err)
	}
	if typ, _ := jws.Signatures[0].Protected.ExtraHeaders[jose.HeaderType].(string); typ != "logout+jwt" {
		return nil, fmt.Errorf("typ %q is not logout+jwt", typ)
	}
	ctx := oidc.ClientContext(r.Context(), a.Client)
	// The ID token verifier checks the signature against the issuer's JWKS,
	// iss, aud and exp: the same rules hold for a logout token.
	tok, err := p.Verifier(&oidc.Config{ClientID: a.cfg.ClientID, Now: a.Now}).Verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	var c struct {
		Events map[string]json.RawMessage `json:"events"`
		SID    string                     `json:"sid"`
		JTI    string                     `json:"jti"`
		Nonce  *json.RawMessage           `json:"nonce"`
	}
	if err := tok.Claims(&c); err != nil {
		return nil, err
	}
	now := a.Now()
	switch {
	case tok.IssuedAt.IsZero() || now.Sub(tok.IssuedAt) > maxLogoutTokenAge || tok.IssuedAt.Sub(now) > time.Minute:
		return nil, errors.New("iat is missing or not recent")
	case c.Events[backchannelEvent] == nil:
		return nil, errors.New("no back-channel logout event")
	case c.Nonce != nil:
		return nil, errors.New("a logout token must not carry a nonce")
	case c.SID == "" && tok.Subject == "":
		return nil, errors.New("neither sid nor sub")
	case c.JTI == "":
		return nil, errors.New("no jti")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for j, at := range a.logoutJTIs {
		if now.Sub(at) > maxLogoutTokenAge+time.Minute {
			delete(a.logoutJTIs, j)
		}
	}
	if _, seen := a.logoutJTIs[c.JTI]; seen {
		return nil, errors.New("jti replayed")
	}
	if len(a.logoutJTIs) < maxEntries {
		a.logoutJTIs[c.JTI] = now
	}
	return &logoutToken{Subject: tok.Subject, SID: c.SID}, nil
}

// endSessions forgets the portal's sessions of a Lanyard session (sid) or,
// without a sid, of an officer (sub), and returns how many ended.
func (a *App) endSessions(sid, sub string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for id, s := range a.sessions {
		ssid, _ := s.claims["sid"].(string)
		ssub, _ := s.claims["sub"].(string)
		if (sid != "" && ssid == sid) || (sid == "" && sub != "" && ssub == sub) {
			delete(a.sessions, id)
			n++
		}
	}
	return n
}
