package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/provider/store"
)

func TestClientAddress(t *testing.T) {
	proxies, err := parseProxies([]string{"10.0.0.0/8", "192.0.2.7"})
	if err != nil {
		t.Fatal(err)
	}
	var got string
	h := clientAddress(proxies, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.RemoteAddr }))
	cases := []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"direct client, header ignored", "203.0.113.9:5000", []string{"198.51.100.1"}, "203.0.113.9:5000"},
		{"through the balancer", "10.1.2.3:4000", []string{"198.51.100.1"}, "198.51.100.1:0"},
		{"a forged hop left of the real one is not believed", "10.1.2.3:4000", []string{"6.6.6.6, 198.51.100.1"}, "198.51.100.1:0"},
		{"two trusted proxies in a row", "10.1.2.3:4000", []string{"198.51.100.1, 192.0.2.7"}, "198.51.100.1:0"},
		{"several header lines", "10.1.2.3:4000", []string{"198.51.100.1", "10.9.9.9"}, "198.51.100.1:0"},
		{"garbage in the header", "10.1.2.3:4000", []string{"not-an-ip"}, "10.1.2.3:4000"},
		{"no header", "10.1.2.3:4000", nil, "10.1.2.3:4000"},
		{"IPv6 client", "[::ffff:10.0.0.5]:80", []string{"2001:db8::1"}, "[2001:db8::1]:0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = c.remote
			for _, v := range c.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			h.ServeHTTP(httptest.NewRecorder(), r)
			if got != c.want {
				t.Errorf("RemoteAddr = %q, want %q", got, c.want)
			}
		})
	}
	if _, err := parseProxies([]string{"proxy.internal"}); err == nil {
		t.Error("a host name was accepted as a proxy")
	}
}

// forwardedFor is a load balancer in front of Lanyard: it names the client
// in X-Forwarded-For.
type forwardedFor struct {
	client string
	next   http.RoundTripper
}

func (f forwardedFor) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Forwarded-For", f.client)
	return f.next.RoundTrip(r)
}

// TestClientAddressAudited: behind a trusted proxy, the journey's audit rows
// and the provider's record the same client address — the forwarded one,
// without a port — so that one officer's activity reads alike in the trail
// whichever part of Lanyard wrote it.
func TestClientAddressAudited(t *testing.T) {
	l := startLanyardWith(t, devFlags, func(cfg *config.Config) { cfg.TrustedProxies = []string{"127.0.0.0/8", "::1"} })
	inv := l.invite("officer@agency.example")
	proxy := forwardedFor{client: "198.51.100.7", next: http.DefaultTransport}

	// The journey writes signin.failure for a wrong password.
	b := newBrowser(t, l.issuer)
	b.c.Transport = proxy
	p, _ := b.visit(http.MethodGet, l.issuer+"/signin", nil, "")
	p, _ = b.submit(p, map[string]string{"username": inv.Username}, "")
	b.submit(p, map[string]string{"username": inv.Username, "password": "not the initial password"}, "")

	// The provider writes token.issue for a client-credentials grant.
	cc := clientcredentials.Config{ClientID: "ci-service", ClientSecret: "ci-service-secret",
		TokenURL: l.issuer + "/token", Scopes: []string{"docs:read"}}
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, &http.Client{Transport: proxy})
	if _, err := cc.Token(ctx); err != nil {
		t.Fatalf("client credentials: %v", err)
	}

	for _, name := range []store.Event{store.EventSigninFailure, store.EventTokenIssue} {
		evs := l.events(name)
		if len(evs) != 1 {
			t.Fatalf("%d %s events, want 1", len(evs), name)
		}
		if got := evs[0].ClientAddr; got != "198.51.100.7" {
			t.Errorf("%s: client address %q, want %q", name, got, "198.51.100.7")
		}
	}
}
