package main

// Prometheus metrics, on their own registry. Request latency is measured
// where requests pass (the access-log middleware). Everything about officers
// and tokens — sign-ins, tokens issued, the onboarding funnel, locks, the
// admin commands' mail failures — is derived from the audit trail, which
// every one of those actions already writes: a reader tails it (before each
// scrape and every few seconds), so no package has to know about metrics, and
// only committed events are counted. On PostgreSQL every node tails the same
// trail, so those counters are deployment-wide on each node: aggregate them
// with max(), not sum(); request latency, pool stats and the server's own
// mail failures are per node.
//
// No label carries user-typed text: routes are the mux's patterns, client
// ids are checked against the configured clients, every other label comes
// from a fixed list. Served on the public listener (metrics.listen: ""),
// the sign-in outcomes do not tell "unknown user" from "wrong password":
// anyone could otherwise try a username and read the answer off /metrics.

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/flows"
	"github.com/lanyard-idp/lanyard/flows/mail"
	"github.com/lanyard-idp/lanyard/flows/password"
	"github.com/lanyard-idp/lanyard/provider/store"
)

// Label values of the metrics fed by the audit trail, keyed by the audit
// vocabulary (provider/store's events.go).
var (
	// signinOutcomes maps the reason of a signin.failure to its label.
	signinOutcomes = map[store.Reason]string{
		store.ReasonWrongPassword:      "wrong_password",
		store.ReasonUnknownUser:        "unknown_user",
		store.ReasonLocked:             "locked",
		store.ReasonDisabled:           "disabled",
		store.ReasonInvitationExpired:  "invitation_expired",
		store.ReasonWrongCode:          "wrong_code",
		store.ReasonWrongEnrolmentCode: "wrong_code",
		store.ReasonMalformedCode:      "wrong_code",
		store.ReasonCodeUsed:           "wrong_code",
	}
	// lockKinds maps the key kind of a lock event to its label: the
	// account's lock for browsers it does not know (passwords, second
	// factors), a known browser's own, a client address's.
	lockKinds = map[string]string{"acct": "account", "mfa": "second_factor", "dev": "device", "addr": "address"}
	// journeySteps maps the audit event of a completed step to the step.
	journeySteps = map[store.Event]string{
		store.EventSigninPassword: "password",
		store.EventSigninPasskey:  "passkey",
		store.EventMFAChallenge:   "mfa-challenge",
		store.EventRecoveryUse:    "mfa-challenge",
		store.EventMFAEnrol:       "mfa-enrol",
		store.EventPasswordChange: "change-password",
	}
	// mailFailures maps the audit event of an email that could not be sent
	// to the message it was. The server's own notices have no event: they
	// are counted as they fail (countMail).
	mailFailures = map[store.Event]string{
		store.EventInviteMailFailed:   "invitation",
		store.EventResetMailFailed:    "password_reset",
		store.EventRecoveryMailFailed: "recovery",
		store.EventRequestMailFailed:  "request",
	}
)

const (
	// tailBatch is how many audit events one read takes.
	tailBatch = 2000
	// maxTrackedJourneys bounds the memory of the funnel: sign-ins beyond it
	// are counted as steps but not followed to their end.
	maxTrackedJourneys = 50000
)

type metrics struct {
	reg        *prometheus.Registry
	requests   *prometheus.HistogramVec
	tokens     *prometheus.CounterVec
	signins    *prometheus.CounterVec
	steps      *prometheus.CounterVec
	abandoned  *prometheus.CounterVec
	locks      *prometheus.CounterVec
	mail       *prometheus.CounterVec
	reloads    *prometheus.CounterVec
	reloadedAt prometheus.Gauge
	logouts    *prometheus.CounterVec
	outbox     prometheus.GaugeFunc

	st  *store.Store
	cfg func() *config.Config
	// public: /metrics is on the main listener, where anyone can read it.
	public bool
	now    func() time.Time
	log    *slog.Logger

	mu       sync.Mutex
	lastID   int64
	journeys map[string]journeyMark // user id → the last step of a sign-in in progress
}

type journeyMark struct {
	step string
	at   time.Time
}

