package config

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Problem is one thing wrong with a configuration.
type Problem struct {
	File  string // Source of the configuration ("" when built in)
	Line  int    // 0 when the problem has no line (a key that is missing)
	Field string // path of the field, e.g. clients[1].redirect_uris[0]
	Msg   string
}

// String formats the problem as "FILE:LINE: field: message", leaving out
// the parts that are unknown.
func (p Problem) String() string {
	var b strings.Builder
	switch {
	case p.File != "" && p.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", p.File, p.Line)
	case p.File != "":
		fmt.Fprintf(&b, "%s: ", p.File)
	case p.Line > 0:
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Field != "" {
		b.WriteString(p.Field + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is every problem found in a configuration, sorted by line. It is
// the error Load and Validate return, so that an admin fixes all of them in
// one pass rather than one per restart.
type Problems []Problem

// Error lists the problems one per line.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

func (ps Problems) sorted() Problems {
	slices.SortStableFunc(ps, func(a, b Problem) int { return a.Line - b.Line })
	return ps
}

// checker gathers problems, finding the line of each field.
type checker struct {
	c  *Config
	ps Problems
}

func (k *checker) add(field, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if o := k.c.origin[field]; o != "" {
		msg += " (" + o + ")"
	}
	file := k.c.Source
	if file == "" {
		file = k.c.sourceName
	}
	k.ps = append(k.ps, Problem{File: file, Line: k.c.lineOf(field), Field: field, Msg: msg})
}

// lineOf is the line of field in the source, or of its closest ancestor that
// was written there (a missing key is reported where its section is).
func (c *Config) lineOf(field string) int {
	for f := field; f != ""; f = parent(f) {
		if l, ok := c.lines[f]; ok {
			return l
		}
		// A hand-built client still knows its line.
		if rest, ok := strings.CutPrefix(f, "clients["); ok && !strings.ContainsAny(rest, ".[") {
			if i, err := strconv.Atoi(strings.TrimSuffix(rest, "]")); err == nil && i < len(c.Clients) && c.Clients[i].Line > 0 {
				return c.Clients[i].Line
			}
		}
	}
	return 0
}

func parent(field string) string {
	i := strings.LastIndexAny(field, ".[")
	if i < 0 {
		return ""
	}
	return field[:i]
}

// Allowed values.
var (
	authMethods = []string{"client_secret_basic", "client_secret_post", "private_key_jwt", "none"}
	algorithms  = []string{"RS256", "ES256"}
	smtpTLS     = []string{"starttls", "tls", "none"}
	logFormats  = []string{"text", "json"}
	logLevels   = []string{"debug", "info", "warn", "error"}
)

var (
	clientIDRE = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	domainRE   = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

// Validate checks the whole configuration and returns every problem at once
// as Problems (nil when there is none). It does not change c; call it after
// ApplyDefaults, or unset values are reported as problems. rules are the
// checks of other packages (the journey's: flows.ConfigRule), whose problems
// are reported with the rest.
func (c *Config) Validate(rules ...Rule) error {
	k := &checker{c: c}
	k.issuer()
	k.listen("listen", c.Listen)
	for i, p := range c.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			if _, err := netip.ParseAddr(p); err != nil {
				k.add(fmt.Sprintf("trusted_proxies[%d]", i), "%q is not an address or CIDR prefix (e.g. 10.0.0.0/8)", p)
			}
		}
	}
	if c.DataDir == "" {
		k.add("data_dir", "is required")
	}
	k.database()
	k.keys()
	k.session()
	k.tokens()
	k.clients()
	k.invitations()
	k.mail()
	k.journey()
	k.password()
	k.throttle()
	k.documents()
	k.requests()
	k.admins()
	k.webauthn()
	k.approval()
	k.recovery()
	if c.Metrics.Listen != "" {
		k.listen("metrics.listen", c.Metrics.Listen)
	}
	k.oneOf("log.format", c.Log.Format, logFormats)
	k.oneOf("log.level", c.Log.Level, logLevels)
	for _, rule := range rules {
		rule(c, k.add)
	}
	if len(k.ps) == 0 {
		return nil
	}
	return k.ps.sorted()
}

func (k *checker) oneOf(field, v string, allowed []string) bool {
	if !slices.Contains(allowed, v) {
		shown := slices.DeleteFunc(slices.Clone(allowed), func(s string) bool { return s == "" })
		k.add(field, "%q is not one of %s", v, strings.Join(shown, ", "))
		return false
	}
	return true
}

func (k *checker) positive(field string, d Duration) bool {
	if d <= 0 {
		k.add(field, "must be a positive duration (e.g. 30m)")
		return false
	}
	return true
}

func (k *checker) listen(field, addr string) {
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		k.add(field, "%q is not a host:port address (e.g. :8080 or 127.0.0.1:9090)", addr)
	}
}

func isLoopback(host string) bool {
	switch strings.ToLower(host) {
	case "127.0.0.1", "::1", "localhost":
		return true
	}
	return false
}

func (k *checker) issuer() {
	s := k.c.Issuer
	if s == "" {
		k.add("issuer", "is required: the public URL of Lanyard, e.g. https://id.agency.example")
		return
	}
	u, err := url.Parse(s)
	switch {
	case err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "":
		k.add("issuer", "%q is not an absolute URL such as https://id.agency.example", s)
	case u.User != nil:
		k.add("issuer", "must not contain user info (user@host)")
	case u.RawQuery != "" || u.ForceQuery:
		k.add("issuer", "must not have a query (?…)")
	case u.Fragment != "" || strings.Contains(s, "#"):
		k.add("issuer", "must not have a fragment (#…)")
	case strings.HasSuffix(s, "/"):
		k.add("issuer", "must not end with a slash (write %s)", strings.TrimRight(s, "/"))
	case u.Scheme == "https":
	case u.Scheme == "http" && (k.c.Dev || isLoopback(u.Hostname())):
	case u.Scheme == "http":
		k.add("issuer", "must use https (http is only allowed on loopback or with dev: true)")
	default:
		k.add("issuer", "scheme %q is not allowed: use https", u.Scheme)
	}
}

// maxDatabaseConnections is the largest database.max_connections (the
// store's own limit, which config cannot import).
const maxDatabaseConnections = 1000

func (k *checker) database() {
	if n := k.c.Database.MaxConnections; n < 0 || n > maxDatabaseConnections {
		k.add("database.max_connections", "%d is out of range: use 1 to %d (or leave it out for 20); every node opens this many, and together they must stay below the PostgreSQL server's max_connections", n, maxDatabaseConnections)
	}
	u := k.c.Database.URL.Value()
	if u == "" {
		return
	}
	for _, p := range []string{"sqlite://", "postgres://", "postgresql://"} {
		if strings.HasPrefix(u, p) {
			return
		}
	}
	// Never quote the URL: it usually holds a password.
	k.add("database.url", "must start with sqlite://, postgres:// or postgresql:// (or be empty for SQLite in data_dir)")
}

// DecodeEncryptionKey decodes keys.encryption_key: 32 bytes in standard or
// URL base64, padded or not.
func (k Keys) DecodeEncryptionKey() ([]byte, error) {
	s := strings.TrimSpace(k.EncryptionKey.Value())
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != 32 {
				return nil, fmt.Errorf("decodes to %d bytes, want 32 (generate one with `openssl rand -base64 32`)", len(b))
			}
			return b, nil
		}
	}
	return nil, fmt.Errorf("is not base64 (generate one with `openssl rand -base64 32`)")
}

