package config

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Client secrets are stored as a salted HMAC-SHA256, not a password hash.
// They are generated high-entropy strings, so a slow hash buys nothing against
// guessing and would cap the token endpoint's throughput (every client
// authentication verifies one). The salt keeps equal secrets from having
// equal hashes.
const (
	secretHashScheme = "lanyard-hmac-sha256"
	secretSaltSize   = 16
	// MinSecretLength is the shortest client secret `lanyard client
	// hash-secret` accepts.
	MinSecretLength = 12
	// maxSecretLength bounds the work a caller can make VerifySecret do.
	maxSecretLength = 4096
)

var b64 = base64.RawURLEncoding

// CheckSecretStrength refuses a client secret too short to resist guessing.
// It is separate from VerifySecret, which accepts any secret, so that the
// development configuration can keep its short, memorable secrets.
func CheckSecretStrength(secret string) error {
	switch n := utf8.RuneCountInString(secret); {
	case n == 0:
		return errors.New("the client secret is empty")
	case n < MinSecretLength:
		return fmt.Errorf("the client secret has %d characters; use at least %d (for example the output of `openssl rand -base64 32`)", n, MinSecretLength)
	case len(secret) > maxSecretLength:
		return fmt.Errorf("the client secret is longer than %d bytes", maxSecretLength)
	case strings.TrimSpace(secret) != secret:
		return errors.New("the client secret starts or ends with white space; it would be lost when copied")
	}
	return nil
}

// HashSecret returns the form of a client secret stored in the
// configuration's secret_hash:
//
//	$lanyard-hmac-sha256$<salt, base64url>$<HMAC-SHA256(key=salt, secret), base64url>
//
// It refuses secrets that fail CheckSecretStrength.
func HashSecret(secret string) (string, error) {
	if err := CheckSecretStrength(secret); err != nil {
		return "", err
	}
	return hashSecret(secret)
}

// hashSecret is HashSecret without the strength check; the dev
// configuration's hashes were made with it.
func hashSecret(secret string) (string, error) {
	salt := make([]byte, secretSaltSize)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash client secret: %w", err)
	}
	return "$" + secretHashScheme + "$" + b64.EncodeToString(salt) + "$" + b64.EncodeToString(secretMAC(salt, secret)), nil
}

func secretMAC(salt []byte, secret string) []byte {
	m := hmac.New(sha256.New, salt)
	m.Write([]byte(secret))
	return m.Sum(make([]byte, 0, sha256.Size))
}

// parseSecretHash splits a HashSecret output into salt and MAC.
func parseSecretHash(hash string) (salt, mac []byte, err error) {
	var s [secretSaltSize]byte
	var m [sha256.Size]byte
	if err := decodeSecretHash(hash, &s, &m); err != nil {
		return nil, nil, err
	}
	return s[:], m[:], nil
}

// decodeSecretHash parses into caller-owned arrays so that VerifySecret,
// which runs on every client authentication, does not allocate for it.
func decodeSecretHash(hash string, salt *[secretSaltSize]byte, mac *[sha256.Size]byte) error {
	rest, ok := strings.CutPrefix(hash, "$"+secretHashScheme+"$")
	saltPart, macPart, ok2 := strings.Cut(rest, "$")
	if !ok || !ok2 {
		return fmt.Errorf("not a client secret hash: expected $%s$<salt>$<mac> (the output of `lanyard client hash-secret`)", secretHashScheme)
	}
	if b64.DecodedLen(len(saltPart)) != secretSaltSize {
		return fmt.Errorf("the salt of the client secret hash is not %d bytes of base64url", secretSaltSize)
	}
	if n, err := b64.Decode(salt[:], []byte(saltPart)); err != nil || n != secretSaltSize {
		return fmt.Errorf("the salt of the client secret hash is not %d bytes of base64url", secretSaltSize)
	}
	if b64.DecodedLen(len(macPart)) != sha256.Size {
		return fmt.Errorf("the MAC of the client secret hash is not %d bytes of base64url", sha256.Size)
	}
	if n, err := b64.Decode(mac[:], []byte(macPart)); err != nil || n != sha256.Size {
		return fmt.Errorf("the MAC of the client secret hash is not %d bytes of base64url", sha256.Size)
	}
	return nil
}

// VerifySecret reports whether secret matches hash (a HashSecret output),
// comparing in constant time. A malformed hash matches nothing.
func VerifySecret(hash, secret string) bool {
	if len(secret) > maxSecretLength {
		return false
	}
	var salt [secretSaltSize]byte
	var mac [sha256.Size]byte
	if decodeSecretHash(hash, &salt, &mac) != nil {
		return false
	}
	return hmac.Equal(mac[:], secretMAC(salt[:], secret))
}
