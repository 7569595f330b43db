package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
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
