package config

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestDevClients(t *testing.T) {
	clearOverrides(t)
	dir := t.TempDir()
	c, err := Dev("http://localhost:8080", dir)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Dev || c.Issuer != "http://localhost:8080" || c.DataDir != dir || c.Source != "" {
		t.Errorf("dev basics: dev=%v issuer=%q data=%q source=%q", c.Dev, c.Issuer, c.DataDir, c.Source)
	}
	if c.Mail.Outbox != filepath.Join(dir, "outbox") {
		t.Errorf("outbox = %q, want it under the data dir", c.Mail.Outbox)
	}
	type want struct {
		name, secret, redirect, logout string
		grants, scopes                 []string
	}
	wants := map[string]want{
		"docs-portal-staging": {"Docs portal (staging)", "staging-secret", "http://localhost:9001/callback", "http://localhost:9001/",
			[]string{"authorization_code", "refresh_token"}, []string{"openid", "email", "profile", "offline_access"}},
		"docs-portal-production": {"Docs portal (production)", "production-secret", "http://localhost:9002/callback", "http://localhost:9002/",
			[]string{"authorization_code", "refresh_token"}, []string{"openid", "email", "profile", "offline_access"}},
		"ci-service": {"", "ci-service-secret", "", "", []string{"client_credentials"}, []string{"docs:read"}},
	}
	if len(c.Clients) != len(wants) {
		t.Fatalf("dev has %d clients, want exactly %d", len(c.Clients), len(wants))
	}
	for _, cl := range c.Clients {
		w, ok := wants[cl.ID]
		if !ok {
			t.Errorf("unexpected dev client %q", cl.ID)
			continue
		}
		delete(wants, cl.ID)
		if w.name != "" && cl.Name != w.name {
			t.Errorf("%s: name %q, want %q", cl.ID, cl.Name, w.name)
		}
		if !VerifySecret(cl.SecretHash, w.secret) {
			t.Errorf("%s: secret %q does not verify", cl.ID, w.secret)
		}
		if VerifySecret(cl.SecretHash, w.secret+"x") {
			t.Errorf("%s: a wrong secret verifies", cl.ID)
		}
		if cl.Public || cl.TokenEndpointAuthMethod != "client_secret_basic" || cl.Line == 0 {
			t.Errorf("%s: public=%v method=%q line=%d", cl.ID, cl.Public, cl.TokenEndpointAuthMethod, cl.Line)
		}
		if w.redirect == "" {
			if len(cl.RedirectURIs) != 0 || len(cl.PostLogoutRedirectURIs) != 0 {
				t.Errorf("%s: has redirect URIs %v %v", cl.ID, cl.RedirectURIs, cl.PostLogoutRedirectURIs)
			}
		} else if !slices.Equal(cl.RedirectURIs, []string{w.redirect}) || !slices.Equal(cl.PostLogoutRedirectURIs, []string{w.logout}) {
			t.Errorf("%s: redirects %v %v", cl.ID, cl.RedirectURIs, cl.PostLogoutRedirectURIs)
		}
		if !slices.Equal(cl.GrantTypes, w.grants) || !slices.Equal(cl.Scopes, w.scopes) {
			t.Errorf("%s: grants %v scopes %v", cl.ID, cl.GrantTypes, cl.Scopes)
		}
	}
	if got, ok := c.Client("ci-service"); !ok || got.ID != "ci-service" {
		t.Error("Client(ci-service) not found")
	}
	if _, ok := c.Client("nope"); ok {
		t.Error("Client(nope) found")
	}
}

func TestDevPolicies(t *testing.T) {
	clearOverrides(t)
	c, err := Dev("http://127.0.0.1:8080", "")
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "./data" {
		t.Errorf("data dir = %q", c.DataDir)
	}
	if !slices.Equal(c.Invitations.AllowedDomains, []string{"agency.example"}) ||
		!slices.Equal(c.Invitations.RefusedMailboxes, []string{"*@litemail.agency.example"}) {
		t.Errorf("invitations = %+v", c.Invitations)
	}
	if c.Journey.DisplayName != "Lanyard" || c.Journey.Environment != "Development" || c.Mail.From != "Lanyard <no-reply@agency.example>" {
		t.Errorf("journey %+v, from %q", c.Journey, c.Mail.From)
	}
	for id, title := range map[string]string{"privacy": "Privacy policy", "terms": "Terms of use"} {
		d, ok := c.Document(id)
		if !ok || d.Title != title || d.Version != "2026-01" || d.File != "" {
			t.Errorf("document %s = %+v", id, d)
			continue
		}
		md, err := d.Markdown(c)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(md), "# "+title+"\n") || strings.Count(string(md), "\n") < 15 {
			t.Errorf("sample %s:\n%s", id, md)
		}
	}
	if _, err := (Document{ID: "cookies"}).Markdown(c); err == nil {
		t.Error("a document without file or sample gave Markdown")
	}
	if _, err := (Document{ID: "terms", File: filepath.Join(t.TempDir(), "missing.md")}).Markdown(c); err == nil {
		t.Error("a missing file gave Markdown")
	}
}

