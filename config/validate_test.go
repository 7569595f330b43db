package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBaseIsValid(t *testing.T) {
	clearOverrides(t)
	path := writeConfig(t, base(t))
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("base configuration: %v", err)
	}
}

// TestValidateRules changes one thing in a valid configuration and expects
// exactly the one problem that rule reports, on the right line and field.
func TestValidateRules(t *testing.T) {
	type edit struct{ old, new string }
	cases := []struct {
		name  string
		edits []edit
		// want is the field of the single expected problem; "" means valid.
		field string
		// marker is text on the line the problem must point at; "" means
		// the problem has no line.
		marker string
		msg    string
	}{
		// issuer
		{name: "issuer http", edits: []edit{{"issuer: https://", "issuer: http://"}},
			field: "issuer", marker: "issuer:", msg: "must use https"},
		{name: "issuer http on loopback", edits: []edit{{"issuer: https://id.agency.example", "issuer: http://127.0.0.1:8080"}}},
		{name: "issuer http with dev", edits: []edit{{"issuer: https://id.agency.example", "dev: true\nissuer: http://lanyard.test:8080"}}},
		{name: "issuer trailing slash", edits: []edit{{"issuer: https://id.agency.example", "issuer: https://id.agency.example/"}},
			field: "issuer", marker: "issuer:", msg: "must not end with a slash"},
		{name: "issuer query", edits: []edit{{"issuer: https://id.agency.example", "issuer: https://id.agency.example?x=1"}},
			field: "issuer", marker: "issuer:", msg: "query"},
		{name: "issuer fragment", edits: []edit{{"issuer: https://id.agency.example", `issuer: "https://id.agency.example#x"`}},
			field: "issuer", marker: "issuer:", msg: "fragment"},
		{name: "issuer not absolute", edits: []edit{{"issuer: https://id.agency.example", "issuer: id.agency.example"}},
			field: "issuer", marker: "issuer:", msg: "not an absolute URL"},
		{name: "issuer with path", edits: []edit{{"issuer: https://id.agency.example", "issuer: https://agency.example/id"}}},
		{name: "issuer missing", edits: []edit{{"issuer: https://id.agency.example\n", ""}},
			field: "issuer", msg: "is required"},

		// client ids
		{name: "duplicate client id", edits: []edit{{"- id: spa", "- id: web # again"}},
			field: "clients[1].id", marker: "web # again", msg: `"web" is already used by clients[0]`},
		{name: "client id with slash", edits: []edit{{"- id: svc", "- id: svc/1"}},
			field: "clients[2].id", marker: "svc/1", msg: "may only contain"},
		{name: "client id too long", edits: []edit{{"- id: svc", "- id: " + strings.Repeat("s", 129)}},
			field: "clients[2].id", marker: "sssss", msg: "longer than 128"},
		{name: "client id empty", edits: []edit{{"- id: svc", `- id: ""`}},
			field: "clients[2].id", marker: `- id: ""`, msg: "is required"},

		// confidential clients
		{name: "confidential without secret", edits: []edit{{"- id: svc\n    secret_hash:", "- id: svc\n    name:"}},
			field: "clients[2].secret_hash", marker: "- id: svc", msg: "is required for a confidential client"},
		{name: "secret hash not a hash", edits: []edit{{"- id: svc\n    secret_hash:", "- id: svc\n    secret_hash: plain-secret\n    name:"}},
			field: "clients[2].secret_hash", marker: "plain-secret", msg: "not a client secret hash"},
		{name: "confidential with none", edits: []edit{{"- id: svc\n", "- id: svc\n    token_endpoint_auth_method: none\n"}},
			field: "clients[2].token_endpoint_auth_method", marker: "method: none", msg: "only for public clients"},
		{name: "private_key_jwt without jwks", edits: []edit{{"- id: svc\n    secret_hash:", "- id: svc\n    token_endpoint_auth_method: private_key_jwt\n    name:"}},
			field: "clients[2].jwks", marker: "- id: svc", msg: "is required with private_key_jwt"},
		{name: "private_key_jwt with jwks", edits: []edit{{"- id: svc\n    secret_hash:", "- id: svc\n    token_endpoint_auth_method: private_key_jwt\n    jwks: '{\"keys\":[{\"kty\":\"EC\"}]}'\n    name:"}}},
		{name: "jwks not JSON", edits: []edit{{"- id: svc\n    secret_hash:", "- id: svc\n    token_endpoint_auth_method: private_key_jwt\n    jwks: '{keys'\n    name:"}},
			field: "clients[2].jwks", marker: "jwks:", msg: "not valid JSON"},
		{name: "jwks without keys", edits: []edit{{"- id: svc\n    secret_hash:", "- id: svc\n    token_endpoint_auth_method: private_key_jwt\n    jwks: '{\"kty\":\"EC\"}'\n    name:"}},
			field: "clients[2].jwks", marker: "jwks:", msg: `"keys" array`},
		{name: "unknown auth method", edits: []edit{{"- id: svc\n", "- id: svc\n    token_endpoint_auth_method: tls_client_auth\n"}},
			field: "clients[2].token_endpoint_auth_method", marker: "tls_client_auth", msg: "is not one of"},

		// public clients
		{name: "public with secret", edits: []edit{{"public: true\n", "public: true\n    secret_hash: x\n"}},
			field: "clients[1].secret_hash", marker: "secret_hash: x", msg: "public client has no secret"},
		{name: "public with basic auth", edits: []edit{{"public: true\n", "public: true\n    token_endpoint_auth_method: client_secret_basic\n"}},
			field: "clients[1].token_endpoint_auth_method", marker: "method: client_secret_basic", msg: "must use none"},
		{name: "public with client_credentials", edits: []edit{{"public: true\n", "public: true\n    grant_types: [authorization_code, client_credentials]\n"}},
			field: "clients[1].grant_types", marker: "client_credentials]", msg: "cannot use client_credentials"},

		// redirect URIs
		{name: "redirect http not loopback", edits: []edit{{"[https://app.agency.example/cb]", "[http://app.agency.example/cb]"}},
			field: "clients[0].redirect_uris[0]", marker: "http://app", msg: "http is only allowed on loopback (127.0.0.1, [::1], localhost)"},
		{name: "redirect http localhost", edits: []edit{{"[https://app.agency.example/cb]", "[http://localhost:9000/cb]"}}},
		{name: "redirect http ipv6 loopback", edits: []edit{{"[https://app.agency.example/cb]", `["http://[::1]:9000/cb"]`}}},
		{name: "redirect javascript", edits: []edit{{"[https://app.agency.example/cb]", `["javascript:alert(1)"]`}},
			field: "clients[0].redirect_uris[0]", marker: "javascript", msg: `scheme "javascript" is not allowed`},
		{name: "redirect data", edits: []edit{{"[https://app.agency.example/cb]", `["data:text/html,hi"]`}},
			field: "clients[0].redirect_uris[0]", marker: "data:", msg: `scheme "data" is not allowed`},
		{name: "redirect custom scheme", edits: []edit{{"[https://app.agency.example/cb]", `["com.example.app:/cb"]`}},
			field: "clients[0].redirect_uris[0]", marker: "com.example", msg: "is not allowed"},
		{name: "redirect fragment", edits: []edit{{"[https://app.agency.example/cb]", `["https://app.agency.example/cb#x"]`}},
			field: "clients[0].redirect_uris[0]", marker: "cb#x", msg: "fragment"},
		{name: "redirect userinfo", edits: []edit{{"[https://app.agency.example/cb]", `["https://evil@app.agency.example/cb"]`}},
			field: "clients[0].redirect_uris[0]", marker: "evil@", msg: "user info"},
		{name: "redirect relative", edits: []edit{{"[https://app.agency.example/cb]", `["/cb"]`}},
			field: "clients[0].redirect_uris[0]", marker: `["/cb"]`, msg: "absolute"},
		{name: "redirect dot segments", edits: []edit{{"[https://app.agency.example/cb]", `["https://app.agency.example/a/../cb"]`}},
			field: "clients[0].redirect_uris[0]", marker: "/../", msg: ".. path segments"},
		{name: "redirect with space", edits: []edit{{"[https://app.agency.example/cb]", `["https://app.agency.example/c b"]`}},
			field: "clients[0].redirect_uris[0]", marker: "c b", msg: "spaces"},
		{name: "authorization_code without redirect", edits: []edit{{"    redirect_uris: [\"http://127.0.0.1:3000/cb\"]\n", ""}},
			field: "clients[1].redirect_uris", marker: "- id: spa", msg: "at least one redirect URI"},
		{name: "post-logout http", edits: []edit{{"[https://app.agency.example/]", "[http://app.agency.example/]"}},
			field: "clients[0].post_logout_redirect_uris[0]", marker: "post_logout", msg: "http is only allowed on loopback"},
		{name: "post-logout javascript", edits: []edit{{"[https://app.agency.example/]", `["javascript://x/%0aalert(1)"]`}},
			field: "clients[0].post_logout_redirect_uris[0]", marker: "post_logout", msg: "not allowed"},

		// grants, scopes, consent
		{name: "unknown grant", edits: []edit{{"[client_credentials]", "[client_credentials, implicit]"}},
			field: "clients[2].grant_types[1]", marker: "implicit", msg: `"implicit" is not one of`},
		{name: "refresh without offline_access", edits: []edit{{"scopes: [openid, offline_access]", "scopes: [openid]"}},
			field: "clients[0].grant_types", marker: "refresh_token]", msg: "offline_access"},
		{name: "refresh without authorization_code", edits: []edit{{"[client_credentials]", "[client_credentials, refresh_token]\n    scopes: [offline_access]"}},
			field: "clients[2].grant_types", marker: "[client_credentials, refresh_token]", msg: "requires authorization_code"},
		{name: "scope with space", edits: []edit{{"scopes: [openid, offline_access]", `scopes: [openid, offline_access, "a b"]`}},
			field: "clients[0].scopes[2]", marker: `"a b"`, msg: "not a scope"},
		{name: "bad consent", edits: []edit{{"- id: svc\n", "- id: svc\n    consent: always\n"}},
			field: "clients[2].consent", marker: "consent:", msg: `"always" is not one of none, required`},
		// claims in the ID token, logout propagation
		{name: "id_token_claims", edits: []edit{{"scopes: [openid, offline_access]", "scopes: [openid, email, offline_access]\n    id_token_claims: [email, lanyard_policies]"}}},
		{name: "id_token_claims unknown", edits: []edit{{"scopes: [openid, offline_access]", "scopes: [openid, offline_access]\n    id_token_claims: [shoe_size]"}},
			field: "clients[0].id_token_claims[0]", marker: "shoe_size", msg: `"shoe_size" is not a claim Lanyard releases`},
		{name: "id_token_claims without its scope", edits: []edit{{"scopes: [openid, offline_access]", "scopes: [openid, offline_access]\n    id_token_claims: [lanyard_policies, email]"}},
			field: "clients[0].id_token_claims[1]", marker: "id_token_claims", msg: "needs the email scope"},
		{name: "id_token_claims twice", edits: []edit{{"scopes: [openid, offline_access]", "scopes: [openid, offline_access]\n    id_token_claims: [lanyard_policies, lanyard_policies]"}},
			field: "clients[0].id_token_claims[1]", marker: "id_token_claims", msg: "listed twice"},
		{name: "backchannel logout", edits: []edit{{"- id: spa\n", "- id: spa\n    backchannel_logout_uri: http://127.0.0.1:3000/bcl\n    backchannel_logout_session_required: true\n    frontchannel_logout_uri: http://127.0.0.1:3000/fcl\n    frontchannel_logout_session_required: true\n"}}},
		{name: "backchannel logout over http", edits: []edit{{"- id: spa\n", "- id: spa\n    backchannel_logout_uri: http://app.agency.example/bcl\n"}},
			field: "clients[1].backchannel_logout_uri", marker: "backchannel_logout_uri", msg: "http is only allowed on loopback"},
		{name: "backchannel logout with a fragment", edits: []edit{{"- id: spa\n", "- id: spa\n    backchannel_logout_uri: \"https://app.agency.example/bcl#x\"\n"}},
			field: "clients[1].backchannel_logout_uri", marker: "backchannel_logout_uri", msg: "fragment"},
		{name: "backchannel session required without uri", edits: []edit{{"- id: spa\n", "- id: spa\n    backchannel_logout_session_required: true\n"}},
			field: "clients[1].backchannel_logout_session_required", marker: "session_required", msg: "backchannel_logout_uri is not"},
		{name: "frontchannel logout for a service", edits: []edit{{"- id: svc\n", "- id: svc\n    frontchannel_logout_uri: https://svc.agency.example/fcl\n"}},
			field: "clients[2].frontchannel_logout_uri", marker: "frontchannel_logout_uri", msg: "only a client that signs officers in"},
		{name: "consent required", edits: []edit{{"- id: spa\n", "- id: spa\n    consent: required\n"}}},
		{name: "consent required for a service", edits: []edit{{"- id: svc\n", "- id: svc\n    consent: required\n"}},
			field: "clients[2].consent", marker: "consent:", msg: "only a client that signs officers in"},

		// journey and documents
		{name: "duplicate step", edits: []edit{{"documents:", "journey:\n  steps: [terms, terms]\ndocuments:"}},
			field: "journey.steps[1]", marker: "[terms, terms]", msg: "listed twice"},
		// Which names a step may have is the journey's rule (flows.ConfigRule,
		// tested there); without it, the default order follows the documents.
		{name: "default steps follow the documents", edits: []edit{{"  - id: privacy\n    title: Privacy policy\n    version: \"1\"\n", ""}}},
		{name: "fewer steps", edits: []edit{{"  - id: privacy\n    title: Privacy policy\n    version: \"1\"\n", ""}, {"documents:", "journey:\n  steps: [mfa-enrol, terms]\ndocuments:"}}},
		{name: "another document", edits: []edit{{"- id: terms", "- id: code-of-conduct"}, {"    title: Terms of use\n", "    title: Code of conduct\n    file: conduct.md\n"}},
			field: "documents[1].file", marker: "conduct.md", msg: "cannot be read"},
		{name: "document without text", edits: []edit{{"- id: terms", "- id: cookies"}},
			field: "documents[1].file", marker: "- id: cookies", msg: `there is no built-in text for "cookies"`},
		{name: "document id with capitals", edits: []edit{{"- id: terms", "- id: Terms"}},
			field: "documents[1].id", marker: "- id: Terms", msg: `"Terms" is not an id`},
		{name: "document id with a slash", edits: []edit{{"- id: terms", `- id: "a/../terms"`}},
			field: "documents[1].id", marker: "a/../terms", msg: "is not an id"},
		{name: "document without id", edits: []edit{{"- id: terms\n    title", "- title"}},
			field: "documents[1].id", marker: "title: Terms of use", msg: "is required"},
		{name: "duplicate document", edits: []edit{{"- id: terms", "- id: privacy # again"}, {"documents:", "journey:\n  steps: [mfa-enrol, privacy]\ndocuments:"}},
			field: "documents[1].id", marker: "privacy # again", msg: "already used by documents[0]"},
		{name: "document without version", edits: []edit{{"    title: Terms of use\n    version: \"1\"\n", "    title: Terms of use\n"}},
			field: "documents[1].version", marker: "- id: terms", msg: "is required"},
		{name: "document without title", edits: []edit{{"    title: Terms of use\n", ""}},
			field: "documents[1].title", marker: "- id: terms", msg: "is required"},
		{name: "document file missing", edits: []edit{{"    title: Terms of use\n", "    title: Terms of use\n    file: terms.md\n"}},
			field: "documents[1].file", marker: "terms.md", msg: "cannot be read"},

		// invitations
		{name: "no allowed domains", edits: []edit{{"  allowed_domains: [agency.example]\n", ""}},
			field: "invitations.allowed_domains", marker: "invitations:", msg: "is required"},
		{name: "upper-case domain", edits: []edit{{"[agency.example]", "[Agency.Example]"}},
			field: "invitations.allowed_domains[0]", marker: "Agency.Example", msg: "must be lower case"},
		{name: "domain with @", edits: []edit{{"[agency.example]", `["@agency.example"]`}},
			field: "invitations.allowed_domains[0]", marker: `"@agency.example"]`, msg: "not a domain name"},
		{name: "bad mailbox pattern", edits: []edit{{`["*@litemail.agency.example"]`, `["[a-@x"]`}},
			field: "invitations.refused_mailboxes[0]", marker: "[a-@x", msg: "not a valid pattern"},
		{name: "upper-case mailbox pattern", edits: []edit{{`["*@litemail.agency.example"]`, `["*@LiteMail.agency.example"]`}},
			field: "invitations.refused_mailboxes[0]", marker: "LiteMail", msg: "lower case"},

		// account requests and the admin console
		{name: "requests per domain", edits: []edit{{"documents:", "requests:\n  approval: automatic\n  domains: [{domain: agency.example, approval: manual}]\n  unapproved_for: 7d\n  organisations: [HQ, Regional office]\nadmins:\n  - {email: boss@agency.example, roles: [admin, approver]}\ndocuments:"}}},
		{name: "unknown approval", edits: []edit{{"documents:", "requests:\n  approval: sometimes\ndocuments:"}},
			field: "requests.approval", marker: "approval: sometimes", msg: `"sometimes" is not one of manual, automatic`},
		{name: "approval for a domain not allowed", edits: []edit{{"documents:", "requests:\n  domains:\n    - {domain: other.example, approval: automatic}\ndocuments:"}},
			field: "requests.domains[0].domain", marker: "other.example", msg: "not one of invitations.allowed_domains"},
		{name: "organisation listed twice", edits: []edit{{"documents:", "requests:\n  organisations:\n    - HQ\n    - HQ # again\ndocuments:"}},
			field: "requests.organisations[1]", marker: "HQ # again", msg: "listed twice"},
		{name: "admin with an unknown role", edits: []edit{{"documents:", "admins:\n  - email: boss@agency.example\n    roles: [admin, root]\ndocuments:"}},
			field: "admins[0].roles[1]", marker: "roles: [admin, root]", msg: `"root" is not one of admin, approver, helpdesk`},
		{name: "admin without roles", edits: []edit{{"documents:", "admins:\n  - email: boss@agency.example\ndocuments:"}},
			field: "admins[0].roles", marker: "boss@agency.example", msg: "is required"},
		{name: "admin in capitals", edits: []edit{{"documents:", "admins:\n  - email: Boss@agency.example\n    roles: [helpdesk]\ndocuments:"}},
			field: "admins[0].email", marker: "Boss@", msg: "must be lower case"},
		{name: "admin not an address", edits: []edit{{"documents:", "admins:\n  - email: boss\n    roles: [helpdesk]\ndocuments:"}},
			field: "admins[0].email", marker: "email: boss", msg: "not an email address"},
		{name: "admin listed twice", edits: []edit{{"documents:", "admins:\n  - {email: boss@agency.example, roles: [helpdesk]}\n  - {email: boss@agency.example, roles: [admin]} # again\ndocuments:"}},
			field: "admins[1].email", marker: "# again", msg: "already listed as admins[0]"},

		// password policy
		{name: "password min too small", edits: []edit{{"documents:", "password:\n  min_length: 6\ndocuments:"}},
			field: "password.min_length", marker: "min_length", msg: "at least 8"},
		{name: "password max below min", edits: []edit{{"documents:", "password:\n  min_length: 20\n  max_length: 16\ndocuments:"}},
			field: "password.max_length", marker: "max_length", msg: "less than password.min_length"},
		{name: "password max too large", edits: []edit{{"documents:", "password:\n  max_length: 4096\ndocuments:"}},
			field: "password.max_length", marker: "max_length", msg: "more than 1024"},

		// keys
		{name: "algorithms without RS256", edits: []edit{{"keys:\n", "keys:\n  algorithms: [ES256]\n"}},
			field: "keys.algorithms", marker: "algorithms", msg: "must include RS256"},
		{name: "unknown algorithm", edits: []edit{{"keys:\n", "keys:\n  algorithms: [RS256, HS256]\n"}},
			field: "keys.algorithms[1]", marker: "HS256", msg: `"HS256" is not one of`},
		{name: "encryption key missing", edits: []edit{{"  encryption_key: " + testKey + "\n", "  algorithms: [RS256]\n"}},
			field: "keys.encryption_key", marker: "keys:", msg: "is required outside dev"},
		{name: "encryption key missing in dev", edits: []edit{{"  encryption_key: " + testKey + "\n", "  algorithms: [RS256]\n"}, {"issuer:", "dev: true\nissuer:"}}},
		{name: "encryption key not base64", edits: []edit{{testKey, "not*base64!"}},
			field: "keys.encryption_key", marker: "not*base64", msg: "not base64"},
		{name: "encryption key 16 bytes", edits: []edit{{testKey, "MDEyMzQ1Njc4OWFiY2RlZg=="}},
			field: "keys.encryption_key", marker: "MDEyMzQ1Njc4OWFiY2RlZg", msg: "16 bytes, want 32"},
		{name: "encryption key url base64", edits: []edit{{testKey, "_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-8"}}},
		{name: "retire_after too short", edits: []edit{{"keys:\n", "keys:\n  retire_after: 30m\n"}},
			field: "keys.retire_after", marker: "retire_after", msg: "shorter than the longest"},

		// tokens and sessions
		{name: "authorize code too long", edits: []edit{{"documents:", "tokens:\n  authorize_code: 15m\ndocuments:"}},
			field: "tokens.authorize_code", marker: "authorize_code", msg: "within 10m"},
		{name: "authorize code 10m", edits: []edit{{"documents:", "tokens:\n  authorize_code: 10m\ndocuments:"}}},
		{name: "id token outlives retire_after", edits: []edit{{"documents:", "tokens:\n  id_token: 2d\ndocuments:"}},
			field: "keys.retire_after", marker: "keys:", msg: "shorter than the longest"},
		{name: "idle longer than absolute", edits: []edit{{"documents:", "session:\n  idle_timeout: 2d\ndocuments:"}},
			field: "session.idle_timeout", marker: "idle_timeout", msg: "longer than session.absolute_timeout"},

		// mail
		{name: "no smtp host", edits: []edit{{"    host: smtp.agency.example\n", ""}},
			field: "mail.smtp.host", marker: "smtp:", msg: "is required outside dev (or set mail.outbox to write mail to a folder)"},
		{name: "outbox instead of smtp", edits: []edit{{"    host: smtp.agency.example\n", ""}, {"mail:\n", "mail:\n  outbox: /var/spool/lanyard\n"}}},
		{name: "no smtp host in dev", edits: []edit{{"    host: smtp.agency.example\n", ""}, {"issuer:", "dev: true\nissuer:"}}},
		{name: "bad smtp tls", edits: []edit{{"    username:", "    tls: ssl\n    username:"}},
			field: "mail.smtp.tls", marker: "tls: ssl", msg: `"ssl" is not one of starttls, tls, none`},
		{name: "smtp password in clear", edits: []edit{{"    username:", "    tls: none\n    username:"}},
			field: "mail.smtp.tls", marker: "tls: none", msg: "clear text"},
		{name: "smtp port", edits: []edit{{"    username:", "    port: 70000\n    username:"}},
			field: "mail.smtp.port", marker: "port:", msg: "not a port number"},
		{name: "bad from", edits: []edit{{`from: "Lanyard <no-reply@agency.example>"`, `from: "Lanyard"`}},
			field: "mail.from", marker: "from:", msg: "not a mail address"},

		// log, database, listeners
		{name: "bad log format", edits: []edit{{"documents:", "log:\n  format: xml\ndocuments:"}},
			field: "log.format", marker: "format: xml", msg: `"xml" is not one of text, json`},
		{name: "bad log level", edits: []edit{{"documents:", "log:\n  level: verbose\ndocuments:"}},
			field: "log.level", marker: "verbose", msg: "is not one of debug, info, warn, error"},
		{name: "database mysql", edits: []edit{{"keys:", "database:\n  url: mysql://u:hunter2@db/x\nkeys:"}},
			field: "database.url", marker: "mysql", msg: "must start with sqlite://"},
		{name: "database postgres", edits: []edit{{"keys:", "database:\n  url: postgresql://u:p@db/x\nkeys:"}}},
		{name: "database sqlite", edits: []edit{{"keys:", "database:\n  url: sqlite:///var/lib/lanyard/l.db\nkeys:"}}},
		{name: "database max_connections", edits: []edit{{"keys:", "database:\n  url: postgres://u:p@db/x\n  max_connections: 50\nkeys:"}}},
		{name: "database max_connections negative", edits: []edit{{"keys:", "database:\n  max_connections: -1\nkeys:"}},
			field: "database.max_connections", marker: "max_connections: -1", msg: "out of range: use 1 to 1000"},
		{name: "database max_connections huge", edits: []edit{{"keys:", "database:\n  max_connections: 5000\nkeys:"}},
			field: "database.max_connections", marker: "max_connections: 5000", msg: "out of range"},
		{name: "bad listen", edits: []edit{{"keys:", "listen: 8080\nkeys:"}},
			field: "listen", marker: "listen:", msg: "not a host:port"},
		{name: "metrics on main listener", edits: []edit{{"keys:", "metrics:\n  listen: \"\"\nkeys:"}}},
		{name: "webauthn origin with path", edits: []edit{{"keys:", "webauthn:\n  extra_origins: [https://x.agency.example/app]\nkeys:"}},
			field: "webauthn.extra_origins[0]", marker: "extra_origins", msg: "not an origin"},

		// the approval app
		{name: "approval defaults", edits: []edit{{"keys:", "approval:\n  push_contact: security@agency.example\nkeys:"}}},
		{name: "approval timeout too short", edits: []edit{{"keys:", "approval:\n  request_timeout: 5s\nkeys:"}},
			field: "approval.request_timeout", marker: "request_timeout", msg: "between 15s and 10m0s"},
		{name: "approval pairing too long", edits: []edit{{"keys:", "approval:\n  pairing_timeout: 2h\nkeys:"}},
			field: "approval.pairing_timeout", marker: "pairing_timeout", msg: "between 1m0s and 30m0s"},
		{name: "approval hourly limit", edits: []edit{{"keys:", "approval:\n  hourly_limit: 1000\nkeys:"}},
			field: "approval.hourly_limit", marker: "hourly_limit", msg: "between 1 and 100"},
		{name: "approval push host", edits: []edit{{"keys:", "approval:\n  push_hosts: [\"https://fcm.googleapis.com\"]\nkeys:"}},
			field: "approval.push_hosts[0]", marker: "push_hosts", msg: "not a host name"},
		{name: "approval push contact", edits: []edit{{"keys:", "approval:\n  push_contact: http://agency.example\nkeys:"}},
			field: "approval.push_contact", marker: "push_contact", msg: "neither an email address nor an https URL"},

		// self-service recovery
		{name: "recovery", edits: []edit{{"keys:", "recovery:\n  reset_link_for: 30m\n  helpdesk: the IT service desk (6000 0000)\n  helpdesk_asks: [Your staff number.]\nkeys:"}}},
		{name: "reset link too long", edits: []edit{{"keys:", "recovery:\n  reset_link_for: 2h\nkeys:"}},
			field: "recovery.reset_link_for", marker: "reset_link_for", msg: "between 5m and 1h"},
		{name: "reset link too short", edits: []edit{{"keys:", "recovery:\n  reset_link_for: 1m\nkeys:"}},
			field: "recovery.reset_link_for", marker: "reset_link_for", msg: "between 5m and 1h"},
		{name: "helpdesk on two lines", edits: []edit{{"keys:", "recovery:\n  helpdesk: \"desk\\nevil\"\nkeys:"}},
			field: "recovery.helpdesk", marker: "helpdesk", msg: "one line"},
		{name: "empty helpdesk question", edits: []edit{{"keys:", "recovery:\n  helpdesk_asks: [\" \"]\nkeys:"}},
			field: "recovery.helpdesk_asks[0]", marker: "helpdesk_asks", msg: "is empty"},

		// throttle
		{name: "zero lock", edits: []edit{{"documents:", "throttle:\n  lock_for: 0s\ndocuments:"}}}, // 0 means default
		{name: "invitation validity", edits: []edit{{"  allowed_domains:", "  valid_for: 14d\n  allowed_domains:"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clearOverrides(t)
			text := base(t)
			for _, e := range tc.edits {
				if !strings.Contains(text, e.old) {
					t.Fatalf("edit target %q not in the base configuration", e.old)
				}
				text = strings.Replace(text, e.old, e.new, 1)
			}
			path := writeConfig(t, text)
			c, err := Load(path)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			ps := problemsOf(t, c.Validate())
			if tc.field == "" {
				if len(ps) != 0 {
					t.Fatalf("want valid, got:\n%v", ps)
				}
				return
			}
			if len(ps) != 1 {
				t.Fatalf("want exactly one problem, got %d:\n%v", len(ps), ps)
			}
			p := ps[0]
			wantLine := 0
			if tc.marker != "" {
				wantLine = lineContaining(t, text, tc.marker)
			}
			if p.Field != tc.field || p.Line != wantLine || p.File != path || !strings.Contains(p.Msg, tc.msg) {
				t.Errorf("got  %s:%d: %s: %s\nwant %s:%d: %s: …%s…", p.File, p.Line, p.Field, p.Msg, path, wantLine, tc.field, tc.msg)
			}
			prefix := fmt.Sprintf("%s:%d: %s: ", path, wantLine, tc.field)
			if wantLine == 0 {
				prefix = fmt.Sprintf("%s: %s: ", path, tc.field)
			}
			if !strings.HasPrefix(ps.Error(), prefix) {
				t.Errorf("Error() = %q, want prefix %q", ps.Error(), prefix)
			}
		})
	}
}

// TestValidateEveryProblemAtOnce: four unrelated problems give four lines,
// in line order, in the "FILE:LINE: field: message" form.
func TestValidateEveryProblemAtOnce(t *testing.T) {
	clearOverrides(t)
	text := base(t)
	for _, e := range [][2]string{
		{"issuer: https://", "issuer: http://"},
		{"[agency.example]", "[Agency.example]"},
		{"    redirect_uris: [\"http://127.0.0.1:3000/cb\"]", "    redirect_uris: [\"https://spa.agency.example/cb#top\"]"},
		{"[client_credentials]", "[client_credentials, password]"},
	} {
		text = strings.Replace(text, e[0], e[1], 1)
	}
	path := writeConfig(t, text)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate()
	lines := strings.Split(err.Error(), "\n")
	want := []string{
		fmt.Sprintf("%s:1: issuer: must use https", path),
		fmt.Sprintf("%s:11: invitations.allowed_domains[0]: \"Agency.example\" must be lower case", path),
		fmt.Sprintf("%s:29: clients[1].redirect_uris[0]: must not contain a fragment", path),
		fmt.Sprintf("%s:32: clients[2].grant_types[1]: \"password\" is not one of", path),
	}
	if len(lines) != len(want) {
		t.Fatalf("want %d lines, got %d:\n%s", len(want), len(lines), err)
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("line %d = %q\nwant prefix   %q", i, lines[i], want[i])
		}
	}
	if len(problemsOf(t, err)) != 4 {
		t.Errorf("want 4 Problems")
	}
}