func (k *checker) keys() {
	c := k.c
	if c.Keys.EncryptionKey == "" {
		if !c.Dev {
			k.add("keys.encryption_key", "is required outside dev: 32 random bytes in base64, e.g. ${%s} with the output of `openssl rand -base64 32`", EnvEncryptionKey)
		}
	} else if _, err := c.Keys.DecodeEncryptionKey(); err != nil {
		k.add("keys.encryption_key", "%v", err)
	}
	seen := map[string]bool{}
	for i, a := range c.Keys.Algorithms {
		f := fmt.Sprintf("keys.algorithms[%d]", i)
		if k.oneOf(f, a, algorithms) && seen[a] {
			k.add(f, "%s is listed twice", a)
		}
		seen[a] = true
	}
	if !seen["RS256"] {
		k.add("keys.algorithms", "must include RS256 (OpenID Connect requires it)")
	}
	if k.positive("keys.retire_after", c.Keys.RetireAfter) {
		if longest := max(c.Tokens.AccessToken, c.Tokens.IDToken); c.Keys.RetireAfter < longest {
			k.add("keys.retire_after", "%s is shorter than the longest access or ID token lifespan (%s): tokens signed by a retired key would stop verifying", c.Keys.RetireAfter, longest)
		}
	}
}

func (k *checker) session() {
	s := k.c.Session
	ok := k.positive("session.idle_timeout", s.IdleTimeout)
	if k.positive("session.absolute_timeout", s.AbsoluteTimeout) && ok && s.IdleTimeout > s.AbsoluteTimeout {
		k.add("session.idle_timeout", "%s is longer than session.absolute_timeout (%s)", s.IdleTimeout, s.AbsoluteTimeout)
	}
}

