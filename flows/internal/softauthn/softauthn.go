// Package softauthn is a software WebAuthn authenticator and browser for
// tests: it answers the options Lanyard's JSON endpoints send the way
// navigator.credentials.create and .get would, and returns the JSON that
// static/webauthn.js posts back (PublicKeyCredential.toJSON()).
//
// It builds everything at the protocol level — clientDataJSON with type,
// challenge and origin; authenticator data with the RP ID hash, the UP, UV,
// BE, BS and AT flags and the sign count; attested credential data with a
// COSE P-256 key; a "none" attestation object; ES256 signatures over
// authData || SHA-256(clientDataJSON) — so a test can also get each of those
// wrong on purpose. Only tests import it; it never belongs in the server.
package softauthn

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"
)

// Authenticator flags (WebAuthn §6.1).
const (
	flagUP = 0x01
	flagUV = 0x04
	flagBE = 0x08
	flagBS = 0x10
	flagAT = 0x40
)

// Authenticator is one software authenticator with the browser in front of
// it. The exported fields shape the next ceremonies; change them to produce
// the faults a test needs.
type Authenticator struct {
	// Origin is what the "browser" writes into clientDataJSON.
	Origin string
	// RPID, when set, is hashed into authData instead of the rpId the
	// options name (a wrong RP ID hash).
	RPID string
	// UP and UV are the user-presence and user-verification flags.
	UP, UV bool
	// Synced makes new credentials backup-eligible and backed up (a synced
	// passkey); otherwise they are device-bound (a security key).
	Synced bool
	// Challenge, when set, replaces the challenge the options carry.
	Challenge []byte
	// Type, when set, replaces "webauthn.create"/"webauthn.get".
	Type string
	// Counter, when set, is the sign count of the next assertion instead of
	// the credential's count plus one.
	Counter *uint32
	// UserHandle, when set, replaces the credential's user handle in
	// assertions.
	UserHandle []byte
	// AAGUID of this authenticator model.
	AAGUID [16]byte

	creds []*Credential
}

// Credential is a key pair the authenticator holds.
type Credential struct {
	ID         []byte
	UserHandle []byte
	RPID       string
	SignCount  uint32
	Synced     bool
	key        *ecdsa.PrivateKey
}

// New returns an authenticator behind a browser at origin that performs user
// presence and verification (a platform authenticator with a PIN or
// biometric).
func New(origin string) *Authenticator {
	a := &Authenticator{Origin: origin, UP: true, UV: true}
	rand.Read(a.AAGUID[:])
	return a
}

// Credentials returns the credentials created so far.
func (a *Authenticator) Credentials() []*Credential { return a.creds }

// b64 is base64url without padding, WebAuthn's JSON encoding of bytes.
var b64 = base64.RawURLEncoding

type creationOptions struct {
	PublicKey struct {
		RP struct {
			ID string `json:"id"`
		} `json:"rp"`
		User struct {
			ID string `json:"id"`
		} `json:"user"`
		Challenge          string       `json:"challenge"`
		ExcludeCredentials []descriptor `json:"excludeCredentials"`
	} `json:"publicKey"`
}

type requestOptions struct {
	PublicKey struct {
		Challenge        string       `json:"challenge"`
		RPID             string       `json:"rpId"`
		AllowCredentials []descriptor `json:"allowCredentials"`
		UserVerification string       `json:"userVerification"`
	} `json:"publicKey"`
	Mediation string `json:"mediation"`
}

type descriptor struct {
	ID string `json:"id"`
}

