package config

import (
	"strings"
	"testing"
)

func TestHashSecretRoundTrip(t *testing.T) {
	secret := "a-long-client-secret-0123456789"
	h, err := HashSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$lanyard-hmac-sha256$") || strings.Count(h, "$") != 3 {
		t.Fatalf("hash %q is not in the documented form", h)
	}
	if !VerifySecret(h, secret) {
		t.Fatal("the secret does not verify against its own hash")
	}
	for _, wrong := range []string{"", "a-long-client-secret-012345678", "a-long-client-secret-0123456789 ", "A-long-client-secret-0123456789"} {
		if VerifySecret(h, wrong) {
			t.Errorf("wrong secret %q verified", wrong)
		}
	}
	// A fresh salt each time: equal secrets do not have equal hashes.
	h2, _ := HashSecret(secret)
	if h2 == h || !VerifySecret(h2, secret) {
		t.Errorf("second hash %q vs %q", h2, h)
	}
}

func TestVerifySecretMalformed(t *testing.T) {
	secret := "a-long-client-secret-0123456789"
	h, _ := HashSecret(secret)
	parts := strings.Split(h, "$")
	cases := map[string]string{
		"empty":           "",
		"plain secret":    secret,
		"other scheme":    "$2a$10$abcdefghijklmnopqrstuv",
		"wrong scheme":    "$lanyard-hmac-sha1$" + parts[2] + "$" + parts[3],
		"no leading $":    "lanyard-hmac-sha256$" + parts[2] + "$" + parts[3],
		"missing mac":     "$lanyard-hmac-sha256$" + parts[2],
		"extra part":      h + "$x",
		"short salt":      "$lanyard-hmac-sha256$" + parts[2][:10] + "$" + parts[3],
		"short mac":       "$lanyard-hmac-sha256$" + parts[2] + "$" + parts[3][:20],
		"padded base64":   "$lanyard-hmac-sha256$" + parts[2] + "==$" + parts[3],
		"std base64 salt": "$lanyard-hmac-sha256$" + strings.Repeat("+", 22) + "$" + parts[3],
	}
	for name, hash := range cases {
		t.Run(name, func(t *testing.T) {
			if VerifySecret(hash, secret) {
				t.Errorf("malformed hash %q verified", hash)
			}
			if _, _, err := parseSecretHash(hash); err == nil {
				t.Errorf("parseSecretHash(%q) accepted it", hash)
			}
		})
	}
}

func TestCheckSecretStrength(t *testing.T) {
	cases := []struct {
		secret string
		err    string
	}{
		{"", "empty"},
		{"short", "has 5 characters; use at least 12"},
		{"elevenchars", "has 11 characters"},
		{"twelve-chars", ""},
		{"ünïcödé-chär", ""}, // counted in characters, not bytes
		{" leading-space-secret", "white space"},
		{strings.Repeat("x", 5000), "longer than"},
	}
	for _, tc := range cases {
		err := CheckSecretStrength(tc.secret)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("CheckSecretStrength(%.20q) = %v, want %q", tc.secret, err, tc.err)
		}
		// HashSecret applies the same check.
		if _, herr := HashSecret(tc.secret); (herr == nil) != (err == nil) {
			t.Errorf("HashSecret(%.20q) error %v disagrees with CheckSecretStrength %v", tc.secret, herr, err)
		}
	}
	// VerifySecret accepts any secret, however short: the dev clients rely on it.
	h, err := hashSecret("short")
	if err != nil || !VerifySecret(h, "short") {
		t.Fatalf("short secret does not verify: %v", err)
	}
}

// BenchmarkVerifySecret: client authentication must stay cheap (about a
// microsecond), unlike a password hash.
func BenchmarkVerifySecret(b *testing.B) {
	secret := "a-long-client-secret-0123456789"
	h, err := HashSecret(secret)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if !VerifySecret(h, secret) {
			b.Fatal("no match")
		}
	}
}
