package passkey

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/go-webauthn/webauthn/protocol"

	"github.com/lanyard-idp/lanyard/provider/store"
)

func TestNewRefusesAnIPHost(t *testing.T) {
	t.Parallel()
	for _, iss := range []string{"http://127.0.0.1:8080", "https://[::1]"} {
		u, _ := url.Parse(iss)
		if _, err := New(u, "Lanyard", nil); err == nil || !strings.Contains(err.Error(), "IP address") {
			t.Errorf("%s: %v, want a refusal naming the IP address", iss, err)
		}
	}
	u, _ := url.Parse("https://id.agency.example")
	if _, err := New(u, "Lanyard", []string{"https://other.agency.example"}); err != nil {
		t.Fatalf("a domain issuer: %v", err)
	}
}

func TestCleanName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"  Work laptop ", "Work laptop", true},
		{"", "", true},
		{strings.Repeat("é", MaxName), strings.Repeat("é", MaxName), true},
		{strings.Repeat("a", MaxName+1), "", false},
		{"tab\there", "", false},
		{"bad\xffutf8", "", false},
	} {
		got, ok := CleanName(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("CleanName(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestDefaultNameCountsTheKind(t *testing.T) {
	t.Parallel()
	synced := protocol.FlagBackupEligible | protocol.FlagUserPresent
	have := []store.WebAuthnCredential{{Name: "Passkey"}, {Name: "Passkey 2"}, {Name: "Security key 3"}}
	if got := defaultName(synced, have); got != "Passkey 3" {
		t.Errorf("synced: %q", got)
	}
	if got := defaultName(protocol.FlagUserPresent, have); got != "Security key" {
		t.Errorf("device-bound: %q", got)
	}
}

func TestReadAnswer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body string
		limit      int64
		why        Why
		reason     store.Reason
	}{
		{"oversized", `{"credential":{"id":"` + strings.Repeat("a", 200) + `"}}`, 64, Oversized, "oversized request"},
		{"not JSON", `{"credential":`, 1 << 10, Malformed, "malformed request"},
		{"no credential", `{"name":"x"}`, 1 << 10, Malformed, "malformed request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			b := http.MaxBytesReader(rec, body(tc.body), tc.limit)
			_, rf := ReadAnswer(b)
			if rf == nil || rf.Why != tc.why || rf.Reason != tc.reason {
				t.Errorf("refusal %+v, want %v %q", rf, tc.why, tc.reason)
			}
		})
	}
	a, rf := ReadAnswer(body(`{"credential":{"id":"x"},"name":"Blue key"}`))
	if rf != nil || a.Name != "Blue key" || string(a.Credential) != `{"id":"x"}` {
		t.Errorf("a good answer: %+v %v", a, rf)
	}
}

func body(s string) *readCloser { return &readCloser{strings.NewReader(s)} }

type readCloser struct{ *strings.Reader }

func (readCloser) Close() error { return nil }

func TestAMRAndKind(t *testing.T) {
	t.Parallel()
	uv := protocol.FlagUserPresent | protocol.FlagUserVerified
	if got := strings.Join(amr(uv|protocol.FlagBackupEligible), " "); got != "swk user" {
		t.Errorf("synced with UV: %s", got)
	}
	if got := strings.Join(amr(protocol.FlagUserPresent), " "); got != "hwk" {
		t.Errorf("device-bound without UV: %s", got)
	}
	if kind(protocol.FlagBackupEligible) != "synced passkey" || kind(0) != "device-bound key" {
		t.Error("kinds")
	}
}

func TestSyncedReadsTheStoredFlags(t *testing.T) {
	t.Parallel()
	if !Synced(store.WebAuthnCredential{Data: []byte(`{"flags":{"backupEligible":true}}`)}) {
		t.Error("a backup-eligible credential is not synced")
	}
	if Synced(store.WebAuthnCredential{}) {
		t.Error("a credential without data is synced")
	}
}

func TestChallengeRoundTrip(t *testing.T) {
	t.Parallel()
	u, _ := url.Parse("https://id.agency.example")
	rp, err := New(u, "Lanyard", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, c, err := rp.BeginDiscoverable(false)
	if err != nil || !ValidChallenge(c) {
		t.Fatalf("challenge %s, %v", c, err)
	}
	if ValidChallenge(Challenge(`{"challenge":`)) {
		t.Error("a truncated challenge is valid")
	}
	if _, _, err := rp.BeginLogin(&User{Handle: []byte("h")}); err != ErrNoCredentials {
		t.Errorf("BeginLogin without credentials: %v", err)
	}
}