func (k *checker) tokens() {
	t := k.c.Tokens
	if k.positive("tokens.authorize_code", t.AuthorizeCode) && t.AuthorizeCode.D() > 10*time.Minute {
		k.add("tokens.authorize_code", "%s is too long: an authorization code must expire within 10m", t.AuthorizeCode)
	}
	k.positive("tokens.access_token", t.AccessToken)
	k.positive("tokens.id_token", t.IDToken)
	k.positive("tokens.refresh_token", t.RefreshToken)
}

func (k *checker) clients() {
	ids := map[string]int{}
	for i, cl := range k.c.Clients {
		p := fmt.Sprintf("clients[%d]", i)
		switch {
		case cl.ID == "":
			k.add(p+".id", "is required")
		case len(cl.ID) > 128:
			k.add(p+".id", "is longer than 128 characters")
		case !clientIDRE.MatchString(cl.ID):
			k.add(p+".id", "%q may only contain letters, digits, '.', '_' and '-'", cl.ID)
		default:
			if j, dup := ids[cl.ID]; dup {
				k.add(p+".id", "%q is already used by clients[%d]", cl.ID, j)
			} else {
				ids[cl.ID] = i
			}
		}
		k.client(p, cl)
	}
}

func (k *checker) client(p string, cl Client) {
	method := cl.TokenEndpointAuthMethod
	methodOK := k.oneOf(p+".token_endpoint_auth_method", method, authMethods)
	if cl.Public {
		if cl.SecretHash != "" {
			k.add(p+".secret_hash", "a public client has no secret: remove secret_hash or public: true")
		}
		if methodOK && method != "none" {
			k.add(p+".token_endpoint_auth_method", "a public client must use none (and PKCE), not %s", method)
		}
		if slices.Contains(cl.GrantTypes, GrantClientCredentials) {
			k.add(p+".grant_types", "a public client cannot use client_credentials")
		}
	} else if methodOK {
		switch method {
		case "none":
			k.add(p+".token_endpoint_auth_method", "none is only for public clients (public: true)")
		case "private_key_jwt":
			if cl.JWKS == "" {
				k.add(p+".jwks", "is required with private_key_jwt: the client's public keys as an inline JSON Web Key Set")
			}
			if cl.SecretHash != "" {
				k.add(p+".secret_hash", "is not used with private_key_jwt; remove it")
			}
		default:
			if cl.SecretHash == "" {
				k.add(p+".secret_hash", "is required for a confidential client: the output of `lanyard client hash-secret`")
			} else if _, _, err := parseSecretHash(cl.SecretHash); err != nil {
				k.add(p+".secret_hash", "%v", err)
			}
		}
	}
	if cl.JWKS != "" {
		k.jwks(p+".jwks", cl.JWKS)
		if methodOK && method != "private_key_jwt" {
			k.add(p+".jwks", "is only used with token_endpoint_auth_method: private_key_jwt")
		}
	}

	seen := map[string]bool{}
	for i, g := range cl.GrantTypes {
		f := fmt.Sprintf("%s.grant_types[%d]", p, i)
		if k.oneOf(f, g, GrantTypes) && seen[g] {
			k.add(f, "%s is listed twice", g)
		}
		seen[g] = true
	}
	if seen[GrantRefreshToken] {
		if !slices.Contains(cl.Scopes, "offline_access") {
			k.add(p+".grant_types", "refresh_token requires offline_access in scopes")
		}
		if !seen[GrantAuthorizationCode] {
			k.add(p+".grant_types", "refresh_token requires authorization_code")
		}
	}
	if seen[GrantAuthorizationCode] && len(cl.RedirectURIs) == 0 {
		k.add(p+".redirect_uris", "an authorization_code client needs at least one redirect URI")
	}
	for i, u := range cl.RedirectURIs {
		if msg := checkRedirectURI(u); msg != "" {
			k.add(fmt.Sprintf("%s.redirect_uris[%d]", p, i), "%s", msg)
		}
	}
	for i, u := range cl.PostLogoutRedirectURIs {
		if msg := checkRedirectURI(u); msg != "" {
			k.add(fmt.Sprintf("%s.post_logout_redirect_uris[%d]", p, i), "%s", msg)
		}
	}
	for i, s := range cl.Scopes {
		if !validScope(s) {
			k.add(fmt.Sprintf("%s.scopes[%d]", p, i), "%q is not a scope: no spaces, quotes or backslashes", s)
		}
	}
	claimSeen := map[string]bool{}
	for i, c := range cl.IDTokenClaims {
		f := fmt.Sprintf("%s.id_token_claims[%d]", p, i)
		scope, known := ClaimScopes[c]
		switch {
		case !known:
			k.add(f, "%q is not a claim Lanyard releases: use %s", c, strings.Join(slices.Sorted(maps.Keys(ClaimScopes)), ", "))
		case claimSeen[c]:
			k.add(f, "%s is listed twice", c)
		case !slices.Contains(cl.Scopes, scope):
			k.add(f, "%s needs the %s scope, which the client is not registered for (scopes)", c, scope)
		}
		claimSeen[c] = true
	}
	for _, lo := range []struct {
		key, uri, sessionKey string
		sessionRequired      bool
	}{
		{"backchannel_logout_uri", cl.BackchannelLogoutURI, "backchannel_logout_session_required", cl.BackchannelLogoutSessionRequired},
		{"frontchannel_logout_uri", cl.FrontchannelLogoutURI, "frontchannel_logout_session_required", cl.FrontchannelLogoutSessionRequired},
	} {
		switch {
		case lo.uri == "" && lo.sessionRequired:
			k.add(p+"."+lo.sessionKey, "is set but %s is not", lo.key)
		case lo.uri == "":
		case !seen[GrantAuthorizationCode]:
			k.add(p+"."+lo.key, "only a client that signs officers in (authorization_code) has sessions to log out of")
		default:
			if msg := checkRedirectURI(lo.uri); msg != "" {
				k.add(p+"."+lo.key, "%s", msg)
			}
		}
	}
	// Relying parties are first-party (no consent page) unless one says
	// otherwise; only an officer's sign-in has someone to ask.
	if k.oneOf(p+".consent", cl.Consent, []string{"", ConsentNone, ConsentRequired}) &&
		cl.Consent == ConsentRequired && !seen[GrantAuthorizationCode] {
		k.add(p+".consent", "only a client that signs officers in (authorization_code) can ask for their consent")
	}
}

