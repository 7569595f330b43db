package flows

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"

	"github.com/lanyard-idp/lanyard/provider/store"
	"github.com/lanyard-idp/lanyard/provider/store/seal"
)

// Session states (store.Session.State).
const (
	stateJourney       = "journey"
	stateAuthenticated = "authenticated"
)

// Seal purposes: a ciphertext made for one cannot be opened as another.
const (
	purposeTOTP          = "totp"
	purposeRecoveryCodes = "recovery-codes"
	purposeCookieKeys    = "cookie-keys"
	purposeVAPIDKey      = "vapid-key"
	purposePairingToken  = "pairing-token"
)

// Names of the deployment's secrets in the store's secrets table.
const (
	secretCookieKeys = "flows.cookie-keys"
	secretVAPIDKey   = "flows.vapid-key" // the approval app's Web Push key pair
)

// journey is the sign-in state kept server-side in store.Session.Data. The
// cookie carries nothing but the session's random id.
type journey struct {
	// The parked authorization request to resume when nothing is pending.
	ResumeURL  string `json:"resume_url,omitempty"`
	ClientID   string `json:"client_id,omitempty"`
	ClientName string `json:"client_name,omitempty"`
	// Hint pre-fills the username page (login_hint, or the user of a forced
	// re-authentication).
	Hint string `json:"hint,omitempty"`
	// Username is the canonical username typed on the identify page.
	Username string `json:"username,omitempty"`

	PasswordVerified bool      `json:"password_verified,omitempty"`
	PasswordAt       time.Time `json:"password_at,omitzero"`
	FactorVerified   bool      `json:"factor_verified,omitempty"`
	FactorMethod     string    `json:"factor_method,omitempty"` // otp | recovery-code | webauthn | approval
	FactorAt         time.Time `json:"factor_at,omitzero"`
	// Passwordless: a passkey with user verification stood for both the
	// password and the second factor (PasswordVerified is set too).
	Passwordless bool `json:"passwordless,omitempty"`
	// PasskeyAMR is what the passkey of this sign-in proved, per RFC 8176:
	// "hwk" or "swk", and "user" when the authenticator verified the user.
	PasskeyAMR []string `json:"passkey_amr,omitempty"`
	// Ceremony is the one WebAuthn ceremony in flight for this browser: its
	// challenge lives here, server-side, and is taken out on first use.
	Ceremony *ceremony `json:"ceremony,omitempty"`
	// Approval is the request to the approval app this browser waits for
	// (approve.go): a pairing, a sign-in or a confirm-it-is-you.
	Approval *approvalWait `json:"approval,omitempty"`
	// AccountNotice is a message for the next account page ("Passkey added").
	AccountNotice string `json:"account_notice,omitempty"`
	// FrontChannel are the front-channel logout addresses of the relying
	// parties of a session this browser just signed out of, for the
	// signed-out page to frame once (a fresh session carries them there).
	FrontChannel []string `json:"front_channel,omitempty"`
	// AdminNotice is a message for the next console page ("Approved").
	AdminNotice string `json:"admin_notice,omitempty"`
	// AdminReturn is the console page a change came from when it had to
	// confirm it is you first: the confirmation returns there.
	AdminReturn string `json:"admin_return,omitempty"`

	// PendingTOTP is the sealed secret shown during enrolment, kept until a
	// correct code confirms it (so a reload shows the same QR code).
	PendingTOTP []byte `json:"pending_totp,omitempty"`
	// RecoveryCodes are the sealed fresh codes, shown until the officer
	// confirms saving them, then dropped.
	RecoveryCodes []byte `json:"recovery_codes,omitempty"`
	// Notice is a message for the next page (e.g. few recovery codes left).
	Notice string `json:"notice,omitempty"`

	// Reset is the password-reset link opened in this browser (it stands
	// for the password until the new one is chosen): recovery_reset.go.
	Reset *resetClaim `json:"reset,omitempty"`
	// ReplaceFactor: the second factor of this sign-in is a recovery code
	// given after "Lost your phone?": mfa-enrol asks for a new factor.
	// LostCandidates are the factors the account had then, and LostFactors
	// those offered for removal once the new one is in place
	// (recovery_lost.go).
	ReplaceFactor  bool         `json:"replace_factor,omitempty"`
	LostCandidates []lostFactor `json:"lost_candidates,omitempty"`
	LostFactors    []lostFactor `json:"lost_factors,omitempty"`

	ForceLogin  bool      `json:"force_login,omitempty"`
	RequestedAt time.Time `json:"requested_at,omitzero"`
	// What the parked request asks besides a sign-in: the consent page
	// (nil when none is due) and a step-up (the weakest acr it asks for,
	// "" for none). Both belong to that request: a newer one replaces
	// them, and finishing drops them.
	Consent *consentAsk `json:"consent,omitempty"`
	StepUp  string      `json:"step_up,omitempty"`
	// Done lists the onboarding steps completed in this sign-in ("Step N of M").
	Done []string `json:"done,omitempty"`
}

