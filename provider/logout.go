package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/ory/fosite/token/jwt"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/provider/authn"
	"github.com/lanyard-idp/lanyard/provider/store"
	"github.com/lanyard-idp/lanyard/templates"
)

// signedOutPage is the data of signed_out.html: either the confirmation form
// (Confirm) or the "you are signed out" page.
type signedOutPage struct {
	templates.Base
	Confirm               bool
	Action                string
	ClientID              string
	ClientName            string
	PostLogoutRedirectURI string
	State                 string
	// FrontChannel are the front-channel logout URLs of the session's
	// relying parties, framed by the signed-out page; Continue is where the
	// browser goes next (the registered post_logout_redirect_uri) once
	// they have loaded.
	FrontChannel []string
	Continue     string
}

// handleEndSession is OpenID Connect RP-Initiated Logout 1.0. A valid
// id_token_hint (ours, any age) signs the browser out at once, also by GET, as
// the specification allows; without one the officer confirms with a POST that
// only a same-origin page can send. The browser returns to
// post_logout_redirect_uri only when it is registered, exactly, for the client.
func (p *Provider) handleEndSession(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	w.Header().Set("Cache-Control", "no-store")
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	}
	bad := func(msg string) {
		p.serveError(w, r, &templates.Error{Status: http.StatusBadRequest, Title: "Sign-out request not valid",
			Message: msg, Code: "invalid_request"})
	}
	if len(r.URL.RawQuery) > maxAuthorizeQuery {
		bad("The sign-out request is too large.")
		return
	}
	if err := r.ParseForm(); err != nil {
		bad("The sign-out request could not be read.")
		return
	}
	f := r.Form
	if k := duplicated(f); k != "" {
		bad("The sign-out request repeats a parameter.")
		return
	}
	hint := f.Get("id_token_hint")
	clientID := f.Get("client_id")
	redirect := f.Get("post_logout_redirect_uri")
	state := f.Get("state")
	if hasControlChars(state) {
		bad("The sign-out request carries a state that is not valid.")
		return
	}

	hintSub := ""
	if hint != "" {
		claims, err := p.verifyIDTokenHint(ctx, hint)
		if err != nil {
			p.log.Info("end_session: id_token_hint refused", "err", err)
			bad("The sign-out request carries a token (id_token_hint) that this service did not issue, or that was altered.")
			return
		}
		aud := audiences(claims)
		switch {
		case clientID != "" && !slices.Contains(aud, clientID):
			bad("The sign-out request names another application than its token.")
			return
		case clientID == "" && len(aud) == 1:
			clientID = aud[0]
		case clientID == "":
			clientID, _ = claims["azp"].(string)
		}
		hintSub, _ = claims["sub"].(string)
	}
	var c *client
	if clientID != "" {
		var ok bool
		if c, ok = p.clients.get(clientID); !ok {
			bad("The application that sent you here is not registered with this sign-in service.")
			return
		}
	}
	// Each refusal says its own cause: an address can be checked only
	// against the application that asks (client_id or id_token_hint).
	switch {
	case redirect == "":
	case c == nil:
		bad("The sign-out request asks to send you back to an application, but does not say which application it comes from, so the address cannot be checked.")
		return
	case !slices.Contains(c.postLogoutURIs, redirect):
		bad("The application asked to send you back to an address it has not registered.")
		return
	}

	confirmed := false
	if hint != "" {
		// The hint proves which application asks; sign out at once unless the
		// browser belongs to someone else than the token's subject.
		b, err := p.journey.Browser(r)
		confirmed = err == nil && (b.UserID == "" || b.UserID == hintSub)
	}
	if !confirmed && r.Method == http.MethodPost && f.Get("confirm") == "yes" {
		if err := p.cop.Check(r); err != nil {
			p.serveError(w, r, &templates.Error{Status: http.StatusForbidden, Title: "Sign-out refused",
				Message: "This sign-out form was not sent from this site."})
			return
		}
		confirmed = true
	}
	if !confirmed {
		data := signedOutPage{Base: p.base("Sign out"), Confirm: true, Action: pathEndSession,
			PostLogoutRedirectURI: redirect, State: state}
		if c != nil {
			data.ClientID, data.ClientName = c.id, c.displayName()
		}
		p.render(w, http.StatusOK, "signed_out", data)
		return
	}

	// The session's relying parties with a front-channel logout URI are
	// framed by the signed-out page; the others hear through the back
	// channel, queued by the sign-out itself.
	frames, origins := p.frontChannel(r)
	userID, err := p.journey.SignOut(w, r)
	if err != nil {
		p.serveError(w, r, &templates.Error{Status: http.StatusServiceUnavailable, Title: "Temporarily unavailable",
			Message: "Signing out failed. Please try again in a moment.", Code: "temporarily_unavailable",
			Cause: fmt.Errorf("end_session: sign out: %w", err)})
		return
	}
	p.nudgeLogouts()
	detail, _ := json.Marshal(map[string]string{"initiator": "relying_party"})
	ev := &store.AuditEvent{Event: store.EventLogout, UserID: userID, ClientAddr: authn.ClientAddr(r), UserAgent: r.UserAgent(), Detail: detail}
	if c != nil {
		ev.ClientID = c.id
	}
	p.audit(ctx, ev)

	next := ""
	if redirect != "" {
		if u, err := url.Parse(redirect); err == nil {
			if state != "" {
				q := u.Query()
				q.Set("state", state)
				u.RawQuery = q.Encode()
			}
			next = u.String()
		}
	}
	if next != "" && len(frames) == 0 {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	p.render(w, http.StatusOK, "signed_out", signedOutPage{Base: p.base("Signed out"), FrontChannel: frames, Continue: next}, origins...)
}

