package flows

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestPendingTable(t *testing.T) {
	t.Parallel()
	cur := map[string]string{"privacy": "2", "terms": "3"}
	both := map[string]string{"privacy": "2", "terms": "3"}
	stale := map[string]string{"privacy": "1", "terms": "3"}
	tests := []struct {
		name  string
		s     State
		order []string
		want  string
	}{
		{"anonymous", State{}, DefaultSteps, "identify,password"},
		{"identified", State{Identified: true}, DefaultSteps, "password"},
		{"password only ignores everything else", State{Identified: true, HasSecondFactor: true, PasswordInitial: true}, DefaultSteps, "password"},
		{"first login", State{PasswordVerified: true, PasswordInitial: true, Current: cur},
			DefaultSteps, "mfa-enrol,recovery-codes,change-password,privacy,terms"},
		{"after enrolment the codes come first", State{PasswordVerified: true, HasSecondFactor: true, SecondFactorVerified: true,
			RecoveryCodesToShow: true, PasswordInitial: true, Current: cur}, DefaultSteps, "recovery-codes,change-password,privacy,terms"},
		{"codes saved", State{PasswordVerified: true, HasSecondFactor: true, SecondFactorVerified: true, PasswordInitial: true, Current: cur},
			DefaultSteps, "change-password,privacy,terms"},
		{"password changed", State{PasswordVerified: true, HasSecondFactor: true, SecondFactorVerified: true, Current: cur},
			DefaultSteps, "privacy,terms"},
		{"privacy accepted", State{PasswordVerified: true, HasSecondFactor: true, SecondFactorVerified: true, Current: cur,
			Accepted: map[string]string{"privacy": "2"}}, DefaultSteps, "terms"},
		{"all done", State{PasswordVerified: true, HasSecondFactor: true, SecondFactorVerified: true, Current: cur, Accepted: both},
			DefaultSteps, ""},
		{"later sign-in: the challenge", State{PasswordVerified: true, HasSecondFactor: true, Current: cur, Accepted: both},
			DefaultSteps, "mfa-challenge"},
		{"challenge before a newly pending step", State{PasswordVerified: true, HasSecondFactor: true, Current: cur, Accepted: stale},
			DefaultSteps, "mfa-challenge,privacy"},
		{"a version bump", State{PasswordVerified: true, HasSecondFactor: true, SecondFactorVerified: true, Current: cur, Accepted: stale},
			DefaultSteps, "privacy"},
		{"password alone never reaches enrolment when a factor exists", State{PasswordVerified: true, HasSecondFactor: true,
			PasswordInitial: true, Current: cur}, DefaultSteps, "mfa-challenge,change-password,privacy,terms"},
		{"configured order", State{PasswordVerified: true, PasswordInitial: true, Current: cur},
			[]string{"terms", "privacy", "change-password", "mfa-enrol"}, "terms,privacy,change-password,mfa-enrol,recovery-codes"},
		{"no MFA step configured", State{PasswordVerified: true, Current: cur, Accepted: both}, []string{"privacy", "terms"}, ""},
		{"unknown steps ignored", State{PasswordVerified: true, HasSecondFactor: true, SecondFactorVerified: true, Current: cur, Accepted: both},
			[]string{"mfa-enrol", "bogus"}, ""},
		{"a document without a version is not pending", State{PasswordVerified: true, HasSecondFactor: true, SecondFactorVerified: true},
			DefaultSteps, ""},
		{"a third document in its configured place", State{PasswordVerified: true, PasswordInitial: true,
			Current: map[string]string{"privacy": "2", "terms": "3", "code-of-conduct": "1"}},
			[]string{"mfa-enrol", "code-of-conduct", "change-password", "privacy", "terms"},
			"mfa-enrol,recovery-codes,code-of-conduct,change-password,privacy,terms"},
		{"a reset link: the factor, then the new password, nothing else", State{Identified: true, Resetting: true, HasSecondFactor: true,
			PasswordInitial: true, Current: cur}, DefaultSteps, "mfa-challenge,reset-password"},
		{"a reset link after the factor", State{Identified: true, Resetting: true, HasSecondFactor: true, SecondFactorVerified: true,
			Current: cur}, DefaultSteps, "reset-password"},
		{"a reset link never reaches enrolment", State{Identified: true, Resetting: true, Current: cur}, DefaultSteps, "reset-password"},
		{"after the reset, the rest of the journey", State{PasswordVerified: true, HasSecondFactor: true, SecondFactorVerified: true,
			Current: cur, Accepted: stale}, DefaultSteps, "privacy"},
		{"lost phone: a new factor and its codes", State{PasswordVerified: true, HasSecondFactor: true, SecondFactorVerified: true,
			ReplacingFactor: true, Current: cur, Accepted: both}, DefaultSteps, "mfa-enrol,recovery-codes"},
		{"lost phone needs the recovery code first", State{PasswordVerified: true, HasSecondFactor: true, ReplacingFactor: true,
			Current: cur, Accepted: both}, DefaultSteps, "mfa-challenge"},
		{"lost phone: the codes, then the removal offer", State{PasswordVerified: true, HasSecondFactor: true, SecondFactorVerified: true,
			RecoveryCodesToShow: true, LostFactorsToOffer: true, Current: cur, Accepted: stale}, DefaultSteps, "recovery-codes,remove-lost-factor,privacy"},
		{"forgot the password and lost the phone", State{Identified: true, Resetting: true, HasSecondFactor: true, SecondFactorVerified: true,
			ReplacingFactor: true, Current: cur, Accepted: both}, DefaultSteps, "reset-password"},
		{"the consent page comes last", State{PasswordVerified: true, PasswordInitial: true, Current: cur, ConsentDue: true},
			DefaultSteps, "mfa-enrol,recovery-codes,change-password,privacy,terms,consent"},
		{"only the consent page", State{PasswordVerified: true, HasSecondFactor: true, SecondFactorVerified: true, Current: cur, Accepted: both,
			ConsentDue: true}, DefaultSteps, "consent"},
		{"no consent page before the password", State{Identified: true, ConsentDue: true}, DefaultSteps, "password"},
		{"a step-up to a passkey", State{PasswordVerified: true, HasSecondFactor: true, SecondFactorVerified: true, Current: cur, Accepted: both,
			ACR: acrMFA, StepUp: acrPhishingResistant, HasPasskey: true}, DefaultSteps, "mfa-challenge"},
		{"a step-up then the consent page", State{PasswordVerified: true, HasSecondFactor: true, SecondFactorVerified: true, Current: cur, Accepted: both,
			ACR: acrMFA, StepUp: acrPhishingResistant, HasPasskey: true, ConsentDue: true}, DefaultSteps, "mfa-challenge,consent"},
		{"no step-up without a passkey", State{PasswordVerified: true, HasSecondFactor: true, SecondFactorVerified: true, Current: cur, Accepted: both,
			ACR: acrMFA, StepUp: acrPhishingResistant}, DefaultSteps, ""},
		{"no step-up when reached", State{PasswordVerified: true, HasSecondFactor: true, SecondFactorVerified: true, Current: cur, Accepted: both,
			ACR: acrPhishingResistant, StepUp: acrMFA, HasPasskey: true}, DefaultSteps, ""},
		{"a step-up to mfa without a factor enrols one", State{PasswordVerified: true, Current: cur, Accepted: both,
			ACR: acrPassword, StepUp: acrMFA}, []string{"privacy", "terms"}, "mfa-enrol,recovery-codes"},
		{"a step of the sign-in in the order is ignored", State{PasswordVerified: true, HasSecondFactor: true, SecondFactorVerified: true, Current: cur, Accepted: both},
			[]string{"password", "identify", "mfa-challenge", "recovery-codes"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(Pending(tt.s, tt.order), ",")
			if got != tt.want {
				t.Errorf("Pending = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestPendingEveryCombination walks every combination of the boolean facts
// and document states and checks the engine's invariants on each.
func TestPendingEveryCombination(t *testing.T) {
	t.Parallel()
	versions := []map[string]string{nil, {"privacy": "1"}, {"terms": "1"}, {"privacy": "1", "terms": "1"}, {"privacy": "0", "terms": "1"},
		{"code-of-conduct": "1", "terms": "1"}}
	cur := map[string]string{"privacy": "1", "terms": "1", "code-of-conduct": "1"}
	orders := [][]string{DefaultSteps, {"terms", "privacy", "change-password", "mfa-enrol"}, {"change-password"},
		{"code-of-conduct", "mfa-enrol", "terms", "change-password", "privacy"}}
	n := 0
	for bits := 0; bits < 1<<12; bits++ {
		for _, acc := range versions {
			for _, order := range orders {
				s := State{
					Identified:           bits&1 != 0,
					PasswordVerified:     bits&2 != 0,
					HasSecondFactor:      bits&4 != 0,
					SecondFactorVerified: bits&8 != 0,
					PasswordInitial:      bits&16 != 0,
					RecoveryCodesToShow:  bits&32 != 0,
					Resetting:            bits&512 != 0,
					ReplacingFactor:      bits&1024 != 0,
					LostFactorsToOffer:   bits&2048 != 0,
					Accepted:             acc,
				}
				if bits&64 != 0 {
					s.Current = cur
				}
				s.ConsentDue = bits&128 != 0
				if bits&256 != 0 {
					// A request for a passkey, from an officer who has one.
					s.StepUp, s.HasPasskey, s.HasSecondFactor = acrPhishingResistant, true, true
					if s.SecondFactorVerified {
						s.ACR = acrMFA
					}
				}
				name := fmt.Sprintf("%012b/%v/%v", bits, acc, order)
				checkInvariants(t, name, s, order, Pending(s, order))
				n++
			}
		}
	}
	if n != 4096*len(versions)*len(orders) {
		t.Fatalf("walked %d combinations", n)
	}
}

func checkInvariants(t *testing.T, name string, s State, order, got []string) {
	t.Helper()
	seen := map[string]bool{}
	for _, step := range got {
		if seen[step] {
			t.Errorf("%s: %q twice in %v", name, step, got)
		}
		seen[step] = true
		if builtin(step) == nil && s.Current[step] == "" {
			t.Errorf("%s: unknown step %q", name, step)
		}
	}
	if !s.PasswordVerified && !s.Resetting {
		if len(got) == 0 || got[len(got)-1] != StepPassword {
			t.Errorf("%s: without a verified password the journey must end at the password: %v", name, got)
		}
		return
	}
	if s.Resetting {
		// A reset link stands for the password, and for nothing else: the
		// factor (when there is one), then the new password, nothing
		// configured after it.
		if len(got) == 0 || got[len(got)-1] != StepResetPassword {
			t.Errorf("%s: a reset must end at reset-password: %v", name, got)
		}
		for _, step := range got {
			if d := stepNamed(step); d.place != first {
				t.Errorf("%s: %q pending with only a reset link: %v", name, step, got)
			}
		}
		if s.HasSecondFactor && !s.SecondFactorVerified && got[0] != StepMFAChallenge {
			t.Errorf("%s: a reset must prove the factor first: %v", name, got)
		}
		return
	}
	// Nothing is ever pending before the second factor is proven.
	if s.HasSecondFactor && !s.SecondFactorVerified && (len(got) == 0 || got[0] != StepMFAChallenge) {
		t.Errorf("%s: a user with a factor must prove it first: %v", name, got)
	}
	// An enrolled factor is never replaced by a password alone: only
	// after the factor (a recovery code) was proved and the officer asked.
	if s.HasSecondFactor && seen[StepMFAEnrol] && !(s.ReplacingFactor && s.SecondFactorVerified) {
		t.Errorf("%s: mfa-enrol pending for a user with a factor: %v", name, got)
	}
	if !s.HasSecondFactor && seen[StepMFAChallenge] {
		t.Errorf("%s: challenge without a factor: %v", name, got)
	}
	if seen[StepChangePassword] != (s.PasswordInitial && slices.Contains(order, StepChangePassword)) {
		t.Errorf("%s: change-password pending=%v with initial=%v", name, seen[StepChangePassword], s.PasswordInitial)
	}
	for _, doc := range []string{StepPrivacy, StepTerms, "code-of-conduct"} {
		want := slices.Contains(order, doc) && s.Current[doc] != "" && s.Accepted[doc] != s.Current[doc]
		if seen[doc] != want {
			t.Errorf("%s: %s pending=%v, want %v", name, doc, seen[doc], want)
		}
	}
	if seen[StepResetPassword] {
		t.Errorf("%s: reset-password pending after the password: %v", name, got)
	}
	if seen[StepLostFactor] != (s.LostFactorsToOffer && !s.Resetting) {
		t.Errorf("%s: the removal offer pending=%v: %v", name, seen[StepLostFactor], got)
	}
	if s.RecoveryCodesToShow && !s.Resetting && !seen[StepRecoveryCodes] {
		t.Errorf("%s: codes waiting but not pending: %v", name, got)
	}
	// The configured order is respected among the configured steps.
	last := -1
	for _, step := range got {
		if i := slices.Index(order, step); i >= 0 {
			if i < last {
				t.Errorf("%s: %v does not follow the order %v", name, got, order)
			}
			last = i
		}
	}
	// The consent page is the very last step when due, and only then.
	if seen[StepConsent] != s.ConsentDue || s.ConsentDue && got[len(got)-1] != StepConsent {
		t.Errorf("%s: consent due=%v, pending %v", name, s.ConsentDue, got)
	}
	// A request for more than was proved, with a factor that reaches it,
	// is the challenge again; what the request asks never adds an
	// onboarding step.
	if s.stepUpDue() && !seen[StepMFAChallenge] {
		t.Errorf("%s: a step-up is due but the challenge is not pending: %v", name, got)
	}
	if base := Pending(s.forRequest(), order); len(got)-len(base) > 2 {
		t.Errorf("%s: the request added more than the challenge and the consent page: %v over %v", name, got, base)
	}
	// Fresh codes follow their enrolment directly.
	if i := slices.Index(got, StepMFAEnrol); i >= 0 && (i+1 >= len(got) || got[i+1] != StepRecoveryCodes) {
		t.Errorf("%s: recovery-codes must follow mfa-enrol: %v", name, got)
	}
}
