package flows

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/lanyard-idp/lanyard/config"
)

// journeyYAML is the journey part of a configuration; the cases of
// TestConfigRule change one thing in it.
const journeyYAML = `documents:
  - id: privacy
    title: Privacy policy
    version: "1"
  - id: terms
    title: Terms of use
    version: "1"
`

// TestConfigRule: config check reports, on its line, a journey step the
// table does not have and a document id the journey's own steps and pages
// take; a document is a step of its own, in the order configured.
func TestConfigRule(t *testing.T) {
	t.Setenv(config.EnvDatabaseURL, "")
	t.Setenv(config.EnvEncryptionKey, "")
	for _, tc := range []struct {
		name, old, new string
		field, marker  string // "" field: valid
		msg            string
	}{
		{name: "the guide's journey", old: "", new: ""},
		{name: "unknown step", old: "documents:", new: "journey:\n  steps: [mfa-enrol, captcha]\ndocuments:",
			field: "journey.steps[1]", marker: "captcha", msg: `"captcha" is not one of mfa-enrol, change-password, privacy, terms`},
		{name: "step without document", old: "documents:", new: "journey:\n  steps: [mfa-enrol, code-of-conduct]\ndocuments:",
			field: "journey.steps[1]", marker: "code-of-conduct", msg: "needs a document with id: code-of-conduct under documents"},
		{name: "a sign-in step cannot be ordered", old: "documents:", new: "journey:\n  steps: [password, terms]\ndocuments:",
			field: "journey.steps[0]", marker: "[password", msg: `"password" is not one of`},
		{name: "a third document, ordered", old: "documents:", new: "journey:\n  steps: [code-of-conduct, mfa-enrol, privacy]\ndocuments:\n  - id: code-of-conduct\n    title: Code of conduct\n    version: \"1\"\n    file: /dev/null"},
		{name: "document named like a step", old: "- id: terms", new: "- id: mfa-challenge\n    file: /dev/null",
			field: "documents[1].id", marker: "mfa-challenge", msg: `"mfa-challenge" is taken by the journey's own steps and pages`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := strings.Replace(baseConfigYAML+journeyYAML, tc.old, tc.new, 1)
			c, err := config.LoadBytes("lanyard.yaml", []byte(text))
			if err != nil {
				t.Fatal(err)
			}
			var ps config.Problems
			if err := c.Validate(ConfigRule); err != nil && !errors.As(err, &ps) {
				t.Fatalf("not Problems: %v", err)
			}
			if tc.field == "" {
				if len(ps) != 0 {
					t.Fatalf("want valid, got %v", ps)
				}
				return
			}
			if len(ps) != 1 {
				t.Fatalf("want one problem, got %v", ps)
			}
			line := slices.IndexFunc(strings.Split(text, "\n"), func(l string) bool { return strings.Contains(l, tc.marker) }) + 1
			want := fmt.Sprintf("lanyard.yaml:%d: %s: ", line, tc.field)
			if got := ps[0].String(); !strings.HasPrefix(got, want) || !strings.Contains(got, tc.msg) {
				t.Errorf("got  %s\nwant %s…%s…", got, want, tc.msg)
			}
		})
	}
}

// TestEveryReservedNameIsRefused: a document may not take the name of a
// step or of a page the journey has under /signin/.
func TestEveryReservedNameIsRefused(t *testing.T) {
	t.Parallel()
	names := reservedNames()
	for _, want := range []string{"identify", "password", "mfa", "mfa-challenge", "enrol", "mfa-enrol", "recovery-codes", "change-password", "next", "passkey"} {
		if !slices.Contains(names, want) {
			t.Errorf("%q is not reserved: %v", want, names)
		}
	}
	for _, ok := range []string{"privacy", "terms", "code-of-conduct"} {
		if slices.Contains(names, ok) {
			t.Errorf("%q is reserved", ok)
		}
	}
}

// TestBuiltInConfigurationsPassTheRule: the development configuration and
// the defaults name only steps the table has.
func TestBuiltInConfigurationsPassTheRule(t *testing.T) {
	t.Setenv(config.EnvDatabaseURL, "")
	t.Setenv(config.EnvEncryptionKey, "")
	c, err := config.Dev("http://localhost:8080", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(ConfigRule); err != nil {
		t.Fatalf("dev configuration: %v", err)
	}
	if !slices.Equal(c.Journey.Steps, DefaultSteps) {
		t.Errorf("dev journey %v, want the guide's %v", c.Journey.Steps, DefaultSteps)
	}
}

// baseConfigYAML is the rest of a valid configuration.
const baseConfigYAML = `issuer: https://id.agency.example
keys:
  encryption_key: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=
mail:
  from: "Lanyard <no-reply@agency.example>"
  smtp:
    host: smtp.agency.example
invitations:
  allowed_domains: [agency.example]
`
