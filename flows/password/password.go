// Package password hashes, verifies and judges officers' passwords, and makes
// the random initial password an invitation carries.
//
// Hashes are argon2id with the OWASP parameters (19 MiB, 2 passes, 1 lane) in
// the PHC string format, so the parameters travel with each hash and can be
// raised later without invalidating stored ones. Every password is NFKC
// normalised before hashing and judging, so a full-width or composed form of a
// password is the same password.
//
// Every computation runs on a bounded pool (pool.go): no more at once than
// there are cores, a queue with a time limit, and ErrBusy beyond it, so a
// burst of sign-ins costs waiting time, never the process's memory.
//
// The policy follows NIST SP 800-63B: length limits (never truncation), no
// composition rules, refusal of common and breached passwords (the frequency
// lists and the estimator of github.com/trustelem/zxcvbn), of the username and
// of the initial password. Nothing here touches storage or HTTP.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/text/unicode/norm"
)

// OWASP's argon2id recommendation (Password Storage Cheat Sheet): m=19 MiB,
// t=2, p=1. Stored hashes carry their own parameters, so these only apply to
// new hashes.
const (
	memoryKiB = 19 * 1024
	passes    = 2
	lanes     = 1
	saltLen   = 16
	keyLen    = 32
)

// Bounds on parameters read back from an encoding. A stored hash is trusted
// data, but a corrupted or hand-edited row must fail cleanly instead of asking
// argon2 for gigabytes of memory or an unbounded number of passes.
const (
	maxMemoryKiB = 1 << 20 // 1 GiB
	maxPasses    = 16
	maxLanes     = 16
	minSaltLen   = 8
	maxSaltLen   = 64
	minKeyLen    = 16
	maxKeyLen    = 64
)

// ErrMalformedHash is wrapped by Verify when an encoded hash cannot be parsed.
var ErrMalformedHash = errors.New("password: malformed hash")

var b64 = base64.RawStdEncoding

// idKey is argon2.IDKey on a worker of the pool (pool.go): ErrBusy when the
// pool cannot take it.
func idKey(pw string, salt []byte, p params, keyLen uint32) ([]byte, error) {
	var key []byte
	err := thePool().run(func() { key = argonKey(pw, salt, p, keyLen) })
	return key, err
}

// argonKey is the computation itself, outside the pool.
func argonKey(pw string, salt []byte, p params, keyLen uint32) []byte {
	return argon2.IDKey([]byte(normalize(pw)), salt, p.passes, p.memory, p.lanes, keyLen)
}

// current is the parameters of new hashes.
var currentParams = params{memory: memoryKiB, passes: passes, lanes: lanes}

// normalize is applied to every password before it is hashed, compared or
// judged: NFKC makes look-alike input (full-width letters, ligatures, composed
// and decomposed accents) the same password on every device.
func normalize(pw string) string { return norm.NFKC.String(pw) }

// Hash returns the argon2id hash of NFKC(pw) in the PHC string format
// "$argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>" (unpadded standard base64).
func Hash(pw string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password: read salt: %w", err)
	}
	key, err := idKey(pw, salt, currentParams, keyLen)
	if err != nil {
		return "", err
	}
	return encode(currentParams, salt, key), nil
}

type params struct {
	memory uint32
	passes uint32
	lanes  uint8
}

func encode(p params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.memory, p.passes, p.lanes, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// decode parses a PHC argon2id string. Only argon2id version 19 is accepted:
// anything else is a bug or tampering, not a hash to be tolerated.
func decode(encoded string) (params, []byte, []byte, error) {
	var p params
	fail := func(why string) (params, []byte, []byte, error) {
		return params{}, nil, nil, fmt.Errorf("%w: %s", ErrMalformedHash, why)
	}
	parts := strings.Split(encoded, "$")
	// "", "argon2id", "v=19", "m=…,t=…,p=…", salt, key
	if len(parts) != 6 || parts[0] != "" {
		return fail("want $argon2id$v=19$m=…,t=…,p=…$salt$key")
	}
	if parts[1] != "argon2id" {
		return fail(fmt.Sprintf("algorithm %q is not argon2id", parts[1]))
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return fail(fmt.Sprintf("version %q is not v=%d", parts[2], argon2.Version))
	}
	kv := strings.Split(parts[3], ",")
	if len(kv) != 3 {
		return fail("parameters must be m=…,t=…,p=…")
	}
	for i, name := range []string{"m", "t", "p"} {
		v, ok := strings.CutPrefix(kv[i], name+"=")
		if !ok {
			return fail(fmt.Sprintf("parameter %d must be %s=…", i+1, name))
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return fail(fmt.Sprintf("parameter %s=%q is not a number", name, v))
		}
		switch name {
		case "m":
			p.memory = uint32(n)
		case "t":
			if n < 1 || n > maxPasses {
				return fail(fmt.Sprintf("t=%d out of range", n))
			}
			p.passes = uint32(n)
		case "p":
			if n < 1 || n > maxLanes {
				return fail(fmt.Sprintf("p=%d out of range", n))
			}
			p.lanes = uint8(n)
		}
	}
	// argon2 needs at least 8 KiB per lane.
	if p.memory < 8*uint32(p.lanes) || p.memory > maxMemoryKiB {
		return fail(fmt.Sprintf("m=%d out of range", p.memory))
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil || len(salt) < minSaltLen || len(salt) > maxSaltLen {
		return fail("bad salt")
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil || len(key) < minKeyLen || len(key) > maxKeyLen {
		return fail("bad key")
	}
	return p, salt, key, nil
}

// Verify reports whether pw matches the encoded hash. The comparison is
// constant-time; a malformed encoding is an error (and never a match).
func Verify(encoded, pw string) (bool, error) {
	p, salt, key, err := decode(encoded)
	if err != nil {
		return false, err
	}
	got, err := idKey(pw, salt, p, uint32(len(key)))
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

// dummySalt is fixed: VerifyDummy's result is thrown away, only its cost matters.
var dummySalt = make([]byte, saltLen)

// VerifyDummy spends the same time as Verify against a current hash. Call it
// when the username is unknown (or the account cannot sign in), so the
// response time does not reveal which accounts exist. It fails with ErrBusy
// exactly when Verify would, for the same reason.
func VerifyDummy(pw string) error {
	_, err := idKey(pw, dummySalt, currentParams, keyLen)
	return err
}
