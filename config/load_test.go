package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadSetsSourceAndClientLines(t *testing.T) {
	clearOverrides(t)
	text := base(t)
	path := writeConfig(t, text)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Source != path {
		t.Errorf("Source = %q, want %q", c.Source, path)
	}
	for i, marker := range []string{"- id: web", "- id: spa", "- id: svc"} {
		if want := lineContaining(t, text, marker); c.Clients[i].Line != want {
			t.Errorf("clients[%d].Line = %d, want %d", i, c.Clients[i].Line, want)
		}
	}
	// Load applies defaults but does not validate.
	if c.Listen != ":8080" || c.Clients[1].TokenEndpointAuthMethod != "none" {
		t.Errorf("defaults not applied: listen %q, spa auth %q", c.Listen, c.Clients[1].TokenEndpointAuthMethod)
	}
	if c.Mail.SMTP.Password.Value() != "smtp-password-123" {
		t.Errorf("smtp password = %q", c.Mail.SMTP.Password.Value())
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Fatalf("err = %v", err)
	}
}

// TestLoadErrors: problems found while reading the file, each with its line
// and field. Every case must be reported, not just the first.
func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		want []string // each line of Error() after "FILE:"
	}{
		{
			name: "unknown key in a client suggests the right one",
			yaml: "clients:\n  - id: a\n    redirect_uri: https://x.example/cb\n",
			want: []string{`3: clients[0]: unknown key "redirect_uri" (did you mean redirect_uris?)`},
		},
		{
			name: "unknown top-level key",
			yaml: "issuer: https://x.example\nlisten_addr: :80\n",
			want: []string{`2: unknown key "listen_addr" (did you mean listen?)`},
		},
		{
			name: "unknown key, nothing close",
			yaml: "mail:\n  smtp:\n    starttls_required: true\n",
			want: []string{`3: mail.smtp: unknown key "starttls_required"`},
		},
		{
			name: "suggests a _file key",
			yaml: "keys:\n  encryption_key_fle: /k\n",
			want: []string{`2: keys: unknown key "encryption_key_fle" (did you mean encryption_key_file?)`},
		},
		{
			name: "bad duration",
			yaml: "tokens:\n  access_token: 1 hour\n",
			want: []string{`2: tokens.access_token: invalid duration "1 hour"`},
		},
		{
			name: "duration without unit",
			yaml: "session:\n  idle_timeout: 3600\n",
			want: []string{`2: session.idle_timeout: duration "3600" has no unit`},
		},
		{
			name: "wrong types",
			yaml: "dev: yes please\nmail:\n  smtp:\n    port: \"587\"\nclients: web\ninvitations:\n  allowed_domains: agency.example\n",
			want: []string{
				`1: dev: expected true or false, got "yes please"`,
				`4: mail.smtp.port: expected a whole number, got the quoted string "587"`,
				`5: clients: expected a list`,
				`7: invitations.allowed_domains: expected a list`,
			},
		},
		{
			name: "mapping where a string belongs",
			yaml: "issuer:\n  url: https://x.example\n",
			want: []string{`2: issuer: expected a string, got a mapping`},
		},
		{
			name: "duplicate key",
			yaml: "issuer: https://a.example\nlisten: :1\nissuer: https://b.example\n",
			want: []string{`3: issuer: key "issuer" appears twice (first on line 1)`},
		},
		{
			name: "YAML syntax: unclosed list",
			yaml: "issuer: https://a.example\nlisten: :80\nclients: [a, b\n",
			want: []string{`3: YAML syntax: did not find expected ',' or ']'`},
		},
		{
			name: "YAML syntax: bad indentation",
			yaml: "issuer: https://a.example\n  listen: :80\n",
			want: []string{`2: YAML syntax: mapping values are not allowed`},
		},
		{
			name: "YAML syntax: tab",
			yaml: "issuer: https://a.example\n\tlisten: :80\n",
			want: []string{`2: YAML syntax: found a tab character`},
		},
		{
			name: "not a mapping",
			yaml: "- a\n- b\n",
			want: []string{`1: expected a mapping of keys to values, got a list`},
		},
		{
			name: "four problems at once",
			yaml: "issuer: https://x.example\nlistn: :80\ntokens:\n  access_token: forever\nclients:\n  - id: a\n    scope: [openid]\n    public: maybe\n",
			want: []string{
				`2: unknown key "listn" (did you mean listen?)`,
				`4: tokens.access_token: invalid duration "forever"`,
				`7: clients[0]: unknown key "scope" (did you mean scopes?)`,
				`8: clients[0].public: expected true or false, got "maybe"`,
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clearOverrides(t)
			path := writeConfig(t, tc.yaml)
			c, err := Load(path)
			if err == nil {
				t.Fatalf("no error; loaded %+v", c)
			}
			if c != nil {
				t.Error("a failed Load returned a Config")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("want %d problems, got %d:\n%s", len(tc.want), len(lines), err)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(lines[i], path+":"+w) {
					t.Errorf("problem %d:\n got %s\nwant %s:%s…", i, lines[i], path, w)
				}
			}
			if ps := problemsOf(t, err); len(ps) != len(tc.want) {
				t.Errorf("Problems has %d entries", len(ps))
			}
		})
	}
}