// Create answers navigator.credentials.create(options): a new P-256
// credential and the registration JSON the script posts.
func (a *Authenticator) Create(options []byte) ([]byte, *Credential, error) {
	var o creationOptions
	if err := json.Unmarshal(options, &o); err != nil {
		return nil, nil, fmt.Errorf("creation options: %w", err)
	}
	rpID := o.PublicKey.RP.ID
	handle, err := b64.DecodeString(o.PublicKey.User.ID)
	if err != nil || len(handle) == 0 {
		return nil, nil, fmt.Errorf("user.id %q: %v", o.PublicKey.User.ID, err)
	}
	challenge, err := b64.DecodeString(o.PublicKey.Challenge)
	if err != nil {
		return nil, nil, fmt.Errorf("challenge: %w", err)
	}
	for _, ex := range o.PublicKey.ExcludeCredentials {
		for _, c := range a.creds {
			if ex.ID == b64.EncodeToString(c.ID) {
				return nil, nil, errors.New("InvalidStateError: the authenticator already holds a credential of this account")
			}
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	c := &Credential{ID: make([]byte, 32), UserHandle: handle, RPID: rpID, Synced: a.Synced, key: key}
	rand.Read(c.ID)

	cose, err := coseKey(key)
	if err != nil {
		return nil, nil, err
	}
	att := make([]byte, 0, 16+2+len(c.ID)+len(cose))
	att = append(att, a.AAGUID[:]...)
	att = binary.BigEndian.AppendUint16(att, uint16(len(c.ID)))
	att = append(att, c.ID...)
	att = append(att, cose...)
	authData := a.authData(rpID, c, flagAT, 0)
	authData = append(authData, att...)

	clientData := a.clientData("webauthn.create", challenge)
	obj, err := webauthncbor.Marshal(map[string]any{
		"fmt":      "none",
		"attStmt":  map[string]any{},
		"authData": authData,
	})
	if err != nil {
		return nil, nil, err
	}
	a.creds = append(a.creds, c)
	out, err := json.Marshal(map[string]any{
		"id":    b64.EncodeToString(c.ID),
		"rawId": b64.EncodeToString(c.ID),
		"type":  "public-key",
		"response": map[string]any{
			"clientDataJSON":    b64.EncodeToString(clientData),
			"attestationObject": b64.EncodeToString(obj),
			"transports":        []string{"internal", "hybrid"},
		},
		"clientExtensionResults":  map[string]any{},
		"authenticatorAttachment": "platform",
	})
	return out, c, err
}

// Get answers navigator.credentials.get(options) with credential c, or,
// when c is nil, with the first credential the options allow (any of this
// RP's credentials for a discoverable request).
func (a *Authenticator) Get(options []byte, c *Credential) ([]byte, error) {
	var o requestOptions
	if err := json.Unmarshal(options, &o); err != nil {
		return nil, fmt.Errorf("request options: %w", err)
	}
	challenge, err := b64.DecodeString(o.PublicKey.Challenge)
	if err != nil {
		return nil, fmt.Errorf("challenge: %w", err)
	}
	rpID := o.PublicKey.RPID
	if c == nil {
		c = a.pick(rpID, o.PublicKey.AllowCredentials)
		if c == nil {
			return nil, errors.New("NotAllowedError: no credential for this request")
		}
	}
	count := c.SignCount + 1
	if a.Counter != nil {
		count = *a.Counter
	}
	authData := a.authData(rpID, c, 0, count)
	clientData := a.clientData("webauthn.get", challenge)
	sum := sha256.Sum256(clientData)
	signed := append(append([]byte{}, authData...), sum[:]...)
	digest := sha256.Sum256(signed)
	sig, err := ecdsa.SignASN1(rand.Reader, c.key, digest[:])
	if err != nil {
		return nil, err
	}
	c.SignCount = count
	handle := c.UserHandle
	if a.UserHandle != nil {
		handle = a.UserHandle
	}
	return json.Marshal(map[string]any{
		"id":    b64.EncodeToString(c.ID),
		"rawId": b64.EncodeToString(c.ID),
		"type":  "public-key",
		"response": map[string]any{
			"clientDataJSON":    b64.EncodeToString(clientData),
			"authenticatorData": b64.EncodeToString(authData),
			"signature":         b64.EncodeToString(sig),
			"userHandle":        b64.EncodeToString(handle),
		},
		"clientExtensionResults":  map[string]any{},
		"authenticatorAttachment": "platform",
	})
}

func (a *Authenticator) pick(rpID string, allow []descriptor) *Credential {
	for _, c := range a.creds {
		if c.RPID != rpID {
			continue
		}
		if len(allow) == 0 {
			return c
		}
		for _, d := range allow {
			if d.ID == b64.EncodeToString(c.ID) {
				return c
			}
		}
	}
	return nil
}

// authData is rpIdHash | flags | signCount (attested credential data is
// appended by the caller).
func (a *Authenticator) authData(rpID string, c *Credential, extra byte, count uint32) []byte {
	if a.RPID != "" {
		rpID = a.RPID
	}
	h := sha256.Sum256([]byte(rpID))
	flags := extra
	if a.UP {
		flags |= flagUP
	}
	if a.UV {
		flags |= flagUV
	}
	if c.Synced {
		flags |= flagBE | flagBS
	}
	out := append([]byte{}, h[:]...)
	out = append(out, flags)
	return binary.BigEndian.AppendUint32(out, count)
}

func (a *Authenticator) clientData(typ string, challenge []byte) []byte {
	if a.Type != "" {
		typ = a.Type
	}
	if a.Challenge != nil {
		challenge = a.Challenge
	}
	b, _ := json.Marshal(map[string]any{
		"type":        typ,
		"challenge":   b64.EncodeToString(challenge),
		"origin":      a.Origin,
		"crossOrigin": false,
	})
	return b
}

// coseKey encodes the public key as a COSE_Key (EC2, ES256, P-256).
func coseKey(key *ecdsa.PrivateKey) ([]byte, error) {
	pub, err := key.PublicKey.ECDH()
	if err != nil {
		return nil, err
	}
	point := pub.Bytes() // 0x04 | X | Y
	return webauthncbor.Marshal(webauthncose.EC2PublicKeyData{
		PublicKeyData: webauthncose.PublicKeyData{
			KeyType:   int64(webauthncose.EllipticKey),
			Algorithm: int64(webauthncose.AlgES256),
		},
		Curve:  1, // P-256
		XCoord: point[1:33],
		YCoord: point[33:65],
	})
}
