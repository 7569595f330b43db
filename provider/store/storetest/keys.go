package storetest

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/lanyard-idp/lanyard/provider/store"
)

func testKeys(t *testing.T, open func(t *testing.T) *store.Store) {
	s := open(t)
	ctx := t.Context()
	none, err := s.SigningKeys(ctx)
	must(t, err)
	if len(none) != 0 {
		t.Fatalf("keys in a new store: %v", none)
	}
	// A rotation history: k1 current; k2 added and made current at 10h; k3
	// added and made current at 20h (k1 keeps its earlier retirement).
	add := func(kid string, created time.Duration) {
		t.Helper()
		must(t, s.AddSigningKey(ctx, &store.SigningKey{KID: kid, Alg: "RS256", Private: []byte("sealed-" + kid), CreatedAt: at(created)}))
	}
	add("k1", 0)
	add("k2", time.Hour)
	must(t, s.RetireSigningKeys(ctx, "k2", at(10*time.Hour)))
	add("k3", 2*time.Hour)
	must(t, s.RetireSigningKeys(ctx, "k3", at(20*time.Hour)))

	wantErr(t, "duplicate kid", s.AddSigningKey(ctx, &store.SigningKey{KID: "k1", Alg: "ES256", Private: []byte("x")}), store.ErrConflict)
	wantErr(t, "no kid", s.AddSigningKey(ctx, &store.SigningKey{Alg: "RS256", Private: []byte("x")}), store.ErrInvalid)
	wantErr(t, "no private", s.AddSigningKey(ctx, &store.SigningKey{KID: "k9", Alg: "RS256"}), store.ErrInvalid)
	wantErr(t, "zero retirement time", s.RetireSigningKeys(ctx, "k3", time.Time{}), store.ErrInvalid)

	keys, err := s.SigningKeys(ctx)
	must(t, err)
	if got := kids(keys); got != "[k3 k2 k1]" {
		t.Fatalf("SigningKeys = %s, want newest first", got)
	}
	if !bytes.Equal(keys[2].Private, []byte("sealed-k1")) || keys[2].Alg != "RS256" {
		t.Fatalf("k1 = %+v", keys[2])
	}
	sameTime(t, "CreatedAt", keys[0].CreatedAt, at(2*time.Hour))
	sameTime(t, "k3 retired", keys[0].RetiredAt, time.Time{})
	sameTime(t, "k2 retired", keys[1].RetiredAt, at(20*time.Hour))
	sameTime(t, "k1 retired", keys[2].RetiredAt, at(10*time.Hour))

	must(t, s.DeleteRetiredSigningKeys(ctx, at(15*time.Hour)))
	keys, err = s.SigningKeys(ctx)
	must(t, err)
	if got := kids(keys); got != "[k3 k2]" {
		t.Fatalf("after deleting keys retired before 15h: %s", got)
	}
}

func kids(keys []store.SigningKey) string {
	var k []string
	for _, x := range keys {
		k = append(k, x.KID)
	}
	return fmt.Sprint(k)
}

func testSecrets(t *testing.T, open func(t *testing.T) *store.Store) {
	s := open(t)
	ctx := t.Context()
	_, err := s.GetSecret(ctx, "cookie-keys")
	wantErr(t, "unknown secret", err, store.ErrNotFound)
	v, err := s.PutSecretIfAbsent(ctx, "cookie-keys", []byte("first"))
	must(t, err)
	if string(v) != "first" {
		t.Fatalf("first put returned %q", v)
	}
	v, err = s.PutSecretIfAbsent(ctx, "cookie-keys", []byte("second"))
	must(t, err)
	if string(v) != "first" {
		t.Fatalf("second put returned %q, want the first value", v)
	}
	v, err = s.GetSecret(ctx, "cookie-keys")
	must(t, err)
	if string(v) != "first" {
		t.Fatalf("GetSecret = %q", v)
	}
	_, err = s.PutSecretIfAbsent(ctx, "", []byte("x"))
	wantErr(t, "empty name", err, store.ErrInvalid)
	_, err = s.PutSecretIfAbsent(ctx, "other", nil)
	wantErr(t, "empty value", err, store.ErrInvalid)
	_, err = s.GetSecret(ctx, "other")
	wantErr(t, "refused secret stored", err, store.ErrNotFound)
}