func TestLoadEnvSecrets(t *testing.T) {
	clearOverrides(t)
	t.Setenv("TEST_KEK", testKey)
	t.Setenv("TEST_DB_PASSWORD", "s3cr3t")
	t.Setenv("TEST_DB_HOST", "db.agency.example")
	c, err := LoadBytes("", []byte(`
keys:
  encryption_key: ${TEST_KEK}
database:
  url: postgres://lanyard:${TEST_DB_PASSWORD}@${TEST_DB_HOST}/lanyard?password=$literal
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Keys.EncryptionKey.Value(); got != testKey {
		t.Errorf("encryption key = %q", got)
	}
	if got, want := c.Database.URL.Value(), "postgres://lanyard:s3cr3t@db.agency.example/lanyard?password=$literal"; got != want {
		t.Errorf("database url = %q, want %q", got, want)
	}
}

func TestLoadEnvErrors(t *testing.T) {
	clearOverrides(t)
	t.Setenv("TEST_EMPTY", "")
	cases := []struct {
		name, value string
		want        []string
	}{
		{"missing", "${TEST_NOT_SET_ANYWHERE}", []string{"environment variable TEST_NOT_SET_ANYWHERE is not set"}},
		{"empty", "${TEST_EMPTY}", []string{"environment variable TEST_EMPTY is empty"}},
		{"two missing", "a${TEST_NOPE_1}b${TEST_NOPE_2}", []string{"TEST_NOPE_1 is not set", "TEST_NOPE_2 is not set"}},
		{"unterminated", "abc${TEST_X", []string{`unterminated "${"`}},
		{"bad name", "${TEST X}", []string{"must hold an environment variable name"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadBytes("cfg.yaml", []byte("mail:\n  smtp:\n    password: \""+tc.value+"\"\n"))
			ps := problemsOf(t, err)
			if len(ps) != len(tc.want) {
				t.Fatalf("want %d problems, got %v", len(tc.want), err)
			}
			for i, w := range tc.want {
				if ps[i].Line != 3 || ps[i].Field != "mail.smtp.password" || !strings.Contains(ps[i].Msg, w) {
					t.Errorf("problem %d = %s, want line 3 mail.smtp.password …%s…", i, ps[i], w)
				}
			}
			// The message never repeats the value, which may hold a secret.
			if strings.Contains(err.Error(), "abc") {
				t.Errorf("error quotes the value: %v", err)
			}
		})
	}
}

func TestLoadSecretFile(t *testing.T) {
	clearOverrides(t)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secrets", "smtp"), []byte("pa$$word ${NOT_EXPANDED}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	abs := filepath.Join(t.TempDir(), "kek")
	if err := os.WriteFile(abs, []byte(testKey+"\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "lanyard.yaml")
	text := fmt.Sprintf("keys:\n  encryption_key_file: %s\nmail:\n  smtp:\n    password_file: secrets/smtp\n", abs)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir()) // relative to the file, not the working directory
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Mail.SMTP.Password.Value(); got != "pa$$word ${NOT_EXPANDED}" {
		t.Errorf("smtp password = %q", got)
	}
	if got := c.Keys.EncryptionKey.Value(); got != testKey {
		t.Errorf("encryption key = %q", got)
	}
}

func TestLoadSecretFileErrors(t *testing.T) {
	clearOverrides(t)
	dir := t.TempDir()
	secret := filepath.Join(dir, "pw")
	if err := os.WriteFile(secret, []byte("x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, maxSecretFile+1), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, smtp string
		line       int
		want       string
	}{
		{"both key and file", "    password: x\n    password_file: pw\n", 5, "both password and password_file are set; keep one"},
		{"both, file first", "    password_file: pw\n    password: x\n", 4, "both password and password_file are set"},
		{"missing file", "    password_file: nope\n", 4, "password_file: open " + filepath.Join(dir, "nope")},
		{"empty path", "    password_file: \"\"\n", 4, "password_file is empty"},
		{"huge file", "    password_file: big\n", 4, "larger than"},
		{"file on a non-secret", "    host_file: pw\n", 4, `unknown key "host_file"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadBytes(filepath.Join(dir, "l.yaml"), []byte("issuer: https://x.example\nmail:\n  smtp:\n"+tc.smtp))
			ps := problemsOf(t, err)
			if len(ps) != 1 || ps[0].Line != tc.line || !strings.Contains(ps[0].Msg, tc.want) {
				t.Fatalf("got %v\nwant line %d …%s…", err, tc.line, tc.want)
			}
		})
	}
}

