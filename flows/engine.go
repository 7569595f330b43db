package flows

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/provider/authn"
)

// The step engine: which steps of the journey are still pending for a
// browser, in what order. Everything the journey knows about a step is one
// row of the step table below — its name (the data-step marker), its page,
// when it is pending, whether it counts in "Step N of M", its label in the
// onboarding funnel, its template and handlers. The routes (Mount), Pending,
// the progress line, the redirects, the funnel's labels (FunnelLabels) and
// the names journey.steps may use (ConfigRule) are all read from it.
//
// Pending is pure — no storage, no HTTP, no clock — so a table test can walk
// every combination of user state, and the dispatcher (next.go) is the only
// place that turns its answer into a redirect.

// Step names. They are also the data-step markers of the pages' forms, a
// public contract (DESIGN.md §5). A policy document's step is named by the
// document's id; privacy and terms are the two the guide has.
const (
	StepIdentify       = "identify"
	StepPassword       = "password"
	StepMFAChallenge   = "mfa-challenge"
	StepMFAEnrol       = "mfa-enrol"
	StepRecoveryCodes  = "recovery-codes"
	StepChangePassword = "change-password"
	StepPrivacy        = "privacy"
	StepTerms          = "terms"
	StepConsent        = "consent"
	// Self-service recovery (recovery_*.go).
	StepResetPassword = "reset-password"
	StepLostFactor    = "remove-lost-factor"
)

// DefaultSteps is the guide's order of the interstitial steps (what the
// configuration's default order is with the two sample documents).
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
	// Resetting: this browser opened a password-reset link (the link stands
	// in for the password step): the second factor, then a new password,
	// and nothing else until the password is reset.
	Resetting bool
	// ReplacingFactor: signed in with a recovery code after "Lost your
	// phone?", and asked to set up a new second factor (mfa-enrol again).
	ReplacingFactor bool
	// LostFactorsToOffer: a new factor replaced a lost one in this sign-in;
	// the old ones are offered for removal.
	LostFactorsToOffer bool

	// What the parked request asks of this sign-in (request-bound: see
	// forRequest). ACR is what the sign-in has proved so far; StepUp the
	// weakest acr the request asks for (acr_values), "" for none;
	// HasPasskey: the officer has a passkey or security key, which alone
	// reaches urn:lanyard:acr:phr.
	ACR        string
	StepUp     string
	HasPasskey bool
	// ConsentDue: the request waits for the officer's answer on the
	// consent page.
	ConsentDue bool
}

// stepUpDue: the request asks for more than the sign-in proved, and the
// officer has a factor that reaches it — a passkey for the phishing-
// resistant level, any second factor for mfa. A level no factor of the
// officer's reaches is not asked for: the provider then issues what was
// achieved, or refuses a request that insists.
func (s State) stepUpDue() bool {
	if s.StepUp == "" || authn.ACRLevel(s.ACR) >= authn.ACRLevel(s.StepUp) {
		return false
	}
	if s.StepUp == acrPhishingResistant {
		return s.HasPasskey
	}
	return s.HasSecondFactor
}

// forRequest is the state without what the parked request asks (a
// step-up, the consent page): what the account itself still needs. A
// browser with only request-bound steps pending is signed in for every
// other request and for the account page.
func (s State) forRequest() State {
	s.StepUp, s.ConsentDue = "", false
	return s
}

// placement is where Pending puts a step.
type placement int

const (
	// signIn: the steps before the password is verified, the only ones
	// pending until then (the user is not known yet).
	signIn placement = iota
	// first: after the password (or an opened reset link), before every
	// configured step.
	first
	// ordered: where journey.steps lists it.
	ordered
	// last: after every other step, just before the request resumes.
	last
)

