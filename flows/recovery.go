package flows

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Recovery codes: ten one-time codes shown once after an enrolment, for the
// day the phone is lost. Each is 10 characters of Crockford's base32 (50
// bits), written xxxx-xxxx-xx. The alphabet has no i, l, o or u, and typing
// them anyway is forgiven (o reads as 0, i and l as 1), as are case, spaces
// and dashes.

const (
	recoveryCodeCount = 10
	recoveryCodeLen   = 10
	recoveryAlphabet  = "0123456789abcdefghjkmnpqrstvwxyz"
)

// recoveryFewLeft is when the officer is told to make new codes.
const recoveryFewLeft = 3

// newRecoveryCodes returns fresh codes for display and their hashes for the
// store.
func newRecoveryCodes() (codes, hashes []string) {
	for range recoveryCodeCount {
		b := make([]byte, recoveryCodeLen)
		rand.Read(b)
		var sb strings.Builder
		for i, c := range b {
			if i == 4 || i == 8 {
				sb.WriteByte('-')
			}
			// 256 is a multiple of 32: no modulo bias.
			sb.WriteByte(recoveryAlphabet[c&31])
		}
		code := sb.String()
		norm, _ := normaliseRecoveryCode(code)
		codes = append(codes, code)
		hashes = append(hashes, hashRecoveryCode(norm))
	}
	return codes, hashes
}

// normaliseRecoveryCode returns the canonical form of what was typed, or
// false when it cannot be a recovery code.
func normaliseRecoveryCode(s string) (string, bool) {
	if len(s) > 64 {
		return "", false
	}
	var sb strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r == '-' || r == ' ' || r == '\t':
			continue
		case r == 'o':
			r = '0'
		case r == 'i' || r == 'l':
			r = '1'
		}
		if r > 0x7f || !strings.ContainsRune(recoveryAlphabet, r) {
			return "", false
		}
		sb.WriteRune(r)
	}
	if sb.Len() != recoveryCodeLen {
		return "", false
	}
	return sb.String(), true
}

// hashRecoveryCode is what the store keeps. A plain SHA-256 is enough: the
// codes are random with 50 bits each, not something a dictionary holds.
func hashRecoveryCode(norm string) string {
	sum := sha256.Sum256([]byte("lanyard-recovery-code:" + norm))
	return hex.EncodeToString(sum[:])
}