func TestLoadEnvOverrides(t *testing.T) {
	t.Setenv(EnvDatabaseURL, "postgres://u:p@db/lanyard")
	t.Setenv(EnvEncryptionKey, testKey)
	// The overridden keys' own references are not even resolved: the
	// override wins.
	c, err := LoadBytes("", []byte("database:\n  url: ${TEST_UNSET_DB}\nkeys:\n  encryption_key_file: /nonexistent\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Database.URL.Value() != "postgres://u:p@db/lanyard" || c.Keys.EncryptionKey.Value() != testKey {
		t.Errorf("overrides not applied: %q %q", c.Database.URL.Value(), c.Keys.EncryptionKey.Value())
	}

	// A bad override is reported naming the variable.
	t.Setenv(EnvEncryptionKey, "short")
	c, err = LoadBytes("x.yaml", []byte("issuer: https://x.example\n"))
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, p := range problemsOf(t, c.Validate()) {
		if p.Field == "keys.encryption_key" {
			found = strings.Contains(p.Msg, "(from "+EnvEncryptionKey+")") && !strings.Contains(p.Msg, "short")
		}
	}
	if !found {
		t.Errorf("no keys.encryption_key problem naming %s in %v", EnvEncryptionKey, c.Validate())
	}
}

func TestLoadEmptyValuesKeepDefaults(t *testing.T) {
	clearOverrides(t)
	c, err := LoadBytes("", []byte("listen:\ntokens:\n  access_token:\nmetrics:\n  listen: \"\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":8080" || c.Tokens.AccessToken.D() != time.Hour {
		t.Errorf("empty values did not get defaults: %q %v", c.Listen, c.Tokens.AccessToken)
	}
	if c.Metrics.Listen != "" {
		t.Errorf(`explicit metrics.listen "" was replaced by %q`, c.Metrics.Listen)
	}
}

func TestLoadAnchors(t *testing.T) {
	clearOverrides(t)
	c, err := LoadBytes("", []byte("x-scopes: &s [openid, email]\n"))
	if err == nil {
		t.Fatalf("unknown key x-scopes accepted: %+v", c)
	}
	c, err = LoadBytes("", []byte("clients:\n  - id: a\n    scopes: &s [openid, email]\n  - id: b\n    scopes: *s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Clients[1].Scopes, " ") != "openid email" {
		t.Errorf("alias scopes = %v", c.Clients[1].Scopes)
	}
}

func TestEditDistanceSuggestion(t *testing.T) {
	known := []string{"redirect_uris", "post_logout_redirect_uris", "grant_types", "scopes"}
	for in, want := range map[string]string{"redirect_uri": "redirect_uris", "grant_type": "grant_types", "scope": "scopes", "colour": ""} {
		if got := suggest(in, known); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestCheckListsLoadAndValidationProblems: `lanyard config check` must name
// every problem at once, those found while reading (unknown key, bad
// duration) and those found by validation (a bad redirect URI, an unknown
// grant type), each with its line.
func TestCheckListsLoadAndValidationProblems(t *testing.T) {
	path := writeConfig(t, `issuer: https://id.agency.example
keys:
  encryption_key: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
mail:
  from: "Lanyard <no-reply@agency.example>"
  outbox: /tmp/outbox
invitations:
  allowed_domains: [agency.example]
  valid_for: 30x
clients:
  - id: portal
    public: true
    redirect_uri: ["https://portal.agency.example/cb"]
    redirect_uris: ["http://portal.agency.example/cb"]
    grant_types: [authorization_code, implicit]
journey:
  steps: [mfa-enrol, change-password]
`)
	_, err := Check(path)
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("Check: %v, want Problems", err)
	}
	want := []struct {
		line int
		text string
	}{
		{9, "invalid duration"},
		{13, `unknown key "redirect_uri"`},
		{14, "http is only allowed on loopback"},
		{15, "implicit"},
	}
	for _, w := range want {
		found := false
		for _, p := range ps {
			if p.Line == w.line && strings.Contains(p.String(), w.text) {
				found = true
			}
		}
		if !found {
			t.Errorf("no problem at line %d mentioning %q in:\n%v", w.line, w.text, err)
		}
	}
	if _, err := Check(writeConfig(t, "issuer: [")); err == nil {
		t.Error("a YAML syntax error passed Check")
	}
}
