package approval_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lanyard-idp/lanyard/config"
	"github.com/lanyard-idp/lanyard/flows/approval"
	"github.com/lanyard-idp/lanyard/flows/approval/pushtest"
)

func TestNumber(t *testing.T) {
	seen := map[int]bool{}
	for range 2000 {
		n := approval.NewNumber(42)
		if n < 10 || n > 99 || n == 42 {
			t.Fatalf("NewNumber(42) = %d", n)
		}
		seen[n] = true
	}
	if len(seen) < 85 {
		t.Errorf("2000 numbers took only %d values of 89", len(seen))
	}
	for _, c := range []struct {
		in   string
		want int
		ok   bool
	}{
		{"42", 42, true}, {" 42 ", 42, true}, {"10", 10, true}, {"99", 99, true},
		{"07", 0, false}, {"4", 0, false}, {"420", 0, false}, {"", 0, false}, {"4a", 0, false},
		{"４２", 0, false}, {"-1", 0, false}, {"+4", 0, false},
	} {
		n, ok := approval.ParseNumber(c.in)
		if n != c.want || ok != c.ok {
			t.Errorf("ParseNumber(%q) = %d, %v; want %d, %v", c.in, n, ok, c.want, c.ok)
		}
	}
}

func TestTokensAndIDs(t *testing.T) {
	tok := approval.NewToken()
	if !approval.ValidToken(tok) || approval.ValidToken(tok[:10]) || approval.ValidToken(tok+"!") {
		t.Errorf("ValidToken disagrees with NewToken: %q", tok)
	}
	if approval.HashToken(tok) == approval.HashToken(approval.NewToken()) || len(approval.HashToken(tok)) != 64 {
		t.Error("HashToken is not a distinct hex SHA-256")
	}
	id := approval.NewID()
	if !approval.ValidID(id) || approval.ValidID(tok) {
		t.Errorf("ValidID disagrees with NewID: %q", id)
	}
}

func newKey(t *testing.T) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := approval.EncodePublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	der, err := approval.ParsePublicKey(enc)
	if err != nil {
		t.Fatal(err)
	}
	return k, der
}

// Every field of the signed message matters: a signature over one request,
// number, decision or challenge is not one over another, and another key's
// signature never verifies.
func TestSignatures(t *testing.T) {
	k, der := newKey(t)
	other, _ := newKey(t)
	msg := approval.Message("req", "42", approval.Approve, "chal")
	sig, err := approval.Sign(k, msg)
	if err != nil {
		t.Fatal(err)
	}
	if !approval.Verify(der, msg, sig) {
		t.Fatal("a good signature does not verify")
	}
	otherSig, _ := approval.Sign(other, msg)
	for name, c := range map[string]struct {
		msg []byte
		sig string
	}{
		"another request":   {approval.Message("req2", "42", approval.Approve, "chal"), sig},
		"another number":    {approval.Message("req", "43", approval.Approve, "chal"), sig},
		"another decision":  {approval.Message("req", "42", approval.Deny, "chal"), sig},
		"another challenge": {approval.Message("req", "42", approval.Approve, "chal2"), sig},
		"another key":       {msg, otherSig},
		"truncated":         {msg, sig[:20]},
		"not base64":        {msg, strings.Repeat("!", 86)},
		"empty":             {msg, ""},
		"huge":              {msg, strings.Repeat("A", 5000)},
	} {
		if approval.Verify(der, c.msg, c.sig) {
			t.Errorf("%s: verifies", name)
		}
	}
	// Keys other than ECDSA P-256 are refused.
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	enc384, _ := approval.EncodePublicKey(&p384.PublicKey)
	for name, in := range map[string]string{"P-384": enc384, "junk": "AAAA", "not base64": "!!!", "huge": strings.Repeat("A", 400)} {
		if _, err := approval.ParsePublicKey(in); err == nil {
			t.Errorf("%s key accepted", name)
		}
	}
}

