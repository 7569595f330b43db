package config

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
		err  string
	}{
		{in: "90s", want: 90 * time.Second},
		{in: "30m", want: 30 * time.Minute},
		{in: "12h", want: 12 * time.Hour},
		{in: "1h30m", want: 90 * time.Minute},
		{in: "30d", want: 30 * 24 * time.Hour},
		{in: "1d12h", want: 36 * time.Hour},
		{in: "0s", want: 0},
		{in: " 5m ", want: 5 * time.Minute},
		{in: "", err: "empty duration"},
		{in: "3600", err: "has no unit"},
		{in: "1 hour", err: "invalid duration"},
		{in: "1.5d", err: "invalid duration"},
		{in: "d", err: "invalid duration"},
		{in: "30days", err: "invalid duration"},
		{in: "1h30d", err: "invalid duration"},
		{in: "-5m", err: "must not be negative"},
		{in: "1d-1h", err: "must not be negative"},
		{in: "65535d2000000h", err: "too large"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseDuration(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseDuration(%q) = %v, %v; want error …%s…", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || got.D() != tc.want {
				t.Fatalf("ParseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestDurationInYAMLWithLine(t *testing.T) {
	clearOverrides(t)
	c, err := LoadBytes("", []byte("invitations:\n  valid_for: 14d\njourney:\n  timeout: 1h30m\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Invitations.ValidFor.D() != 14*24*time.Hour || c.Journey.Timeout.D() != 90*time.Minute {
		t.Errorf("got %v and %v", c.Invitations.ValidFor, c.Journey.Timeout)
	}
	_, err = LoadBytes("f.yaml", []byte("invitations:\n  allowed_domains: [a.example]\n  valid_for: 2 weeks\n"))
	if err == nil || !strings.HasPrefix(err.Error(), `f.yaml:3: invitations.valid_for: invalid duration "2 weeks"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestDurationText(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("2d")); err != nil || d.D() != 48*time.Hour {
		t.Fatalf("UnmarshalText: %v %v", d, err)
	}
	b, _ := d.MarshalText()
	var back Duration
	if err := back.UnmarshalText(b); err != nil || back != d {
		t.Fatalf("round trip via %q: %v %v", b, back, err)
	}
}

// A Secret must not leak through any of the ways a value reaches a log.
func TestSecretRedacted(t *testing.T) {
	s := Secret("hunter2-very-secret")
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "s", s)
	j, _ := json.Marshal(struct{ S Secret }{s})
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s", s, s, s, s), string(j), logged.String(),
		fmt.Sprintf("%+v", SMTP{Password: s})} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("secret leaked: %s", out)
		}
	}
	if s.Value() != "hunter2-very-secret" {
		t.Error("Value() must return the secret")
	}
	if Secret("").String() != "" {
		t.Error("an empty secret should print empty")
	}
}
