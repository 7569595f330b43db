package config

import (
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"
)

func TestApplyDefaults(t *testing.T) {
	c := &Config{Clients: []Client{{ID: "conf"}, {ID: "pub", Public: true}},
		Documents: []Document{{ID: "privacy"}, {ID: "terms"}}}
	c.ApplyDefaults()
	h := time.Hour
	checks := []struct {
		name      string
		got, want any
	}{
		{"listen", c.Listen, ":8080"},
		{"data_dir", c.DataDir, "./data"},
		{"keys.algorithms", c.Keys.Algorithms, []string{"RS256", "ES256"}},
		{"keys.retire_after", c.Keys.RetireAfter.D(), 24 * h},
		{"session.idle_timeout", c.Session.IdleTimeout.D(), h},
		{"session.absolute_timeout", c.Session.AbsoluteTimeout.D(), 24 * h},
		{"tokens.authorize_code", c.Tokens.AuthorizeCode.D(), 5 * time.Minute},
		{"tokens.access_token", c.Tokens.AccessToken.D(), h},
		{"tokens.id_token", c.Tokens.IDToken.D(), h},
		{"tokens.refresh_token", c.Tokens.RefreshToken.D(), 720 * h},
		{"invitations.valid_for", c.Invitations.ValidFor.D(), 720 * h},
		{"mail.outbox", c.Mail.Outbox, filepath.Join("data", "outbox")},
		{"mail.smtp.port", c.Mail.SMTP.Port, 587},
		{"mail.smtp.tls", c.Mail.SMTP.TLS, "starttls"},
		{"mail.smtp.timeout", c.Mail.SMTP.Timeout.D(), 10 * time.Second},
		{"journey.steps", c.Journey.Steps, []string{"mfa-enrol", "change-password", "privacy", "terms"}},
		{"journey.timeout", c.Journey.Timeout.D(), 30 * time.Minute},
		{"journey.display_name", c.Journey.DisplayName, "Lanyard"},
		{"webauthn.rp_display_name", c.WebAuthn.RPDisplayName, "Lanyard"},
		{"password.min_length", c.Password.MinLength, 12},
		{"password.max_length", c.Password.MaxLength, 128},
		{"throttle.max_account_failures", c.Throttle.MaxAccountFailures, 5},
		{"throttle.max_address_failures", c.Throttle.MaxAddressFailures, 50},
		{"throttle.lock_for", c.Throttle.LockFor.D(), 15 * time.Minute},
		{"throttle.window", c.Throttle.Window.D(), h},
		{"recovery.reset_link_for", c.Recovery.ResetLinkFor.D(), 15 * time.Minute},
		{"recovery.helpdesk", c.Recovery.Helpdesk, DefaultHelpdesk},
		{"recovery.helpdesk_asks", c.Recovery.HelpdeskAsks, DefaultHelpdeskAsks},
		{"metrics.listen", c.Metrics.Listen, "127.0.0.1:9090"},
		{"log.format", c.Log.Format, "text"},
		{"log.level", c.Log.Level, "info"},
		{"clients[0].token_endpoint_auth_method", c.Clients[0].TokenEndpointAuthMethod, "client_secret_basic"},
		{"clients[1].token_endpoint_auth_method", c.Clients[1].TokenEndpointAuthMethod, "none"},
		{"clients[0].grant_types", c.Clients[0].GrantTypes, []string{"authorization_code"}},
		{"clients[0].scopes", c.Clients[0].Scopes, []string{"openid"}},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}

	// Idempotent.
	before := *c
	before.Clients = slices.Clone(c.Clients)
	c.ApplyDefaults()
	if !reflect.DeepEqual(before, *c) {
		t.Errorf("second ApplyDefaults changed the config:\n%+v\n%+v", before, *c)
	}

	// The defaults are copies: changing one config leaves the next alone.
	c.Keys.Algorithms[0] = "XX"
	c.Journey.Steps[0] = "XX"
	var d Config
	d.ApplyDefaults()
	if d.Keys.Algorithms[0] != "RS256" || d.Journey.Steps[0] != "mfa-enrol" {
		t.Error("defaults share their backing arrays")
	}
}

