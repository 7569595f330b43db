package provider

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/provider/store/seal"
	"github.com/lanyard-idp/lanyard/templates"
)

func (e *env) jwksKIDs() []string {
	e.t.Helper()
	resp, err := e.srv.Client().Get(e.issuer + pathJWKS)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct{ Kid string } `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		e.t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	return kids
}

func TestKeyRotation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	r := e.newRP(webappID, webappSecret, webappRedir)
	b := e.newBrowser()
	e.journey.setNext(alice())
	tok1, _ := r.exchange(r.authorize(b))
	raw1 := tok1.Extra("id_token").(string)
	oldKID := hdrKID(t, raw1)

	// The keys have been in use for a while when an admin rotates them.
	e.clock.Advance(10 * time.Minute)
	newKIDs, err := rotateKeys(ctx, e.st, e.box, e.cfg, e.clock.Now())
	if err != nil {
		t.Fatalf("RotateKeys: %v", err)
	}
	if len(newKIDs) != 2 || slices.Contains(newKIDs, oldKID) {
		t.Fatalf("new kids = %v (old %s)", newKIDs, oldKID)
	}
	keys, err := e.st.SigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	current := 0
	for _, k := range keys {
		if k.RetiredAt.IsZero() {
			current++
			if !slices.Contains(newKIDs, k.KID) {
				t.Errorf("old key %s still current", k.KID)
			}
		}
	}
	if current != 2 {
		t.Errorf("%d current keys, want 2 (RS256, ES256)", current)
	}

	// The running provider picks the rotation up within 30 seconds.
	e.clock.Advance(31 * time.Second)
	kids := e.jwksKIDs()
	if !slices.Contains(kids, oldKID) || !slices.Contains(kids, newKIDs[0]) || !slices.Contains(kids, newKIDs[1]) {
		t.Fatalf("JWKS = %v, want the old and the new keys", kids)
	}
	// A token signed before the rotation still verifies.
	if _, err := r.verifier.Verify(r.ctx, raw1); err != nil {
		t.Errorf("pre-rotation token: %v", err)
	}
	// While other nodes may not publish the new key yet, the previous key
	// (still published) goes on signing.
	e.journey.setNext(nil)
	tok2, _ := r.exchange(r.authorize(b))
	if kid := hdrKID(t, tok2.Extra("id_token").(string)); kid != oldKID {
		t.Errorf("token just after the rotation signed by %s, want the previous key %s until every node publishes the new one", kid, oldKID)
	}
	// Once every node has had time to refresh, new tokens use the new RS256 key.
	e.clock.Advance(keyPropagation)
	tok2, _ = r.exchange(r.authorize(b))
	if kid := hdrKID(t, tok2.Extra("id_token").(string)); kid != newKIDs[0] {
		t.Errorf("new token kid = %s, want %s", kid, newKIDs[0])
	}
	// Past retire_after the old key leaves the JWKS.
	e.clock.Advance(24*time.Hour + time.Minute)
	if kids := e.jwksKIDs(); slices.Contains(kids, oldKID) {
		t.Errorf("retired key still published after retire_after: %v", kids)
	}
}

// A key rotated by another node is recognised at once when a token names it,
// without waiting for the periodic refresh.
func TestUnknownKIDReload(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	newKIDs, err := RotateKeys(ctx, e.st, e.box, e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := e.st.SigningKeys(ctx)
	var priv *rsa.PrivateKey
	for _, k := range keys {
		if k.KID == newKIDs[0] {
			der, err := e.box.Open(k.Private, purposeSigningKey)
			if err != nil {
				t.Fatal(err)
			}
			pk, err := x509.ParsePKCS8PrivateKey(der)
			if err != nil {
				t.Fatal(err)
			}
			priv = pk.(*rsa.PrivateKey)
		}
	}
	hint := signWith(t, priv, newKIDs[0], map[string]any{
		"iss": e.issuer, "sub": aliceID, "aud": []string{webappID}, "exp": time.Now().Add(time.Hour).Unix(),
	})
	b := e.signedInBrowser()
	res := b.get(e.issuer + pathEndSession + "?" + url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {webappLogout}}.Encode())
	if res.location == nil || res.location.String() != webappLogout {
		t.Fatalf("hint signed with a freshly rotated key: %d %v %s", res.status, res.location, truncate(res.body))
	}
}

// Two nodes on one database share the token secret and the keys: the second
// creates nothing, and a token minted by one is valid on the other.
func TestSecondNode(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	before, _ := e.st.SigningKeys(ctx)
	pages, _ := templates.Parse()
	p2, err := New(ctx, Options{Config: e.cfg, Store: e.st, Box: e.box, Journey: e.journey, Pages: pages})
	if err != nil {
		t.Fatal(err)
	}
	after, _ := e.st.SigningKeys(ctx)
	if len(after) != len(before) {
		t.Errorf("second node created keys: %d → %d", len(before), len(after))
	}
	tok, err := clientCredentials(e, serviceID, serviceSecret, "docs:read").Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	use, _, err := p2.oauth.IntrospectToken(ctx, tok.AccessToken, "access_token", newSession())
	if err != nil || use != "access_token" {
		t.Errorf("token from node 1 on node 2: %v %v", use, err)
	}

	// A node with another encryption key cannot open the secrets: it refuses to start.
	other, _ := seal.New(seal.NewKey())
	if _, err := New(ctx, Options{Config: e.cfg, Store: e.st, Box: other, Journey: e.journey, Pages: pages}); err == nil {
		t.Error("started with the wrong encryption key")
	}
}

// A Config that config.ApplyDefaults has not seen is refused, by New and by
// RotateKeys, before anything is written: its zero lifespans would be
// taken as settings.
func TestConfigWithoutDefaultsRefused(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	pages, _ := templates.Parse()
	bare := &config.Config{Issuer: e.issuer, Clients: e.cfg.Clients}
	before, _ := e.st.SigningKeys(ctx)
	if _, err := New(ctx, Options{Config: bare, Store: e.st, Box: e.box, Journey: e.journey, Pages: pages}); !errors.Is(err, errNoDefaults) {
		t.Errorf("New with a bare Config: %v", err)
	}
	if _, err := RotateKeys(ctx, e.st, e.box, bare); !errors.Is(err, errNoDefaults) {
		t.Errorf("RotateKeys with a bare Config: %v", err)
	}
	if after, _ := e.st.SigningKeys(ctx); len(after) != len(before) {
		t.Errorf("signing keys %d → %d", len(before), len(after))
	}
}