// stepDef is one row of the step table.
type stepDef struct {
	// name is the step's data-step marker and, for an ordered step, its
	// name in journey.steps.
	name  string
	path  string
	place placement
	// pending reports whether the step is still to do (name is the step's
	// own name: a document step needs it).
	pending func(s State, name string) bool
	// then is the step a pending one brings right after it: an enrolment
	// makes the recovery codes shown next.
	then string
	// counts: the step counts in "Step N of M".
	counts bool
	// metric is the step's label in the onboarding funnel
	// (lanyard_journey_steps_completed_total); "" when it has none.
	metric string

	// The HTTP side. page is the template; get and post the handlers, which
	// the router's guard (at) calls only for a browser at this step.
	page      string
	get, post stepFunc
	// anonymous: a browser without a session may come too (its flow has
	// no session then).
	anonymous bool
	// ceremony is the path of the passkey ceremony offered on the page
	// ("" when none): begin answers path+optionsSuffix, finish path.
	ceremony      string
	begin, finish stepFunc
}

// stepFunc is a step's handler; the guard has loaded the browser's flow
// and checked that it is at the step.
type stepFunc func(h *Handler, w http.ResponseWriter, r *http.Request, f *flow) error

// steps is the table of the built-in steps, in the order Pending considers
// them. It is filled in by init because its handlers, through the pages
// they render, read it.
var steps []stepDef

// documentStep is the row a policy document's step is made of: its name is
// the document's id and its page /signin/<id>. It is pending while the
// document has a current version the officer has not accepted.
var documentStep stepDef

func init() {
	steps = []stepDef{
		{name: StepIdentify, path: PathSignIn, place: signIn,
			pending: func(s State, _ string) bool { return !s.Identified },
			// The username page's passkey button signs in without a password.
			metric: "passkey", page: "identify", anonymous: true,
			get: (*Handler).getIdentify, post: (*Handler).postIdentify,
			ceremony: PathPasskeySignIn, begin: (*Handler).postPasskeySignInOptions, finish: (*Handler).postPasskeySignIn},
		{name: StepPassword, path: PathPassword, place: signIn,
			pending: func(s State, _ string) bool { return !s.PasswordVerified },
			metric:  "password", page: "password",
			get: (*Handler).getPassword, post: (*Handler).postPassword},
		// An enrolled factor must be proven before anything else: otherwise a
		// password alone would reach the later steps (and could never replace
		// the factor, since mfa-enrol is pending only without one).
		// A step-up (acr_values) is the same page once more: a passkey for
		// the phishing-resistant level.
		{name: StepMFAChallenge, path: PathMFAChallenge, place: first,
			pending: func(s State, _ string) bool { return s.HasSecondFactor && !s.SecondFactorVerified || s.stepUpDue() },
			metric:  "mfa-challenge", page: "mfa-challenge",
			get: (*Handler).getChallenge, post: (*Handler).postChallenge,
			ceremony: PathPasskeyChallenge, begin: (*Handler).postPasskeyChallengeOptions, finish: (*Handler).postPasskeyChallenge},
		// An opened password-reset link: the second factor above first,
		// then the new password; an account without one never gets past
		// this page (the page says whom to ask).
		{name: StepResetPassword, path: PathResetPassword, place: first,
			pending: func(s State, _ string) bool { return s.Resetting },
			page:    "reset-password",
			get:     (*Handler).getResetPassword, post: (*Handler).postResetPassword},
		// Codes from an enrolment that just happened come right after it:
		// every step before mfa-enrol in the order was done before the
		// enrolment.
		{name: StepRecoveryCodes, path: PathRecoveryCodes, place: first,
			pending: func(s State, _ string) bool { return s.RecoveryCodesToShow && !s.Resetting },
			counts:  true, page: "recovery-codes",
			get: (*Handler).getRecoveryCodes, post: (*Handler).postRecoveryCodes},
		// After a new factor replaced a lost one (and its codes were shown),
		// the factors from before are offered for removal.
		{name: StepLostFactor, path: PathLostFactor, place: first,
			pending: func(s State, _ string) bool { return s.LostFactorsToOffer && !s.Resetting },
			page:    "remove-lost-factor",
			get:     (*Handler).getLostFactor, post: (*Handler).postLostFactor},
		// Pending without a second factor, and again after "Lost your
		// phone?" and a recovery code, to add one beside (or over) the lost
		// one.
		{name: StepMFAEnrol, path: PathMFAEnrol, place: ordered,
			pending: func(s State, _ string) bool { return !s.HasSecondFactor || s.ReplacingFactor && s.SecondFactorVerified },
			then:    StepRecoveryCodes, counts: true, metric: "mfa-enrol", page: "mfa-enrol",
			get: (*Handler).getEnrol, post: (*Handler).postEnrol,
			ceremony: PathPasskeyEnrol, begin: (*Handler).postPasskeyEnrolOptions, finish: (*Handler).postPasskeyEnrol},
		{name: StepChangePassword, path: PathChangePassword, place: ordered,
			pending: func(s State, _ string) bool { return s.PasswordInitial },
			counts:  true, metric: "change-password", page: "change-password",
			get: (*Handler).getChangePassword, post: (*Handler).postChangePassword},
		// The relying party's request, once the officer is fully signed in.
		{name: StepConsent, path: PathConsent, place: last,
			pending: func(s State, _ string) bool { return s.ConsentDue },
			page:    "consent",
			get:     (*Handler).getConsent, post: (*Handler).postConsent},
	}
	documentStep = stepDef{place: ordered,
		pending: func(s State, id string) bool { cur := s.Current[id]; return cur != "" && s.Accepted[id] != cur },
		counts:  true, page: "policy",
		get: (*Handler).getPolicy, post: (*Handler).postPolicy}
}

