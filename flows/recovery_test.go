package flows

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lanyard-idp/lanyard/provider/store/seal"
	"github.com/lanyard-idp/lanyard/templates"
)

// storedRecoveryHashes reads the user's recovery_codes rows as a copy of
// the database would show them, used ones included.
func (e *env) storedRecoveryHashes(userID string) []string {
	e.t.Helper()
	rows, err := e.st.DB().QueryContext(e.t.Context(), `SELECT hash FROM recovery_codes WHERE user_id = ?`, userID)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, h)
	}
	return out
}

// TestRecoveryCodesAreKeyedAndSalted: what the database holds for a
// recovery code is salted per user and keyed by a key derived from the
// key-encryption key, so a copy of the database alone cannot test a guess
// (NIST SP 800-63B look-up secrets): not the bare SHA-256 of the code, not
// computable without the key, and different for another officer.
func TestRecoveryCodesAreKeyedAndSalted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.seedUser(alice, aliceFirst, true)
	o := firstLogin(t, e, e.browser())
	stored := e.storedRecoveryHashes(u.ID)
	if len(stored) != recoveryCodeCount || len(o.codes) != recoveryCodeCount {
		t.Fatalf("%d rows for %d codes", len(stored), len(o.codes))
	}
	salts := map[string]bool{}
	for _, h := range stored {
		rest, ok := strings.CutPrefix(h, recoveryKeyedPrefix)
		salt, mac, _ := strings.Cut(rest, "$")
		if !ok || len(salt) != 2*recoverySaltLen || len(mac) != 64 {
			t.Fatalf("stored %q, want rk1$<salt>$<mac>", h)
		}
		salts[salt] = true
	}
	if len(salts) != 1 {
		t.Errorf("%d salts for one officer's codes, want one", len(salts))
	}
	joined := strings.Join(stored, " ")
	other, _ := seal.New(seal.NewKey())
	for _, c := range o.codes {
		norm, _ := normaliseRecoveryCode(c)
		if strings.Contains(joined, legacyRecoveryHash(norm)) {
			t.Fatalf("the bare SHA-256 of %q is in the database", c)
		}
		// Only the deployment's key finds the row.
		if (recoveryHasher{key: e.box.Derive(purposeRecoveryKey)}).match(u.ID, norm, stored) == "" {
			t.Errorf("code %q does not match under the deployment's key", c)
		}
		if (recoveryHasher{key: other.Derive(purposeRecoveryKey)}).match(u.ID, norm, stored) != "" {
			t.Errorf("code %q matches under another key-encryption key", c)
		}
		if e.h.recovery.match("u-bob", norm, stored) != "" {
			t.Errorf("code %q matches for another officer", c)
		}
	}
	// Another officer's codes get another salt.
	_, bobs := e.h.recovery.newRecoveryCodes("u-bob")
	if strings.Contains(bobs[0], strings.Split(stored[0], "$")[1]) {
		t.Error("two officers share a salt")
	}
}

// TestRecoveryCodesFromAnOlderLanyard: codes an older Lanyard stored as a
// bare SHA-256 keep working across the upgrade — before the restart (a node
// of the old version still running) and after it, when every such row,
// used ones included, has been rewrapped in the keyed form.
func TestRecoveryCodesFromAnOlderLanyard(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.seedUser(alice, aliceFirst, true)
	o := firstLogin(t, e, e.browser())
	var legacy []string
	for _, c := range o.codes {
		norm, _ := normaliseRecoveryCode(c)
		legacy = append(legacy, legacyRecoveryHash(norm))
	}
	ctx := t.Context()
	if err := e.st.ReplaceRecoveryCodes(ctx, u.ID, legacy); err != nil {
		t.Fatal(err)
	}
	if err := e.st.UseRecoveryCode(ctx, u.ID, legacy[9], e.clock.Now()); err != nil {
		t.Fatal(err)
	}

	signIn := func(code string) bool {
		t.Helper()
		b := e.browser()
		r := laterSignIn(t, b, alicePw)
		mustStep(t, r, StepMFAChallenge)
		res := b.submit(r, map[string]string{"code": code})
		if res.status != http.StatusSeeOther {
			return false
		}
		return b.done(b.follow(res)).SignedIn
	}
	if !signIn(o.codes[0]) {
		t.Fatal("an old-format code no longer signs in before the restart")
	}

	pages, err := templates.Parse()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(ctx, Options{Config: e.cfg, Store: e.st, Box: e.box, Pages: pages, Now: e.clock.Now}); err != nil {
		t.Fatal(err)
	}
	for _, h := range e.storedRecoveryHashes(u.ID) {
		if !strings.HasPrefix(h, recoveryKeyedPrefix) {
			t.Errorf("row %q left in the old form after the restart", h)
		}
	}
	if n, _ := e.st.RecoveryCodesLeft(ctx, u.ID); n != 8 {
		t.Errorf("%d codes left after the re-key, want 8", n)
	}
	if !signIn(o.codes[1]) {
		t.Error("a re-keyed code does not sign in")
	}
	for _, used := range []string{o.codes[0], o.codes[9]} {
		if signIn(used) {
			t.Errorf("code %q, used before the re-key, signs in again", used)
		}
	}
}

// TestRecoveryCodeRacing: twenty browsers at the challenge post the same
// recovery code at once; it signs in exactly one.
func TestRecoveryCodeRacing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, manyTries)
	u := e.seedUser(alice, aliceFirst, true)
	o := firstLogin(t, e, e.browser())
	e.clock.Advance(time.Minute)

	if ok := racingChallenges(t, e, o.codes[3]); ok != 1 {
		t.Fatalf("%d racing requests accepted one recovery code, want 1", ok)
	}
	if left, _ := e.st.RecoveryCodesLeft(t.Context(), u.ID); left != recoveryCodeCount-1 {
		t.Errorf("%d codes left, want %d", left, recoveryCodeCount-1)
	}
	if got := e.countEvents(evRecoveryUse); got != 1 {
		t.Errorf("%d recovery-code uses audited, want 1", got)
	}
}
