package provider

import (
	"encoding/json"
	"net/http"
	"slices"

	"github.com/lanyard-idp/lanyard/config"
)

// buildDiscovery renders the OpenID Provider metadata once: it depends only on
// the configuration. Every URL comes from the configured issuer, never from
// the request's Host or X-Forwarded-* headers.
func (p *Provider) buildDiscovery() ([]byte, error) {
	iss := p.issuer
	algs := []string{algRS256}
	if slices.Contains(p.keys.algs, algES256) {
		algs = append(algs, algES256)
	}
	meta := map[string]any{
		"issuer":                                iss,
		"authorization_endpoint":                iss + pathAuthorize,
		"token_endpoint":                        iss + pathToken,
		"userinfo_endpoint":                     iss + pathUserinfo,
		"jwks_uri":                              iss + pathJWKS,
		"end_session_endpoint":                  iss + pathEndSession,
		"introspection_endpoint":                iss + pathIntrospect,
		"revocation_endpoint":                   iss + pathRevoke,
		"pushed_authorization_request_endpoint": iss + pathPAR,

		"response_types_supported":                         []string{"code"},
		"response_modes_supported":                         []string{"query"},
		"grant_types_supported":                            config.GrantTypes,
		"subject_types_supported":                          []string{"public"},
		"id_token_signing_alg_values_supported":            algs,
		"token_endpoint_auth_methods_supported":            []string{"client_secret_basic", "client_secret_post", "private_key_jwt", "none"},
		"token_endpoint_auth_signing_alg_values_supported": []string{"RS256", "ES256"},
		"introspection_endpoint_auth_methods_supported":    []string{"client_secret_basic"},
		"revocation_endpoint_auth_methods_supported":       []string{"client_secret_basic", "client_secret_post", "private_key_jwt", "none"},
		"code_challenge_methods_supported":                 []string{"S256"},
		"scopes_supported":                                 []string{"openid", "profile", "email", "offline_access"},
		"claims_supported":                                 claimsSupported(),
		"prompt_values_supported":                          promptValues,
		"acr_values_supported":                             acrValues,
		"claim_types_supported":                            []string{"normal"},

		"request_parameter_supported":                    false,
		"request_uri_parameter_supported":                false,
		"require_request_uri_registration":               true,
		"claims_parameter_supported":                     true,
		"require_pushed_authorization_requests":          false,
		"authorization_response_iss_parameter_supported": true,
		// Back-Channel Logout 1.0 §2.1 and Front-Channel Logout 1.0 §3: the
		// sid is in every ID token and every logout.
		"backchannel_logout_supported":          true,
		"backchannel_logout_session_supported":  true,
		"frontchannel_logout_supported":         true,
		"frontchannel_logout_session_supported": true,
	}
	return json.Marshal(meta)
}

// claimsSupported is every claim Lanyard may issue: the ID token's own and
// those about the officer (config.ClaimScopes).
func claimsSupported() []string {
	out := []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "at_hash", "jti"}
	for c := range config.ClaimScopes {
		out = append(out, c)
	}
	slices.Sort(out[12:])
	return out
}

func (p *Provider) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	writePublicJSON(w, p.discoveryJSON)
}

func (p *Provider) handleJWKS(w http.ResponseWriter, r *http.Request) {
	writePublicJSON(w, p.keys.snapshot(r.Context()).jwks)
}

// writePublicJSON serves a document relying parties may cache for a while.
func writePublicJSON(w http.ResponseWriter, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("Access-Control-Allow-Origin", "*")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}
