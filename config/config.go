// Package config holds Lanyard's typed configuration: the Config struct, its
// defaults, strict YAML loading (an unknown key is an error naming the key and
// its line), `${ENV}` and `*_file` indirection for secrets, and Validate, which
// reports every problem at once.
//
// The embedded development configuration (dev.yaml) and a commented production
// example (lanyard.example.yaml) live beside this file, with sample policy
// documents under docs/.
//
// This package imports no other package of the project: everything else
// depends on it, never the other way round.
package config

import (
	"net/url"
	"time"
)

// Config is the whole configuration of one Lanyard deployment. Every node of a
// deployment must run with the same Config (and the same key-encryption key).
type Config struct {
	// Issuer is the public base URL of Lanyard, e.g. https://id.agency.example.
	// Every URL Lanyard emits (discovery, links in emails) is built from it.
	Issuer string `yaml:"issuer"`
	// Listen is the address the HTTP server listens on (default ":8080").
	Listen string `yaml:"listen"`
	// TrustedProxies are the addresses (CIDR) of load balancers in front of
	// Lanyard. Only a request arriving from one of them has its client
	// address taken from X-Forwarded-For (the right-most address not itself
	// a trusted proxy); per-address throttling and the audit log use it.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// Dev relaxes what only development needs relaxed: cookies over plain http,
	// mail to the outbox folder, a key-encryption key generated in the data dir.
	Dev bool `yaml:"dev"`
	// DataDir holds the SQLite database, the dev outbox and the dev key file.
	DataDir string `yaml:"data_dir"`

	Database    Database    `yaml:"database"`
	Keys        Keys        `yaml:"keys"`
	Session     Session     `yaml:"session"`
	Tokens      Tokens      `yaml:"tokens"`
	Clients     []Client    `yaml:"clients"`
	Invitations Invitations `yaml:"invitations"`
	Mail        Mail        `yaml:"mail"`
	Journey     Journey     `yaml:"journey"`
	Password    Password    `yaml:"password"`
	Throttle    Throttle    `yaml:"throttle"`
	Documents   []Document  `yaml:"documents"`
	Requests    Requests    `yaml:"requests"`
	Admins      []Admin     `yaml:"admins"`
	WebAuthn    WebAuthn    `yaml:"webauthn"`
	Approval    Approval    `yaml:"approval"`
	Recovery    Recovery    `yaml:"recovery"`
	Metrics     Metrics     `yaml:"metrics"`
	Log         Log         `yaml:"log"`

	// Source is the file the configuration was loaded from ("" for built-in
	// dev configuration); relative paths in it are resolved against its folder.
	Source string `yaml:"-"`

	// lines maps a field path ("clients[1].redirect_uris[0]") to its line in
	// Source, so that Validate can point at the offending line.
	lines map[string]int
	// origin says where a secret came from ("from LANYARD_ENCRYPTION_KEY"),
	// because a problem with it is then not on the line the file shows.
	origin map[string]string
	// outboxDefaulted is set when Mail.Outbox was derived from DataDir rather
	// than configured: only an explicit outbox may replace SMTP outside dev.
	outboxDefaulted bool
	// sourceName names the source in problems when Source is "" (the
	// built-in dev.yaml).
	sourceName string
	// defaulted is set by ApplyDefaults (Defaulted).
	defaulted bool
}

// Database selects the store. An empty URL means SQLite in DataDir/lanyard.db.
type Database struct {
	// URL is "sqlite:///path/to/file.db" or "postgres://user:pass@host/db".
	// LANYARD_DATABASE_URL overrides it.
	URL Secret `yaml:"url"`
	// MaxConnections caps the connections each node opens: on PostgreSQL its
	// pool (0: 20); every node opens its own, so the sum over the nodes must
	// stay below the server's max_connections. On SQLite it caps the readers
	// (at most 8; there is always one writer).
	MaxConnections int `yaml:"max_connections"`
}

