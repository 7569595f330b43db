package otp

import (
	"bytes"
	"encoding/base64"
	"image/png"
	"net/url"
	"strings"
	"testing"
	"time"

	potp "github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

var rfcSecret = []byte("12345678901234567890")

// RFC 6238 appendix B, SHA-1, truncated to the last six digits (what a
// 6-digit code is: the 8-digit value mod 10^6).
var rfcVectors = []struct {
	unix int64
	code string
}{
	{59, "287082"},
	{1111111109, "081804"},
	{1111111111, "050471"},
	{1234567890, "005924"},
	{2000000000, "279037"},
	{20000000000, "353130"},
}

func TestRFC6238(t *testing.T) {
	for _, v := range rfcVectors {
		at := time.Unix(v.unix, 0).UTC()
		if got := Code(rfcSecret, at); got != v.code {
			t.Errorf("Code(T=%d) = %q; want %q", v.unix, got, v.code)
		}
		step, ok := Validate(rfcSecret, v.code, at, 0)
		if !ok || step != v.unix/30 {
			t.Errorf("Validate(T=%d) = %d, %v; want %d, true", v.unix, step, ok, v.unix/30)
		}
	}
	// Cross-check with pquerna's own TOTP implementation.
	now := time.Date(2026, 12, 26, 9, 30, 0, 0, time.UTC)
	want, err := totp.GenerateCode(EncodeSecret(rfcSecret), now)
	if err != nil {
		t.Fatal(err)
	}
	if got := Code(rfcSecret, now); got != want {
		t.Fatalf("Code = %q, pquerna says %q", got, want)
	}
}

func TestSkew(t *testing.T) {
	secret := NewSecret()
	now := time.Date(2026, 12, 26, 9, 30, 10, 0, time.UTC)
	cur := Step(now)
	for _, d := range []int64{-1, 0, 1} {
		code := codeAt(secret, cur+d)
		step, ok := Validate(secret, code, now, 0)
		if !ok || step != cur+d {
			t.Errorf("step now%+d: Validate = %d, %v; want %d, true", d, step, ok, cur+d)
		}
	}
	for _, d := range []int64{-3, -2, 2, 3} {
		code := codeAt(secret, cur+d)
		// A code of a far step may coincide with a near one (1 in 10^6): skip
		// that case rather than report a false failure.
		if code == codeAt(secret, cur-1) || code == codeAt(secret, cur) || code == codeAt(secret, cur+1) {
			continue
		}
		if _, ok := Validate(secret, code, now, 0); ok {
			t.Errorf("step now%+d accepted; only ±1 may be", d)
		}
	}
}

func TestReplay(t *testing.T) {
	secret := NewSecret()
	now := time.Date(2026, 12, 26, 9, 30, 10, 0, time.UTC)
	code := Code(secret, now)
	step, ok := Validate(secret, code, now, 0)
	if !ok {
		t.Fatal("fresh code refused")
	}
	if _, ok := Validate(secret, code, now, step); ok {
		t.Fatal("the same code accepted twice (lastStep = matched step)")
	}
	// Ten seconds later the same code is still in the window, but used.
	if _, ok := Validate(secret, code, now.Add(10*time.Second), step); ok {
		t.Fatal("a used code accepted later in its window")
	}
	// A code older than the last accepted one is refused too.
	prev := codeAt(secret, step-1)
	if _, ok := Validate(secret, prev, now, step); ok {
		t.Fatal("the previous step's code accepted after a newer one")
	}
	// The next step's code is still fine.
	next := codeAt(secret, step+1)
	if s, ok := Validate(secret, next, now, step); !ok || s != step+1 {
		t.Fatalf("next step's code: %d, %v", s, ok)
	}
}

func TestMalformed(t *testing.T) {
	secret := rfcSecret
	at := time.Unix(59, 0)
	cases := map[string]string{
		"empty":              "",
		"five digits":        "28708",
		"seven digits":       "2870820",
		"eight digit form":   "94287082",
		"full-width digits":  "２８７０８２",
		"arabic-indic":       "٢٨٧٠٨٢",
		"letters":            "abcdef",
		"inner space":        "287 082",
		"sign":               "+287082",
		"dash":               "287-082",
		"newline inside":     "287\n082",
		"nul":                "287082\x00",
		"one megabyte":       strings.Repeat("2", 1<<20),
		"megabyte of spaces": strings.Repeat(" ", 1<<20) + "287082",
	}
	for name, code := range cases {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			if _, ok := Validate(secret, code, at, 0); ok {
				t.Fatalf("Validate(%.20q) accepted", code)
			}
			if d := time.Since(start); d > 50*time.Millisecond {
				t.Fatalf("Validate took %v on malformed input", d)
			}
		})
	}
	// Surrounding spaces are what copy and paste adds: accepted.
	for _, code := range []string{" 287082", "287082 ", "\t287082\n", "  287082  "} {
		if _, ok := Validate(secret, code, at, 0); !ok {
			t.Errorf("Validate(%q) refused; surrounding spaces are trimmed", code)
		}
	}
	if _, ok := Validate(nil, "287082", at, 0); ok {
		t.Error("an empty secret accepted a code")
	}
}