// session is a browser's server-side session with its decoded journey.
type session struct {
	raw string // the random id from the cookie; never logged
	row *store.Session
	j   journey
	// ended is the officer whose session a sign-in of another officer on
	// this browser ends (newSignIn); commitRotated ends it.
	ended *endedSession
}

// endedSession is the previous officer's session that a new sign-in ends:
// its key and its user.
type endedSession struct{ sid, userID string }

// ref is the reference of the session's current id (the hex SHA-256 of
// it): what the store keys the row by and the account page names sessions
// by. It changes with every rotation; what must outlive one — the tokens
// issued in the session, the sid claim — is bound to s.row.SID, the
// session's stable key.
func (s *session) ref() string { return store.SessionRef(s.raw) }

func (s *session) markDone(step string) {
	if !slices.Contains(s.j.Done, step) {
		s.j.Done = append(s.j.Done, step)
	}
}

// The journey's transitions that several steps share.

// newSignIn starts the journey over for u, whose password (or a passkey
// standing for it) was verified at now: the parked request is kept, earlier
// progress is forgotten (it may have been another user's), and fresh
// recovery codes not yet shown are kept only for the same user.
func (s *session) newSignIn(u *store.User, now time.Time) {
	j := journey{
		ResumeURL: s.j.ResumeURL, ClientID: s.j.ClientID, ClientName: s.j.ClientName,
		RequestedAt: s.j.RequestedAt, ForceLogin: s.j.ForceLogin, Consent: s.j.Consent, StepUp: s.j.StepUp,
		Username: u.Username, PasswordVerified: true, PasswordAt: now,
	}
	if s.row.UserID == u.ID {
		j.RecoveryCodes = s.j.RecoveryCodes
	} else if s.row.UserID != "" {
		// Another officer's session ends here: what was issued in it must
		// not follow the new officer (commitRotated).
		s.ended = &endedSession{sid: s.row.SID, userID: s.row.UserID}
	}
	s.j = j
	s.row.UserID, s.row.State = u.ID, stateJourney
	s.row.AuthTime, s.row.AMR, s.row.ACR = now, nil, ""
}

// signInAgain sends a signed-in browser back to the username page, filled
// in, for a new proof of the password and the second factor (prompt=login,
// max_age): what was proved is forgotten; the parked request, the codes not
// yet shown and the notices stay.
func (s *session) signInAgain() {
	if s.j.Username != "" {
		s.j.Hint = s.j.Username
	}
	s.j.Username = ""
	s.j.PasswordVerified, s.j.PasswordAt = false, time.Time{}
	s.j.FactorVerified, s.j.FactorMethod, s.j.FactorAt = false, "", time.Time{}
	s.j.Passwordless, s.j.PasskeyAMR, s.j.Ceremony, s.j.Approval = false, nil, nil, nil
	s.j.PendingTOTP, s.j.Done = nil, nil
	// A reset or a replacement rests on the proofs just forgotten.
	s.j.Reset, s.j.ReplaceFactor, s.j.LostCandidates, s.j.LostFactors = nil, false, nil, nil
	s.j.ForceLogin = true
	s.row.State = stateJourney
}

// factorVerified records the second factor proved (or enrolled) in this
// sign-in at now: method is otp, recovery-code or webauthn, and amr what a
// passkey proved.
func (j *journey) factorVerified(method string, now time.Time, amr []string) {
	j.FactorVerified, j.FactorMethod, j.FactorAt = true, method, now
	j.PasskeyAMR = amr
}

// confirmed records a proof given again on the account page (confirming it
// is you): the second factor's, or the password's for an officer without
// one.
func (j *journey) confirmed(method string, now time.Time) {
	if method == "password" {
		j.PasswordAt = now
		return
	}
	j.FactorAt = now
}