func TestValidateDocumentFileRelativeToConfig(t *testing.T) {
	clearOverrides(t)
	text := strings.Replace(base(t), "    title: Terms of use\n", "    title: Terms of use\n    file: policies/terms.md\n", 1)
	path := writeConfig(t, text)
	dir := filepath.Dir(path)
	if err := os.MkdirAll(filepath.Join(dir, "policies"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "policies", "terms.md"), []byte("# Our terms\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// From another working directory, the path still resolves against the
	// configuration file's folder.
	t.Chdir(t.TempDir())
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	d, ok := c.Document("terms")
	if !ok {
		t.Fatal("no terms document")
	}
	md, err := d.Markdown(c)
	if err != nil || string(md) != "# Our terms\n" {
		t.Fatalf("Markdown = %q, %v", md, err)
	}
}

// A configuration built in Go (no file) still gets field-named problems, and
// a client's Line is used when there is no source map.
func TestValidateHandBuilt(t *testing.T) {
	c := &Config{
		Issuer: "https://id.agency.example",
		Dev:    true,
		Invitations: Invitations{
			AllowedDomains: []string{"agency.example"},
		},
		Journey: Journey{Steps: []string{StepMFAEnrol}},
		Clients: []Client{{ID: "x", Public: true, RedirectURIs: []string{"http://x.example/cb"}, Line: 7}},
	}
	c.ApplyDefaults()
	ps := problemsOf(t, c.Validate())
	if len(ps) != 1 || ps[0].Line != 7 || ps[0].Field != "clients[0].redirect_uris[0]" {
		t.Fatalf("got %#v", ps)
	}
	if got := ps.Error(); got != "line 7: clients[0].redirect_uris[0]: http is only allowed on loopback (127.0.0.1, [::1], localhost)" {
		t.Errorf("Error() = %q", got)
	}
}

// Validate reports unset values rather than inventing defaults: a zero
// Config is full of problems, and Validate changes nothing.
func TestValidateZeroConfig(t *testing.T) {
	var c Config
	ps := problemsOf(t, c.Validate())
	if len(ps) < 10 {
		t.Fatalf("want many problems for a zero Config, got %d:\n%v", len(ps), ps)
	}
	if c.Listen != "" || c.Tokens.AccessToken != 0 {
		t.Error("Validate changed the configuration")
	}
}

func TestValidateTrustedProxies(t *testing.T) {
	c, err := Dev("http://localhost:8080", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c.TrustedProxies = []string{"10.0.0.0/8", "192.0.2.7", "::1", "proxy.internal"}
	err = c.Validate()
	if err == nil || !strings.Contains(err.Error(), `trusted_proxies[3]: "proxy.internal" is not an address or CIDR prefix`) {
		t.Fatalf("Validate: %v", err)
	}
	c.TrustedProxies = c.TrustedProxies[:3]
	if err := c.Validate(); err != nil {
		t.Fatalf("valid proxies refused: %v", err)
	}
}
