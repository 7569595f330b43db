package flows

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lanyard-idp/lanyard/flows/password"
)

// TestPasswordPoolBusy: when the argon2id pool cannot take a sign-in, the
// officer gets a 503 page with Retry-After, and nothing happened — no failure
// counted, no step passed — so the same password works once the burst is
// over. Not parallel: it narrows the process-wide pool to one worker and no
// queue.
func TestPasswordPoolBusy(t *testing.T) {
	e := newEnv(t, withoutMFA)
	const n = 20
	type officer struct {
		b    *browser
		r    *resp
		name string
	}
	officers := make([]officer, n)
	for i := range officers {
		name := fmt.Sprintf("officer%02d@agency.example", i)
		e.seedReady(name, alicePw)
		b, r := atPassword(t, e, name)
		officers[i] = officer{b, r, name}
	}

	before := password.CurrentLimits()
	password.SetLimits(password.Limits{Workers: 1, Queue: -1, Wait: time.Millisecond})
	t.Cleanup(func() { password.SetLimits(before) })
	answers := make([]*resp, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range officers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			answers[i] = officers[i].b.submit(officers[i].r, map[string]string{"password": alicePw})
		}()
	}
	close(start)
	wg.Wait()
	password.SetLimits(before)

	busy := 0
	for i, a := range answers {
		switch a.status {
		case http.StatusSeeOther:
		case http.StatusServiceUnavailable:
			busy++
			ra, err := strconv.Atoi(a.header.Get("Retry-After"))
			if err != nil || ra < 1 || ra > 30 {
				t.Errorf("officer %d: 503 with Retry-After %q, want 1..30 seconds", i, a.header.Get("Retry-After"))
			}
			if a.doc == nil || a.form() != nil || text(a.doc) == "" {
				t.Errorf("officer %d: the 503 is not the error page: %s", i, a.body)
			}
		default:
			t.Fatalf("officer %d: status %d, want 303 or 503: %s", i, a.status, text(a.doc))
		}
	}
	if busy == 0 {
		t.Fatalf("%d sign-ins at once on one worker without a queue: none was refused", n)
	}
	if got := e.countEvents(evSigninFailure); got != 0 {
		t.Fatalf("%d signin.failure events: a busy pool must not count as a wrong password", got)
	}
	if got := e.countEvents(evSigninPassword); got != n-busy {
		t.Fatalf("%d signin.password events, want %d (one per officer let through)", got, n-busy)
	}
	// The refused officers are still at the password step, nothing counted
	// against them, and the same password now works.
	for i, a := range answers {
		if a.status != http.StatusServiceUnavailable {
			continue
		}
		o := officers[i]
		u, err := e.st.UserByUsername(t.Context(), o.name)
		if err != nil {
			t.Fatal(err)
		}
		if th, _ := e.st.GetThrottle(t.Context(), "acct:"+u.ID); th.Failures != 0 {
			t.Fatalf("officer %d: %d failures counted for a busy answer", i, th.Failures)
		}
		r := o.b.open(PathNext)
		mustStep(t, r, StepPassword)
		o.b.done(o.b.follow(o.b.submit(r, map[string]string{"password": alicePw})))
	}
}