// Keys configures signing keys and the key-encryption key that protects every
// secret at rest (signing keys, TOTP secrets, cookie keys).
type Keys struct {
	// EncryptionKey is 32 bytes, base64 (std or URL) encoded. Required outside dev;
	// in dev it is generated into DataDir/kek when absent.
	EncryptionKey Secret `yaml:"encryption_key"`
	// Algorithms offered for ID tokens; RS256 is always offered. Default [RS256, ES256].
	Algorithms []string `yaml:"algorithms"`
	// RetireAfter is how long a rotated-out key stays in the JWKS (default 24h,
	// at least the longest token lifespan).
	RetireAfter Duration `yaml:"retire_after"`
}

// Session configures the SSO session behind the browser cookie.
type Session struct {
	IdleTimeout     Duration `yaml:"idle_timeout"`     // default 1h
	AbsoluteTimeout Duration `yaml:"absolute_timeout"` // default 24h
}

// Tokens sets token lifespans.
type Tokens struct {
	AuthorizeCode Duration `yaml:"authorize_code"` // default 5m, at most 10m
	AccessToken   Duration `yaml:"access_token"`   // default 1h
	IDToken       Duration `yaml:"id_token"`       // default 1h
	RefreshToken  Duration `yaml:"refresh_token"`  // default 720h (30 days)
}

// Grant types, as written in clients[].grant_types.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
)

// GrantTypes are the grant types Lanyard supports, in the order discovery
// lists them. Validation, discovery and the metrics all read this list.
var GrantTypes = []string{GrantAuthorizationCode, GrantRefreshToken, GrantClientCredentials}

// Consent values of a client.
const (
	ConsentNone     = "none"
	ConsentRequired = "required"
)

// Client is one relying party, registered by an admin.
type Client struct {
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
	// SecretHash is the output of `lanyard client hash-secret` (see HashSecret).
	// Empty for public clients and private_key_jwt clients.
	SecretHash string `yaml:"secret_hash"`
	// Public clients have no secret and must use PKCE.
	Public                 bool     `yaml:"public"`
	RedirectURIs           []string `yaml:"redirect_uris"`
	PostLogoutRedirectURIs []string `yaml:"post_logout_redirect_uris"`
	// GrantTypes: any of GrantTypes (default [authorization_code]).
	GrantTypes []string `yaml:"grant_types"`
	Scopes     []string `yaml:"scopes"`
	// TokenEndpointAuthMethod: client_secret_basic (default), client_secret_post,
	// private_key_jwt, none (public clients).
	TokenEndpointAuthMethod string `yaml:"token_endpoint_auth_method"`
	// JWKS is an inline JSON Web Key Set for private_key_jwt (never fetched).
	JWKS string `yaml:"jwks"`
	// Consent is ConsentNone (the default: relying parties are
	// first-party, and the consent page appears only when a request asks
	// with prompt=consent) or ConsentRequired (the officer allows the
	// client once, and again whenever it asks for more scopes or claims).
	Consent string `yaml:"consent"`
	// IDTokenClaims are claims about the officer copied into this client's
	// ID tokens (OIDC Core §5.4 puts them at userinfo), for relying parties
	// that read the ID token alone: names from ClaimScopes, each released
	// only when its scope was granted.
	IDTokenClaims []string `yaml:"id_token_claims"`
	// BackchannelLogoutURI receives a logout token (OpenID Connect
	// Back-Channel Logout 1.0) whenever a session in which this client got
	// tokens ends; BackchannelLogoutSessionRequired says the client needs
	// the sid in it (Lanyard always sends it).
	BackchannelLogoutURI             string `yaml:"backchannel_logout_uri"`
	BackchannelLogoutSessionRequired bool   `yaml:"backchannel_logout_session_required"`
	// FrontchannelLogoutURI is loaded in an iframe of the signed-out page
	// (OpenID Connect Front-Channel Logout 1.0), with iss and sid when
	// FrontchannelLogoutSessionRequired.
	FrontchannelLogoutURI             string `yaml:"frontchannel_logout_uri"`
	FrontchannelLogoutSessionRequired bool   `yaml:"frontchannel_logout_session_required"`
	// Introspection marks a resource server: it may introspect (RFC 7662)
	// the tokens of every client. Any other client learns only about its own
	// tokens; another client's token is reported inactive.
	Introspection bool `yaml:"introspection"`

	// Line is the line of the client in the source file (0 when built in).
	Line int `yaml:"-"`
}

