package flows

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/lanyard-idp/lanyard/provider/store"
)

// Throttling of guesses. Every failed password, code and passkey ceremony
// is counted in the store (atomic, shared by every node) against the client
// address and against the account, and enough failures lock a key for a
// while; a locked attempt answers exactly like a wrong one, so a lock
// reveals nothing. Which account counter an attempt meets depends on the
// browser and on what was tried:
//
//   - A browser known to the account (it carries the account's device
//     cookie, device.go) meets only its own counter, "dev:<nonce>": failures
//     from elsewhere never lock the officer's own browser.
//   - From any other browser, a password meets "acct:<user id>" (or the
//     username typed, for an account that does not exist, which locks the
//     same way), and the address, "addr:<address>" (an IPv6 client's
//     throttle.ipv6_prefix network).
//   - From any other browser, a second factor — an authenticator or recovery
//     code, a passkey — meets "mfa:<user id>", whose failures a correct
//     password never resets, the daily cap "mfaday:<user id>", and the
//     address. When such failures after a correct password lock it, the
//     officer is emailed: their password is probably known to someone else.
//     A passkey cannot be guessed: no password lock ever refuses it, and a
//     passwordless attempt whose credential names no account is charged to
//     the address alone.
//
// The account's counters are cleared only when a whole sign-in succeeds
// (complete), never by a correct password alone; the daily cap is cleared
// by time or an administrator's unlock. Locks last throttle.lock_for,
// doubling with each further lock up to throttle.max_lock_for, and each
// quiet throttle.lock_decay since the last one forgives a doubling.

// guess is what an attempt tried.
type guess int

const (
	// guessPassword: a password (sign-in, the current password, confirming
	// it is you without a second factor) or a code confirming a new
	// authenticator app.
	guessPassword guess = iota
	// guessFactor: a second factor — an authenticator or recovery code, a
	// passkey or security key (the approval app belongs here too).
	guessFactor
)

// throttleKeys are the counters an attempt is checked against and charged
// to ("" where one does not apply).
type throttleKeys struct {
	kind guess
	user *store.User // nil: no account, or not known yet
	// device is the browser's own counter for the account when it is known
	// to it; acct and day do not apply then.
	device string
	acct   string // "acct:…" for passwords, "mfa:…" for second factors
	day    string // second factors: "mfaday:…"
	addr   string
	// held is the failure charged before the guess was checked (attempt);
	// nil when it was not.
	held *held
}

// held is an attempt's failure, charged to its account's counters (or the
// browser's own) before the guess is checked: failed keeps it, release
// gives it back.
type held struct {
	counts map[string]store.Throttle // by key
	done   bool
}

// charge is one counter an attempt is charged to.
type charge struct {
	key    string
	limit  int
	window time.Duration
	// refuses: the counter's limit refuses the attempt (a browser known to
	// the account is refused by its own counter alone).
	refuses bool
	day     bool // the daily cap of second factors, which locks nothing
}

// charges are the counters a failure of k is charged to: the account's (or
// the browser's own), the address, and for a second factor from a browser
// the account does not know, the daily cap — in that order.
func (h *Handler) charges(k throttleKeys) []charge {
	t := h.settings().cfg.Throttle
	var cs []charge
	switch {
	case k.device != "":
		cs = []charge{{key: k.device, limit: t.MaxAccountFailures, refuses: true}}
	case k.kind == guessPassword:
		cs = []charge{{key: k.acct, limit: t.MaxAccountFailures, refuses: true}}
	case k.acct != "":
		cs = []charge{{key: k.acct, limit: t.MaxSecondFactorFailures, refuses: true}}
	}
	cs = append(cs, charge{key: k.addr, limit: t.MaxAddressFailures, refuses: k.device == ""})
	if k.device == "" && k.day != "" {
		cs = append(cs, charge{key: k.day, limit: t.SecondFactorDailyCap, window: 24 * time.Hour, refuses: true, day: true})
	}
	for i := range cs {
		if cs[i].window == 0 {
			cs[i].window = t.Window.D()
		}
	}
	return cs
}

