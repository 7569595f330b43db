package config

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Recovery configures self-service recovery: the "Forgot your password?"
// link, and what the pages say about the helpdesk to an officer who lost
// both their second factor and their recovery codes.
type Recovery struct {
	// ResetLinkFor is how long a password-reset link works once emailed
	// (default 15m, 5m to 1h). The reset it starts must also be finished
	// within this time of opening the link.
	ResetLinkFor Duration `yaml:"reset_link_for"`
	// Helpdesk is who to ask when nothing else is left, as the pages say it:
	// "the IT service desk (servicedesk@agency.example, 6000 0000)".
	// Default "your administrator or the helpdesk".
	Helpdesk string `yaml:"helpdesk"`
	// HelpdeskAsks are what the helpdesk will ask an officer before it
	// resets a second factor, one sentence each (default DefaultHelpdeskAsks).
	HelpdeskAsks []string `yaml:"helpdesk_asks"`
}

// DefaultHelpdesk is recovery.helpdesk when none is configured.
const DefaultHelpdesk = "your administrator or the helpdesk"

// DefaultHelpdeskAsks is what the pages say the helpdesk will ask, when
// recovery.helpdesk_asks is not set.
var DefaultHelpdeskAsks = []string{
	"Your username: the work email address you sign in with.",
	"To prove who you are in a way that does not depend on your email alone, for example a call back on the number the organisation has for you, or a video call with your staff pass.",
	"Never your password or a code: nobody from the helpdesk will ask for them.",
}

const maxRecoveryText = 300

func (c *Config) recoveryDefaults() {
	r := &c.Recovery
	setDuration(&r.ResetLinkFor, 15*time.Minute)
	setString(&r.Helpdesk, DefaultHelpdesk)
	if len(r.HelpdeskAsks) == 0 {
		r.HelpdeskAsks = append([]string(nil), DefaultHelpdeskAsks...)
	}
}

func (k *checker) recovery() {
	r := k.c.Recovery
	if d := r.ResetLinkFor.D(); d < 5*time.Minute || d > time.Hour {
		k.add("recovery.reset_link_for", "must be between 5m and 1h")
	}
	line := func(field, s string) {
		if strings.TrimSpace(s) == "" {
			k.add(field, "is empty")
		} else if utf8.RuneCountInString(s) > maxRecoveryText || strings.IndexFunc(s, unicode.IsControl) >= 0 {
			k.add(field, "must be one line of at most %d characters", maxRecoveryText)
		}
	}
	line("recovery.helpdesk", r.Helpdesk)
	for i, a := range r.HelpdeskAsks {
		line(fmt.Sprintf("recovery.helpdesk_asks[%d]", i), a)
	}
}
