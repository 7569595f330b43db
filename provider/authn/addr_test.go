package authn

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestClientAddr(t *testing.T) {
	for _, tc := range []struct{ remote, want string }{
		{"192.0.2.7:51234", "192.0.2.7"},
		{"192.0.2.7:0", "192.0.2.7"}, // as cmd/lanyard's trusted-proxy middleware writes it
		{"[2001:db8::7]:443", "2001:db8::7"},
		{"[::1]:0", "::1"},
		{"192.0.2.7", "192.0.2.7"}, // no port: kept
		{"@", "@"},                 // a Unix socket
		{"", ""},
		{strings.Repeat("x", 100), strings.Repeat("x", 64)},
		{strings.Repeat("é", 40), strings.Repeat("é", 32)}, // never half a character
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		r.Header.Set("X-Forwarded-For", "203.0.113.9")
		if got := ClientAddr(r); got != tc.want {
			t.Errorf("ClientAddr(%q) = %q, want %q", tc.remote, got, tc.want)
		}
	}
}
