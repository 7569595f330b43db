package provider

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"sort"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/provider/store"
)

// Where claims go (OIDC Core §5.4, §5.5). The ID token carries what the
// specification puts there — iss, sub, aud, exp, iat, auth_time, nonce, acr,
// amr, at_hash, jti and sid (Back-Channel Logout §2.1) — and, about the
// officer, only what the client asked for: the claims request parameter's
// id_token member, or the client's id_token_claims in the configuration.
// Everything else about the officer is at userinfo: the claims of the
// granted scopes, the userinfo member of the claims parameter, and the
// accepted policy versions (lanyard_policies).
//
// Which claim needs which scope is config.ClaimScopes. A claim named in the
// claims parameter is released when the client is registered for its scope
// (the parameter asks for single claims, independently of the scopes of the
// request); a claim in id_token_claims only when its scope was granted.

// claimsRequest is what the claims parameter asked for, reduced to the
// claims Lanyard knows (unknown ones are ignored, never an error). It is
// kept with the grant, in the session, so userinfo and every refreshed ID
// token honour it.
type claimsRequest struct {
	UserInfo []string `json:"userinfo,omitempty"`
	IDToken  []string `json:"id_token,omitempty"`
	// ACR are the acr values asked for in id_token.acr (value or values);
	// ACREssential when it was marked essential (§5.5.1.1).
	ACR          []string `json:"acr,omitempty"`
	ACREssential bool     `json:"acr_essential,omitempty"`
}

var errBadClaims = errors.New("the claims parameter must be a JSON object whose userinfo and id_token members are objects")

// parseClaims reads the claims request parameter (OIDC Core §5.5). A value
// that is not a JSON object, or whose userinfo or id_token member is not
// one, is refused; claims Lanyard does not know, members other than those
// two, and individual requests that are neither null nor an object are
// ignored.
func parseClaims(raw string) (*claimsRequest, error) {
	if raw == "" {
		return nil, nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &top); err != nil || top == nil {
		return nil, errBadClaims
	}
	type individual struct {
		Essential bool     `json:"essential"`
		Value     *string  `json:"value"`
		Values    []string `json:"values"`
	}
	member := func(name string) (map[string]*individual, error) {
		m, ok := top[name]
		if !ok || string(m) == "null" {
			return nil, nil
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(m, &raw); err != nil {
			return nil, errBadClaims
		}
		out := map[string]*individual{}
		for k, v := range raw {
			var ind individual
			if string(v) != "null" && json.Unmarshal(v, &ind) != nil {
				continue // neither null nor an object: ignored
			}
			out[k] = &ind
		}
		return out, nil
	}
	userinfo, err := member("userinfo")
	if err != nil {
		return nil, err
	}
	idToken, err := member("id_token")
	if err != nil {
		return nil, err
	}
	req := &claimsRequest{UserInfo: knownClaims(userinfo), IDToken: knownClaims(idToken)}
	if acr := idToken["acr"]; acr != nil {
		if acr.Value != nil {
			req.ACR = append(req.ACR, *acr.Value)
		}
		req.ACR = append(req.ACR, acr.Values...)
		req.ACREssential = acr.Essential && len(req.ACR) > 0
	}
	if len(req.UserInfo) == 0 && len(req.IDToken) == 0 && len(req.ACR) == 0 {
		return nil, nil
	}
	return req, nil
}

// knownClaims keeps the names Lanyard can release, sorted.
func knownClaims[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		if _, ok := config.ClaimScopes[k]; ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// session is the only session type Lanyard hands fosite: the OpenID Connect
// session and the claims the request asked for.
type session struct {
	openid.DefaultSession
	Requested *claimsRequest `json:"requested_claims,omitempty"`
}

var _ openid.Session = (*session)(nil)

// newSession is an empty session for fosite to fill.
func newSession() *session {
	return &session{DefaultSession: openid.DefaultSession{Claims: &jwt.IDTokenClaims{}, Headers: &jwt.Headers{}}}
}

// Clone is a deep copy (the embedded DefaultSession's Clone would drop
// Requested).
func (s *session) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	c := &session{DefaultSession: *s.DefaultSession.Clone().(*openid.DefaultSession)}
	if r := s.Requested; r != nil {
		c.Requested = &claimsRequest{
			UserInfo: slices.Clone(r.UserInfo), IDToken: slices.Clone(r.IDToken),
			ACR: slices.Clone(r.ACR), ACREssential: r.ACREssential,
		}
	}
	return c
}

// releases reports whether a claim may go to client c: by the granted
// scopes (granted != nil), or by the client's registered scopes.
func releases(claim string, c *client, granted fosite.Arguments) bool {
	scope, ok := config.ClaimScopes[claim]
	if !ok {
		return false
	}
	if granted != nil {
		return granted.Has(scope)
	}
	return c.scopes.Has(scope)
}

// userinfoNames are the claims userinfo returns for a grant.
func userinfoNames(c *client, granted fosite.Arguments, req *claimsRequest) []string {
	var asked []string
	if req != nil {
		asked = req.UserInfo
	}
	return claimNames(c, granted, slices.Collect(maps.Keys(config.ClaimScopes)), asked)
}

// idTokenNames are the claims about the officer the ID token carries.
func idTokenNames(c *client, granted fosite.Arguments, req *claimsRequest) []string {
	var asked []string
	if req != nil {
		asked = req.IDToken
	}
	return claimNames(c, granted, c.idTokenClaims, asked)
}

// claimNames keeps the candidates the granted scopes release and the
// claims the claims parameter asked for that the client may have.
func claimNames(c *client, granted fosite.Arguments, candidates, asked []string) []string {
	var names []string
	for _, claim := range candidates {
		if releases(claim, c, granted) {
			names = append(names, claim)
		}
	}
	for _, claim := range asked {
		if releases(claim, c, nil) {
			names = append(names, claim)
		}
	}
	return names
}

// userClaims are the values of the named claims that Lanyard has for u
// (a claim it has no value for is left out, never sent empty).
func (p *Provider) userClaims(ctx context.Context, u *store.User, names []string) (map[string]any, error) {
	claims := map[string]any{}
	for _, name := range names {
		switch name {
		case "name":
			claims[name] = u.Name
		case "given_name":
			claims[name] = u.GivenName
		case "family_name":
			claims[name] = u.FamilyName
		case "preferred_username":
			claims[name] = u.Username
		case "email":
			claims[name] = u.Email
		case "email_verified":
			// Invitations go to the address and the officer signs in
			// with it: it is verified by construction.
			claims[name] = u.Email != ""
		case "updated_at":
			if !u.UpdatedAt.IsZero() {
				claims[name] = u.UpdatedAt.Unix()
			}
		case "lanyard_policies":
			acc, err := p.store.Acceptances(ctx, u.ID)
			if err != nil {
				return nil, err
			}
			policies := map[string]any{}
			for _, a := range acc {
				policies[a.Document] = a.Version
			}
			claims[name] = policies
		}
		if s, ok := claims[name].(string); ok && s == "" {
			delete(claims, name)
		}
	}
	return claims, nil
}

// idTokenSigner signs ID tokens. fosite puts rat (the request time) in every
// ID token it makes — it needs it on the session for its max_age and prompt
// checks — but OpenID Connect defines no such claim: it is left out here.
type idTokenSigner struct{ *signer }

func (s idTokenSigner) Generate(ctx context.Context, claims jwt.MapClaims, header jwt.Mapper) (string, string, error) {
	delete(claims, "rat")
	return s.signer.Generate(ctx, claims, header)
}