// validScope follows RFC 6749's scope-token: printable ASCII without space,
// '"' and '\'.
func validScope(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < 0x21 || r > 0x7e || r == '"' || r == '\\' {
			return false
		}
	}
	return true
}

func (k *checker) jwks(field, s string) {
	var set struct {
		Keys *[]json.RawMessage `json:"keys"`
	}
	switch err := json.Unmarshal([]byte(s), &set); {
	case err != nil:
		k.add(field, "is not valid JSON: %v", err)
	case set.Keys == nil:
		k.add(field, `must be a JSON Web Key Set: an object with a "keys" array`)
	case len(*set.Keys) == 0:
		k.add(field, `has an empty "keys" array`)
	}
}

// checkRedirectURI returns why u may not be registered as a redirect (or
// post-logout redirect) URI, or "". The provider matches redirect URIs
// exactly, so what is refused here is what could never be safe to redirect to.
func checkRedirectURI(u string) string {
	if u == "" {
		return "is empty"
	}
	if strings.IndexFunc(u, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return "must not contain spaces or control characters"
	}
	if strings.Contains(u, "#") {
		return "must not contain a fragment (#…)"
	}
	p, err := url.Parse(u)
	if err != nil {
		return "is not a valid URL"
	}
	if !p.IsAbs() {
		return "must be an absolute URL (https://…)"
	}
	switch p.Scheme {
	case "https":
	case "http":
		if !isLoopback(p.Hostname()) {
			return "http is only allowed on loopback (127.0.0.1, [::1], localhost)"
		}
	default:
		return fmt.Sprintf("scheme %q is not allowed: use https (or http on loopback)", p.Scheme)
	}
	if p.Opaque != "" || p.Host == "" || p.Hostname() == "" {
		return "must have a host (https://host/path)"
	}
	if p.User != nil {
		return "must not contain user info (user@host)"
	}
	for _, seg := range strings.Split(p.EscapedPath(), "/") {
		if seg == "." || seg == ".." || strings.EqualFold(seg, "%2e") || strings.EqualFold(seg, "%2e%2e") {
			return "must not contain . or .. path segments"
		}
	}
	return ""
}

