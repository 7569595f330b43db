package flows

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
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
// store, all under one fresh salt: the user's.
func (rh recoveryHasher) newRecoveryCodes(userID string) (codes, hashes []string) {
	salt := newRecoverySalt()
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
		hashes = append(hashes, rh.hash(userID, salt, legacyRecoveryHash(norm)))
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

// How the store keeps recovery codes (NIST SP 800-63B §3.1.2, look-up
// secrets of fewer than 112 bits: salted, and hashed so that a copy of the
// database alone cannot test a guess). Each is stored as
//
//	rk1$<salt>$<HMAC-SHA-256(key, salt ‖ user id ‖ 0 ‖ SHA-256("lanyard-recovery-code:" ‖ code))>
//
// with the key derived from the key-encryption key (seal.Box.Derive, never
// stored) and a random 128-bit salt per user (one per set of codes). Without
// the key-encryption key, 50 bits per code are out of reach however fast the
// attacker's hardware; the salt and the user id make every officer's codes
// a separate problem even for one who has it.
//
// Older Lanyards stored the inner SHA-256 alone. Because the keyed form
// wraps it, those rows are re-keyed without the codes themselves: at every
// start (flows.New, RekeyRecoveryCodes) every row not in the keyed form is
// rewrapped, and until then (a node of the older version still running
// beside this one) a code in the old form is still accepted, so an upgrade
// locks nobody out.

const (
	recoveryKeyedPrefix = "rk1$"
	recoverySaltLen     = 16
	purposeRecoveryKey  = "recovery-codes"
)

// recoveryHasher hashes recovery codes under the deployment's recovery-code
// key.
type recoveryHasher struct{ key []byte }

func newRecoverySalt() []byte {
	salt := make([]byte, recoverySaltLen)
	rand.Read(salt)
	return salt
}

// legacyRecoveryHash is the unkeyed hash older Lanyards stored, and the
// input of the keyed one.
func legacyRecoveryHash(norm string) string {
	sum := sha256.Sum256([]byte("lanyard-recovery-code:" + norm))
	return hex.EncodeToString(sum[:])
}

// hash is the keyed form of inner (a legacyRecoveryHash) for the user.
func (rh recoveryHasher) hash(userID string, salt []byte, inner string) string {
	m := hmac.New(sha256.New, rh.key)
	m.Write(salt) // fixed length, as is inner: the fields cannot run into each other
	m.Write([]byte(userID))
	m.Write([]byte{0})
	m.Write([]byte(inner))
	return recoveryKeyedPrefix + hex.EncodeToString(salt) + "$" + hex.EncodeToString(m.Sum(nil))
}

// match returns the stored hash (one of stored, the user's unused codes)
// that the typed code norm matches, or "" when none does.
func (rh recoveryHasher) match(userID, norm string, stored []string) string {
	inner := legacyRecoveryHash(norm)
	found := ""
	bySalt := map[string]string{}
	for _, h := range stored {
		want := inner // an older Lanyard's row
		if rest, ok := strings.CutPrefix(h, recoveryKeyedPrefix); ok {
			saltHex, _, _ := strings.Cut(rest, "$")
			if want, ok = bySalt[saltHex]; !ok {
				salt, err := hex.DecodeString(saltHex)
				if err != nil || len(salt) != recoverySaltLen {
					continue
				}
				want = rh.hash(userID, salt, inner)
				bySalt[saltHex] = want
			}
		}
		if subtle.ConstantTimeCompare([]byte(h), []byte(want)) == 1 {
			found = h
		}
	}
	return found
}

// rekeyer rewraps older Lanyards' rows (RekeyRecoveryCodes), one salt per
// user.
func (rh recoveryHasher) rekeyer() func(userID, legacy string) string {
	salts := map[string][]byte{}
	return func(userID, legacy string) string {
		salt, ok := salts[userID]
		if !ok {
			salt = newRecoverySalt()
			salts[userID] = salt
		}
		return rh.hash(userID, salt, legacy)
	}
}
