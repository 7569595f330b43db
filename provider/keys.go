package provider

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite/token/jwt"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/provider/store"
	"github.com/lanyard-idp/lanyard/provider/store/seal"
)

const (
	algRS256 = "RS256"
	algES256 = "ES256"

	purposeSigningKey = "signing-key"

	// keyRefreshEvery is how stale the key cache may get: a rotation on
	// another node is picked up within this time.
	keyRefreshEvery = 30 * time.Second
	// keyPropagation is how old a key must be before it signs: by then every
	// node has refreshed its cache and publishes it in its JWKS, so a relying
	// party that fetches the JWKS from any node can verify the token. Until
	// then the previous key (still published) keeps signing.
	keyPropagation = 2 * keyRefreshEvery
	// keyForcedRefreshGap limits reloads triggered by unknown kids, which
	// anyone can send.
	keyForcedRefreshGap = 5 * time.Second
)

// signingKey is one parsed key from the store.
type signingKey struct {
	kid       string
	alg       string
	priv      crypto.Signer
	createdAt time.Time
	retiredAt time.Time
}

func (k *signingKey) publicJWK() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: k.alg, Use: "sig"}
}

// keySnapshot is an immutable view of the keys; readers never lock.
type keySnapshot struct {
	loadedAt  time.Time
	current   map[string]*signingKey // alg → newest current key
	published map[string]*signingKey // kid → current or recently retired key
	jwks      []byte
}

// keyring caches the signing keys from the store and refreshes them lazily:
// at most every keyRefreshEvery, and at once (rate-limited) when a token names
// a kid it does not know, so keys rotated on another node are picked up.
type keyring struct {
	store       *store.Store
	box         *seal.Box
	algs        []string
	retireAfter time.Duration
	now         func() time.Time
	log         *slog.Logger

	snap       atomic.Pointer[keySnapshot]
	reloading  sync.Mutex
	lastForced atomic.Int64 // unix nanos of the last reload forced by an unknown kid
}

func newKeyring(st *store.Store, box *seal.Box, algs []string, retireAfter time.Duration, now func() time.Time, log *slog.Logger) *keyring {
	return &keyring{store: st, box: box, algs: algs, retireAfter: retireAfter, now: now, log: log}
}

