package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// documentsConfig is a configuration file with three policy documents —
// the guide's two and a code of conduct with its own Markdown — and no
// journey.steps: the default order takes the documents as written.
func documentsConfig(t *testing.T, issuer, addr, data, steps string) string {
	t.Helper()
	conduct := filepath.Join(data, "conduct.md")
	if err := os.WriteFile(conduct, []byte("# Code of conduct\n\nTreat everyone with respect.\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`issuer: %s
listen: %s
dev: true
data_dir: %s
invitations:
  allowed_domains: [agency.example]
%sdocuments:
  - id: privacy
    title: Privacy policy
    version: "2026-01"
  - id: terms
    title: Terms of use
    version: "2026-01"
  - id: code-of-conduct
    title: Code of conduct
    version: "2026-03"
    file: conduct.md
clients:
  - id: docs-portal-staging
    name: Docs portal (staging)
    secret_hash: "$lanyard-hmac-sha256$otvllKRO0Ro-Fh2KZRLNYQ$FFGel3exOPKCBZct8XWO0p3jhGnKoE2NdXHYr8y5sqk"
    redirect_uris: ["http://localhost:9001/callback"]
    grant_types: [authorization_code, refresh_token]
    scopes: [openid, email, profile, offline_access]
    # As in dev.yaml: the portal reads the accepted versions from its ID token.
    id_token_claims: [name, email, lanyard_policies]
`, issuer, addr, data, steps)
	path := filepath.Join(data, "lanyard.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestThreeDocuments: a code of conduct is configuration only. With three
// documents configured, the officer accepts three, in the configured
// order; three acceptances are recorded and the relying party's ID token
// (verified by go-oidc; the client lists lanyard_policies in
// id_token_claims) carries three entries in lanyard_policies.
func TestThreeDocuments(t *testing.T) {
	l := startLanyardWith(t, func(issuer, addr, data string) common {
		return common{configFile: documentsConfig(t, issuer, addr, data, "")}
	}, nil)
	inv := l.invite("officer@agency.example")
	staging := newRP(t, l.issuer, "docs-portal-staging", "staging-secret", "http://localhost:9001/callback")
	a := staging.start()
	b := newBrowser(t, l.issuer)
	p, _ := b.visit("GET", a.url, nil, "http://localhost:9001/")
	steps, cb := firstLogin(t, b, p, inv, nil)
	want := "identify,password,mfa-enrol,recovery-codes,change-password,privacy,terms,code-of-conduct"
	if got := strings.Join(steps, ","); got != want {
		t.Fatalf("journey steps\n got %s\nwant %s", got, want)
	}
	_, c := staging.finish(t, a, cb)
	wantPolicies := map[string]string{"privacy": "2026-01", "terms": "2026-01", "code-of-conduct": "2026-03"}
	if len(c.Policies) != 3 || !maps.Equal(c.Policies, wantPolicies) {
		t.Errorf("lanyard_policies = %v, want %v", c.Policies, wantPolicies)
	}
	u, err := l.srv.d.store.UserByUsername(t.Context(), inv.Username)
	if err != nil {
		t.Fatal(err)
	}
	acc, err := l.srv.d.store.Acceptances(t.Context(), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, x := range acc {
		got = append(got, x.Document+"@"+x.Version)
	}
	slices.Sort(got)
	if w := []string{"code-of-conduct@2026-03", "privacy@2026-01", "terms@2026-01"}; !slices.Equal(got, w) {
		t.Errorf("acceptances %v, want %v", got, w)
	}
}

// TestConfigCheckNamesJourneyProblems: `lanyard config check` reports a
// step the journey does not have and a document id its own pages take, on
// their lines, with the rest of the file's problems.
func TestConfigCheckNamesJourneyProblems(t *testing.T) {
	data := t.TempDir()
	path := documentsConfig(t, "http://127.0.0.1:8080", "127.0.0.1:8080", data, "journey:\n  steps: [mfa-enrol, captcha, code-of-conduct]\n")
	text := strings.Replace(readFile(t, path), "- id: terms", "- id: password", 1)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb strings.Builder
	e := env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	err := run(context.Background(), []string{"config", "check", "--config", path}, e)
	if err == nil {
		t.Fatalf("config check passed: %s", out.String())
	}
	msg := err.Error() + errb.String()
	lines := strings.Split(text, "\n")
	for _, want := range []struct{ marker, problem string }{
		{"captcha", `journey.steps[1]: "captcha" is not one of mfa-enrol, change-password`},
		{"- id: password", `documents[1].id: "password" is taken by the journey's own steps and pages`},
	} {
		line := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, want.marker) }) + 1
		if w := fmt.Sprintf("%s:%d: %s", path, line, want.problem); line == 0 || !strings.Contains(msg, w) {
			t.Errorf("config check output lacks\n%s\nin\n%s", w, msg)
		}
	}
}
