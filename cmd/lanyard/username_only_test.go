package main

// The attacker with only a username: what /metrics tells them, and look-alike
// addresses.

import (
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/provider/store"
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

// TestPublicMetricsFloodDoNotEnumerate: the failures beyond the few audited
// one by one reach the metric through an aggregate event, and on the public
// listener those read alike too.
func TestPublicMetricsFloodDoNotEnumerate(t *testing.T) {
	l := startLanyardWith(t, devFlags, func(c *config.Config) { c.Metrics.Listen = "" })
	const n = 15
	for i := range n { // one try per name: no account lock answers instead
		l.signIn(&officer{email: fmt.Sprintf("nobody%d@agency.example", i), rp: l.staging()}, "not-the-password-at-all", false)
	}
	l.srv.flows.FlushFailureAudit(t.Context(), true)
	if len(l.events(store.EventSigninFailureAggregated)) != 1 {
		t.Fatal("no aggregate: the flood did not reach the aggregated branch")
	}
	samples := scrape(t, l.srv)
	if got := value(samples, "lanyard_signins_total", map[string]string{"outcome": "unknown_user"}); got != "" {
		t.Errorf("the public metric separates unknown_user: %q", got)
	}
	if got := value(samples, "lanyard_signins_total", map[string]string{"outcome": "wrong_password"}); got != "15" {
		t.Errorf("wrong_password = %q, want %d", got, n)
	}
}

// TestInviteRefusesLookAlikes: the invitation command refuses an address
// that could pass for an existing officer's, and a name with text-direction
// controls, saying why; nothing is written.
func TestInviteRefusesLookAlikes(t *testing.T) {
	l := startOps(t, "", io.Discard)
	l.invite("alice@agency.example")
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"invite", "\u0430lice@agency.example", "--name", "Alice"}, "U+0430"},
		{[]string{"invite", "bob@agency.example", "--name", "Bob \u202egnp.exe"}, "text-direction"},
	} {
		out, errOut, err := l.runCmd(c.args...)
		if err == nil || !strings.Contains(out+errOut+err.Error(), c.says) {
			t.Errorf("%q: %v, output %q; want a refusal saying %q", c.args, err, out+errOut, c.says)
		}
	}
	users, err := l.store().ListUsers(t.Context(), "", "")
	if err != nil || len(users) != 1 {
		t.Fatalf("%d accounts after the refusals (%v), want 1", len(users), err)
	}
}
