// Package approval is the protocol of the Lanyard approval app, without
// HTTP or storage: the random values it is made of (request and device ids,
// one-time pairing tokens, the two-digit number the signing-in browser
// shows), the exact bytes the app signs with its device-bound key and their
// verification, and the Web Push wake-up (RFC 8030, message encryption
// RFC 8291, VAPID RFC 8292) through github.com/SherClockHolmes/webpush-go.
//
// The app (static/approve/app.js) holds a non-extractable ECDSA P-256 key
// made with WebCrypto; Lanyard keeps only its public key (SubjectPublicKeyInfo,
// DER). Every answer the app gives is a signature over a Message that names
// the request, the number typed, the decision and the request's server
// challenge, so an answer cannot be moved to another request, replayed with
// another number or decision, or made without the key.
//
// What must never go here: HTTP handlers, SQL, pages (flows/approve*.go,
// provider/store, templates/approve*.html). pushtest beside this package is
// a stand-in push service for tests.
package approval

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// Decision is the officer's answer on the phone.
type Decision string

const (
	Approve Decision = "approve"
	Deny    Decision = "deny"
)

// ParseDecision accepts exactly "approve" or "deny".
func ParseDecision(s string) (Decision, bool) {
	switch Decision(s) {
	case Approve, Deny:
		return Decision(s), true
	}
	return "", false
}

// MaxWrongNumbers is how many wrong numbers deny a request.
const MaxWrongNumbers = 3

// b64 is how ids, tokens, keys and signatures travel: base64url, no padding.
var b64 = base64.RawURLEncoding

func random(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return b64.EncodeToString(b)
}

// NewID returns 128 random bits: a request's or a device's id.
func NewID() string { return random(16) }

// NewChallenge returns the 256-bit server challenge of a request.
func NewChallenge() string { return random(32) }

// NewToken returns a one-time pairing token (256 bits). Only its hash
// (HashToken) is stored.
func NewToken() string { return random(32) }

// HashToken is how a pairing token is stored and looked up: hex SHA-256.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// ValidToken reports whether s looks like a token NewToken made (so junk is
// refused before any lookup).
func ValidToken(s string) bool {
	b, err := b64.DecodeString(s)
	return err == nil && len(b) == 32
}

// ValidID reports whether s looks like an id NewID made.
func ValidID(s string) bool {
	b, err := b64.DecodeString(s)
	return err == nil && len(b) == 16
}

// NewNumber returns a two-digit number, 10 to 99, uniformly, never equal to
// not (the previous request's, so that a new request is visibly new).
func NewNumber(not int) int {
	for {
		n, err := rand.Int(rand.Reader, big.NewInt(90))
		if err != nil {
			panic(err) // crypto/rand does not fail
		}
		if v := int(n.Int64()) + 10; v != not {
			return v
		}
	}
}

// ParseNumber reads the number the officer typed: exactly two ASCII
// digits, surrounding spaces ignored. Anything else is not a number (and
// never matches).
func ParseNumber(s string) (int, bool) {
	s = strings.TrimSpace(s)
	if len(s) != 2 || s[0] < '1' || s[0] > '9' || s[1] < '0' || s[1] > '9' {
		return 0, false
	}
	n, _ := strconv.Atoi(s)
	return n, true
}

// prefix names the protocol and its version in every signed message, so a
// signature made for something else is never one of these.
const prefix = "lanyard-approval/1"

// Message is what the app signs to answer a request: the request, the
// number typed (empty when denying), the decision and the request's server
// challenge. Fields are one per line, and none may contain a newline.
func Message(requestID, number string, d Decision, challenge string) []byte {
	return []byte(strings.Join([]string{prefix, "answer", "request=" + requestID, "number=" + number,
		"decision=" + string(d), "challenge=" + challenge}, "\n"))
}

// ListMessage is what the app signs to ask for its pending requests: its
// device id and the time (unix milliseconds), which Lanyard accepts within
// ListSkew of its own clock.
func ListMessage(deviceID string, at int64) []byte {
	return []byte(strings.Join([]string{prefix, "list", "device=" + deviceID, "at=" + strconv.FormatInt(at, 10)}, "\n"))
}

// ListSkew is how far the time in a ListMessage may be from Lanyard's clock.
const ListSkew = 2 * time.Minute

// ReportMessage is what the app signs to report a denied request as an
// attack on the account.
func ReportMessage(requestID, challenge string) []byte {
	return []byte(strings.Join([]string{prefix, "report", "request=" + requestID, "challenge=" + challenge}, "\n"))
}

// Errors of ParsePublicKey.
var (
	ErrKeyEncoding = errors.New("approval: the public key is not base64url")
	ErrKeyType     = errors.New("approval: the public key is not an ECDSA P-256 key")
)

// maxKey bounds an encoded public key (a P-256 SPKI is 91 bytes).
const maxKey = 200

// ParsePublicKey reads the app's public key: base64url of the DER
// SubjectPublicKeyInfo WebCrypto exports ("spki"). It must be ECDSA P-256.
// It returns the DER to store.
func ParsePublicKey(s string) ([]byte, error) {
	if len(s) > maxKey {
		return nil, ErrKeyEncoding
	}
	der, err := b64.DecodeString(s)
	if err != nil {
		return nil, ErrKeyEncoding
	}
	if _, err := publicKey(der); err != nil {
		return nil, err
	}
	return der, nil
}

func publicKey(der []byte) (*ecdsa.PublicKey, error) {
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyType, err)
	}
	ec, ok := k.(*ecdsa.PublicKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, ErrKeyType
	}
	return ec, nil
}

// Verify checks a signature made by WebCrypto's ECDSA with SHA-256:
// base64url of r‖s, 32 bytes each (IEEE P1363, not DER), by the key whose
// DER SubjectPublicKeyInfo is pub.
func Verify(pub, msg []byte, sig string) bool {
	if len(sig) > 100 {
		return false
	}
	raw, err := b64.DecodeString(sig)
	if err != nil || len(raw) != 64 {
		return false
	}
	k, err := publicKey(pub)
	if err != nil {
		return false
	}
	h := sha256.Sum256(msg)
	r, s := new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])
	return ecdsa.Verify(k, h[:], r, s)
}

// Sign signs msg as the app does (ECDSA P-256, SHA-256, r‖s, base64url):
// for tests and tools standing in for the app.
func Sign(k *ecdsa.PrivateKey, msg []byte) (string, error) {
	h := sha256.Sum256(msg)
	r, s, err := ecdsa.Sign(rand.Reader, k, h[:])
	if err != nil {
		return "", err
	}
	raw := make([]byte, 64)
	r.FillBytes(raw[:32])
	s.FillBytes(raw[32:])
	return b64.EncodeToString(raw), nil
}

// EncodePublicKey is the app's encoding of a public key (base64url SPKI).
func EncodePublicKey(k *ecdsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return "", err
	}
	return b64.EncodeToString(der), nil
}