// FrontchannelLogoutFrame is the address the signed-out page frames to
// log the client out of the SSO session sid (Front-Channel Logout 1.0
// §2: iss and sid added when the client requires them), and its origin
// for the page's frame-src; ok is false when the client has no usable
// front-channel logout URI. The provider's signed-out page and the
// journey's both use it.
func (c Client) FrontchannelLogoutFrame(issuer, sid string) (frame, origin string, ok bool) {
	if c.FrontchannelLogoutURI == "" {
		return "", "", false
	}
	u, err := url.Parse(c.FrontchannelLogoutURI)
	if err != nil || u.Host == "" {
		return "", "", false
	}
	if c.FrontchannelLogoutSessionRequired {
		q := u.Query()
		q.Set("iss", issuer)
		q.Set("sid", sid)
		u.RawQuery = q.Encode()
	}
	return u.String(), u.Scheme + "://" + u.Host, true
}

// ClaimScopes lists the claims about an officer that Lanyard can release
// and the scope that releases each (OIDC Core §5.4; lanyard_policies, the
// accepted policy versions, comes with openid). The provider and
// id_token_claims validation read this one table.
var ClaimScopes = map[string]string{
	"name":               "profile",
	"given_name":         "profile",
	"family_name":        "profile",
	"preferred_username": "profile",
	"updated_at":         "profile",
	"email":              "email",
	"email_verified":     "email",
	"lanyard_policies":   "openid",
}

// Invitations governs who may be invited and for how long.
type Invitations struct {
	ValidFor       Duration `yaml:"valid_for"`       // default 720h (30 days)
	AllowedDomains []string `yaml:"allowed_domains"` // e.g. [agency.example]; empty refuses all
	// RefusedMailboxes are shell-style patterns (path.Match) matched against the
	// lower-cased address, e.g. "*@litemail.agency.example".
	RefusedMailboxes []string `yaml:"refused_mailboxes"`
}

// Mail configures outgoing mail. With Dev (or an empty SMTP.Host) messages are
// written to Outbox as .eml files instead.
type Mail struct {
	From   string `yaml:"from"`   // "Lanyard <no-reply@agency.example>"
	Outbox string `yaml:"outbox"` // default DataDir/outbox
	SMTP   SMTP   `yaml:"smtp"`
}

// SMTP is an SMTP relay.
type SMTP struct {
	Host     string   `yaml:"host"`
	Port     int      `yaml:"port"` // default 587 (465 with tls: tls)
	Username string   `yaml:"username"`
	Password Secret   `yaml:"password"`
	TLS      string   `yaml:"tls"`     // starttls (default), tls, none
	Timeout  Duration `yaml:"timeout"` // default 10s
}

// Journey configures the officer journey.
type Journey struct {
	// Steps is the order of interstitial steps after the password: the
	// built-in mfa-enrol and change-password, and the documents' ids.
	// Default: mfa-enrol, change-password, then every document in the order
	// written ([mfa-enrol, change-password, privacy, terms] for the guide's).
	Steps []string `yaml:"steps"`
	// Timeout is the inactivity limit of a sign-in in progress (default 30m).
	Timeout Duration `yaml:"timeout"`
	// DisplayName is the product name on pages and the TOTP issuer (default DefaultDisplayName, "Lanyard").
	DisplayName string `yaml:"display_name"`
	// Environment is shown on pages when set (e.g. "Staging").
	Environment string `yaml:"environment"`
}

