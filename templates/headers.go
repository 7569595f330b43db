package templates

import (
	"net/http"
	"strings"
)

// CSP is the Content-Security-Policy of every page, the journey's and the
// provider's. No form-action: Chromium applies it to the redirect that
// follows the last POST of the journey, which goes to the relying party.
// img-src data: is for the enrolment QR code, connect-src 'self' for the
// passkey and approval scripts' requests, manifest-src and worker-src for the
// approval app (its web app manifest and service worker, both Lanyard's own).
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; manifest-src 'self'; worker-src 'self'; base-uri 'none'; frame-ancestors 'none'"

// SetPageHeaders sets the headers every Lanyard page sends: the CSP, no
// framing, no sniffing, no referrer, no caching (a handler may override
// Cache-Control for public documents), and HSTS outside development. frames
// are the origins the page may frame (the signed-out page's front-channel
// logout iframes); a page without them frames nothing. It is the one place
// these headers are decided: PageHeaders applies it to the journey's
// routes, and the provider calls it before each page it renders.
func SetPageHeaders(h http.Header, dev bool, frames ...string) {
	csp := CSP
	if len(frames) > 0 {
		csp += "; frame-src " + strings.Join(frames, " ")
	}
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	if !dev {
		h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
	}
}

// PageHeaders wraps next so that every answer carries SetPageHeaders (with
// no frames).
func PageHeaders(dev bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		SetPageHeaders(w.Header(), dev)
		next.ServeHTTP(w, r)
	})
}
