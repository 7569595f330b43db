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

// SetBaseHeaders sets the security headers of every response Lanyard sends,
// page or not: the CSP, no framing, no sniffing, no referrer, and HSTS
// outside development. BaseHeaders applies it to the whole server, so an
// answer no page handler wrote — a redirect's body, a 404, a panic's 500 —
// cannot be framed or sniffed either.
func SetBaseHeaders(h http.Header, dev bool) {
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if !dev {
		h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
	}
}

// SetPageHeaders sets the headers every Lanyard page sends: SetBaseHeaders
// and no caching (a handler may override Cache-Control for public
// documents). frames are the origins the page may frame (the signed-out
// page's front-channel logout iframes); a page without them frames nothing,
// and no page may be framed. It is the one place these headers are decided:
// PageHeaders applies it to the journey's routes, and the provider calls it
// before each page it renders.
func SetPageHeaders(h http.Header, dev bool, frames ...string) {
	SetBaseHeaders(h, dev)
	if len(frames) > 0 {
		h.Set("Content-Security-Policy", CSP+"; frame-src "+strings.Join(frames, " "))
	}
	h.Set("Cache-Control", "no-store")
}

// PageHeaders wraps next so that every answer carries SetPageHeaders (with
// no frames).
func PageHeaders(dev bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		SetPageHeaders(w.Header(), dev)
		next.ServeHTTP(w, r)
	})
}

// BaseHeaders wraps next so that every answer carries SetBaseHeaders; the
// handlers below set their own on top (pages add no-store, the signed-out
// page its frame-src).
func BaseHeaders(dev bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		SetBaseHeaders(w.Header(), dev)
		next.ServeHTTP(w, r)
	})
}
