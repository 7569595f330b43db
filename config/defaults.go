package config

import (
	"path/filepath"
	"slices"
	"time"
)

// Defaults, named once so that the documentation in config.go, ApplyDefaults
// and the tests agree.
var DefaultAlgorithms = []string{"RS256", "ES256"}

// DefaultDisplayName is the product's name on pages, in emails and as the
// TOTP issuer when journey.display_name is not set.
const DefaultDisplayName = "Lanyard"

// The built-in steps the default journey starts with, as written in
// journey.steps (the documents' steps follow them; see defaultJourneySteps).
const (
	StepMFAEnrol       = "mfa-enrol"
	StepChangePassword = "change-password"
)

// ApplyDefaults fills every unset value with its documented default. It is
// idempotent, never overwrites a value that is set, and is called by Load and
// Dev; call it yourself on a hand-built Config. It is the only place a
// default is applied: the packages that read a Config take every value as
// it stands, and refuse a Config that has not been through here (Defaulted).
func (c *Config) ApplyDefaults() {
	c.defaulted = true
	setString(&c.Listen, ":8080")
	setString(&c.DataDir, "./data")

	if len(c.Keys.Algorithms) == 0 {
		c.Keys.Algorithms = slices.Clone(DefaultAlgorithms)
	}
	setDuration(&c.Keys.RetireAfter, 24*time.Hour)

	setDuration(&c.Session.IdleTimeout, time.Hour)
	setDuration(&c.Session.AbsoluteTimeout, 24*time.Hour)

	setDuration(&c.Tokens.AuthorizeCode, 5*time.Minute)
	setDuration(&c.Tokens.AccessToken, time.Hour)
	setDuration(&c.Tokens.IDToken, time.Hour)
	setDuration(&c.Tokens.RefreshToken, 720*time.Hour)

	for i := range c.Clients {
		cl := &c.Clients[i]
		if cl.TokenEndpointAuthMethod == "" {
			cl.TokenEndpointAuthMethod = "client_secret_basic"
			if cl.Public {
				cl.TokenEndpointAuthMethod = "none"
			}
		}
		if len(cl.GrantTypes) == 0 {
			cl.GrantTypes = []string{GrantAuthorizationCode}
		}
		if len(cl.Scopes) == 0 {
			cl.Scopes = []string{"openid"}
		}
	}

	setDuration(&c.Invitations.ValidFor, 720*time.Hour)

	// A derived outbox follows DataDir, so that a later change of DataDir
	// (a --data flag) followed by ApplyDefaults moves it along.
	if c.Mail.Outbox == "" || c.outboxDefaulted {
		c.Mail.Outbox = filepath.Join(c.DataDir, "outbox")
		c.outboxDefaulted = true
	}
	setString(&c.Mail.SMTP.TLS, "starttls")
	if c.Mail.SMTP.Port == 0 {
		// Implicit TLS has its own port; 587 would hang in the handshake.
		c.Mail.SMTP.Port = 587
		if c.Mail.SMTP.TLS == "tls" {
			c.Mail.SMTP.Port = 465
		}
	}
	setDuration(&c.Mail.SMTP.Timeout, 10*time.Second)

	if len(c.Journey.Steps) == 0 {
		c.Journey.Steps = c.defaultJourneySteps()
	}
	setDuration(&c.Journey.Timeout, 30*time.Minute)
	setString(&c.Journey.DisplayName, DefaultDisplayName)
	setString(&c.WebAuthn.RPDisplayName, c.Journey.DisplayName)
	c.approvalDefaults()
	c.recoveryDefaults()

	setString(&c.Requests.Approval, ApprovalManual)
	setDuration(&c.Requests.UnapprovedFor, 14*24*time.Hour)

	setInt(&c.Password.MinLength, 12)
	setInt(&c.Password.MaxLength, 128)

	setInt(&c.Throttle.MaxAccountFailures, 5)
	setInt(&c.Throttle.MaxAddressFailures, 50)
	setInt(&c.Throttle.MaxSecondFactorFailures, 5)
	setInt(&c.Throttle.SecondFactorDailyCap, 20)
	setDuration(&c.Throttle.LockFor, 15*time.Minute)
	setDuration(&c.Throttle.MaxLockFor, 24*time.Hour)
	setDuration(&c.Throttle.LockDecay, 24*time.Hour)
	setDuration(&c.Throttle.Window, time.Hour)
	setDuration(&c.Throttle.DeviceCookieFor, 90*24*time.Hour)
	setInt(&c.Throttle.IPv6Prefix, 64)

	// An explicit `listen: ""` means "serve metrics on the main listener", so
	// only an absent key gets the default.
	if c.Metrics.Listen == "" && !c.has("metrics.listen") {
		c.Metrics.Listen = "127.0.0.1:9090"
	}

	setString(&c.Log.Format, "text")
	setString(&c.Log.Level, "info")
}

// Defaulted reports whether ApplyDefaults has run on c. A Config that has
// not would read zeros as settings (no lock time, no password length).
func (c *Config) Defaulted() bool { return c.defaulted }

// has reports whether the key at path was written in the source file.
func (c *Config) has(path string) bool {
	_, ok := c.lines[path]
	return ok
}

func setString(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

func setInt(p *int, v int) {
	if *p == 0 {
		*p = v
	}
}

func setDuration(p *Duration, v time.Duration) {
	if *p == 0 {
		*p = Duration(v)
	}
}