// newSessionID returns 256 random bits, URL-safe.
func newSessionID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// cookieCodec signs and encrypts the session cookie (gorilla/sessions on
// securecookie). A cookie it cannot decode — tampered, truncated, made with
// another key — is simply no session.
type cookieCodec struct {
	name  string
	store *sessions.CookieStore
}

type cookieKeys struct {
	Hash  []byte `json:"hash"`
	Block []byte `json:"block"`
}

// loadCookieKeys returns the deployment's cookie keys, creating them on the
// very first start. The first writer wins, so nodes starting together agree.
func loadCookieKeys(ctx context.Context, st *store.Store, box *seal.Box) (cookieKeys, error) {
	fresh := cookieKeys{Hash: make([]byte, 64), Block: make([]byte, 32)}
	rand.Read(fresh.Hash)
	rand.Read(fresh.Block)
	plain, err := json.Marshal(fresh)
	if err != nil {
		return cookieKeys{}, err
	}
	stored, err := st.PutSecretIfAbsent(ctx, secretCookieKeys, box.Seal(plain, purposeCookieKeys))
	if err != nil {
		return cookieKeys{}, fmt.Errorf("load cookie keys: %w", err)
	}
	opened, err := box.Open(stored, purposeCookieKeys)
	if err != nil {
		return cookieKeys{}, fmt.Errorf("open cookie keys (is this the deployment's encryption key?): %w", err)
	}
	var k cookieKeys
	if err := json.Unmarshal(opened, &k); err != nil || len(k.Hash) < 32 || len(k.Block) != 32 {
		return cookieKeys{}, errors.New("stored cookie keys are malformed")
	}
	return k, nil
}

// newCookieCodec makes the codec of the cookie base ("lanyard"), named
// __Host-base outside dev.
func newCookieCodec(k cookieKeys, base string, dev bool, maxAge time.Duration) *cookieCodec {
	cs := sessions.NewCookieStore(k.Hash, k.Block)
	for _, c := range cs.Codecs {
		if sc, ok := c.(*securecookie.SecureCookie); ok {
			sc.SetSerializer(idSerializer{})
		}
	}
	cs.Options = &sessions.Options{
		Path:     "/",
		HttpOnly: true,
		Secure:   !dev,
		SameSite: http.SameSiteLaxMode,
	}
	// The cookie outlives neither the absolute timeout nor the server-side row.
	cs.MaxAge(int(maxAge / time.Second))
	name := "__Host-" + base
	if dev {
		// __Host- cookies must be Secure, which plain-http development cannot send.
		name = base
	}
	return &cookieCodec{name: name, store: cs}
}

const cookieValueKey = "sid"

// idSerializer writes a cookie's one value, its id, as idPrefix followed by
// the id, where securecookie's default writes gob: decoding gob builds a
// decoder for every cookie read, a tenth of a sign-in's CPU time besides
// the password hash. It still reads the gob cookies of earlier versions, so
// an upgrade signs nobody out. What it reads was authenticated and
// decrypted first, and gob never begins with idPrefix (a gob stream of a map
// begins with its type's definition).
type idSerializer struct{}

const idPrefix = "id1:"

func (idSerializer) Serialize(src any) ([]byte, error) {
	m, _ := src.(map[any]any)
	id, ok := m[cookieValueKey].(string)
	if !ok || len(m) != 1 {
		return nil, errors.New("cookie: want exactly one string value")
	}
	return append([]byte(idPrefix), id...), nil
}

func (idSerializer) Deserialize(src []byte, dst any) error {
	id, ok := bytes.CutPrefix(src, []byte(idPrefix))
	if !ok {
		return securecookie.GobEncoder{}.Deserialize(src, dst)
	}
	m, ok := dst.(*map[any]any)
	if !ok {
		return errors.New("cookie: cannot decode into this value")
	}
	if *m == nil {
		*m = map[any]any{}
	}
	(*m)[cookieValueKey] = string(id)
	return nil
}

// read returns the raw session id in the request's cookie, or "".
func (c *cookieCodec) read(r *http.Request) string {
	ck, err := r.Cookie(c.name)
	if err != nil || len(ck.Value) > 4096 {
		return ""
	}
	s, err := c.store.New(r, c.name)
	if err != nil || s.IsNew {
		return ""
	}
	id, _ := s.Values[cookieValueKey].(string)
	return id
}

