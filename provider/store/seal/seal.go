// Package seal encrypts secrets at rest (signing keys, TOTP secrets, cookie
// keys) with AES-256-GCM under the deployment's key-encryption key. The
// additional data binds a ciphertext to its purpose, so a sealed TOTP secret
// cannot be replayed as a signing key. It also derives the keys that must
// never be stored at all (the audit chain's, the recovery codes'), each
// bound to its purpose the same way.
package seal

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the size of a key-encryption key.
const KeySize = 32

// Box seals and opens with one key.
type Box struct {
	aead cipher.AEAD
	key  []byte // for Derive
}

// New returns a Box for a 32-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("seal: key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Box{aead: aead, key: bytes.Clone(key)}, nil
}

// ParseKey decodes a base64 (standard or URL, padded or not) 32-byte key.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			if len(k) != KeySize {
				return nil, fmt.Errorf("encryption key is %d bytes, want %d", len(k), KeySize)
			}
			return k, nil
		}
	}
	return nil, errors.New("encryption key is not base64")
}

// Derive returns a 32-byte key for purpose, derived from the key-encryption
// key with HKDF-SHA-256 (RFC 5869): the same key for the same purpose under
// the same key-encryption key, and nothing about the key-encryption key or
// any other purpose's key can be learnt from it.
func (b *Box) Derive(purpose string) []byte {
	k, err := hkdf.Key(sha256.New, b.key, nil, "lanyard/"+purpose, KeySize)
	if err != nil {
		panic("seal: derive: " + err.Error()) // only for lengths HKDF cannot make
	}
	return k
}

// NewKey returns a fresh random key.
func NewKey() []byte {
	k := make([]byte, KeySize)
	rand.Read(k)
	return k
}

// Seal encrypts plaintext; purpose is bound as additional data.
func (b *Box) Seal(plaintext []byte, purpose string) []byte {
	nonce := make([]byte, b.aead.NonceSize())
	rand.Read(nonce)
	return b.aead.Seal(nonce, nonce, plaintext, []byte(purpose))
}

// ErrOpen means the ciphertext was not sealed with this key for this purpose.
var ErrOpen = errors.New("seal: cannot open (wrong key, purpose or corrupted data)")

// Open decrypts what Seal produced for the same purpose.
func (b *Box) Open(sealed []byte, purpose string) ([]byte, error) {
	n := b.aead.NonceSize()
	if len(sealed) < n+b.aead.Overhead() {
		return nil, ErrOpen
	}
	p, err := b.aead.Open(nil, sealed[:n], sealed[n:], []byte(purpose))
	if err != nil {
		return nil, ErrOpen
	}
	return p, nil
}