// builtin returns the row of a built-in step, or nil.
func builtin(name string) *stepDef {
	for i := range steps {
		if steps[i].name == name {
			return &steps[i]
		}
	}
	return nil
}

// stepNamed returns the row of a step: a built-in one, or for any other
// name that of a policy document with that id.
func stepNamed(name string) *stepDef {
	if d := builtin(name); d != nil {
		return d
	}
	d := documentStep
	d.name, d.path = name, documentPath(name)
	return &d
}

// documentPath is the page of a policy document's step.
func documentPath(id string) string { return PathSignIn + "/" + id }

// stepPath is where a step's page lives ("" for no step).
func stepPath(name string) string {
	if name == "" {
		return ""
	}
	return stepNamed(name).path
}

// counts reports whether a step counts in "Step N of M".
func counts(name string) bool { return name != "" && stepNamed(name).counts }

// Pending returns the steps still to do, first one first. order is the
// configured order of the interstitial steps (cfg.Journey.Steps): a
// built-in ordered step, or the id of a policy document; other names in it
// are ignored (a document without a current version is never pending).
// Before the password is verified the user is not known yet, so only the
// sign-in steps are returned. While a reset link stands for the password,
// only the steps placed first are: nothing configured (an enrolment
// least of all) may be reached with a link alone.
//
// The list is a prediction of the rest of the journey, used for "Step N of M"
// as well as for the next redirect: a pending enrolment is followed by the
// recovery codes it will produce.
func Pending(s State, order []string) []string {
	if !s.PasswordVerified && !s.Resetting {
		var out []string
		for _, d := range steps {
			if d.place == signIn && d.pending(s, d.name) {
				out = append(out, d.name)
			}
		}
		return out
	}
	var later []string
	// A request for mfa from a sign-in without any second factor (a
	// journey configured without mfa-enrol) enrols one.
	if s.StepUp != "" && !s.HasSecondFactor && authn.ACRLevel(s.ACR) < authn.ACRLevel(s.StepUp) && !slices.Contains(order, StepMFAEnrol) {
		order = append([]string{StepMFAEnrol}, order...)
	}
	for _, name := range order {
		if s.Resetting {
			break
		}
		d := stepNamed(name)
		if d.place != ordered || slices.Contains(later, name) || !d.pending(s, name) {
			continue
		}
		later = append(later, name)
		if d.then != "" {
			later = append(later, d.then)
		}
	}
	var out []string
	for _, d := range steps {
		// A step that a pending ordered step brings along comes there.
		if d.place == first && d.pending(s, d.name) && !slices.Contains(later, d.name) {
			out = append(out, d.name)
		}
	}
	out = append(out, later...)
	for _, d := range steps {
		if d.place == last && !s.Resetting && d.pending(s, d.name) {
			out = append(out, d.name)
		}
	}
	return out
}

