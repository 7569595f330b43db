package provider

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestOpenIDClient drives Lanyard with openid-client v6 (npm), a certified
// third-party relying party library: discovery, the code flow with PKCE,
// userinfo, refresh, introspection, revocation and RP-initiated logout
// (testdata/openid-client/rp.mjs). It needs node and `npm ci --prefix
// provider/testdata/openid-client` (.ci/run does both); without them it
// skips, and under CI=true it fails.
func TestOpenIDClient(t *testing.T) {
	dir := filepath.Join("testdata", "openid-client")
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, "node_modules", "openid-client", "package.json"))
	}
	if err != nil {
		msg := "needs node and openid-client: npm ci --prefix provider/testdata/openid-client (" + err.Error() + ")"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	e := newEnv(t)
	e.journey.setNext(alice())
	cmd := exec.CommandContext(t.Context(), node, "rp.mjs", e.issuer, webappID, webappSecret, webappRedir, webappLogout)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NODE_NO_WARNINGS=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var got struct {
		Error                 string   `json:"error"`
		Issuer                string   `json:"issuer"`
		Sub                   string   `json:"sub"`
		IDTokenClaims         []string `json:"id_token_claims"`
		HasRefreshToken       bool     `json:"has_refresh_token"`
		UserinfoEmail         string   `json:"userinfo_email"`
		UserinfoName          string   `json:"userinfo_name"`
		Rotated               bool     `json:"rotated"`
		RefreshedSub          string   `json:"refreshed_sub"`
		IntrospectionActive   bool     `json:"introspection_active"`
		IntrospectionClientID string   `json:"introspection_client_id"`
		RevokedRefreshActive  bool     `json:"revoked_refresh_active"`
		RefreshAfterRevoke    string   `json:"refresh_after_revoke"`
		LogoutReturnedTo      string   `json:"logout_returned_to"`
		LogoutStateEchoed     bool     `json:"logout_state_echoed"`
	}
	if jerr := json.Unmarshal(out, &got); jerr != nil || err != nil || got.Error != "" {
		t.Fatalf("openid-client: %v %v %s\nstdout: %s\nstderr: %s", err, jerr, got.Error, out, stderr.String())
	}
	checks := []struct {
		what string
		ok   bool
	}{
		{"issuer from discovery", got.Issuer == e.issuer},
		{"ID token for alice", got.Sub == aliceID},
		{"ID token has sid, auth_time, acr, amr and no email", slices.Contains(got.IDTokenClaims, "sid") &&
			slices.Contains(got.IDTokenClaims, "auth_time") && slices.Contains(got.IDTokenClaims, "acr") &&
			!slices.Contains(got.IDTokenClaims, "email")},
		{"a refresh token with offline_access", got.HasRefreshToken},
		{"userinfo", got.UserinfoEmail == aliceEmail && got.UserinfoName == "Alice Example"},
		{"refresh rotates, same sub", got.Rotated && got.RefreshedSub == aliceID},
		{"introspection", got.IntrospectionActive && got.IntrospectionClientID == webappID},
		{"revoked refresh token inactive and refused", !got.RevokedRefreshActive && got.RefreshAfterRevoke == "invalid_grant"},
		{"RP-initiated logout returns with state", got.LogoutReturnedTo == webappLogout && got.LogoutStateEchoed},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: %+v", c.what, got)
		}
	}
	if e.journey.signOutCount() != 1 {
		t.Errorf("the browser was signed out %d times, want 1", e.journey.signOutCount())
	}
}