// newMetrics registers every family and starts tailing the audit trail at
// its current end: counters count from the start of this process, as
// Prometheus expects.
func newMetrics(ctx context.Context, st *store.Store, cfg func() *config.Config, now func() time.Time, log *slog.Logger) (*metrics, error) {
	last, err := st.LastAuditID(ctx)
	if err != nil {
		return nil, err
	}
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lanyard_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route pattern and status code.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "code"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lanyard_tokens_issued_total",
			Help: "Tokens issued by the token endpoint, by grant type and client id.",
		}, []string{"grant", "client"}),
		signins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lanyard_signins_total",
			Help: "Sign-in attempts by outcome: success, or the reason of the failure.",
		}, []string{"outcome"}),
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lanyard_journey_steps_completed_total",
			Help: "Journey steps completed, by step (the onboarding funnel).",
		}, []string{"step"}),
		abandoned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lanyard_journey_abandoned_total",
			Help: "Sign-ins left unfinished longer than journey.timeout, by the last step completed.",
		}, []string{"last_step"}),
		locks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lanyard_locks_total",
			Help: "Temporary locks after too many failures: of an account (for browsers it does not know), of its second factor, of a known browser, of a client address.",
		}, []string{"kind"}),
		mail: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lanyard_mail_failures_total",
			Help: "Emails that could not be sent (SMTP or outbox failures), by message.",
		}, []string{"message"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lanyard_config_reloads_total",
			Help: "Configuration reloads (SIGHUP) by result.",
		}, []string{"result"}),
		reloadedAt: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lanyard_config_last_reload_success_timestamp_seconds",
			Help: "When the configuration was last loaded successfully (start or SIGHUP).",
		}),
		logouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lanyard_backchannel_logouts_total",
			Help: "Back-channel logout token deliveries by result (delivered, failed and retried later, gave_up) and client id.",
		}, []string{"result", "client"}),
		outbox: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "lanyard_backchannel_logout_outbox",
			Help: "Back-channel logout tokens waiting in the outbox (deployment-wide).",
		}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			n, err := st.PendingLogouts(ctx)
			if err != nil {
				return -1
			}
			return float64(n)
		}),
		st: st, cfg: cfg, now: now, log: log, public: cfg().Metrics.Listen == "",
		lastID: last, journeys: map[string]journeyMark{},
	}
	m.reg.MustRegister(m.requests, m.tokens, m.signins, m.steps, m.abandoned, m.locks, m.mail, m.reloads, m.reloadedAt,
		m.logouts, m.outbox,
		collectors.NewDBStatsCollector(st.DB(), "lanyard"),
		// The argon2id pool (flows/password): a sign-in burst shows here
		// first, as waiting hashes and then as busy answers (503).
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "lanyard_password_hashes_running",
			Help: "Password hashes (argon2id) being computed now; at most lanyard_password_hash_workers.",
		}, func() float64 { return float64(password.Stats().Running) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "lanyard_password_hashes_waiting",
			Help: "Password hashes waiting for a worker.",
		}, func() float64 { return float64(password.Stats().Waiting) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "lanyard_password_hash_workers",
			Help: "How many password hashes may run at once (one per core).",
		}, func() float64 { return float64(password.Stats().Workers) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "lanyard_password_hash_busy_total",
			Help: "Password checks refused because the hashing pool was full (answered 503 with Retry-After).",
		}, func() float64 { return float64(password.Stats().Rejected) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// Every family shows from the first scrape, zeros included, so that a
	// dashboard or an alert does not depend on the first event.
	for _, o := range []string{"success", "wrong_password", "unknown_user", "locked", "disabled", "invitation_expired", "wrong_code", "other"} {
		m.signins.WithLabelValues(m.outcome(o))
	}
	for _, s := range flows.FunnelLabels(cfg()) {
		m.steps.WithLabelValues(s)
		m.abandoned.WithLabelValues(s)
	}
	for _, k := range lockKinds {
		m.locks.WithLabelValues(k)
	}
	for _, msg := range []string{"invitation", "password_reset", "request", "recovery", "notification", "other"} {
		m.mail.WithLabelValues(msg)
	}
	for _, r := range []string{"success", "failure"} {
		m.reloads.WithLabelValues(r)
	}
	m.clientsChanged(cfg())
	m.reloadedAt.Set(float64(now().Unix()))
	return m, nil
}

// clientsChanged creates the token and logout counters of the configured clients.
func (m *metrics) clientsChanged(cfg *config.Config) {
	for _, c := range cfg.Clients {
		if c.BackchannelLogoutURI != "" {
			for _, r := range store.LogoutResults {
				m.logouts.WithLabelValues(string(r), c.ID)
			}
		}
		for _, g := range c.GrantTypes {
			if slices.Contains(config.GrantTypes, g) {
				m.tokens.WithLabelValues(g, c.ID)
			}
		}
	}
}

// countMail wraps the server's own mailer (the journey's security notices)
// to count its failures: no audit event records them, so nothing is counted
// twice.
func (m *metrics) countMail(next mail.Mailer) mail.Mailer {
	return countingMailer{Mailer: next, failures: m.mail.WithLabelValues("notification")}
}

type countingMailer struct {
	mail.Mailer
	failures prometheus.Counter
}

func (c countingMailer) Send(ctx context.Context, msg mail.Message) error {
	err := c.Mailer.Send(ctx, msg)
	if err != nil {
		c.failures.Inc()
	}
	return err
}

// reloaded records the result of a configuration reload.
func (m *metrics) reloaded(ok bool, cfg *config.Config) {
	if !ok {
		m.reloads.WithLabelValues("failure").Inc()
		return
	}
	m.reloads.WithLabelValues("success").Inc()
	m.reloadedAt.Set(float64(m.now().Unix()))
	m.clientsChanged(cfg)
}

// outcome is the label of a sign-in outcome: on the public listener an
// unknown user reads like a wrong password.
func (m *metrics) outcome(o string) string {
	if m.public && o == "unknown_user" {
		return "wrong_password"
	}
	return o
}