func (c *cookieCodec) write(w http.ResponseWriter, r *http.Request, raw string) error {
	s := sessions.NewSession(c.store, c.name)
	opts := *c.store.Options
	s.Options = &opts
	s.Values[cookieValueKey] = raw
	return c.store.Save(r, w, s)
}

func (c *cookieCodec) clear(w http.ResponseWriter) {
	opts := *c.store.Options
	opts.MaxAge = -1
	http.SetCookie(w, sessions.NewCookie(c.name, "", &opts))
}

// load returns the browser's live session, or nil when it has none: no
// cookie, an undecodable one, an unknown id, or a session past its absolute,
// idle or (for a sign-in in progress) journey timeout — those are deleted.
// It records the activity.
func (h *Handler) load(r *http.Request) (*session, error) {
	raw := h.cookies.read(r)
	if raw == "" {
		return nil, nil
	}
	ctx := r.Context()
	now := h.now().UTC()
	row, err := h.store.SessionByID(ctx, raw, now)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load session: %w", err)
	}
	idle, journeyIdle, _ := h.timeouts()
	limit := idle
	if row.State != stateAuthenticated {
		limit = min(limit, journeyIdle)
	}
	s := &session{raw: raw, row: row}
	if now.Sub(row.LastSeenAt) > limit || !now.Before(row.ExpiresAt) && !row.ExpiresAt.IsZero() {
		h.dropSession(ctx, s, "expired")
		return nil, nil
	}
	if len(row.Data) > 0 {
		if err := json.Unmarshal(row.Data, &s.j); err != nil {
			h.log.Warn("unreadable session data; starting over", "err", err)
			h.dropSession(ctx, s, "corrupt")
			return nil, nil
		}
	}
	if now.Sub(row.LastSeenAt) < touchEvery(limit) {
		// Seen moments ago: the write would move the idle deadline by
		// less than its resolution, and cost a write transaction on every
		// page of a sign-in.
		return s, nil
	}
	if err := h.store.TouchSession(ctx, raw, now); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			// Rotated or deleted by a concurrent request: this id is dead.
			return nil, nil
		}
		return nil, fmt.Errorf("touch session: %w", err)
	}
	row.LastSeenAt = now
	return s, nil
}

// touchEvery is how stale a session's last-seen time may grow before a
// request records it again: a minute, or a thirtieth of the idle limit when
// that is shorter. A session therefore expires idle at most that much early.
func touchEvery(limit time.Duration) time.Duration {
	return min(time.Minute, limit/30)
}

// EndIdleSessions ends the sessions idle past their limit — a signed-in
// session's idle timeout, a sign-in in progress's journey timeout — and
// queues the logout of their relying parties (store.DeleteIdleSessions),
// so that back-channel logout follows idle expiry within one pass of the
// collector rather than at the absolute expiry. load refuses an idle
// session on sight all the same; this is for the relying parties. It
// returns how many sessions it ended.
func (h *Handler) EndIdleSessions(ctx context.Context) (int64, error) {
	idle, journeyIdle, _ := h.timeouts()
	now := h.now().UTC()
	return h.store.DeleteIdleSessions(ctx, stateAuthenticated, now.Add(-idle), now.Add(-min(idle, journeyIdle)), now)
}

func (h *Handler) dropSession(ctx context.Context, s *session, why string) {
	if err := h.store.DeleteSession(ctx, s.raw); err != nil && !errors.Is(err, store.ErrNotFound) {
		h.log.Warn("cannot delete session", "why", why, "err", err)
	}
}

// create starts a new server-side session for a browser that has none.
func (h *Handler) create(ctx context.Context, w http.ResponseWriter, r *http.Request) (*session, error) {
	s := h.newSession(r)
	if err := h.insert(ctx, w, r, s); err != nil {
		return nil, err
	}
	return s, nil
}

// newSession is a new browser session, not stored yet: insert stores it.
func (h *Handler) newSession(r *http.Request) *session {
	now := h.now().UTC()
	s := &session{raw: newSessionID()}
	s.row = &store.Session{
		ID:         s.raw,
		State:      stateJourney,
		UserAgent:  truncate(r.UserAgent(), 256),
		ClientAddr: clientAddr(r),
		CreatedAt:  now,
		LastSeenAt: now,
	}
	return s
}

