package password

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// withLimits installs l for one test and restores the defaults after it.
func withLimits(t *testing.T, l Limits) *pool {
	t.Helper()
	before := CurrentLimits()
	SetLimits(l)
	t.Cleanup(func() { SetLimits(before) })
	return thePool()
}

// hold occupies n admissions of the pool until release is closed, and
// returns once all n are admitted (running or waiting).
func hold(t *testing.T, p *pool, n int, release chan struct{}) *sync.WaitGroup {
	t.Helper()
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.run(func() { <-release })
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(p.admit) < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d computations admitted", len(p.admit), n)
		}
		time.Sleep(time.Millisecond)
	}
	return &wg
}

func TestPoolRunsNoMoreThanWorkers(t *testing.T) {
	p := withLimits(t, Limits{Workers: 3, Queue: 100, Wait: 10 * time.Second})
	var running, peak atomic.Int32
	var wg sync.WaitGroup
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := p.run(func() {
				n := running.Add(1)
				for {
					m := peak.Load()
					if n <= m || peak.CompareAndSwap(m, n) {
						break
					}
				}
				time.Sleep(2 * time.Millisecond)
				running.Add(-1)
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := peak.Load(); got != 3 {
		t.Fatalf("peak concurrency %d, want exactly the 3 workers", got)
	}
}

func TestPoolFullQueueRefusesAtOnce(t *testing.T) {
	p := withLimits(t, Limits{Workers: 2, Queue: 3, Wait: time.Minute})
	release := make(chan struct{})
	wg := hold(t, p, 5, release) // 2 running, 3 waiting
	if s := Stats(); s.Running != 2 || s.Waiting != 3 || s.Workers != 2 {
		t.Fatalf("Stats = %+v, want 2 running, 3 waiting", s)
	}
	before := Stats().Rejected
	start := time.Now()
	_, err := Verify(mustHashUnpooled(t, "correct horse battery"), "correct horse battery")
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("Verify with a full queue: %v, want ErrBusy", err)
	}
	if time.Since(start) > time.Second {
		t.Fatalf("a full queue made the caller wait %v", time.Since(start))
	}
	if _, err := Hash("correct horse battery"); !errors.Is(err, ErrBusy) {
		t.Fatalf("Hash with a full queue: %v, want ErrBusy", err)
	}
	if err := VerifyDummy("whatever it is"); !errors.Is(err, ErrBusy) {
		t.Fatalf("VerifyDummy with a full queue: %v, want ErrBusy", err)
	}
	if got := Stats().Rejected - before; got != 3 {
		t.Fatalf("Rejected grew by %d, want 3", got)
	}
	if ra := RetryAfter(); ra < time.Second || ra > 30*time.Second {
		t.Fatalf("RetryAfter = %v, want 1s..30s", ra)
	}
	close(release)
	wg.Wait()
	// Once the burst is over the pool answers again.
	h := mustHash(t, "correct horse battery")
	if !mustVerify(t, h, "correct horse battery") {
		t.Fatal("verify after the burst failed")
	}
}

func TestPoolWaitTimesOut(t *testing.T) {
	p := withLimits(t, Limits{Workers: 1, Queue: 10, Wait: 50 * time.Millisecond})
	release := make(chan struct{})
	wg := hold(t, p, 1, release)
	start := time.Now()
	err := VerifyDummy("a password to check")
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("VerifyDummy behind a stuck worker: %v, want ErrBusy", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > 5*time.Second {
		t.Fatalf("gave up after %v, want about the 50ms wait", d)
	}
	close(release)
	wg.Wait()
	if err := VerifyDummy("a password to check"); err != nil {
		t.Fatalf("after the worker is free: %v", err)
	}
}

// mustHashUnpooled is a current hash made outside the pool (the test's pool
// may be full when it needs one).
func mustHashUnpooled(t *testing.T, pw string) string {
	t.Helper()
	salt := make([]byte, saltLen)
	return encode(currentParams, salt, argonKey(pw, salt, currentParams, keyLen))
}