// observeRequest records one request's latency.
func (m *metrics) observeRequest(route string, code int, d time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Observe(d.Seconds())
}

// handler serves the registry after catching up with the audit trail, so a
// scrape sees every event committed before it.
func (m *metrics) handler() http.Handler {
	h := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(m.log.Handler(), slog.LevelWarn)})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		m.catchUp(ctx)
		cancel()
		w.Header().Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

// run keeps the tail current between scrapes, so that abandoned journeys are
// noticed and no backlog builds up when nobody scrapes.
func (m *metrics) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.catchUp(ctx)
		}
	}
}

// catchUp reads the audit events written since the last call. Ids grow in
// commit order (appends are serialized), so reading after the last id seen
// never skips an event.
func (m *metrics) catchUp(ctx context.Context) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for {
		evs, err := m.st.Audit(ctx, store.AuditFilter{AfterID: m.lastID, Limit: tailBatch})
		if err != nil {
			if ctx.Err() == nil {
				m.log.Warn("metrics: cannot read the audit trail", "err", err)
			}
			break
		}
		for i := range evs {
			m.observe(&evs[i])
			m.lastID = evs[i].ID
		}
		if len(evs) < tailBatch {
			break
		}
	}
	m.sweep()
}

// clientLabel is a configured client's id, or "other": a label never
// carries an id the configuration does not know.
func (m *metrics) clientLabel(id string) string {
	if _, ok := m.cfg().Client(id); ok {
		return id
	}
	return "other"
}

func (m *metrics) observe(ev *store.AuditEvent) {
	var detail map[string]any
	if len(ev.Detail) > 0 {
		_ = json.Unmarshal(ev.Detail, &detail) // a detail that is not an object just has no fields
	}
	str := func(k string) string { s, _ := detail[k].(string); return s }
	switch ev.Event {
	case store.EventTokenIssue:
		grant := str("grant")
		if !slices.Contains(config.GrantTypes, grant) {
			grant = "other"
		}
		m.tokens.WithLabelValues(grant, m.clientLabel(ev.ClientID)).Inc()
		return
	case store.EventSigninSuccess:
		m.signins.WithLabelValues("success").Inc()
		delete(m.journeys, ev.UserID)
		return
	case store.EventSigninFailure:
		o, ok := signinOutcomes[store.Reason(str("reason"))]
		if !ok {
			o = "other"
		}
		m.signins.WithLabelValues(m.outcome(o)).Inc()
		return
	case store.EventSigninFailureAggregated:
		// The failures beyond the few audited one by one, counted by reason.
		var agg struct {
			Reasons map[store.Reason]float64 `json:"reasons"`
		}
		_ = json.Unmarshal(ev.Detail, &agg)
		for reason, n := range agg.Reasons {
			if slices.Contains(store.ResetLinkReasons, reason) {
				continue // refused reset links, not sign-ins
			}
			o, ok := signinOutcomes[reason]
			if !ok {
				o = "other"
			}
			if n > 0 {
				m.signins.WithLabelValues(o).Add(n)
			}
		}
		return
	case store.EventLogoutBackchannel:
		result := store.LogoutResult(str("result"))
		if !slices.Contains(store.LogoutResults, result) {
			result = "other"
		}
		m.logouts.WithLabelValues(string(result), m.clientLabel(ev.ClientID)).Inc()
		return
	case store.EventLock:
		kind, ok := lockKinds[str("key")]
		if !ok {
			kind = "account"
		}
		m.locks.WithLabelValues(kind).Inc()
		return
	case store.EventPolicyAccept:
		// Only a configured document's id becomes a label.
		if d, ok := m.cfg().Document(str("document")); ok {
			m.step(ev, d.ID)
		}
		return
	}
	if step, ok := journeySteps[ev.Event]; ok {
		m.step(ev, step)
		return
	}
	if msg, ok := mailFailures[ev.Event]; ok {
		m.mail.WithLabelValues(msg).Inc()
	}
}

// step counts a completed step and moves the officer's sign-in along. A
// sign-in is followed from its first factor (a password or a passkey); steps
// taken outside one (a passkey added on the account page) are counted only.
func (m *metrics) step(ev *store.AuditEvent, step string) {
	m.steps.WithLabelValues(step).Inc()
	if ev.UserID == "" {
		return
	}
	_, tracked := m.journeys[ev.UserID]
	if (step == "password" || step == "passkey") && !tracked && len(m.journeys) < maxTrackedJourneys {
		tracked = true
	}
	if tracked {
		m.journeys[ev.UserID] = journeyMark{step: step, at: ev.At}
	}
}

// sweep counts the sign-ins idle longer than the journey timeout as
// abandoned at their last step: the journey has expired for them.
func (m *metrics) sweep() {
	timeout := m.cfg().Journey.Timeout.D()
	now := m.now()
	for id, j := range m.journeys {
		if now.Sub(j.at) > timeout {
			m.abandoned.WithLabelValues(j.step).Inc()
			delete(m.journeys, id)
		}
	}
}
