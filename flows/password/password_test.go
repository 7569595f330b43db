package password

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

func mustHash(t *testing.T, pw string) string {
	t.Helper()
	h, err := Hash(pw)
	if err != nil {
		t.Fatalf("Hash: %v", err)
	}
	return h
}

func mustVerify(t *testing.T, encoded, pw string) bool {
	t.Helper()
	ok, err := Verify(encoded, pw)
	if err != nil {
		t.Fatalf("Verify(%q): %v", encoded, err)
	}
	return ok
}

func TestHashRoundTrip(t *testing.T) {
	const pw = "correct horse battery staple"
	h := mustHash(t, pw)
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("encoding %q does not carry the OWASP parameters", h)
	}
	if !mustVerify(t, h, pw) {
		t.Fatal("the right password does not verify")
	}
	for _, wrong := range []string{"", "correct horse battery stapl", "Correct horse battery staple", pw + " ", pw + "\x00"} {
		if mustVerify(t, h, wrong) {
			t.Errorf("wrong password %q verifies", wrong)
		}
	}
	if h2 := mustHash(t, pw); h2 == h {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
}

func TestHashParams(t *testing.T) {
	h := mustHash(t, "some long passphrase here")
	p, salt, key, err := decode(h)
	if err != nil {
		t.Fatal(err)
	}
	if p.memory != 19456 || p.passes != 2 || p.lanes != 1 || len(salt) != 16 || len(key) != 32 {
		t.Fatalf("params %+v, salt %d bytes, key %d bytes", p, len(salt), len(key))
	}
	// Parameters are read from the encoding, not assumed: a hash made with
	// other (cheaper) parameters still verifies.
	other := encode(params{memory: 64, passes: 1, lanes: 2}, salt, nil)
	other = other[:strings.LastIndex(other, "$")+1]
	key2 := argon2.IDKey([]byte("pw"), salt, 1, 64, 2, 24)
	other += b64.EncodeToString(key2)
	if !mustVerify(t, other, "pw") {
		t.Fatalf("hash with m=64,t=1,p=2 and a 24-byte key does not verify: %s", other)
	}
	if mustVerify(t, other, "pw2") {
		t.Fatal("wrong password verifies against the m=64 hash")
	}
}

func TestNFKC(t *testing.T) {
	// Full-width letters and digits, a ligature and a composed accent: NFKC
	// makes each the same password as its plain form.
	cases := []struct{ stored, typed string }{
		{"Password-Horse-42", "Ｐａｓｓｗｏｒｄ－Ｈｏｒｓｅ－４２"},
		{"office waffles", "o\ufb03ce waﬄes"},
		{"café au lait crème", "cafe\u0301 au lait cre\u0300me"},
	}
	for _, c := range cases {
		h := mustHash(t, c.stored)
		if !mustVerify(t, h, c.typed) {
			t.Errorf("%q does not verify against the hash of %q", c.typed, c.stored)
		}
		h = mustHash(t, c.typed)
		if !mustVerify(t, h, c.stored) {
			t.Errorf("%q does not verify against the hash of %q", c.stored, c.typed)
		}
	}
}

func TestNoTruncation(t *testing.T) {
	a := strings.Repeat("x", 99) + "a"
	b := strings.Repeat("x", 99) + "b"
	h := mustHash(t, a)
	if mustVerify(t, h, b) {
		t.Fatal("two 100-character passwords differing only at the end verify alike")
	}
	long := strings.Repeat("long enough ", 20)
	if mustVerify(t, mustHash(t, long), long[:72]) {
		t.Fatal("a 72-byte prefix verifies: the password is truncated")
	}
}

func TestMalformed(t *testing.T) {
	good := mustHash(t, "whatever it is")
	parts := strings.Split(good, "$")
	with := func(i int, v string) string {
		p := append([]string(nil), parts...)
		p[i] = v
		return strings.Join(p, "$")
	}
	cases := map[string]string{
		"empty":            "",
		"bcrypt":           "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		"plain text":       "hunter2",
		"argon2i":          with(1, "argon2i"),
		"version 16":       with(2, "v=16"),
		"missing t":        with(3, "m=19456,p=1"),
		"swapped params":   with(3, "t=2,m=19456,p=1"),
		"non-numeric m":    with(3, "m=lots,t=2,p=1"),
		"huge m":           with(3, "m=4294967295,t=2,p=1"),
		"zero t":           with(3, "m=19456,t=0,p=1"),
		"huge t":           with(3, "m=19456,t=100000,p=1"),
		"zero p":           with(3, "m=19456,t=2,p=0"),
		"tiny m":           with(3, "m=4,t=2,p=1"),
		"salt not base64":  with(4, "!!!!"),
		"short salt":       with(4, "AAAA"),
		"key not base64":   with(5, "***"),
		"short key":        with(5, "AAAA"),
		"extra field":      good + "$x",
		"missing key":      strings.Join(parts[:5], "$"),
		"no leading $":     strings.TrimPrefix(good, "$"),
		"padded base64":    with(5, parts[5]+"="),
		"whitespace":       good + " ",
		"negative version": with(2, "v=-19"),
	}
	for name, enc := range cases {
		t.Run(name, func(t *testing.T) {
			ok, err := Verify(enc, "whatever it is")
			if ok || !errors.Is(err, ErrMalformedHash) {
				t.Fatalf("Verify(%q) = %v, %v; want false, ErrMalformedHash", enc, ok, err)
			}
		})
	}
}

