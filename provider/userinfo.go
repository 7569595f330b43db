package provider

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/ory/fosite"

	"github.com/lanyard-idp/lanyard/provider/store"
)

// handleUserinfo returns the claims about the officer an access token was
// issued for: those of its scopes and those the claims parameter asked for
// (OIDC Core §5.3, §5.5; see claims.go).
func (p *Provider) handleUserinfo(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")

	tok := bearerToken(w, r)
	if tok == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="lanyard"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_request", "error_description": "No bearer token."})
		return
	}
	invalid := func(desc string) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="lanyard", error="invalid_token", error_description="`+desc+`"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token", "error_description": desc})
	}

	use, ar, err := p.oauth.IntrospectToken(ctx, tok, fosite.AccessToken, newSession())
	if err != nil || use != fosite.AccessToken {
		invalid("The access token is not valid.")
		return
	}
	if !ar.GetGrantedScopes().Has("openid") {
		w.Header().Set("WWW-Authenticate", `Bearer realm="lanyard", error="insufficient_scope", scope="openid"`)
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "insufficient_scope"})
		return
	}
	sub := ar.GetSession().GetSubject()
	if sub == "" {
		invalid("The access token was not issued for a user.")
		return
	}
	user, err := p.store.UserByID(ctx, sub)
	if errors.Is(err, store.ErrNotFound) || (err == nil && user.State == store.UserDisabled) {
		invalid("The account can no longer sign in.")
		return
	}
	if err != nil {
		p.log.Error("userinfo: load user", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "temporarily_unavailable"})
		return
	}
	c, _ := ar.GetClient().(*client)
	var requested *claimsRequest
	if sess, ok := ar.GetSession().(*session); ok {
		requested = sess.Requested
	}
	claims, err := p.userClaims(ctx, user, userinfoNames(c, ar.GetGrantedScopes(), requested))
	if err != nil {
		p.log.Error("userinfo: load claims", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "temporarily_unavailable"})
		return
	}
	claims["sub"] = user.ID
	writeJSON(w, http.StatusOK, claims)
}

// bearerToken reads the access token from the Authorization header or, for
// POST, the form body (RFC 6750 §2.1, §2.2); never from the URL query.
func bearerToken(w http.ResponseWriter, r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return ""
		}
		return strings.TrimSpace(tok)
	}
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
		if err := r.ParseForm(); err != nil {
			return ""
		}
		return r.PostForm.Get("access_token")
	}
	return ""
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"error":"server_error"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
