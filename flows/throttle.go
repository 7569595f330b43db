package flows

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/lanyard-idp/lanyard/provider/store"
)

// Throttling of guesses: every wrong password, enrolment code, TOTP code and
// recovery code counts against the account and against the client address,
// in the store (atomic and shared by every node). Enough failures lock the
// key for a while — longer with each lock, never for good — and a locked
// account answers exactly like a wrong password, so a lock reveals nothing.

// maxLockFor caps the growing lock time: nobody is locked out for good.
const maxLockFor = 24 * time.Hour

// throttleKeys are the two counters an attempt is charged to.
type throttleKeys struct{ acct, addr string }

// keysFor names the counters. account is the user id when the user exists,
// else the canonical username typed, so unknown accounts lock the same way.
func keysFor(r *http.Request, account string) throttleKeys {
	return throttleKeys{acct: "acct:" + account, addr: "addr:" + clientAddr(r)}
}

// accountKeys are every key keysFor may have charged an account's failures
// to: its user id, and its username from before the account existed.
func accountKeys(u *store.User) []string {
	return []string{"acct:" + u.ID, "acct:" + u.Username}
}

// lockedUntil returns when the later of the two locks ends, or the zero time
// when neither key is locked now.
func (h *Handler) lockedUntil(ctx context.Context, k throttleKeys) (time.Time, error) {
	now := h.now().UTC()
	var until time.Time
	for _, key := range []string{k.acct, k.addr} {
		t, err := h.store.GetThrottle(ctx, key)
		if err != nil {
			return time.Time{}, fmt.Errorf("read throttle: %w", err)
		}
		if t.LockedUntil.After(now) && t.LockedUntil.After(until) {
			until = t.LockedUntil
		}
	}
	return until, nil
}

// failed charges a failed attempt to both counters, locks a counter that
// reached its limit, audits the failure and then waits a little longer with
// each failure, which slows a guesser without hurting a typo.
func (h *Handler) failed(ctx context.Context, r *http.Request, s *session, k throttleKeys, e event) error {
	set := h.settings()
	now := h.now().UTC()
	window := set.cfg.Throttle.Window.D()
	acct, err := h.store.RecordFailure(ctx, k.acct, now, window)
	if err != nil {
		return fmt.Errorf("record failure: %w", err)
	}
	addr, err := h.store.RecordFailure(ctx, k.addr, now, window)
	if err != nil {
		return fmt.Errorf("record failure: %w", err)
	}
	if e.Detail == nil {
		e.Detail = map[string]any{}
	}
	e.Name = evSigninFailure
	e.Detail["failures"] = acct.Failures
	h.auditFailure(ctx, r, s, k, e)
	if err := h.maybeLock(ctx, r, s, k.acct, acct, set.cfg.Throttle.MaxAccountFailures, e); err != nil {
		return err
	}
	if err := h.maybeLock(ctx, r, s, k.addr, addr, set.cfg.Throttle.MaxAddressFailures, e); err != nil {
		return err
	}
	if d := h.delay(acct.Failures); d > 0 {
		h.sleep(ctx, d)
	}
	return nil
}

func (h *Handler) maybeLock(ctx context.Context, r *http.Request, s *session, key string, t store.Throttle, limit int, e event) error {
	now := h.now().UTC()
	// Racing failures may all see the limit reached; one lock is enough.
	if t.Failures < limit || t.LockedUntil.After(now) {
		return nil
	}
	d := lockDuration(h.settings().cfg.Throttle.LockFor.D(), t.Locks)
	if err := h.store.Lock(ctx, key, now.Add(d)); err != nil {
		return fmt.Errorf("lock %s: %w", key[:4], err)
	}
	h.log.Warn("too many failures: locked", "key", keyKind(key), "for", d.String())
	h.auditLog(ctx, r, s, event{Name: evLock, UserID: e.UserID, Username: e.Username,
		Detail: map[string]any{"key": keyKind(key), "seconds": int(d / time.Second)}})
	return nil
}

// keyKind is what a log line may say about a throttle key: its kind, not the
// address or account.
func keyKind(key string) string {
	if len(key) >= 4 {
		return key[:4]
	}
	return key
}

// lockDuration doubles the base lock time with every earlier lock.
func lockDuration(base time.Duration, earlierLocks int) time.Duration {
	d := base
	for i := 0; i < earlierLocks && d < maxLockFor; i++ {
		d *= 2
	}
	return min(d, maxLockFor)
}

// succeeded forgets the account's failures after a correct answer.
func (h *Handler) succeeded(ctx context.Context, k throttleKeys) {
	if err := h.store.ResetThrottle(ctx, k.acct); err != nil {
		h.log.Warn("cannot reset throttle", "err", err)
	}
}

// defaultDelay is min(2^(n-3) s, 5 s) from the fourth failure on.
func defaultDelay(failures int) time.Duration {
	if failures < 4 {
		return 0
	}
	if failures > 6 {
		return 5 * time.Second
	}
	return min(time.Duration(1<<(failures-3))*time.Second, 5*time.Second)
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
