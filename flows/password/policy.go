package password

import (
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/trustelem/zxcvbn"
	"github.com/trustelem/zxcvbn/frequency"
)

// Policy is the password policy (config.Password): length limits in runes
// after NFKC normalisation, and nothing about composition.
type Policy struct{ MinLength, MaxLength int }

// PolicyError says, in a plain sentence for the page, why a password was refused.
type PolicyError struct{ Reason string }

func (e *PolicyError) Error() string { return e.Reason }

// The reasons that do not depend on the policy's numbers.
const (
	ReasonCommon   = "This password is too common. Choose something harder to guess."
	ReasonUsername = "Do not use your username in your password."
	ReasonInitial  = "Choose a new password, not the one from your invitation."
	ReasonInvalid  = "Use letters, digits, spaces and symbols only: this password contains characters that cannot be typed."
)

// minScore is the lowest acceptable zxcvbn score: 3 means "safely
// unguessable" (≥ 10^8 guesses), what zxcvbn itself recommends for a
// password that protects an account.
const minScore = 3

// minUserPart is the shortest username or mailbox name that is looked for
// inside a password; shorter ones ("al") would refuse innocent passwords.
const minUserPart = 4

// Check reports why pw may not be used, or nil. username is the canonical
// username (the email address) and initial the invitation's initial password
// ("" when there is none). The checks run cheapest first, and the first
// failure is reported.
func (p Policy) Check(pw, username, initial string) error {
	pw = normalize(pw)
	if !utf8.ValidString(pw) || strings.IndexFunc(pw, unicode.IsControl) >= 0 {
		return &PolicyError{Reason: ReasonInvalid}
	}
	n := utf8.RuneCountInString(pw)
	if n < p.MinLength {
		return &PolicyError{Reason: fmt.Sprintf("Use at least %d characters.", p.MinLength)}
	}
	if p.MaxLength > 0 && n > p.MaxLength {
		return &PolicyError{Reason: fmt.Sprintf("Use at most %d characters.", p.MaxLength)}
	}
	if initial != "" && subtle.ConstantTimeCompare([]byte(pw), []byte(normalize(initial))) == 1 {
		return &PolicyError{Reason: ReasonInitial}
	}
	lower := strings.ToLower(pw)
	inputs := userInputs(username)
	for _, part := range inputs {
		if utf8.RuneCountInString(part) >= minUserPart && strings.Contains(lower, part) {
			return &PolicyError{Reason: ReasonUsername}
		}
	}
	if isListed(lower) || zxcvbn.PasswordStrength(prefix(pw, maxJudged), inputs).Score < minScore {
		return &PolicyError{Reason: ReasonCommon}
	}
	return nil
}

// maxJudged bounds the input of zxcvbn, whose matching grows faster than
// linearly with length (≈30 ms at 128 runes). A strong prefix makes the whole
// password at least as strong, so judging the prefix never lets a weak one in.
const maxJudged = 128

func prefix(s string, runes int) string {
	for i := range s {
		if runes == 0 {
			return s[:i]
		}
		runes--
	}
	return s
}

// userInputs is the username and the local part of its email address,
// lower-cased: the strings a password must not contain, and that zxcvbn
// treats as known to the attacker.
func userInputs(username string) []string {
	u := strings.ToLower(normalize(strings.TrimSpace(username)))
	if u == "" {
		return nil
	}
	in := []string{u}
	if local, _, ok := strings.Cut(u, "@"); ok && local != "" {
		in = append(in, local)
	}
	return in
}

// listed is every entry of zxcvbn's frequency lists (common passwords from
// breaches, English words, names, surnames, film and TV words), lower-cased.
// It is built on first use: the lists are already in memory (zxcvbn ranks
// them at start-up); the set adds only the index.
var listed = sync.OnceValue(func() map[string]struct{} {
	n := 0
	for _, l := range frequency.FrequencyLists {
		n += len(l)
	}
	set := make(map[string]struct{}, n)
	for _, l := range frequency.FrequencyLists {
		for _, w := range l {
			set[strings.ToLower(w)] = struct{}{}
		}
	}
	return set
})

// isListed reports whether a lower-cased password is on a list as it is, or
// once the digits and symbols people tack on at either end ("password1!",
// "2024summer") are stripped.
func isListed(lower string) bool {
	set := listed()
	if _, ok := set[lower]; ok {
		return true
	}
	core := strings.TrimFunc(lower, func(r rune) bool { return !unicode.IsLetter(r) })
	if core == "" || core == lower {
		return false
	}
	_, ok := set[core]
	return ok
}

// alphabet is Crockford's base32 in lower case: no i, l, o or u, so nothing
// reads as another character, and 32 symbols so one random byte masked to
// 5 bits picks a symbol without bias.
const alphabet = "0123456789abcdefghjkmnpqrstvwxyz"

// Generate returns a random initial password: 4 groups of 5 symbols joined by
// '-', 100 bits of entropy, easy to read out of an email and to type.
func Generate() string {
	const groups, size = 4, 5
	buf := make([]byte, groups*size)
	if _, err := rand.Read(buf); err != nil {
		// crypto/rand.Read never fails on supported platforms (Go 1.24+); a
		// predictable password would be far worse than a crash.
		panic("password: crypto/rand failed: " + err.Error())
	}
	var b strings.Builder
	b.Grow(groups*size + groups - 1)
	for i, c := range buf {
		if i > 0 && i%size == 0 {
			b.WriteByte('-')
		}
		b.WriteByte(alphabet[c&31])
	}
	return b.String()
}