func TestEncodeSecret(t *testing.T) {
	if got := EncodeSecret(rfcSecret); got != "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ" {
		t.Fatalf("EncodeSecret = %q", got)
	}
	s := NewSecret()
	if len(s) != 20 {
		t.Fatalf("NewSecret is %d bytes; want 20", len(s))
	}
	enc := EncodeSecret(s)
	if strings.ContainsAny(enc, "=abcdefghijklmnopqrstuvwxyz") || len(enc) != 32 {
		t.Fatalf("EncodeSecret = %q; want 32 upper-case base32 characters, no padding", enc)
	}
	if bytes.Equal(s, NewSecret()) {
		t.Fatal("two secrets are equal")
	}
}

func TestURI(t *testing.T) {
	secret := NewSecret()
	cases := []struct{ issuer, account string }{
		{"Lanyard", "alice@agency.example"},
		{"Lanyard Staging", "alice@agency.example"},
		{"R&D: Tools?=#/", "o'brien+x@agency.example"}, // a colon is not allowed in the label
		{"Identité", "zoë@agency.example"},
	}
	for _, c := range cases {
		uri := URI(c.issuer, c.account, secret)
		if !strings.HasPrefix(uri, "otpauth://totp/") {
			t.Fatalf("URI = %q", uri)
		}
		if strings.Contains(uri, "+") || strings.Contains(uri, " ") {
			t.Errorf("URI %q: spaces must be %%20, never '+'", uri)
		}
		key, err := potp.NewKeyFromURL(uri)
		if err != nil {
			t.Fatalf("NewKeyFromURL(%q): %v", uri, err)
		}
		if key.Type() != "totp" || key.Issuer() != c.issuer || key.AccountName() != c.account {
			t.Errorf("URI %q parses as type %q issuer %q account %q", uri, key.Type(), key.Issuer(), key.AccountName())
		}
		if key.Secret() != EncodeSecret(secret) || key.Period() != 30 || key.Digits() != potp.DigitsSix || key.Algorithm() != potp.AlgorithmSHA1 {
			t.Errorf("URI %q: secret/period/digits/algorithm wrong", uri)
		}
		u, _ := url.Parse(uri)
		wantLabel := strings.ReplaceAll(c.issuer, ":", " ") + ":" + c.account
		if label := strings.TrimPrefix(u.Path, "/"); label != wantLabel {
			t.Errorf("label %q; want %q", label, wantLabel)
		}
		// The code an app computes from the URI is the one Validate accepts.
		now := time.Now()
		code, err := totp.GenerateCode(key.Secret(), now)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := Validate(secret, code, now, 0); !ok {
			t.Errorf("a code from the URI's secret is refused")
		}
	}
}

func TestQRDataURL(t *testing.T) {
	uri := URI("Lanyard", "alice@agency.example", NewSecret())
	d, err := QRDataURL(uri)
	if err != nil {
		t.Fatal(err)
	}
	b64, ok := strings.CutPrefix(d, "data:image/png;base64,")
	if !ok {
		t.Fatalf("QRDataURL = %.40q…", d)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 200 || b.Dy() < 200 {
		t.Fatalf("QR code is %dx%d; want at least 200x200", b.Dx(), b.Dy())
	}
	if _, err := QRDataURL("%%not a url"); err == nil {
		t.Fatal("QRDataURL of a malformed URI succeeded")
	}
}
