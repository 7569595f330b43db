package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad feeds the strict loader arbitrary files: it never panics, never
// hangs on an alias bomb, answers every mistake as an error, and whatever
// loads also defaults and validates without panicking. The seeds (run by
// the normal test command) are the shipped files and the shapes of mistakes
// the loader must name.
//
//	go test -fuzz=FuzzLoad -fuzztime=30s ./config
func FuzzLoad(f *testing.F) {
	for _, name := range []string{"dev.yaml", "lanyard.example.yaml"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"",
		"issuer: https://id.agency.example/\n",
		"clients:\n  - id: a\n    redirect_uri: [x]\n",
		"clients: {id: a}\n",
		"invitations:\n  valid_for: 30x\n",
		"keys:\n  encryption_key: ${NOT_SET}\n",
		"keys:\n  encryption_key_file: does-not-exist\n",
		"keys:\n  encryption_key: x\n  encryption_key_file: y\n",
		"journey:\n  steps: [terms, terms, nope]\n",
		"a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
		"listen: !!binary AAAA\n",
		"listen:\t:8080\n",
		"? [a]\n: b\n",
		"issuer: \"\\u0000\"\n",
		"throttle:\n  max_account_failures: 99999999999999999999999\n",
		"documents:\n  - {id: privacy, title: P, version: \"1\", file: ../../../../etc/passwd}\n",
		strings.Repeat("- ", 1000) + "x\n",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	name := filepath.Join(dir, "lanyard.yaml")
	env := func(k string) (string, bool) {
		if k == "LANYARD_FUZZ_SET" {
			return "value-from-the-environment", true
		}
		return "", false
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parse(name, data, env)
		var ps Problems
		if err != nil && errors.As(err, &ps) {
			for _, p := range ps {
				if p.Msg == "" || p.Line < 0 {
					t.Fatalf("a problem that says nothing: %+v", p)
				}
			}
		}
		if err != nil && c == nil {
			return
		}
		c.ApplyDefaults()
		if verr := c.Validate(); verr != nil && verr.Error() == "" {
			t.Fatal("Validate failed without saying why")
		}
	})
}
