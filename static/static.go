// Package static holds the stylesheet, the small WebAuthn script and images,
// embedded and served under /static/ with long-lived caching. No external
// fonts or CDNs: the binary works offline.
package static

import "embed"

// FS is the static files, served at /static/.
//
//go:embed *.css *.js
var FS embed.FS
