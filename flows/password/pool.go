package password

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// ErrBusy is returned by Hash, Verify and VerifyDummy when the hashing pool
// cannot take the computation: its queue is full, or the computation waited
// longer than Limits.Wait for a worker. Nothing was checked; the caller answers
// "try again shortly" (the journey: 503 with Retry-After, see RetryAfter) and
// must not count it as a failed attempt.
var ErrBusy = errors.New("password: too many password checks at once, try again shortly")

// Limits bound the argon2id computations of the process. Each holds 19 MiB
// and a core for tens of milliseconds: more running at once than there are
// cores adds no throughput, only memory, so a burst of sign-ins waits in a
// queue instead of exhausting the heap, and beyond the queue it is refused.
type Limits struct {
	// Workers is how many computations run at once (default GOMAXPROCS).
	Workers int
	// Queue is how many more may wait for a worker (default 32 per worker).
	Queue int
	// Wait is how long one may wait before ErrBusy (default 10s). With the
	// queue's bound a wait is short while the cores are free (32 hashes of
	// ~40 ms per worker: about 1.3 s); it runs long only when the machine
	// itself is starved, and an officer had rather wait than be refused.
	Wait time.Duration
}

// DefaultLimits are the limits in force unless SetLimits changes them.
func DefaultLimits() Limits {
	w := runtime.GOMAXPROCS(0)
	return Limits{Workers: w, Queue: 32 * w, Wait: 10 * time.Second}
}

type pool struct {
	lim   Limits
	slots chan struct{} // one per running computation
	admit chan struct{} // one per running or waiting computation

	rejected atomic.Uint64
	avgNanos atomic.Int64 // moving average of one computation, for RetryAfter
}

var (
	poolMu  sync.RWMutex
	current *pool
)

func init() { SetLimits(DefaultLimits()) }

// SetLimits replaces the pool's limits (zero fields take the defaults).
// Computations already admitted finish under the old ones.
func SetLimits(l Limits) {
	d := DefaultLimits()
	if l.Workers <= 0 {
		l.Workers = d.Workers
	}
	if l.Queue < 0 {
		l.Queue = 0
	} else if l.Queue == 0 {
		l.Queue = 32 * l.Workers
	}
	if l.Wait <= 0 {
		l.Wait = d.Wait
	}
	p := &pool{lim: l, slots: make(chan struct{}, l.Workers), admit: make(chan struct{}, l.Workers+l.Queue)}
	p.avgNanos.Store(int64(50 * time.Millisecond))
	poolMu.Lock()
	current = p
	poolMu.Unlock()
}

// CurrentLimits are the limits in force.
func CurrentLimits() Limits { return thePool().lim }

func thePool() *pool {
	poolMu.RLock()
	defer poolMu.RUnlock()
	return current
}

// run runs fn on a worker, or returns ErrBusy.
func (p *pool) run(fn func()) error {
	select {
	case p.admit <- struct{}{}:
	default:
		p.rejected.Add(1)
		return ErrBusy
	}
	defer func() { <-p.admit }()
	select {
	case p.slots <- struct{}{}:
	default:
		t := time.NewTimer(p.lim.Wait)
		select {
		case p.slots <- struct{}{}:
			t.Stop()
		case <-t.C:
			p.rejected.Add(1)
			return ErrBusy
		}
	}
	defer func() { <-p.slots }()
	start := time.Now()
	fn()
	d := int64(time.Since(start))
	// An exponential moving average (1/8): enough to size Retry-After.
	old := p.avgNanos.Load()
	p.avgNanos.Store(old + (d-old)/8)
	return nil
}

// RetryAfter is how long a refused caller should wait before trying again:
// the time the workers need to clear the computations admitted now, at least
// a second and at most thirty.
func RetryAfter() time.Duration {
	p := thePool()
	backlog := time.Duration(len(p.admit)) * time.Duration(p.avgNanos.Load()) / time.Duration(p.lim.Workers)
	return min(max(backlog, time.Second), 30*time.Second).Round(time.Second)
}

// PoolStats is the state of the hashing pool, for metrics.
type PoolStats struct {
	Workers, Running, Waiting int
	// Rejected counts computations refused with ErrBusy since the start.
	Rejected uint64
}

// Stats reports the hashing pool's state.
func Stats() PoolStats {
	p := thePool()
	running := len(p.slots)
	return PoolStats{
		Workers: p.lim.Workers, Running: running, Waiting: max(0, len(p.admit)-running),
		Rejected: p.rejected.Load(),
	}
}