func TestCheckSubscription(t *testing.T) {
	svc := pushtest.New()
	defer svc.Close()
	sub := svc.Subscribe()
	good := approval.Subscription{Endpoint: "https://fcm.googleapis.com/fcm/send/abc", P256dh: sub.P256dh, Auth: sub.Auth}
	if err := approval.CheckSubscription(good, config.DefaultPushHosts, false); err != nil {
		t.Fatalf("a subscription at FCM refused: %v", err)
	}
	wns := good
	wns.Endpoint = "https://db5p.notify.windows.com/w/?token=x"
	if err := approval.CheckSubscription(wns, config.DefaultPushHosts, false); err != nil {
		t.Errorf("a subscription at WNS refused: %v", err)
	}
	for name, s := range map[string]approval.Subscription{
		"internal host":     {Endpoint: "https://metadata.internal/push", P256dh: sub.P256dh, Auth: sub.Auth},
		"look-alike host":   {Endpoint: "https://fcm.googleapis.com.evil.example/x", P256dh: sub.P256dh, Auth: sub.Auth},
		"suffix not domain": {Endpoint: "https://evilnotify.windows.com/x", P256dh: sub.P256dh, Auth: sub.Auth},
		"plain http":        {Endpoint: "http://fcm.googleapis.com/x", P256dh: sub.P256dh, Auth: sub.Auth},
		"user info":         {Endpoint: "https://u@fcm.googleapis.com/x", P256dh: sub.P256dh, Auth: sub.Auth},
		"bad point":         {Endpoint: good.Endpoint, P256dh: "AAAA", Auth: sub.Auth},
		"short auth":        {Endpoint: good.Endpoint, P256dh: sub.P256dh, Auth: "AAAA"},
		"huge endpoint":     {Endpoint: "https://fcm.googleapis.com/" + strings.Repeat("a", 3000), P256dh: sub.P256dh, Auth: sub.Auth},
	} {
		if err := approval.CheckSubscription(s, config.DefaultPushHosts, false); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// A push reaches the (stand-in) push service signed with the VAPID key and
// encrypted to the subscription: the service verifies the JWT and decrypts
// the payload, which names the request and nothing secret. A subscription
// the service has dropped answers 410, which Send reports as ErrGone.
func TestPush(t *testing.T) {
	svc := pushtest.New()
	defer svc.Close()
	sub := svc.Subscribe()
	v, err := approval.NewVAPID()
	if err != nil {
		t.Fatal(err)
	}
	p := &approval.Pusher{VAPID: v, Contact: "security@agency.example", Client: approval.NewClient(5 * time.Second)}
	s := approval.Subscription{Endpoint: sub.Endpoint, P256dh: sub.P256dh, Auth: sub.Auth}
	if err := approval.CheckSubscription(s, []string{svc.Host()}, true); err != nil {
		t.Fatalf("the test service's subscription refused: %v", err)
	}
	want := approval.Payload{V: 1, Type: "request", Request: approval.NewID(), Application: "Docs portal (staging)"}
	if err := p.Send(t.Context(), s, want, time.Minute); err != nil {
		t.Fatalf("Send: %v", err)
	}
	m, ok := svc.Wait(0, 5*time.Second)
	if !ok {
		t.Fatal("no push arrived")
	}
	if m.Err != nil {
		t.Fatalf("the push service refused the push: %v", m.Err)
	}
	if m.VAPIDKey != v.Public || m.Claims["sub"] != "mailto:security@agency.example" || m.TTL != "60" || m.Urgency != "high" {
		t.Errorf("push headers: key %q, claims %v, TTL %q, urgency %q", m.VAPIDKey, m.Claims, m.TTL, m.Urgency)
	}
	var got approval.Payload
	if err := json.Unmarshal(m.Payload, &got); err != nil || got != want {
		t.Errorf("decrypted payload %s (%v), want %+v", m.Payload, err, want)
	}

	svc.Gone(sub, http.StatusGone)
	if err := p.Send(t.Context(), s, want, time.Minute); !errors.Is(err, approval.ErrGone) {
		t.Errorf("a 410 answer: %v, want ErrGone", err)
	}
	// Another key pair's pushes fail the signature check there.
	bad := approval.VAPID{Private: v.Private, Public: mustVAPID(t).Public}
	if bad.Check() == nil {
		t.Error("a mismatched VAPID pair passes Check")
	}
}

func mustVAPID(t *testing.T) approval.VAPID {
	t.Helper()
	v, err := approval.NewVAPID()
	if err != nil {
		t.Fatal(err)
	}
	return v
}
