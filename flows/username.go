package flows

import (
	"errors"
	"net/mail"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
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

// ErrLookAlike refuses an address for a new account that could pass for
// another one: "аlice@agency.example" with a Cyrillic "а" must not become a
// second account beside "alice@agency.example".
var ErrLookAlike = errors.New("the address could be mistaken for another (letters of other alphabets, or a domain in its xn-- form)")

// checkLookAlike is the rule every new account's username passes, however it
// is created (invitation, the admin service, a request): username is
// canonical already (CanonicalUsername).
//
//   - The local part is plain ASCII: letters, digits and the punctuation an
//     address allows. Letters of other alphabets that look like Latin ones
//     are the usual spoof, and organisational mailboxes rarely need them.
//   - The domain is written in its own letters, once: an internationalised
//     domain in its Unicode form ("bücher.example", never
//     "xn--bcher-kva.example", so the two spellings cannot make two
//     accounts), each label valid under IDNA2008 and in one script (Latin
//     with Han and the Japanese or Korean scripts is one, as UTS #39's
//     highly restrictive profile has it). A domain must also be one of
//     invitations.allowed_domains, which the operator writes.
func checkLookAlike(username string) error {
	local, domain, _ := strings.Cut(username, "@")
	for _, r := range local {
		if r < 0x21 || r > 0x7e {
			return refuseAdmin(ErrLookAlike, "%s is refused: the part before the @ may use plain letters a–z, digits and . _ - + only, and %q (U+%04X) is not one of them (it may look like another letter); invite the officer's plain address", username, r, r)
		}
	}
	for _, label := range strings.Split(domain, ".") {
		if strings.HasPrefix(label, "xn--") {
			u, err := idna.Lookup.ToUnicode(domain)
			if err != nil {
				return refuseAdmin(ErrLookAlike, "%s is refused: its domain is not a valid internationalised domain name", username)
			}
			return refuseAdmin(ErrLookAlike, "%s is refused: write the domain in its own letters (%s), not its xn-- form, so that one address has one spelling", username, u)
		}
		if isASCII(label) {
			continue
		}
		if _, err := idna.Registration.ToASCII(label); err != nil {
			return refuseAdmin(ErrLookAlike, "%s is refused: the domain label %q is not a valid internationalised domain name", username, label)
		}
		if !oneScript(label) {
			return refuseAdmin(ErrLookAlike, "%s is refused: the domain label %q mixes alphabets, which is how look-alike domains are made", username, label)
		}
	}
	return nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// oneScript reports whether the letters of s belong to one script, Common
// and Inherited characters (digits, hyphens, combining marks) aside, or to
// one of the combinations UTS #39's highly restrictive profile allows.
func oneScript(s string) bool {
	seen := map[string]bool{}
	for _, r := range s {
		for name, table := range unicode.Scripts {
			if name != "Common" && name != "Inherited" && unicode.Is(table, r) {
				seen[name] = true
			}
		}
	}
	if len(seen) <= 1 {
		return true
	}
	for _, allowed := range [][]string{
		{"Latin", "Han", "Hiragana", "Katakana"},
		{"Latin", "Han", "Bopomofo"},
		{"Latin", "Han", "Hangul"},
	} {
		ok := true
		for name := range seen {
			ok = ok && slices.Contains(allowed, name)
		}
		if ok {
			return true
		}
	}
	return false
}