func (k *checker) invitations() {
	inv := k.c.Invitations
	k.positive("invitations.valid_for", inv.ValidFor)
	if len(inv.AllowedDomains) == 0 {
		k.add("invitations.allowed_domains", "is required: the organisation's mail domains, e.g. [agency.example] (an empty list refuses every invitation)")
	}
	seen := map[string]bool{}
	for i, d := range inv.AllowedDomains {
		f := fmt.Sprintf("invitations.allowed_domains[%d]", i)
		switch {
		case strings.ToLower(d) != d:
			k.add(f, "%q must be lower case (%s)", d, strings.ToLower(d))
		case !domainRE.MatchString(d) || len(d) > 253:
			k.add(f, "%q is not a domain name: write it bare, e.g. agency.example", d)
		case seen[d]:
			k.add(f, "%q is listed twice", d)
		}
		seen[d] = true
	}
	for i, m := range inv.RefusedMailboxes {
		f := fmt.Sprintf("invitations.refused_mailboxes[%d]", i)
		if _, err := path.Match(m, ""); err != nil || m == "" {
			k.add(f, "%q is not a valid pattern (shell-style: *, ?, [a-z])", m)
		} else if strings.ToLower(m) != m {
			k.add(f, "%q must be lower case: addresses are matched lower-cased", m)
		}
	}
}

func (k *checker) mail() {
	c := k.c
	m := c.Mail
	if m.From == "" {
		if !c.Dev {
			k.add("mail.from", `is required, e.g. "Lanyard <no-reply@agency.example>"`)
		}
	} else if _, err := mail.ParseAddress(m.From); err != nil {
		k.add("mail.from", "%q is not a mail address (e.g. Lanyard <no-reply@agency.example>)", m.From)
	}
	if m.SMTP.Host == "" && !c.Dev && (m.Outbox == "" || c.outboxDefaulted) {
		k.add("mail.smtp.host", "is required outside dev (or set mail.outbox to write mail to a folder)")
	}
	tlsOK := k.oneOf("mail.smtp.tls", m.SMTP.TLS, smtpTLS)
	if m.SMTP.Port < 1 || m.SMTP.Port > 65535 {
		k.add("mail.smtp.port", "%d is not a port number (1-65535)", m.SMTP.Port)
	}
	k.positive("mail.smtp.timeout", m.SMTP.Timeout)
	if tlsOK && m.SMTP.TLS == "none" && m.SMTP.Password != "" && m.SMTP.Host != "" && !isLoopback(m.SMTP.Host) {
		k.add("mail.smtp.tls", "none would send the SMTP password in clear text to %s; use starttls or tls", m.SMTP.Host)
	}
	if m.SMTP.Password != "" && m.SMTP.Username == "" {
		k.add("mail.smtp.username", "is required when mail.smtp.password is set")
	}
}

func (k *checker) journey() {
	j := k.c.Journey
	// Which names a step may have is the journey's Rule to check.
	for i, s := range j.Steps {
		if slices.Contains(j.Steps[:i], s) {
			k.add(fmt.Sprintf("journey.steps[%d]", i), "%s is listed twice", s)
		}
	}
	k.positive("journey.timeout", j.Timeout)
	if strings.TrimSpace(j.DisplayName) == "" {
		k.add("journey.display_name", "is required")
	}
}

