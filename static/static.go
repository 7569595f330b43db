// Package static holds the stylesheet, the small WebAuthn script and images,
// embedded and served under /static/ with long-lived caching, and the
// Lanyard approval app's files (approve/: its script, icons, web app
// manifest and service worker; the last two are served under /approve by
// flows, for the worker's scope). No external fonts or CDNs: the binary
// works offline.
package static

import "embed"

// FS is the static files, served at /static/.
//
//go:embed *.css *.js approve
var FS embed.FS
