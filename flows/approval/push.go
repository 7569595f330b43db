package approval

import (
	"context"
	"crypto/ecdh"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	webpush "github.com/SherClockHolmes/webpush-go"
)

// Web Push: a wake-up for the app when a request waits. The browser's push
// service (Google's, Mozilla's, Apple's, Microsoft's) delivers it; the
// payload is encrypted to the subscription's keys (RFC 8291) and the
// request to the push service is signed with Lanyard's VAPID key
// (RFC 8292). The payload names the request and the application, never a
// number, a challenge or anything else that answers it: the app fetches the
// details from Lanyard and the officer types the number.

// Subscription is a PushSubscription as the app sends it: the push
// service's endpoint and the keys of RFC 8291 (base64url).
type Subscription struct {
	Endpoint string `json:"endpoint"`
	P256dh   string `json:"p256dh"`
	Auth     string `json:"auth"`
}

// Errors of CheckSubscription.
var (
	ErrEndpoint     = errors.New("approval: the push endpoint is not an allowed https URL")
	ErrPushKeys     = errors.New("approval: the push subscription's keys are malformed")
	maxEndpointSize = 2048
)

// CheckSubscription refuses a subscription whose endpoint is not an https
// URL on one of hosts (config's approval.push_hosts: so that Lanyard never
// posts to an address an app chose, an internal service say) (plain http too when insecure, for development and
// tests), or whose keys are not a P-256 point and a 16-byte secret.
func CheckSubscription(s Subscription, hosts []string, insecure bool) error {
	if len(s.Endpoint) > maxEndpointSize {
		return ErrEndpoint
	}
	u, err := url.Parse(s.Endpoint)
	if err != nil || u.User != nil || u.Host == "" || u.Fragment != "" ||
		!(u.Scheme == "https" || insecure && u.Scheme == "http") || !hostAllowed(u.Hostname(), hosts) {
		return ErrEndpoint
	}
	p, err := b64.DecodeString(strings.TrimRight(s.P256dh, "="))
	if err != nil {
		return ErrPushKeys
	}
	if _, err := ecdh.P256().NewPublicKey(p); err != nil {
		return ErrPushKeys
	}
	if a, err := b64.DecodeString(strings.TrimRight(s.Auth, "=")); err != nil || len(a) != 16 {
		return ErrPushKeys
	}
	return nil
}

func hostAllowed(host string, hosts []string) bool {
	host = strings.ToLower(host)
	for _, h := range hosts {
		h = strings.ToLower(h)
		if sub, ok := strings.CutPrefix(h, "*."); ok {
			if strings.HasSuffix(host, "."+sub) {
				return true
			}
		} else if host == h {
			return true
		}
	}
	return false
}

// VAPID is the application server's key pair of RFC 8292 (base64url: the
// private scalar and the uncompressed public point). The app subscribes
// with the public key; the push service checks that pushes are signed by
// the private one.
type VAPID struct {
	Private string `json:"private"`
	Public  string `json:"public"`
}

// NewVAPID makes a key pair.
func NewVAPID() (VAPID, error) {
	priv, pub, err := webpush.GenerateVAPIDKeys()
	if err != nil {
		return VAPID{}, err
	}
	v := VAPID{Private: priv, Public: pub}
	return v, v.Check()
}

// Check reports whether the pair is usable: the public key is the private
// key's.
func (v VAPID) Check() error {
	d, err := b64.DecodeString(v.Private)
	if err != nil {
		return fmt.Errorf("approval: VAPID private key: %w", err)
	}
	k, err := ecdh.P256().NewPrivateKey(d)
	if err != nil {
		return fmt.Errorf("approval: VAPID private key: %w", err)
	}
	if b64.EncodeToString(k.PublicKey().Bytes()) != v.Public {
		return errors.New("approval: the VAPID public key is not the private key's")
	}
	return nil
}

// Payload is what a push carries: a wake-up naming the request.
type Payload struct {
	V           int    `json:"v"`
	Type        string `json:"type"` // "request"
	Request     string `json:"request"`
	Application string `json:"application,omitempty"`
}

// Pusher sends pushes.
type Pusher struct {
	VAPID VAPID
	// Contact is the VAPID "sub": an https URL or an email address (without
	// "mailto:"), where the push service's operator can reach Lanyard's.
	Contact string
	// Client sends the request; it must not follow redirects (NewClient).
	Client *http.Client
}

// NewClient is the HTTP client for push services: a timeout, no redirects
// (an endpoint must not send Lanyard elsewhere), no proxy from the
// environment.
func NewClient(timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: timeout,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
	}
	return &http.Client{Timeout: timeout, Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// ErrGone: the push service no longer knows the subscription (404 or 410);
// forget it.
var ErrGone = errors.New("approval: the push subscription is gone")

// Send encrypts p to s and posts it to the push service, valid for ttl. A
// 404 or 410 answer is ErrGone; another non-2xx answer an error naming it.
func (ps *Pusher) Send(ctx context.Context, s Subscription, p Payload, ttl time.Duration) error {
	msg, err := json.Marshal(p)
	if err != nil {
		return err
	}
	resp, err := webpush.SendNotificationWithContext(ctx, msg, &webpush.Subscription{
		Endpoint: s.Endpoint, Keys: webpush.Keys{P256dh: s.P256dh, Auth: s.Auth},
	}, &webpush.Options{
		HTTPClient:      ps.Client,
		Subscriber:      ps.Contact,
		TTL:             int(ttl / time.Second),
		Urgency:         webpush.UrgencyHigh,
		Topic:           "approval",
		VAPIDPublicKey:  ps.VAPID.Public,
		VAPIDPrivateKey: ps.VAPID.Private,
		// A small record: the payload is a hundred bytes, and padding it to
		// 4 KiB would only cost bandwidth.
		RecordSize: 1024,
	})
	if err != nil {
		return fmt.Errorf("approval: push: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return ErrGone
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return fmt.Errorf("approval: push service answered %s", resp.Status)
	}
	return nil
}
