package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testKey is "0123456789abcdef0123456789abcdef" in base64: a well-formed
// key-encryption key.
const testKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

// baseYAML is a valid production configuration; validation cases change one
// thing in it and expect exactly one problem.
const baseYAML = `issuer: https://id.agency.example
keys:
  encryption_key: ` + testKey + `
mail:
  from: "Lanyard <no-reply@agency.example>"
  smtp:
    host: smtp.agency.example
    username: lanyard
    password: smtp-password-123
invitations:
  allowed_domains: [agency.example]
  refused_mailboxes: ["*@litemail.agency.example"]
documents:
  - id: privacy
    title: Privacy policy
    version: "1"
  - id: terms
    title: Terms of use
    version: "1"
clients:
  - id: web
    secret_hash: "WEBHASH"
    redirect_uris: [https://app.agency.example/cb]
    post_logout_redirect_uris: [https://app.agency.example/]
    grant_types: [authorization_code, refresh_token]
    scopes: [openid, offline_access]
  - id: spa
    public: true
    redirect_uris: ["http://127.0.0.1:3000/cb"]
  - id: svc
    secret_hash: "SVCHASH"
    grant_types: [client_credentials]
`

// clearOverrides keeps the developer's environment out of the tests.
func clearOverrides(t *testing.T) {
	t.Helper()
	t.Setenv(EnvDatabaseURL, "")
	t.Setenv(EnvEncryptionKey, "")
}

func mustHash(t testing.TB, secret string) string {
	t.Helper()
	h, err := HashSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// base returns baseYAML with real secret hashes.
func base(t testing.TB) string {
	t.Helper()
	s := strings.Replace(baseYAML, "WEBHASH", mustHash(t, "web-secret-0123456789"), 1)
	return strings.Replace(s, "SVCHASH", mustHash(t, "svc-secret-0123456789"), 1)
}

// writeConfig writes text to lanyard.yaml in a fresh folder and returns its path.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lanyard.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// problemsOf returns the Problems in err, failing the test when err is
// something else.
func problemsOf(t *testing.T, err error) Problems {
	t.Helper()
	if err == nil {
		return nil
	}
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error is %T, not Problems: %v", err, err)
	}
	return ps
}

// lineContaining is the 1-based number of the first line of text containing
// marker.
func lineContaining(t *testing.T, text, marker string) int {
	t.Helper()
	for i, l := range strings.Split(text, "\n") {
		if strings.Contains(l, marker) {
			return i + 1
		}
	}
	t.Fatalf("marker %q not in text", marker)
	return 0
}