// earlierSignIn reports whether step is a sign-in step before cur, another
// sign-in step: the username page stays reachable until the password is
// verified ("Not you?" leads back to it).
func earlierSignIn(step, cur string) bool {
	i := slices.IndexFunc(steps, func(d stepDef) bool { return d.name == step && d.place == signIn })
	j := slices.IndexFunc(steps, func(d stepDef) bool { return d.name == cur && d.place == signIn })
	return i >= 0 && j >= 0 && i < j
}

// FunnelLabels are the labels of the onboarding funnel's metrics: the
// built-in steps' and each policy document's id.
func FunnelLabels(cfg *config.Config) []string {
	var out []string
	for _, d := range steps {
		if d.metric != "" {
			out = append(out, d.metric)
		}
	}
	for _, d := range cfg.Documents {
		out = append(out, d.ID)
	}
	return out
}

// ConfigRule checks a configuration's journey against the step table
// (config.Rule; config cannot import flows, so the binary hands it to
// config.Check and Validate): every name in journey.steps is a built-in
// step that can be ordered or a document's id, and no document's id is the
// name of a built-in step or of a page the journey already has.
func ConfigRule(c *config.Config, add func(field, format string, args ...any)) {
	checkJourney(c.Journey.Steps, c.Documents, add)
}

func checkJourney(order []string, docs []config.Document, add func(field, format string, args ...any)) {
	allowed := orderable()
	for i, d := range docs {
		if slices.Contains(reservedNames(), d.ID) {
			add(fmt.Sprintf("documents[%d].id", i), "%q is taken by the journey's own steps and pages (%s); choose another id",
				d.ID, strings.Join(reservedNames(), ", "))
		}
		allowed = append(allowed, d.ID)
	}
	for i, s := range order {
		if !slices.Contains(allowed, s) {
			add(fmt.Sprintf("journey.steps[%d]", i), "%q is not one of %s (a policy document's step needs a document with id: %s under documents)",
				s, strings.Join(allowed, ", "), s)
		}
	}
}

// orderable are the built-in steps journey.steps may list.
func orderable() []string {
	var out []string
	for _, d := range steps {
		if d.place == ordered {
			out = append(out, d.name)
		}
	}
	return out
}

// reservedNames are the names a document's id must not take: every
// built-in step's, and every first path segment the journey's own routes
// use under /signin/ (a document's page is /signin/<id>).
func reservedNames() []string {
	var out []string
	add := func(p string) {
		rest, ok := strings.CutPrefix(p, PathSignIn+"/")
		if seg, _, _ := strings.Cut(rest, "/"); ok && !slices.Contains(out, seg) {
			out = append(out, seg)
		}
	}
	for _, d := range steps {
		add(PathSignIn + "/" + d.name)
		add(d.path)
		add(d.ceremony)
	}
	for _, p := range []string{PathNext, PathForgot, PathReset, PathInvitation} {
		add(p)
	}
	return out
}

// pageTemplates are the templates of every step's page.
func pageTemplates() []string {
	var out []string
	for _, d := range append(slices.Clone(steps), documentStep) {
		if !slices.Contains(out, d.page) {
			out = append(out, d.page)
		}
	}
	return out
}
