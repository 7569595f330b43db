package flows

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/lanyard-idp/lanyard/provider/authn"
	"github.com/lanyard-idp/lanyard/provider/store"
)

// The consent page (data-step="consent"): the last step before a parked
// request resumes, when the request asks for the officer's consent
// (prompt=consent: every time) or its client is registered with consent:
// required (until the officer has allowed it what it asks for). The page
// lists the application and what it asks for; Allow (accept=yes) remembers
// the decision for the client and lets the request resume, Decline
// (decline) makes it resume to access_denied and forgets what was allowed
// before. The answer is recorded against the parked request
// (store.DecideAuthRequest), where the provider reads it: a request never
// resumes past an unanswered page. The account page lists the remembered
// decisions and withdraws them.

// PathAccountConsentWithdraw is the account page's form that withdraws a
// permission.
const PathAccountConsentWithdraw = "/account/consents/withdraw"

const (
	msgChooseConsent  = "Choose Allow or Decline."
	msgConsentChanged = "The application asked again meanwhile, perhaps in another tab. Nothing was recorded: this is what it asks for now."
	msgConsentExpired = "This sign-in request has expired. Go back to the application and sign in again."
	msgConsentGone    = "That application no longer has your permission. The page below is up to date."
)

// consentAsk is a parked request's consent page, kept in the session.
type consentAsk struct {
	RequestID string `json:"request_id"`
	// Always: prompt=consent (else the client requires consent and the
	// page is due unless the officer's remembered decision covers it).
	Always bool     `json:"always,omitempty"`
	Scopes []string `json:"scopes,omitempty"`
	Claims []string `json:"claims,omitempty"`
}

// newConsentAsk is the consent page a request asks for, or nil.
func newConsentAsk(req authn.SignInRequest) *consentAsk {
	if !req.Consent && !req.ConsentRequired || req.RequestID == "" {
		return nil
	}
	clip := func(xs []string) []string {
		var out []string
		for _, x := range xs {
			if len(out) < 32 && x != "" && len(x) <= 128 {
				out = append(out, x)
			}
		}
		return out
	}
	return &consentAsk{RequestID: truncate(req.RequestID, 128), Always: req.Consent, Scopes: clip(req.Scopes), Claims: clip(req.Claims)}
}

// What each scope and claim means to an officer. Scopes a client defines
// for itself are shown by name.
var (
	scopeMeanings = map[string]string{
		"openid":         "Confirm who you are (your account's identifier)",
		"profile":        "Your name and username",
		"email":          "Your email address",
		"offline_access": "Keep access while you are away, until you sign out everywhere or withdraw this permission",
	}
	claimMeanings = map[string]string{
		"name":               "Your full name",
		"given_name":         "Your given name",
		"family_name":        "Your family name",
		"preferred_username": "Your username",
		"updated_at":         "When your name was last changed",
		"email":              "Your email address",
		"email_verified":     "Whether your email address is verified",
		"lanyard_policies":   "Which versions of the policies you accepted",
	}
)

