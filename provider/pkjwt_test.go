package provider

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"github.com/lanyard-idp/lanyard/provider/store"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v3"

	"github.com/lanyard-idp/lanyard/config"
)

func TestPrivateKeyJWT(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	e := newEnv(t, func(cfg *config.Config) {
		cfg.Clients = append(cfg.Clients, config.Client{
			ID: "keyed", TokenEndpointAuthMethod: "private_key_jwt", JWKS: string(set),
			GrantTypes: []string{"client_credentials"}, Scopes: []string{"docs:read"},
		})
	})
	assertion := func(aud string) string {
		return signWith(t, key, "k1", map[string]any{
			"iss": "keyed", "sub": "keyed", "aud": aud, "jti": randomHex(),
			"exp": time.Now().Add(5 * time.Minute).Unix(), "iat": time.Now().Unix(),
		})
	}
	grant := func(a string) (*http.Response, map[string]any) {
		return e.postForm(pathToken, url.Values{
			"grant_type":            {"client_credentials"},
			"scope":                 {"docs:read"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion":      {a},
		}, "", "")
	}

	a := assertion(e.issuer + pathToken)
	if resp, body := grant(a); resp.StatusCode != http.StatusOK {
		t.Fatalf("private_key_jwt: %d %v", resp.StatusCode, body)
	}
	if resp, body := grant(a); resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("replayed assertion: %d %v", resp.StatusCode, body)
	}

	// The same fresh assertion raced 20 times: one grant.
	a = assertion(e.issuer + pathToken)
	ok := 0
	for _, s := range race(func() int { resp, _ := grant(a); return resp.StatusCode }) {
		if s == http.StatusOK {
			ok++
		} else if s >= 500 {
			t.Errorf("status %d", s)
		}
	}
	if ok != 1 {
		t.Errorf("%d grants from one assertion, want 1", ok)
	}

	// Used assertion ids are kept only until they expire.
	if n := e.countRows(store.KindJTI, false); n != 2 {
		t.Errorf("%d assertion ids recorded, want 2", n)
	}
	if _, err := e.st.DeleteExpired(context.Background(), time.Now().Add(6*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if n := e.countRows(store.KindJTI, false); n != 0 {
		t.Errorf("%d expired assertion ids left after garbage collection", n)
	}

	// Wrong audience, foreign key.
	if resp, _ := grant(assertion("https://elsewhere.example/token")); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong audience: %d", resp.StatusCode)
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	forged := signWith(t, other, "k1", map[string]any{
		"iss": "keyed", "sub": "keyed", "aud": e.issuer + pathToken, "jti": randomHex(),
		"exp": time.Now().Add(5 * time.Minute).Unix(),
	})
	if resp, _ := grant(forged); resp.StatusCode < 400 || resp.StatusCode >= 500 {
		t.Errorf("forged assertion: %d", resp.StatusCode)
	}
}
