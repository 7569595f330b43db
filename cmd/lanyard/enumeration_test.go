package main

import (
	"testing"

	"github.com/lanyard-idp/lanyard/config"
)

// TestPublicMetricsDoNotEnumerate: with /metrics on the public listener,
// a wrong password for an account that does not exist and one for an
// account that does read alike there, so nobody learns who has an account
// by trying a username and scraping.
func TestPublicMetricsDoNotEnumerate(t *testing.T) {
	for _, tc := range []struct {
		listen string
		want   map[string]string // outcome → count
	}{
		{"", map[string]string{"wrong_password": "2", "unknown_user": ""}},
		// On a private listener the operator sees both.
		{"127.0.0.1:0", map[string]string{"wrong_password": "1", "unknown_user": "1"}},
	} {
		t.Run("listen="+tc.listen, func(t *testing.T) {
			l := startLanyardWith(t, devFlags, func(c *config.Config) { c.Metrics.Listen = tc.listen })
			o := l.onboard("officer@agency.example")
			l.signIn(o, "not-the-password-at-all", false)
			l.signIn(&officer{email: "nobody@agency.example", rp: l.staging()}, "not-the-password-at-all", false)
			h := l.srv.metrics.handler()
			if tc.listen == "" {
				h = l.srv // what anyone reaches on the main listener
			}
			samples := scrape(t, h)
			for outcome, want := range tc.want {
				if got := value(samples, "lanyard_signins_total", map[string]string{"outcome": outcome}); got != want {
					t.Errorf("outcome %s = %q, want %q", outcome, got, want)
				}
			}
		})
	}
}