func TestVerifyDummy(t *testing.T) {
	// It must not panic on any input and must do real work (timing is
	// compared in the benchmark, not asserted here: CI machines are noisy).
	VerifyDummy("")
	VerifyDummy(strings.Repeat("é", 1000))
}

func TestPolicy(t *testing.T) {
	p := Policy{MinLength: 12, MaxLength: 128}
	const user = "alice.martin@agency.example"
	const initial = "k7q2m-x9d4r-p3w8z-h6n5c"
	strong := "plum tractor velvet harbour"
	cases := []struct {
		name, pw, initial string
		want              string // "" = accepted
	}{
		{"strong passphrase", strong, initial, ""},
		{"too short", "Tz9#qv!Lm2", initial, "Use at least 12 characters."},
		{"11 runes", "ümläut-ẞtrx", initial, "Use at least 12 characters."},
		{"full-width counts after NFKC", "ｐｌｕｍ ｔｒａｃｔｏｒ ｖｅｌｖｅｔ", initial, ""},
		{"128 accepted", strings.Repeat("q7#Lm", 25) + "zx!", initial, ""},
		{"129 refused", strings.Repeat("q7#Lm", 25) + "zx!k", initial, "Use at most 128 characters."},
		{"initial password", initial, initial, ReasonInitial},
		{"initial password full-width", "ｋ７ｑ２ｍ－ｘ９ｄ４ｒ－ｐ３ｗ８ｚ－ｈ６ｎ５ｃ", initial, ReasonInitial},
		{"contains username", "x" + user + "!", initial, ReasonUsername},
		{"contains local part", "Alice.Martin rules 2024", initial, ReasonUsername},
		{"common: password list", "password1234", initial, ReasonCommon},
		{"common: case and suffix", "Password1234!", initial, ReasonCommon},
		{"common: prefix digits", "2024!!baseball", initial, ReasonCommon},
		{"common: list entry", "iloveyou1234", initial, ReasonCommon},
		{"common: qwerty walk", "qwertyuiopasdfgh", initial, ReasonCommon},
		{"common: repeats", strings.Repeat("ab", 10), initial, ReasonCommon},
		{"common: sequence", "abcdefghijklmnop", initial, ReasonCommon},
		{"common: english word", "international", initial, ReasonCommon},
		{"control character", "plum tractor\x00velvet", initial, ReasonInvalid},
		{"invalid utf-8", "plum tractor \xff velvet", initial, ReasonInvalid},
		{"no composition rules", "lowercase only letters tucked", initial, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := p.Check(c.pw, user, c.initial)
			if c.want == "" {
				if err != nil {
					t.Fatalf("Check(%q) = %v; want accepted", c.pw, err)
				}
				return
			}
			var pe *PolicyError
			if !errors.As(err, &pe) {
				t.Fatalf("Check(%q) = %v; want *PolicyError %q", c.pw, err, c.want)
			}
			if pe.Reason != c.want {
				t.Fatalf("Check(%q) reason %q; want %q", c.pw, pe.Reason, c.want)
			}
		})
	}
}

func TestPolicyShortLocalPartIgnored(t *testing.T) {
	// "al" is too short to look for: it would refuse half the dictionary.
	if err := (Policy{12, 128}).Check("plum tractor velvet always", "al@agency.example", ""); err != nil {
		t.Fatalf("a 2-letter mailbox name refused a password: %v", err)
	}
}

func TestPolicyMinLengthConfigured(t *testing.T) {
	err := (Policy{MinLength: 16, MaxLength: 64}).Check("plum tractor v", "", "")
	var pe *PolicyError
	if !errors.As(err, &pe) || pe.Reason != "Use at least 16 characters." {
		t.Fatalf("got %v", err)
	}
	err = (Policy{MinLength: 16, MaxLength: 20}).Check("plum tractor velvet harbour", "", "")
	if !errors.As(err, &pe) || pe.Reason != "Use at most 20 characters." {
		t.Fatalf("got %v", err)
	}
}

func TestGenerate(t *testing.T) {
	p := Policy{MinLength: 12, MaxLength: 128}
	seen := map[string]bool{}
	for range 200 {
		g := Generate()
		if len(g) != 23 || utf8.RuneCountInString(g) != 23 || strings.Count(g, "-") != 3 {
			t.Fatalf("Generate() = %q; want 4 groups of 5 joined by '-'", g)
		}
		for i, r := range g {
			if i%6 == 5 {
				continue
			}
			if !strings.ContainsRune(alphabet, r) {
				t.Fatalf("Generate() = %q has %q outside the alphabet", g, r)
			}
		}
		if err := p.Check(g, "alice@agency.example", ""); err != nil {
			t.Fatalf("Generate() = %q fails the policy: %v", g, err)
		}
		if seen[g] {
			t.Fatalf("Generate() repeated %q", g)
		}
		seen[g] = true
	}
	if len(alphabet) != 32 || strings.ContainsAny(alphabet, "ilou") {
		t.Fatalf("alphabet %q must be 32 unambiguous symbols", alphabet)
	}
}

func BenchmarkHash(b *testing.B) {
	for b.Loop() {
		if _, err := Hash("correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	h, _ := Hash("correct horse battery staple")
	for b.Loop() {
		_, _ = Verify(h, "correct horse battery staple")
	}
}

func BenchmarkVerifyDummy(b *testing.B) {
	for b.Loop() {
		VerifyDummy("correct horse battery staple")
	}
}