func TestDevRejectsBadIssuer(t *testing.T) {
	clearOverrides(t)
	_, err := Dev("http://localhost:8080/", t.TempDir())
	ps := problemsOf(t, err)
	if len(ps) != 1 || ps[0].Field != "issuer" {
		t.Fatalf("got %v", err)
	}
	_, err = Dev("", t.TempDir())
	if err == nil {
		t.Fatal("empty issuer accepted")
	}
}

// TestExampleValidates loads lanyard.example.yaml with the environment and
// files it names, and checks that the secrets reached the right fields.
func TestExampleValidates(t *testing.T) {
	clearOverrides(t)
	t.Setenv(EnvEncryptionKey, testKey)
	t.Setenv("LANYARD_DB_PASSWORD", "db-pass")
	data, err := os.ReadFile("lanyard.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, content := range map[string]string{
		"secrets/smtp-password": "smtp-pass\n",
		"policies/privacy.md":   "# Privacy policy\n",
		"policies/terms.md":     "# Terms of use\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c, err := LoadBytes(filepath.Join(dir, "lanyard.yaml"), data)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Dev {
		t.Error("the production example has dev set")
	}
	if got := c.Database.URL.Value(); !strings.Contains(got, "lanyard:db-pass@db.agency.example") {
		t.Errorf("database url = %q", got)
	}
	if c.Mail.SMTP.Password.Value() != "smtp-pass" || c.Keys.EncryptionKey.Value() != testKey {
		t.Error("secrets not loaded from file and environment")
	}
	ids := []string{}
	for _, cl := range c.Clients {
		ids = append(ids, cl.ID)
	}
	if !slices.Equal(ids, []string{"docs-portal-staging", "docs-portal-production", "ci-service"}) {
		t.Errorf("clients = %v", ids)
	}

	// Without the environment it names, the example says which variable is missing.
	os.Unsetenv("LANYARD_DB_PASSWORD") // restored by t.Setenv's cleanup
	_, err = LoadBytes(filepath.Join(dir, "lanyard.yaml"), data)
	if err == nil || !strings.Contains(err.Error(), "environment variable LANYARD_DB_PASSWORD is not set") {
		t.Errorf("err = %v", err)
	}
}

// TestExampleHasEveryKey keeps the example complete: every key of Config
// appears in it.
func TestExampleHasEveryKey(t *testing.T) {
	clearOverrides(t)
	t.Setenv(EnvEncryptionKey, testKey)
	t.Setenv("LANYARD_DB_PASSWORD", "x")
	dir := t.TempDir()
	data, err := os.ReadFile("lanyard.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Secrets files need not exist for this check: point them at one file.
	if err := os.MkdirAll(filepath.Join(dir, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secrets", "smtp-password"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadBytes(filepath.Join(dir, "lanyard.yaml"), data)
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for _, key := range allKeys() {
		if !c.has(key) {
			missing = append(missing, key)
		}
	}
	if len(missing) > 0 {
		t.Errorf("lanyard.example.yaml lacks %v", missing)
	}
}

// allKeys lists the path of every YAML key of Config, with the first element
// of lists of structs ("clients[0].id").
func allKeys() []string {
	var keys []string
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || name == "" || name == "-" {
				continue
			}
			p := join(prefix, name)
			keys = append(keys, p)
			switch {
			case f.Type.Kind() == reflect.Struct && f.Type != durationType:
				walk(p, f.Type)
			case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
				walk(p+"[0]", f.Type.Elem())
			}
		}
	}
	walk("", reflect.TypeFor[Config]())
	return keys
}
