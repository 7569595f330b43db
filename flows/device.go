package flows

import (
	"crypto/rand"
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"github.com/lanyard-idp/lanyard/provider/store"
)

// Device cookies (OWASP, "Slow Down Online Guessing Attacks with Device
// Cookies"). A browser that completes a sign-in to an account receives a
// signed and encrypted cookie naming the account and a random nonce; from
// then on it is known to the account. The lock that wrong passwords and
// codes from unknown browsers put on an account does not apply to a known
// browser: it is counted and locked on its own key ("dev:<nonce>"), so
// someone who has only the username can lock out every browser but the
// officer's own. The cookie proves nothing else — the password and the
// second factor are asked as always — and stealing it helps only against
// that lock.

// deviceCookieMaxAge bounds the cookie itself; each account's entry in it
// expires with throttle.device_cookie_for (a reload may change that).
const deviceCookieMaxAge = 400 * 24 * time.Hour

// maxKnownAccounts is how many accounts one browser is remembered for, the
// most recently used first.
const maxKnownAccounts = 5

// deviceEntry is one account a browser is known to.
type deviceEntry struct {
	UserID string `json:"u"`
	Nonce  string `json:"n"`
	Until  int64  `json:"e"` // unix seconds
}

// devices reads the browser's device cookie: the accounts it is still
// known to. A missing, tampered or undecodable cookie is no account.
func (h *Handler) devices(r *http.Request) []deviceEntry {
	raw := h.deviceCookies.read(r)
	if raw == "" {
		return nil
	}
	var all []deviceEntry
	if err := json.Unmarshal([]byte(raw), &all); err != nil {
		return nil
	}
	now := h.now().Unix()
	return slices.DeleteFunc(all, func(d deviceEntry) bool { return d.Until <= now || d.UserID == "" || d.Nonce == "" })
}

// knownDevice is the throttle key of the browser's device cookie for the
// account userID, or "" when the browser is not known to it.
func (h *Handler) knownDevice(r *http.Request, userID string) string {
	for _, d := range h.devices(r) {
		if d.UserID == userID {
			return "dev:" + d.Nonce
		}
	}
	return ""
}

// remember makes the browser known to u after a completed sign-in; a
// cookie it cannot write costs the browser its own counter, not the
// sign-in.
func (h *Handler) remember(w http.ResponseWriter, r *http.Request, u *store.User) {
	if err := h.rememberDevice(w, r, u.ID); err != nil {
		h.log.Warn("cannot write the device cookie", "err", err)
	}
}

// rememberDevice makes (or keeps) the browser known to the account userID
// for throttle.device_cookie_for from now, after a completed sign-in. The
// nonce stays what it was, so the browser keeps its own counter.
func (h *Handler) rememberDevice(w http.ResponseWriter, r *http.Request, userID string) error {
	all := h.devices(r)
	entry := deviceEntry{UserID: userID}
	if i := slices.IndexFunc(all, func(d deviceEntry) bool { return d.UserID == userID }); i >= 0 {
		entry = all[i]
		all = slices.Delete(all, i, i+1)
	} else {
		entry.Nonce = rand.Text()
	}
	entry.Until = h.now().Add(h.settings().cfg.Throttle.DeviceCookieFor.D()).Unix()
	all = append([]deviceEntry{entry}, all...)
	if len(all) > maxKnownAccounts {
		all = all[:maxKnownAccounts]
	}
	b, err := json.Marshal(all)
	if err != nil {
		return err
	}
	return h.deviceCookies.write(w, r, string(b))
}
