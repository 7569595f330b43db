// Package otp is Lanyard's authenticator-app second factor: RFC 6238 TOTP with
// the parameters every authenticator app understands (SHA-1, 6 digits, 30 s),
// the otpauth:// enrolment URI and its QR code, and a pure, replay-safe
// validator.
//
// Validate takes the clock and the last accepted time step as arguments and
// returns the step it matched; the caller stores that step atomically
// (store.UseTOTPStep) so a code is accepted once even under concurrency.
// Sealing the secret at rest and throttling wrong codes are the caller's job:
// nothing here touches storage, HTTP or the time of day.
package otp

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"fmt"
	"image/png"
	"strings"
	"time"

	potp "github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
)

// The TOTP parameters. Authenticator apps ignore or mishandle anything else,
// so they are fixed rather than configurable.
const (
	SecretSize = 20 // bytes: 160 bits, the HMAC-SHA-1 block recommendation of RFC 4226
	Digits     = 6
	Period     = 30 // seconds
	// Skew is how many steps either side of now are accepted: one step (30 s)
	// covers clock drift and the time it takes to type the code.
	Skew = 1
)

// qrSize is the QR code's width and height in pixels: large enough for a
// phone camera to read off a laptop screen.
const qrSize = 256

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewSecret returns a new random 160-bit secret.
func NewSecret() []byte {
	s := make([]byte, SecretSize)
	if _, err := rand.Read(s); err != nil {
		// crypto/rand.Read does not fail on supported platforms (Go 1.24+);
		// a predictable second factor would be worse than a crash.
		panic("otp: crypto/rand failed: " + err.Error())
	}
	return s
}

// EncodeSecret returns the secret as authenticator apps expect it for manual
// entry and in the URI: RFC 4648 base32, upper case, no padding.
func EncodeSecret(secret []byte) string { return b32.EncodeToString(secret) }

// URI returns the otpauth://totp/ enrolment URI for the secret, labelled
// "issuer:account" with the issuer repeated as a parameter (Google
// Authenticator's key URI format). It is built here rather than with
// totp.Generate because pquerna/otp escapes values with url.PathEscape, which
// leaves '&', '=' and ':' alone: an issuer such as "R&D" would break the
// query. Every component is percent-encoded except unreserved characters
// and '@', and spaces are %20 (some apps show a '+' literally). The format
// forbids a colon inside the label's issuer or account (apps split the label
// at the first one), so a colon there becomes a space; the issuer parameter,
// which apps prefer, keeps it.
func URI(issuer, account string, secret []byte) string {
	label := func(s string) string { return escape(strings.ReplaceAll(s, ":", " ")) }
	return fmt.Sprintf("otpauth://totp/%s:%s?secret=%s&issuer=%s&algorithm=SHA1&digits=%d&period=%d",
		label(issuer), label(account), EncodeSecret(secret), escape(issuer), Digits, Period)
}

// QRDataURL returns a data: URL of a PNG QR code of uri, for an <img> on the
// enrolment page (a data: URL needs no extra request and no script).
func QRDataURL(uri string) (string, error) {
	key, err := potp.NewKeyFromURL(uri)
	if err != nil {
		return "", fmt.Errorf("otp: parse URI: %w", err)
	}
	img, err := key.Image(qrSize, qrSize)
	if err != nil {
		return "", fmt.Errorf("otp: QR code: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return "", fmt.Errorf("otp: encode PNG: %w", err)
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}

// Step returns the RFC 6238 time step of t.
func Step(t time.Time) int64 { return t.Unix() / Period }

// Code returns the code of the secret at t.
func Code(secret []byte, t time.Time) string { return codeAt(secret, Step(t)) }

func codeAt(secret []byte, step int64) string {
	if step < 0 {
		return ""
	}
	c, err := hotp.GenerateCodeCustom(EncodeSecret(secret), uint64(step), hotp.ValidateOpts{
		Digits:    potp.DigitsSix,
		Algorithm: potp.AlgorithmSHA1,
	})
	if err != nil {
		// Only a secret that is not base32 fails, and EncodeSecret made it.
		return ""
	}
	return c
}

// Validate checks a code typed by the officer against the steps around now
// (now-1, now, now+1) and returns the step it matched. A step at or before
// lastStep was already used (or is older than one that was) and is refused:
// that is what makes each code single-use. Input that is not exactly six ASCII
// digits after trimming surrounding spaces is refused before any HMAC is
// computed. Validate is pure: the clock is an argument.
func Validate(secret []byte, code string, now time.Time, lastStep int64) (step int64, ok bool) {
	// Look at no more than a few surrounding spaces: a megabyte of input is
	// refused in constant time, never scanned.
	if len(code) > 64 {
		return 0, false
	}
	code = strings.TrimSpace(code)
	if !sixDigits(code) || len(secret) == 0 {
		return 0, false
	}
	cur := Step(now)
	// Compare against every candidate, in a fixed order, without stopping at
	// the first match: the time taken does not depend on which step matched.
	var matched int64 = -1
	for s := cur - Skew; s <= cur+Skew; s++ {
		want := codeAt(secret, s)
		if want == "" {
			continue
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && s > lastStep && matched < 0 {
			matched = s
		}
	}
	if matched < 0 {
		return 0, false
	}
	return matched, true
}

// sixDigits reports whether s is exactly Digits ASCII digits. Full-width and
// other Unicode digits are refused: they are not what the app showed.
func sixDigits(s string) bool {
	if len(s) != Digits {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// escape percent-encodes everything but RFC 3986 unreserved characters and
// '@', which is legal in both the path and the query and keeps an email
// address readable.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~@", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}
