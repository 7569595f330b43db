// Package pushtest is a stand-in for a browser vendor's push service, for
// tests: a local HTTP server that takes Web Push messages as a real one
// does, checks the VAPID signature (RFC 8292) and decrypts the payload with
// the subscription's private key (RFC 8291), and answers 201 — or, for a
// subscription told to, 404 or 410 as a service does for a subscription that
// is gone.
//
// It checks what the real services check and what a test should: the
// Authorization header's JWT is ES256 by the key it names, for this
// service's origin, unexpired for at most 24 hours, with a contact; the body
// is aes128gcm with one record; the TTL header is there.
package pushtest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

var b64 = base64.RawURLEncoding

// Service is the push service.
type Service struct {
	srv *httptest.Server

	mu       sync.Mutex
	subs     map[string]*Subscription
	received []Message
	arrived  chan struct{}
}

// Subscription is what a browser makes when the app subscribes: the
// endpoint, the public keys the app sends Lanyard, and the private key
// that only the browser has.
type Subscription struct {
	ID       string
	Endpoint string
	P256dh   string // base64url uncompressed point
	Auth     string // base64url 16 bytes
	priv     *ecdh.PrivateKey
	auth     []byte
	status   int
}

// Message is one push the service received, checked and decrypted.
type Message struct {
	Subscription string // its ID
	TTL          string
	Urgency      string
	Topic        string
	// Claims are the VAPID JWT's claims; VAPIDKey the key that signed it
	// (base64url, as the header's k=).
	Claims   map[string]any
	VAPIDKey string
	Payload  []byte
	// Err says what was wrong with the message, if anything (the service
	// then answered 400 or 401).
	Err error
}

// New starts a push service; Close stops it.
func New() *Service {
	s := &Service{subs: map[string]*Subscription{}, arrived: make(chan struct{}, 1024)}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// Close stops the service.
func (s *Service) Close() { s.srv.Close() }

// URL is the service's origin (the "aud" VAPID tokens must name).
func (s *Service) URL() string { return s.srv.URL }

// Host is the service's host name, for the allowed push hosts.
func (s *Service) Host() string {
	h := strings.TrimPrefix(s.srv.URL, "http://")
	if i := strings.LastIndex(h, ":"); i >= 0 {
		h = h[:i]
	}
	return h
}

// Subscribe makes a subscription, as a browser's PushManager.subscribe does.
func (s *Service) Subscribe() *Subscription {
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	auth := make([]byte, 16)
	rand.Read(auth)
	idb := make([]byte, 12)
	rand.Read(idb)
	id := b64.EncodeToString(idb)
	sub := &Subscription{ID: id, Endpoint: s.srv.URL + "/push/" + id,
		P256dh: b64.EncodeToString(priv.PublicKey().Bytes()), Auth: b64.EncodeToString(auth),
		priv: priv, auth: auth, status: http.StatusCreated}
	s.mu.Lock()
	s.subs[id] = sub
	s.mu.Unlock()
	return sub
}

// Gone makes the service answer status (404 or 410) for sub from now on,
// as for a subscription the browser dropped.
func (s *Service) Gone(sub *Subscription, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub.status = status
}

// Received returns the messages received so far.
func (s *Service) Received() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.received...)
}

// Wait returns the first message received after the n already seen, or
// false after timeout.
func (s *Service) Wait(n int, timeout time.Duration) (Message, bool) {
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		if len(s.received) > n {
			m := s.received[n]
			s.mu.Unlock()
			return m, true
		}
		s.mu.Unlock()
		select {
		case <-s.arrived:
		case <-deadline:
			return Message{}, false
		}
	}
}

func (s *Service) serve(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutPrefix(r.URL.Path, "/push/")
	s.mu.Lock()
	sub := s.subs[id]
	s.mu.Unlock()
	if r.Method != http.MethodPost || !ok || sub == nil {
		http.NotFound(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<10))
	m := Message{Subscription: id, TTL: r.Header.Get("TTL"), Urgency: r.Header.Get("Urgency"), Topic: r.Header.Get("Topic")}
	status := sub.status
	switch {
	case err != nil:
		m.Err = err
	case r.Header.Get("TTL") == "":
		m.Err = errors.New("no TTL header")
	case r.Header.Get("Content-Encoding") != "aes128gcm":
		m.Err = fmt.Errorf("Content-Encoding %q, want aes128gcm", r.Header.Get("Content-Encoding"))
	default:
		m.Claims, m.VAPIDKey, m.Err = s.checkVAPID(r.Header.Get("Authorization"))
		if m.Err == nil {
			m.Payload, m.Err = decrypt(sub, body)
		}
	}
	if m.Err != nil && status < 400 {
		status = http.StatusBadRequest
	}
	s.mu.Lock()
	s.received = append(s.received, m)
	s.mu.Unlock()
	select {
	case s.arrived <- struct{}{}:
	default:
	}
	w.WriteHeader(status)
}

