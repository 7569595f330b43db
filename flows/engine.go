package flows

import "slices"

// The step engine: which steps of the journey are still pending for a browser,
// in what order. It is pure — no storage, no HTTP, no clock — so a table test
// can walk every combination of user state, and the dispatcher (next.go) is the
// only place that turns its answer into a redirect.

// Step names. They are also the data-step markers of the pages' forms, a
// public contract (DESIGN.md §5).
const (
	StepIdentify       = "identify"
	StepPassword       = "password"
	StepMFAChallenge   = "mfa-challenge"
	StepMFAEnrol       = "mfa-enrol"
	StepRecoveryCodes  = "recovery-codes"
	StepChangePassword = "change-password"
	StepPrivacy        = "privacy"
	StepTerms          = "terms"
)

// DefaultSteps is the guide's order of the interstitial steps.
var DefaultSteps = []string{StepMFAEnrol, StepChangePassword, StepPrivacy, StepTerms}

// State is what the engine needs to know about a browser's sign-in: a
// snapshot assembled by the dispatcher from the session and the store.
type State struct {
	// Identified: a username has been typed in this sign-in.
	Identified bool
	// PasswordVerified: the password was verified in this sign-in.
	PasswordVerified bool
	// HasSecondFactor: the user has a confirmed TOTP secret or a passkey.
	HasSecondFactor bool
	// SecondFactorVerified: a second factor was verified (or enrolled) in this
	// session.
	SecondFactorVerified bool
	// PasswordInitial: the password is the one from the invitation or a reset.
	PasswordInitial bool
	// Accepted maps a policy document id to the version the user last accepted.
	Accepted map[string]string
	// Current maps a policy document id to its current version (from config).
	Current map[string]string
	// RecoveryCodesToShow: fresh recovery codes wait in the session to be shown
	// once.
	RecoveryCodesToShow bool
}

// Pending returns the steps still to do, first one first. order is the
// configured order of the interstitial steps (cfg.Journey.Steps); unknown
// names in it are ignored. Before the password is verified the user is not
// known yet, so only the sign-in steps are returned.
//
// The list is a prediction of the rest of the journey, used for "Step N of M"
// as well as for the next redirect: a pending enrolment is followed by the
// recovery codes it will produce.
func Pending(s State, order []string) []string {
	if !s.PasswordVerified {
		if !s.Identified {
			return []string{StepIdentify, StepPassword}
		}
		return []string{StepPassword}
	}
	var out []string
	// An enrolled factor must be proven before anything else: otherwise a
	// password alone would reach the later steps (and could never replace the
	// factor, since mfa-enrol is pending only without one).
	if s.HasSecondFactor && !s.SecondFactorVerified {
		out = append(out, StepMFAChallenge)
	}
	// Codes from an enrolment that just happened come right after it: every
	// step before mfa-enrol in the order was done before the enrolment. A
	// pending enrolment is always followed by the codes it will make.
	enrolPending := !s.HasSecondFactor && slices.Contains(order, StepMFAEnrol)
	if s.RecoveryCodesToShow && !enrolPending {
		out = append(out, StepRecoveryCodes)
	}
	for _, step := range order {
		switch step {
		case StepMFAEnrol:
			if !s.HasSecondFactor {
				out = append(out, StepMFAEnrol, StepRecoveryCodes)
			}
		case StepChangePassword:
			if s.PasswordInitial {
				out = append(out, StepChangePassword)
			}
		case StepPrivacy, StepTerms:
			if cur := s.Current[step]; cur != "" && s.Accepted[step] != cur {
				out = append(out, step)
			}
		}
	}
	return out
}

// onboarding reports whether a step is one of the interstitial steps that
// show "Step N of M" (the sign-in steps and the challenge do not).
func onboarding(step string) bool {
	switch step {
	case StepMFAEnrol, StepRecoveryCodes, StepChangePassword, StepPrivacy, StepTerms:
		return true
	}
	return false
}
