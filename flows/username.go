package flows

import (
	"errors"
	"net/mail"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// ErrBadUsername is returned for input that cannot be an officer's username.
var ErrBadUsername = errors.New("enter your username: the email address you were invited with, like name@agency.example")

// CanonicalUsername turns what an officer or admin typed into the one stored
// form: Unicode NFKC, trimmed, lower-cased, a bare address. Canonicalising once,
// everywhere, means look-alike forms (full-width letters, case, spaces) can
// never make a second account or miss the first.
func CanonicalUsername(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(norm.NFKC.String(s)))
	if s == "" || len(s) > 254 || strings.ContainsAny(s, " \t\r\n<>\"") {
		return "", ErrBadUsername
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return "", ErrBadUsername
	}
	local, domain, ok := strings.Cut(s, "@")
	if !ok || local == "" || !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") {
		return "", ErrBadUsername
	}
	return s, nil
}