// checkVAPID checks an "Authorization: vapid t=JWT, k=KEY" header.
func (s *Service) checkVAPID(h string) (map[string]any, string, error) {
	rest, ok := strings.CutPrefix(h, "vapid ")
	if !ok {
		return nil, "", fmt.Errorf("authorization %.20q is not vapid", h)
	}
	var tok, key string
	for _, part := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			tok = v
		case "k":
			key = v
		}
	}
	rawKey, err := b64.DecodeString(key)
	if err != nil {
		return nil, key, fmt.Errorf("vapid k: %w", err)
	}
	x, y := elliptic.Unmarshal(elliptic.P256(), rawKey) //nolint:staticcheck // the uncompressed point of RFC 8292
	if x == nil {
		return nil, key, errors.New("vapid k is not a P-256 point")
	}
	pub := &ecdsa.PublicKey{Curve: elliptic.P256(), X: x, Y: y}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, key, errors.New("vapid t is not a JWT")
	}
	var hdr struct{ Alg string }
	if err := decodeJSON(parts[0], &hdr); err != nil || hdr.Alg != "ES256" {
		return nil, key, fmt.Errorf("JWT header alg %q, want ES256 (%v)", hdr.Alg, err)
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return nil, key, errors.New("JWT signature is not 64 bytes of base64url")
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return nil, key, errors.New("JWT signature does not verify with the key in k=")
	}
	var claims map[string]any
	if err := decodeJSON(parts[1], &claims); err != nil {
		return nil, key, fmt.Errorf("JWT claims: %w", err)
	}
	if claims["aud"] != s.srv.URL {
		return claims, key, fmt.Errorf("JWT aud %v, want %s", claims["aud"], s.srv.URL)
	}
	exp, _ := claims["exp"].(float64)
	if now := float64(time.Now().Unix()); exp <= now || exp > now+24*3600 {
		return claims, key, fmt.Errorf("JWT exp %v is not within 24 hours from now", claims["exp"])
	}
	if sub, _ := claims["sub"].(string); !strings.HasPrefix(sub, "mailto:") && !strings.HasPrefix(sub, "https:") {
		return claims, key, fmt.Errorf("JWT sub %q is neither mailto: nor https:", sub)
	}
	return claims, key, nil
}

func decodeJSON(part string, v any) error {
	b, err := b64.DecodeString(part)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// decrypt opens an aes128gcm body (RFC 8188) with the keys of RFC 8291.
func decrypt(sub *Subscription, body []byte) ([]byte, error) {
	if len(body) < 21 {
		return nil, errors.New("body shorter than the aes128gcm header")
	}
	salt, rs, idlen := body[:16], binary.BigEndian.Uint32(body[16:20]), int(body[20])
	if len(body) < 21+idlen || idlen != 65 {
		return nil, fmt.Errorf("key id of %d bytes, want the 65-byte sender key", idlen)
	}
	asPub, record := body[21:21+idlen], body[21+idlen:]
	if rs < 18 || len(record) > int(rs) {
		return nil, fmt.Errorf("record of %d bytes with record size %d: more than one record", len(record), rs)
	}
	sender, err := ecdh.P256().NewPublicKey(asPub)
	if err != nil {
		return nil, fmt.Errorf("sender key: %w", err)
	}
	shared, err := sub.priv.ECDH(sender)
	if err != nil {
		return nil, err
	}
	info := append(append([]byte("WebPush: info\x00"), sub.priv.PublicKey().Bytes()...), asPub...)
	ikm, err := hkdf.Key(sha256.New, shared, sub.auth, string(info), 32)
	if err != nil {
		return nil, err
	}
	cek, err := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: aes128gcm\x00", 16)
	if err != nil {
		return nil, err
	}
	nonce, err := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: nonce\x00", 12)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	plain, err := gcm.Open(nil, nonce, record, nil)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	// The last record ends in 0x02 and zero padding.
	end := len(plain) - 1
	for end >= 0 && plain[end] == 0 {
		end--
	}
	if end < 0 || plain[end] != 2 {
		return nil, errors.New("the record does not end with the last-record delimiter")
	}
	return plain[:end], nil
}