func (k *checker) password() {
	p := k.c.Password
	if p.MinLength < 8 {
		k.add("password.min_length", "%d is too short: at least 8 (NIST SP 800-63B)", p.MinLength)
	}
	if p.MaxLength < p.MinLength {
		k.add("password.max_length", "%d is less than password.min_length (%d)", p.MaxLength, p.MinLength)
	} else if p.MaxLength > 1024 {
		k.add("password.max_length", "%d is more than 1024", p.MaxLength)
	}
}

func (k *checker) throttle() {
	t := k.c.Throttle
	if t.MaxAccountFailures < 1 {
		k.add("throttle.max_account_failures", "must be at least 1")
	}
	if t.MaxAddressFailures < 1 {
		k.add("throttle.max_address_failures", "must be at least 1")
	}
	if t.MaxSecondFactorFailures < 1 {
		k.add("throttle.max_second_factor_failures", "must be at least 1")
	}
	if t.SecondFactorDailyCap < t.MaxSecondFactorFailures {
		k.add("throttle.second_factor_daily_cap", "%d is less than throttle.max_second_factor_failures (%d)", t.SecondFactorDailyCap, t.MaxSecondFactorFailures)
	}
	k.positive("throttle.lock_for", t.LockFor)
	if t.MaxLockFor < t.LockFor {
		k.add("throttle.max_lock_for", "%s is shorter than throttle.lock_for (%s)", t.MaxLockFor.D(), t.LockFor.D())
	}
	k.positive("throttle.lock_decay", t.LockDecay)
	k.positive("throttle.window", t.Window)
	k.positive("throttle.device_cookie_for", t.DeviceCookieFor)
	if t.IPv6Prefix < 32 || t.IPv6Prefix > 128 {
		k.add("throttle.ipv6_prefix", "%d is not a prefix length from 32 to 128 (64 counts one customer's network as one client)", t.IPv6Prefix)
	}
}

func (k *checker) documents() {
	seen := map[string]int{}
	for i, d := range k.c.Documents {
		p := fmt.Sprintf("documents[%d]", i)
		switch {
		case d.ID == "":
			k.add(p+".id", "is required: it names the document's step (e.g. privacy, terms, code-of-conduct)")
		case len(d.ID) > maxDocumentID || !documentIDRE.MatchString(d.ID):
			k.add(p+".id", "%q is not an id: use lower-case letters, digits and single hyphens, at most %d (it names the document's step and page)", d.ID, maxDocumentID)
		default:
			if j, dup := seen[d.ID]; dup {
				k.add(p+".id", "%q is already used by documents[%d]", d.ID, j)
			}
			seen[d.ID] = i
			if d.File == "" && !hasSample(d.ID) {
				k.add(p+".file", "is required: there is no built-in text for %q", d.ID)
			}
		}
		if strings.TrimSpace(d.Title) == "" {
			k.add(p+".title", "is required (shown as the page heading)")
		}
		if strings.TrimSpace(d.Version) == "" {
			k.add(p+".version", "is required: change it to make every officer accept the document again")
		}
		if d.File != "" {
			f, err := os.Open(k.c.resolve(d.File))
			if err == nil {
				var st os.FileInfo
				if st, err = f.Stat(); err == nil && st.IsDir() {
					err = fmt.Errorf("%s is a folder", f.Name())
				}
				f.Close()
			}
			if err != nil {
				k.add(p+".file", "cannot be read: %v", err)
			}
		}
	}
}

func (k *checker) webauthn() {
	for i, o := range k.c.WebAuthn.ExtraOrigins {
		f := fmt.Sprintf("webauthn.extra_origins[%d]", i)
		u, err := url.Parse(o)
		switch {
		case err != nil || !u.IsAbs() || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil:
			k.add(f, "%q is not an origin (scheme://host[:port])", o)
		case u.Scheme == "https":
		case u.Scheme == "http" && (k.c.Dev || isLoopback(u.Hostname())):
		default:
			k.add(f, "%q must use https (http only on loopback or with dev: true)", o)
		}
	}
}

// resolve makes a path in the configuration relative to the folder of the
// configuration file.
func (c *Config) resolve(name string) string {
	if c == nil || c.Source == "" || filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(filepath.Dir(c.Source), name)
}
