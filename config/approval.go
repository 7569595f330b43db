package config

import (
	"fmt"
	"net/mail"
	"net/url"
	"strings"
	"time"
)

// Approval configures the Lanyard approval app: sign-in approval with number
// matching on a paired phone (the guide's step 3.5).
type Approval struct {
	// RequestTimeout is how long a sign-in request waits for the phone's
	// answer (default 60s, 15s to 10m).
	RequestTimeout Duration `yaml:"request_timeout"`
	// PairingTimeout is how long a pairing link works (default 5m, 1m to 30m).
	PairingTimeout Duration `yaml:"pairing_timeout"`
	// HourlyLimit caps the requests (pairings included) per hour, against
	// push fatigue: those of the browsers an account does not know
	// together, and those of each browser it knows on its own (default 10,
	// at most 100).
	HourlyLimit int `yaml:"hourly_limit"`
	// PushHosts are the push services Lanyard sends Web Push wake-ups to:
	// host names, "*." for any subdomain (default DefaultPushHosts, the
	// browsers' own). A phone's subscription elsewhere is refused.
	PushHosts []string `yaml:"push_hosts"`
	// PushContact is where a push service's operator can reach the
	// deployment's (the VAPID "sub"): an email address or an https URL
	// (default: the issuer when it is https).
	PushContact string `yaml:"push_contact"`
}

// DefaultPushHosts are the push services of Chrome and Android, Firefox,
// Safari and iOS, and Edge.
var DefaultPushHosts = []string{
	"fcm.googleapis.com",
	"updates.push.services.mozilla.com",
	"web.push.apple.com",
	"*.notify.windows.com",
}

func (c *Config) approvalDefaults() {
	a := &c.Approval
	setDuration(&a.RequestTimeout, time.Minute)
	setDuration(&a.PairingTimeout, 5*time.Minute)
	setInt(&a.HourlyLimit, 10)
	if len(a.PushHosts) == 0 {
		a.PushHosts = append([]string(nil), DefaultPushHosts...)
	}
	if a.PushContact == "" && strings.HasPrefix(c.Issuer, "https://") {
		a.PushContact = c.Issuer
	}
}

func (k *checker) approval() {
	a := k.c.Approval
	between := func(field string, d Duration, lo, hi time.Duration) {
		if d.D() < lo || d.D() > hi {
			k.add(field, "must be between %s and %s", lo, hi)
		}
	}
	between("approval.request_timeout", a.RequestTimeout, 15*time.Second, 10*time.Minute)
	between("approval.pairing_timeout", a.PairingTimeout, time.Minute, 30*time.Minute)
	if a.HourlyLimit < 1 || a.HourlyLimit > 100 {
		k.add("approval.hourly_limit", "must be between 1 and 100")
	}
	for i, h := range a.PushHosts {
		if !domainRE.MatchString(strings.TrimPrefix(strings.ToLower(h), "*.")) {
			k.add(fmt.Sprintf("approval.push_hosts[%d]", i), "%q is not a host name (or *.domain)", h)
		}
	}
	if c := a.PushContact; c != "" {
		u, err := url.Parse(c)
		_, merr := mail.ParseAddress(c)
		if !(err == nil && u.Scheme == "https" && u.Host != "") && (merr != nil || strings.ContainsAny(c, "<> ")) {
			k.add("approval.push_contact", "%q is neither an email address nor an https URL", c)
		}
	}
}
