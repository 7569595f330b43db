package authn

import (
	"net"
	"net/http"
	"unicode/utf8"
)

// ClientAddr is the address a request comes from, as the throttles, the
// sessions and the audit trail record it: the host of r.RemoteAddr without
// the port ("192.0.2.7", "2001:db8::7"), so that one officer's requests share
// one per-address throttle and their audit rows read alike whichever side
// wrote them. Behind a trusted proxy the server has already put the
// forwarded address in RemoteAddr (cmd/lanyard's trusted_proxies);
// X-Forwarded-For is never read here, since a client could write anything
// there and escape its throttle. A RemoteAddr that is not host:port is kept
// as it is, cut to 64 bytes.
func ClientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		s, n := r.RemoteAddr, 64
		if len(s) <= n {
			return s
		}
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		return s[:n]
	}
	return host
}