// attempt is locked, for a guess about to be checked: it charges the
// failure to the account's counters (or the browser's own) first, one
// atomic increment each, and refuses the attempt when a lock applies or a
// count went over its limit, so that of many racing guesses at one account
// at most the limit are checked at all. The caller defers release: a guess
// that turns out right, or is refused, gives the charge back, and failed
// keeps it for a wrong one. The address is charged only by failed, after
// the check, as before: charged up front, the sign-ins in flight of a whole
// office behind one address would count as its failures.
func (h *Handler) attempt(ctx context.Context, k *throttleKeys) (bool, error) {
	if l, err := h.locked(ctx, *k); err != nil || l {
		return l, err
	}
	now := h.now().UTC()
	counts := map[string]store.Throttle{}
	over := false
	// One transaction for the account's counters (a second factor's are
	// two): one commit, and all charged or none.
	err := h.store.InTx(ctx, func(ctx context.Context) error {
		for _, c := range h.charges(*k) {
			if c.key == k.addr {
				continue
			}
			th, err := h.store.RecordFailure(ctx, c.key, now, c.window)
			if err != nil {
				return err
			}
			counts[c.key] = th
			if c.refuses && (th.Failures > c.limit || th.LockedUntil.After(now)) {
				over = true
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("record failure: %w", err)
	}
	k.held = &held{counts: counts}
	if over {
		h.release(*k)
	}
	return over, nil
}

// release gives back the failure attempt charged, unless failed kept it or
// a committed transaction gave it back (commitGuessed). It runs when the request
// is over, so it ignores the request's cancellation.
func (h *Handler) release(k throttleKeys) {
	if k.held == nil || k.held.done {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.store.InTx(ctx, func(ctx context.Context) error { return h.giveBack(ctx, k) }); err != nil {
		h.log.Warn("cannot release a held failure", "keys", len(k.held.counts), "err", err)
	}
	k.held.done = true
}

// commitGuessed is commitRotated for a step that a correct guess completes:
// the charge attempt took for the guess is given back in the same
// transaction (one commit fewer than release), and only once it committed
// does the deferred release stand down.
func (h *Handler) commitGuessed(w http.ResponseWriter, r *http.Request, s *session, k throttleKeys, fn func(ctx context.Context) error) error {
	err := h.commitRotated(w, r, s, func(ctx context.Context) error {
		if err := fn(ctx); err != nil {
			return err
		}
		return h.giveBack(ctx, k)
	})
	if err == nil && k.held != nil {
		k.held.done = true
	}
	return err
}

// giveBack takes the charge of attempt back in ctx's transaction.
func (h *Handler) giveBack(ctx context.Context, k throttleKeys) error {
	if k.held == nil || k.held.done {
		return nil
	}
	// In key order: racing releases and charges of the same keys (attempt
	// charges them in that order too) cannot deadlock.
	for _, key := range slices.Sorted(maps.Keys(k.held.counts)) {
		th := k.held.counts[key]
		if err := h.store.ReleaseFailure(ctx, th.Key, th.WindowStart); err != nil {
			return err
		}
	}
	return nil
}

// Key prefixes.
const (
	keyAccount      = "acct:"
	keyFactor       = "mfa:"
	keyFactorPerDay = "mfaday:"
	keyDevice       = "dev:"
	keyAddress      = "addr:"
	// keyApprovals counts requests to the officer's phones (approvalAllowed),
	// not failures: "approvals:<user id>" for browsers the account does not
	// know, "approvals:dev:<nonce>" for one it knows.
	keyApprovals = "approvals:"
)

// passwordKeys are the counters of a password typed for the account
// username; u is that account, nil when there is none.
func (h *Handler) passwordKeys(r *http.Request, username string, u *store.User) throttleKeys {
	k := throttleKeys{kind: guessPassword, user: u, addr: h.addressKey(r), acct: keyAccount + username}
	if u != nil {
		k.acct = keyAccount + u.ID
		k.device = h.knownDevice(r, u.ID)
	}
	return k
}

// factorKeys are the counters of a second factor of u; u is nil for a
// passwordless attempt whose credential names no account, which only the
// address is charged with.
func (h *Handler) factorKeys(r *http.Request, u *store.User) throttleKeys {
	k := throttleKeys{kind: guessFactor, user: u, addr: h.addressKey(r)}
	if u != nil {
		k.acct, k.day = keyFactor+u.ID, keyFactorPerDay+u.ID
		k.device = h.knownDevice(r, u.ID)
	}
	return k
}

// addressKey counts an IPv4 client by its address and an IPv6 client by its
// throttle.ipv6_prefix network: one customer's /64 is one client, however
// many addresses it takes from it.
func (h *Handler) addressKey(r *http.Request) string {
	addr := clientAddr(r)
	ip, err := netip.ParseAddr(addr)
	if err != nil || !ip.Is6() || ip.Is4In6() {
		return keyAddress + addr
	}
	p, err := ip.WithZone("").Prefix(h.settings().cfg.Throttle.IPv6Prefix)
	if err != nil {
		return keyAddress + addr
	}
	return keyAddress + p.String()
}

// clientNet is the client as every per-address limit counts it: an IPv4
// address, or an IPv6 client's throttle.ipv6_prefix network.
func (h *Handler) clientNet(r *http.Request) string {
	return strings.TrimPrefix(h.addressKey(r), keyAddress)
}

// checked is the list of keys whose lock refuses the attempt.
func (k throttleKeys) checked() []string {
	if k.device != "" {
		return []string{k.device}
	}
	return nonEmpty(k.acct, k.addr)
}

func nonEmpty(keys ...string) []string {
	out := keys[:0:0]
	for _, key := range keys {
		if key != "" {
			out = append(out, key)
		}
	}
	return out
}

// lockedUntil returns when the latest lock that refuses the attempt ends,
// or the zero time when it may go ahead. A second factor from a browser the
// account does not know is also refused once the day's cap is reached.
func (h *Handler) lockedUntil(ctx context.Context, k throttleKeys) (time.Time, error) {
	now := h.now().UTC()
	var until time.Time
	for _, key := range k.checked() {
		t, err := h.store.GetThrottle(ctx, key)
		if err != nil {
			return time.Time{}, fmt.Errorf("read throttle: %w", err)
		}
		if t.LockedUntil.After(now) && t.LockedUntil.After(until) {
			until = t.LockedUntil
		}
	}
	if k.device == "" && k.day != "" {
		t, err := h.store.GetThrottle(ctx, k.day)
		if err != nil {
			return time.Time{}, fmt.Errorf("read throttle: %w", err)
		}
		if end := dayCapEnd(t, h.settings().cfg.Throttle.SecondFactorDailyCap, now); end.After(until) {
			until = end
		}
	}
	return until, nil
}

// dayCapEnd is when the daily cap of second-factor failures counted in t
// stops refusing, or the zero time when it does not refuse now.
func dayCapEnd(t store.Throttle, limit int, now time.Time) time.Time {
	if end := t.WindowStart.Add(24 * time.Hour); t.Failures >= limit && end.After(now) {
		return end
	}
	return time.Time{}
}

// locked refuses an attempt while a lock applies to it.
func (h *Handler) locked(ctx context.Context, k throttleKeys) (bool, error) {
	until, err := h.lockedUntil(ctx, k)
	return !until.IsZero(), err
}

// failed charges a failed attempt to its counters, locks those that reached
// their limit (telling the officer when the lock is on their account),
// audits the failure and then waits a little longer with each failure,
// which slows a guesser without hurting a typo.
func (h *Handler) failed(ctx context.Context, r *http.Request, s *session, k throttleKeys, e event) error {
	t := h.settings().cfg.Throttle
	now := h.now().UTC()
	charges := h.charges(k)
	if e.Detail == nil {
		e.Detail = map[string]any{}
	}
	e.Name = evSigninFailure
	// What attempt charged before the guess was checked is kept; the rest
	// is charged now.
	var heldCounts map[string]store.Throttle
	if k.held != nil && !k.held.done {
		k.held.done, heldCounts = true, k.held.counts
	}
	counts := make([]store.Throttle, len(charges))
	for i, c := range charges {
		if th, ok := heldCounts[c.key]; ok {
			counts[i] = th
			continue
		}
		th, err := h.store.RecordFailure(ctx, c.key, now, c.window)
		if err != nil {
			return fmt.Errorf("record failure: %w", err)
		}
		counts[i] = th
	}
	slowest := counts[0].Failures
	e.Detail["failures"] = slowest
	h.auditFailure(ctx, r, s, k, e)
	var guessedUntil time.Time
	for i, c := range charges {
		if c.day {
			if end := counts[i].WindowStart.Add(24 * time.Hour); counts[i].Failures == t.SecondFactorDailyCap && end.After(guessedUntil) {
				guessedUntil = end
			}
			continue
		}
		until, err := h.maybeLock(ctx, r, s, c.key, counts[i], c.limit, e)
		switch {
		case err != nil:
			return err
		case until.IsZero() || c.key != k.acct:
		case k.kind == guessPassword && k.user != nil:
			h.alert(r, k.user, alertLocked, until)
		case k.kind == guessFactor:
			guessedUntil = until
		}
	}
	if !guessedUntil.IsZero() {
		h.factorGuessed(ctx, r, s, k, guessedUntil)
	}
	if d := h.delay(slowest); d > 0 {
		h.sleep(ctx, d)
	}
	return nil
}

// maybeLock locks key when its failures reached the limit, and returns
// until when (zero when it did not lock).
func (h *Handler) maybeLock(ctx context.Context, r *http.Request, s *session, key string, t store.Throttle, limit int, e event) (time.Time, error) {
	now := h.now().UTC()
	// Racing failures may all see the limit reached; one lock is enough.
	if t.Failures < limit || t.LockedUntil.After(now) {
		return time.Time{}, nil
	}
	locks := h.earlierLocks(t, now) + 1
	until := now.Add(h.lockDuration(locks - 1))
	if err := h.store.Lock(ctx, key, until, locks); err != nil {
		return time.Time{}, fmt.Errorf("lock %s: %w", keyKind(key), err)
	}
	d := until.Sub(now)
	h.log.Warn("too many failures: locked", "key", keyKind(key), "for", d.String())
	h.auditLog(ctx, r, s, event{Name: evLock, UserID: e.UserID, Username: e.Username,
		Detail: map[string]any{"key": keyKind(key), "seconds": int(d / time.Second)}})
	return until, nil
}

// factorGuessed is second-factor failures piling up from browsers the
// account does not know, up to a lock or the daily cap. It is audited; after
// a correct password the officer is also told that their password is
// probably known to someone else (a passwordless attempt proved no
// password), and after an emailed reset link that someone may be reading
// their email.
func (h *Handler) factorGuessed(ctx context.Context, r *http.Request, s *session, k throttleKeys, until time.Time) {
	mine := s != nil && s.row.UserID == k.user.ID
	afterPassword := mine && s.j.PasswordVerified && !s.j.Passwordless
	// After an emailed reset link instead: someone can read the mailbox.
	afterLink := mine && s.j.Reset != nil
	h.auditLog(ctx, r, s, event{Name: evFactorGuessing, UserID: k.user.ID, Username: k.user.Username,
		Detail: map[string]any{"after_password": afterPassword, "after_reset_link": afterLink, "until": until.UTC().Format(time.RFC3339)}})
	switch {
	case afterPassword:
		h.alert(r, k.user, alertFactorGuessed, until)
	case afterLink:
		h.alert(r, k.user, alertResetGuessed, until)
	}
}

// earlierLocks is how many earlier locks of the key still count: each quiet
// throttle.lock_decay since the last lock ended forgives one.
func (h *Handler) earlierLocks(t store.Throttle, now time.Time) int {
	n := t.Locks
	if n > 0 && !t.LockedUntil.IsZero() {
		if quiet := now.Sub(t.LockedUntil); quiet > 0 {
			n -= int(quiet / h.settings().cfg.Throttle.LockDecay.D())
		}
	}
	return max(n, 0)
}

// lockDuration doubles throttle.lock_for with every earlier lock, up to
// throttle.max_lock_for.
func (h *Handler) lockDuration(earlierLocks int) time.Duration {
	t := h.settings().cfg.Throttle
	return lockDuration(t.LockFor.D(), t.MaxLockFor.D(), earlierLocks)
}

func lockDuration(base, most time.Duration, earlierLocks int) time.Duration {
	d := base
	for i := 0; i < earlierLocks && d < most; i++ {
		d *= 2
	}
	return min(d, most)
}

// keyKind is what a log line may say about a throttle key: its kind, not the
// address or account.
func keyKind(key string) string {
	for _, p := range []string{keyAccount, keyFactorPerDay, keyFactor, keyDevice, keyAddress} {
		if len(key) >= len(p) && key[:len(p)] == p {
			return p[:len(p)-1]
		}
	}
	return "other"
}

// complete is a whole sign-in of u succeeding in this browser, in ctx's
// transaction: the failures it was counted against are forgotten — its own
// when it is known to the account, else the account's counters for unknown
// browsers (the daily cap of second factors stays). authenticated calls it.
func (h *Handler) complete(ctx context.Context, r *http.Request, u *store.User) error {
	keys := []string{keyAccount + u.ID, keyAccount + u.Username, keyFactor + u.ID}
	if dev := h.knownDevice(r, u.ID); dev != "" {
		keys = []string{dev}
	}
	return h.store.ResetThrottle(ctx, keys...)
}

// accountKeys are every key an account's failures may be charged to but a
// browser's own: its user id, its username from before the account existed,
// and its second-factor counters.
func accountKeys(u *store.User) []string {
	return []string{keyAccount + u.ID, keyAccount + u.Username, keyFactor + u.ID, keyFactorPerDay + u.ID}
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