// insert stores a newSession with its journey so far and gives the browser
// its cookie.
func (h *Handler) insert(ctx context.Context, w http.ResponseWriter, r *http.Request, s *session) error {
	s.row.ExpiresAt = h.expiry(s, s.row.CreatedAt)
	data, err := json.Marshal(s.j)
	if err != nil {
		return err
	}
	s.row.Data = data
	if err := h.store.CreateSession(ctx, s.row); err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	if err := h.cookies.write(w, r, s.raw); err != nil {
		return fmt.Errorf("write cookie: %w", err)
	}
	return nil
}

// timeouts returns the idle limit of a signed-in session, the idle limit of
// a sign-in in progress, and the absolute limit of any session.
func (h *Handler) timeouts() (idle, journeyIdle, absolute time.Duration) {
	cfg := h.settings().cfg
	return cfg.Session.IdleTimeout.D(), cfg.Journey.Timeout.D(), cfg.Session.AbsoluteTimeout.D()
}

// expiry is the session row's ExpiresAt: the absolute limit from its
// creation, but only the journey timeout from now while no password has
// been verified, so abandoned sign-ins (or a flood of them) are collected
// within the half-hour rather than kept for a day.
func (h *Handler) expiry(s *session, now time.Time) time.Time {
	_, journeyIdle, absolute := h.timeouts()
	end := s.row.CreatedAt.Add(absolute)
	if j := now.Add(journeyIdle); !s.j.PasswordVerified && j.Before(end) {
		end = j
	}
	return end
}

// save writes the session row and its journey (in ctx's transaction, if any).
func (h *Handler) save(ctx context.Context, s *session) error {
	data, err := json.Marshal(s.j)
	if err != nil {
		return err
	}
	now := h.now().UTC()
	s.row.ID = s.raw
	s.row.Data = data
	s.row.LastSeenAt = now
	s.row.ExpiresAt = h.expiry(s, now)
	if err := h.store.UpdateSession(ctx, s.row); err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	return nil
}

// commit runs fn and then saves the session, in one transaction: the
// step's effect and the journey's progress are stored together or not at all.
func (h *Handler) commit(ctx context.Context, s *session, fn func(ctx context.Context) error) error {
	return h.store.InTx(ctx, func(ctx context.Context) error {
		if fn != nil {
			if err := fn(ctx); err != nil {
				return err
			}
		}
		return h.save(ctx, s)
	})
}

// commitRotated is commit under a new session id (session fixation: a new id
// after the password and after the second factor). The rotation comes first,
// so of two racing requests on one session only one can commit: the other
// finds its id dead and its whole transaction rolls back. fn already sees
// the new id in s.raw (signing out the other sessions keeps this one). The
// cookie is written only after the commit.
func (h *Handler) commitRotated(w http.ResponseWriter, r *http.Request, s *session, fn func(ctx context.Context) error) error {
	old, fresh, oldSID := s.raw, newSessionID(), s.row.SID
	err := h.store.InTx(r.Context(), func(ctx context.Context) error {
		if err := h.store.RotateSession(ctx, old, fresh); err != nil {
			return fmt.Errorf("rotate session: %w", err)
		}
		s.raw = fresh
		if p := s.ended; p != nil {
			// The previous officer is signed out of this browser: her
			// tokens revoked, her relying parties told, and the session
			// gets a key of its own for the new officer.
			sid, err := h.store.RenewSessionKey(ctx, p.sid)
			if err != nil {
				return err
			}
			s.row.SID = sid
			if err := h.audit(ctx, r, s, event{Name: evLogout, UserID: p.userID,
				Detail: map[string]any{"reason": "another officer signed in"}}); err != nil {
				return err
			}
		}
		if fn != nil {
			if err := fn(ctx); err != nil {
				return err
			}
		}
		return h.save(ctx, s)
	})
	if err != nil {
		s.raw, s.row.ID, s.row.SID = old, old, oldSID
		return err
	}
	s.ended = nil
	return h.cookies.write(w, r, fresh)
}

// openRecoveryCodes returns the fresh codes waiting in the session.
func (h *Handler) openRecoveryCodes(s *session) ([]string, error) {
	if len(s.j.RecoveryCodes) == 0 {
		return nil, nil
	}
	plain, err := h.box.Open(s.j.RecoveryCodes, purposeRecoveryCodes)
	if err != nil {
		return nil, err
	}
	var codes []string
	if err := json.Unmarshal(plain, &codes); err != nil {
		return nil, err
	}
	return codes, nil
}
