package flows

import (
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/lanyard-idp/lanyard/provider/store"
)

// TestFailureFloodIsAggregated: an anonymous party posting wrong passwords
// as fast as it can writes a few audit events a minute, then one event
// saying how many more came from its address; every failure still counts
// towards the throttles.
func TestFailureFloodIsAggregated(t *testing.T) {
	t.Parallel()
	e := newEnv(t, manyTries)
	e.h.failures = newFailureGate(failuresAudited) // as served
	e.seedUser(alice, alicePw, false)
	e.seedUser("bob@agency.example", alicePw, false)
	flood := func(n int, who string) {
		t.Helper()
		b, r := atPassword(t, e, who)
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				if res := b.frozen().submit(r, map[string]string{"password": "wrong-password-number"}); res.status != http.StatusUnprocessableEntity {
					t.Errorf("status %d", res.status)
				}
			})
		}
		wg.Wait()
	}
	aggregates := func() []store.AuditEvent {
		t.Helper()
		evs, err := e.st.Audit(t.Context(), store.AuditFilter{Event: string(store.EventSigninFailureAggregated)})
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}

	flood(25, alice)
	flood(15, "bob@agency.example")
	if got := e.countEvents(evSigninFailure); got != failuresAudited {
		t.Fatalf("%d failures audited one by one in a minute, want %d", got, failuresAudited)
	}
	if len(aggregates()) != 0 {
		t.Fatal("an aggregate was written before its minute was over")
	}
	if addr, _ := e.st.GetThrottle(t.Context(), "addr:127.0.0.1"); addr.Failures != 40 {
		t.Errorf("the address throttle counted %d failures, want 40", addr.Failures)
	}

	// The next failure after the minute writes the aggregate, and is
	// audited itself.
	e.clock.Advance(failureWindow)
	flood(1, alice)
	agg := aggregates()
	if len(agg) != 1 || e.countEvents(evSigninFailure) != failuresAudited+1 {
		t.Fatalf("%d aggregates, %d failures", len(agg), e.countEvents(evSigninFailure))
	}
	var d struct {
		Summary  string         `json:"summary"`
		Count    int            `json:"count"`
		Reasons  map[string]int `json:"reasons"`
		Accounts int            `json:"accounts"`
	}
	if err := json.Unmarshal(agg[0].Detail, &d); err != nil {
		t.Fatal(err)
	}
	if d.Count != 30 || d.Reasons[string(store.ReasonWrongPassword)] != 30 || d.Accounts != 2 ||
		d.Summary != "30 more failures from 127.0.0.1" || agg[0].ClientAddr != "127.0.0.1" {
		t.Errorf("aggregate = %s (addr %q)", agg[0].Detail, agg[0].ClientAddr)
	}

	// As the server stops, what is held back is written.
	flood(12, alice)
	e.h.FlushFailureAudit(t.Context(), true)
	if agg := aggregates(); len(agg) != 2 || e.countEvents(evSigninFailure) != 2*failuresAudited {
		t.Fatalf("after the flush: %d aggregates, %d failures", len(agg), e.countEvents(evSigninFailure))
	} else if err := json.Unmarshal(agg[1].Detail, &d); err != nil || d.Count != 3 {
		t.Errorf("second aggregate = %s", agg[1].Detail)
	}
}

// TestFailureGate: addresses are counted apart; beyond the tracked
// addresses they share one window, so many addresses cannot flood either.
func TestFailureGate(t *testing.T) {
	t.Parallel()
	g := newFailureGate(2)
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	k := func(addr string) throttleKeys { return throttleKeys{acct: "acct:a", addr: "addr:" + addr} }
	for i, want := range []bool{true, true, false, false} {
		if got, _ := g.admit(k("192.0.2.1"), "192.0.2.1", "wrong password", t0); got != want {
			t.Errorf("failure %d from one address: audited %v, want %v", i, got, want)
		}
	}
	if got, _ := g.admit(k("192.0.2.2"), "192.0.2.2", "wrong password", t0); !got {
		t.Error("another address's first failure held back")
	}
	_, done := g.admit(k("192.0.2.2"), "192.0.2.2", "wrong password", t0.Add(failureWindow))
	if len(done) != 1 || done[0].addr != "192.0.2.1" || done[0].suppressed != 2 {
		t.Fatalf("due aggregates: %+v", done)
	}

	g = newFailureGate(1)
	for i := range failureAddrs + 50 {
		g.admit(k(time.Duration(i).String()), "x", "r", t0)
	}
	if len(g.windows) != failureAddrs+1 {
		t.Errorf("%d windows tracked, want at most %d and the shared one", len(g.windows), failureAddrs)
	}
	if w := g.windows[sharedFailureKey]; w == nil || w.audited != 1 || w.suppressed != 49 || w.addr != "" {
		t.Errorf("shared window: %+v", w)
	}
}