// Password is the password policy (NIST SP 800-63B: length, no composition rules).
type Password struct {
	MinLength int `yaml:"min_length"` // default 12
	MaxLength int `yaml:"max_length"` // default 128
}

// Throttle limits guesses: failed passwords, codes and passkey ceremonies
// (see the README's "Security model" for how the counters fit together).
type Throttle struct {
	// MaxAccountFailures: wrong passwords, from browsers that have never
	// completed a sign-in to the account, before such browsers are locked
	// out of it (default 5). A browser that has (it carries the account's
	// device cookie) has a counter and a lock of its own, with the same limit.
	MaxAccountFailures int `yaml:"max_account_failures"`
	// MaxAddressFailures: failures from one client address (an IPv6 client's
	// ipv6_prefix network) before it is locked (default 50).
	MaxAddressFailures int `yaml:"max_address_failures"`
	// MaxSecondFactorFailures: wrong codes after a correct password, from
	// browsers without the account's device cookie, before the second factor
	// is locked (default 5). A correct password never resets this counter.
	MaxSecondFactorFailures int `yaml:"max_second_factor_failures"`
	// SecondFactorDailyCap: wrong codes after a correct password in 24 hours,
	// from browsers without the device cookie, after which the second factor
	// is refused until the day is over (default 20). Nothing resets it but
	// time and an administrator's unlock.
	SecondFactorDailyCap int `yaml:"second_factor_daily_cap"`
	// LockFor is how long a first lock lasts (default 15m); each further
	// lock doubles it, up to MaxLockFor (default 24h).
	LockFor    Duration `yaml:"lock_for"`
	MaxLockFor Duration `yaml:"max_lock_for"`
	// LockDecay: each quiet period this long since the last lock ended
	// forgives one doubling (default 24h), so locks shrink back to LockFor.
	LockDecay Duration `yaml:"lock_decay"`
	// Window after which failures are forgotten (default 1h).
	Window Duration `yaml:"window"`
	// DeviceCookieFor is how long a browser stays known to an account after
	// its last completed sign-in there (default 90d).
	DeviceCookieFor Duration `yaml:"device_cookie_for"`
	// IPv6Prefix is the length of the network an IPv6 client is counted by
	// (default 64: one customer's allocation); IPv4 clients count by address.
	IPv6Prefix int `yaml:"ipv6_prefix"`
}

// Document is a versioned policy the officer must accept (privacy, terms,
// a code of conduct…): each is an acceptance step of its own.
type Document struct {
	ID      string `yaml:"id"`      // the step's name, data-step marker and page (/signin/<id>)
	Title   string `yaml:"title"`   // "Privacy policy"
	Version string `yaml:"version"` // a bump forces re-acceptance
	File    string `yaml:"file"`    // Markdown; relative to the config file; "" in dev uses the built-in sample
}

// WebAuthn configures passkeys. The RP ID and origin come from the issuer.
type WebAuthn struct {
	RPDisplayName string   `yaml:"rp_display_name"` // default Journey.DisplayName
	ExtraOrigins  []string `yaml:"extra_origins"`
}

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	Listen string `yaml:"listen"` // default "127.0.0.1:9090"; "" to serve on the main listener
}

// Log configures structured logging.
type Log struct {
	Format string `yaml:"format"` // text (default) | json
	Level  string `yaml:"level"`  // debug | info (default) | warn | error
}

// Duration is a time.Duration that reads "90s", "30m", "12h" and also "30d".
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Secret is a string that may come from the environment or a file: in YAML,
// `key: ${ENV_NAME}` or a sibling `key_file: /path`. String() never reveals it.
type Secret string

// Value returns the secret itself.
func (s Secret) Value() string { return string(s) }

// String hides the value from logs and fmt.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}
