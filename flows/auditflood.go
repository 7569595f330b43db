package flows

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/lanyard-idp/lanyard/provider/store"
)

// Anonymous failures must not flood the audit trail: anyone can post wrong
// passwords, junk codes and junk passkey answers as fast as the server
// answers, and every one would be a row. So the failures of one client
// address are audited one by one only up to failuresAudited per
// failureWindow; beyond that they are counted, and when the window is over
// one signin.failure.aggregated event says how many more there were, from
// which address, for how many accounts and why ("N more failures from
// ADDR"). Nothing else changes: the throttles count every failure, and the
// metrics add the aggregated counts.
//
// The counts live in this node's memory (each node aggregates what it
// served); an aggregate still waiting when the process stops is written by
// FlushFailureAudit.

const (
	// failuresAudited is how many failures of one address per window are
	// audited one by one.
	failuresAudited = 10
	failureWindow   = time.Minute
	// failureAddrs bounds the addresses tracked at once; beyond it, new
	// addresses share one window, so a flood from many addresses is bounded
	// too.
	failureAddrs = 10_000
	// failureAccounts bounds the distinct accounts an aggregate counts.
	failureAccounts = 1_000
	// sharedFailureKey is the window addresses share beyond failureAddrs.
	sharedFailureKey = "addr:*"
)

// failureGate decides, per address, which failures are audited one by one.
type failureGate struct {
	limit int // failures audited one by one per address and window

	mu      sync.Mutex
	windows map[string]*failureWindowState
	swept   time.Time // when admit last looked for windows that are over
}

type failureWindowState struct {
	addr       string // as audit events show it ("" for the shared window)
	start      time.Time
	audited    int
	suppressed int
	reasons    map[string]int
	accounts   map[string]struct{}
}

func newFailureGate(limit int) *failureGate {
	return &failureGate{limit: limit, windows: map[string]*failureWindowState{}}
}

// admit reports whether this failure (charged to k, from addr, for reason)
// is audited one by one. It also returns the aggregates of windows that
// are over, for the caller to write.
func (g *failureGate) admit(k throttleKeys, addr, reason string, now time.Time) (bool, []*failureWindowState) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var done []*failureWindowState
	if now.Sub(g.swept) >= time.Second { // not on every failure of a flood
		done, g.swept = g.expired(now), now
	}
	key := k.addr
	w, ok := g.windows[key]
	if ok && now.Sub(w.start) >= failureWindow { // over, not swept yet
		delete(g.windows, key)
		if w.suppressed > 0 {
			done = append(done, w)
		}
		ok = false
	}
	if !ok && len(g.windows) >= failureAddrs {
		key, addr = sharedFailureKey, ""
		w, ok = g.windows[key]
	}
	if !ok {
		w = &failureWindowState{addr: addr, start: now}
		g.windows[key] = w
	}
	if w.audited < g.limit {
		w.audited++
		return true, done
	}
	w.suppressed++
	if w.reasons == nil {
		w.reasons, w.accounts = map[string]int{}, map[string]struct{}{}
	}
	w.reasons[reason]++
	if k.acct != "" && len(w.accounts) < failureAccounts {
		w.accounts[k.acct] = struct{}{}
	}
	return false, done
}

// expired removes the windows that are over and returns those that held
// back failures. Called with g.mu held.
func (g *failureGate) expired(now time.Time) []*failureWindowState {
	var done []*failureWindowState
	for key, w := range g.windows {
		if now.Sub(w.start) < failureWindow {
			continue
		}
		delete(g.windows, key)
		if w.suppressed > 0 {
			done = append(done, w)
		}
	}
	return done
}

// flush removes every window that is over (all of them with force) and
// returns those that held back failures.
func (g *failureGate) flush(now time.Time, force bool) []*failureWindowState {
	if force {
		now = now.Add(failureWindow)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.expired(now)
}

// auditFailure audits a failure charged to k, or counts it towards its
// address's aggregate (see failureGate), and writes the aggregates that are
// due.
func (h *Handler) auditFailure(ctx context.Context, r *http.Request, s *session, k throttleKeys, e event) {
	reason := ""
	if v, ok := e.Detail["reason"]; ok {
		reason = fmt.Sprint(v)
	}
	one, done := h.failures.admit(k, clientAddr(r), reason, h.now().UTC())
	if one {
		h.auditLog(ctx, r, s, e)
	}
	h.writeAggregates(ctx, done)
}

// FlushFailureAudit writes the aggregated failures whose window is over
// (all of them with force, as the server stops). The server calls it from
// its housekeeping.
func (h *Handler) FlushFailureAudit(ctx context.Context, force bool) {
	h.writeAggregates(ctx, h.failures.flush(h.now().UTC(), force))
}

func (h *Handler) writeAggregates(ctx context.Context, done []*failureWindowState) {
	for _, w := range done {
		from := w.addr
		if from == "" {
			from = "addresses beyond the tracked ones"
		}
		detail, _ := json.Marshal(map[string]any{
			"summary":  fmt.Sprintf("%d more failures from %s", w.suppressed, from),
			"count":    w.suppressed,
			"reasons":  w.reasons,
			"accounts": len(w.accounts),
			"from":     w.start.Format(time.RFC3339),
			"until":    w.start.Add(failureWindow).Format(time.RFC3339),
		})
		ev := &store.AuditEvent{At: h.now().UTC(), Event: store.EventSigninFailureAggregated, ClientAddr: w.addr, Detail: detail}
		if err := h.store.AppendAudit(ctx, ev); err != nil {
			h.log.Error("cannot write audit event", "event", ev.Event, "err", err)
		}
	}
}