// permissions describes scopes and claims for the officer, without saying
// a thing twice.
func permissions(scopes, claims []string) []string {
	var out []string
	add := func(s string) {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	for _, s := range scopes {
		if m, ok := scopeMeanings[s]; ok {
			add(m)
		} else {
			add("Permission “" + s + "”")
		}
	}
	for _, c := range claims {
		if m, ok := claimMeanings[c]; ok {
			add(m)
		}
	}
	return out
}

type consentPage struct {
	page
	ClientName  string
	Username    string
	Permissions []string
	// Again: the client asks for more than the officer allowed it before.
	Again bool
	// Request names the request the page asks about (the form's hidden
	// "request" field), so that an answer on a page left open in another
	// tab is never taken for a newer request.
	Request string
}

// consentRef is what the page carries of the parked request's id: a digest,
// so the page shows nothing the request can be found by.
func consentRef(c *consentAsk) string {
	if c == nil {
		return ""
	}
	sum := sha256.Sum256([]byte("lanyard consent page\x00" + c.RequestID))
	return hex.EncodeToString(sum[:16])
}

func (h *Handler) consentPage(ctx context.Context, f *flow) (consentPage, error) {
	c := f.s.j.Consent
	p := consentPage{page: h.page(f, StepConsent, "Allow "+f.s.j.ClientName+"?"),
		ClientName: f.s.j.ClientName, Username: f.user.Username, Permissions: permissions(c.Scopes, c.Claims), Request: consentRef(c)}
	if _, err := h.store.ConsentOf(ctx, f.user.ID, f.s.j.ClientID); err == nil {
		p.Again = true
	} else if !errors.Is(err, store.ErrNotFound) {
		return p, fmt.Errorf("load consent: %w", err)
	}
	return p, nil
}

func (h *Handler) getConsent(w http.ResponseWriter, r *http.Request, f *flow) error {
	data, err := h.consentPage(r.Context(), f)
	if err != nil {
		return err
	}
	return h.show(w, http.StatusOK, "consent", data)
}

// postConsent records the answer, once: of racing posts one is taken and
// the others go on as if it were theirs.
func (h *Handler) postConsent(w http.ResponseWriter, r *http.Request, f *flow) error {
	s, u, c := f.s, f.user, f.s.j.Consent
	if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("request")), []byte(consentRef(c))) != 1 {
		// A page for another request: the current one, answered by nobody.
		data, err := h.consentPage(r.Context(), f)
		if err != nil {
			return err
		}
		data.fail("accept", msgConsentChanged)
		return h.show(w, http.StatusConflict, "consent", data)
	}
	decision := ""
	switch {
	case r.PostForm.Get("decline") != "":
		decision = store.ConsentDeclined
	case r.PostForm.Get("accept") == "yes":
		decision = store.ConsentGranted
	default:
		data, err := h.consentPage(r.Context(), f)
		if err != nil {
			return err
		}
		data.fail("accept", msgChooseConsent)
		return h.show(w, http.StatusUnprocessableEntity, "consent", data)
	}
	now := h.now().UTC()
	clientID := s.j.ClientID
	s.j.Consent = nil
	err := h.commit(r.Context(), s, func(ctx context.Context) error {
		if err := h.store.DecideAuthRequest(ctx, c.RequestID, u.ID, decision, now); err != nil {
			return err
		}
		ev := store.EventConsentDecline
		if decision == store.ConsentGranted {
			ev = store.EventConsentGrant
			if err := h.store.RememberConsent(ctx, store.Consent{UserID: u.ID, ClientID: clientID,
				Scopes: c.Scopes, Claims: c.Claims, GrantedAt: now}); err != nil {
				return err
			}
		} else if err := h.store.WithdrawConsent(ctx, u.ID, clientID, false); err != nil && !errors.Is(err, store.ErrNotFound) {
			// "No" to an application takes back what it was allowed before.
			return err
		}
		return h.audit(ctx, r, s, event{Name: ev, UserID: u.ID, Username: u.Username,
			Detail: map[string]any{"client_id": clientID, "scopes": c.Scopes, "claims": c.Claims}})
	})
	switch {
	case errors.Is(err, store.ErrConflict):
		// A racing post answered first; its answer stands.
		return redirect(w, r, PathNext)
	case errors.Is(err, store.ErrNotFound):
		// The parked request expired meanwhile: nothing to answer.
		s.j.ResumeURL = ""
		if err := h.save(r.Context(), s); err != nil {
			return err
		}
		return &pageError{Status: http.StatusGone, Message: msgConsentExpired, Cause: err}
	case err != nil:
		return err
	}
	return redirect(w, r, PathNext)
}

// The account page's list of what the officer allowed.

type consentView struct {
	ClientID, ClientName, Granted string
	Permissions                   []string
}

func (h *Handler) consentViews(ctx context.Context, f *flow) ([]consentView, error) {
	list, err := h.store.Consents(ctx, f.user.ID)
	if err != nil {
		return nil, err
	}
	var out []consentView
	for _, c := range list {
		v := consentView{ClientID: c.ClientID, ClientName: c.ClientID, Granted: displayTime(c.GrantedAt),
			Permissions: permissions(c.Scopes, c.Claims)}
		for _, cl := range f.set.cfg.Clients {
			if cl.ID == c.ClientID && cl.Name != "" {
				v.ClientName = cl.Name
			}
		}
		out = append(out, v)
	}
	return out, nil
}

// postAccountConsentWithdraw forgets what the officer allowed a relying
// party: it asks again next time (a client registered with consent:
// required) and its tokens stay as they are until they expire or the
// officer signs out.
func (h *Handler) postAccountConsentWithdraw(w http.ResponseWriter, r *http.Request, f *flow) error {
	ctx, s, u := r.Context(), f.s, f.user
	clientID := r.PostForm.Get("client_id")
	if clientID == "" || len(clientID) > 128 {
		return h.showAccount(w, r, f, http.StatusBadRequest, func(p *accountPage) { p.fail("", msgConsentGone) })
	}
	err := h.store.InTx(ctx, func(ctx context.Context) error {
		if err := h.store.WithdrawConsent(ctx, u.ID, clientID, true); err != nil {
			return err
		}
		return h.audit(ctx, r, s, event{Name: store.EventConsentWithdraw, UserID: u.ID, Username: u.Username,
			Detail: map[string]any{"client_id": clientID}})
	})
	if errors.Is(err, store.ErrNotFound) {
		return h.back(w, r, s, msgConsentGone)
	}
	if err != nil {
		return err
	}
	return h.back(w, r, s, "The application's permission was withdrawn. It will ask you again.")
}