// ensure makes sure there is a current key for every configured algorithm,
// generating the missing ones, then loads the cache. Keys are generated outside
// the transaction (RSA generation is slow) and added inside one that holds the
// signing-key lock and checks again, so two nodes starting together on an
// empty database agree on one key per algorithm.
func (k *keyring) ensure(ctx context.Context) error {
	missing, err := k.missingAlgs(ctx)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		fresh := make([]*store.SigningKey, 0, len(missing))
		for _, alg := range missing {
			sk, err := generateKey(alg, k.box, k.now())
			if err != nil {
				return err
			}
			fresh = append(fresh, sk)
		}
		err := k.store.InTx(ctx, func(ctx context.Context) error {
			if err := k.store.LockSigningKeys(ctx); err != nil {
				return err
			}
			still, err := k.missingAlgs(ctx)
			if err != nil {
				return err
			}
			for _, sk := range fresh {
				if slices.Contains(still, sk.Alg) {
					if err := k.store.AddSigningKey(ctx, sk); err != nil {
						return fmt.Errorf("add %s signing key: %w", sk.Alg, err)
					}
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("provider: create signing keys: %w", err)
		}
	}
	if err := k.reload(ctx); err != nil {
		return fmt.Errorf("provider: load signing keys: %w", err)
	}
	for _, alg := range k.algs {
		if k.snap.Load().current[alg] == nil {
			return fmt.Errorf("provider: no usable %s signing key (wrong encryption key?)", alg)
		}
	}
	return nil
}

func (k *keyring) missingAlgs(ctx context.Context) ([]string, error) {
	keys, err := k.store.SigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	var missing []string
	for _, alg := range k.algs {
		found := false
		for _, sk := range keys {
			if sk.Alg == alg && sk.RetiredAt.IsZero() {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, alg)
		}
	}
	return missing, nil
}

// reload reads the keys from the store and swaps the snapshot. Keys already
// parsed are reused: only new ones are opened and parsed.
func (k *keyring) reload(ctx context.Context) error {
	rows, err := k.store.SigningKeys(ctx)
	if err != nil {
		return err
	}
	now := k.now()
	prev := k.snap.Load()
	next := &keySnapshot{loadedAt: now, current: map[string]*signingKey{}, published: map[string]*signingKey{}}
	var set jose.JSONWebKeySet
	byAlg := map[string][]*signingKey{} // newest first
	for _, row := range rows {          // newest first
		if !row.RetiredAt.IsZero() && !now.Before(row.RetiredAt.Add(k.retireAfter)) {
			continue // retired long enough ago: no token signed with it is still valid
		}
		var sk *signingKey
		if prev != nil {
			if old := prev.published[row.KID]; old != nil {
				cp := *old
				cp.retiredAt = row.RetiredAt
				sk = &cp
			}
		}
		if sk == nil {
			sk, err = k.open(row)
			if err != nil {
				k.log.Error("signing key left out", "kid", row.KID, "err", err)
				continue
			}
		}
		next.published[sk.kid] = sk
		set.Keys = append(set.Keys, sk.publicJWK())
		byAlg[sk.alg] = append(byAlg[sk.alg], sk)
	}
	// The newest key old enough for every node to publish it signs (see
	// keyPropagation); while a rotation propagates, the previous key (still
	// published, even if retired) goes on signing. A key is never too young
	// when it is the only one there is (the first start).
	for alg, ks := range byAlg {
		next.current[alg] = ks[0]
		for _, sk := range ks {
			if !now.Before(sk.createdAt.Add(keyPropagation)) {
				next.current[alg] = sk
				break
			}
		}
	}
	if set.Keys == nil {
		set.Keys = []jose.JSONWebKey{}
	}
	if next.jwks, err = json.Marshal(set); err != nil {
		return err
	}
	k.snap.Store(next)
	return nil
}

func (k *keyring) open(row store.SigningKey) (*signingKey, error) {
	der, err := k.box.Open(row.Private, purposeSigningKey)
	if err != nil {
		return nil, err
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("parse key: %w", err)
	}
	priv, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key type %T cannot sign", parsed)
	}
	switch p := priv.(type) {
	case *rsa.PrivateKey:
		if row.Alg != algRS256 {
			return nil, fmt.Errorf("RSA key stored as %s", row.Alg)
		}
	case *ecdsa.PrivateKey:
		if row.Alg != algES256 || p.Curve != elliptic.P256() {
			return nil, fmt.Errorf("EC key stored as %s", row.Alg)
		}
	default:
		return nil, fmt.Errorf("unsupported key type %T", priv)
	}
	return &signingKey{kid: row.KID, alg: row.Alg, priv: priv, createdAt: row.CreatedAt, retiredAt: row.RetiredAt}, nil
}

// snapshot returns the cached keys, refreshing them first when stale. Only one
// request refreshes; the others carry on with the previous snapshot.
func (k *keyring) snapshot(ctx context.Context) *keySnapshot {
	s := k.snap.Load()
	if k.now().Sub(s.loadedAt) < keyRefreshEvery {
		return s
	}
	if k.reloading.TryLock() {
		defer k.reloading.Unlock()
		if cur := k.snap.Load(); k.now().Sub(cur.loadedAt) >= keyRefreshEvery {
			if err := k.reload(ctx); err != nil {
				k.log.Error("refresh signing keys", "err", err)
				// Keep serving the old keys; try again after the usual interval.
				stale := *cur
				stale.loadedAt = k.now()
				k.snap.Store(&stale)
			}
		}
	}
	return k.snap.Load()
}

// lookup finds a published key by kid, reloading once (rate-limited) when the
// kid is unknown: it may come from a rotation on another node.
func (k *keyring) lookup(ctx context.Context, kid string) *signingKey {
	if sk := k.snapshot(ctx).published[kid]; sk != nil {
		return sk
	}
	now := k.now().UnixNano()
	last := k.lastForced.Load()
	if now-last < int64(keyForcedRefreshGap) || !k.lastForced.CompareAndSwap(last, now) {
		return nil
	}
	k.reloading.Lock()
	defer k.reloading.Unlock()
	if err := k.reload(ctx); err != nil {
		k.log.Error("refresh signing keys", "err", err)
		return nil
	}
	return k.snap.Load().published[kid]
}

// generateKey creates a key and seals its PKCS#8 form.
func generateKey(alg string, box *seal.Box, now time.Time) (*store.SigningKey, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case algRS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case algES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return nil, fmt.Errorf("unsupported signing algorithm %q", alg)
	}
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", alg, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	// The kid is the RFC 7638 thumbprint: stable, and unique per key.
	tp, err := (&jose.JSONWebKey{Key: priv.Public()}).Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	return &store.SigningKey{
		KID:       base64.RawURLEncoding.EncodeToString(tp),
		Alg:       alg,
		Private:   box.Seal(der, purposeSigningKey),
		CreatedAt: now.UTC(),
	}, nil
}