// frontChannel lists the front-channel logout URLs of the relying parties
// that received tokens in the browser's session (Front-Channel Logout 1.0
// §2: iss and sid added when the client requires them), and their origins
// for the page's frame-src.
func (p *Provider) frontChannel(r *http.Request) (frames, origins []string) {
	b, err := p.journey.Browser(r)
	if err != nil || b.SessionID == "" {
		return nil, nil
	}
	recs, err := p.store.SessionClients(r.Context(), b.SessionID)
	if err != nil {
		p.log.Warn("end_session: cannot list the session's relying parties", "err", err)
		return nil, nil
	}
	for _, rec := range recs {
		c, ok := p.clients.get(rec.ClientID)
		if !ok {
			continue
		}
		cc := config.Client{FrontchannelLogoutURI: c.frontchannelURI, FrontchannelLogoutSessionRequired: c.frontchannelSessionReq}
		f, o, ok := cc.FrontchannelLogoutFrame(p.issuer, rec.SID)
		if !ok {
			continue
		}
		if !slices.Contains(frames, f) {
			frames = append(frames, f)
		}
		if !slices.Contains(origins, o) {
			origins = append(origins, o)
		}
	}
	return frames, origins
}

var errHintIssuer = errors.New("id_token_hint was issued by another issuer")

// verifyIDTokenHint checks that the hint is an ID token signed by one of our
// published keys and issued by us. Expiry is ignored (a hint is usually an old
// token); a bad signature, alg none, an unknown kid or a foreign issuer is not.
func (p *Provider) verifyIDTokenHint(ctx context.Context, hint string) (jwt.MapClaims, error) {
	tok, err := p.signer.Decode(ctx, hint)
	var ve *jwt.ValidationError
	if err != nil && !(errors.As(err, &ve) && ve.Errors == jwt.ValidationErrorExpired) {
		return nil, err
	}
	if tok == nil || tok.Claims == nil {
		return nil, errUnknownKey
	}
	if typ, _ := tok.Header["typ"].(string); strings.EqualFold(typ, "logout+jwt") {
		return nil, errors.New("a logout token is not an ID token")
	}
	if iss, _ := tok.Claims["iss"].(string); iss != p.issuer {
		return nil, errHintIssuer
	}
	return tok.Claims, nil
}

func audiences(claims jwt.MapClaims) []string {
	switch aud := claims["aud"].(type) {
	case string:
		return []string{aud}
	case []any:
		out := make([]string, 0, len(aud))
		for _, a := range aud {
			if s, ok := a.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case []string:
		return aud
	}
	return nil
}

// render writes a provider page with the headers of every page
// (templates.SetPageHeaders); frames are the origins it may frame.
func (p *Provider) render(w http.ResponseWriter, status int, page string, data any, frames ...string) {
	templates.SetPageHeaders(w.Header(), p.cfg.Dev, frames...)
	if err := p.pages.Render(w, status, page, data); err != nil {
		p.log.Error("render page", "page", page, "err", err)
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
	}
}