// The default journey accepts every document, in the order written, after
// the enrolment and the new password.
func TestDefaultJourneyFollowsTheDocuments(t *testing.T) {
	for _, tc := range []struct {
		docs []string
		want []string
	}{
		{nil, []string{"mfa-enrol", "change-password"}},
		{[]string{"terms", "code-of-conduct", "privacy"}, []string{"mfa-enrol", "change-password", "terms", "code-of-conduct", "privacy"}},
	} {
		c := &Config{}
		for _, id := range tc.docs {
			c.Documents = append(c.Documents, Document{ID: id})
		}
		c.ApplyDefaults()
		if !slices.Equal(c.Journey.Steps, tc.want) {
			t.Errorf("documents %v: journey.steps = %v, want %v", tc.docs, c.Journey.Steps, tc.want)
		}
	}
}

func TestApplyDefaultsKeepsValues(t *testing.T) {
	clearOverrides(t)
	c, err := LoadBytes("", []byte(`
listen: 127.0.0.1:8000
keys:
  algorithms: [RS256]
tokens:
  access_token: 10m
mail:
  outbox: /var/spool/lanyard
  smtp:
    tls: tls
journey:
  steps: [privacy]
  display_name: Agency ID
clients:
  - id: a
    public: true
    grant_types: [authorization_code, refresh_token]
    scopes: [openid, offline_access]
    token_endpoint_auth_method: none
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:8000" || !slices.Equal(c.Keys.Algorithms, []string{"RS256"}) || c.Tokens.AccessToken.D() != 10*time.Minute {
		t.Errorf("values replaced: %q %v %v", c.Listen, c.Keys.Algorithms, c.Tokens.AccessToken)
	}
	if c.Mail.Outbox != "/var/spool/lanyard" || c.outboxDefaulted {
		t.Errorf("explicit outbox: %q defaulted=%v", c.Mail.Outbox, c.outboxDefaulted)
	}
	if c.Mail.SMTP.Port != 465 {
		t.Errorf("implicit TLS port = %d, want 465", c.Mail.SMTP.Port)
	}
	if !slices.Equal(c.Journey.Steps, []string{"privacy"}) || c.WebAuthn.RPDisplayName != "Agency ID" {
		t.Errorf("journey %v, rp name %q", c.Journey.Steps, c.WebAuthn.RPDisplayName)
	}
	if cl := c.Clients[0]; len(cl.GrantTypes) != 2 || len(cl.Scopes) != 2 {
		t.Errorf("client lists replaced: %+v", cl)
	}
}

// A derived outbox follows a later change of DataDir (the --data flag).
func TestOutboxFollowsDataDir(t *testing.T) {
	var c Config
	c.ApplyDefaults()
	c.DataDir = "/srv/lanyard"
	c.ApplyDefaults()
	if c.Mail.Outbox != "/srv/lanyard/outbox" {
		t.Errorf("outbox = %q", c.Mail.Outbox)
	}
}

// TestDefaulted: every way to get a Config marks it as defaulted, and a
// hand-built one is not until ApplyDefaults runs, so that the packages
// reading it can refuse zeros instead of taking them as settings.
func TestDefaulted(t *testing.T) {
	c := &Config{Issuer: "https://id.agency.example"}
	if c.Defaulted() {
		t.Fatal("a hand-built Config claims its defaults")
	}
	c.ApplyDefaults()
	if !c.Defaulted() {
		t.Fatal("ApplyDefaults did not mark the Config")
	}
	dev, err := Dev("http://localhost:8080", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadBytes("lanyard.yaml", []byte("issuer: https://id.agency.example\n"))
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*Config{"Dev": dev, "LoadBytes": loaded} {
		if !c.Defaulted() || c.Journey.DisplayName != DefaultDisplayName || c.Password.MinLength == 0 {
			t.Errorf("%s: defaulted %v, display name %q, min length %d", name, c.Defaulted(), c.Journey.DisplayName, c.Password.MinLength)
		}
	}
}