// RotateKeys generates a new current key for every configured algorithm and
// retires the previous ones (`lanyard keys rotate`). Retired keys stay in the
// JWKS for keys.retire_after, so tokens signed before the rotation keep
// verifying; running nodes switch to the new keys within 30 seconds.
func RotateKeys(ctx context.Context, st *store.Store, box *seal.Box, cfg *config.Config) (newKIDs []string, err error) {
	if !cfg.Defaulted() {
		return nil, errNoDefaults
	}
	return rotateKeys(ctx, st, box, cfg, time.Now().UTC())
}

func rotateKeys(ctx context.Context, st *store.Store, box *seal.Box, cfg *config.Config, now time.Time) (newKIDs []string, err error) {
	var fresh []*store.SigningKey
	for _, alg := range algorithms(cfg) {
		sk, err := generateKey(alg, box, now)
		if err != nil {
			return nil, err
		}
		fresh = append(fresh, sk)
	}
	retireAfter := cfg.Keys.RetireAfter.D()
	err = st.InTx(ctx, func(ctx context.Context) error {
		if err := st.LockSigningKeys(ctx); err != nil {
			return err
		}
		// RetireSigningKeys keeps one kid current: add the first new key, retire
		// everything else, then add the others.
		if err := st.AddSigningKey(ctx, fresh[0]); err != nil {
			return err
		}
		if err := st.RetireSigningKeys(ctx, fresh[0].KID, now); err != nil {
			return err
		}
		for _, sk := range fresh[1:] {
			if err := st.AddSigningKey(ctx, sk); err != nil {
				return err
			}
		}
		return st.DeleteRetiredSigningKeys(ctx, now.Add(-retireAfter))
	})
	if err != nil {
		return nil, fmt.Errorf("rotate signing keys: %w", err)
	}
	for _, sk := range fresh {
		newKIDs = append(newKIDs, sk.KID)
	}
	return newKIDs, nil
}

// signer is fosite's jwt.Signer over the keyring: it signs ID tokens with the
// newest current RS256 key and verifies tokens (id_token_hint) against every
// published key, selected by kid, with the algorithm that key was made for.
type signer struct {
	keys *keyring
}

var _ jwt.Signer = (*signer)(nil)

var errUnknownKey = errors.New("token is not signed by a key of this issuer")

func (s *signer) Generate(ctx context.Context, claims jwt.MapClaims, header jwt.Mapper) (string, string, error) {
	sk := s.keys.snapshot(ctx).current[algRS256]
	if sk == nil {
		return "", "", errors.New("no current RS256 signing key")
	}
	ds := &jwt.DefaultSigner{GetPrivateKey: func(context.Context) (interface{}, error) {
		return &jose.JSONWebKey{Key: sk.priv, KeyID: sk.kid, Algorithm: sk.alg}, nil
	}}
	return ds.Generate(ctx, claims, header)
}

// Decode verifies a token's signature with the key its kid names. A token
// without a kid, with alg "none", an algorithm other than the key's, or a key
// that is not ours does not verify.
func (s *signer) Decode(ctx context.Context, token string) (*jwt.Token, error) {
	return jwt.ParseWithClaims(token, jwt.MapClaims{}, func(t *jwt.Token) (interface{}, error) {
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, errUnknownKey
		}
		sk := s.keys.lookup(ctx, kid)
		if sk == nil || string(t.Method) != sk.alg {
			return nil, errUnknownKey
		}
		return sk.priv.Public(), nil
	})
}

func (s *signer) Validate(ctx context.Context, token string) (string, error) {
	if _, err := s.Decode(ctx, token); err != nil {
		return "", err
	}
	return s.GetSignature(ctx, token)
}

func (s *signer) Hash(_ context.Context, in []byte) ([]byte, error) {
	h := sha256.Sum256(in)
	return h[:], nil
}

func (s *signer) GetSignature(_ context.Context, token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("header, body and signature must all be set")
	}
	return parts[2], nil
}

func (s *signer) GetSigningMethodLength(context.Context) int { return sha256.Size }
