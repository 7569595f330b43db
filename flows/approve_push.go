package flows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/lanyard-idp/lanyard/flows/approval"
	"github.com/lanyard-idp/lanyard/provider/store"
	"github.com/lanyard-idp/lanyard/provider/store/seal"
)

// Web Push wake-ups for the approval app. The VAPID key pair is made on the
// very first start and stored sealed in the store, like the cookie keys:
// the first writer wins, so nodes starting together agree, and a restart
// keeps every phone's subscription working. A push names the request and
// the application; the phone fetches the rest from Lanyard. A push service
// that answers 404 or 410 has forgotten the subscription, and so does
// Lanyard (the device stays paired: with the app open it still sees
// requests).

// pushTimeout bounds one push.
const pushTimeout = 15 * time.Second

// loadVAPID returns the deployment's VAPID key pair, creating it on the
// very first start.
func loadVAPID(ctx context.Context, st *store.Store, box *seal.Box) (approval.VAPID, error) {
	fresh, err := approval.NewVAPID()
	if err != nil {
		return approval.VAPID{}, err
	}
	plain, err := json.Marshal(fresh)
	if err != nil {
		return approval.VAPID{}, err
	}
	stored, err := st.PutSecretIfAbsent(ctx, secretVAPIDKey, box.Seal(plain, purposeVAPIDKey))
	if err != nil {
		return approval.VAPID{}, fmt.Errorf("load VAPID key: %w", err)
	}
	opened, err := box.Open(stored, purposeVAPIDKey)
	if err != nil {
		return approval.VAPID{}, fmt.Errorf("open VAPID key (is this the deployment's encryption key?): %w", err)
	}
	var v approval.VAPID
	if err := json.Unmarshal(opened, &v); err != nil {
		return approval.VAPID{}, fmt.Errorf("stored VAPID key is malformed: %w", err)
	}
	if err := v.Check(); err != nil {
		return approval.VAPID{}, fmt.Errorf("stored VAPID key: %w", err)
	}
	return v, nil
}

// pushContact is the VAPID "sub": the configured contact, else an address
// at the issuer's host.
func (h *Handler) pushContact() string {
	set := h.settings()
	if c := set.cfg.Approval.PushContact; c != "" {
		return c
	}
	return "lanyard@" + set.issuer.Hostname()
}

// checkPush checks a subscription the app sent: an allowed push service
// (plain http too in development).
func (h *Handler) checkPush(p *approval.Subscription) (store.PushSubscription, bool) {
	if p == nil || p.Endpoint == "" {
		return store.PushSubscription{}, false
	}
	cfg := h.settings().cfg
	if err := approval.CheckSubscription(*p, cfg.Approval.PushHosts, cfg.Dev); err != nil {
		h.log.Info("push subscription refused", "reason", err)
		return store.PushSubscription{}, false
	}
	return store.PushSubscription{Endpoint: p.Endpoint, P256dh: strings.TrimRight(p.P256dh, "="), Auth: strings.TrimRight(p.Auth, "=")}, true
}

// wake pushes req to every device of u with a subscription, in the
// background (Wait waits for them): the request is already stored, and a
// slow push service must not hold the signing-in page.
func (h *Handler) wake(r *http.Request, u *store.User, devices []store.ApprovalDevice, req *store.ApprovalRequest) {
	ttl := req.ExpiresAt.Sub(req.CreatedAt)
	payload := approval.Payload{V: 1, Type: "request", Request: req.ID, Application: req.Application}
	pusher := &approval.Pusher{VAPID: h.vapid, Contact: h.pushContact(), Client: h.pushClient}
	addr, agent := clientAddr(r), r.UserAgent()
	for _, d := range devices {
		if d.Push.Endpoint == "" {
			continue
		}
		sub := approval.Subscription{Endpoint: d.Push.Endpoint, P256dh: d.Push.P256dh, Auth: d.Push.Auth}
		h.pushWG.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), pushTimeout)
			defer cancel()
			err := pusher.Send(ctx, sub, payload, ttl)
			switch {
			case errors.Is(err, approval.ErrGone):
				if err := h.store.ForgetApprovalPush(ctx, d.ID, sub.Endpoint); err != nil {
					h.log.Warn("cannot forget a gone push subscription", "err", err)
					return
				}
				// The request is long answered: an audit line of its own,
				// with the signing-in browser's address.
				bg, _ := http.NewRequestWithContext(ctx, http.MethodPost, "/", nil)
				bg.RemoteAddr, bg.Header = addr, http.Header{"User-Agent": {agent}}
				h.auditLog(ctx, bg, nil, event{Name: evApprovalGone, UserID: u.ID, Username: u.Username,
					Detail: map[string]any{"device": d.ID, "name": d.Name}})
			case err != nil:
				h.log.Warn("push to an approval device failed", "user", u.ID, "device", d.ID, "err", err)
			}
		})
	}
}
