package provider

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"

	"github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"

	"github.com/lanyard-idp/lanyard/config"
)

// client is a relying party from the configuration, as fosite sees it. It is
// immutable once built: a reload builds new ones and swaps the whole set.
type client struct {
	id                 string
	name               string
	secretHash         []byte
	public             bool
	redirectURIs       []string
	postLogoutURIs     []string
	grantTypes         fosite.Arguments
	scopes             fosite.Arguments
	authMethod         string
	jwks               *jose.JSONWebKeySet
	assertionAlgorithm string

	idTokenClaims []string // config id_token_claims
	// consentRequired: consent: required (the consent page unless the
	// officer's remembered decision covers the request).
	consentRequired bool
	// Logout propagation (Back-Channel and Front-Channel Logout 1.0).
	backchannelURI         string
	frontchannelURI        string
	frontchannelSessionReq bool

	introspection bool // config introspection: a resource server
}

var (
	_ fosite.Client              = (*client)(nil)
	_ fosite.OpenIDConnectClient = (*client)(nil)
	_ fosite.ResponseModeClient  = (*client)(nil)
)

func (c *client) GetID() string                   { return c.id }
func (c *client) GetHashedSecret() []byte         { return c.secretHash }
func (c *client) GetRedirectURIs() []string       { return c.redirectURIs }
func (c *client) GetGrantTypes() fosite.Arguments { return c.grantTypes }
func (c *client) GetResponseTypes() fosite.Arguments {
	return fosite.Arguments{"code"}
}
func (c *client) GetScopes() fosite.Arguments { return c.scopes }
func (c *client) IsPublic() bool              { return c.public }
func (c *client) GetAudience() fosite.Arguments {
	return nil
}

// Request objects are refused before fosite sees them; these say the same to
// fosite in case one slips through: no request_uri is ever registered, no key
// set is ever fetched.
func (c *client) GetRequestURIs() []string                 { return nil }
func (c *client) GetJSONWebKeys() *jose.JSONWebKeySet      { return c.jwks }
func (c *client) GetJSONWebKeysURI() string                { return "" }
func (c *client) GetRequestObjectSigningAlgorithm() string { return "" }
func (c *client) GetTokenEndpointAuthMethod() string       { return c.authMethod }
func (c *client) GetTokenEndpointAuthSigningAlgorithm() string {
	return c.assertionAlgorithm
}
func (c *client) GetResponseModes() []fosite.ResponseModeType {
	return []fosite.ResponseModeType{fosite.ResponseModeQuery}
}

func (c *client) displayName() string {
	if c.name != "" {
		return c.name
	}
	return c.id
}

// newClient turns a configured relying party (defaults applied by
// config.ApplyDefaults) into a fosite client.
func newClient(cc config.Client) (*client, error) {
	if cc.ID == "" {
		return nil, fmt.Errorf("client without id")
	}
	c := &client{
		id:             cc.ID,
		name:           cc.Name,
		public:         cc.Public,
		redirectURIs:   slices.Clone(cc.RedirectURIs),
		postLogoutURIs: slices.Clone(cc.PostLogoutRedirectURIs),
		grantTypes:     fosite.Arguments(slices.Clone(cc.GrantTypes)),
		scopes:         fosite.Arguments(slices.Clone(cc.Scopes)),
		authMethod:     cc.TokenEndpointAuthMethod,

		idTokenClaims:          slices.Clone(cc.IDTokenClaims),
		consentRequired:        cc.Consent == config.ConsentRequired,
		backchannelURI:         cc.BackchannelLogoutURI,
		frontchannelURI:        cc.FrontchannelLogoutURI,
		frontchannelSessionReq: cc.FrontchannelLogoutSessionRequired,
		introspection:          cc.Introspection,
	}
	switch c.authMethod {
	case "client_secret_basic", "client_secret_post":
		if c.public || cc.SecretHash == "" {
			return nil, fmt.Errorf("client %q: %s needs a secret_hash", cc.ID, c.authMethod)
		}
		c.secretHash = []byte(cc.SecretHash)
	case "none":
		if !c.public {
			return nil, fmt.Errorf("client %q: token_endpoint_auth_method none is for public clients", cc.ID)
		}
	case "private_key_jwt":
		if cc.JWKS == "" {
			return nil, fmt.Errorf("client %q: private_key_jwt needs an inline jwks", cc.ID)
		}
		var set jose.JSONWebKeySet
		if err := json.Unmarshal([]byte(cc.JWKS), &set); err != nil {
			return nil, fmt.Errorf("client %q: jwks: %w", cc.ID, err)
		}
		alg, err := assertionAlgorithm(&set)
		if err != nil {
			return nil, fmt.Errorf("client %q: jwks: %w", cc.ID, err)
		}
		for i := range set.Keys {
			// fosite only considers keys marked for signatures.
			if set.Keys[i].Use == "" {
				set.Keys[i].Use = "sig"
			}
		}
		c.jwks, c.assertionAlgorithm = &set, alg
	default:
		return nil, fmt.Errorf("client %q: unsupported token_endpoint_auth_method %q", cc.ID, c.authMethod)
	}
	return c, nil
}

// assertionAlgorithm picks the one algorithm fosite will accept for the
// client's private_key_jwt assertions: the keys' declared alg, or the natural
// one for their type.
func assertionAlgorithm(set *jose.JSONWebKeySet) (string, error) {
	if len(set.Keys) == 0 {
		return "", fmt.Errorf("no keys")
	}
	k := set.Keys[0]
	if !k.Valid() || !k.IsPublic() {
		return "", fmt.Errorf("key %q is not a valid public key", k.KeyID)
	}
	if k.Algorithm != "" {
		return k.Algorithm, nil
	}
	switch pub := k.Key.(type) {
	case *rsa.PublicKey:
		return "RS256", nil
	case *ecdsa.PublicKey:
		if pub.Curve == elliptic.P256() {
			return "ES256", nil
		}
	}
	return "", fmt.Errorf("key %q: cannot tell its algorithm; set \"alg\"", k.KeyID)
}

// clientManager is the read-only set of relying parties, swapped atomically on
// reload.
type clientManager struct {
	m atomic.Pointer[map[string]*client]
}

func newClientManager(cs []config.Client) (*clientManager, error) {
	m := make(map[string]*client, len(cs))
	for _, cc := range cs {
		c, err := newClient(cc)
		if err != nil {
			return nil, fmt.Errorf("provider: %w", err)
		}
		if _, dup := m[c.id]; dup {
			return nil, fmt.Errorf("provider: client %q is listed twice", c.id)
		}
		m[c.id] = c
	}
	cm := &clientManager{}
	cm.m.Store(&m)
	return cm, nil
}

func (cm *clientManager) set(cs []config.Client, log *slog.Logger) {
	m := make(map[string]*client, len(cs))
	for _, cc := range cs {
		c, err := newClient(cc)
		if err != nil {
			log.Error("client left out of reload", "err", err)
			continue
		}
		if _, dup := m[c.id]; dup {
			log.Error("client left out of reload: listed twice", "client", c.id)
			continue
		}
		m[c.id] = c
	}
	cm.m.Store(&m)
}

func (cm *clientManager) get(id string) (*client, bool) {
	c, ok := (*cm.m.Load())[id]
	return c, ok
}
