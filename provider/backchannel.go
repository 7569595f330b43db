package provider

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/ory/fosite/token/jwt"

	"github.com/lanyard-idp/lanyard/provider/store"
)

// Back-channel logout (OpenID Connect Back-Channel Logout 1.0). The store
// queues a delivery for every relying party of a session when the session
// ends, however it ends (see store.RecordSessionClient). Every node runs
// RunLogoutDelivery: it claims due deliveries (each goes to one node), posts
// a signed logout token to the client's backchannel_logout_uri, and settles
// the delivery: done, retried later with backoff, or given up after
// maxLogoutAttempts. Each outcome is an audit event (and so a metric). No
// page ever waits for a delivery.

// backchannelEvent is the event type of a logout token (§2.4).
const backchannelEvent = "http://schemas.openid.net/event/backchannel-logout"

const (
	logoutTokenLifespan = 2 * time.Minute
	// logoutTimeout bounds one POST; the lease is well beyond it, so a
	// delivery in progress is never claimed by another node.
	logoutTimeout     = 10 * time.Second
	logoutLease       = time.Minute
	logoutPoll        = time.Second
	logoutBatch       = 16
	logoutParallel    = 8
	maxLogoutAttempts = 8
	maxLogoutBackoff  = 15 * time.Minute
)

// logoutBackoff is the wait after the n-th failed attempt: 10 s, doubling, at
// most 15 minutes (the eighth attempt comes about 21 minutes after the first).
func logoutBackoff(n int) time.Duration {
	d := 10 * time.Second
	for i := 1; i < n && d < maxLogoutBackoff; i++ {
		d *= 2
	}
	return min(d, maxLogoutBackoff)
}

// newLogoutClient posts logout tokens: bounded in time, and never following
// a redirect (the token goes to the registered URI and nowhere else).
func newLogoutClient() *http.Client {
	return &http.Client{
		Timeout:       logoutTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// RunLogoutDelivery delivers queued logout tokens until ctx is done.
func (p *Provider) RunLogoutDelivery(ctx context.Context) {
	t := time.NewTicker(logoutPoll)
	defer t.Stop()
	for {
		for p.deliverLogouts(ctx) == logoutBatch && ctx.Err() == nil {
			// a full batch: more may be due at once
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-p.logoutNudge:
		}
	}
}

// nudgeLogouts wakes this node's delivery loop (after a sign-out here).
func (p *Provider) nudgeLogouts() {
	select {
	case p.logoutNudge <- struct{}{}:
	default:
	}
}

// deliverLogouts claims one batch and delivers it; it returns the batch size.
func (p *Provider) deliverLogouts(ctx context.Context) int {
	ds, err := p.store.ClaimLogouts(ctx, p.now(), logoutLease, logoutBatch)
	if err != nil {
		if ctx.Err() == nil && !errors.Is(err, store.ErrSerialization) {
			p.log.Warn("back-channel logout: cannot claim deliveries", "err", err)
		}
		return 0
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, logoutParallel)
	for _, d := range ds {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			p.deliverLogout(ctx, d)
		})
	}
	wg.Wait()
	return len(ds)
}

// deliverLogout makes one attempt and settles the delivery.
func (p *Provider) deliverLogout(ctx context.Context, d store.LogoutDelivery) {
	// The outcome is recorded even when the node is shutting down.
	settle := context.WithoutCancel(ctx)
	c, ok := p.clients.get(d.ClientID)
	if !ok || c.backchannelURI == "" {
		// The client has no back-channel (or is gone): nothing to send.
		if err := p.store.FinishLogout(settle, d.ID, d.Claim); err != nil && !errors.Is(err, store.ErrNotFound) {
			p.log.Warn("back-channel logout: cannot drop a delivery", "client", d.ClientID, "err", err)
		}
		return
	}
	status, err := p.postLogoutToken(ctx, c, d)
	detail := map[string]any{"attempt": d.Attempts, "reason": d.Reason}
	if status != 0 {
		detail["status"] = status
	}
	switch {
	case err == nil:
		detail["result"] = store.LogoutDelivered
		err = p.store.FinishLogout(settle, d.ID, d.Claim)
	case d.Attempts >= maxLogoutAttempts:
		detail["result"], detail["error"] = store.LogoutGaveUp, err.Error()
		p.log.Warn("back-channel logout: giving up", "client", c.id, "attempts", d.Attempts, "err", err)
		err = p.store.FinishLogout(settle, d.ID, d.Claim)
	default:
		next := p.now().Add(logoutBackoff(d.Attempts))
		detail["result"], detail["error"], detail["retry_at"] = store.LogoutFailed, err.Error(), next.Format(time.RFC3339)
		p.log.Info("back-channel logout failed; will retry", "client", c.id, "attempt", d.Attempts, "err", err)
		err = p.store.RetryLogout(settle, d.ID, d.Claim, next, err.Error())
	}
	if err != nil {
		// The lease ran out and another node has the delivery now; or the
		// database is away and the lease will bring it back.
		p.log.Warn("back-channel logout: cannot settle a delivery", "client", c.id, "err", err)
		return
	}
	raw, _ := json.Marshal(detail)
	p.audit(settle, &store.AuditEvent{Event: store.EventLogoutBackchannel, UserID: d.Subject, ClientID: c.id, Detail: raw})
}

// postLogoutToken sends the logout token (§2.5): a form POST with
// logout_token; any 2xx is success (§2.8).
func (p *Provider) postLogoutToken(ctx context.Context, c *client, d store.LogoutDelivery) (int, error) {
	tok, err := p.logoutToken(ctx, c, d)
	if err != nil {
		return 0, fmt.Errorf("sign logout token: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, logoutTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.backchannelURI,
		strings.NewReader(url.Values{"logout_token": {tok}}.Encode()))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := p.logoutClient.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is in the config; the log needs the cause
		}
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("the relying party answered %d", resp.StatusCode)
	}
	return resp.StatusCode, nil
}

// logoutToken is the signed logout token of a delivery (§2.4): typ
// logout+jwt, the back-channel logout event, sub and sid, never a nonce.
// Each attempt gets its own jti and a short life.
func (p *Provider) logoutToken(ctx context.Context, c *client, d store.LogoutDelivery) (string, error) {
	now := p.now()
	claims := jwt.MapClaims{
		"iss":    p.issuer,
		"aud":    c.id,
		"iat":    now.Unix(),
		"exp":    now.Add(logoutTokenLifespan).Unix(),
		"jti":    rand.Text(),
		"sub":    d.Subject,
		"events": map[string]any{backchannelEvent: map[string]any{}},
	}
	if d.SID != "" {
		claims["sid"] = d.SID
	}
	tok, _, err := p.signer.Generate(ctx, claims, &jwt.Headers{Extra: map[string]any{"typ": "logout+jwt"}})
	return tok, err
}
